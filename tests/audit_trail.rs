//! The audit trail of real use: a view granted, a view refused, a view ended, each with who and
//! from where, chained and on disk; `straja audit verify` accepts the log, and names the record
//! once one is altered. With a small rotation size, the daemon and `straja token issue` rotate
//! the log between them into several files that verify as one chain, until one is removed; TLS
//! reloads are on record.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use straja_gateway::audit::{Action, AuditLog, AuditRecord, Outcome, rotated_files};
use straja_gateway::auth::Role;
use support::gateway_under_test::{GATE_AND_YARD, GatewayUnderTest, issue_token_with_cli};
use support::whep_viewer::WhepViewer;

/// Every record, from the rotated files and the live one.
fn records(gateway: &GatewayUnderTest) -> Vec<AuditRecord> {
    let live = AuditLog::path_in(gateway.state_dir());
    let mut files: Vec<PathBuf> = rotated_files(live.parent().unwrap())
        .unwrap()
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    files.push(live);
    files
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<AuditRecord>>()
        })
        .collect()
}

/// A configuration for `straja` commands on the gateway's state directory, with `extra` TOML.
fn cli_config(gateway: &GatewayUnderTest, extra: &str) -> PathBuf {
    let config = gateway.state_dir().join("verify.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:1\"\n{extra}",
            gateway.state_dir().display()
        ),
    )
    .unwrap();
    config
}

fn audit_verify(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_straja"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_and_refusals_are_recorded_in_a_verifiable_chain() {
    let gateway = GatewayUnderTest::start(&GATE_AND_YARD).await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    // Granted, then ended by DELETE.
    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "gate").await;
    let started = records(&gateway);
    let start = started
        .iter()
        .find(|r| r.action == Action::ViewStart)
        .expect("the view is on record before the answer arrives");
    assert_eq!(start.actor, "test-security");
    assert_eq!(start.role, Some(Role::Security));
    assert_eq!(start.outcome, Outcome::Allowed);
    assert!(
        start.resource.starts_with("camera:gate session:"),
        "{start:?}"
    );
    assert!(
        start
            .source
            .as_deref()
            .is_some_and(|s| s.starts_with("127.0.0.1:")),
        "{start:?}"
    );
    gateway
        .client
        .delete(&viewer.session_url)
        .send()
        .await
        .unwrap();
    viewer.close().await;

    // Refused: a camera outside the token, and no token at all.
    let staff = gateway.client_with(Some(&gateway.token("eve", Role::Security, &["gate"])));
    let response = gateway.post_offer(&staff, "yard", "v=0\r\n").await;
    assert_eq!(response.status(), 403);
    let response = gateway
        .anonymous
        .get(gateway.url("/api/v1/cameras"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let deadline = Instant::now() + Duration::from_secs(5);
    while !records(&gateway)
        .iter()
        .any(|r| r.action == Action::ViewStop)
    {
        assert!(Instant::now() < deadline, "no view.stop recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = records(&gateway);
    let denied: Vec<&AuditRecord> = all
        .iter()
        .filter(|r| r.action == Action::AccessDenied)
        .collect();
    assert!(
        denied.iter().any(|r| r.actor == "eve"
            && r.resource == "camera:yard"
            && r.outcome == Outcome::Denied),
        "{denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|r| r.actor == "anonymous" && r.resource == "route:GET /api/v1/cameras"),
        "{denied:?}"
    );

    // The CLI verifies the chain, then finds the altered record.
    let config = cli_config(&gateway, "");
    let verify = || audit_verify(&config);
    let output = verify();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("in 1 file, chain intact"));

    let path = AuditLog::path_in(gateway.state_dir());
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("\"actor\":\"eve\"", "\"actor\":\"bob\"", 1),
    )
    .unwrap();
    let output = verify();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("altered"), "{stderr}");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_files_verify_as_one_chain_until_one_is_removed() {
    const ROTATE: &str = "[audit]\nrotate_bytes = 4096\n";
    let gateway = GatewayUnderTest::start_with(&[], ROTATE).await;
    let config = cli_config(&gateway, ROTATE);

    // `straja token issue` (another process, same rotation size) appends while the daemon records
    // refusals.
    let cli = std::thread::spawn({
        let config = config.clone();
        move || {
            for _ in 0..8 {
                issue_token_with_cli(&config, &["--role", "ops"]);
            }
        }
    });
    for _ in 0..40 {
        let response = gateway
            .anonymous
            .get(gateway.url("/api/v1/cameras"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    cli.join().unwrap();

    // TLS reloads are on record: one that works, one that fails (and keeps the certificate).
    gateway.running.reload_tls().expect("reload");
    let certificate = gateway.state_dir().join("certs").join("server.crt");
    let good = std::fs::read(&certificate).unwrap();
    std::fs::write(&certificate, "not a certificate").unwrap();
    assert!(gateway.running.reload_tls().is_err());
    std::fs::write(&certificate, good).unwrap();
    let reloads: Vec<AuditRecord> = records(&gateway)
        .into_iter()
        .filter(|r| r.action == Action::ConfigReload)
        .collect();
    assert!(
        reloads.len() >= 2
            && reloads
                .iter()
                .all(|r| r.actor == "system" && r.resource == "tls" && r.role.is_none()),
        "{reloads:?}"
    );
    assert_eq!(reloads[0].outcome, Outcome::Allowed);
    assert_eq!(reloads[1].outcome, Outcome::Denied);

    let audit_dir = AuditLog::path_in(gateway.state_dir())
        .parent()
        .unwrap()
        .to_owned();
    let rotated = rotated_files(&audit_dir).unwrap();
    assert!(rotated.len() >= 3, "{rotated:?}");
    let all = records(&gateway);
    assert!(all.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1));
    let issued = all
        .iter()
        .filter(|r| r.action == Action::TokenIssue)
        .count();
    assert_eq!(issued, 8);

    let output = audit_verify(&config);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("in {} files, chain intact", rotated.len() + 1)),
        "{stdout}"
    );

    // A rotated file removed from the middle: named as a gap where the next file starts.
    std::fs::remove_file(&rotated[1].1).unwrap();
    let output = audit_verify(&config);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let next = rotated[2].1.to_str().unwrap();
    assert!(stderr.contains(&format!("{next} line 1")), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    gateway.shutdown().await;
}
