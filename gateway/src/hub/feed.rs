//! One camera's feed: receives the pipeline's RTP packets (on a GStreamer thread) and fans them out
//! to every sink without blocking and without a lock: the sink list is swapped copy-on-write when
//! sinks come and go, and read with one atomic load per packet.
//!
//! A sink is a bounded queue: one viewer's own ([`CameraFeed::subscribe`]), or a WebRTC egress
//! shard's, which serves all of its viewers of this camera from one queue
//! ([`CameraFeed::attach`]), so the fan-out costs one enqueue per shard, not per viewer.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use straja_pipelines::{PacketSink, VideoCodec};
use tokio::sync::mpsc;

use super::gop_cache::{DEFAULT_GOP_CACHE_BYTES, GopCache};
use super::keyframe::Keyframe;
use super::media_packet::MediaPacket;
use super::recent_packets::RecentPackets;
use super::rtp_header::RtpHeader;
use super::{h264, h265};
use crate::metrics::CameraMetrics;

/// Packets a viewer's queue holds before the hub drops for it (about 1 s of 2 Mbit/s video).
pub const VIEWER_QUEUE_PACKETS: usize = 256;
/// While a keyframe request is outstanding (no keyframe seen since), further requests within this
/// interval are merged into it; once the keyframe has come, the next request goes at once.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// Something that can make a camera send a keyframe soon.
pub trait KeyframeSource: Send + Sync {
    /// Asks for a keyframe; must not block.
    fn request_keyframe(&self);
}

/// Where a feed's packets go: a bounded queue that never blocks the camera's thread.
pub trait MediaSink: Send + Sync {
    /// Queues `packet`; `false` when there is no room (the packet is then dropped for this sink,
    /// and the sink resumes its viewers at a keyframe).
    fn offer(&self, packet: &MediaPacket) -> bool;
}

/// One sink of the fan-out.
struct Subscriber {
    id: u64,
    sink: Arc<dyn MediaSink>,
}

/// A viewer's own queue.
struct ViewerQueue {
    queue: mpsc::Sender<MediaPacket>,
    /// Set when a packet could not be queued; the viewer then resumes at a keyframe.
    lost: Arc<AtomicBool>,
}

impl MediaSink for ViewerQueue {
    fn offer(&self, packet: &MediaPacket) -> bool {
        if self.queue.try_send(packet.clone()).is_ok() {
            return true;
        }
        self.lost.store(true, Ordering::Relaxed);
        false
    }
}

/// A camera's feed: the fan-out point between its pipeline and its viewers.
pub struct CameraFeed {
    id: Arc<str>,
    subscribers: ArcSwap<Vec<Arc<Subscriber>>>,
    next_subscriber: AtomicU64,
    /// The camera's pipeline (replaced when a reload restarts it).
    keyframe_source: RwLock<Option<Arc<dyn KeyframeSource>>>,
    created: Instant,
    /// Milliseconds since `created` of the last keyframe request sent upstream, plus one (0: never).
    last_keyframe_request: AtomicU64,
    /// Milliseconds since `created` of the last keyframe seen, plus one (0: never).
    last_keyframe: AtomicU64,
    /// The RTP timestamp of the last keyframe's access unit (`u64::MAX` before the first).
    last_keyframe_timestamp: AtomicU64,
    /// Video frames received (packets with the marker bit).
    frames: AtomicU64,
    /// The SSRC of the camera stream's last packet (`u64::MAX` before the first).
    ssrc: AtomicU64,
    /// Times the stream came back with a new SSRC (see [`MediaPacket::epoch`]).
    epoch: AtomicU32,
    /// The current GOP, for viewers to start from.
    gop: GopCache,
    /// The last video packets, for viewers' NACKs.
    recent: RecentPackets,
    /// An audio feed: every packet is a starting point, nothing is cached.
    audio: bool,
    /// The video codec: 0 H.264 (also before the pipeline says), 1 H.265.
    h265: AtomicBool,
    /// Set once the GOP outgrew the cache's bound (logged once).
    gop_overflow_logged: AtomicBool,
    metrics: CameraMetrics,
}

