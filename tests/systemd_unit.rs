//! The shipped systemd files, checked with systemd's own tools (PID 1 here is not systemd, so the
//! unit is analysed, not started):
//!
//! - `systemd-analyze verify` finds nothing to say about `systemd/straja.service` (a copy whose
//!   `ExecStart=` names the binary under test, since /usr/bin/straja is not installed here);
//! - `systemd-analyze security --offline=yes` rates its sandbox 1.5 or better ("OK");
//! - `straja.sysusers` and `straja.tmpfiles` apply to an empty root with the modes they promise;
//! - the pipelines run with the unit's `ORC_CODE` under the kernel's W^X rule (`PR_SET_MDWE`, as
//!   the unit's `MemoryDenyWriteExecute=yes` would enforce): cameras play, a snapshot decodes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::gateway_process::{GatewayProcess, ProcessOptions};

fn systemd_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name)
}

fn unit_text() -> String {
    std::fs::read_to_string(systemd_file("straja.service")).expect("systemd/straja.service")
}

/// The unit, its `ExecStart=` pointing at the binary under test, in a temp dir.
fn unit_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = unit_text();
    assert!(text.contains("ExecStart=/usr/bin/straja run"), "{text}");
    let text = text.replace(
        "ExecStart=/usr/bin/straja",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_straja")),
    );
    let path = dir.path().join("straja.service");
    std::fs::write(&path, text).expect("unit copy");
    (dir, path)
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn systemd_analyze_verify_finds_nothing_to_say() {
    let (_dir, unit) = unit_copy();
    let (ok, text) = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    let remarks: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("straja.service"))
        .collect();
    assert!(remarks.is_empty(), "systemd-analyze verify:\n{text}");
}

/// The overall exposure from `systemd-analyze security` output.
fn exposure(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let (_, rest) = line.rsplit_once(':')?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn the_sandbox_is_rated_ok_at_most_1_5() {
    let (_dir, unit) = unit_copy();
    let (ok, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit));
    assert!(ok, "systemd-analyze security failed:\n{text}");
    let score = exposure(&text).unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    println!("systemd-analyze security --offline=yes: exposure {score:.1}");
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{text}");
}

#[test]
fn the_exposure_is_read_from_the_overall_line() {
    assert_eq!(
        exposure("x\n→ Overall exposure level for straja.service: 1.5 OK 🙂\n"),
        Some(1.5)
    );
    assert_eq!(exposure("nothing"), None);
}

#[test]
fn sysusers_and_tmpfiles_make_the_user_and_directories() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    let (ok, text) = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(systemd_file("straja.sysusers")));
    assert!(ok, "systemd-sysusers:\n{text}");
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("etc/group");
    assert!(group.lines().any(|l| l.starts_with("straja:")), "{group}");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("video:") && l.ends_with("straja")),
        "{group}"
    );
    let (ok, text) = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(systemd_file("straja.tmpfiles")));
    assert!(ok, "systemd-tmpfiles:\n{text}");
    use std::os::unix::fs::PermissionsExt;
    for (dir, mode) in [
        ("etc/straja", 0o750),
        ("etc/straja/tls", 0o750),
        ("etc/straja/credentials", 0o700),
    ] {
        let meta = std::fs::metadata(root.path().join(dir)).expect(dir);
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{dir}");
    }
}

/// The value the unit gives an environment variable (`Environment=NAME=VALUE`).
fn unit_environment(name: &str) -> Option<String> {
    unit_text().lines().find_map(|l| {
        l.strip_prefix("Environment=")?
            .strip_prefix(name)?
            .strip_prefix('=')
            .map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_run_under_write_xor_execute_with_the_units_orc_setting() {
    let orc = unit_environment("ORC_CODE").expect("the unit sets ORC_CODE");
    let gateway = GatewayProcess::start_with(
        r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=320&height=240&audio=opus"
"#,
        ProcessOptions {
            env: vec![("ORC_CODE".to_owned(), orc)],
            deny_write_execute: true,
            ..ProcessOptions::default()
        },
    );
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    // A snapshot decodes the camera's keyframe and converts it (avdec_h264, videoconvert, jpegenc).
    let client = gateway.client(&gateway.token(&["--role", "security", "--camera", "gate"]));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = client
            .get(format!(
                "{}/api/v1/cameras/gate/snapshot.jpg",
                gateway.base_url
            ))
            .send()
            .await
            .expect("snapshot request");
        if response.status() == 200 {
            let jpeg = response.bytes().await.expect("snapshot body");
            assert!(jpeg.starts_with(&[0xFF, 0xD8]), "a JPEG");
            break;
        }
        assert_eq!(
            response.status(),
            503,
            "only 'no picture yet' may come first"
        );
        assert!(Instant::now() < deadline, "no snapshot under W^X");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
