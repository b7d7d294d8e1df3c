//! The hand-over point between a camera pipeline (GStreamer's threads) and its consumer.

use bytes::Bytes;

/// Receives every RTP packet a camera pipeline produces: H.264 (RFC 6184; or H.265, RFC 7798,
/// when [`PacketSink::on_video_codec`] says so), payload type 96,
/// 90 kHz clock, packets <= 1200 bytes, SPS/PPS sent in-band before every IDR.
///
/// Called on a GStreamer streaming thread: must not block, must not call back into the pipeline
/// (no [`CameraPipeline::stop`](crate::CameraPipeline::stop) from here: it would wait for the
/// very thread it runs on). Hand the packet to a bounded, non-blocking queue and return.
///
/// The [`Bytes`] wraps the mapped `gst::Buffer` itself (no payload copy); the buffer goes back to
/// GStreamer when the last clone of the `Bytes` is dropped.
pub trait PacketSink: Send + Sync + 'static {
    /// One RTP packet, header included.
    fn on_packet(&self, packet: Bytes);

    /// The video codec of the packets that follow (a video sink is told before its first packet,
    /// and again if a camera comes back with another codec). H.264 when never called.
    fn on_video_codec(&self, _codec: crate::VideoCodec) {}
}
