//! The `aviso` binary: parse the command line, run, and turn errors into a message and exit code.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc: the sender allocates a few small buffers per message
/// (payload, body, headers) from many threads, and glibc's arenas showed up as ~8% of a
/// broadcast's CPU profile (docs/BENCHMARKS.md has the measurement).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc does as it says).
///
/// mimalloc asks for huge pages on its arena (`MADV_HUGEPAGE`), and on a kernel whose THP mode
/// is `madvise` (Debian's default) every 2 MiB region the heap touches is then resident whole:
/// a 2,000-subscriber broadcast took the server from 56 to 138 MiB resident, 104 MiB of it huge
/// pages, against 37 to 55 MiB with them off, for no CPU measured to gain
/// (docs/BENCHMARKS.md, "Resident memory"). The setting is the process's, and holds for the
/// arena mimalloc reserved before `main` as well: the kernel reads it at each page fault.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl(2) with PR_SET_THP_DISABLE takes plain integers and touches no memory
        // of ours; a kernel without it answers EINVAL, which leaves THP as it was.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    run()
}

#[tokio::main]
async fn run() -> ExitCode {
    match aviso::cli::Cli::parse().run().await {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the whole context chain: "in file X: keys.auth must be 16 bytes…".
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
