//! Snapshots: one H.264 keyframe, as the RTP packets of its access unit, decoded to a JPEG
//! picture on demand.
//!
//! `appsrc (application/x-rtp, H264, 90 kHz) ! rtph264depay ! h264parse ! DECODER ! videoconvert
//! ! jpegenc ! appsink`, built for one picture and torn down after it. The decoder is the first of
//! [`H264_DECODERS`] this machine has: FFmpeg's `avdec_h264` (package gstreamer1.0-libav), else
//! OpenH264's `openh264dec` (gstreamer1.0-plugins-bad).
//!
//! [`jpeg_from_keyframe`] blocks the calling thread (run it off an async runtime) for at most
//! [`DECODE_TIMEOUT`] plus the time GStreamer takes to stop, and never panics: packets that are
//! not RTP, not H.264 or not a whole keyframe give an error.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::PipelineError;
use crate::launch::{bus_error, launch};
use crate::video_codec::VideoCodec;

/// H.264 decoders a snapshot can use, best first.
pub const H264_DECODERS: [&str; 2] = ["avdec_h264", "openh264dec"];
/// H.265 decoders a snapshot can use, best first.
pub const H265_DECODERS: [&str; 2] = ["avdec_h265", "libde265dec"];
/// The longest one decode may take, from its first packet to its JPEG.
pub const DECODE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest keyframe accepted, in RTP bytes (a 4K intra picture at a high bitrate fits).
pub const MAX_KEYFRAME_BYTES: usize = 16 * 1024 * 1024;
/// How long each wait for the picture lasts before the bus is checked for errors again.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(20);
/// Name of the appsrc.
const SOURCE: &str = "src";
/// Name of the appsink.
const SINK: &str = "sink";

/// JPEG quality, 1 (smallest) to 100 (best).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JpegQuality(u8);

impl JpegQuality {
    /// jpegenc's default, a good picture at about a tenth of the raw size.
    pub const DEFAULT: JpegQuality = JpegQuality(85);

    /// A quality of `value`, if it is 1..=100.
    pub fn new(value: u8) -> Option<JpegQuality> {
        (1..=100).contains(&value).then_some(JpegQuality(value))
    }

    /// The value, 1..=100.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for JpegQuality {
    fn default() -> Self {
        JpegQuality::DEFAULT
    }
}

/// A decoded keyframe.
#[derive(Clone, PartialEq, Eq)]
pub struct JpegPicture {
    /// The JPEG file (JFIF), from its SOI marker to its EOI marker.
    pub jpeg: Vec<u8>,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// The GStreamer decoder that decoded it (one of [`H264_DECODERS`]).
    pub decoder: &'static str,
}

impl fmt::Debug for JpegPicture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JpegPicture")
            .field("jpeg_bytes", &self.jpeg.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("decoder", &self.decoder)
            .finish()
    }
}

/// The best H.264 decoder installed, or [`PipelineError::MissingElement`] naming the packages
/// that have one.
pub fn h264_decoder() -> Result<&'static str, PipelineError> {
    crate::init()?;
    H264_DECODERS
        .into_iter()
        .find(|name| gst::ElementFactory::find(name).is_some())
        .ok_or_else(|| {
            PipelineError::MissingElement(
                "avdec_h264 (gstreamer1.0-libav) or openh264dec (gstreamer1.0-plugins-bad)"
                    .to_owned(),
            )
        })
}

/// Decodes one H.264 keyframe to a JPEG. `rtp_packets` is its access unit as RTP packets in
/// sequence (RFC 6184, parameter sets in-band), e.g. from the keyframe's first packet up to the
/// one with the marker bit; packets after it are decoded too but only the first picture is kept.
///
/// Blocks for at most [`DECODE_TIMEOUT`] (plus GStreamer's stop); fails with
/// [`PipelineError::Decode`] when the packets hold no picture a decoder can make, and with
/// [`PipelineError::MissingElement`] when no decoder is installed.
pub fn jpeg_from_keyframe(
    rtp_packets: &[Bytes],
    quality: JpegQuality,
) -> Result<JpegPicture, PipelineError> {
    jpeg_with_decoder(h264_decoder()?, rtp_packets, quality)
}

/// [`jpeg_from_keyframe`] for a keyframe of `codec` (H.264, or H.265 as RFC 7798 packs it, with
/// the first of [`H265_DECODERS`] installed).
pub fn jpeg_from_keyframe_of(
    codec: VideoCodec,
    rtp_packets: &[Bytes],
    quality: JpegQuality,
) -> Result<JpegPicture, PipelineError> {
    match codec {
        VideoCodec::H264 => jpeg_from_keyframe(rtp_packets, quality),
        VideoCodec::H265 => {
            crate::init()?;
            let decoder = H265_DECODERS
                .into_iter()
                .find(|name| gst::ElementFactory::find(name).is_some())
                .ok_or_else(|| {
                    PipelineError::MissingElement(
                        "avdec_h265 (gstreamer1.0-libav) or libde265dec (gstreamer1.0-plugins-bad)"
                            .to_owned(),
                    )
                })?;
            check_size(rtp_packets)?;
            let deadline = Instant::now() + DECODE_TIMEOUT;
            Decode::build_for(VideoCodec::H265, decoder, quality)?.run(rtp_packets, deadline)
        }
    }
}

fn check_size(rtp_packets: &[Bytes]) -> Result<(), PipelineError> {
    if rtp_packets.is_empty() {
        return Err(PipelineError::Decode("no packets were given".to_owned()));
    }
    let bytes: usize = rtp_packets.iter().map(Bytes::len).sum();
    if bytes > MAX_KEYFRAME_BYTES {
        return Err(PipelineError::Decode(format!(
            "the keyframe is {bytes} bytes, over the {MAX_KEYFRAME_BYTES} accepted"
        )));
    }
    Ok(())
}

