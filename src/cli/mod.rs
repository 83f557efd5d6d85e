//! The `aviso` command line: argument definitions and dispatch to each subcommand.

pub mod admin;
pub mod apps;
pub mod logging;
pub mod metrics;
pub mod migrate;
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
    /// Move subscriptions stored before endpoints were canonicalised (host case, default port,
    /// trailing dot) to their canonical id, on the store `aviso serve` uses (same flags).
    MigrateEndpoints(serve::ServeCommand),
}

/// What a subcommand tells the process: success, or an exit code with the reason printed.
pub type CommandResult = anyhow::Result<std::process::ExitCode>;

impl Cli {
    /// Runs the command; logging starts once its configuration is known to be good.
    pub async fn run(self) -> CommandResult {
        match self.command {
            Command::Serve(command) => {
                // The whole configuration is checked before anything is opened or printed.
                let config = crate::config::Config::load(&command.args)?;
                logging::init(config.log_format);
                command.run(config).await
            }
            Command::Vapid(command) => {
                logging::init(crate::config::LogFormat::Text);
                command.run()
            }
            Command::Send(args) => {
                logging::init(crate::config::LogFormat::Text);
                args.run().await
            }
            Command::MigrateEndpoints(command) => {
                let config = crate::config::Config::load(&command.args)?;
                logging::init(config.log_format);
                migrate::endpoints(config).await
            }
            Command::Apps(command) => {
                logging::init(crate::config::LogFormat::Text);
                command.run().await
            }
        }
    }
}
