//! The Prometheus recorder of `aviso serve` and the catalogue of every metric it exports: each
//! one is described (`# HELP`, `# TYPE`) when the recorder is installed, before anything is
//! recorded, so a scrape of a fresh server already lists what it will report.

use anyhow::Context;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds: from a push service's fastest answer to its slowest timeout.
const LATENCY: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// One message's encryption takes tens of microseconds.
const ENCRYPTION: &[f64] = &[
    0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_25, 0.000_5, 0.001, 0.01,
];

/// The recorder, with histograms (summable across instances, unlike the exporter's default
/// summaries) and its upkeep: without it every sample recorded stays in memory until someone
/// scrapes `/metrics`, two per message sent.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("aviso_encrypt_seconds".into()), ENCRYPTION)
        })
        .context("bad histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Every metric Aviso records, with its unit and what it means.
fn describe() {
    describe_histogram!(
        "aviso_api_request_seconds",
        Unit::Seconds,
        "API request latency by method, route template (`route`) and status"
    );
    describe_counter!(
        "aviso_api_errors_total",
        "API requests answered with a problem document, by kind"
    );
    describe_counter!(
        "aviso_subscriptions_total",
        "Subscribes through the public API, by result (created or updated)"
    );
    describe_counter!(
        "aviso_events_total",
        "Service worker events counted (shown, clicked, closed)"
    );
    describe_counter!(
        "aviso_notifications_created_total",
        "Notifications created through the API"
    );
    describe_histogram!(
        "aviso_encrypt_seconds",
        Unit::Seconds,
        "Encryption (RFC 8291) of one message"
    );
    describe_histogram!(
        "aviso_push_request_seconds",
        Unit::Seconds,
        "Push service request latency, by service"
    );
    describe_counter!(
        "aviso_sends_total",
        "Messages handed to push services, by service and outcome"
    );
    describe_counter!(
        "aviso_push_retries_total",
        "Push requests retried, by service"
    );
    describe_counter!(
        "aviso_push_throttled_total",
        "Push service throttling answers (429, WNS 406), by service"
    );
    describe_counter!(
        "aviso_push_config_errors_total",
        "Push service answers that point at a configuration problem (400/401/403), by service and status"
    );
    describe_gauge!("aviso_queue_depth", "Delivery tasks waiting, by lane");
    describe_histogram!(
        "aviso_task_lag_seconds",
        Unit::Seconds,
        "How long a delivery task waited past its due time before a worker claimed it, by lane"
    );
    // Counters without labels start at 0, so they are listed from the first scrape.
    metrics::counter!("aviso_notifications_created_total").absolute(0);
}