/// [`jpeg_from_keyframe`] with a given decoder (one of [`H264_DECODERS`]).
pub(crate) fn jpeg_with_decoder(
    decoder: &'static str,
    rtp_packets: &[Bytes],
    quality: JpegQuality,
) -> Result<JpegPicture, PipelineError> {
    check_size(rtp_packets)?;
    let deadline = Instant::now() + DECODE_TIMEOUT;
    Decode::build(decoder, quality)?.run(rtp_packets, deadline)
}

/// One decode's pipeline; set to NULL when dropped, whatever happened.
struct Decode {
    decoder: &'static str,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    appsink: gst_app::AppSink,
}

impl Drop for Decode {
    fn drop(&mut self) {
        if self.pipeline.set_state(gst::State::Null).is_err() {
            tracing::debug!("snapshot pipeline did not go to NULL cleanly");
        }
    }
}

impl Decode {
    fn build(decoder: &'static str, quality: JpegQuality) -> Result<Decode, PipelineError> {
        Self::build_for(VideoCodec::H264, decoder, quality)
    }

    fn build_for(
        codec: VideoCodec,
        decoder: &'static str,
        quality: JpegQuality,
    ) -> Result<Decode, PipelineError> {
        crate::init()?;
        // The caps are one quoted property value; `decoder` comes from H264_DECODERS or
        // H265_DECODERS. The H.264 depayloader's output is held to avc: its byte-stream access
        // units (GStreamer 1.22) split the parameter sets from the IDR, and openh264dec then
        // decodes nothing.
        let depayload = match codec {
            VideoCodec::H264 => {
                "encoding-name=H264\" ! rtph264depay ! \
                 video/x-h264,stream-format=avc,alignment=au ! h264parse"
            }
            VideoCodec::H265 => "encoding-name=H265\" ! rtph265depay ! h265parse",
        };
        let description = format!(
            "appsrc name={SOURCE} format=time is-live=false max-bytes=0 block=false \
             caps=\"application/x-rtp,media=video,clock-rate=90000,{depayload} ! \
             {decoder} ! videoconvert ! jpegenc quality={} ! \
             appsink name={SINK} sync=false max-buffers=1 emit-signals=false \
             enable-last-sample=false",
            quality.get()
        );
        let pipeline = launch(&description)?;
        let appsrc = pipeline
            .by_name(SOURCE)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
        let appsink = pipeline
            .by_name(SINK)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok());
        match (appsrc, appsink) {
            (Some(appsrc), Some(appsink)) => Ok(Decode {
                decoder,
                pipeline,
                appsrc,
                appsink,
            }),
            _ => {
                let _ = pipeline.set_state(gst::State::Null);
                Err(PipelineError::Build(
                    "snapshot pipeline has no appsrc or appsink".to_owned(),
                ))
            }
        }
    }

    fn run(&self, rtp_packets: &[Bytes], deadline: Instant) -> Result<JpegPicture, PipelineError> {
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(failure(&self.pipeline).unwrap_or_else(|| {
                PipelineError::Decode("the decoder refused to start".to_owned())
            }));
        }
        for packet in rtp_packets {
            // The buffer borrows the packet's memory (a reference count, no copy).
            let mut buffer = gst::Buffer::from_slice(packet.clone());
            if let Some(buffer) = buffer.get_mut() {
                buffer.set_pts(gst::ClockTime::ZERO);
            }
            if self.appsrc.push_buffer(buffer).is_err() {
                // The pipeline stopped (an error is on the bus): report it below.
                break;
            }
        }
        let _ = self.appsrc.end_of_stream();
        // Bounded by the deadline: each wait lasts at most POLL.
        loop {
            if let Some(sample) = self.appsink.try_pull_sample(POLL) {
                return picture(&sample, self.decoder);
            }
            if let Some(error) = failure(&self.pipeline) {
                return Err(error);
            }
            if self.appsink.is_eos() {
                return Err(PipelineError::Decode(
                    "the packets hold no picture the decoder could make (not a whole H.264 \
                     keyframe)"
                        .to_owned(),
                ));
            }
            if Instant::now() >= deadline {
                return Err(PipelineError::Decode(format!(
                    "no picture within {} ms",
                    DECODE_TIMEOUT.as_millis()
                )));
            }
        }
    }
}

/// The JPEG of an appsink sample, with its size from the caps.
fn picture(sample: &gst::Sample, decoder: &'static str) -> Result<JpegPicture, PipelineError> {
    let size = sample.caps().and_then(|caps| {
        let s = caps.structure(0)?;
        let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
        let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
        Some((width, height))
    });
    let jpeg = sample.buffer().and_then(|buffer| {
        buffer
            .map_readable()
            .ok()
            .map(|map| map.as_slice().to_vec())
    });
    match (jpeg, size) {
        (Some(jpeg), Some((width, height)))
            if jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]) =>
        {
            Ok(JpegPicture {
                jpeg,
                width,
                height,
                decoder,
            })
        }
        _ => Err(PipelineError::Decode(
            "the encoder gave no whole JPEG picture".to_owned(),
        )),
    }
}

/// The first error posted on the bus, as a decode error (bounded: the bus is not waited on).
fn failure(pipeline: &gst::Pipeline) -> Option<PipelineError> {
    bus_error(pipeline).map(PipelineError::Decode)
}

#[cfg(test)]
mod tests;
