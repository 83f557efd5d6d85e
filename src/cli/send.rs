//! `aviso send`: one push to one subscription, shaped like the npm `web-push send-notification`.
//!
//! Exit status: 0 when the push service accepted the message, 1 when it answered otherwise
//! (with what to do about it), 2 when the input was wrong or the service could not be reached.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use super::CommandResult;
use super::vapid::load_key;
use crate::push::vapid::{DEFAULT_VALIDITY, VapidSubject};
use crate::push::{
    Outcome, PushOptions, PushSubscription, Topic, Ttl, Urgency, VapidHeaderCache, build_request,
    encrypt,
};
use crate::transport::{ClientConfig, PushClient};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// File with the browser's subscription JSON ({"endpoint", "keys": {"p256dh", "auth"}}).
    #[arg(long)]
    subscription: PathBuf,
    /// The message; `@path` reads it from a file.
    #[arg(long, default_value = "")]
    payload: String,
    /// VAPID private key file (PEM, or the base64url scalar).
    #[arg(long)]
    vapid_key: PathBuf,
    /// VAPID contact: mailto:you@example.com or an https: URL.
    #[arg(long)]
    subject: String,
    /// Seconds the push service keeps the message while the browser is offline.
    #[arg(long, default_value = "2419200", allow_hyphen_values = true)]
    ttl: Ttl,
    /// very-low | low | normal | high.
    #[arg(long)]
    urgency: Option<Urgency>,
    /// Replaces an undelivered message with the same topic (≤ 32 characters of A-Z a-z 0-9 - _).
    #[arg(long)]
    topic: Option<Topic>,
    /// Extra trusted root certificate (PEM), e.g. for a local test push service.
    #[arg(long, env = "AVISO_EXTRA_CA_CERTS")]
    ca_cert: Option<PathBuf>,
    /// Seconds to wait for the push service.
    #[arg(long, default_value = "30")]
    timeout: u64,
}

impl SendArgs {
    pub async fn run(self) -> CommandResult {
        let subscription_json = std::fs::read(&self.subscription).with_context(|| {
            format!(
                "cannot read subscription file {}",
                self.subscription.display()
            )
        })?;
        let subscription = PushSubscription::from_json(&subscription_json)
            .with_context(|| format!("in subscription file {}", self.subscription.display()))?;
        let payload = match self.payload.strip_prefix('@') {
            Some(path) => {
                std::fs::read(path).with_context(|| format!("cannot read payload file {path}"))?
            }
            None => self.payload.into_bytes(),
        };
        let subject = VapidSubject::parse(&self.subject)?;
        let vapid = VapidHeaderCache::new(load_key(&self.vapid_key)?, subject, DEFAULT_VALIDITY)?;

        let body = encrypt(subscription.keys(), &payload)?;
        let authorization = vapid.authorization_for(&subscription)?;
        let options = PushOptions {
            ttl: self.ttl,
            urgency: self.urgency,
            topic: self.topic,
        };
        let request = build_request(&subscription, Bytes::from(body), authorization, &options);

        let client = PushClient::new(&ClientConfig {
            extra_ca_files: self.ca_cert.into_iter().collect(),
            request_timeout: Duration::from_secs(self.timeout),
            ..ClientConfig::default()
        })?;
        let response = client
            .send(request)
            .await
            .with_context(|| format!("sending to {}", subscription.endpoint()))?;
        let outcome = Outcome::classify(response.status, &response.headers);
        println!("{} ({:?})", response.status, response.version);
        if let Some(location) = response.headers.get(http::header::LOCATION) {
            println!("location: {}", String::from_utf8_lossy(location.as_bytes()));
        }
        if !response.reason.trim().is_empty() {
            println!("push service said: {}", response.reason.trim());
        }
        if let Outcome::Throttled {
            retry_after: Some(wait),
        } = outcome
        {
            println!("retry after: {} s", wait.as_secs());
        }
        if outcome == Outcome::Delivered {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("error: {}", outcome.advice());
            Ok(ExitCode::from(1))
        }
    }
}