impl CameraFeed {
    /// A feed with no viewers and a GOP cache of the default size.
    pub fn new(id: &str, metrics: CameraMetrics) -> Arc<CameraFeed> {
        Self::with_gop_cache(id, metrics, DEFAULT_GOP_CACHE_BYTES)
    }

    /// A feed with no viewers whose GOP cache holds at most `gop_cache_bytes` (0: no cache).
    pub fn with_gop_cache(
        id: &str,
        metrics: CameraMetrics,
        gop_cache_bytes: usize,
    ) -> Arc<CameraFeed> {
        Self::build(id, metrics, gop_cache_bytes, false)
    }

    fn build(
        id: &str,
        metrics: CameraMetrics,
        gop_cache_bytes: usize,
        audio: bool,
    ) -> Arc<CameraFeed> {
        Arc::new(CameraFeed {
            id: Arc::from(id),
            subscribers: ArcSwap::from_pointee(Vec::new()),
            next_subscriber: AtomicU64::new(0),
            keyframe_source: RwLock::new(None),
            created: Instant::now(),
            last_keyframe_request: AtomicU64::new(0),
            last_keyframe: AtomicU64::new(0),
            last_keyframe_timestamp: AtomicU64::new(u64::MAX),
            frames: AtomicU64::new(0),
            ssrc: AtomicU64::new(u64::MAX),
            epoch: AtomicU32::new(0),
            gop: GopCache::new(gop_cache_bytes),
            recent: RecentPackets::default(),
            audio,
            h265: AtomicBool::new(false),
            gop_overflow_logged: AtomicBool::new(false),
            metrics,
        })
    }

    /// A camera's audio feed: the same fan-out, where every packet is a point a viewer can
    /// start from and nothing is cached (audio needs no keyframe).
    pub fn audio(id: &str, metrics: CameraMetrics) -> Arc<CameraFeed> {
        Self::build(id, metrics, 0, true)
    }

    /// The video codec of the feed's packets.
    pub fn video_codec(&self) -> VideoCodec {
        if self.h265.load(Ordering::Relaxed) {
            VideoCodec::H265
        } else {
            VideoCodec::H264
        }
    }

    /// True for an audio feed.
    pub fn is_audio(&self) -> bool {
        self.audio
    }

    /// The camera id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The camera's metric handles.
    pub fn metrics(&self) -> &CameraMetrics {
        &self.metrics
    }

    /// Connects the feed to what can produce keyframes (the camera's pipeline), in place of the
    /// one before (a pipeline restarted by a reload).
    pub fn set_keyframe_source(&self, source: Arc<dyn KeyframeSource>) {
        *self
            .keyframe_source
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    /// Changes the bound on the cached GOP (a reload).
    pub fn set_gop_cache_bytes(&self, bytes: usize) {
        self.gop.set_max_bytes(bytes);
    }

    /// Video frames received so far (for the frame-rate gauge).
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Number of sinks now (viewer queues and egress shards).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load().len()
    }

