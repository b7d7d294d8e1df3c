//! The viewers of the load benchmark: N real WebRTC peers driven by ONE thread, so that a whole
//! swarm fits on the one core it is given, and the plain UDP receivers of the baseline.
//!
//! Each swarm viewer is a sans-IO `rtc` peer connection with its own UDP socket on 127.0.0.1: it
//! offers to receive H.264 (packetization-mode 1, 42e01f) over WHEP, completes ICE as the
//! controlling full agent (the gateway is ICE-lite) and DTLS as the server (the gateway answers
//! `a=setup:active`), and decrypts SRTP in `handle_read`. It sends receiver reports and ICE
//! consent checks; it negotiates no NACK, PLI, TWCC nor header extension.
//!
//! The one thread is a tokio current-thread runtime: WHEP requests (reqwest) run as its tasks,
//! and every viewer socket is in one level-triggered epoll set whose descriptor tokio watches.
//! Sockets are read with `recvmmsg`; the receipt time (CLOCK_MONOTONIC) is taken as the call
//! returns, before the datagrams go into the `rtc` stack, and is what the RTP packets that come
//! out of the stack for them are stamped with. The kernel also stamps each datagram as the
//! sender's `sendto` hands it to loopback (SO_TIMESTAMPNS, CLOCK_REALTIME, converted): that
//! arrival time leaves out however long the swarm itself, one thread going through bursts of
//! datagrams for many viewers, left a datagram in its socket.
//!
//! Per receiver: RTP packets, loss from gaps in the sequence numbers (RFC 3550 "expected −
//! received"), and two latencies from the send time the synthetic camera stamped in the payload
//! ([`crate::synthetic_camera::stamp_of`]): receipt − stamp ([`ViewerReport::latency`]) and
//! arrival − stamp ([`ViewerReport::arrival_latency`]); their difference, per datagram, is
//! [`SwarmReport::socket_wait`]. The gateway rewrites sequence numbers gap-free when it drops
//! packets for a slow viewer and resumes it at a keyframe, so such drops are not loss here; they
//! show as jumps in media time ([`ViewerReport::media_skips`]).
//!
//! Call [`run_swarm`] or [`run_plain_receivers`] from a thread that is not inside a tokio
//! runtime, and steer it through a shared [`SwarmControl`] from another thread.

// Bench support: the orchestrator need not use every accessor.
#![allow(dead_code)]

use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::BytesMut;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use rtc::crypto::SignatureScheme;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{ReceiverReportBuilder, Registry, Slot};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::latency_histogram::LatencyHistogram;
use crate::synthetic_camera::{monotonic_ns, stamp_of};

/// WHEP requests in flight at once unless configured otherwise.
pub const DEFAULT_CONNECT_CONCURRENCY: usize = 16;
/// Bound on the whole connect phase unless configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one viewer may take from its POST to connected unless configured otherwise (the
/// gateway itself drops a session not connected within 30 s).
pub const DEFAULT_VIEWER_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a whole run (connect, receive, teardown) unless configured otherwise.
pub const DEFAULT_MAX_RUN_TIME: Duration = Duration::from_secs(15 * 60);
/// A jump in RTP time larger than this (100 ms at 90 kHz) between consecutive packets counts
/// as a media skip.
pub const MEDIA_SKIP_TICKS: u32 = 9_000;

/// Bound on one WHEP request (POST or DELETE).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the DELETEs at the end.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loop looks at [`SwarmControl`] when nothing else wakes it.
const CONTROL_POLL: Duration = Duration::from_millis(5);
/// Datagrams read per `recvmmsg` call (one socket at a time).
const RECV_BATCH: usize = 32;
/// Largest datagram read; the gateway keeps packets under 1200 bytes.
const DATAGRAM_BYTES: usize = 2048;
/// How often stragglers are looked for while viewers connect.
const STRAGGLER_CHECK: Duration = Duration::from_millis(100);
/// Ready sockets taken per `epoll_wait`.
const EPOLL_EVENTS: usize = 256;
/// Receive buffer asked for per socket (the kernel caps it at `net.core.rmem_max`).
const SOCKET_RECEIVE_BUFFER: libc::c_int = 512 * 1024;
/// Characters of a WHEP error body quoted in a report.
const ERROR_BODY_CHARS: usize = 200;

/// What a swarm connects to and how.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// `https://127.0.0.1:PORT` of the gateway.
    pub base_url: String,
    /// Bearer token allowed to view `camera`.
    pub token: String,
    /// PEM file of the CA that signed the gateway's certificate (the only root trusted).
    pub ca_cert: PathBuf,
    /// Camera id.
    pub camera: String,
    /// Number of viewers.
    pub viewers: usize,
    /// WHEP POSTs in flight at once.
    pub connect_concurrency: usize,
    /// Viewers not connected (ICE + DTLS) this long after the swarm started are given up on.
    pub connect_timeout: Duration,
    /// A viewer not connected this long after its WHEP POST is given up on.
    pub viewer_connect_timeout: Duration,
    /// The swarm stops by itself this long after it started, stop requested or not.
    pub max_run_time: Duration,
}

impl SwarmConfig {
    /// A configuration with the default concurrency and bounds.
    pub fn new(
        base_url: impl Into<String>,
        token: impl Into<String>,
        ca_cert: impl Into<PathBuf>,
        camera: impl Into<String>,
        viewers: usize,
    ) -> SwarmConfig {
        SwarmConfig {
            base_url: base_url.into(),
            token: token.into(),
            ca_cert: ca_cert.into(),
            camera: camera.into(),
            viewers,
            connect_concurrency: DEFAULT_CONNECT_CONCURRENCY,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            viewer_connect_timeout: DEFAULT_VIEWER_CONNECT_TIMEOUT,
            max_run_time: DEFAULT_MAX_RUN_TIME,
        }
    }
}

/// Steers a running swarm from another thread and shows its progress. The swarm polls it every
/// few milliseconds.
#[derive(Debug, Default)]
pub struct SwarmControl {
    measure: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    connected: AtomicUsize,
    failed: AtomicUsize,
    connect_phase_over: AtomicBool,
}

impl SwarmControl {
    /// A control with nothing requested yet.
    pub fn new() -> SwarmControl {
        SwarmControl::default()
    }

