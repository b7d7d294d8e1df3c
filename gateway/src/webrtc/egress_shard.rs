//! An egress shard: one task that owns a share of the viewer sessions (one shard per core) and
//! drives them all from one loop, instead of a task per viewer.
//!
//! Per camera, the shard takes one place in the feed's fan-out and one queue, whatever the number
//! of its viewers of that camera. A wake-up handles a batch of inputs — control requests,
//! datagrams routed by the media port, camera packets — then the due timers; then it collects what
//! the sessions it touched want sent, grouped per viewer, and hands the lot to the batch sender
//! (`sendmmsg`, UDP GSO). Nothing on this path takes a lock shared with other shards. The
//! per-viewer work is the header rewrite and the viewer's link: with the gateway's own stack
//! (`direct_link`) the packet is written and sealed in the shard's send buffer, with `rtc`'s
//! (`rtc_link`) it goes through the peer connection's interceptors and SRTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::shared::TaggedBytesMut;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::batch_sender::BatchSender;
use super::deadline_queue::DeadlineQueue;
use super::stall_hook::StallHook;
use super::udp_transport::{RoutedDatagram, UdpTransport};
use super::viewer_session::{EndReason, Forwarded, ViewerSession};
use crate::heartbeat::Heartbeat;
use crate::hub::{Attachment, CameraFeed, MediaPacket, MediaSink};
use crate::metrics::relay_latency::RelayLatency;

/// Camera packets a shard queues (all its cameras together) before the feed drops for it: about
/// 2 s of one 2 Mbit/s camera. A shard that falls further behind drops and resumes its viewers at
/// a keyframe rather than show them ever older video.
pub const SHARD_MEDIA_PACKETS: usize = 512;
/// The send buffer's allocation: about 50 packets of a camera per allocation.
const SEND_BUFFER_BYTES: usize = 64 * 1024;
/// Datagrams from viewers a shard queues before the media port drops for it.
pub const SHARD_INBOX_DATAGRAMS: usize = 4096;
/// Most camera packets handled before the shard sends: larger batches make longer GSO runs per
/// viewer, smaller ones let the first packets leave sooner.
const MEDIA_BATCH: usize = 8;
/// Most datagrams from viewers handled in one go.
const DATAGRAM_BATCH: usize = 256;
/// Longest sleep when nothing is scheduled: the shard's heartbeat beats at least this often, so
/// a watchdog interval must be well above it.
pub const IDLE_WAKE: Duration = Duration::from_secs(1);

/// What callers ask of a shard.
pub enum Control {
    /// Run this session under `key`; `on_end` is called once when it ends.
    Start {
        /// The session's routing key.
        key: u64,
        /// The negotiated session.
        session: Box<ViewerSession>,
        /// Called with the reason when the session ends.
        on_end: Box<dyn FnOnce(EndReason) + Send>,
    },
    /// End session `key` (nothing if it has ended already).
    Close(u64),
}

