//! Stopping the real `straja` binary as systemd does (SIGTERM, `TimeoutStopSec=` from the unit):
//!
//! - SIGTERM while two cameras record and a viewer watches: the daemon exits 0 well within the
//!   unit's stop timeout; the viewer's session is closed by the gateway (its DTLS transport gets
//!   close_notify); no segment is left half
//!   written (no `.part` file), every segment is complete (its end record is there) and plays in
//!   ffprobe, the one that was being written included; and the next start finds nothing to
//!   recover. Prints the stop time.
//! - A second SIGTERM while the graceful stop waits (on a client that sent half a request) forces
//!   the exit at once, with status 130.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::gateway_process::{GatewayProcess, ProcessOptions};
use support::recordings::{decrypt, probe_segment, segment_files, wait_until};
use support::whep_viewer::WhepViewer;

const CAMERAS: &str = r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=320&height=240&fps=30&gop=30&bitrate=500"
record = true
record_segment_seconds = 2

[[cameras]]
id = "yard"
name = "Yard"
source = "test://snow?width=160&height=120&fps=15&gop=15&bitrate=300"
record = true
record_segment_seconds = 60
"#;

/// `TimeoutStopSec=` of the shipped unit.
fn unit_stop_timeout() -> Duration {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/straja.service"),
    )
    .expect("systemd/straja.service");
    let seconds = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec= in the unit")
        .trim()
        .trim_end_matches('s');
    Duration::from_secs(seconds.parse().expect("TimeoutStopSec in seconds"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_recording_exits_0_and_leaves_only_playable_segments() {
    let stop_timeout = unit_stop_timeout();
    let mut gateway = GatewayProcess::start_with(
        CAMERAS,
        ProcessOptions {
            capture_stderr: true,
            ..ProcessOptions::default()
        },
    );
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    let state = gateway.state_dir();
    let gate_dir = state.join("recordings").join("gate");
    let yard_dir = state.join("recordings").join("yard");
    let viewer = WhepViewer::connect(
        &gateway.client(&gateway.token(&["--role", "security", "--camera", "gate"])),
        &gateway.base_url,
        "gate",
    )
    .await;
    assert!(
        viewer
            .wait_for_frames(30, Duration::from_secs(10))
            .await
            .complete_frames
            >= 30
    );
    // gate: two segments finished and one being written; yard: its first (long) segment open.
    assert!(
        wait_until(Duration::from_secs(30), || segment_files(&gate_dir).0.len()
            >= 2
            && segment_files(&gate_dir).1.len() == 1
            && segment_files(&yard_dir).1.len() == 1),
        "recording: gate {:?}, yard {:?}",
        segment_files(&gate_dir),
        segment_files(&yard_dir)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let asked = Instant::now();
    gateway.terminate();
    let status = gateway
        .wait_exit(stop_timeout)
        .unwrap_or_else(|| panic!("still running {stop_timeout:?} after SIGTERM"));
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");

    // The gateway ended the viewer's session: its DTLS transport is closed (close_notify), not
    // left for ICE to notice the silence.
    let dtls = viewer.dtls_state().await;
    assert_eq!(
        dtls.as_deref(),
        Some("closed"),
        "the viewer's session was not closed by the gateway"
    );
    let probes = tempfile::tempdir().expect("temp dir");
    for (camera, dir, min_segments) in [("gate", &gate_dir, 3), ("yard", &yard_dir, 1)] {
        let (finished, parts) = segment_files(dir);
        assert!(
            parts.is_empty(),
            "{camera}: half-written segments: {parts:?}"
        );
        assert!(
            finished.len() >= min_segments,
            "{camera}: {finished:?} (the open segment is finished too)"
        );
        for segment in &finished {
            let (_, complete) = decrypt(&state, camera, segment);
            assert!(complete, "{}: no end record", segment.display());
            let probe = probe_segment(&state, camera, segment, probes.path());
            assert_eq!(probe.codec, "h264", "{}", segment.display());
            assert!(probe.frames >= 10, "{}: {probe:?}", segment.display());
        }
    }
    let log = gateway.stderr_log();
    assert!(!log.contains("panicked"), "{log}");

    // The next start has nothing to recover.
    gateway.restart();
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    let log = gateway.stderr_log();
    assert!(!log.contains("recovered a segment"), "{log}");
    println!(
        "graceful stop: SIGTERM to exit 0 in {} ms (unit allows {} s), 2 cameras recording, 1 viewer",
        took.as_millis(),
        stop_timeout.as_secs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_forces_the_exit() {
    let mut gateway = GatewayProcess::start_with(
        &CAMERAS.replace("record = true", "record = false"),
        ProcessOptions {
            capture_stderr: true,
            ..ProcessOptions::default()
        },
    );
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    // A client that sends half a request: the graceful stop waits for it (up to its bound).
    let address = gateway
        .base_url
        .strip_prefix("https://")
        .expect("https URL")
        .to_owned();
    let tcp = std::net::TcpStream::connect(&address).expect("connect");
    let mut tls = tls_client(&gateway, tcp);
    tls.write_all(
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"user\": ",
    )
    .expect("half a request");
    tls.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));

    gateway.terminate();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        gateway.wait_exit(Duration::ZERO).is_none(),
        "the graceful stop did not wait for the open request: the test proves nothing"
    );
    let asked = Instant::now();
    gateway.terminate();
    let status = gateway
        .wait_exit(Duration::from_secs(5))
        .expect("exited after the second SIGTERM");
    assert_eq!(status.code(), Some(130), "{}", gateway.stderr_log());
    assert!(
        gateway.stderr_log().contains("second signal"),
        "{}",
        gateway.stderr_log()
    );
    println!(
        "second SIGTERM: exit 130 in {} ms",
        asked.elapsed().as_millis()
    );
}

/// A TLS stream over `tcp` that trusts the gateway's CA.
fn tls_client(
    gateway: &GatewayProcess,
    tcp: std::net::TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let connection = rustls::ClientConnection::new(
        support::tls_client::trusting(&gateway.ca_cert),
        support::tls_client::loopback(),
    )
    .expect("TLS client");
    rustls::StreamOwned::new(connection, tcp)
}
