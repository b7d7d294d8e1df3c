//! A camera that goes away and comes back (the fake IP camera stopped, then started again on its
//! port) does not cost its viewers their sessions: the gateway rebuilds its pipeline, and the same
//! WebRTC session gets frames again, with sequence numbers that carry on without a gap and
//! timestamps that carry on by the time the camera was away (the new stream has new bases).
//! `straja_camera_up` follows the camera down and up again, and the reconnects are counted.

mod support;

use std::time::Duration;

use straja_pipelines::{CameraState, FakeCameraOptions, FakeRtspCamera};
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

fn camera_options() -> FakeCameraOptions {
    FakeCameraOptions {
        width: 320,
        height: 240,
        gop_frames: 30,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_keeps_its_session_across_a_camera_restart() {
    let camera = FakeRtspCamera::start(camera_options()).expect("fake RTSP camera");
    let port = camera.port();
    let url = camera.url();
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "gate",
        source: &url,
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let state = || {
        gateway
            .running
            .gateway()
            .camera("gate")
            .expect("camera")
            .state()
    };

    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "gate").await;
    let before = viewer.wait_for_frames(30, Duration::from_secs(15)).await;
    assert!(before.complete_frames >= 30, "frames before the restart");

    let stopped_at = std::time::Instant::now();
    camera.stop();
    for _ in 0..100 {
        if state() != Some(CameraState::Playing) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        state(),
        Some(CameraState::Playing),
        "the camera's loss is noticed"
    );
    let away = viewer.reception().complete_frames;
    let up = r#"straja_camera_up{camera="gate"}"#;
    let reconnects = r#"straja_camera_reconnects_total{camera="gate"}"#;
    // The exporter copies the state every 500 ms.
    for _ in 0..40 {
        if gateway.metric(up).await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gateway.metric(up).await,
        Some(0.0),
        "camera_up follows the loss"
    );
    let reconnects_while_away = gateway.metric(reconnects).await.unwrap_or(0.0);
    assert!(
        reconnects_while_away >= 1.0,
        "the failed pipeline is counted as a reconnect: {reconnects_while_away}"
    );

    let camera = FakeRtspCamera::start_on_port(camera_options(), port).expect("camera back");
    let back_at = std::time::Instant::now();
    // The camera sent nothing in between: media time must move on by at least this much.
    let away_ms = stopped_at.elapsed().as_millis() as u32;
    let resumed = viewer
        .wait_for_frames(away + 1, Duration::from_secs(20))
        .await;
    assert!(resumed.complete_frames > away, "video resumes");
    let resumed_after = back_at.elapsed();
    let after = viewer
        .wait_for_frames(away + 60, Duration::from_secs(20))
        .await;
    assert!(
        after.complete_frames >= away + 60,
        "frames resume on the same session: {} then {} ({} packets, states {:?})",
        away,
        after.complete_frames,
        after.packets,
        after.states
    );
    assert!(
        !after.states.iter().any(|s| s == "failed" || s == "closed"),
        "the session lives on: {:?}",
        after.states
    );
    assert_eq!(after.sequence_gaps, 0, "sequence numbers carry on");
    assert_eq!(after.broken_frames, 0);
    assert!(
        after.keyframes >= 2,
        "the restarted stream begins at a keyframe"
    );

    let spacings: Vec<u32> = after
        .frame_timestamps
        .windows(2)
        .map(|pair| pair[1].wrapping_sub(pair[0]))
        .collect();
    assert!(
        // 0 happens: after a keyframe request, the pipeline's parser sends SPS and PPS as an access
        // unit of their own with the keyframe's timestamp. Backwards would show as over 2^31.
        spacings.iter().all(|&s| s < 90_000 * 60),
        "timestamps never go back: {spacings:?}"
    );
    let outage = spacings.iter().copied().max().unwrap_or(0);
    let least = 90 * away_ms.saturating_sub(100);
    assert!(
        outage >= least,
        "the gap in media time ({outage} ticks) reflects the {away_ms} ms the camera was away"
    );
    for _ in 0..40 {
        if gateway.metric(up).await == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gateway.metric(up).await,
        Some(1.0),
        "camera_up follows the return"
    );
    let reconnects_total = gateway.metric(reconnects).await.unwrap_or(0.0);
    assert!(reconnects_total >= reconnects_while_away);
    println!(
        "camera away for {:.2} s of media time; video resumed {} ms after the camera came back \
         ({} reconnect attempts); viewer got {} frames before, {} after",
        f64::from(outage) / 90_000.0,
        resumed_after.as_millis(),
        reconnects_total,
        away,
        after.complete_frames - away
    );

    let _ = gateway.client.delete(&viewer.session_url).send().await;
    viewer.close().await;
    gateway.shutdown().await;
    camera.stop();
}
