//! The gateway under load, as ops see it: the release `straja` binary in its own process, one
//! 720p30 2 Mbit/s RTSP camera (GOP 1 s), and N real WebRTC viewers (webrtc-rs, in this process,
//! decrypting SRTP). Reports the gateway's CPU (share of one core) and RSS for each N, and what the
//! viewers received. N = 0 is ingest alone (depay/re-pay in GStreamer), the baseline.
//!
//! `cargo bench --bench gateway_load` (`-- --quick`: N = 0 and 10, 5 s windows).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use straja_pipelines::FakeRtspCamera;
use support::gateway_under_test::{base_url_from_banner, https_client, issue_token_with_cli};
use support::whep_viewer::WhepViewer;

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat are utime and stime; after the name they are at 11 and 12.
    (field(11) + field(12)) / ticks
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (counts, window): (&[usize], Duration) = if quick {
        (&[0, 10], Duration::from_secs(5))
    } else {
        (&[0, 1, 10, 25, 50], Duration::from_secs(10))
    };
    let camera =
        FakeRtspCamera::start(support::reference_camera::options()).expect("fake RTSP camera");

    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    straja_gateway::tls::init_dev_certificates(&certs).expect("certs");
    let config = dir.path().join("straja.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{state}\"\n[http]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{c}/server.crt\"\ntls_key = \"{c}/server.key\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\
             [[cameras]]\nid = \"cam\"\nname = \"Camera\"\nsource = \"{url}\"\n",
            state = dir.path().join("state").display(),
            c = certs.display(),
            url = camera.url()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_straja"))
        .args(["run", "--config"])
        .arg(&config)
        .env("STRAJA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("straja binary");
    let stdout = child.stdout.take().expect("stdout");
    let daemon = Daemon(child);
    let pid = daemon.0.id();
    let base_url = base_url_from_banner(stdout);
    // Tokens as an operator gets them: from the CLI, signed with the daemon's key.
    let token = |args: &[&str]| issue_token_with_cli(&config, args);
    let security_token = token(&["--role", "security", "--camera", "cam"]);
    let ops_token = token(&["--role", "ops"]);
    let client = https_client(&certs.join("ca.crt"), Some(&security_token));
    let ops = https_client(&certs.join("ca.crt"), Some(&ops_token));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ops
        .get(format!("{base_url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "gateway not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ticks = clock_ticks_per_second();
    println!(
        "gateway load: release binary, 1 RTSP camera 720p30 2 Mbit/s GOP 1 s, {}-s windows",
        window.as_secs()
    );
    println!(
        "{:>7} {:>12} {:>16} {:>9} {:>16} {:>13}",
        "viewers", "CPU % core", "CPU ms/viewer·s", "RSS MiB", "frames/viewer·s", "broken frames"
    );
    let mut viewers: Vec<WhepViewer> = Vec::new();
    let mut baseline_cpu = None;
    for &count in counts {
        while viewers.len() < count {
            viewers.push(WhepViewer::connect(&client, &base_url, "cam").await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // connect and settle
        let before: Vec<_> = viewers.iter().map(|v| v.reception()).collect();
        let cpu_start = cpu_seconds(pid, ticks);
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let cpu = (cpu_seconds(pid, ticks) - cpu_start) / started.elapsed().as_secs_f64();
        let after: Vec<_> = viewers.iter().map(|v| v.reception()).collect();
        let frames: u64 = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.complete_frames - b.complete_frames)
            .sum();
        let broken: u64 = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.broken_frames - b.broken_frames)
            .sum();
        let baseline = *baseline_cpu.get_or_insert(cpu);
        let per_viewer = if count > 0 {
            format!("{:.2}", (cpu - baseline) * 1000.0 / count as f64)
        } else {
            "-".into()
        };
        let fps = if count > 0 {
            format!("{:.1}", frames as f64 / count as f64 / window.as_secs_f64())
        } else {
            "-".into()
        };
        println!(
            "{count:>7} {:>12.1} {per_viewer:>16} {:>9.1} {fps:>16} {broken:>13}",
            cpu * 100.0,
            rss_mib(pid)
        );
    }
    for viewer in viewers {
        viewer.close().await;
    }
    drop(daemon);
    camera.stop();
}
