//! The driver's requests to Aviso's API and the npm peer: the delivery policy, the profile
//! import, subscribe bodies, the broadcast's content, and the `web-push` comparison.

use std::time::Instant;

use serde_json::{Value, json};

/// Runs loadtest/peer/web-push-send.mjs over `subscriptions` and prints its cost beside Aviso's.
pub fn web_push_peer(
    subscriptions: &std::path::Path,
    ca: &std::path::Path,
    aviso_cpu_us: f64,
) -> anyhow::Result<()> {
    // The same content as the broadcast, as a hand-rolled sender would encode it.
    let payload = json!({"web_push": 8030, "notification": {"title": "Big sale", "body": "Everything must go", "navigate": "https://shop.example/sale"}});
    let output = std::process::Command::new("node")
        .arg("loadtest/peer/web-push-send.mjs")
        .arg(subscriptions)
        .arg(ca)
        .arg(payload.to_string())
        .arg("64")
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the web-push peer failed (run `npm ci` in loadtest/peer first): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let messages = report["messages"].as_f64().unwrap_or(0.0);
    let cpu_us = report["cpu_s"].as_f64().unwrap_or(0.0) * 1e6 / messages.max(1.0);
    println!(
        "npm web-push peer, same push service: {} messages ({} created, {} failed) at {:.0} messages/s, {cpu_us:.1} µs CPU per message = {:.1}× Aviso's",
        messages,
        report["created"],
        report["failed"],
        messages / report["wall_s"].as_f64().unwrap_or(f64::INFINITY),
        cpu_us / aviso_cpu_us
    );
    Ok(())
}

/// `--policy`: caps (3 a day, 1 an hour, per subscriber here: they have no profile unless
/// `--personalised`) and quiet hours that hold nobody now (in UTC, the default zone, from two
/// to three hours ahead), so that every subscriber is checked and counted and every message
/// is still sent now: the policy's whole cost, none of its deferrals.
pub async fn put_policy(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
) -> anyhow::Result<()> {
    let hour = (aviso::store::now_ms() / 3_600_000 % 24) as u32;
    let start = format!("{:02}:00", (hour + 2) % 24);
    let end = format!("{:02}:00", (hour + 3) % 24);
    let policy = json!({
        "caps": [{"max": 3, "per": "1d"}, {"max": 1, "per": "1h"}],
        "quiet_hours": {"start": start, "end": end},
    });
    let response = client
        .put(format!("{base}/v1/policy"))
        .bearer_auth(admin_key)
        .json(&policy)
        .send()
        .await?;
    answered(response, "PUT /v1/policy").await?;
    println!("policy: {policy}");
    Ok(())
}

/// The response if Aviso accepted the request, else an error with its status and problem: a
/// refused step must stop the run, not leave it measuring an empty broadcast.
pub async fn answered(
    response: reqwest::Response,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let problem = response.text().await.unwrap_or_default();
    anyhow::bail!("{what} answered {status}: {problem}")
}

pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A subscriber's `POST /subscriptions` body: with `--personalised`, linked to profile `name`
/// (the identity hash as the site's backend computes it).
pub fn subscribe_body(subscription: Value, name: &str, identity: Option<&[u8]>) -> Value {
    match identity {
        None => json!({"subscription": subscription}),
        Some(secret) => json!({
            "subscription": subscription,
            "external_id": name,
            "identity_hash": aviso::apps::identity_hash(secret, name),
        }),
    }
}

/// `--personalised`: a `first_name` for nine profiles in ten (the tenth gets the default),
/// through one NDJSON import.
pub async fn import_profiles(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let lines: String = (0..n)
        .filter(|i| i % 10 != 9)
        .map(|i| {
            format!("{{\"external_id\":\"s{i}\",\"attributes\":{{\"first_name\":\"Name{i}\"}}}}\n")
        })
        .collect();
    let response = client
        .post(format!("{base}/v1/profile-imports"))
        .bearer_auth(key)
        .header("Content-Type", "application/x-ndjson")
        .body(lines)
        .send()
        .await?;
    let report: Value = answered(response, "POST /v1/profile-imports")
        .await?
        .json()
        .await?;
    anyhow::ensure!(report["failed"] == 0, "profile import: {report}");
    println!(
        "imported {} profiles in {:.1} s",
        report["imported"],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The broadcast's content: the same text, its title personalised with `--personalised`.
pub fn broadcast_content(personalised: bool) -> Value {
    let title = if personalised {
        "{{ profile.first_name | default: \"friend\" }}, big sale"
    } else {
        "Big sale"
    };
    json!({"title": title, "body": "Everything must go", "url": "https://shop.example/sale"})
}