    /// A control driven by flags someone else sets (e.g. a child process's stdin listener):
    /// `measure` starts the window, `stop` ends the run.
    pub fn with_flags(measure: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> SwarmControl {
        SwarmControl {
            measure,
            stop,
            ..SwarmControl::default()
        }
    }

    /// Starts the measurement window: every receiver's counters are reset.
    pub fn start_measuring(&self) {
        self.measure.store(true, Ordering::Relaxed);
    }

    /// Ends the window; the swarm tears down and returns its report.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Viewers connected so far (ICE and DTLS done).
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Viewers given up on so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether every viewer is connected or given up on.
    pub fn connect_phase_over(&self) -> bool {
        self.connect_phase_over.load(Ordering::Relaxed)
    }

    /// Waits (polling every 10 ms) until the connect phase is over; false on timeout.
    pub fn wait_for_connect_phase(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.connect_phase_over() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    fn measuring_requested(&self) -> bool {
        self.measure.load(Ordering::Relaxed)
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// How the connect phase went, handed to `on_connected` when it ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectSummary {
    /// Viewers connected.
    pub connected: usize,
    /// Viewers given up on.
    pub failed: usize,
    /// Start → end of the connect phase, in seconds.
    pub seconds: f64,
    /// CPU time of the swarm thread during it, in seconds.
    pub cpu_seconds: f64,
}

/// What one receiver saw. Counters cover the measurement window ([`SwarmControl::start_measuring`]
/// to [`SwarmControl::stop`]), or everything received when no window was started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewerReport {
    /// Whether the viewer connected (ICE and DTLS done).
    pub connected: bool,
    /// Why it did not connect, or why its connection ended early.
    pub error: Option<String>,
    /// WHEP POST sent → answer received, in milliseconds.
    pub answer_ms: Option<f64>,
    /// WHEP POST sent → connected, in milliseconds.
    pub connect_ms: Option<f64>,
    /// Whether its connection failed or closed after it had connected.
    pub lost_connection: bool,
    /// RTP packets received (decrypted, for WebRTC viewers).
    pub packets: u64,
    /// Packets missing from the sequence numbers (expected − received).
    pub lost: u64,
    /// Packets that came late or twice (sequence number not above the highest seen).
    pub out_of_order: u64,
    /// Jumps in RTP time over [`MEDIA_SKIP_TICKS`] between consecutive packets: the gateway
    /// dropped packets for this viewer and resumed it at a keyframe (hidden from `lost`).
    pub media_skips: u64,
    /// Packets whose payload carried the camera's send-time stamp.
    pub stamped: u64,
    /// Datagrams the kernel dropped at this receiver's socket (buffer full: the swarm was late),
    /// from `/proc/net/udp`.
    pub socket_drops: u64,
    /// Datagrams the `rtc` stack refused (`handle_read` errors: SRTP authentication, replay…).
    pub rejected: u64,
    /// Receipt − stamp, in microseconds, for the stamped packets: the receipt time is taken
    /// when the swarm reads the datagram, so this includes how long the swarm left it in the
    /// socket (see [`SwarmReport::socket_wait`]).
    pub latency: LatencyHistogram,
    /// Arrival − stamp, in microseconds, for the stamped packets: the arrival time is the
    /// kernel's (SO_TIMESTAMPNS, taken as the sender's datagram enters loopback), so this leaves
    /// out the swarm's own delays.
    pub arrival_latency: LatencyHistogram,
}

/// What a swarm (or the plain receivers) saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwarmReport {
    /// One report per receiver, in creation order.
    pub viewers: Vec<ViewerReport>,
    /// Start → every viewer connected or given up on, in seconds.
    pub connect_seconds: f64,
    /// CPU time of the swarm thread during the connect phase, in seconds.
    pub connect_cpu_seconds: f64,
    /// Length of the measurement window, in seconds.
    pub measured_seconds: f64,
    /// CPU time of the swarm thread during the window, in seconds (divide by `measured_seconds`
    /// for the share of one core).
    pub cpu_seconds: f64,
    /// Per datagram read in the window: kernel arrival → read by the swarm (µs). What the swarm
    /// itself adds to `latency` (plus any time the datagram spent in the kernel's loopback
    /// backlog on the sender's core, which the arrival stamp precedes).
    pub socket_wait: LatencyHistogram,
    /// Time spent ending the sessions after the window (close + WHEP DELETE), in seconds.
    pub teardown_seconds: f64,
    /// Wake-ups of the swarm thread in the window (each waits for sockets, timers or control).
    pub wakeups: u64,
    /// `recvmmsg` calls that returned datagrams, in the window.
    pub socket_reads: u64,
    /// Datagrams read in the window (divide by `socket_reads` for the batching achieved).
    pub datagrams: u64,
}

impl SwarmReport {
    /// Every receiver's latency (receipt − stamp) merged into one histogram.
    pub fn merged_latency(&self) -> LatencyHistogram {
        let mut all = LatencyHistogram::new();
        for viewer in &self.viewers {
            all.merge(&viewer.latency);
        }
        all
    }

    /// Every receiver's arrival latency (kernel arrival − stamp) merged into one histogram.
    pub fn merged_arrival_latency(&self) -> LatencyHistogram {
        let mut all = LatencyHistogram::new();
        for viewer in &self.viewers {
            all.merge(&viewer.arrival_latency);
        }
        all
    }
}

/// Connects `config.viewers` WHEP viewers (at most `connect_concurrency` offers in flight),
/// calls `on_connected` (on the swarm thread: keep it short) once every viewer is connected or
/// given up on, receives until [`SwarmControl::start_measuring`] (then resets every counter) and
/// on until
/// [`SwarmControl::stop`] or `max_run_time`, then ends the sessions (DTLS close_notify and WHEP
/// DELETE, bounded) and returns one report per viewer. A viewer that fails to connect is
/// reported with `connected: false` and its reason. Errors only for what stops the whole swarm
/// (no CA file, no sockets, no runtime). Blocks the calling thread, which must not be inside a
/// tokio runtime; everything runs on it.
pub fn run_swarm(
    config: &SwarmConfig,
    control: &SwarmControl,
    on_connected: impl FnOnce(&ConnectSummary),
) -> anyhow::Result<SwarmReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the swarm's tokio runtime")?;
    runtime.block_on(async {
        let swarm = Swarm::new(config, control)?;
        swarm.run(on_connected).await
    })
}

/// Binds `count` plain UDP receivers on 127.0.0.1, hands their addresses to `on_bound` (tell the
/// forwarder), then receives clear RTP (the camera's own sequence numbers) until
/// [`SwarmControl::stop`] or `max_run_time`, measuring like [`run_swarm`] (window included).
pub fn run_plain_receivers(
    count: usize,
    max_run_time: Duration,
    control: &SwarmControl,
    on_bound: impl FnOnce(&[SocketAddr]),
) -> anyhow::Result<SwarmReport> {
    let started = Instant::now();
    let epoll = Epoll::new()?;
    let mut receivers = Vec::with_capacity(count);
    for index in 0..count {
        let socket = bind_receiver_socket()
            .with_context(|| format!("cannot bind plain receiver {index} of {count}"))?;
        epoll.add(socket.as_raw_fd(), index as u64)?;
        let local = socket.local_addr()?;
        receivers.push(PlainReceiver {
            socket,
            local,
            reception: Reception::new(),
        });
    }
    let addresses: Vec<SocketAddr> = receivers.iter().map(|r| r.local).collect();
    on_bound(&addresses);
    control.connected.store(count, Ordering::Relaxed);
    control.connect_phase_over.store(true, Ordering::Relaxed);
    let mut window = Window::new(&addresses);
    window.connect_done(started);

    let mut batch = RecvBatch::new();
    let mut clock = Clock::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EPOLL_EVENTS];
    loop {
        if control.measuring_requested() && window.start.is_none() {
            for receiver in &mut receivers {
                receiver.reception.reset();
            }
            window.begin(&addresses);
        }
        if control.stop_requested() || started.elapsed() >= max_run_time {
            break;
        }
        clock.refresh();
        let ready = epoll.wait(&mut events, CONTROL_POLL.as_millis() as i32)?;
        window.wakeups += 1;
        for event in &events[..ready] {
            let receiver = &mut receivers[event.u64 as usize];
            let received = batch.receive(receiver.socket.as_raw_fd());
            let receipt_ns = monotonic_ns();
            window.count_read(received);
            for i in 0..received {
                let arrival_ns = window.arrival(&clock, &batch, i, receipt_ns);
                if let Some((sequence, timestamp, payload)) = parse_rtp(batch.datagram(i)) {
                    receiver
                        .reception
                        .on_rtp(sequence, timestamp, payload, receipt_ns, arrival_ns);
                }
            }
        }
    }
    let drops = window.end(&addresses);
    let viewers = receivers
        .iter()
        .zip(drops)
        .map(|(receiver, socket_drops)| receiver.reception.report(true, socket_drops))
        .collect();
    Ok(window.report(viewers, 0.0))
}

