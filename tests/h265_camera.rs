//! An H.265 camera: a viewer that offers H.265 gets the camera's own stream, passed through; a
//! viewer that does not (every browser without an H.265 decoder, Chromium here) gets H.264 from
//! one transcoder per camera, started when the first such viewer comes and stopped after the last
//! one leaves, while the H.265 viewer is untouched. The camera is recorded in H.265, and its
//! snapshot decodes its H.265 keyframe.

mod support;

use std::time::Duration;

use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::chromium::Chromium;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

const RUNNING: &str = r#"straja_transcoders_running{camera="hevc"}"#;

async fn wait_for_metric(gateway: &GatewayUnderTest, series: &str, value: f64) -> bool {
    for _ in 0..100 {
        if gateway.metric(series).await == Some(value) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_is_passed_through_to_h265_viewers_and_transcoded_once_for_the_others() {
    let camera = FakeRtspCamera::start(FakeCameraOptions {
        width: 320,
        height: 240,
        h265: true,
        ..Default::default()
    })
    .expect("fake H.265 camera");
    let url = camera.url();
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "hevc",
        source: &url,
        settings: "record = true\nrecord_segment_seconds = 2",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    assert_eq!(
        gateway.metric(RUNNING).await,
        Some(0.0),
        "nothing transcoded yet"
    );

    // Passthrough.
    let native = WhepViewer::connect_h265(&gateway.client, &gateway.base_url, "hevc").await;
    assert!(
        native
            .answer_sdp
            .to_ascii_uppercase()
            .contains("H265/90000")
    );
    let frames = native.wait_for_frames(60, Duration::from_secs(15)).await;
    assert!(frames.complete_frames >= 60, "{frames:?}");
    assert!(
        frames.video_payload_first_bytes.contains(&0x60),
        "H.265 aggregation packets (VPS/SPS/PPS) reach the H.265 viewer: {:?}",
        frames.video_payload_first_bytes
    );
    assert_eq!(frames.broken_frames, 0);
    assert_eq!(
        gateway.metric(RUNNING).await,
        Some(0.0),
        "no transcode for it"
    );

    // Two H.264 viewers: one transcoder, started by the first.
    let first = WhepViewer::connect(&gateway.client, &gateway.base_url, "hevc").await;
    assert!(
        wait_for_metric(&gateway, RUNNING, 1.0).await,
        "transcoder started"
    );
    let second = WhepViewer::connect(&gateway.client, &gateway.base_url, "hevc").await;
    for viewer in [&first, &second] {
        assert!(
            viewer
                .answer_sdp
                .to_ascii_uppercase()
                .contains("H264/90000")
        );
        let frames = viewer.wait_for_frames(60, Duration::from_secs(20)).await;
        assert!(
            frames.complete_frames >= 60,
            "transcoded frames: {frames:?}"
        );
        assert!(frames.keyframes >= 1, "an H.264 keyframe (SPS or IDR)");
        assert!(
            !frames.video_payload_first_bytes.contains(&0x60),
            "H.264, not H.265: {:?}",
            frames.video_payload_first_bytes
        );
    }
    assert!(
        gateway
            .running
            .gateway()
            .camera("hevc")
            .unwrap()
            .transcoding
            .is_running()
    );
    let native_frames = native.reception().complete_frames;

    // The last H.264 viewer leaves: the transcoder stops; the H.265 viewer goes on.
    let _ = gateway.client.delete(&first.session_url).send().await;
    first.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        gateway.metric(RUNNING).await,
        Some(1.0),
        "one H.264 viewer is left"
    );
    let _ = gateway.client.delete(&second.session_url).send().await;
    second.close().await;
    assert!(
        wait_for_metric(&gateway, RUNNING, 0.0).await,
        "transcoder stopped"
    );
    let later = native
        .wait_for_frames(native_frames + 30, Duration::from_secs(10))
        .await;
    assert!(
        later.complete_frames >= native_frames + 30,
        "the H.265 viewer is untouched"
    );
    let _ = gateway.client.delete(&native.session_url).send().await;
    native.close().await;

    // A browser: Chromium offers no H.265 here, and decodes the transcode.
    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = gateway.open_wall(&browser, 1).await;
    page.eval("straja.play('hevc').then(() => true)")
        .await
        .expect("play");
    page.wait_for(
        "straja.framesDecoded().then(n => n >= 60)",
        Duration::from_secs(25),
    )
    .await
    .unwrap_or_else(|e| panic!("Chromium decodes the transcode: {e}; {:?}", page.console()));
    let size = page
        .eval(
            "straja.pc.getStats().then(r => { let v = {}; r.forEach(s => { \
             if (s.type === 'inbound-rtp' && s.kind === 'video') v = { w: s.frameWidth, h: s.frameHeight }; }); return v; })",
        )
        .await
        .expect("stats");
    assert_eq!(
        (size["w"].as_u64(), size["h"].as_u64()),
        (Some(320), Some(240)),
        "{size}"
    );
    page.eval("straja.stop().then(() => true)")
        .await
        .expect("stop");
    assert!(
        wait_for_metric(&gateway, RUNNING, 0.0).await,
        "stopped after the browser left"
    );
    drop(page);
    drop(browser);

    // A snapshot decodes its H.265 keyframe.
    let snapshot = gateway
        .client
        .get(gateway.url("/api/v1/cameras/hevc/snapshot.jpg"))
        .send()
        .await
        .expect("snapshot");
    assert_eq!(snapshot.status(), 200);
    let jpeg = snapshot.bytes().await.expect("JPEG");
    assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG");
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9]);
    let file = tempfile::NamedTempFile::with_suffix(".jpg").unwrap();
    std::fs::write(file.path(), &jpeg).unwrap();
    let probe = support::recordings::ffprobe(file.path()).expect("ffprobe reads the JPEG");
    assert_eq!((probe.width, probe.height), (320, 240), "{probe:?}");

    // It is recorded in H.265, as it came.
    let segments = gateway
        .running
        .gateway()
        .recordings
        .catalogue
        .segments("hevc");
    let finished = segments
        .iter()
        .find(|s| !s.recording)
        .unwrap_or_else(|| panic!("a finished segment: {segments:?}"));
    let (mp4, complete) = support::recordings::decrypt(gateway.state_dir(), "hevc", &finished.path);
    assert!(complete);
    let samples = straja_pipelines::demux_segment(mp4.into(), Duration::from_secs(10))
        .expect("the segment demuxes");
    assert_eq!(
        samples.codec,
        straja_pipelines::TrackCodec::Video(straja_pipelines::VideoCodec::H265)
    );
    assert!(
        samples.samples.len() >= 30,
        "{} frames",
        samples.samples.len()
    );
    gateway.shutdown().await;
    camera.stop();
}