    /// Adds a viewer with its own queue. Packets arrive on the returned subscription until it is
    /// dropped.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let (queue, receiver) = mpsc::channel(VIEWER_QUEUE_PACKETS);
        let lost = Arc::new(AtomicBool::new(false));
        let attachment = self.attach(Arc::new(ViewerQueue {
            queue,
            lost: lost.clone(),
        }));
        Subscription {
            attachment,
            receiver,
            lost,
        }
    }

    /// Adds a sink. Packets are offered to it until the returned attachment is dropped.
    pub fn attach(self: &Arc<Self>, sink: Arc<dyn MediaSink>) -> Attachment {
        let subscriber = Arc::new(Subscriber {
            id: self.next_subscriber.fetch_add(1, Ordering::Relaxed),
            sink,
        });
        let id = subscriber.id;
        self.subscribers.rcu(|current| {
            let mut next = Vec::with_capacity(current.len() + 1);
            next.extend(current.iter().cloned());
            next.push(subscriber.clone());
            next
        });
        Attachment {
            feed: self.clone(),
            id,
        }
    }

    fn unsubscribe(&self, id: u64) {
        self.subscribers.rcu(|current| {
            current
                .iter()
                .filter(|s| s.id != id)
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    fn now_ms(&self) -> u64 {
        self.created.elapsed().as_millis() as u64 + 1
    }

    /// Asks the camera for a keyframe. Requests made while one is outstanding (sent less than
    /// [`KEYFRAME_REQUEST_INTERVAL`] ago, no keyframe seen since) are merged into it.
    pub fn request_keyframe(&self) {
        let Some(source) = self
            .keyframe_source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let now = self.now_ms();
        let last = self.last_keyframe_request.load(Ordering::Relaxed);
        let outstanding = last != 0 && self.last_keyframe.load(Ordering::Relaxed) < last;
        let interval = KEYFRAME_REQUEST_INTERVAL.as_millis() as u64;
        if outstanding && now.saturating_sub(last) < interval {
            return;
        }
        if self
            .last_keyframe_request
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.metrics.keyframe_requests.inc();
            source.request_keyframe();
        }
    }

    /// Takes one RTP packet from the camera and offers it to every viewer. Never blocks: a viewer
    /// whose queue is full loses the packet and is marked to resume at the next keyframe.
    pub fn publish(&self, data: Bytes) {
        let Some(header) = RtpHeader::parse(&data) else {
            return;
        };
        self.metrics.ingest_packets.inc();
        self.metrics.ingest_bytes.inc_by(data.len() as u64);
        let payload = &data[header.payload_offset..header.payload_offset + header.payload_len];
        let keyframe_start = self.audio
            || if self.h265.load(Ordering::Relaxed) {
                h265::starts_keyframe(payload)
            } else {
                h264::starts_keyframe(payload)
            };
        if keyframe_start {
            let now = self.now_ms();
            let previous = self.last_keyframe.swap(now, Ordering::Relaxed);
            // An access unit's packets (SPS, PPS, IDR) all start it: one keyframe per timestamp.
            let timestamp = u64::from(header.timestamp);
            if !self.audio
                && self
                    .last_keyframe_timestamp
                    .swap(timestamp, Ordering::Relaxed)
                    != timestamp
                && previous != 0
            {
                let interval = now.saturating_sub(previous) as f64 / 1000.0;
                self.metrics.keyframe_interval.set(interval);
            }
        }
        if header.marker && !self.audio {
            self.frames.fetch_add(1, Ordering::Relaxed);
        }
        let previous = self.ssrc.swap(u64::from(header.ssrc), Ordering::Relaxed);
        let epoch = if previous != u64::from(header.ssrc) && previous != u64::MAX {
            let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(
                camera = %self.id,
                epoch,
                "the camera's stream restarted; viewers continue at its next keyframe"
            );
            epoch
        } else {
            self.epoch.load(Ordering::Relaxed)
        };
        let packet = MediaPacket {
            keyframe_start,
            header,
            arrived: Instant::now(),
            data,
            epoch,
        };
        if !self.audio {
            self.recent.push(&packet);
            if self.gop.enabled() {
                self.cache(&packet);
            }
        }
        let subscribers = self.subscribers.load();
        for subscriber in subscribers.iter() {
            if !subscriber.sink.offer(&packet) {
                self.metrics.egress_dropped.inc();
            }
        }
    }

    fn cache(&self, packet: &MediaPacket) {
        let update = self.gop.push(packet);
        self.metrics.gop_cache_bytes.set(update.bytes as i64);
        if update.overflowed && !self.gop_overflow_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                camera = %self.id,
                "the camera's GOP is larger than gop_cache_bytes: new viewers wait for its next \
                 keyframe; raise gop_cache_bytes or shorten the camera's GOP"
            );
        }
    }

    /// The camera's current GOP (from its last keyframe, in sequence), if one is cached and the
    /// camera is live: a new viewer is started from it. Counted as a replay.
    pub fn cached_gop(&self) -> Option<Vec<MediaPacket>> {
        let packets = self.gop.snapshot(Instant::now())?;
        self.metrics.gop_cache_replays.inc();
        Some(packets)
    }

    /// The video packet of camera stream `epoch` with `sequence`, if still kept (for a NACK).
    pub fn recent_packet(&self, sequence: u16, epoch: u32) -> Option<MediaPacket> {
        self.recent.get(sequence, epoch)
    }

    /// The keyframe the cached GOP starts with (its access unit only), if one is cached, whole,
    /// and the camera is live. Not counted as a replay: for snapshots.
    pub fn latest_keyframe(&self) -> Option<Keyframe> {
        self.gop
            .latest_keyframe_of(Instant::now(), self.video_codec())
    }
}