struct PlainReceiver {
    socket: UdpSocket,
    local: SocketAddr,
    reception: Reception,
}

/// The header fields and payload of a clear RTP packet.
fn parse_rtp(data: &[u8]) -> Option<(u16, u32, &[u8])> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let mut offset = 12 + 4 * usize::from(data[0] & 0x0f);
    if data[0] & 0x10 != 0 {
        let words = data.get(offset + 2..offset + 4)?;
        offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let mut end = data.len();
    if data[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*data.last()?))?;
    }
    let payload = data.get(offset..end)?;
    Some((
        u16::from_be_bytes([data[2], data[3]]),
        u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        payload,
    ))
}

// ---------------------------------------------------------------------------------------------
// Per-receiver accounting (the hot path: no allocation, no logging).

/// Counters of one receiver.
struct Reception {
    packets: u64,
    /// Extended (wrap-counted) sequence number of the first packet and of the highest one.
    base_sequence: u64,
    highest_sequence: u64,
    started: bool,
    out_of_order: u64,
    last_timestamp: u32,
    media_skips: u64,
    stamped: u64,
    latency: LatencyHistogram,
    arrival_latency: LatencyHistogram,
}

impl Reception {
    fn new() -> Reception {
        Reception {
            packets: 0,
            base_sequence: 0,
            highest_sequence: 0,
            started: false,
            out_of_order: 0,
            last_timestamp: 0,
            media_skips: 0,
            stamped: 0,
            latency: LatencyHistogram::new(),
            arrival_latency: LatencyHistogram::new(),
        }
    }

    fn reset(&mut self) {
        self.packets = 0;
        self.started = false;
        self.out_of_order = 0;
        self.media_skips = 0;
        self.stamped = 0;
        self.latency.clear();
        self.arrival_latency.clear();
    }

    /// One RTP packet, read at `receipt_ns`, which arrived at the socket at `arrival_ns`.
    #[inline]
    fn on_rtp(
        &mut self,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
        receipt_ns: u64,
        arrival_ns: Option<u64>,
    ) {
        self.packets += 1;
        if !self.started {
            self.started = true;
            // Start high so that a packet from before the first one cannot underflow.
            self.base_sequence = (1 << 32) + u64::from(sequence);
            self.highest_sequence = self.base_sequence;
            self.last_timestamp = timestamp;
        } else {
            let step = sequence.wrapping_sub(self.highest_sequence as u16) as i16;
            if step > 0 {
                self.highest_sequence += step as u64;
                if timestamp.wrapping_sub(self.last_timestamp) as i32 > MEDIA_SKIP_TICKS as i32 {
                    self.media_skips += 1;
                }
                self.last_timestamp = timestamp;
            } else {
                self.out_of_order += 1;
            }
        }
        if let Some(stamp_ns) = stamp_of(payload) {
            self.stamped += 1;
            self.latency.record_ns(receipt_ns.saturating_sub(stamp_ns));
            if let Some(arrival_ns) = arrival_ns {
                self.arrival_latency
                    .record_ns(arrival_ns.saturating_sub(stamp_ns));
            }
        }
    }

    fn lost(&self) -> u64 {
        if !self.started {
            return 0;
        }
        let expected = self.highest_sequence - self.base_sequence + 1;
        expected.saturating_sub(self.packets)
    }

    fn report(&self, connected: bool, socket_drops: u64) -> ViewerReport {
        ViewerReport {
            connected,
            error: None,
            answer_ms: None,
            connect_ms: None,
            lost_connection: false,
            packets: self.packets,
            lost: self.lost(),
            out_of_order: self.out_of_order,
            media_skips: self.media_skips,
            stamped: self.stamped,
            socket_drops,
            rejected: 0,
            latency: self.latency.clone(),
            arrival_latency: self.arrival_latency.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The WebRTC swarm.

/// Where a viewer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Socket bound, no offer yet.
    Waiting,
    /// Offer POSTed, no answer yet.
    Offered,
    /// Answer applied, ICE/DTLS under way.
    Connecting,
    /// Connected.
    Connected,
    /// Given up on, failed or closed: no peer connection any more.
    Done,
}

impl Phase {
    /// The phase in words, for reports.
    fn describe(self) -> &'static str {
        match self {
            Phase::Waiting => "no offer sent",
            Phase::Offered => "offer sent, no answer",
            Phase::Connecting => "answer applied, ICE/DTLS under way",
            Phase::Connected => "connected",
            Phase::Done => "ended",
        }
    }
}

struct Viewer {
    socket: UdpSocket,
    local: SocketAddr,
    peer: Option<RTCPeerConnection>,
    phase: Phase,
    session_url: Option<String>,
    posted_at: Option<Instant>,
    answer_ms: Option<f64>,
    connect_ms: Option<f64>,
    error: Option<String>,
    lost_connection: bool,
    /// The deadline this viewer has in the timer heap (entries with another one are stale).
    timer: Option<Instant>,
    /// Connected and receiving RTP: batches of SRTP alone need no `service`.
    streaming: bool,
    /// The last ICE connection state reported (for the reason of a failure).
    ice: RTCIceConnectionState,
    rejected: u64,
    reception: Reception,
}

/// A WHEP POST in flight: the viewer's index and its answer SDP and session URL, or why not.
type PostFuture = Pin<Box<dyn Future<Output = (usize, Result<(String, String), String>)>>>;

struct Swarm<'a> {
    config: &'a SwarmConfig,
    control: &'a SwarmControl,
    client: reqwest::Client,
    whep_url: String,
    certificate: RTCCertificate,
    viewers: Vec<Viewer>,
    addresses: Vec<SocketAddr>,
    timers: BinaryHeap<std::cmp::Reverse<(Instant, usize)>>,
    batch: RecvBatch,
    clock: Clock,
    window: Window,
    events: Vec<libc::epoll_event>,
    started: Instant,
    /// Viewers not yet connected nor done.
    unsettled: usize,
}

