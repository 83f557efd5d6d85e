//! Writes what `h2load` needs to load the standalone mock push service with valid Web Push
//! requests: a VAPID `Authorization` header for the mock's origin, one aes128gcm body, the
//! endpoint URLs, and a `--verify-keys` file under which that body decrypts for every endpoint.
//!
//! ```sh
//! cargo run -p aviso-loadtest --example h2load_fixture -- https://127.0.0.1:18443 /tmp/fixture 1000
//! aviso-mock-push --listen 127.0.0.1:18443 [--verify-keys /tmp/fixture/keys.jsonl] &
//! h2load -n 200000 -c 4 -m 100 -d /tmp/fixture/body.bin -i /tmp/fixture/uris.txt \
//!   -H 'ttl: 60' -H 'content-encoding: aes128gcm' -H "authorization: $(cat /tmp/fixture/authorization)"
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use aviso_loadtest::{MockConfig, MockPushService, TestSubscriber};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const USAGE: &str =
    "usage: h2load_fixture <origin, e.g. https://127.0.0.1:18443> <out dir> [endpoints]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("h2load_fixture: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let origin = args.next().ok_or(USAGE)?;
    let out = PathBuf::from(args.next().ok_or(USAGE)?);
    let endpoints: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    std::fs::create_dir_all(&out)?;

    // The keys come from a throwaway in-process mock; the file reuses them for every endpoint id
    // so that the one body decrypts whichever endpoint h2load picks.
    let key_maker = MockPushService::start(MockConfig::default()).await?;
    let subscriber = TestSubscriber::generate(&key_maker, "template")?;
    key_maker.shutdown().await;
    let plaintext = br#"{"web_push":8030,"notification":{"title":"Load test","navigate":"https://shop.example/"}}"#;
    let body = ece::encrypt(subscriber.public_key(), subscriber.auth_secret(), plaintext)?;
    std::fs::write(out.join("body.bin"), body)?;

    let mut keys = std::io::BufWriter::new(std::fs::File::create(out.join("keys.jsonl"))?);
    let mut uris = std::io::BufWriter::new(std::fs::File::create(out.join("uris.txt"))?);
    for i in 0..endpoints {
        let mut line = subscriber.keys();
        line.id = format!("e{i}");
        writeln!(keys, "{}", serde_json::to_string(&line)?)?;
        writeln!(uris, "{origin}/push/e{i}")?;
    }
    keys.flush()?;
    uris.flush()?;

    let vapid = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 12 * 3600;
    let claims = serde_json::json!({ "aud": origin, "exp": exp, "sub": "mailto:load@example.com" });
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&vapid.serialize_der()),
    )?;
    let authorization = format!(
        "vapid t={jwt}, k={}",
        URL_SAFE_NO_PAD.encode(vapid.public_key_raw())
    );
    std::fs::write(out.join("authorization"), authorization)?;
    eprintln!(
        "wrote body.bin, keys.jsonl, uris.txt ({endpoints} endpoints) and authorization to {}",
        out.display()
    );
    Ok(())
}
