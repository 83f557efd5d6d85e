//! The mock's TLS identity: a throwaway CA made at start, and a server certificate it signs for
//! `localhost`, 127.0.0.1 and the listening address. Clients trust the CA's PEM.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::MockError;

/// The CA to trust and the server configuration presenting a certificate it signed.
pub(crate) struct TlsIdentity {
    pub(crate) ca_pem: String,
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

impl TlsIdentity {
    /// A fresh identity valid for `localhost`, 127.0.0.1 and `listen_ip`, offering HTTP/2
    /// in ALPN unless `http1_only`.
    pub(crate) fn generate(listen_ip: IpAddr, http1_only: bool) -> Result<Self, MockError> {
        let mut names = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        ];
        if !listen_ip.is_unspecified() && listen_ip != IpAddr::from([127, 0, 0, 1]) {
            names.push(SanType::IpAddress(listen_ip));
        }
        let (ca_cert, server_cert, server_key) =
            issue_server_cert("Aviso mock push service", names)?;

        let chain: Vec<CertificateDer<'static>> =
            vec![server_cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        server_config.alpn_protocols = if http1_only {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_config: Arc::new(server_config),
        })
    }
}

/// A throwaway CA (`{name} CA`) and a certificate it signs for a TLS server `name` reached at
/// `names`: the CA's certificate, the server's and its key.
pub fn issue_server_cert(
    name: &str,
    names: Vec<SanType>,
) -> Result<(Certificate, Certificate, KeyPair), rcgen::Error> {
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let mut server_params = CertificateParams::default();
    server_params.subject_alt_names = names;
    server_params
        .distinguished_name
        .push(DnType::CommonName, name);
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &ca)?;
    Ok((ca_cert, server_cert, server_key))
}
