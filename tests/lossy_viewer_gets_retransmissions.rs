//! A viewer on a lossy link gets the packets it lost again (RFC 4585 NACK, answered by the
//! gateway's own viewer stack from its history, byte for byte under the same SRTP nonce): an
//! RTSP camera, the gateway, and a real webrtc-rs viewer (its own ICE, DTLS, SRTP and NACK
//! generator) behind a UDP relay on loopback that loses 5 % of the datagrams each way and delays
//! the rest by 15 ms. Almost every hole the losses leave is filled; the gateway counts its
//! retransmissions. Then the same through `viewer_stack = "webrtc-rs"` (rtc's peer connection
//! with its NACK responder): the fallback stack still serves a viewer end to end.

mod support;

use std::time::Duration;

use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::lossy_link::LossyLink;
use support::whep_viewer::WhepViewer;

const LOSS_PERCENT: u32 = 5;
const DELAY: Duration = Duration::from_millis(15);
/// Frames watched over the lossy link.
const FRAMES: u64 = 150;
/// Newest packets left out of the count: their retransmissions may still be on the way.
const TAIL: i64 = 40;

/// Offers, routes the answer through `link` when given, and returns the connected viewer.
async fn watch(
    gateway: &GatewayUnderTest,
    camera: &str,
    lossy: bool,
) -> (WhepViewer, Option<LossyLink>) {
    let (mut viewer, offer) = WhepViewer::prepare(false, false).await;
    let response = gateway
        .client
        .post(format!("{}/api/v1/cameras/{camera}/whep", gateway.base_url))
        .header("Content-Type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("WHEP POST");
    assert_eq!(response.status(), 201, "WHEP offer refused");
    let answer = response.text().await.expect("answer");
    if !lossy {
        viewer.accept(answer).await;
        return (viewer, None);
    }
    let link = LossyLink::start(LossyLink::gateway_candidate(&answer), LOSS_PERCENT, DELAY).await;
    viewer.accept(link.route_answer(&answer)).await;
    (viewer, Some(link))
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_a_lossy_link_gets_its_lost_packets_again() {
    // A picture that does not compress: several packets a frame, hundreds to count.
    let camera = FakeRtspCamera::start(FakeCameraOptions {
        gop_frames: 30,
        pattern: "snow",
        bitrate_kbps: 800,
        ..Default::default()
    })
    .expect("fake RTSP camera");
    let url = camera.url();
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "lossy",
        source: &url,
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    let (viewer, link) = watch(&gateway, "lossy", true).await;
    let link = link.expect("the lossy link");
    let reception = viewer
        .wait_for_frames(FRAMES, Duration::from_secs(30))
        .await;
    // Let the last retransmissions arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reception_after = viewer.reception();
    let (missing, span) = reception_after.missing_sequences(TAIL);
    let lost = link
        .counts
        .down_lost
        .load(std::sync::atomic::Ordering::Relaxed);
    let metrics = gateway.metrics_text().await;
    let retransmits = metric(
        &metrics,
        "straja_viewer_retransmits_total{camera=\"lossy\"}",
    );
    let nacks = metric(
        &metrics,
        "straja_viewer_nacks_total{camera=\"lossy\",kind=\"video\"}",
    );
    println!(
        "lossy link: {lost} datagrams lost on the way down; {span} video packets in the span, \
         {missing} never arrived; {nacks} NACKs, {retransmits} retransmissions; \
         {} complete and {} broken frames",
        reception.complete_frames, reception.broken_frames
    );
    assert!(
        reception.complete_frames >= FRAMES,
        "only {} complete frames over the lossy link",
        reception.complete_frames
    );
    assert!(lost > 10, "the link must have lost packets ({lost})");
    assert!(nacks > 0.0, "the viewer's NACKs must reach the gateway");
    assert!(
        retransmits > 0.0,
        "the gateway must have sent lost packets again"
    );
    // Without retransmission about 5 % of the span would be missing; with it, a lost
    // retransmission (5 % of those) or one past the history leaves a hole now and then.
    assert!(span > 300, "too few packets to judge ({span})");
    assert!(
        missing * 100 <= span,
        "{missing} of {span} packets never arrived: NACKs were not answered"
    );
    viewer.close().await;
    drop(link);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webrtc_rs_viewer_stack_still_serves_viewers() {
    let camera = FakeRtspCamera::start(FakeCameraOptions {
        gop_frames: 30,
        ..Default::default()
    })
    .expect("fake RTSP camera");
    let url = camera.url();
    // `extra` follows the `[webrtc]` table's keys.
    let gateway = GatewayUnderTest::start_with(
        &[TestCamera {
            id: "fallback",
            source: &url,
            settings: "",
        }],
        "viewer_stack = \"webrtc-rs\"\n",
    )
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let (viewer, _) = watch(&gateway, "fallback", false).await;
    let reception = viewer.wait_for_frames(60, Duration::from_secs(20)).await;
    assert!(
        reception.complete_frames >= 60,
        "only {} complete frames through rtc's stack ({:?})",
        reception.complete_frames,
        reception.states
    );
    assert_eq!(reception.first_frame_was_keyframe, Some(true));
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        metric(
            &metrics,
            "straja_viewer_retransmits_total{camera=\"fallback\"}"
        ),
        0.0,
        "rtc's stack does not count retransmissions"
    );
    viewer.close().await;
}
