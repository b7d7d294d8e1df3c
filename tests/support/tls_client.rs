//! A rustls client configuration that trusts only the test CA, for tests that speak TLS to the
//! gateway below HTTP (a half-sent request, a WebSocket).

use std::sync::Arc;

/// Trusts only the CA certificates in `ca_cert` (PEM).
pub fn trusting(ca_cert: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(ca_cert).expect("CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("CA cert")).expect("CA added");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// The name the gateway's test certificate is checked against: its loopback address.
pub fn loopback() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
}
