//! The WebRTC adapter: the only module that names the WebRTC stack (`rtc`, webrtc-rs's sans-IO
//! core). It owns the shared media port and the egress shards (one per core) that run the viewer
//! sessions; the rest of the gateway speaks in the hub's types and SDP strings.

pub mod batch_sender;
#[cfg(test)]
mod browser_side;
pub mod deadline_queue;
pub mod direct_link;
pub mod dtls_srtp_client;
pub mod egress_shard;
pub mod ice_lite_responder;
pub mod keyframe_feedback;
pub mod publisher_peer;
pub mod publisher_session;
pub mod retransmit_history;
pub mod rtc_link;
pub mod rtcp_quality;
pub mod rtp_rewriter;
pub mod srtp_gcm_sender;
pub mod stall_hook;
pub mod stun_username;
pub mod udp_transport;
pub mod viewer_link;
pub mod viewer_session;
pub mod whep_peer;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{ViewerStack, WebrtcConfig};
use crate::heartbeat::Heartbeats;
use crate::hub::CameraFeed;
use egress_shard::{Control, ShardHandle};
use udp_transport::UdpTransport;
pub use viewer_session::EndReason;
pub use whep_peer::{OfferError, PeerSetupError};

/// The WebRTC side of the gateway: media port plus viewer sessions.
pub struct WebrtcEngine {
    transport: Arc<UdpTransport>,
    public_ips: Vec<IpAddr>,
    viewer_stack: ViewerStack,
    next_key: AtomicU64,
    shards: Vec<ShardHandle>,
    receivers: Vec<JoinHandle<()>>,
}

/// A viewer session that was answered and is now running.
pub struct StartedViewer {
    /// The SDP answer.
    pub answer_sdp: String,
    /// Ends the session when closed or dropped.
    pub close: ViewerCloser,
}

/// A publisher (a consultation participant's camera and microphone) that was answered and runs.
pub struct StartedPublisher {
    /// The SDP answer.
    pub answer_sdp: String,
    /// Ends the connection when dropped.
    pub close: publisher_session::PublisherCloser,
}

/// Datagrams queued for one publisher's task before the media port drops them.
const PUBLISHER_INBOX_DATAGRAMS: usize = 1024;

/// Ends its viewer session when closed or dropped (nothing if the session has ended already).
pub struct ViewerCloser {
    key: u64,
    control: mpsc::UnboundedSender<Control>,
}

impl ViewerCloser {
    /// Ends the session.
    pub fn close(self) {}
}

impl Drop for ViewerCloser {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Close(self.key));
    }
}

impl WebrtcEngine {
    /// Binds the media port and starts receiving; each egress shard registers its heartbeat
    /// ("egress shard N") in `heartbeats` and records its packets' hub-to-socket time in
    /// `relay_latency`.
    pub async fn bind(
        config: &WebrtcConfig,
        unmatched: prometheus::IntCounter,
        heartbeats: &Heartbeats,
        relay_latency: std::sync::Arc<crate::metrics::relay_latency::RelayLatency>,
    ) -> io::Result<WebrtcEngine> {
        let transport = UdpTransport::bind(config.udp_listen, unmatched).await?;
        let receivers = transport.spawn_receivers();
        let shard_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut stall = stall_hook::StallHook::from_env(std::time::Instant::now());
        let shards = (0..shard_count)
            .map(|i| {
                let heartbeat = heartbeats.register(format!("egress shard {i}"));
                ShardHandle::spawn(
                    transport.clone(),
                    heartbeat,
                    stall.take(),
                    relay_latency.clone(),
                )
            })
            .collect();
        Ok(WebrtcEngine {
            transport,
            public_ips: config.public_ips.clone(),
            viewer_stack: config.viewer_stack,
            next_key: AtomicU64::new(1),
            shards,
            receivers,
        })
    }

