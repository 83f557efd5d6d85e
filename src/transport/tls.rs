//! The TLS client configuration shared by every connection to push services.

use std::path::Path;
use std::sync::Arc;

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
