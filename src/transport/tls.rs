//! The TLS client configuration shared by every connection to push services, and the one way
//! an HTTP/1.1 client of Aviso's (push services without HTTP/2, webhooks, the admin CLI) wraps it.

use std::path::Path;
use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::TransportError;

/// ALPN offers: HTTP/2 first, HTTP/1.1 for the rare service that speaks nothing else.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Builds a rustls client config trusting the system's roots plus `extra_ca_files`.
pub fn client_config(
    extra_ca_files: &[std::path::PathBuf],
) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in extra_ca_files {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| TransportError::CaFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TransportError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// An HTTP/1.1 connector: TLS from `tls` over `http`'s connections; plain `http://` URLs too
/// unless `https_only`. hyper-rustls sets HTTP/1.1's ALPN itself and refuses a config that
/// has one, so `tls`'s offers are left out; `http` takes every scheme (the TLS layer checks).
pub fn http1_connector<R>(
    tls: &rustls::ClientConfig,
    https_only: bool,
    mut http: HttpConnector<R>,
) -> HttpsConnector<HttpConnector<R>> {
    http.enforce_http(false);
    let mut tls = tls.clone();
    tls.alpn_protocols.clear();
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if https_only {
        builder.https_only()
    } else {
        builder.https_or_http()
    };
    builder.enable_http1().wrap_connector(http)
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let ca_error = |reason: String| TransportError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(certs)
}
