//! The admin API's client for the command line: requests to a running `aviso serve` with the
//! admin key, answers as JSON, and the server's problem documents as errors that say what the
//! server said.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where the running server is, and the key to use.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The running server's URL. [default: http://127.0.0.1:8080]
    #[arg(long, env = "AVISO_SERVER")]
    pub server: Option<String>,
    /// The admin key `aviso serve` printed at its first start.
    #[arg(long, env = "AVISO_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct AdminClient {
    base: String,
    key: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl AdminClient {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let base = args
            .server
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim_end_matches('/')
            .to_owned();
        url::Url::parse(&base).with_context(|| {
            format!("--server `{base}` is not a URL like http://127.0.0.1:8080")
        })?;
        let key = args.admin_key.clone().filter(|k| !k.trim().is_empty()).context(
            "no admin key: pass --admin-key or set AVISO_ADMIN_KEY (`aviso serve` printed it at its first start)",
        )?;
        let tls = crate::transport::tls::client_config(&[])?;
        let connector = crate::transport::tls::http1_connector(&tls, false, HttpConnector::new());
        Ok(Self {
            base,
            key,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends a request; the answer's JSON (`null` for an empty one), or the problem it reported.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        let payload = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(payload))?;
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .with_context(|| format!("{method} {url}: no answer within {} s", TIMEOUT.as_secs()))?
            .with_context(|| {
                format!("{method} {url}: is `aviso serve` running there? (--server)")
            })?;
        let status = response.status();
        let bytes = tokio::time::timeout(TIMEOUT, response.into_body().collect())
            .await
            .context("the answer did not finish")??
            .to_bytes();
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(json);
        }
        let detail = json["detail"]
            .as_str()
            .map_or_else(|| json.to_string(), str::to_owned);
        match json["field"].as_str() {
            Some(field) => anyhow::bail!("the server refused ({status}): {field}: {detail}"),
            None => anyhow::bail!("the server refused ({status}): {detail}"),
        }
    }
}