impl PacketSink for CameraFeed {
    fn on_packet(&self, packet: Bytes) {
        self.publish(packet);
    }

    fn on_video_codec(&self, codec: VideoCodec) {
        let h265 = codec == VideoCodec::H265;
        if self.h265.swap(h265, Ordering::Relaxed) != h265 {
            tracing::info!(camera = %self.id, codec = codec.as_str(), "the camera's video codec");
        }
    }
}

/// A sink's place in a feed; dropping it leaves the feed.
pub struct Attachment {
    feed: Arc<CameraFeed>,
    id: u64,
}

impl Attachment {
    /// The feed attached to.
    pub fn feed(&self) -> &Arc<CameraFeed> {
        &self.feed
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.feed.unsubscribe(self.id);
    }
}

/// A viewer's own queue on a feed; dropping it leaves the feed.
pub struct Subscription {
    attachment: Attachment,
    receiver: mpsc::Receiver<MediaPacket>,
    lost: Arc<AtomicBool>,
}

impl Subscription {
    /// The feed subscribed to.
    pub fn feed(&self) -> &Arc<CameraFeed> {
        self.attachment.feed()
    }

    /// The next packet (async); `None` never happens while the subscription lives.
    pub async fn recv(&mut self) -> Option<MediaPacket> {
        self.receiver.recv().await
    }

    /// The next packet if one is queued.
    pub fn try_recv(&mut self) -> Option<MediaPacket> {
        self.receiver.try_recv().ok()
    }

    /// True (once) if packets were dropped for this viewer since the last call.
    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::atomic::AtomicUsize;

