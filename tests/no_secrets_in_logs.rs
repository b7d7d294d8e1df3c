//! Nothing sensitive reaches the daemon's logs: not access tokens (good or bad), not a camera's
//! password, not a client's address (which belongs in the audit log only). The daemon runs as
//! operators run it, at debug level for Straja's own code, against a password-protected camera,
//! with real requests and a real viewer; then its whole log is scanned.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use straja_gateway::audit::{Action, AuditLog, AuditRecord};
use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::gateway_under_test::{base_url_from_banner, https_client, issue_token_with_cli};
use support::whep_viewer::WhepViewer;

const CAMERA_PASSWORD: &str = "Sup3r-Secret-Cam-Pw";
const USER_NAME: &str = "dr.nadia.example";
const USER_PASSWORD: &str = "Nadia's own passphrase 42";
const WRONG_PASSWORD: &str = "Nadia's mistyped passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_passwords_and_client_addresses_stay_out_of_the_logs() {
    let camera = FakeRtspCamera::start(FakeCameraOptions {
        width: 320,
        height: 240,
        credentials: Some(("viewer".into(), CAMERA_PASSWORD.into())),
        ..Default::default()
    })
    .expect("fake camera");
    let url = camera
        .url()
        .replace("rtsp://", &format!("rtsp://viewer:{CAMERA_PASSWORD}@"));
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    straja_gateway::tls::init_dev_certificates(&certs).unwrap();
    let config = dir.path().join("straja.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{c}/server.crt\"\ntls_key = \"{c}/server.key\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\
             [[cameras]]\nid = \"gate\"\nname = \"Gate\"\nsource = \"{url}\"\n",
            state.display(),
            c = certs.display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("straja.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_straja"))
        .args(["run", "--config"])
        .arg(&config)
        .env(
            "STRAJA_LOG",
            "info,straja_gateway=debug,straja_pipelines=debug",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let base_url = base_url_from_banner(daemon.stdout.as_mut().expect("stdout"));

    let issue = |args: &[&str]| issue_token_with_cli(&config, args);
    let security = issue(&["--role", "security", "--camera", "gate"]);
    let ops = issue(&["--role", "ops"]);
    let ca = certs.join("ca.crt");
    let ops_client = https_client(&ca, Some(&ops));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ops_client
        .get(format!("{base_url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "camera never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forged = format!("{}x", &security[..security.len() - 1]);
    let response = https_client(&ca, Some(&forged))
        .get(format!("{base_url}/api/v1/cameras"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A local user signs in, after a wrong password, and out.
    let add = {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_straja"))
            .args([
                "user",
                "add",
                USER_NAME,
                "--role",
                "ops",
                "--password-stdin",
                "--config",
            ])
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{USER_PASSWORD}").unwrap();
        child.wait().unwrap()
    };
    assert!(add.success());
    let anonymous = https_client(&ca, None);
    for (password, status) in [(WRONG_PASSWORD, 401), (USER_PASSWORD, 200)] {
        let response = anonymous
            .post(format!("{base_url}/api/v1/login"))
            .json(&serde_json::json!({"user": USER_NAME, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    let viewer = WhepViewer::connect(&https_client(&ca, Some(&security)), &base_url, "gate").await;
    let reception = viewer.wait_for_frames(5, Duration::from_secs(10)).await;
    assert!(reception.complete_frames >= 5, "{reception:?}");
    viewer.close().await;

    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    camera.stop();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("viewer session started"),
        "the log is real:\n{log}"
    );
    let client_address = std::fs::read_to_string(AuditLog::path_in(&state))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap())
        .find(|r| r.action == Action::ViewStart)
        .and_then(|r| r.source)
        .expect("the viewer's address is in the audit log");
    for (what, secret) in [
        ("the security token", security.as_str()),
        ("the ops token", ops.as_str()),
        ("the forged token", forged.as_str()),
        ("the camera password", CAMERA_PASSWORD),
        ("a user's password", USER_PASSWORD),
        ("a mistyped password", WRONG_PASSWORD),
        ("a user's name", USER_NAME),
        ("the client's address", client_address.as_str()),
    ] {
        assert!(!log.contains(secret), "{what} is in the log:\n{log}");
    }
    // A token's signature part alone must not leak either (e.g. a truncated token in an error).
    let signature = security.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token signature is in the log");
}
