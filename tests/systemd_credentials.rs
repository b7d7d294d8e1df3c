//! Keys handed over as systemd credentials (`LoadCredential=` in `systemd/straja.service`,
//! `$CREDENTIALS_DIRECTORY` for the process), with the real `straja` binary:
//!
//! - given, they are used, and no key is made in the state directory;
//! - absent (the unit's `SetCredential=NAME:use-state-dir` stand-in, or no file at all), the daemon
//!   starts anyway and keeps its keys in the state directory.

mod support;

use std::path::Path;
use std::time::Duration;

use support::gateway_process::{GatewayProcess, ProcessOptions};
use support::gateway_under_test::https_client;

const CAMERA: &str = r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=160&height=120"
record = true
"#;

/// Starts the daemon with `credentials` as its `$CREDENTIALS_DIRECTORY`; returns it once
/// `/healthz` answers.
async fn start_with_credentials(credentials: &Path) -> GatewayProcess {
    let gateway = GatewayProcess::start_with(
        CAMERA,
        ProcessOptions {
            env: vec![(
                "CREDENTIALS_DIRECTORY".to_owned(),
                credentials.display().to_string(),
            )],
            ..ProcessOptions::default()
        },
    );
    let health = https_client(&gateway.ca_cert, None)
        .get(format!("{}/healthz", gateway.base_url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/healthz");
    assert_eq!(health.status(), 200);
    gateway
}

/// Writes credential `name` with `bytes`, mode 0400 (as systemd does).
fn credential(dir: &Path, name: &str, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("credential");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_credentials_are_used_instead_of_state_keys() {
    let credentials = tempfile::tempdir().expect("temp dir");
    credential(credentials.path(), "token-signing.key", &[0x5a; 32]);
    credential(credentials.path(), "recording.key", &[0xa5; 32]);
    let mut gateway = start_with_credentials(credentials.path()).await;
    let state = gateway.state_dir();
    assert!(!state.join("auth/token-signing.key").exists());
    assert!(!state.join("keys/recording.key").exists());
    // A token signed with the credential (the CLI given the same credentials) is accepted.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_straja"))
        .args(["token", "issue", "--role", "ops", "--config"])
        .arg(&gateway.config)
        .env("CREDENTIALS_DIRECTORY", credentials.path())
        .output()
        .expect("straja token issue");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("UTF-8");
    let cameras = gateway
        .client(token.trim())
        .get(format!("{}/api/v1/cameras", gateway.base_url))
        .send()
        .await
        .expect("cameras");
    assert_eq!(cameras.status(), 200);
    assert!(!state.join("auth/token-signing.key").exists());
    gateway.terminate();
    let status = gateway.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_keys_live_in_the_state_directory() {
    // The unit's stand-ins for absent files, and a directory with no credentials at all.
    let stand_ins = tempfile::tempdir().expect("temp dir");
    credential(stand_ins.path(), "token-signing.key", b"use-state-dir");
    credential(stand_ins.path(), "recording.key", b"use-state-dir");
    let empty = tempfile::tempdir().expect("temp dir");
    for credentials in [stand_ins.path(), empty.path()] {
        let mut gateway = start_with_credentials(credentials).await;
        let state = gateway.state_dir();
        for key in ["auth/token-signing.key", "keys/recording.key"] {
            let bytes = std::fs::read(state.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(bytes.len(), 32, "{key}");
        }
        // Tokens signed with the state directory's key (as `straja token issue` does) pass.
        let ops = gateway.client(&gateway.token(&["--role", "ops"]));
        let cameras = ops
            .get(format!("{}/api/v1/cameras", gateway.base_url))
            .send()
            .await
            .expect("cameras");
        assert_eq!(cameras.status(), 200);
        gateway.terminate();
        let status = gateway.wait_exit(Duration::from_secs(20)).expect("exits");
        assert!(status.success(), "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_certificate_and_key_can_be_credentials() {
    // A certificate from another CA, handed over only as credentials.
    let credentials = tempfile::tempdir().expect("temp dir");
    let other_ca = tempfile::tempdir().expect("temp dir");
    straja_gateway::tls::init_dev_certificates(other_ca.path()).expect("certs");
    for (name, file) in [("server.crt", "server.crt"), ("server.key", "server.key")] {
        let bytes = std::fs::read(other_ca.path().join(file)).expect("cert file");
        credential(credentials.path(), name, &bytes);
    }
    let mut gateway = start_with_credentials(credentials.path()).await;
    let text = std::fs::read_to_string(&gateway.config).expect("config");
    let cert_line = text
        .lines()
        .find(|l| l.starts_with("tls_cert"))
        .expect("tls_cert")
        .to_owned();
    let key_line = text
        .lines()
        .find(|l| l.starts_with("tls_key"))
        .expect("tls_key")
        .to_owned();
    let text = text
        .replace(&cert_line, "tls_cert = \"credential:server.crt\"")
        .replace(&key_line, "tls_key = \"credential:server.key\"");
    std::fs::write(&gateway.config, text).expect("config");
    gateway.restart();
    // The credential's certificate is served: clients of its CA connect, the other CA's do not.
    let health = https_client(&other_ca.path().join("ca.crt"), None)
        .get(format!("{}/healthz", gateway.base_url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/healthz with the credential's certificate");
    assert_eq!(health.status(), 200);
    let refused = https_client(&gateway.ca_cert, None)
        .get(format!("{}/healthz", gateway.base_url))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(refused.is_err(), "the file certificate is no longer served");
    // A credential name that is not a plain file name is a configuration error.
    let bad = std::fs::read_to_string(&gateway.config)
        .expect("config")
        .replace("credential:server.key", "credential:../server.key");
    let bad_config = credentials.path().join("..").join("bad.toml");
    std::fs::write(&bad_config, bad).expect("bad config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_straja"))
        .args(["check-config"])
        .arg(&bad_config)
        .output()
        .expect("check-config");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("plain file name"),
        "{output:?}"
    );
    let _ = std::fs::remove_file(&bad_config);
}