impl<'a> Swarm<'a> {
    fn new(config: &'a SwarmConfig, control: &'a SwarmControl) -> anyhow::Result<Swarm<'a>> {
        let started = Instant::now();
        let client = whep_client(&config.ca_cert, &config.token)?;
        let provider = rtc::crypto::default_provider()
            .map_err(|e| anyhow::anyhow!("no crypto provider for DTLS certificates: {e}"))?;
        // One certificate for every viewer: generating one per peer connection is the slowest
        // part of building it, and nothing here needs them distinct.
        let certificate = RTCCertificate::generate(
            provider.crypto(),
            SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["swarm-viewer".to_owned()])
                .context("DTLS certificate parameters")?,
        )
        .map_err(|e| anyhow::anyhow!("cannot generate the viewers' DTLS certificate: {e}"))?;
        let mut viewers = Vec::with_capacity(config.viewers);
        for index in 0..config.viewers {
            let socket = bind_receiver_socket().with_context(|| {
                format!(
                    "cannot bind a UDP socket for viewer {index} of {}",
                    config.viewers
                )
            })?;
            let local = socket.local_addr()?;
            viewers.push(Viewer {
                socket,
                local,
                peer: None,
                phase: Phase::Waiting,
                session_url: None,
                posted_at: None,
                answer_ms: None,
                connect_ms: None,
                error: None,
                lost_connection: false,
                timer: None,
                streaming: false,
                ice: RTCIceConnectionState::New,
                rejected: 0,
                reception: Reception::new(),
            });
        }
        let addresses = viewers.iter().map(|v| v.local).collect::<Vec<_>>();
        Ok(Swarm {
            config,
            control,
            client,
            whep_url: format!(
                "{}/api/v1/cameras/{}/whep",
                config.base_url.trim_end_matches('/'),
                config.camera
            ),
            certificate,
            window: Window::new(&addresses),
            addresses,
            viewers,
            timers: BinaryHeap::new(),
            batch: RecvBatch::new(),
            clock: Clock::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EPOLL_EVENTS],
            started,
            unsettled: config.viewers,
        })
    }

    async fn run(
        mut self,
        on_connected: impl FnOnce(&ConnectSummary),
    ) -> anyhow::Result<SwarmReport> {
        let mut on_connected = Some(on_connected);
        let epoll = Epoll::new()?;
        for (index, viewer) in self.viewers.iter().enumerate() {
            epoll.add(viewer.socket.as_raw_fd(), index as u64)?;
        }
        // SAFETY: Epoll owns its descriptor (OwnedFd), which stays open and the same until the
        // AsyncFd, which owns the Epoll, is dropped.
        let epoll = unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("cannot watch the swarm's epoll descriptor: {e}"))?;
        let connect_deadline = self.started + self.config.connect_timeout;
        let stop_deadline = self.started + self.config.max_run_time;
        let concurrency = self.config.connect_concurrency.max(1);
        let mut posts: FuturesUnordered<PostFuture> = FuturesUnordered::new();
        let mut next_offer = 0;
        let mut connecting = true;
        let mut straggler_check = self.started + STRAGGLER_CHECK;
        let sleep = tokio::time::sleep_until(Instant::now().into());
        tokio::pin!(sleep);
        let mut sleep_until = Instant::now();

        loop {
            let now = Instant::now();
            if connecting {
                while posts.len() < concurrency && next_offer < self.viewers.len() {
                    let index = next_offer;
                    next_offer += 1;
                    match self.offer(index, now) {
                        Ok(sdp) => posts.push(Box::pin(post_offer(
                            self.client.clone(),
                            self.whep_url.clone(),
                            self.config.base_url.clone(),
                            index,
                            sdp,
                        ))),
                        Err(reason) => self.give_up(index, &epoll, reason),
                    }
                }
                if now >= straggler_check {
                    straggler_check = now + STRAGGLER_CHECK;
                    self.give_up_stragglers(now, &epoll);
                }
                if self.unsettled == 0 || now >= connect_deadline {
                    posts.clear();
                    for index in 0..self.viewers.len() {
                        let viewer = &self.viewers[index];
                        if !matches!(viewer.phase, Phase::Connected | Phase::Done) {
                            let reason = format!(
                                "the swarm's connect phase ended ({:?}) before it connected \
                                 ({}, ICE {})",
                                self.config.connect_timeout,
                                viewer.phase.describe(),
                                viewer.ice
                            );
                            self.give_up(index, &epoll, reason);
                        }
                    }
                    connecting = false;
                    self.window.connect_done(self.started);
                    self.control
                        .connect_phase_over
                        .store(true, Ordering::Relaxed);
                    if let Some(on_connected) = on_connected.take() {
                        on_connected(&ConnectSummary {
                            connected: self.control.connected(),
                            failed: self.control.failed(),
                            seconds: self.window.connect_seconds,
                            cpu_seconds: self.window.connect_cpu_seconds,
                        });
                    }
                }
            }
            self.fire_timers(now, &epoll);
            if self.control.measuring_requested() && self.window.start.is_none() {
                for viewer in &mut self.viewers {
                    viewer.reception.reset();
                    viewer.rejected = 0;
                }
                self.window.begin(&self.addresses);
            }
            if self.control.stop_requested() || now >= stop_deadline {
                break;
            }
            self.clock.refresh();

            // Re-arm the sleep only when it has passed or a timer is due before it.
            let next_timer = self.timers.peek().map(|next| next.0.0);
            if sleep_until <= now || next_timer.is_some_and(|t| t < sleep_until) {
                sleep_until = next_timer.map_or(now + CONTROL_POLL, |t| t.min(now + CONTROL_POLL));
                sleep.as_mut().reset(sleep_until.into());
            }
            self.window.wakeups += 1;
            tokio::select! {
                ready = epoll.readable() => {
                    let mut guard = ready.context("waiting on the swarm's epoll descriptor")?;
                    if self.receive_ready(&epoll)? == 0 {
                        guard.clear_ready();
                    }
                }
                Some((index, answer)) = posts.next(), if !posts.is_empty() => {
                    self.on_answer(index, answer, &epoll);
                }
                _ = &mut sleep => {}
            }
        }

        let drops = self.window.end(&self.addresses);
        let teardown_started = Instant::now();
        self.teardown().await;
        let teardown_seconds = teardown_started.elapsed().as_secs_f64();
        let viewers = self
            .viewers
            .iter()
            .zip(drops)
            .map(|(viewer, socket_drops)| {
                let mut report = viewer
                    .reception
                    .report(viewer.connect_ms.is_some(), socket_drops);
                report.error = viewer.error.clone();
                report.answer_ms = viewer.answer_ms;
                report.connect_ms = viewer.connect_ms;
                report.lost_connection = viewer.lost_connection;
                report.rejected = viewer.rejected;
                report
            })
            .collect();
        Ok(self.window.report(viewers, teardown_seconds))
    }

    /// Gives up on the viewers whose POST is older than the per-viewer connect timeout.
    fn give_up_stragglers(&mut self, now: Instant, epoll: &AsyncFd<Epoll>) {
        let timeout = self.config.viewer_connect_timeout;
        for index in 0..self.viewers.len() {
            let viewer = &self.viewers[index];
            let late = matches!(viewer.phase, Phase::Offered | Phase::Connecting)
                && viewer
                    .posted_at
                    .is_some_and(|posted| now.saturating_duration_since(posted) > timeout);
            if late {
                let reason = format!(
                    "not connected within {timeout:?} of its offer ({}, ICE {})",
                    viewer.phase.describe(),
                    viewer.ice
                );
                self.give_up(index, epoll, reason);
            }
        }
    }

    /// Builds viewer `index`'s peer connection and returns its offer.
    fn offer(&mut self, index: usize, now: Instant) -> Result<String, String> {
        let viewer = &mut self.viewers[index];
        let (peer, sdp) = build_offer(viewer.local, &self.certificate, now)
            .map_err(|e| format!("cannot build the offer: {e}"))?;
        viewer.peer = Some(peer);
        viewer.phase = Phase::Offered;
        viewer.posted_at = Some(Instant::now());
        Ok(sdp)
    }

    fn on_answer(
        &mut self,
        index: usize,
        answer: Result<(String, String), String>,
        epoll: &AsyncFd<Epoll>,
    ) {
        let now = Instant::now();
        let viewer = &mut self.viewers[index];
        if viewer.phase != Phase::Offered {
            return;
        }
        viewer.answer_ms = viewer.posted_at.map(|t| millis(now - t));
        let (sdp, session_url) = match answer {
            Ok(answer) => answer,
            Err(reason) => return self.give_up(index, epoll, reason),
        };
        viewer.session_url = Some(session_url);
        let Some(peer) = viewer.peer.as_mut() else {
            return;
        };
        let applied = RTCSessionDescription::answer(sdp)
            .and_then(|answer| peer.set_remote_description(now, answer));
        if let Err(e) = applied {
            return self.give_up(index, epoll, format!("cannot apply the WHEP answer: {e}"));
        }
        viewer.phase = Phase::Connecting;
        // Start the connectivity checks now rather than at the next timer tick.
        let _ = peer.handle_timeout(now);
        self.service(index, now, epoll);
    }

    /// Takes one batch from every ready socket (at most [`EPOLL_EVENTS`] sockets); returns how
    /// many sockets were ready.
    fn receive_ready(&mut self, epoll: &AsyncFd<Epoll>) -> io::Result<usize> {
        let ready = epoll.get_ref().wait(&mut self.events, 0)?;
        for n in 0..ready {
            let index = self.events[n].u64 as usize;
            self.receive(index, epoll);
        }
        Ok(ready)
    }

    /// Reads one batch from viewer `index`'s socket into its peer connection.
    fn receive(&mut self, index: usize, epoll: &AsyncFd<Epoll>) {
        let viewer = &mut self.viewers[index];
        let received = self.batch.receive(viewer.socket.as_raw_fd());
        // The receipt time of every datagram of the batch: taken as recvmmsg returns.
        let receipt_ns = monotonic_ns();
        self.window.count_read(received);
        if received == 0 {
            return;
        }
        let Some(peer) = viewer.peer.as_mut() else {
            return;
        };
        let now = self.clock.instant_of(receipt_ns);
        // Only SRTP/SRTCP in the batch (RFC 7983: first byte 128..=191) once media flows: no
        // output, events nor timer changes to look for (see `service`).
        let mut media_only = viewer.streaming;
        let mut got_media = false;
        for i in 0..received {
            let arrival_ns = self.window.arrival(&self.clock, &self.batch, i, receipt_ns);
            let Some(peer_addr) = self.batch.source(i) else {
                continue;
            };
            media_only &= matches!(self.batch.datagram(i).first(), Some(128..=191));
            let datagram = TaggedBytesMut {
                now,
                transport: TransportContext {
                    local_addr: viewer.local,
                    peer_addr,
                    transport_protocol: TransportProtocol::UDP,
                    ecn: None,
                },
                message: BytesMut::from(self.batch.datagram(i)),
            };
            if peer.handle_read(datagram).is_err() {
                viewer.rejected += 1;
            }
            // handle_read has run the datagram through the whole pipeline: its RTP is queued.
            // `poll_read` would sweep every handler again on each call to find more;
            // `poll_media_read` (public, though hidden from the docs) just takes the queue.
            while let Some(message) = peer.poll_media_read() {
                if let RTCMessage::RtpPacket(_, packet) = message.message {
                    got_media = true;
                    viewer.reception.on_rtp(
                        packet.header.sequence_number,
                        packet.header.timestamp,
                        &packet.payload,
                        receipt_ns,
                        arrival_ns,
                    );
                }
            }
        }
        if media_only {
            return;
        }
        // From the first RTP packet on (its stream is bound by then), SRTP-only batches skip
        // the service sweeps.
        viewer.streaming |= got_media && viewer.phase == Phase::Connected;
        self.service(index, now, epoll);
    }

    /// Fires the timers due at `now`.
    fn fire_timers(&mut self, now: Instant, epoll: &AsyncFd<Epoll>) {
        let mut due = Vec::new();
        while let Some(&std::cmp::Reverse((deadline, index))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if self.viewers[index].timer == Some(deadline) {
                self.viewers[index].timer = None;
                due.push(index);
            }
        }
        for index in due {
            if let Some(peer) = self.viewers[index].peer.as_mut() {
                let _ = peer.handle_timeout(now);
                self.service(index, now, epoll);
            }
        }
        // Stale entries pile up only if deadlines move a lot; keep the heap bounded.
        if self.timers.len() > 4 * self.viewers.len() + 1024 {
            self.timers = self
                .viewers
                .iter()
                .enumerate()
                .filter_map(|(index, v)| v.timer.map(|t| std::cmp::Reverse((t, index))))
                .collect();
        }
    }

    /// Sends what viewer `index` has queued, handles its events and re-arms its timer.
    fn service(&mut self, index: usize, now: Instant, epoll: &AsyncFd<Epoll>) {
        let viewer = &mut self.viewers[index];
        let Some(peer) = viewer.peer.as_mut() else {
            return;
        };
        let mut end: Option<String> = None;
        // Events can queue output and output can raise events: a few rounds settle it.
        for _ in 0..4 {
            while let Some(out) = peer.poll_write() {
                let _ = viewer.socket.send_to(&out.message, out.transport.peer_addr);
            }
            let mut events = false;
            while let Some(event) = peer.poll_event() {
                events = true;
                let state = match event {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => state,
                    RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(ice) => {
                        viewer.ice = ice;
                        continue;
                    }
                    _ => continue,
                };
                match state {
                    RTCPeerConnectionState::Connected if viewer.phase == Phase::Connecting => {
                        viewer.phase = Phase::Connected;
                        viewer.connect_ms = viewer.posted_at.map(|t| millis(now - t));
                        self.control.connected.fetch_add(1, Ordering::Relaxed);
                        self.unsettled -= 1;
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        end = Some(format!("peer connection {state} (ICE {})", viewer.ice));
                    }
                    _ => {}
                }
            }
            if !events || end.is_some() {
                break;
            }
            // Output raised with an event (e.g. after ICE succeeds) leaves on a timer tick:
            // tick now instead of at the next deadline.
            let _ = peer.handle_timeout(now);
        }
        if let Some(reason) = end {
            return self.give_up(index, epoll, reason);
        }
        if let Some(deadline) = peer.poll_timeout()
            && viewer.timer != Some(deadline)
        {
            viewer.timer = Some(deadline);
            self.timers.push(std::cmp::Reverse((deadline, index)));
        }
    }

    /// Ends viewer `index`: no peer connection, socket no longer read, `reason` reported.
    fn give_up(&mut self, index: usize, epoll: &AsyncFd<Epoll>, reason: String) {
        let viewer = &mut self.viewers[index];
        if viewer.phase == Phase::Done {
            return;
        }
        if viewer.phase == Phase::Connected {
            viewer.lost_connection = true;
        } else {
            self.unsettled -= 1;
            self.control.failed.fetch_add(1, Ordering::Relaxed);
        }
        viewer.phase = Phase::Done;
        viewer.error.get_or_insert(reason);
        if let Some(mut peer) = viewer.peer.take() {
            let _ = peer.close();
            while let Some(out) = peer.poll_write() {
                let _ = viewer.socket.send_to(&out.message, out.transport.peer_addr);
            }
        }
        viewer.timer = None;
        let _ = epoll.get_ref().remove(viewer.socket.as_raw_fd());
    }

    /// Closes every peer connection (DTLS close_notify), then DELETEs every WHEP session,
    /// `connect_concurrency` at a time, within [`TEARDOWN_TIMEOUT`].
    async fn teardown(&mut self) {
        for viewer in &mut self.viewers {
            if let Some(mut peer) = viewer.peer.take() {
                let _ = peer.close();
                while let Some(out) = peer.poll_write() {
                    let _ = viewer.socket.send_to(&out.message, out.transport.peer_addr);
                }
            }
        }
        let urls: Vec<String> = self
            .viewers
            .iter_mut()
            .filter_map(|v| v.session_url.take())
            .collect();
        let client = self.client.clone();
        let concurrency = self.config.connect_concurrency.max(1);
        let deletes = futures_util::stream::iter(urls)
            .map(|url| {
                let client = client.clone();
                async move {
                    let _ = client.delete(url).send().await;
                }
            })
            .buffer_unordered(concurrency)
            .for_each(|()| async {});
        let _ = tokio::time::timeout(TEARDOWN_TIMEOUT, deletes).await;
    }
}

