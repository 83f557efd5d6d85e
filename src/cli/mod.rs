//! The `aviso` command line: argument definitions and dispatch to each subcommand.

pub mod admin;
pub mod apps;
pub mod send;
pub mod serve;
pub mod vapid;

use clap::{Parser, Subcommand};

/// Self-hosted, high-throughput Web Push delivery server.
#[derive(Debug, Parser)]
#[command(name = "aviso", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage VAPID key pairs.
    #[command(subcommand)]
    Vapid(vapid::VapidCommand),
    /// Send one push message to one subscription and print the push service's answer.
    Send(send::SendArgs),
    /// Run the server: the HTTP API and the sender.
    Serve(serve::ServeCommand),
    /// Manage apps (sites), their keys and origins, through a running server's admin API.
    #[command(subcommand)]
    Apps(apps::AppsCommand),
}

/// What a subcommand tells the process: success, or an exit code with the reason printed.
pub type CommandResult = anyhow::Result<std::process::ExitCode>;

impl Cli {
    pub async fn run(self) -> CommandResult {
        match self.command {
            Command::Vapid(command) => command.run(),
            Command::Send(args) => args.run().await,
            Command::Serve(command) => command.run().await,
            Command::Apps(command) => command.run().await,
        }
    }

    /// The log format asked for (only `serve` has a choice).
    pub fn json_logs(&self) -> bool {
        matches!(&self.command, Command::Serve(serve) if serve.args.log_format == Some(crate::config::LogFormat::Json))
    }
}
