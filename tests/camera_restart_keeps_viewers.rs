//! A camera that goes away and comes back (the fake IP camera stopped, then started again on its
//! port) does not cost its viewers their sessions: the gateway rebuilds its pipeline, and the same
//! WebRTC session gets frames again, with sequence numbers that carry on without a gap and
//! timestamps that carry on by the time the camera was away (the new stream has new bases).

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

    let camera = FakeRtspCamera::start_on_port(camera_options(), port).expect("camera back");
    // The camera sent nothing in between: media time must move on by at least this much.
    let away_ms = stopped_at.elapsed().as_millis() as u32;
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
    println!(
        "camera away for {:.2} s of media time; viewer got {} frames before, {} after",
        f64::from(outage) / 90_000.0,
        away,
        after.complete_frames - away
    );

    let _ = gateway.client.delete(&viewer.session_url).send().await;
    viewer.close().await;
    gateway.shutdown().await;
    camera.stop();
}
