//! The media hub: per camera, a feed that fans the pipeline's RTP packets out to viewers through
//! bounded queues (a viewer's own, or an egress shard's shared by its viewers), and keeps the
//! camera's current GOP so that new viewers start at once (and snapshots decode its keyframe).
//! It knows neither GStreamer nor WebRTC: packets in as `Bytes`, packets out as [`MediaPacket`]s.

pub mod feed;
pub mod gop_cache;
pub mod h264;
pub mod h265;
pub mod keyframe;
pub mod media_packet;
pub mod recent_packets;
pub mod rtp_header;

pub use feed::{Attachment, CameraFeed, KeyframeSource, MediaSink, Subscription};
pub use keyframe::{Keyframe, KeyframeCollector, KeyframeId};
pub use media_packet::MediaPacket;