/// A viewer's peer connection with its recvonly H.264 offer applied locally and its host
/// candidate added; returns the connection and the offer SDP.
fn build_offer(
    local: SocketAddr,
    certificate: &RTCCertificate,
    now: Instant,
) -> Result<(RTCPeerConnection, String), rtc::shared::error::Error> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                        .to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 96,
        },
        RtpCodecKind::Video,
    )?;
    // Receiver reports only, as a browser sends them; no NACK generator, no TWCC.
    let registry = Registry::new().with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .build();
    let mut peer = RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![certificate.clone()])
                .build(),
        )
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)?;
    peer.add_transceiver_from_kind(
        RtpCodecKind::Video,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        }),
    )?;
    let offer = peer.create_offer(None)?;
    peer.set_local_description(now, offer)?;
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    peer.add_local_candidate(RTCIceCandidate::from(&host).to_json()?)?;
    let sdp = peer
        .local_description()
        .ok_or_else(|| rtc::shared::error::Error::Other("no local description".into()))?
        .sdp;
    Ok((peer, sdp))
}

/// An HTTPS client trusting only `ca_cert`, sending `token` as a bearer token.
fn whep_client(ca_cert: &std::path::Path, token: &str) -> anyhow::Result<reqwest::Client> {
    let pem = std::fs::read(ca_cert)
        .with_context(|| format!("cannot read the CA certificate {}", ca_cert.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM certificate", ca_cert.display()))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .context("the token cannot be sent in an HTTP header")?,
    );
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .https_only(true)
        .default_headers(headers)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the WHEP HTTPS client")
}

/// POSTs `offer` to `url`; the answer SDP and the absolute session URL, or what went wrong.
async fn post_offer(
    client: reqwest::Client,
    url: String,
    base_url: String,
    index: usize,
    offer: String,
) -> (usize, Result<(String, String), String>) {
    let result = async {
        let response = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/sdp")
            .body(offer)
            .send()
            .await
            .map_err(|e| format!("WHEP POST: {}", error_chain(&e)))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|e| format!("WHEP POST: reading the answer: {}", error_chain(&e)))?;
        if status != reqwest::StatusCode::CREATED {
            let quoted: String = body.chars().take(ERROR_BODY_CHARS).collect();
            return Err(format!("WHEP POST {url}: {status}: {quoted}"));
        }
        let location =
            location.ok_or_else(|| format!("WHEP POST {url}: 201 without a Location header"))?;
        let session_url = if location.starts_with('/') {
            format!("{}{location}", base_url.trim_end_matches('/'))
        } else {
            location
        };
        Ok((body, session_url))
    }
    .await;
    (index, result)
}

