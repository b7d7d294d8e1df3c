//! The walking skeleton end to end: a fake IP camera (gstreamer-rtsp-server, x264) → the gateway's
//! RTSP ingest pipeline → media hub → WHEP → an in-process webrtc-rs viewer, which must receive at
//! least 60 complete H.264 frames, the first being a keyframe. Then the session is deleted and
//! everything it held is released.

mod support;

use std::time::Duration;

use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_camera_reaches_a_webrtc_viewer_starting_with_a_keyframe() {
    let camera = FakeRtspCamera::start(FakeCameraOptions {
        gop_frames: 30,
        ..Default::default()
    })
    .expect("fake RTSP camera");
    let url = camera.url();
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "gate",
        source: &url,
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "gate").await;
    let reception = viewer.wait_for_frames(60, Duration::from_secs(20)).await;
    assert!(
        reception.complete_frames >= 60,
        "only {} complete frames ({} packets, {} broken, states {:?})",
        reception.complete_frames,
        reception.packets,
        reception.broken_frames,
        reception.states
    );
    assert_eq!(
        reception.first_frame_was_keyframe,
        Some(true),
        "the viewer must start at a keyframe"
    );
    let first_frame_ms = reception
        .first_frame_at
        .map(|t| t.duration_since(viewer.posted_at).as_millis());
    println!("in-process viewer: first complete frame {first_frame_ms:?} ms after the WHEP POST");

    let metrics = gateway.metrics_text().await;
    for series in [
        "straja_camera_up{camera=\"gate\"} 1",
        "straja_webrtc_sessions{kind=\"whep\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    assert!(
        !metrics.contains("straja_egress_packets_total{camera=\"gate\"} 0"),
        "egress must be counted"
    );

    let deleted = gateway
        .client
        .delete(&viewer.session_url)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), 200);
    let again = gateway
        .client
        .delete(&viewer.session_url)
        .send()
        .await
        .expect("DELETE again");
    assert_eq!(again.status(), 404, "a deleted session is gone");

    // The session's task ends and leaves the camera's feed.
    let feed = gateway
        .running
        .gateway()
        .camera("gate")
        .unwrap()
        .feed
        .clone();
    for _ in 0..100 {
        if feed.subscriber_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        feed.subscriber_count(),
        0,
        "the session released its subscription"
    );
    assert!(gateway.running.gateway().sessions.is_empty());

    viewer.close().await;
    gateway.shutdown().await;
    camera.stop();
}
