//! The gateway under load, as ops see it: the release `straja` binary in its own process, one
//! 720p30 2 Mbit/s RTSP camera (GOP 1 s), and N real WebRTC viewers (webrtc-rs, in this process,
//! decrypting SRTP). Reports the gateway's CPU (share of one core) and RSS for each N, and what the
//! viewers received. N = 0 is ingest alone (depay/re-pay in GStreamer), the baseline.
//!
//! `cargo bench --bench gateway_load` (`-- --quick`: N = 0 and 10, 5 s windows).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use straja_pipelines::FakeRtspCamera;
use support::gateway_process::GatewayProcess;
use support::whep_viewer::WhepViewer;

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

    let daemon = GatewayProcess::start(
        &format!(
            "[[cameras]]\nid = \"cam\"\nname = \"Camera\"\nsource = \"{}\"\n",
            camera.url()
        ),
        None,
    );
    daemon.wait_until_ready(Duration::from_secs(20)).await;
    // Tokens as an operator gets them: from the CLI, signed with the daemon's key.
    let client = daemon.client(&daemon.token(&["--role", "security", "--camera", "cam"]));
    let base_url = daemon.base_url.clone();

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
        let cpu_start = daemon.cpu_seconds();
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let cpu = (daemon.cpu_seconds() - cpu_start) / started.elapsed().as_secs_f64();
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
            daemon.rss_mib()
        );
    }
    for viewer in viewers {
        viewer.close().await;
    }
    drop(daemon);
    camera.stop();
}
