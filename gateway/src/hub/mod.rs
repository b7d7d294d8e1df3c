//! The media hub: per camera, a feed that fans the pipeline's RTP packets out to viewers through
//! bounded queues. It knows neither GStreamer nor WebRTC: packets in as `Bytes`, packets out as
//! [`MediaPacket`]s.

pub mod feed;
pub mod h264;
pub mod media_packet;
pub mod rtp_header;

pub use feed::{CameraFeed, KeyframeSource, Subscription};
pub use media_packet::MediaPacket;
