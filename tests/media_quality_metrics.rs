//! The quality figures ops watch, from real traffic on the real binary: a test camera at 30 fps
//! with a keyframe every second, a camera whose port refuses connections, and a webrtc-rs viewer
//! that sends RTCP receiver reports and a PLI. The scrape then shows the viewer's loss, jitter
//! and RTT histograms filled from its receiver reports, its keyframe request, the keyframes sent
//! to it and its time to first frame, the relay-latency histogram, the camera's frame rate and
//! keyframe interval, the refused camera's `connect` errors, a plain-HTTP request to the HTTPS
//! port as a TLS handshake failure, the certificate's expiry, audit write times and the process
//! collector's series. Prints the relay latency's mean and bucket counts.

mod support;

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::gateway_process::GatewayProcess;
use support::whep_viewer::WhepViewer;

fn cameras(dead_port: u16) -> String {
    format!(
        r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=320&height=240&fps=30&gop=30"

[[cameras]]
id = "dead"
name = "Dead"
source = "rtsp://127.0.0.1:{dead_port}/stream"
stall_seconds = 2
"#
    )
}

/// Waits (bounded) until `series` is at least `min`; returns its value.
async fn at_least(gateway: &GatewayProcess, series: &str, min: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = gateway.metric(series);
        if value.is_some_and(|v| v >= min) {
            return value.unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed at {value:?}, below {min}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_traffic_fills_the_quality_metrics() {
    // A port with nothing listening: the "dead" camera's connections are refused.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let gateway = GatewayProcess::start(&cameras(dead_port), None);
    let client = gateway.client(&gateway.token(&["--role", "security", "--camera", "gate"]));
    let viewer = WhepViewer::connect(&client, &gateway.base_url, "gate").await;
    assert!(
        viewer
            .wait_for_frames(60, Duration::from_secs(15))
            .await
            .complete_frames
            >= 60
    );
    viewer.send_pli().await;

    let gate = |name: &str| format!("{name}{{camera=\"gate\"}}");
    let video = |name: &str| format!("{name}{{camera=\"gate\",kind=\"video\"}}");
    // Receiver reports (webrtc-rs sends one every second or so).
    let reports = at_least(
        &gateway,
        &video("straja_viewer_packet_loss_ratio_count"),
        2.0,
    )
    .await;
    at_least(&gateway, &video("straja_viewer_jitter_seconds_count"), 2.0).await;
    at_least(&gateway, &video("straja_viewer_rtt_seconds_count"), 1.0).await;
    let rtt_sum = gateway
        .metric(&video("straja_viewer_rtt_seconds_sum"))
        .unwrap_or_default();
    let rtt_count = gateway
        .metric(&video("straja_viewer_rtt_seconds_count"))
        .unwrap_or(1.0);
    assert!(
        rtt_sum / rtt_count < 0.5,
        "loopback RTT averages {} s",
        rtt_sum / rtt_count
    );
    let loss_sum = gateway
        .metric(&video("straja_viewer_packet_loss_ratio_sum"))
        .unwrap_or(1.0);
    assert!(
        loss_sum / reports < 0.05,
        "loopback loss {}",
        loss_sum / reports
    );
    at_least(
        &gateway,
        &gate("straja_viewer_keyframe_requests_total"),
        1.0,
    )
    .await;
    at_least(&gateway, &gate("straja_keyframes_sent_total"), 2.0).await;
    assert_eq!(
        gateway.metric(&gate("straja_time_to_first_frame_seconds_count")),
        Some(1.0),
        "one viewer, one first frame"
    );
    let ttff = gateway
        .metric(&gate("straja_time_to_first_frame_seconds_sum"))
        .unwrap_or(99.0);
    assert!(ttff < 5.0, "time to first frame {ttff} s");

    // The relay's own latency.
    let copies = at_least(&gateway, "straja_relay_latency_seconds_count", 60.0).await;
    let latency_sum = gateway
        .metric("straja_relay_latency_seconds_sum")
        .unwrap_or(f64::MAX);
    let mean = latency_sum / copies;
    assert!(mean < 0.1, "mean relay latency {mean} s");
    let under_1ms = gateway
        .metric("straja_relay_latency_seconds_bucket{le=\"0.001\"}")
        .unwrap_or_default();
    println!(
        "relay latency: {copies} copies, mean {:.0} µs, {:.1} % within 1 ms; {reports} receiver \
         reports, time to first frame {:.0} ms",
        mean * 1e6,
        100.0 * under_1ms / copies,
        ttff * 1e3
    );

    // The camera's own rhythm: 30 fps, a keyframe every 30 frames.
    let fps = gateway
        .metric(&gate("straja_camera_frame_rate"))
        .unwrap_or_default();
    assert!((20.0..=40.0).contains(&fps), "frame rate {fps}");
    let interval = gateway
        .metric(&gate("straja_camera_keyframe_interval_seconds"))
        .unwrap_or_default();
    assert!(
        (0.5..=1.5).contains(&interval),
        "keyframe interval {interval}"
    );

    // The refused camera: connect errors, nothing else.
    at_least(
        &gateway,
        "straja_pipeline_errors_total{camera=\"dead\",reason=\"connect\"}",
        1.0,
    )
    .await;
    assert_eq!(
        gateway.metric("straja_pipeline_errors_total{camera=\"gate\",reason=\"connect\"}"),
        Some(0.0)
    );

    // Plain HTTP to the HTTPS port is a failed handshake.
    let before = gateway
        .metric("straja_tls_handshake_failures_total{reason=\"protocol\"}")
        .unwrap_or_default();
    let address = gateway.base_url.trim_start_matches("https://").to_owned();
    let mut plain = std::net::TcpStream::connect(&address).expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = std::io::Read::read(&mut plain, &mut [0u8; 64]);
    drop(plain);
    at_least(
        &gateway,
        "straja_tls_handshake_failures_total{reason=\"protocol\"}",
        before + 1.0,
    )
    .await;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let expiry = gateway
        .metric("straja_tls_certificate_expiry_timestamp_seconds")
        .unwrap_or_default();
    assert!(
        expiry > now + 86_400.0,
        "the test certificate expires at {expiry}"
    );
    at_least(&gateway, "straja_audit_write_seconds_count", 1.0).await;
    assert_eq!(
        gateway.metric("straja_audit_write_failures_total"),
        Some(0.0)
    );
    // The process collector counts CPU in whole seconds: only its presence is checked.
    assert!(gateway.metric("process_cpu_seconds_total").is_some());
    for series in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(
            gateway.metric(series).is_some_and(|v| v > 0.0),
            "{series} is missing or 0"
        );
    }
}
