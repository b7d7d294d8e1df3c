//! Camera pipelines with real GStreamer. Small frames (320×240) keep x264 cheap; every wait
//! is bounded.

use std::time::{Duration, Instant};

use super::*;
use crate::test_support::{
    Collector, NAL_IDR, NAL_SPS, drain, parse_rtp_h264, receive_until, wait_until,
};

fn source(s: &str) -> CameraSource {
    CameraSource::parse(s).expect("valid source")
}

fn options(stall_timeout_ms: u64) -> CameraOptions {
    CameraOptions {
        stall_timeout: Duration::from_millis(stall_timeout_ms),
    }
}

/// Receives until an IDR preceded by an SPS arrives, checking every packet on the way
/// (RTP version 2, payload type 96, at most 1200 bytes). Returns the IDR's RTP timestamp.
fn expect_idr_after_sps(rx: &std::sync::mpsc::Receiver<bytes::Bytes>, timeout: Duration) -> u32 {
    let mut packets = 0;
    let mut sps_seen = false;
    let mut idr_timestamp = 0;
    let found = receive_until(rx, timeout, |packet| {
        packets += 1;
        assert!(packet.len() <= 1200, "packet of {} bytes", packet.len());
        let rtp = parse_rtp_h264(packet).expect("an RTP packet with an H.264 payload");
        assert_eq!(rtp.version, 2);
        assert_eq!(rtp.payload_type, 96);
        sps_seen |= rtp.has(NAL_SPS);
        idr_timestamp = rtp.timestamp;
        rtp.has(NAL_IDR) && sps_seen
    });
    assert!(
        found,
        "no IDR after an SPS within {timeout:?} ({packets} packets)"
    );
    idr_timestamp
}

#[test]
fn camera_pipeline_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CameraPipeline>();
}

#[test]
fn an_id_with_a_nul_byte_is_rejected() {
    let (sink, _rx) = Collector::new();
    let result = CameraPipeline::start(
        "a\0b",
        source("test://ball"),
        sink,
        CameraOptions::default(),
    );
    assert!(matches!(result, Err(PipelineError::InvalidId)));
}

#[test]
fn test_source_delivers_h264_rtp_with_sps_before_idr() {
    let (sink, rx) = Collector::new();
    let started = Instant::now();
    let camera = CameraPipeline::start(
        "pattern",
        source("test://ball?width=320&height=240"),
        sink,
        CameraOptions::default(),
    )
    .expect("camera starts");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "start must not wait for video"
    );
    let first = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("a first packet");
    eprintln!("test source: first packet after {:?}", started.elapsed());
    assert!(first.len() <= 1200);
    expect_idr_after_sps(&rx, Duration::from_secs(5));
    // 30 fps, one GOP a second: keyframes keep coming.
    expect_idr_after_sps(&rx, Duration::from_secs(3));
    assert!(wait_until(Duration::from_secs(2), || camera.state()
        == CameraState::Playing));
    assert_eq!(camera.reconnects(), 0);
    assert_eq!(camera.last_error(), None);
    camera.stop();
    assert_eq!(camera.state(), CameraState::Stopped);
}

#[test]
fn a_test_source_with_a_tone_delivers_audio_rtp_of_its_codec() {
    for (name, codec, payload_type) in [
        ("opus", crate::AudioCodec::Opus, crate::OPUS_PAYLOAD_TYPE),
        ("pcmu", crate::AudioCodec::Pcmu, 0),
    ] {
        let (video, video_rx) = Collector::new();
        let (audio, audio_rx) = Collector::new();
        let camera = CameraPipeline::start_with_audio(
            "tone",
            source(&format!("test://ball?width=160&height=120&audio={name}")),
            video,
            Some(audio),
            options(3000),
        )
        .expect("camera starts");
        expect_idr_after_sps(&video_rx, Duration::from_secs(5));
        let mut packets = 0;
        let got = receive_until(&audio_rx, Duration::from_secs(5), |packet| {
            assert_eq!(packet[1] & 0x7f, payload_type, "{name}");
            packets += 1;
            packets >= 25
        });
        assert!(got, "{name}: {packets} audio packets");
        assert_eq!(camera.audio_codec(), Some(codec));
        camera.stop();
    }
}

