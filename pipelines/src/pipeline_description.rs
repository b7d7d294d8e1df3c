//! The GStreamer pipeline of each kind of camera source, from source to RTP in an appsink.
//!
//! Every pipeline ends the same way, so that what reaches the [`PacketSink`](crate::PacketSink) is the same whatever
//! the camera: `h264parse ! rtph264pay pt=96 mtu=1200 config-interval=-1
//! aggregate-mode=zero-latency ! appsink` (`h265parse ! rtph265pay …` for an H.265 RTSP camera). RTSP cameras are depayloaded and re-payloaded (no
//! re-encode) to normalise the MTU and put SPS/PPS in-band before every IDR; test patterns and
//! V4L2 devices are encoded with x264 tuned for latency.
//!
//! The description text never holds an RTSP location or credentials: those are set as rtspsrc
//! properties after parsing, so they appear neither in the text (which is logged) nor in
//! GStreamer's own error messages. Element names are stable: [`SOURCE`], [`PAYLOADER`], [`SINK`],
//! and [`ENCODER`] where there is one.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::PipelineError;
use crate::source::{CameraSource, RtpSource, RtspSource, TestSource};
use crate::video_codec::VideoCodec;

/// Name of the first element (videotestsrc, rtspsrc or v4l2src).
pub(crate) const SOURCE: &str = "src";
/// Name of the x264 encoder (test and v4l2 pipelines).
pub(crate) const ENCODER: &str = "enc";
/// Name of the RTP payloader.
pub(crate) const PAYLOADER: &str = "pay";
/// Name of the appsink.
pub(crate) const SINK: &str = "sink";

/// The appsink every pipeline ends with.
fn video_appsink() -> String {
    format!(
        "appsink name={SINK} emit-signals=false sync=false max-buffers=64 drop=true \
         enable-last-sample=false"
    )
}

/// Parser and payloader for `codec`: packets of at most 1200 bytes, parameter sets before
/// every keyframe.
fn payloader(codec: VideoCodec) -> String {
    let (_, parser, payloader) = codec.elements();
    // rtph265pay, unlike rtph264pay, does not repeat parameter sets it saw only once in the
    // stream: the parser puts VPS/SPS/PPS before every IRAP picture itself.
    let parser_options = match codec {
        VideoCodec::H264 => "",
        VideoCodec::H265 => " config-interval=-1",
    };
    format!(
        "{parser}{parser_options} ! {payloader} name={PAYLOADER} pt=96 mtu=1200 \
         config-interval=-1 aggregate-mode=zero-latency"
    )
}

/// The payloader and sink every H.264 pipeline ends with.
fn rtp_tail() -> String {
    format!("{} ! {}", payloader(VideoCodec::H264), video_appsink())
}

/// x264 for live viewing: no B-frames, no lookahead, constrained baseline (every browser decodes it).
fn x264(gop_frames: u32, bitrate_kbps: u32) -> String {
    format!(
        "x264enc name={ENCODER} tune=zerolatency speed-preset=ultrafast key-int-max={gop_frames} \
         bitrate={bitrate_kbps} ! video/x-h264,profile=constrained-baseline"
    )
}

/// The gst-launch description of a source's pipeline. Holds no location or credentials.
pub(crate) fn describe(source: &CameraSource) -> String {
    match source {
        CameraSource::Test(test) => describe_test(test),
        // The video branch (depayloader, parser, payloader of the camera's codec) is linked
        // between the two when the camera has described its streams: link_rtsp_video.
        CameraSource::Rtsp(rtsp) => format!(
            "rtspsrc name={SOURCE} latency=0 protocols={}  {}",
            rtsp.transport().gst_protocols(),
            video_appsink()
        ),
        CameraSource::Rtp(rtp) => describe_rtp(rtp),
        CameraSource::V4l2(v4l2) => format!(
            // The device path is restricted to [A-Za-z0-9/._:+-] by the parser: safe unquoted.
            "v4l2src name={SOURCE} device={} ! videoconvert ! {} ! {}",
            v4l2.device(),
            x264(30, 2000),
            rtp_tail()
        ),
    }
}

/// Pushed RTP: re-payloaded like an RTSP camera's, or (passthrough) handed on as received.
fn describe_rtp(rtp: &RtpSource) -> String {
    let caps = format!(
        "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload={}",
        rtp.payload_type()
    );
    // An IP address is safe unquoted; the caps are quoted as one property value.
    let source = format!(
        "udpsrc name={SOURCE} address={} port={} buffer-size=4194304 caps=\"{caps}\"",
        rtp.address(),
        rtp.port()
    );
    if rtp.passthrough() {
        format!(
            "{source} ! appsink name={SINK} emit-signals=false sync=false max-buffers=64 \
             drop=true enable-last-sample=false"
        )
    } else {
        format!(
            "{source} ! rtpjitterbuffer latency=50 ! rtph264depay ! {}",
            rtp_tail()
        )
    }
}

fn describe_test(test: &TestSource) -> String {
    let video = format!(
        "videotestsrc name={SOURCE} is-live=true pattern={} ! \
         video/x-raw,width={},height={},framerate={}/1 ! {} ! {}",
        test.pattern(),
        test.width(),
        test.height(),
        test.fps(),
        x264(test.gop_frames(), test.bitrate_kbps()),
        rtp_tail()
    );
    match test.audio() {
        Some(codec) => format!("{video}  {}", crate::audio::test_audio_branch(codec)),
        None => video,
    }
}

