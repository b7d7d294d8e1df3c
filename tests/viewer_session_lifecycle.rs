//! A viewer session's life beyond the happy path: a viewer's keyframe request (RTCP PLI) reaches
//! the camera's encoder, and a viewer that disappears without a DELETE is noticed and cleaned up.

mod support;

use std::time::{Duration, Instant};

use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

async fn pattern_gateway() -> GatewayUnderTest {
    // A long GOP (10 s), so a keyframe within the test can only come from a request.
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "ward",
        source: "test://ball?width=320&height=240&gop=300",
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    gateway
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_pli_makes_the_camera_send_a_keyframe() {
    let gateway = pattern_gateway().await;
    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "ward").await;
    let reception = viewer.wait_for_frames(5, Duration::from_secs(10)).await;
    assert!(reception.complete_frames >= 5, "{reception:?}");
    assert_eq!(reception.first_frame_was_keyframe, Some(true));
    let feed = gateway
        .running
        .gateway()
        .camera("ward")
        .unwrap()
        .feed
        .clone();
    let requests_before = feed.metrics().keyframe_requests.get();
    let keyframes_before = viewer.reception().keyframes;

    // Past the merge window of the join's own request, then ask.
    tokio::time::sleep(Duration::from_millis(400)).await;
    viewer.send_pli().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while viewer.reception().keyframes == keyframes_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        feed.metrics().keyframe_requests.get() > requests_before,
        "the PLI did not become a keyframe request"
    );
    assert!(
        viewer.reception().keyframes > keyframes_before,
        "no keyframe arrived after the PLI (GOP is 10 s)"
    );
    viewer.close().await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_vanishes_is_cleaned_up() {
    let gateway = pattern_gateway().await;
    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "ward").await;
    let reception = viewer.wait_for_frames(5, Duration::from_secs(10)).await;
    assert!(reception.complete_frames >= 5, "{reception:?}");
    let state = gateway.running.gateway().clone();
    assert_eq!(state.sessions.len(), 1);

    viewer.close().await; // no DELETE: the browser tab was closed or the network went away
    let deadline = Instant::now() + Duration::from_secs(20);
    while !state.sessions.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        state.sessions.is_empty(),
        "the vanished viewer's session is still open"
    );
    assert_eq!(state.camera("ward").unwrap().feed.subscriber_count(), 0);
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics.contains("straja_webrtc_sessions{kind=\"whep\"} 0"),
        "{metrics}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_at_its_session_cap_answers_503_with_retry_after() {
    let gateway = GatewayUnderTest::start_with(
        &[TestCamera {
            id: "ward",
            source: "test://ball?width=160&height=120",
            settings: "",
        }],
        "[limits]\nmax_sessions_per_camera = 1\n",
    )
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let first = WhepViewer::connect(&gateway.client, &gateway.base_url, "ward").await;
    let second = gateway.post_offer(&gateway.client, "ward", "v=0\r\n").await;
    assert_eq!(second.status(), 503);
    assert_eq!(
        second.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    // Room again once the first viewer leaves.
    gateway
        .client
        .delete(&first.session_url)
        .send()
        .await
        .unwrap();
    first.close().await;
    let again = WhepViewer::connect(&gateway.client, &gateway.base_url, "ward").await;
    again.close().await;
    gateway.shutdown().await;
}