#[test]
fn request_keyframe_produces_an_idr_long_before_the_gop_would() {
    // gop=300 at 30 fps: the natural keyframes come at 0 s and 10 s.
    let (sink, rx) = Collector::new();
    let camera = CameraPipeline::start(
        "long-gop",
        source("test://ball?width=320&height=240&gop=300"),
        sink,
        CameraOptions::default(),
    )
    .expect("camera starts");
    let first_idr = expect_idr_after_sps(&rx, Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(2), || camera.state()
        == CameraState::Playing));
    // Control: no keyframe comes by itself in the next half second (x264's sliced threads
    // split one IDR frame into several IDR NALs: only another frame's IDR counts).
    let natural = receive_until(&rx, Duration::from_millis(500), |p| {
        parse_rtp_h264(p).is_some_and(|rtp| rtp.has(NAL_IDR) && rtp.timestamp != first_idr)
    });
    assert!(!natural, "an IDR came without being asked for");
    let asked = Instant::now();
    camera.request_keyframe();
    expect_idr_after_sps(&rx, Duration::from_secs(2));
    eprintln!("keyframe request: IDR after {:?}", asked.elapsed());
    camera.stop();
}

#[test]
fn request_keyframe_when_not_playing_is_a_no_op() {
    let (sink, _rx) = Collector::new();
    let camera = CameraPipeline::start(
        "idle",
        source("test://ball?width=320&height=240"),
        sink,
        CameraOptions::default(),
    )
    .expect("camera starts");
    camera.stop();
    camera.request_keyframe();
    assert_eq!(camera.state(), CameraState::Stopped);
}

#[test]
fn stop_is_prompt_and_idempotent() {
    let (sink, rx) = Collector::new();
    let camera = CameraPipeline::start(
        "stopping",
        source("test://smpte?width=320&height=240"),
        sink,
        CameraOptions::default(),
    )
    .expect("camera starts");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("a first packet");
    let asked = Instant::now();
    camera.stop();
    let took = asked.elapsed();
    eprintln!("stop of a playing test camera took {took:?}");
    assert!(took < Duration::from_secs(1), "stop took {took:?}");
    assert_eq!(camera.state(), CameraState::Stopped);
    drain(&rx);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(drain(&rx), 0, "packets after stop");
    camera.stop();
    assert_eq!(camera.state(), CameraState::Stopped);
    drop(camera);
}

#[test]
fn a_camera_that_never_answers_stalls_reconnects_and_still_stops_promptly() {
    // Listens but never accepts: rtspsrc connects and then waits for an answer that never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let (sink, _rx) = Collector::new();
    let started = Instant::now();
    let camera = CameraPipeline::start(
        "silent",
        source(&format!("rtsp://u:never-logged@127.0.0.1:{port}/cam")),
        sink,
        options(600),
    )
    .expect("camera starts");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "start must not wait for the camera"
    );
    assert_eq!(camera.state(), CameraState::Starting);
    assert!(
        wait_until(Duration::from_secs(3), || camera.reconnects() >= 1),
        "no stall detected"
    );
    assert_eq!(camera.state(), CameraState::Reconnecting);
    let error = camera.last_error().expect("an error");
    assert!(error.contains("no packet within 600 ms"), "{error}");
    // Let the second attempt get stuck connecting, then stop in the middle of it.
    std::thread::sleep(Duration::from_millis(700));
    let asked = Instant::now();
    camera.stop();
    let took = asked.elapsed();
    eprintln!("stop of a connecting rtsp camera took {took:?}");
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    assert_eq!(camera.state(), CameraState::Stopped);
    assert!(!format!("{camera:?}").contains("never-logged"));
}