/// A pipeline as built, in state NULL.
pub(crate) struct BuiltPipeline {
    pub(crate) pipeline: gst::Pipeline,
    pub(crate) appsink: gst_app::AppSink,
    /// A test source's audio appsink (an RTSP camera's comes when it describes its streams).
    pub(crate) audio_appsink: Option<gst_app::AppSink>,
}

/// Parses a source's description into elements (state NULL), noting its video codec in
/// `video_codec` ([`VideoCodec::to_u8`]): H.264 at once, or an RTSP camera's when it describes its
/// streams.
pub(crate) fn parse_noting_codec(
    source: &CameraSource,
    video_codec: &Arc<AtomicU8>,
) -> Result<BuiltPipeline, PipelineError> {
    let built = parse(source)?;
    match source {
        CameraSource::Rtsp(_) => {
            if let Some(rtspsrc) = built.pipeline.by_name(SOURCE) {
                link_rtsp_video(
                    &built.pipeline,
                    &rtspsrc,
                    &built.appsink,
                    video_codec.clone(),
                );
            }
        }
        _ => video_codec.store(VideoCodec::H264.to_u8(), Ordering::Release),
    }
    Ok(built)
}

/// Links `rtspsrc`'s video pad, once the camera has described its streams, through the
/// depayloader, parser and payloader of its codec (H.264 or H.265) to `appsink`, noting the codec.
/// Other video codecs are refused with a clear error on the bus (the camera then reconnects,
/// with backoff, and says why).
fn link_rtsp_video(
    pipeline: &gst::Pipeline,
    rtspsrc: &gst::Element,
    appsink: &gst_app::AppSink,
    video_codec: Arc<AtomicU8>,
) {
    let pipeline = pipeline.downgrade();
    let appsink = appsink.downgrade();
    rtspsrc.connect_pad_added(move |rtspsrc, pad| {
        let (Some(pipeline), Some(appsink)) = (pipeline.upgrade(), appsink.upgrade()) else {
            return;
        };
        let Some(structure) = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.to_owned()))
        else {
            return;
        };
        if structure.get::<&str>("media").ok() != Some("video") {
            return;
        }
        let Some(sink_pad) = appsink.static_pad("sink") else {
            return;
        };
        if sink_pad.is_linked() {
            // A second video stream: only the first is taken.
            return;
        }
        let encoding = structure.get::<&str>("encoding-name").unwrap_or("");
        let Some(codec) = VideoCodec::from_encoding_name(encoding) else {
            let encoding: String = encoding.chars().take(32).collect();
            gst::element_error!(
                rtspsrc,
                gst::StreamError::CodecNotFound,
                (
                    "the camera sends {} video; H.264 and H.265 are supported",
                    encoding
                )
            );
            return;
        };
        let (depayloader, _, _) = codec.elements();
        let description = format!("{depayloader} ! {}", payloader(codec));
        let bin = match gst::parse::bin_from_description(&description, true) {
            Ok(bin) => bin,
            Err(e) => {
                gst::element_error!(
                    rtspsrc,
                    gst::CoreError::MissingPlugin,
                    ("cannot build the {} branch: {}", codec.as_str(), e)
                );
                return;
            }
        };
        if pipeline.add(&bin).is_err() {
            return;
        }
        let linked = bin
            .static_pad("src")
            .is_some_and(|src| src.link(&sink_pad).is_ok())
            && bin
                .static_pad("sink")
                .is_some_and(|sink| pad.link(&sink).is_ok());
        if !linked {
            gst::element_error!(
                rtspsrc,
                gst::CoreError::Negotiation,
                ("the camera's {} stream could not be linked", codec.as_str())
            );
            return;
        }
        video_codec.store(codec.to_u8(), Ordering::Release);
        let _ = bin.sync_state_with_parent();
    });
}

/// Parses a source's description into elements (state NULL) and sets the properties that are
/// kept out of the text (rtspsrc location and credentials). Does not attach callbacks.
pub(crate) fn parse(source: &CameraSource) -> Result<BuiltPipeline, PipelineError> {
    crate::init()?;
    let description = describe(source);
    tracing::debug!(pipeline = %description, "building camera pipeline");
    let pipeline = crate::launch::launch(&description)?;
    let appsink: gst_app::AppSink = crate::launch::element(&pipeline, SINK)?;
    if let CameraSource::Rtsp(rtsp) = source {
        configure_rtspsrc(&pipeline, rtsp)?;
    }
    let audio_appsink = pipeline
        .by_name(crate::audio::AUDIO_SINK)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok());
    Ok(BuiltPipeline {
        pipeline,
        appsink,
        audio_appsink,
    })
}

fn configure_rtspsrc(pipeline: &gst::Pipeline, rtsp: &RtspSource) -> Result<(), PipelineError> {
    let rtspsrc = pipeline
        .by_name(SOURCE)
        .ok_or_else(|| PipelineError::Build(format!("no rtspsrc named '{SOURCE}'")))?;
    rtspsrc.set_property("location", rtsp.location());
    if let Some(ca) = rtsp.tls_ca() {
        let database = gio::TlsFileDatabase::new(ca).map_err(|e| {
            PipelineError::Build(format!("tls_ca {}: {}", ca.display(), e.message()))
        })?;
        rtspsrc.set_property("tls-database", database.upcast::<gio::TlsDatabase>());
    }
    if let Some(credentials) = rtsp.credentials() {
        rtspsrc.set_property("user-id", credentials.user.as_str());
        if let Some(password) = &credentials.password {
            rtspsrc.set_property("user-pw", password.as_str());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