/// An error with its causes, `a: b: c`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// The measurement window, clocks and kernel counters.

/// Start and end of the measurement window, and what the swarm thread cost.
struct Window {
    /// When measuring began (None: not yet).
    start: Option<Instant>,
    cpu_start: f64,
    drops_start: Vec<u64>,
    end: Option<Instant>,
    cpu_end: f64,
    connect_seconds: f64,
    connect_cpu_seconds: f64,
    /// Receivers' first packet before any window: the window then covers everything.
    created: Instant,
    socket_wait: LatencyHistogram,
    wakeups: u64,
    socket_reads: u64,
    datagrams: u64,
}

impl Window {
    fn new(addresses: &[SocketAddr]) -> Window {
        Window {
            start: None,
            cpu_start: thread_cpu_seconds(),
            drops_start: socket_drops(addresses),
            end: None,
            cpu_end: 0.0,
            connect_seconds: 0.0,
            connect_cpu_seconds: 0.0,
            created: Instant::now(),
            socket_wait: LatencyHistogram::new(),
            wakeups: 0,
            socket_reads: 0,
            datagrams: 0,
        }
    }

    fn connect_done(&mut self, started: Instant) {
        self.connect_seconds = started.elapsed().as_secs_f64();
        self.connect_cpu_seconds = thread_cpu_seconds() - self.cpu_start;
    }

    fn begin(&mut self, addresses: &[SocketAddr]) {
        self.drops_start = socket_drops(addresses);
        self.socket_wait.clear();
        (self.wakeups, self.socket_reads, self.datagrams) = (0, 0, 0);
        self.cpu_start = thread_cpu_seconds();
        self.start = Some(Instant::now());
    }