#[test]
fn a_refused_connection_is_reported_and_retried() {
    // Bind then drop: nothing listens on the port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (sink, _rx) = Collector::new();
    let camera = CameraPipeline::start(
        "refused",
        source(&format!("rtsp://127.0.0.1:{port}/cam")),
        sink,
        CameraOptions::default(),
    )
    .expect("camera starts");
    assert!(
        wait_until(Duration::from_secs(3), || camera.reconnects() >= 2),
        "no retry after a refused connection"
    );
    let error = camera.last_error().expect("an error");
    eprintln!("refused: {error}");
    assert!(
        !error.contains("stalled"),
        "should fail fast, not by stall: {error}"
    );
    camera.stop();
}

#[cfg(feature = "test-camera")]
mod rtsp {
    use super::*;
    use crate::audio::AudioCodec;
    use crate::test_camera::{
        FakeCameraAudio, FakeCameraOptions, FakeCameraTransport, FakeRtspCamera,
    };

    fn small() -> FakeCameraOptions {
        FakeCameraOptions {
            width: 320,
            height: 240,
            ..FakeCameraOptions::default()
        }
    }

    fn with_credentials(url: &str, user: &str, password: &str) -> String {
        url.replacen("rtsp://", &format!("rtsp://{user}:{password}@"), 1)
    }

    #[test]
    fn rtsp_source_delivers_h264_rtp_from_the_fake_camera() {
        let fake = FakeRtspCamera::start(small()).expect("fake camera");
        let (sink, rx) = Collector::new();
        let started = Instant::now();
        let camera = CameraPipeline::start("ip-cam", source(&fake.url()), sink, options(3000))
            .expect("camera starts");
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a first packet");
        eprintln!(
            "rtsp fake camera: first packet after {:?}",
            started.elapsed()
        );
        expect_idr_after_sps(&rx, Duration::from_secs(3));
        assert!(wait_until(Duration::from_secs(2), || camera.state()
            == CameraState::Playing));
        assert_eq!(camera.reconnects(), 0);
        assert_eq!(camera.video_codec(), Some(crate::VideoCodec::H264));
        camera.stop();
        fake.stop();
    }

    #[test]
    fn rtsp_over_udp_delivers_too() {
        // The camera takes UDP only: frames prove the transport.
        let fake = FakeRtspCamera::start(FakeCameraOptions {
            transport: FakeCameraTransport::UdpOnly,
            ..small()
        })
        .expect("fake camera");
        let (sink, rx) = Collector::new();
        let url = format!("{}?transport=udp", fake.url());
        let camera = CameraPipeline::start("udp-cam", source(&url), sink, options(3000))
            .expect("camera starts");
        expect_idr_after_sps(&rx, Duration::from_secs(5));
        camera.stop();
        fake.stop();
    }

    #[test]
    fn tcp_is_the_default_transport() {
        let fake = FakeRtspCamera::start(FakeCameraOptions {
            transport: FakeCameraTransport::TcpOnly,
            ..small()
        })
        .expect("fake camera");
        let (sink, rx) = Collector::new();
        let camera = CameraPipeline::start("tcp-cam", source(&fake.url()), sink, options(3000))
            .expect("camera starts");
        expect_idr_after_sps(&rx, Duration::from_secs(5));
        camera.stop();
        fake.stop();
    }

