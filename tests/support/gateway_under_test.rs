//! Starts a real gateway in-process on loopback with ephemeral ports and a dev CA, and an HTTPS
//! client that trusts that CA. Everything it starts stops when it is dropped or shut down.

use std::net::SocketAddr;
use std::path::PathBuf;

use straja_gateway::config::Config;
use straja_gateway::server::{RunningGateway, start};

/// A running gateway plus what a test needs to talk to it.
pub struct GatewayUnderTest {
    /// The gateway.
    pub running: RunningGateway,
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// An HTTPS client trusting the test CA.
    pub client: reqwest::Client,
    /// The test CA certificate (PEM file).
    pub ca_cert: PathBuf,
    _state_dir: tempfile::TempDir,
}

/// One camera for the test config.
pub struct TestCamera<'a> {
    /// Camera id.
    pub id: &'a str,
    /// Source URL.
    pub source: &'a str,
}

impl GatewayUnderTest {
    /// Starts a gateway serving `cameras`.
    pub async fn start(cameras: &[TestCamera<'_>]) -> GatewayUnderTest {
        let state_dir = tempfile::tempdir().expect("temp dir");
        let certs = state_dir.path().join("certs");
        straja_gateway::tls::init_dev_certificates(&certs).expect("dev certificates");
        let mut toml = format!(
            r#"
state_dir = "{state}"
[http]
listen = "127.0.0.1:0"
tls_cert = "{certs}/server.crt"
tls_key = "{certs}/server.key"
[metrics]
listen = "127.0.0.1:0"
[webrtc]
udp_listen = "127.0.0.1:0"
"#,
            state = state_dir.path().display(),
            certs = certs.display(),
        );
        for camera in cameras {
            toml.push_str(&format!(
                "[[cameras]]\nid = \"{}\"\nname = \"Camera {}\"\nsource = \"{}\"\n",
                camera.id, camera.id, camera.source
            ));
        }
        let config = Config::parse(&toml).expect("valid test config");
        let running = start(config).await.expect("gateway starts");
        let ca_cert = certs.join("ca.crt");
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_cert).expect("ca.crt"))
            .expect("CA PEM");
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .https_only(true)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("HTTPS client");
        GatewayUnderTest {
            base_url: format!("https://127.0.0.1:{}", running.https_addr.port()),
            running,
            client,
            ca_cert,
            _state_dir: state_dir,
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.running.metrics_addr
    }

    /// The metrics text (plain HTTP on loopback).
    pub async fn metrics_text(&self) -> String {
        reqwest::Client::new()
            .get(format!("http://{}/metrics", self.metrics_addr()))
            .send()
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text")
    }

    /// Waits (bounded) until every camera reports `playing`.
    pub async fn wait_until_ready(&self, timeout: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = self
                .client
                .get(self.url("/readyz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway not ready within {timeout:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops the gateway.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}