    /// Ends the window; the socket drops of each receiver during it.
    fn end(&mut self, addresses: &[SocketAddr]) -> Vec<u64> {
        self.end = Some(Instant::now());
        self.cpu_end = thread_cpu_seconds();
        socket_drops(addresses)
            .iter()
            .zip(&self.drops_start)
            .map(|(end, start)| end.saturating_sub(*start))
            .collect()
    }

    /// Counts a read of `datagrams` datagrams.
    #[inline]
    fn count_read(&mut self, datagrams: usize) {
        if datagrams > 0 {
            self.socket_reads += 1;
            self.datagrams += datagrams as u64;
        }
    }

    /// The kernel's arrival time of datagram `i` of `batch` on CLOCK_MONOTONIC, recording how
    /// long it then waited in its socket until `receipt_ns`.
    #[inline]
    fn arrival(
        &mut self,
        clock: &Clock,
        batch: &RecvBatch,
        i: usize,
        receipt_ns: u64,
    ) -> Option<u64> {
        let arrival_ns = batch
            .kernel_time_ns(i)?
            .saturating_sub(clock.realtime_offset_ns);
        self.socket_wait
            .record_ns(receipt_ns.saturating_sub(arrival_ns));
        Some(arrival_ns)
    }

    fn report(&self, viewers: Vec<ViewerReport>, teardown_seconds: f64) -> SwarmReport {
        let start = self.start.unwrap_or(self.created);
        let end = self.end.unwrap_or_else(Instant::now);
        SwarmReport {
            viewers,
            connect_seconds: self.connect_seconds,
            connect_cpu_seconds: self.connect_cpu_seconds,
            measured_seconds: end.saturating_duration_since(start).as_secs_f64(),
            cpu_seconds: self.cpu_end - self.cpu_start,
            socket_wait: self.socket_wait.clone(),
            teardown_seconds,
            wakeups: self.wakeups,
            socket_reads: self.socket_reads,
            datagrams: self.datagrams,
        }
    }
}

/// Converts between CLOCK_MONOTONIC nanoseconds, `Instant` (the same clock on Linux) and
/// CLOCK_REALTIME (the clock of kernel receive timestamps).
struct Clock {
    anchor: Instant,
    anchor_ns: u64,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, in nanoseconds.
    realtime_offset_ns: u64,
    refreshed: Instant,
}

impl Clock {
    fn new() -> Clock {
        let anchor = Instant::now();
        let anchor_ns = monotonic_ns();
        let mut clock = Clock {
            anchor,
            anchor_ns,
            realtime_offset_ns: 0,
            refreshed: anchor,
        };
        clock.realtime_offset_ns = realtime_offset_ns();
        clock
    }

    /// The `Instant` of a CLOCK_MONOTONIC reading (saves a second clock read per batch).
    #[inline]
    fn instant_of(&self, monotonic: u64) -> Instant {
        self.anchor + Duration::from_nanos(monotonic.saturating_sub(self.anchor_ns))
    }

    /// Re-reads the realtime offset once a second (it moves only when the clock is stepped).
    fn refresh(&mut self) {
        if self.refreshed.elapsed() >= Duration::from_secs(1) {
            self.realtime_offset_ns = realtime_offset_ns();
            self.refreshed = Instant::now();
        }
    }
}

fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; the clocks used here always exist.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC, from the closest of a few paired readings.
fn realtime_offset_ns() -> u64 {
    let mut best = (u64::MAX, 0);
    for _ in 0..3 {
        let before = monotonic_ns();
        let realtime = read_clock(libc::CLOCK_REALTIME);
        let after = monotonic_ns();
        let spread = after - before;
        if spread < best.0 {
            best = (spread, realtime - (before + spread / 2));
        }
    }
    best.1
}

/// CPU time (user + system) of the calling thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    read_clock(libc::CLOCK_THREAD_CPUTIME_ID) as f64 / 1e9
}

/// Datagrams dropped so far at each of these 127.0.0.1 sockets (buffer full), from
/// `/proc/self/net/udp` (0 for a socket not found there).
fn socket_drops(addresses: &[SocketAddr]) -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/self/net/udp").unwrap_or_default();
    let mut by_port = HashMap::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(drops)) = (fields.get(1), fields.last()) else {
            continue;
        };
        let Some((address, port)) = local.split_once(':') else {
            continue;
        };
        if address != "0100007F" {
            continue;
        }
        if let (Ok(port), Ok(drops)) = (u16::from_str_radix(port, 16), drops.parse::<u64>()) {
            by_port.insert(port, drops);
        }
    }
    addresses
        .iter()
        .map(|a| by_port.get(&a.port()).copied().unwrap_or(0))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Sockets: epoll and recvmmsg.

/// A non-blocking UDP socket on 127.0.0.1 with kernel receive timestamps and a larger buffer.
fn bind_receiver_socket() -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_nonblocking(true)?;
    set_socket_option(&socket, libc::SO_TIMESTAMPNS, 1)?;
    set_socket_option(&socket, libc::SO_RCVBUF, SOCKET_RECEIVE_BUFFER)?;
    Ok(socket)
}