    #[test]
    fn digest_auth_plays_with_the_right_password_only() {
        let fake = FakeRtspCamera::start(FakeCameraOptions {
            credentials: Some(("operator".to_owned(), "D1gest-Pa55".to_owned())),
            digest: true,
            ..small()
        })
        .expect("fake camera");
        let (sink, rx) = Collector::new();
        let right = with_credentials(&fake.url(), "operator", "D1gest-Pa55");
        let good = CameraPipeline::start("digest", source(&right), sink, options(3000))
            .expect("camera starts");
        expect_idr_after_sps(&rx, Duration::from_secs(5));

        let (sink, rx) = Collector::new();
        let wrong = with_credentials(&fake.url(), "operator", "N0t-It");
        let bad = CameraPipeline::start("digest-bad", source(&wrong), sink, options(3000))
            .expect("camera starts");
        assert!(wait_until(Duration::from_secs(4), || bad.reconnects() >= 1));
        let error = bad.last_error().expect("an error");
        assert!(
            !error.contains("N0t-It") && !error.contains("stalled"),
            "{error}"
        );
        assert_eq!(drain(&rx), 0);
        good.stop();
        bad.stop();
        fake.stop();
    }

    /// A dev CA and a certificate it signs for 127.0.0.1, as PEM (CA, leaf, leaf key).
    fn tls_material() -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test camera CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
    }

    #[test]
    fn rtsps_plays_when_the_camera_certificate_chains_to_tls_ca_and_not_otherwise() {
        let (ca, cert, key) = tls_material();
        let dir = std::env::temp_dir().join(format!("straja-rtsps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_file = dir.join("camera-ca.pem");
        std::fs::write(&ca_file, ca).expect("CA file");
        let fake = FakeRtspCamera::start(FakeCameraOptions {
            tls: Some((cert, key)),
            ..small()
        })
        .expect("fake RTSPS camera");
        assert!(fake.url().starts_with("rtsps://"));

        let (sink, rx) = Collector::new();
        let trusted = format!("{}?tls_ca={}", fake.url(), ca_file.display());
        let camera = CameraPipeline::start("rtsps", source(&trusted), sink, options(3000))
            .expect("camera starts");
        expect_idr_after_sps(&rx, Duration::from_secs(6));

        // The system's trust store does not know the camera's CA: refused, not played.
        let (sink, rx) = Collector::new();
        let untrusted =
            CameraPipeline::start("rtsps-untrusted", source(&fake.url()), sink, options(3000))
                .expect("camera starts");
        assert!(wait_until(Duration::from_secs(6), || untrusted
            .reconnects()
            >= 1));
        eprintln!("untrusted RTSPS camera: {:?}", untrusted.last_error());
        assert_eq!(drain(&rx), 0, "no packet from a camera that is not trusted");
        camera.stop();
        untrusted.stop();
        fake.stop();
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Whether any packet straight from the camera (no depayloading) carries an SPS.
    fn camera_sends_sps_in_band(url: &str) -> bool {
        use gstreamer::prelude::*;
        let pipeline = gstreamer::parse::launch(&format!(
            "rtspsrc location={url} protocols=tcp latency=0 ! appsink name=sink sync=false"
        ))
        .expect("raw client")
        .downcast::<gstreamer::Pipeline>()
        .expect("a pipeline");
        let appsink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gstreamer_app::AppSink>().ok())
            .expect("appsink");
        pipeline
            .set_state(gstreamer::State::Playing)
            .expect("plays");
        let mut sps = false;
        let mut packets = 0;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && packets < 200 {
            let Some(sample) = appsink.try_pull_sample(gstreamer::ClockTime::from_mseconds(100))
            else {
                continue;
            };
            let Some(buffer) = sample.buffer() else {
                continue;
            };
            let Ok(map) = buffer.map_readable() else {
                continue;
            };
            packets += 1;
            sps |= parse_rtp_h264(&map).is_some_and(|rtp| rtp.has(NAL_SPS));
        }
        let _ = pipeline.set_state(gstreamer::State::Null);
        assert!(packets > 30, "the raw client got {packets} packets");
        sps
    }

    #[test]
    fn parameter_sets_sent_only_in_the_sdp_are_put_in_band_before_every_idr() {
        let fake = FakeRtspCamera::start(FakeCameraOptions {
            parameter_sets_in_band: false,
            ..small()
        })
        .expect("fake camera");
        assert!(
            !camera_sends_sps_in_band(&fake.url()),
            "the fake camera must send SPS/PPS out of band only"
        );
        let (sink, rx) = Collector::new();
        let camera = CameraPipeline::start("oob", source(&fake.url()), sink, options(3000))
            .expect("camera starts");
        // Twice: the parameter sets come before every IDR, not just the first.
        expect_idr_after_sps(&rx, Duration::from_secs(5));
        expect_idr_after_sps(&rx, Duration::from_secs(3));
        camera.stop();
        fake.stop();
    }

    #[test]
    fn rtsp_right_credentials_play_and_wrong_ones_reconnect_without_leaking() {
        let fake = FakeRtspCamera::start(FakeCameraOptions {
            credentials: Some(("viewer".to_owned(), "R1ght-Pa55".to_owned())),
            ..small()
        })
        .expect("fake camera");

        let (sink, rx) = Collector::new();
        let right = with_credentials(&fake.url(), "viewer", "R1ght-Pa55");
        let good = CameraPipeline::start("good", source(&right), sink, options(3000))
            .expect("camera starts");
        expect_idr_after_sps(&rx, Duration::from_secs(5));

        let (sink, rx) = Collector::new();
        let wrong = with_credentials(&fake.url(), "viewer", "Wr0ng-Pa55");
        let bad = CameraPipeline::start("bad", source(&wrong), sink, options(3000))
            .expect("camera starts");
        assert!(
            wait_until(Duration::from_secs(3), || bad.reconnects() >= 1),
            "wrong credentials did not fail"
        );
        assert_eq!(bad.state(), CameraState::Reconnecting);
        let error = bad.last_error().expect("an error");
        eprintln!("wrong credentials: {error}");
        assert!(!error.contains("Wr0ng-Pa55"), "{error}");
        assert!(
            !error.contains("stalled"),
            "should fail on the 401, not by stall: {error}"
        );
        assert!(!format!("{bad:?}").contains("Wr0ng-Pa55"));
        assert_eq!(drain(&rx), 0, "packets with wrong credentials");

        // And without credentials at all.
        let (sink, _rx) = Collector::new();
        let anonymous = CameraPipeline::start("anon", source(&fake.url()), sink, options(3000))
            .expect("camera starts");
        assert!(wait_until(Duration::from_secs(3), || anonymous
            .reconnects()
            >= 1));

        assert!(wait_until(Duration::from_secs(2), || good.state()
            == CameraState::Playing));
        assert_eq!((good.reconnects(), good.last_error()), (0, None));
        good.stop();
        bad.stop();
        anonymous.stop();
        fake.stop();
    }

    #[test]
    fn camera_going_away_makes_the_pipeline_reconnect_and_recover() {
        let fake = FakeRtspCamera::start(small()).expect("fake camera");
        let port = fake.port();
        let (sink, rx) = Collector::new();
        let camera = CameraPipeline::start("flaky", source(&fake.url()), sink, options(1500))
            .expect("camera starts");
        expect_idr_after_sps(&rx, Duration::from_secs(5));
        assert!(wait_until(Duration::from_secs(2), || camera.state()
            == CameraState::Playing));

        let gone = Instant::now();
        fake.stop();
        assert!(
            wait_until(Duration::from_secs(4), || camera.reconnects() >= 1),
            "camera loss not noticed"
        );
        eprintln!(
            "camera loss noticed after {:?}: {:?}",
            gone.elapsed(),
            camera.last_error()
        );
        assert_eq!(camera.state(), CameraState::Reconnecting);

        let fake = FakeRtspCamera::start_on_port(small(), port).expect("camera back on its port");
        let back = Instant::now();
        drain(&rx);
        expect_idr_after_sps(&rx, Duration::from_secs(6));
        assert!(wait_until(Duration::from_secs(2), || camera.state()
            == CameraState::Playing));
        eprintln!("recovered {:?} after the camera came back", back.elapsed());
        camera.stop();
        fake.stop();
    }

    #[test]
    fn camera_audio_is_passed_through_or_transcoded_from_aac_to_opus() {
        // (what the camera sends, what viewers get, its RTP payload type, its clock rate)
        let cases = [
            (FakeCameraAudio::Opus, AudioCodec::Opus, 97, 48_000),
            (FakeCameraAudio::Pcmu, AudioCodec::Pcmu, 0, 8_000),
            (FakeCameraAudio::Pcma, AudioCodec::Pcma, 8, 8_000),
            (FakeCameraAudio::Aac, AudioCodec::Opus, 111, 48_000),
        ];
        for (sent, expected, payload_type, clock_rate) in cases {
            let fake = FakeRtspCamera::start(FakeCameraOptions {
                audio: Some(sent),
                ..small()
            })
            .expect("fake camera");
            let (video, video_rx) = Collector::new();
            let (audio, audio_rx) = Collector::new();
            let camera = CameraPipeline::start_with_audio(
                "with-audio",
                source(&fake.url()),
                video,
                Some(audio),
                options(3000),
            )
            .expect("camera starts");
            expect_idr_after_sps(&video_rx, Duration::from_secs(5));
            let mut timestamps = Vec::new();
            let got = receive_until(&audio_rx, Duration::from_secs(5), |packet| {
                assert_eq!(packet[0] >> 6, 2, "RTP");
                assert_eq!(packet[1] & 0x7f, payload_type, "{sent:?}");
                timestamps.push(u32::from_be_bytes([
                    packet[4], packet[5], packet[6], packet[7],
                ]));
                timestamps.len() >= 50
            });
            assert!(got, "{sent:?}: {} audio packets", timestamps.len());
            assert_eq!(camera.audio_codec(), Some(expected), "{sent:?}");
            // 50 packets of 20 ms (Opus, G.711) or of the AAC frames' length: the timestamps
            // advance at the codec's clock rate.
            let span = timestamps.last().unwrap().wrapping_sub(timestamps[0]);
            assert!(
                span > clock_rate / 2 && span < clock_rate * 4,
                "{sent:?}: 50 packets span {span} ticks"
            );
            assert_eq!(
                camera.state(),
                CameraState::Playing,
                "{sent:?}: {:?}",
                camera.last_error()
            );
            camera.stop();
            fake.stop();
        }
    }

    #[test]
    fn an_h265_camera_is_repayloaded_as_h265_and_says_so() {
        let fake = FakeRtspCamera::start(FakeCameraOptions {
            h265: true,
            ..small()
        })
        .expect("fake H.265 camera");
        let (sink, rx) = Collector::new();
        let camera = CameraPipeline::start("hevc", source(&fake.url()), sink, options(3000))
            .expect("camera starts");
        // H.265 NAL headers: an aggregation packet (type 48) carries VPS/SPS/PPS before every
        // IRAP picture (not only the stream's first); an IDR slice (type 19 or 20) or its first
        // fragment follows.
        let nal_type = |packet: &bytes::Bytes| (packet[12] >> 1) & 0x3f;
        let mut parameter_sets = false;
        let mut keyframes_after_parameter_sets = 0;
        let found = receive_until(&rx, Duration::from_secs(8), |packet| {
            assert!(packet.len() <= 1200);
            assert_eq!(packet[1] & 0x7f, 96);
            if nal_type(packet) == 48 {
                parameter_sets = true;
            }
            let irap = match nal_type(packet) {
                49 => matches!(packet[14] & 0x3f, 16..=21) && packet[14] & 0x80 != 0,
                t => (16..=21).contains(&t),
            };
            if irap && parameter_sets {
                keyframes_after_parameter_sets += 1;
                parameter_sets = false;
            }
            keyframes_after_parameter_sets >= 3
        });
        assert!(found, "parameter sets before each of three IRAP pictures");
        assert_eq!(camera.video_codec(), Some(crate::VideoCodec::H265));
        camera.stop();
        fake.stop();
    }

    #[test]
    fn a_camera_without_audio_reports_none_and_its_video_plays() {
        let fake = FakeRtspCamera::start(small()).expect("fake camera");
        let (video, video_rx) = Collector::new();
        let (audio, audio_rx) = Collector::new();
        let camera = CameraPipeline::start_with_audio(
            "silent",
            source(&fake.url()),
            video,
            Some(audio),
            options(3000),
        )
        .expect("camera starts");
        expect_idr_after_sps(&video_rx, Duration::from_secs(5));
        assert_eq!(camera.audio_codec(), None);
        assert_eq!(drain(&audio_rx), 0);
        camera.stop();
        fake.stop();
    }

    #[test]
    fn fake_camera_options_hide_credentials() {
        let options = FakeCameraOptions {
            credentials: Some(("viewer".to_owned(), "hidden-pw".to_owned())),
            ..FakeCameraOptions::default()
        };
        assert!(!format!("{options:?}").contains("hidden-pw"));
        let bad = FakeRtspCamera::start(FakeCameraOptions {
            width: 0,
            ..FakeCameraOptions::default()
        });
        assert!(bad.is_err());
    }
}

/// Pushes H.264 RTP (320×240, keyframe every 15 frames) to `port` on loopback until dropped.
struct RtpPusher(gstreamer::Pipeline);

impl RtpPusher {
    fn start(port: u16, payload_type: u8) -> RtpPusher {
        use gstreamer::prelude::*;
        crate::init().expect("GStreamer");
        let pipeline = gstreamer::parse::launch(&format!(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! \
             x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! \
             rtph264pay pt={payload_type} mtu=1000 config-interval=-1 ! \
             udpsink host=127.0.0.1 port={port} sync=false"
        ))
        .expect("sender pipeline")
        .downcast::<gstreamer::Pipeline>()
        .expect("a pipeline");
        pipeline
            .set_state(gstreamer::State::Playing)
            .expect("sender plays");
        RtpPusher(pipeline)
    }
}

impl Drop for RtpPusher {
    fn drop(&mut self) {
        use gstreamer::prelude::*;
        let _ = self.0.set_state(gstreamer::State::Null);
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn pushed_rtp_is_repayloaded_or_passed_through() {
    for passthrough in [false, true] {
        let port = free_udp_port();
        let (sink, rx) = Collector::new();
        let camera = CameraPipeline::start(
            "pushed",
            source(&format!(
                "rtp://127.0.0.1:{port}?pt=100&passthrough={passthrough}"
            )),
            sink,
            CameraOptions::default(),
        )
        .expect("camera starts");
        let _pusher = RtpPusher::start(port, 100);
        let mut sizes = Vec::new();
        let mut payload_types = Vec::new();
        let found = receive_until(&rx, Duration::from_secs(10), |packet| {
            let rtp = parse_rtp_h264(packet).expect("RTP with H.264");
            sizes.push(packet.len());
            payload_types.push(rtp.payload_type);
            rtp.has(NAL_IDR) && sizes.len() > 30
        });
        assert!(
            found,
            "passthrough={passthrough}: no IDR after {} packets",
            sizes.len()
        );
        assert!(wait_until(Duration::from_secs(2), || camera.state()
            == CameraState::Playing));
        // Re-payloaded packets are the gateway's own (pt 96); passed-through ones the sender's.
        let expected_pt = if passthrough { 100 } else { 96 };
        assert!(
            payload_types.iter().all(|pt| *pt == expected_pt),
            "{payload_types:?}"
        );
        let largest = sizes.iter().max().copied().unwrap_or(0);
        if passthrough {
            assert!(largest <= 1000, "the sender's MTU: {largest}");
        } else {
            assert!(largest <= 1200, "{largest}");
        }
        camera.stop();
    }
}
