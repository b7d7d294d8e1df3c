//! Instant start: a camera whose encoder cannot be asked for a keyframe (a fake IP camera over
//! RTSP) with a 30 s GOP. A new viewer must not wait for the camera's next keyframe: it starts
//! from the GOP the gateway cached, and then continues live.
//!
//! - An in-process webrtc-rs viewer gets complete frames long before the camera's next keyframe,
//!   the first one the cached keyframe and only that one; the replayed frames come 1 ms apart in
//!   media time and the live ones that follow at the camera's 33 ms, with no sequence gap.
//! - Headless Chromium decodes frames from the cache too, and then shows live frames right after
//!   they arrive: the picture is not kept behind live by the age of the cached GOP.

mod support;

use std::time::Duration;

use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::chromium::Chromium;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

/// 30 s at 30 fps: the camera's next keyframe comes long after everything below is done.
const GOP_FRAMES: u32 = 900;
/// Media-time spacing the gateway gives replayed frames (1 ms at 90 kHz).
const REPLAY_SPACING: u32 = 90;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_viewers_start_from_the_cached_gop_and_continue_live() {
    let camera = FakeRtspCamera::start(FakeCameraOptions {
        width: 320,
        height: 240,
        gop_frames: GOP_FRAMES,
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
    let metrics = gateway
        .running
        .gateway()
        .camera("gate")
        .expect("camera")
        .feed
        .metrics()
        .clone();
    for _ in 0..100 {
        if metrics.gop_cache_bytes.get() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.gop_cache_bytes.get() > 0,
        "the camera's GOP is cached"
    );
    // Let the GOP grow some frames past its keyframe.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "gate").await;
    let reception = viewer.wait_for_frames(45, Duration::from_secs(10)).await;
    assert!(
        reception.complete_frames >= 45,
        "the viewer must not wait for the camera's next keyframe: {} complete frames, {} packets, \
         states {:?}",
        reception.complete_frames,
        reception.packets,
        reception.states
    );
    assert_eq!(reception.first_frame_was_keyframe, Some(true));
    assert_eq!(
        reception.keyframes, 1,
        "the only keyframe is the cached one"
    );
    assert_eq!(reception.broken_frames, 0, "no packet missing");
    assert_eq!(metrics.gop_cache_replays.get(), 1);

    let spacings: Vec<u32> = reception
        .frame_timestamps
        .windows(2)
        .map(|pair| pair[1].wrapping_sub(pair[0]))
        .collect();
    let replayed = spacings
        .iter()
        .take_while(|&&s| s == REPLAY_SPACING)
        .count();
    assert!(
        replayed >= 10,
        "the cached frames are replayed 1 ms apart: {spacings:?}"
    );
    assert!(
        spacings[replayed..]
            .iter()
            .all(|&s| (1000..=9000).contains(&s)),
        "live frames follow at the camera's pace (about 3000 ticks at 30 fps): {spacings:?}"
    );
    let _ = gateway.client.delete(&viewer.session_url).send().await;
    viewer.close().await;

    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = browser
        .open(&gateway.url(&format!("/#token={}", gateway.security_token)))
        .await
        .expect("page opens");
    page.wait_for("window.straja !== undefined", Duration::from_secs(10))
        .await
        .expect("page script");
    page.eval("straja.play('gate').then(() => true)")
        .await
        .expect("play starts");
    if let Err(e) = page
        .wait_for(
            "straja.framesDecoded().then(n => n >= 60)",
            Duration::from_secs(10),
        )
        .await
    {
        let shot = std::env::temp_dir().join("straja-gop-cache-failure.png");
        let _ = page.screenshot(&shot).await;
        panic!(
            "Chromium did not decode 60 frames from the cached GOP on: {e}; console {:?}; \
             screenshot {}",
            page.console(),
            shot.display()
        );
    }
    // How long after its last packet arrived each live frame is shown (requestVideoFrameCallback
    // metadata): a replay that put the picture behind live would show in every frame.
    let lags = page
        .eval_within(
            "new Promise(resolve => { const v = document.querySelector('video'); const lags = []; \
             const step = (now, m) => { \
               if (m.receiveTime) lags.push(m.expectedDisplayTime - m.receiveTime); \
               if (lags.length >= 30) resolve(lags); else v.requestVideoFrameCallback(step); }; \
             v.requestVideoFrameCallback(step); })",
            Duration::from_secs(10),
        )
        .await
        .expect("30 frames shown");
    let mut lags: Vec<f64> = lags
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    lags.sort_by(f64::total_cmp);
    assert_eq!(lags.len(), 30, "every frame has its display time");
    let median = lags[lags.len() / 2];
    println!("chromium: live frames shown {median:.1} ms after arrival (median)");
    assert!(
        median < 150.0,
        "Chromium shows live frames {median:.0} ms after they arrive: the replay put the picture \
         behind live ({lags:?})"
    );
    assert_eq!(metrics.gop_cache_replays.get(), 2);

    drop(browser);
    gateway.shutdown().await;
    camera.stop();
}