    /// The media port's local addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.transport.local_addrs()
    }

    /// Answers a WHEP offer for a viewer of `feed` and starts its session on the least loaded
    /// egress shard. `on_end` runs when it ends. Outer error: our failure (500); inner error: the
    /// offer's fault (400).
    ///
    /// The viewer is sent `feed`'s video codec (the caller picks the feed: an H.265 camera's own
    /// for a viewer that offers H.265, its H.264 transcode for the others). `audio` is the camera's
    /// audio feed and codec, when it has audio: the viewer gets it too if its offer takes the codec.
    pub fn start_viewer(
        &self,
        offer_sdp: &str,
        feed: Arc<CameraFeed>,
        audio: Option<(Arc<CameraFeed>, whep_peer::AudioCodec)>,
        on_end: impl FnOnce(EndReason) + Send + 'static,
    ) -> Result<Result<StartedViewer, OfferError>, PeerSetupError> {
        let negotiated = match whep_peer::negotiate(
            offer_sdp,
            &self.transport.local_addrs(),
            &self.public_ips,
            feed.video_codec(),
            audio.as_ref().map(|(_, codec)| *codec),
        )? {
            Ok(negotiated) => negotiated,
            Err(e) => return Ok(Err(e)),
        };
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let shard = self
            .shards
            .iter()
            .min_by_key(|shard| shard.viewers.load(Ordering::Relaxed))
            .ok_or_else(|| PeerSetupError::new("no egress shard is running"))?;
        self.transport
            .register(key, negotiated.ice_ufrag.clone(), shard.datagrams.clone());
        let audio_stream = negotiated
            .audio
            .as_ref()
            .map(|a| (a.ssrc, a.codec.clock_rate()));
        let link = match (self.viewer_stack, negotiated.direct) {
            (ViewerStack::Straja, Some(setup)) => viewer_link::ViewerLink::Direct(Box::new(
                direct_link::DirectLink::new(
                    setup,
                    negotiated.ssrc,
                    audio_stream,
                    std::time::Instant::now(),
                )
                .map_err(PeerSetupError::new)?,
            )),
            _ => viewer_link::ViewerLink::Rtc(Box::new(rtc_link::RtcLink::new(
                negotiated.peer,
                negotiated.sender,
                negotiated.audio.as_ref().map(|a| a.sender),
            ))),
        };
        tracing::debug!(
            own_stack = matches!(link, viewer_link::ViewerLink::Direct(_)),
            "viewer connection: the gateway's own stack (ICE-lite, DTLS, SRTP) or rtc's"
        );
        let session = viewer_session::ViewerSession::new(
            link,
            rtp_rewriter::RtpRewriter::new(
                negotiated.ssrc,
                negotiated.payload_type,
                rand::random(),
                rand::random(),
            ),
            feed,
            negotiated
                .audio
                .zip(audio)
                .map(|(negotiated, (audio_feed, codec))| {
                    viewer_session::AudioPath::new(
                        rtp_rewriter::RtpRewriter::new(
                            negotiated.ssrc,
                            negotiated.payload_type,
                            rand::random(),
                            rand::random(),
                        ),
                        audio_feed,
                        codec.clock_rate(),
                    )
                }),
        );
        shard.viewers.fetch_add(1, Ordering::Relaxed);
        let started = Control::Start {
            key,
            session: Box::new(session),
            on_end: Box::new(on_end),
        };
        if shard.control.send(started).is_err() {
            shard.viewers.fetch_sub(1, Ordering::Relaxed);
            self.transport.unregister(key);
            return Err(PeerSetupError::new("the egress shard has stopped"));
        }
        let close = ViewerCloser {
            key,
            control: shard.control.clone(),
        };
        Ok(Ok(StartedViewer {
            answer_sdp: negotiated.answer_sdp,
            close,
        }))
    }

    /// Answers a consultation participant's publish offer and runs its connection in a task of
    /// its own: its RTP goes to `video` and `audio` (whose subscribers are served like a camera's
    /// viewers), and `video`'s keyframe requests reach the browser as PLIs. `on_end` runs when it
    /// ends. Errors as for [`WebrtcEngine::start_viewer`]. Call it inside the async runtime.
    pub fn start_publisher(
        &self,
        offer_sdp: &str,
        video: Arc<CameraFeed>,
        audio: Arc<CameraFeed>,
        on_end: impl FnOnce(EndReason) + Send + 'static,
    ) -> Result<Result<StartedPublisher, OfferError>, PeerSetupError> {
        let negotiated = match publisher_peer::negotiate_publisher(
            offer_sdp,
            &self.transport.local_addrs(),
            &self.public_ips,
        )? {
            Ok(negotiated) => negotiated,
            Err(e) => return Ok(Err(e)),
        };
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (inbox, inbox_rx) = mpsc::channel(PUBLISHER_INBOX_DATAGRAMS);
        self.transport.register(key, negotiated.ice_ufrag, inbox);
        let (control, control_rx) = mpsc::unbounded_channel();
        video.set_keyframe_source(Arc::new(publisher_session::PublisherKeyframes(
            control.clone(),
        )));
        let session = publisher_session::PublisherSession::new(negotiated.peer, video, audio);
        tokio::spawn(session.run(self.transport.clone(), key, inbox_rx, control_rx, on_end));
        Ok(Ok(StartedPublisher {
            answer_sdp: negotiated.answer_sdp,
            close: publisher_session::PublisherCloser(control),
        }))
    }
}

impl Drop for WebrtcEngine {
    fn drop(&mut self) {
        // The shards stop when their handles drop.
        for receiver in &self.receivers {
            receiver.abort();
        }
    }
}
