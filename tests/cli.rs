//! The `straja` binary as operators use it: `check-config` lists every problem and exits 2,
//! `certs init` writes usable TLS material and never overwrites it, and `run` serves over HTTPS,
//! passes `promtool check metrics`, and exits 0 on SIGTERM after closing down.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn straja() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_straja"));
    command.stdin(Stdio::null());
    command
}

#[test]
fn check_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
state_dir = "/tmp/straja-test"
[http]
listen = "127.0.0.1:8443"
tls_cert = "/etc/straja/tls/server.crt"
[[cameras]]
id = "Gate 1"
name = "Gate"
source = "rtsp://admin:hunter2@10.1.2.3/stream"
[[cameras]]
id = "yard"
name = "Yard"
source = "ftp://somewhere"
"#,
    )
    .unwrap();
    let output = straja().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for field in ["http.tls_key", "cameras[0].id", "cameras[1].source"] {
        assert!(stderr.contains(field), "{field} not reported:\n{stderr}");
    }
    assert!(!stderr.contains("hunter2"), "credentials leaked:\n{stderr}");

    std::fs::write(
        &path,
        "state_dir = \"/x\"\n[http]\nlisten = \"127.0.0.1:1\"\nlisten_typo = 1\n",
    )
    .unwrap();
    let output = straja().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen_typo"));

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "state_dir = \"/x\"\n[http]\nlisten = \"127.0.0.1:1\"\n[[cameras]]\nid = \"a\"\nname = \"A\"\nsource = \"test://ball\"\n",
    )
    .unwrap();
    let output = straja().arg("check-config").arg(&good).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    let output = straja()
        .arg("check-config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn certs_init_writes_a_ca_server_and_client_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let status = straja().args(["certs", "init"]).arg(&out).status().unwrap();
    assert!(status.success());
    for file in [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let second = straja().args(["certs", "init"]).arg(&out).output().unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("refusing to overwrite"));
}

/// A plain HTTP/1.0 GET of `http://host:port/path`, returning the body.
fn http_get(url: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path in URL");
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// Kills the child on drop, so a failing assertion never leaves a daemon running.
struct Daemon(std::process::Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_serves_valid_metrics_reloads_on_sighup_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("straja.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n[[cameras]]\nid = \"pattern\"\nname = \"Pattern\"\nsource = \"test://ball?width=320&height=240\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = straja()
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut daemon = Daemon(child);

    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("Straja is serving: https://127.0.0.1:"),
        "{line}"
    );
    let metrics_url = line
        .split("metrics: ")
        .nth(1)
        .and_then(|s| s.strip_suffix(")\n"))
        .expect("metrics URL in the banner")
        .to_owned();
    // The self-signed certificate was generated into the state dir.
    assert!(dir.path().join("state/tls/self-signed.crt").exists());

    // Wait (bounded) for the camera to be up, then check the exposition with promtool.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = http_get(&metrics_url).unwrap_or_default();
        if text.contains("straja_camera_up{camera=\"pattern\"} 1") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        text.contains("straja_camera_up{camera=\"pattern\"} 1"),
        "{text}"
    );
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (installed by scripts/setup.sh --test)");
    let mut promtool_stdin = promtool.stdin.as_ref().unwrap();
    std::io::Write::write_all(&mut promtool_stdin, text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let pid = daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/straja.example.toml");
    let output = straja().args(["check-config", example]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn token_issue_signs_with_the_daemons_key_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("straja.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:1\"\n[[cameras]]\nid = \"gate\"\nname = \"Gate\"\nsource = \"test://ball\"\n",
            state.display()
        ),
    )
    .unwrap();
    let issue = |args: &[&str]| {
        straja()
            .args(["token", "issue", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let output = issue(&["--role", "security", "--camera", "gate", "--ttl", "8h"]);
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let authority = straja_gateway::auth::TokenAuthority::load_or_create(&state).unwrap();
    let claims = authority
        .verify(&token)
        .expect("the daemon's key accepts it");
    assert_eq!(claims.cameras, ["gate"]);
    assert_eq!(claims.exp - claims.iat, 8 * 3600);
    let audit = std::fs::read_to_string(state.join("audit/audit.log")).unwrap();
    assert!(
        audit.contains("\"token.issue\"") && audit.contains(&claims.jti),
        "the issue is on record: {audit}"
    );
    assert!(
        !audit.contains(&token),
        "the token itself is never recorded"
    );

    for (args, says) in [
        (&["--role", "security"][..], "at least one --camera"),
        (
            &["--role", "security", "--camera", "nope"][..],
            "no camera 'nope'",
        ),
        (&["--role", "ops", "--ttl", "2d"][..], "lifetime"),
        (
            &["--role", "ops", "--camera", "gate"][..],
            "security role only",
        ),
        (&["--role", "admin"][..], "unknown role"),
        (&["--role", "ops", "--ttl", "5x"][..], "unknown unit"),
    ] {
        let output = issue(args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
