//! `aviso vapid …`: make and inspect VAPID key pairs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::CommandResult;
use crate::push::VapidKey;

#[derive(Debug, Subcommand)]
pub enum VapidCommand {
    /// Write a new private key (PEM) and print its public key, the page's applicationServerKey.
    Generate {
        /// Where to write the private key (created with mode 0600; never overwritten without --force).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of an existing private key file (PEM or base64url).
    PublicKey {
        #[arg(long)]
        key: PathBuf,
    },
}

impl VapidCommand {
    pub fn run(self) -> CommandResult {
        match self {
            Self::Generate { out, force } => {
                let key = VapidKey::generate()?;
                write_private(&out, key.to_pem()?.as_bytes(), force)?;
                println!("{}", key.public_key_base64url());
                eprintln!(
                    "private key written to {}; the line above is the public key (applicationServerKey)",
                    out.display()
                );
            }
            Self::PublicKey { key } => {
                println!("{}", load_key(&key)?.public_key_base64url());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Reads a VAPID private key file, saying which file is wrong when it is.
pub fn load_key(path: &std::path::Path) -> anyhow::Result<VapidKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read VAPID key file {}", path.display()))?;
    VapidKey::from_text(&text).with_context(|| format!("in VAPID key file {}", path.display()))
}

fn write_private(path: &std::path::Path, contents: &[u8], force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (use --force to overwrite an existing key)",
            path.display()
        )
    })?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}