    fn rtp(seq: u16, payload: &[u8]) -> Bytes {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 7]);
        p.extend_from_slice(payload);
        Bytes::from(p)
    }

    fn feed() -> Arc<CameraFeed> {
        CameraFeed::new("cam", Metrics::new().camera("cam"))
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_packet_in_order() {
        let feed = feed();
        let mut a = feed.subscribe();
        let mut b = feed.subscribe();
        for seq in 0..10 {
            feed.publish(rtp(seq, &[0x41]));
        }
        for sub in [&mut a, &mut b] {
            for seq in 0..10 {
                assert_eq!(sub.recv().await.unwrap().header.sequence, seq);
            }
        }
        assert_eq!(feed.metrics().ingest_packets.get(), 10);
    }

    #[tokio::test]
    async fn a_full_queue_drops_for_that_viewer_only_and_marks_it() {
        let feed = feed();
        let mut slow = feed.subscribe();
        let mut fast = feed.subscribe();
        let total = VIEWER_QUEUE_PACKETS as u16 + 10;
        for seq in 0..total {
            feed.publish(rtp(seq, &[0x41]));
            assert_eq!(fast.recv().await.unwrap().header.sequence, seq);
        }
        assert!(slow.take_lost());
        assert!(!slow.take_lost(), "lost is reported once");
        assert_eq!(feed.metrics().egress_dropped.get(), 10);
        assert_eq!(slow.recv().await.unwrap().header.sequence, 0);
    }

    #[tokio::test]
    async fn dropping_a_subscription_leaves_the_feed() {
        let feed = feed();
        let a = feed.subscribe();
        let _b = feed.subscribe();
        assert_eq!(feed.subscriber_count(), 2);
        drop(a);
        assert_eq!(feed.subscriber_count(), 1);
    }

    #[test]
    fn marks_keyframes_and_ignores_non_rtp() {
        let feed = feed();
        let mut sub = feed.subscribe();
        feed.publish(Bytes::from_static(b"not rtp"));
        feed.publish(rtp(1, &[0x67, 0x42]));
        feed.publish(rtp(2, &[0x41]));
        assert!(sub.try_recv().unwrap().keyframe_start);
        assert!(!sub.try_recv().unwrap().keyframe_start);
        assert!(sub.try_recv().is_none());
    }

    #[test]
    fn a_new_ssrc_starts_a_new_epoch() {
        let feed = feed();
        let mut sub = feed.subscribe();
        let with_ssrc = |seq: u16, ssrc: u8| {
            let mut p = rtp(seq, &[0x41]).to_vec();
            p[11] = ssrc;
            Bytes::from(p)
        };
        feed.publish(with_ssrc(1, 7));
        feed.publish(with_ssrc(2, 7));
        feed.publish(with_ssrc(900, 8)); // the pipeline was rebuilt
        feed.publish(with_ssrc(901, 8));
        let epochs: Vec<u32> = std::iter::from_fn(|| sub.try_recv())
            .map(|p| p.epoch)
            .collect();
        assert_eq!(epochs, [0, 0, 1, 1]);
    }

    #[test]
    fn the_latest_keyframe_is_not_counted_as_a_replay() {
        let feed = feed();
        let marked = |seq: u16, payload: &[u8]| {
            let mut p = rtp(seq, payload).to_vec();
            p[1] |= 0x80;
            Bytes::from(p)
        };
        feed.publish(rtp(1, &[0x67, 0x42])); // SPS
        feed.publish(marked(2, &[0x65, 0x88])); // IDR, the frame's last packet
        let mut next_frame = rtp(3, &[0x41]).to_vec();
        next_frame[7] = 8; // a later timestamp
        feed.publish(Bytes::from(next_frame));
        let keyframe = feed.latest_keyframe().expect("a whole keyframe");
        assert_eq!(keyframe.packets.len(), 2);
        assert_eq!(feed.metrics().gop_cache_replays.get(), 0);
        assert_eq!(feed.cached_gop().map(|gop| gop.len()), Some(3));
        assert_eq!(feed.metrics().gop_cache_replays.get(), 1);
    }

    struct CountingSource(AtomicUsize);
    impl KeyframeSource for CountingSource {
        fn request_keyframe(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn keyframe_requests_are_merged_while_one_is_outstanding() {
        let feed = feed();
        let source = Arc::new(CountingSource(AtomicUsize::new(0)));
        feed.set_keyframe_source(source.clone());
        for _ in 0..50 {
            feed.request_keyframe();
        }
        assert_eq!(source.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_request_after_the_keyframe_came_goes_at_once() {
        let feed = feed();
        let source = Arc::new(CountingSource(AtomicUsize::new(0)));
        feed.set_keyframe_source(source.clone());
        feed.request_keyframe();
        std::thread::sleep(Duration::from_millis(2));
        feed.publish(rtp(1, &[0x67, 0x42])); // the keyframe arrives
        std::thread::sleep(Duration::from_millis(2));
        feed.request_keyframe(); // a new viewer joins right after
        assert_eq!(source.0.load(Ordering::Relaxed), 2);
    }
}
