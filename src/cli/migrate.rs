//! `aviso migrate-endpoints`: the store migration of `crate::migrate`, run once against the store
//! `aviso serve` uses (same flags and environment), servers running or not.

use std::process::ExitCode;

use super::CommandResult;
use crate::config::Config;

pub async fn endpoints(config: Config) -> CommandResult {
    let store = config.open_store().await?;
    let report = crate::migrate::canonicalise_endpoints(store.as_ref()).await?;
    println!(
        "scanned {} subscriptions: {} moved to their canonical endpoint ({} merged into an existing one), {} unparsable left as they are",
        report.scanned, report.moved, report.merged, report.unparsable
    );
    Ok(ExitCode::SUCCESS)
}
