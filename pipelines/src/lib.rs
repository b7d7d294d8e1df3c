//! Straja's GStreamer pipelines: camera ingest (RTSP, V4L2, test patterns) to H.264 RTP, and
//! snapshots (a keyframe decoded to a JPEG).
//!
//! This crate knows GStreamer and nothing of HTTP, WebRTC or tokio. A camera is a
//! [`CameraSource`] (parsed from the `source = "…"` string of the config) run by a
//! [`CameraPipeline`], whose supervisor thread keeps a GStreamer pipeline playing and hands every
//! RTP packet to a [`PacketSink`] as [`bytes::Bytes`] over the GStreamer buffer (no copy).
//!
//! Threads: GStreamer's streaming threads call the sink, which must not block; the supervisor
//! thread owns the pipeline and its bus; callers only read atomics. No lock is held across a
//! GStreamer call.
//!
//! Errors: nothing here panics on bad input (a source string, a camera's stream); a panic is a
//! bug. Credentials of a source never reach a log line, an error or a `Debug` print:
//! [`CameraSource::redacted`] is the only form of a source that is ever shown.
//!
//! Recording: [`FragmentedMp4Muxer`] turns a camera's RTP into fragmented MP4 for one segment;
//! [`demux_segment`] and [`Mp4Export`] turn recorded segments back into one playable MP4.
//!
//! Snapshots: [`jpeg_from_keyframe`] decodes one H.264 keyframe (its RTP packets) to a JPEG.
//!
//! With the `test-camera` feature, [`FakeRtspCamera`] plays an IP camera in-process, and
//! [`h264_rtp_clip`] makes a short encoded RTP clip, for tests.
#![deny(missing_docs)]

mod audio;
mod backoff;
mod camera;
mod debug_log;
mod delivery;
mod error;
mod failure_kind;
mod fragmented_mp4_muxer;
mod h265_transcoder;
mod launch;
mod mp4_export;
mod multi_track_mp4_export;
mod packet_sink;
mod pipeline_description;
#[cfg(any(test, feature = "test-camera"))]
mod rtp_clip;
mod snapshot;
mod source;
#[cfg(feature = "test-camera")]
mod test_camera;
#[cfg(test)]
mod test_support;
mod track_codec;
mod video_codec;

pub use audio::{AudioCodec, OPUS_PAYLOAD_TYPE};
pub use camera::{CameraOptions, CameraPipeline, CameraState};
pub use debug_log::route_debug_log_to_tracing;
pub use error::{PipelineError, SourceError};
pub use failure_kind::FailureKind;
pub use fragmented_mp4_muxer::FragmentedMp4Muxer;
pub use h265_transcoder::H265ToH264Transcoder;
pub use mp4_export::{MediaSample, Mp4Export, SegmentSamples, demux_segment};
pub use multi_track_mp4_export::{MAX_TRACKS, MultiTrackMp4Export, TrackSpec};
pub use packet_sink::PacketSink;
#[cfg(any(test, feature = "test-camera"))]
pub use rtp_clip::{h264_rtp_clip, h265_rtp_clip, opus_rtp_clip};
pub use snapshot::{
    DECODE_TIMEOUT, H264_DECODERS, H265_DECODERS, JpegPicture, JpegQuality, MAX_KEYFRAME_BYTES,
    h264_decoder, jpeg_from_keyframe, jpeg_from_keyframe_of,
};
pub use source::{CameraSource, RtspSource, RtspTransport, TEST_PATTERNS, TestSource, V4l2Source};
#[cfg(feature = "test-camera")]
pub use test_camera::{FakeCameraAudio, FakeCameraOptions, FakeCameraTransport, FakeRtspCamera};
pub use track_codec::TrackCodec;
pub use video_codec::VideoCodec;

/// Initialises GStreamer. Idempotent and cheap after the first call; every constructor of this
/// crate calls it, so calling it first is only needed to fail early.
pub fn init() -> Result<(), PipelineError> {
    gstreamer::init().map_err(|e| PipelineError::Init(e.to_string()))
}
