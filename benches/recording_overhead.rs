//! What recording costs: the release `straja` binary in its own process ingesting the reference
//! RTSP camera (720p30, GOP 1 s, a noise picture so that it really sends 2 Mbit/s) N times, first without and then with `record = true`;
//! the difference in CPU is what the recorders cost (muxing to fragmented MP4, AES-256-GCM,
//! writes and a sync a second), per recorded camera. Also reports what was written per second.
//!
//! `cargo bench --bench recording_overhead` (`-- --quick`: 2 cameras, 5 s windows).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use straja_pipelines::FakeRtspCamera;
use support::gateway_process::GatewayProcess;

/// The gateway's CPU (share of one core) and the bytes its recordings grew by, over `window`.
/// Also the RSS (MiB) at the end, and the RTP bytes per second one camera delivered.
async fn measure(
    cameras: usize,
    record: bool,
    url: &str,
    window: Duration,
) -> (f64, f64, f64, f64) {
    let mut toml = String::new();
    for i in 0..cameras {
        toml.push_str(&format!(
            "[[cameras]]\nid = \"cam-{i}\"\nname = \"Camera {i}\"\nsource = \"{url}\"\n\
             record = {record}\nrecord_segment_seconds = 60\n"
        ));
    }
    let daemon = GatewayProcess::start(&toml, None);
    daemon.wait_until_ready(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // segments started, caches warm
    let dir = daemon.state_dir().join("recordings");
    let written = || {
        (0..cameras)
            .map(|i| {
                std::fs::read_dir(dir.join(format!("cam-{i}")))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>()
            })
            .sum::<u64>()
    };
    let ingest = || {
        daemon
            .metric(r#"straja_ingest_bytes_total{camera="cam-0"}"#)
            .unwrap_or(0.0)
    };
    let (cpu_start, bytes_start, ingest_start, started) =
        (daemon.cpu_seconds(), written(), ingest(), Instant::now());
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (daemon.cpu_seconds() - cpu_start) / elapsed;
    let bytes = (written() - bytes_start) as f64 / elapsed;
    let ingest = (ingest() - ingest_start) / elapsed;
    (cpu, bytes, daemon.rss_mib(), ingest)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (cameras, window) = if quick {
        (2, Duration::from_secs(5))
    } else {
        (4, Duration::from_secs(20))
    };
    // The reference camera, with a picture that does not compress (snow), so that it really
    // sends its 2 Mbit/s.
    let camera = FakeRtspCamera::start(straja_pipelines::FakeCameraOptions {
        pattern: "snow",
        ..support::reference_camera::options()
    })
    .expect("fake RTSP camera");
    let url = camera.url();
    println!(
        "recording overhead: release binary, {cameras} × RTSP 720p30 2 Mbit/s GOP 1 s, {}-s windows",
        window.as_secs()
    );
    let (plain_cpu, _, plain_rss, _) = measure(cameras, false, &url, window).await;
    let (recording_cpu, bytes, recording_rss, ingest) = measure(cameras, true, &url, window).await;
    println!(
        "{:>10} {:>12} {:>9} {:>16}",
        "record", "CPU % core", "RSS MiB", "written kB/s"
    );
    println!(
        "{:>10} {:>12.1} {plain_rss:>9.1} {:>16}",
        "off",
        plain_cpu * 100.0,
        "-"
    );
    println!(
        "{:>10} {:>12.1} {recording_rss:>9.1} {:>16.1}",
        "on",
        recording_cpu * 100.0,
        bytes / 1000.0
    );
    println!(
        "recording costs {:.2} % of a core and {:.1} MiB per camera; each camera delivers \
         {:.0} kbit/s of RTP and writes {:.0} kbit/s to disk",
        (recording_cpu - plain_cpu) * 100.0 / cameras as f64,
        (recording_rss - plain_rss) / cameras as f64,
        ingest * 8.0 / 1000.0,
        bytes * 8.0 / 1000.0 / cameras as f64
    );
    camera.stop();
}