/// A running shard, as its owner sees it.
pub struct ShardHandle {
    /// Control requests.
    pub control: mpsc::UnboundedSender<Control>,
    /// Datagrams for its sessions (given to the media port's routes).
    pub datagrams: mpsc::Sender<RoutedDatagram>,
    /// Sessions it runs now.
    pub viewers: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ShardHandle {
    /// Starts a shard sending on `transport`, beating `heartbeat` at every turn of its loop (and
    /// stalling once as `stall` says: a test hook).
    pub fn spawn(
        transport: Arc<UdpTransport>,
        heartbeat: Heartbeat,
        stall: Option<StallHook>,
        relay_latency: Arc<RelayLatency>,
    ) -> ShardHandle {
        let (control, control_rx) = mpsc::unbounded_channel();
        let (datagrams, datagrams_rx) = mpsc::channel(SHARD_INBOX_DATAGRAMS);
        let (media, media_rx) = mpsc::channel(SHARD_MEDIA_PACKETS);
        let viewers = Arc::new(AtomicUsize::new(0));
        let shard = EgressShard {
            sender: BatchSender::new(&transport),
            transport,
            control: control_rx,
            datagrams: datagrams_rx,
            media_rx,
            media,
            sessions: HashMap::new(),
            groups: HashMap::new(),
            next_group: 0,
            timers: DeadlineQueue::new(),
            touched: Vec::new(),
            ending: Vec::new(),
            outbox: Vec::new(),
            send_buffer: BytesMut::with_capacity(SEND_BUFFER_BYTES),
            viewers: viewers.clone(),
            heartbeat,
            stall,
            relay_latency,
            in_flight: Vec::new(),
        };
        ShardHandle {
            control,
            datagrams,
            viewers,
            task: tokio::spawn(shard.run()),
        }
    }
}

impl Drop for ShardHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The shard's place in one camera's fan-out.
struct ShardSink {
    media: mpsc::Sender<(u64, MediaPacket)>,
    group: u64,
    /// Set when a packet found the shard's queue full: its viewers of the camera then resume at
    /// a keyframe.
    lost: Arc<AtomicBool>,
}

impl MediaSink for ShardSink {
    fn offer(&self, packet: &MediaPacket) -> bool {
        if self.media.try_send((self.group, packet.clone())).is_ok() {
            return true;
        }
        self.lost.store(true, Ordering::Relaxed);
        false
    }
}

/// The shard's viewers of one camera's video, or of its audio.
struct CameraGroup {
    feed: Arc<CameraFeed>,
    /// The feed is the camera's audio.
    audio: bool,
    viewers: Vec<u64>,
    lost: Arc<AtomicBool>,
    /// Leaves the feed when the last viewer goes.
    _attachment: Attachment,
}

struct Slot {
    session: ViewerSession,
    group: u64,
    /// The group of the camera's audio, when the viewer takes it.
    audio_group: Option<u64>,
    touched: bool,
    on_end: Option<Box<dyn FnOnce(EndReason) + Send>>,
}

struct EgressShard {
    transport: Arc<UdpTransport>,
    sender: BatchSender,
    control: mpsc::UnboundedReceiver<Control>,
    datagrams: mpsc::Receiver<RoutedDatagram>,
    media_rx: mpsc::Receiver<(u64, MediaPacket)>,
    /// Cloned into each camera sink.
    media: mpsc::Sender<(u64, MediaPacket)>,
    sessions: HashMap<u64, Slot>,
    groups: HashMap<u64, CameraGroup>,
    next_group: u64,
    timers: DeadlineQueue,
    /// Sessions with new output or a new deadline since the last send.
    touched: Vec<u64>,
    /// Sessions that ended since the last send.
    ending: Vec<(u64, EndReason)>,
    outbox: Vec<TaggedBytesMut>,
    /// Where the gateway's own viewer links write and seal their packets: one allocation shared
    /// by many packets, reclaimed once they are sent.
    send_buffer: BytesMut,
    viewers: Arc<AtomicUsize>,
    /// Beaten at every turn of the loop (the service watchdog reads it).
    heartbeat: Heartbeat,
    /// A stall to come, on purpose (tests only).
    stall: Option<StallHook>,
    /// `straja_relay_latency_seconds`.
    relay_latency: Arc<RelayLatency>,
    /// Camera packets forwarded since the last send: when each reached the hub, and to how many
    /// viewers it went (one sample per packet, weighted, not one per copy).
    in_flight: Vec<(Instant, u64)>,
}

impl EgressShard {
    async fn run(mut self) {
        loop {
            let deadline = self
                .timers
                .earliest()
                .unwrap_or_else(|| Instant::now() + IDLE_WAKE);
            tokio::select! {
                biased;
                control = self.control.recv() => match control {
                    Some(control) => self.handle_control(control),
                    None => break,
                },
                Some((key, datagram)) = self.datagrams.recv() => {
                    self.on_datagram(key, datagram);
                    for _ in 1..DATAGRAM_BATCH {
                        match self.datagrams.try_recv() {
                            Ok((key, datagram)) => self.on_datagram(key, datagram),
                            Err(_) => break,
                        }
                    }
                }
                Some((group, packet)) = self.media_rx.recv() => {
                    self.on_media(group, &packet);
                    for _ in 1..MEDIA_BATCH {
                        match self.media_rx.try_recv() {
                            Ok((group, packet)) => self.on_media(group, &packet),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            let mut now = Instant::now();
            self.heartbeat.beat_at(now);
            if self
                .stall
                .as_ref()
                .is_some_and(|hook| hook.stall_if_due(now))
            {
                self.stall = None;
                now = Instant::now();
            }
            self.run_due_timers(now);
            self.settle().await;
            // One iteration can be milliseconds of work with many viewers: let the media port's
            // receive task (and the rest of the runtime) run between them, or the viewers'
            // STUN and RTCP wait in a socket buffer that overflows.
            tokio::task::yield_now().await;
        }
        let keys: Vec<u64> = self.sessions.keys().copied().collect();
        for key in keys {
            self.end_session(key, EndReason::Closed);
        }
        self.sender.flush(&self.transport, &mut self.outbox).await;
    }

    fn handle_control(&mut self, control: Control) {
        match control {
            Control::Start {
                key,
                session,
                on_end,
            } => {
                let group = self.join_group(key, session.feed());
                let audio_group = session
                    .audio_feed()
                    .cloned()
                    .map(|feed| self.join_group(key, &feed));
                self.sessions.insert(
                    key,
                    Slot {
                        session: *session,
                        group,
                        audio_group,
                        touched: false,
                        on_end: Some(on_end),
                    },
                );
                self.touch(key);
            }
            Control::Close(key) => {
                if self.sessions.contains_key(&key) {
                    self.ending.push((key, EndReason::Closed));
                }
            }
        }
    }

    /// Adds viewer `viewer` to the group of `feed`'s viewers, which is created (and attached to
    /// the feed) for the first one; returns the group's key.
    fn join_group(&mut self, viewer: u64, feed: &Arc<CameraFeed>) -> u64 {
        if let Some((&key, group)) = self
            .groups
            .iter_mut()
            .find(|(_, group)| Arc::ptr_eq(&group.feed, feed))
        {
            group.viewers.push(viewer);
            return key;
        }
        let key = self.next_group;
        self.next_group += 1;
        let lost = Arc::new(AtomicBool::new(false));
        let attachment = feed.attach(Arc::new(ShardSink {
            media: self.media.clone(),
            group: key,
            lost: lost.clone(),
        }));
        self.groups.insert(
            key,
            CameraGroup {
                audio: feed.is_audio(),
                feed: feed.clone(),
                viewers: vec![viewer],
                lost,
                _attachment: attachment,
            },
        );
        key
    }

    fn touch(&mut self, key: u64) {
        if let Some(slot) = self.sessions.get_mut(&key)
            && !slot.touched
        {
            slot.touched = true;
            self.touched.push(key);
        }
    }

    fn on_datagram(&mut self, key: u64, datagram: TaggedBytesMut) {
        let Some(slot) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Some(reason) = slot
            .session
            .handle_datagram(datagram, &mut self.send_buffer)
        {
            self.ending.push((key, reason));
        }
        self.touch(key);
    }

    fn on_media(&mut self, group_key: u64, packet: &MediaPacket) {
        let Some(group) = self.groups.get_mut(&group_key) else {
            return;
        };
        let resume = group.lost.swap(false, Ordering::Relaxed);
        let now = Instant::now();
        let mut sent = 0u64;
        for key in &group.viewers {
            let Some(slot) = self.sessions.get_mut(key) else {
                continue;
            };
            let forwarded = if group.audio {
                slot.session
                    .forward_audio(packet, now, &mut self.send_buffer)
            } else {
                slot.session
                    .forward(packet, resume, now, &mut self.send_buffer)
            };
            if forwarded == Forwarded::Sent {
                sent += 1;
                if !slot.touched {
                    slot.touched = true;
                    self.touched.push(*key);
                }
            }
        }
        if sent > 0 {
            let metrics = group.feed.metrics();
            metrics.egress_packets.inc_by(sent);
            metrics.egress_bytes.inc_by(sent * packet.data.len() as u64);
            self.in_flight.push((packet.arrived, sent));
        }
    }

    fn run_due_timers(&mut self, now: Instant) {
        while let Some(key) = self.timers.pop_due(now) {
            let Some(slot) = self.sessions.get_mut(&key) else {
                continue;
            };
            if let Some(reason) = slot.session.handle_timeout(now, &mut self.send_buffer) {
                self.ending.push((key, reason));
            }
            self.touch(key);
        }
    }

    /// Collects the touched sessions' output and deadlines, ends the sessions that ended, and
    /// sends.
    async fn settle(&mut self) {
        let now = Instant::now();
        // Indexed loops: both lists keep their capacity from one iteration to the next (nothing
        // below adds to them).
        for i in 0..self.touched.len() {
            let key = self.touched[i];
            let Some(slot) = self.sessions.get_mut(&key) else {
                continue;
            };
            slot.touched = false;
            while let Some(datagram) = slot.session.poll_transmit() {
                self.outbox.push(datagram);
            }
            self.timers.set(key, slot.session.deadline(now));
        }
        self.touched.clear();
        for i in 0..self.ending.len() {
            let (key, reason) = self.ending[i];
            self.end_session(key, reason);
        }
        self.ending.clear();
        if !self.outbox.is_empty() {
            self.sender.flush(&self.transport, &mut self.outbox).await;
        }
        if !self.in_flight.is_empty() {
            let sent = Instant::now();
            for &(arrived, copies) in &self.in_flight {
                self.relay_latency
                    .record(sent.saturating_duration_since(arrived), copies);
            }
            self.in_flight.clear();
        }
    }

    /// Ends session `key`: its close (DTLS close_notify) goes out with the next send, its routes,
    /// timers and place in the camera group are released, and its owner is told.
    fn end_session(&mut self, key: u64, reason: EndReason) {
        let Some(mut slot) = self.sessions.remove(&key) else {
            return;
        };
        slot.session.close();
        while let Some(datagram) = slot.session.poll_transmit() {
            self.outbox.push(datagram);
        }
        self.timers.remove(key);
        self.transport.unregister(key);
        for group_key in std::iter::once(slot.group).chain(slot.audio_group) {
            if let Some(group) = self.groups.get_mut(&group_key) {
                group.viewers.retain(|&k| k != key);
                if group.viewers.is_empty() {
                    self.groups.remove(&group_key);
                }
            }
        }
        self.viewers.fetch_sub(1, Ordering::Relaxed);
        if let Some(on_end) = slot.on_end.take() {
            on_end(reason);
        }
    }
}
