//! The audit trail of real use: a view granted, a view refused, a view ended, each with who and
//! from where, chained and on disk; `straja audit verify` accepts the log, and names the record
//! once one is altered.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use straja_gateway::audit::{Action, AuditLog, AuditRecord, Outcome};
use straja_gateway::auth::Role;
use support::gateway_under_test::{GATE_AND_YARD, GatewayUnderTest};
use support::whep_viewer::WhepViewer;

fn records(gateway: &GatewayUnderTest) -> Vec<AuditRecord> {
    std::fs::read_to_string(AuditLog::path_in(gateway.state_dir()))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    let config = gateway.state_dir().join("verify.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
            gateway.state_dir().display()
        ),
    )
    .unwrap();
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_straja"))
            .args(["audit", "verify", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let output = verify();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("chain intact"));

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
