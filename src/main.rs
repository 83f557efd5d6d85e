//! The `aviso` binary: parse the command line, run, and turn errors into a message and exit code.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc: the sender allocates a few small buffers per message
/// (payload, body, headers) from many threads, and glibc's arenas showed up as ~8% of a
/// broadcast's CPU profile (docs/BENCHMARKS.md has the measurement).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match aviso::cli::Cli::parse().run().await {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the whole context chain: "in file X: keys.auth must be 16 bytes…".
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
