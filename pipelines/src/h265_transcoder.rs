//! H.265 to H.264, for browsers that do not take H.265: one transcoder per camera, shared by all
//! of its H.264 viewers, started by its owner when the first such viewer comes and dropped when
//! the last one goes. H.265 RTP packets in (pushed, never blocking the camera's thread), H.264
//! RTP packets out to a [`PacketSink`], the same shape as every camera pipeline's.
//!
//! `appsrc ! rtph265depay ! h265parse ! avdec_h265 ! videoconvert ! x264enc (zerolatency,
//! constrained baseline) ! h264parse ! rtph264pay ! appsink`. Its input queue drops the oldest
//! packets when the decoder falls behind, so memory stays bounded.

use std::sync::Arc;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::delivery::{self, FlowStats};
use crate::error::PipelineError;
use crate::launch::{bus_error, element, launch};
use crate::packet_sink::PacketSink;

/// Bytes of H.265 RTP queued before the oldest are dropped (about 2 s of an 8 Mbit/s camera).
const MAX_QUEUED_BYTES: u64 = 2 * 1024 * 1024;

/// A running H.265 → H.264 transcoder; stopped (set to NULL) on drop.
pub struct H265ToH264Transcoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    keyframe_pad: Option<gst::Pad>,
}

impl H265ToH264Transcoder {
    /// Starts a transcoder whose H.264 output (at `bitrate_kbps`) goes to `sink`.
    pub fn start(
        sink: Arc<dyn PacketSink>,
        bitrate_kbps: u32,
    ) -> Result<H265ToH264Transcoder, PipelineError> {
        let description = format!(
            "appsrc name=src format=time is-live=true do-timestamp=true block=false \
             leaky-type=downstream max-bytes={MAX_QUEUED_BYTES} \
             caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=H265,payload=96\" ! \
             rtph265depay ! h265parse ! avdec_h265 ! videoconvert ! \
             x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=60 \
             bitrate={bitrate_kbps} ! video/x-h264,profile=constrained-baseline ! \
             h264parse ! rtph264pay pt=96 mtu=1200 config-interval=-1 aggregate-mode=zero-latency ! \
             appsink name=sink emit-signals=false sync=false max-buffers=64 drop=true \
             enable-last-sample=false"
        );
        let pipeline = launch(&description)?;
        let appsrc: gst_app::AppSrc = element(&pipeline, "src")?;
        let appsink: gst_app::AppSink = element(&pipeline, "sink")?;
        delivery::connect_sink(&appsink, sink, Arc::new(FlowStats::new()));
        if pipeline.set_state(gst::State::Playing).is_err() {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(PipelineError::Build(
                "the transcoder refused to start (state change to PLAYING failed)".to_owned(),
            ));
        }
        Ok(H265ToH264Transcoder {
            keyframe_pad: appsink.static_pad("sink"),
            pipeline,
            appsrc,
        })
    }

    /// Queues one H.265 RTP packet. Never blocks; `false` when the transcoder has stopped.
    pub fn push(&self, packet: Bytes) -> bool {
        self.appsrc
            .push_buffer(gst::Buffer::from_slice(packet))
            .is_ok()
    }

    /// Asks the encoder for a keyframe (a new H.264 viewer, or one that lost packets).
    pub fn request_keyframe(&self) {
        if let Some(pad) = &self.keyframe_pad {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            let _ = pad.push_event(event);
        }
    }

    /// The error the transcoder stopped on, if any (drains its bus).
    pub fn error(&self) -> Option<String> {
        bus_error(&self.pipeline)
    }
}

impl Drop for H265ToH264Transcoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Collector, NAL_IDR, NAL_SPS, parse_rtp_h264, receive_until};
    use std::time::Duration;

    #[test]
    fn h265_rtp_comes_out_as_h264_rtp_with_parameter_sets_before_the_idr() {
        crate::init().unwrap();
        let source = gst::parse::launch(
            "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
             x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! \
             rtph265pay pt=96 mtu=1200 config-interval=-1 ! appsink name=sink sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let source_sink = source
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .unwrap();
        source.set_state(gst::State::Playing).unwrap();
        let (sink, rx) = Collector::new();
        let transcoder = H265ToH264Transcoder::start(sink, 800).unwrap();
        while let Some(sample) = source_sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
            let buffer = sample.buffer().unwrap();
            let map = buffer.map_readable().unwrap();
            assert!(transcoder.push(Bytes::copy_from_slice(&map)));
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = source.set_state(gst::State::Null);
        let mut sps = false;
        let got = receive_until(&rx, Duration::from_secs(10), |packet| {
            let rtp = parse_rtp_h264(packet).expect("H.264 RTP");
            assert_eq!(rtp.payload_type, 96);
            sps |= rtp.has(NAL_SPS);
            sps && rtp.has(NAL_IDR)
        });
        assert!(got, "an H.264 keyframe came out");
        assert!(transcoder.error().is_none());
    }
}
