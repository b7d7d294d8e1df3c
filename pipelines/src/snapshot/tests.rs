//! Snapshots from real x264 keyframes, with every decoder this machine has, and broken input that
//! must give an error (never a panic, never a hang).

use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::*;

/// One frame of `pattern` encoded by x264 (`profile`: caps after the encoder) and payloaded like
/// a camera pipeline's output: the RTP packets of one keyframe access unit.
fn keyframe_packets(width: u32, height: u32, profile: &str) -> Vec<Bytes> {
    crate::init().expect("GStreamer");
    let description = format!(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width={width},height={height} ! \
         x264enc tune=zerolatency speed-preset=ultrafast ! {profile} ! \
         rtph264pay pt=96 mtu=1200 config-interval=-1 aggregate-mode=zero-latency ! \
         appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&description)
        .expect("encoder pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut packets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !sink.is_eos() {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
            let buffer = sample.buffer().expect("buffer");
            let map = buffer.map_readable().expect("readable");
            packets.push(Bytes::copy_from_slice(map.as_slice()));
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(sink.is_eos(), "the encoder finished within 10 s");
    assert!(packets.len() > 1, "a keyframe spans several packets");
    let last = packets.last().expect("packets");
    assert!(
        last[1] & 0x80 != 0,
        "the access unit's last packet has the marker bit"
    );
    packets
}

fn installed_decoders() -> Vec<&'static str> {
    crate::init().expect("GStreamer");
    H264_DECODERS
        .into_iter()
        .filter(|name| gst::ElementFactory::find(name).is_some())
        .collect()
}

#[test]
fn every_installed_decoder_makes_a_jpeg_of_the_keyframe_s_size() {
    let decoders = installed_decoders();
    assert!(!decoders.is_empty(), "no H.264 decoder installed");
    let packets = keyframe_packets(320, 240, "video/x-h264,profile=constrained-baseline");
    for decoder in decoders {
        let started = Instant::now();
        let picture = jpeg_with_decoder(decoder, &packets, JpegQuality::DEFAULT)
            .unwrap_or_else(|e| panic!("{decoder}: {e}"));
        println!(
            "{decoder}: {} packets -> {} byte JPEG in {} ms",
            packets.len(),
            picture.jpeg.len(),
            started.elapsed().as_millis()
        );
        assert_eq!((picture.width, picture.height), (320, 240), "{decoder}");
        assert_eq!(picture.decoder, decoder);
        assert_eq!(&picture.jpeg[..2], [0xff, 0xd8], "SOI");
        assert_eq!(&picture.jpeg[picture.jpeg.len() - 2..], [0xff, 0xd9], "EOI");
    }
}

#[test]
fn the_preferred_decoder_takes_high_profile_and_lower_quality_is_smaller() {
    let packets = keyframe_packets(640, 360, "video/x-h264,profile=high");
    let best = jpeg_from_keyframe(&packets, JpegQuality::new(95).unwrap()).expect("decoded");
    let small = jpeg_from_keyframe(&packets, JpegQuality::new(20).unwrap()).expect("decoded");
    assert_eq!((best.width, best.height), (640, 360));
    assert_eq!(best.decoder, h264_decoder().unwrap());
    assert!(
        small.jpeg.len() < best.jpeg.len(),
        "quality 20: {} bytes, quality 95: {} bytes",
        small.jpeg.len(),
        best.jpeg.len()
    );
}

#[test]
fn broken_keyframes_are_errors_within_the_timeout() {
    let packets = keyframe_packets(320, 240, "video/x-h264,profile=constrained-baseline");
    let header = packets[0][..12].to_vec();
    let garbage_payload: Vec<Bytes> = (0..8u8)
        .map(|i| {
            let mut p = header.clone();
            p.extend((0..900u32).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i)));
            Bytes::from(p)
        })
        .collect();
    let not_rtp: Vec<Bytes> = (0..5)
        .map(|_| Bytes::from_static(b"not rtp at all"))
        .collect();
    let cases: Vec<(&str, Vec<Bytes>)> = vec![
        ("no packets", Vec::new()),
        ("not RTP", not_rtp),
        ("RTP with a garbage payload", garbage_payload),
        ("only the parameter sets", packets[..1].to_vec()),
        (
            "the keyframe's first half",
            packets[..packets.len() / 2].to_vec(),
        ),
        (
            "too large",
            vec![Bytes::from(vec![0x80; MAX_KEYFRAME_BYTES + 1])],
        ),
    ];
    for decoder in installed_decoders() {
        for (what, case) in &cases {
            let started = Instant::now();
            let result = jpeg_with_decoder(decoder, case, JpegQuality::DEFAULT);
            let took = started.elapsed();
            println!("{decoder}, {what}: {result:?} in {} ms", took.as_millis());
            assert!(
                took < DECODE_TIMEOUT + Duration::from_secs(2),
                "{decoder}, {what}: bounded"
            );
            // A decoder may conceal a damaged picture; what it must not do is hand back anything
            // but a whole JPEG of the stream's size, or panic.
            match result {
                Err(PipelineError::Decode(_)) => {}
                Ok(picture) => {
                    assert_eq!((picture.width, picture.height), (320, 240), "{what}");
                    assert!(picture.jpeg.ends_with(&[0xff, 0xd9]), "{what}");
                }
                Err(other) => panic!("{decoder}, {what}: unexpected error {other}"),
            }
        }
        for (what, case) in &cases[..3] {
            assert!(
                jpeg_with_decoder(decoder, case, JpegQuality::DEFAULT).is_err(),
                "{decoder}: {what} holds no picture"
            );
        }
    }
}

#[test]
fn jpeg_quality_is_one_to_a_hundred() {
    assert_eq!(JpegQuality::new(0), None);
    assert_eq!(JpegQuality::new(101), None);
    assert_eq!(JpegQuality::new(1).map(JpegQuality::get), Some(1));
    assert_eq!(JpegQuality::default().get(), 85);
}