fn set_socket_option(
    socket: &UdpSocket,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the descriptor is open for the call; the value is a c_int of the size passed.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A level-triggered epoll set of sockets, each identified by a token.
struct Epoll(OwnedFd);

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory arguments; a non-negative result is a new
        // descriptor that we own from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::other(format!(
                "epoll_create1: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: fd was just created and is owned by nothing else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; the event lives for the call.
        if unsafe { libc::epoll_ctl(self.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(io::Error::other(format!(
                "epoll_ctl(ADD) of a receiver socket: {}",
                io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    fn remove(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: both descriptors are open; DEL ignores the event argument.
        if unsafe {
            libc::epoll_ctl(
                self.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (0: not at all) for ready sockets; how many were written to
    /// `events`.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: events is a writable buffer of the length passed.
        let ready = unsafe {
            libc::epoll_wait(
                self.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(io::Error::other(format!("epoll_wait: {error}")));
        }
        Ok(ready as usize)
    }
}

/// Buffers for one `recvmmsg` call: datagrams, source addresses and kernel receive timestamps.
/// The headers point into the other buffers, whose heap storage never moves.
struct RecvBatch {
    data: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    /// Control messages, 8-byte aligned as `cmsghdr` needs.
    controls: Vec<[u64; 8]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    fn new() -> RecvBatch {
        let mut batch = RecvBatch {
            data: vec![0; RECV_BATCH * DATAGRAM_BYTES],
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
            addresses: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            controls: vec![[0; 8]; RECV_BATCH],
            iovecs: Vec::with_capacity(RECV_BATCH),
            headers: Vec::with_capacity(RECV_BATCH),
        };
        for i in 0..RECV_BATCH {
            batch.iovecs.push(libc::iovec {
                iov_base: batch.data[i * DATAGRAM_BYTES..].as_mut_ptr().cast(),
                iov_len: DATAGRAM_BYTES,
            });
        }
        for i in 0..RECV_BATCH {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value, filled in below.
            let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
            header.msg_hdr.msg_name =
                (&mut batch.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_iov = &mut batch.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = batch.controls[i].as_mut_ptr().cast();
            batch.headers.push(header);
        }
        batch
    }

    /// Reads up to [`RECV_BATCH`] datagrams from non-blocking `fd`; 0 when none is waiting (or
    /// on an error, which the next readiness will show again).
    fn receive(&mut self, fd: RawFd) -> usize {
        for header in &mut self.headers {
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_controllen = size_of::<[u64; 8]>();
            header.msg_len = 0;
        }
        // SAFETY: every header points into buffers owned by self that outlive the call, with
        // the lengths set just above.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        received.max(0) as usize
    }

    /// Datagram `i` of the last call.
    #[inline]
    fn datagram(&self, i: usize) -> &[u8] {
        let length = (self.headers[i].msg_len as usize).min(DATAGRAM_BYTES);
        &self.data[i * DATAGRAM_BYTES..i * DATAGRAM_BYTES + length]
    }

    /// The source address of datagram `i`.
    fn source(&self, i: usize) -> Option<SocketAddr> {
        let storage = &self.addresses[i];
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage.
                let v4: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                    u16::from_be(v4.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6) into the storage.
                let v6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(v6.sin6_addr.s6_addr),
                    u16::from_be(v6.sin6_port),
                    v6.sin6_flowinfo,
                    v6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The kernel's receive time of datagram `i` (CLOCK_REALTIME ns), from SO_TIMESTAMPNS.
    fn kernel_time_ns(&self, i: usize) -> Option<u64> {
        let header = &self.headers[i].msg_hdr;
        // SAFETY: the header's control buffer and length are what the kernel filled in; the
        // CMSG_* helpers stay within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(header);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let time: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    return Some(time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64);
                }
                cmsg = libc::CMSG_NXTHDR(header, cmsg);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    // Bench targets are built with `--cfg test` but without the test harness, which drops the
    // #[test] functions and leaves this import unused there; `unit_tests.rs` runs them.
    #[allow(unused_imports)]
    use super::*;

    fn rtp(sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x80, 96];
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        packet.extend_from_slice(payload);
        packet
    }

    fn stamped(ns: u64) -> Vec<u8> {
        let mut payload = vec![0x65];
        payload.extend_from_slice(crate::synthetic_camera::MAGIC);
        payload.extend_from_slice(&ns.to_be_bytes());
        payload.extend_from_slice(&[0; 20]);
        payload
    }

    #[test]
    fn loss_reordering_and_wrap_are_counted() {
        let mut r = Reception::new();
        for sequence in [65_533u16, 65_534, 65_535, 0, 2, 1, 5, 5] {
            r.on_rtp(sequence, 0, &[1], 0, None);
        }
        // 65533..=5 is 9 expected; 8 received (one twice): 3 and 4 are missing, 1 came late.
        assert_eq!(r.packets, 8);
        assert_eq!(r.lost(), 1);
        assert_eq!(r.out_of_order, 2);
        r.reset();
        assert_eq!((r.packets, r.lost()), (0, 0));
        r.on_rtp(100, 0, &[1], 0, None);
        r.on_rtp(110, 0, &[1], 0, None);
        assert_eq!(r.lost(), 9);
    }

    #[test]
    fn stamps_give_latency_and_time_jumps_are_skips() {
        let mut r = Reception::new();
        r.on_rtp(1, 0, &stamped(1_000_000), 1_250_000, Some(1_050_000));
        r.on_rtp(2, 3_000, &stamped(2_000_000), 2_100_000, None);
        r.on_rtp(3, 3_000, b"no stamp here", 2_100_000, Some(2_000_000));
        r.on_rtp(4, 90_000, &stamped(3_000_000), 3_000_500, Some(3_000_100));
        assert_eq!((r.packets, r.stamped, r.media_skips), (4, 3, 1));
        assert_eq!(r.latency.count(), 3);
        assert_eq!(r.latency.max(), 250);
        assert_eq!(r.latency.min(), 0);
        // Arrival latency only where the kernel gave an arrival time.
        assert_eq!(r.arrival_latency.count(), 2);
        assert_eq!(r.arrival_latency.max(), 50);
    }

    #[test]
    fn clear_rtp_is_parsed_with_csrcs_extension_and_padding() {
        let packet = rtp(7, 9, b"abc");
        assert_eq!(parse_rtp(&packet), Some((7, 9, &b"abc"[..])));
        let mut complex = vec![0x80 | 0x20 | 0x10 | 1, 96, 0, 8, 0, 0, 0, 1, 0, 0, 0, 2];
        complex.extend_from_slice(&[0, 0, 0, 3]); // one CSRC
        complex.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, one word
        complex.extend_from_slice(b"xy");
        complex.extend_from_slice(&[0, 0, 3]); // padding of 3
        assert_eq!(parse_rtp(&complex), Some((8, 1, &b"xy"[..])));
        assert_eq!(parse_rtp(&[0x80, 96, 0]), None);
        assert_eq!(parse_rtp(&[0x40; 12]), None);
    }

    #[test]
    fn plain_receivers_measure_what_they_are_sent() {
        let control = SwarmControl::new();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let receivers = scope.spawn(|| {
                run_plain_receivers(2, Duration::from_secs(20), &control, |addresses| {
                    tx.send(addresses.to_vec()).unwrap();
                })
            });
            let addresses = rx.recv_timeout(Duration::from_secs(5)).expect("addresses");
            let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
            sender.send_to(&rtp(1, 0, b"before"), addresses[0]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            control.start_measuring();
            std::thread::sleep(Duration::from_millis(50));
            for sequence in [10u16, 11, 13] {
                let packet = rtp(sequence, 0, &stamped(monotonic_ns()));
                for address in &addresses {
                    sender.send_to(&packet, address).unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
            control.stop();
            let report = receivers.join().unwrap().expect("report");
            assert_eq!(report.viewers.len(), 2);
            for viewer in &report.viewers {
                assert!(viewer.connected);
                assert_eq!((viewer.packets, viewer.lost, viewer.stamped), (3, 1, 3));
                assert_eq!(viewer.socket_drops, 0);
                // Same machine, same clock: well under a second.
                assert!(viewer.latency.max() < 1_000_000, "{:?}", viewer.latency);
            }
            assert_eq!(report.socket_wait.count(), 6);
            assert_eq!(report.merged_arrival_latency().count(), 6);
            assert!(report.merged_arrival_latency().max() <= report.merged_latency().max());
            assert!(report.measured_seconds > 0.1 && report.measured_seconds < 5.0);
            let json = serde_json::to_string(&report).unwrap();
            let back: SwarmReport = serde_json::from_str(&json).unwrap();
            assert_eq!(back.viewers[1].latency, report.viewers[1].latency);
        });
    }
}
