//! Short RTP clips made by real encoders, for tests of what consumes camera or participant packets
//! (muxers, recorders, exports) without a camera: `videotestsrc ! x264enc ! rtph264pay` (payload
//! type 96, ≤ 1200 bytes, SPS/PPS in-band, the shape a camera pipeline hands on), and Opus audio.

use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::PipelineError;

/// `frames` frames of 320×240 at 30 fps with a keyframe every `gop_frames`, as RTP packets, each
/// with its media time from the first frame (from the RTP timestamp).
pub fn h264_rtp_clip(
    frames: u32,
    gop_frames: u32,
) -> Result<Vec<(Bytes, Duration)>, PipelineError> {
    rtp_clip(
        frames,
        &format!(
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop_frames} ! \
             video/x-h264,profile=constrained-baseline ! \
             rtph264pay pt=96 mtu=1200 config-interval=-1 aggregate-mode=zero-latency"
        ),
    )
}

/// Like [`h264_rtp_clip`], in H.265 (x265), VPS/SPS/PPS before every IRAP picture.
pub fn h265_rtp_clip(
    frames: u32,
    gop_frames: u32,
) -> Result<Vec<(Bytes, Duration)>, PipelineError> {
    rtp_clip(
        frames,
        &format!(
            "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop_frames} ! \
             h265parse config-interval=-1 ! \
             rtph265pay pt=96 mtu=1200 config-interval=-1 aggregate-mode=zero-latency"
        ),
    )
}

/// `frames` 20 ms frames of a 440 Hz tone in stereo Opus, as RTP packets (payload type 111), each
/// with its media time from the first (from the RTP timestamp).
pub fn opus_rtp_clip(frames: u32) -> Result<Vec<(Bytes, Duration)>, PipelineError> {
    rtp_packets(
        &format!(
            "audiotestsrc num-buffers={frames} samplesperbuffer=960 freq=440 ! \
             audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=20 ! \
             rtpopuspay pt={} ! appsink name=sink sync=false",
            crate::OPUS_PAYLOAD_TYPE
        ),
        48_000,
    )
}

fn rtp_clip(frames: u32, encode: &str) -> Result<Vec<(Bytes, Duration)>, PipelineError> {
    rtp_packets(
        &format!(
            "videotestsrc num-buffers={frames} pattern=ball ! \
             video/x-raw,width=320,height=240,framerate=30/1 ! {encode} ! \
             appsink name=sink sync=false"
        ),
        90_000,
    )
}

/// Runs `description` (ending in an appsink named `sink`) and collects its RTP packets.
fn rtp_packets(
    description: &str,
    clock_rate: u64,
) -> Result<Vec<(Bytes, Duration)>, PipelineError> {
    crate::init()?;
    let pipeline = gst::parse::launch(description)
        .map_err(|e| PipelineError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| PipelineError::Build("not a pipeline".to_owned()))?;
    let appsink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| PipelineError::Build("no appsink".to_owned()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| PipelineError::Build(e.to_string()))?;
    let mut packets = Vec::new();
    let mut first_timestamp = None;
    let timeout = gst::ClockTime::from_seconds(20);
    while let Some(sample) = appsink.try_pull_sample(timeout) {
        let Some(buffer) = sample.buffer_owned() else {
            continue;
        };
        let Ok(mapped) = buffer.into_mapped_buffer_readable() else {
            continue;
        };
        let data = Bytes::from_owner(mapped);
        let Some(timestamp) = data
            .get(4..8)
            .map(|t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
        else {
            continue;
        };
        let first = *first_timestamp.get_or_insert(timestamp);
        let ticks = timestamp.wrapping_sub(first);
        let micros = u64::from(ticks) * 1_000_000 / clock_rate;
        packets.push((data, Duration::from_micros(micros)));
    }
    let _ = pipeline.set_state(gst::State::Null);
    if packets.is_empty() {
        return Err(PipelineError::Build(
            "the clip encoder produced nothing".to_owned(),
        ));
    }
    Ok(packets)
}
