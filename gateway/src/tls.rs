//! TLS for the HTTPS listener (rustls with the ring provider, TLS 1.2 and 1.3, AEAD suites only),
//! and the certificates the gateway makes itself: a self-signed one for a first start, and a dev CA
//! with server and client certificates for `straja certs init`.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::HttpConfig;

/// A TLS set-up failure: which file, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's content is not what was expected.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// `certs init` would overwrite a file.
    #[error("{0} exists; refusing to overwrite it")]
    Exists(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The rustls server configuration for `[http]`: the configured certificate, or a self-signed one
/// kept in `<state_dir>/tls/` (generated on first start); client certificates required when
/// `client_ca` is set.
pub fn server_config(
    http: &HttpConfig,
    state_dir: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert_path, key_path) = certificate_and_key_paths(http, state_dir)?;
    let chain = read_certificates(&cert_path)?;
    let key = read_private_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &http.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let ca_path = &resolve(ca_path)?;
            let mut roots = rustls::RootCertStore::empty();
            for ca in read_certificates(ca_path)? {
                roots.add(ca).map_err(|e| TlsError::Invalid {
                    path: ca_path.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Invalid {
                path: ca_path.clone(),
                reason: format!("cannot verify clients with it: {e}"),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid {
            path: key_path.clone(),
            reason: format!("does not match the certificate or is unusable: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate and key files in force: the configured ones, or the self-signed pair (made
/// when missing).
fn certificate_and_key_paths(
    http: &HttpConfig,
    state_dir: &Path,
) -> Result<(PathBuf, PathBuf), TlsError> {
    match (&http.tls_cert, &http.tls_key) {
        (Some(cert), Some(key)) => Ok((resolve(cert)?, resolve(key)?)),
        _ => ensure_self_signed(state_dir, http.listen.ip()),
    }
}

/// A configured TLS path, with `credential:NAME` resolved ([`crate::key_file::resolve_path`]).
fn resolve(path: &Path) -> Result<PathBuf, TlsError> {
    crate::key_file::resolve_path(path).map_err(|reason| TlsError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// When the served certificate (the chain's first) expires, in Unix seconds; `None` when it
/// cannot be read.
pub fn certificate_expiry(http: &HttpConfig, state_dir: &Path) -> Option<i64> {
    let (cert_path, _) = certificate_and_key_paths(http, state_dir).ok()?;
    let chain = read_certificates(&cert_path).ok()?;
    let (_, certificate) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    Some(certificate.validity().not_after.timestamp())
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(io_error(path))?;
    let chain: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let chain = chain.map_err(io_error(path))?;
    if chain.is_empty() {
        return Err(TlsError::Invalid {
            path: path.to_owned(),
            reason: "no PEM certificate found".into(),
        });
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = fs::read(path).map_err(io_error(path))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(io_error(path))?
        .ok_or_else(|| TlsError::Invalid {
            path: path.to_owned(),
            reason: "no PEM private key (PKCS#8, SEC1 or PKCS#1) found".into(),
        })
}

/// The self-signed certificate and key paths, generating them if absent.
pub fn ensure_self_signed(
    state_dir: &Path,
    listen_ip: IpAddr,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = state_dir.join("tls");
    let cert = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    if !listen_ip.is_unspecified() && !listen_ip.is_loopback() {
        names.push(listen_ip.to_string());
    }
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Straja self-signed");
    let key_pair = KeyPair::generate()?;
    let certificate = params.self_signed(&key_pair)?;
    write_private(&key, key_pair.serialize_pem().as_bytes())?;
    write_public(&cert, certificate.pem().as_bytes())?;
    tracing::warn!(
        path = %cert.display(),
        "no TLS certificate configured: generated a self-signed one (browsers will warn)"
    );
    Ok((cert, key))
}

/// When the TLS files of `[http]` last changed (to reload them when they do); `None` when the
/// certificate is self-signed or a file cannot be read.
pub fn files_modified(http: &HttpConfig) -> Option<Vec<SystemTime>> {
    [&http.tls_cert, &http.tls_key, &http.client_ca]
        .into_iter()
        .flatten()
        .map(|path| {
            let path = crate::key_file::resolve_path(path).ok()?;
            fs::metadata(path).and_then(|m| m.modified()).ok()
        })
        .collect::<Option<Vec<_>>>()
        .filter(|times| !times.is_empty())
}

/// The files `straja certs init` writes.
pub const DEV_CERT_FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
];

/// Writes a dev CA, a server certificate (localhost, 127.0.0.1, ::1) and a client certificate
/// signed by it into `dir`. Refuses to overwrite any existing file.
pub fn init_dev_certificates(dir: &Path) -> Result<Vec<PathBuf>, TlsError> {
    for name in DEV_CERT_FILES {
        let path = dir.join(name);
        if path.exists() {
            return Err(TlsError::Exists(path));
        }
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Straja dev CA (tests and trials only)");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server_params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "Straja dev server");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "Straja dev client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client_params.signed_by(&client_key, &issuer)?;

    let files: [(&str, String, bool); 6] = [
        ("ca.crt", ca_cert.pem(), false),
        ("ca.key", ca_key_pem, true),
        ("server.crt", server_cert.pem(), false),
        ("server.key", server_key.serialize_pem(), true),
        ("client.crt", client_cert.pem(), false),
        ("client.key", client_key.serialize_pem(), true),
    ];
    let mut written = Vec::new();
    for (name, content, private) in files {
        let path = dir.join(name);
        if private {
            write_private(&path, content.as_bytes())?;
        } else {
            write_public(&path, content.as_bytes())?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Writes a secret: created with mode 0600, never group- or world-readable, even briefly.
fn write_private(path: &Path, content: &[u8]) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(content).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

fn write_public(path: &Path, content: &[u8]) -> Result<(), TlsError> {
    fs::write(path, content).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn http(cert: Option<&Path>, key: Option<&Path>) -> HttpConfig {
        HttpConfig {
            listen: "127.0.0.1:8443".parse().unwrap(),
            tls_cert: cert.map(Path::to_owned),
            tls_key: key.map(Path::to_owned),
            client_ca: None,
            cors_origins: Vec::new(),
        }
    }

    #[test]
    fn the_served_certificate_s_expiry_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let expiry = certificate_expiry(&http(None, None), dir.path()).expect("an expiry");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            expiry > now + 86_400,
            "a fresh certificate expires later: {expiry}"
        );
        let missing = dir.path().join("missing.crt");
        assert_eq!(
            certificate_expiry(&http(Some(&missing), Some(&missing)), dir.path()),
            None
        );
    }

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        server_config(&http(None, None), dir.path()).unwrap();
        let key = dir.path().join("tls/self-signed.key");
        let first = fs::read(&key).unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        server_config(&http(None, None), dir.path()).unwrap();
        assert_eq!(first, fs::read(&key).unwrap());
    }

    #[test]
    fn dev_certificates_are_usable_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let files = init_dev_certificates(dir.path()).unwrap();
        assert_eq!(files.len(), 6);
        let mut config = http(
            Some(&dir.path().join("server.crt")),
            Some(&dir.path().join("server.key")),
        );
        server_config(&config, dir.path()).unwrap();
        config.client_ca = Some(dir.path().join("ca.crt"));
        server_config(&config, dir.path()).expect("mutual TLS with the dev CA");
        for key in ["ca.key", "server.key", "client.key"] {
            let mode = fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        assert!(matches!(
            init_dev_certificates(dir.path()),
            Err(TlsError::Exists(_))
        ));
    }

    #[test]
    fn a_missing_or_bad_certificate_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("nope.crt");
        let config = http(Some(&cert), Some(&cert));
        let err = server_config(&config, dir.path()).unwrap_err().to_string();
        assert!(err.contains("nope.crt"), "{err}");
        fs::write(&cert, "not pem").unwrap();
        let err = server_config(&config, dir.path()).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
