//! Camera audio reaches the browser: G.711 (µ-law, A-law) and Opus pass through as the camera sent
//! them, AAC is transcoded to Opus once per camera and shared by its viewers, and a viewer that
//! asks for no audio (or whose camera has none) gets video only. Real RTSP cameras with audio,
//! real webrtc-rs viewers, and Chromium playing the sound (its `getStats()` counts the samples).

mod support;

use std::time::Duration;

use straja_pipelines::{FakeCameraAudio, FakeCameraOptions, FakeRtspCamera};
use support::chromium::Chromium;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

fn camera(audio: Option<FakeCameraAudio>) -> FakeRtspCamera {
    FakeRtspCamera::start(FakeCameraOptions {
        width: 320,
        height: 240,
        audio,
        ..Default::default()
    })
    .expect("fake RTSP camera")
}

async fn wait_for_audio(viewer: &WhepViewer, packets: u64) -> support::whep_viewer::Reception {
    for _ in 0..150 {
        let reception = viewer.reception();
        if reception.audio_packets >= packets {
            return reception;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    viewer.reception()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_audio_is_passed_through_or_transcoded_and_reaches_webrtc_viewers() {
    let aac = camera(Some(FakeCameraAudio::Aac));
    let pcmu = camera(Some(FakeCameraAudio::Pcmu));
    let pcma = camera(Some(FakeCameraAudio::Pcma));
    let opus = camera(Some(FakeCameraAudio::Opus));
    let silent = camera(None);
    let (aac_url, pcmu_url, pcma_url, opus_url, silent_url) =
        (aac.url(), pcmu.url(), pcma.url(), opus.url(), silent.url());
    let gateway = GatewayUnderTest::start(&[
        TestCamera {
            id: "aac",
            source: &aac_url,
            settings: "",
        },
        TestCamera {
            id: "pcmu",
            source: &pcmu_url,
            settings: "",
        },
        TestCamera {
            id: "pcma",
            source: &pcma_url,
            settings: "",
        },
        TestCamera {
            id: "opus",
            source: &opus_url,
            settings: "",
        },
        TestCamera {
            id: "silent",
            source: &silent_url,
            settings: "",
        },
    ])
    .await;
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    // The cameras have described their streams by the time they play; give the audio pads a moment.
    for id in ["aac", "pcmu", "pcma", "opus"] {
        for _ in 0..50 {
            if gateway
                .running
                .gateway()
                .camera(id)
                .unwrap()
                .audio_codec()
                .is_some()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // (camera, what the viewer must receive, its rtpmap in the answer)
    for (id, mime, rtpmap) in [
        ("aac", "audio/opus", "opus/48000/2"),
        ("pcmu", "audio/PCMU", "PCMU/8000"),
        ("pcma", "audio/PCMA", "PCMA/8000"),
        ("opus", "audio/opus", "opus/48000/2"),
    ] {
        let viewer = WhepViewer::connect_with_audio(&gateway.client, &gateway.base_url, id).await;
        assert!(
            viewer
                .answer_sdp
                .to_ascii_lowercase()
                .contains(&rtpmap.to_ascii_lowercase()),
            "{id}: the answer offers {rtpmap}:\n{}",
            viewer.answer_sdp
        );
        let video = viewer.wait_for_frames(30, Duration::from_secs(15)).await;
        assert!(video.complete_frames >= 30, "{id}: video too");
        let reception = wait_for_audio(&viewer, 100).await;
        assert!(
            reception.audio_packets >= 100,
            "{id}: {} audio packets",
            reception.audio_packets
        );
        assert_eq!(
            reception
                .audio_codec
                .as_deref()
                .map(str::to_ascii_lowercase),
            Some(mime.to_ascii_lowercase()),
            "{id}"
        );
        assert_eq!(
            reception.audio_sequence_gaps, 0,
            "{id}: audio sequence numbers follow on"
        );
        let ticks = reception
            .audio_timestamps
            .windows(2)
            .map(|w| w[1].wrapping_sub(w[0]))
            .collect::<Vec<_>>();
        assert!(
            ticks.iter().all(|&t| t < 48_000),
            "{id}: audio timestamps move forward in small steps: {ticks:?}"
        );
        println!(
            "{id}: {} audio packets ({mime}), {} video frames",
            reception.audio_packets, video.complete_frames
        );
        let _ = gateway.client.delete(&viewer.session_url).send().await;
        viewer.close().await;
    }

    // Two viewers of the AAC camera share its one transcode: both get Opus at once.
    let first = WhepViewer::connect_with_audio(&gateway.client, &gateway.base_url, "aac").await;
    let second = WhepViewer::connect_with_audio(&gateway.client, &gateway.base_url, "aac").await;
    for viewer in [&first, &second] {
        assert!(wait_for_audio(viewer, 50).await.audio_packets >= 50);
    }
    for viewer in [first, second] {
        let _ = gateway.client.delete(&viewer.session_url).send().await;
        viewer.close().await;
    }

    // Video only: a viewer that does not ask for audio, and a camera that has none.
    let video_only = WhepViewer::connect(&gateway.client, &gateway.base_url, "aac").await;
    assert!(!video_only.answer_sdp.to_ascii_lowercase().contains("opus"));
    let frames = video_only
        .wait_for_frames(30, Duration::from_secs(15))
        .await;
    assert!(frames.complete_frames >= 30);
    let no_audio =
        WhepViewer::connect_with_audio(&gateway.client, &gateway.base_url, "silent").await;
    let frames = no_audio.wait_for_frames(30, Duration::from_secs(15)).await;
    assert!(frames.complete_frames >= 30, "video plays without audio");
    assert_eq!(no_audio.reception().audio_packets, 0);
    for viewer in [video_only, no_audio] {
        let _ = gateway.client.delete(&viewer.session_url).send().await;
        viewer.close().await;
    }
    gateway.shutdown().await;
    for camera in [aac, pcmu, pcma, opus, silent] {
        camera.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_a_cameras_aac_audio_as_opus_with_its_video() {
    let aac = camera(Some(FakeCameraAudio::Aac));
    let url = aac.url();
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "door",
        source: &url,
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    for _ in 0..50 {
        if gateway
            .running
            .gateway()
            .camera("door")
            .unwrap()
            .audio_codec()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let browser = Chromium::launch(&["--autoplay-policy=no-user-gesture-required"])
        .await
        .expect("Chromium starts");
    let page = gateway.open_wall(&browser, 1).await;
    page.eval("straja.play('door').then(() => true)")
        .await
        .expect("play");
    page.wait_for(
        "straja.framesDecoded().then(n => n >= 30)",
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| panic!("video: {e}; console {:?}", page.console()));
    let audio = "straja.pc.getStats().then(r => { let v = {}; r.forEach(s => { \
                 if (s.type === 'inbound-rtp' && s.kind === 'audio') v = { packets: s.packetsReceived, \
                 samples: s.totalSamplesReceived, concealed: s.concealedSamples, \
                 energy: s.totalAudioEnergy, codec: s.codecId }; \
                 }); return v; })";
    page.wait_for(
        &format!("{audio}.then(v => (v.packets || 0) >= 100 && (v.samples || 0) > 48000)"),
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| panic!("audio: {e}; console {:?}", page.console()));
    let stats = page.eval(audio).await.expect("stats");
    println!("chromium audio: {stats}");
    let codec = page
        .eval(&format!(
            "straja.pc.getStats().then(r => {{ let m = ''; r.forEach(s => {{ \
             if (s.type === 'codec' && s.id === {}) m = s.mimeType; }}); return m; }})",
            stats["codec"]
        ))
        .await
        .expect("codec");
    assert_eq!(
        codec.as_str().map(str::to_ascii_lowercase).as_deref(),
        Some("audio/opus")
    );
    // The page offers sound for the camera open large; with it on, the tone plays (energy is
    // measured on what is played out: a muted element plays nothing).
    let sound = "document.querySelector('[data-camera=\"door\"] [data-testid=\"tile-sound\"]')";
    page.wait_for(&format!("!{sound}.hidden"), Duration::from_secs(5))
        .await
        .expect("a sound button");
    page.eval(&format!("{sound}.click(); true"))
        .await
        .expect("sound on");
    page.wait_for(
        &format!("{audio}.then(v => (v.energy || 0) > 0)"),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|e| panic!("the tone is heard, not silence: {e}"));
    let heard = page.eval(audio).await.expect("stats");
    println!("chromium audio with sound on: {heard}");
    assert_eq!(
        page.eval(&format!("{sound}.getAttribute('aria-pressed')"))
            .await
            .unwrap(),
        "true"
    );
    let violations = page.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    page.eval("straja.stop().then(() => true)")
        .await
        .expect("stop");
    drop(page);
    drop(browser);
    gateway.shutdown().await;
    aac.stop();
}
