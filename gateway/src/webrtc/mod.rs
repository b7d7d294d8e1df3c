//! The WebRTC adapter: the only module that names the WebRTC stack (`rtc`, webrtc-rs's sans-IO
//! core). It owns the shared media port and runs one task per viewer; the rest of the gateway
//! speaks in the hub's types and SDP strings.

pub mod keyframe_feedback;
pub mod rtp_rewriter;
pub mod stun_username;
pub mod udp_transport;
pub mod viewer_session;
pub mod whep_peer;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::WebrtcConfig;
use crate::hub::Subscription;
use udp_transport::UdpTransport;
pub use viewer_session::EndReason;
pub use whep_peer::{OfferError, PeerSetupError};

/// The WebRTC side of the gateway: media port plus viewer sessions.
pub struct WebrtcEngine {
    transport: Arc<UdpTransport>,
    public_ips: Vec<IpAddr>,
    next_key: AtomicU64,
    receivers: Vec<JoinHandle<()>>,
}

/// A viewer session that was answered and is now running.
pub struct StartedViewer {
    /// The SDP answer.
    pub answer_sdp: String,
    /// Send (or drop) to end the session.
    pub close: oneshot::Sender<()>,
}

impl WebrtcEngine {
    /// Binds the media port and starts receiving.
    pub async fn bind(
        config: &WebrtcConfig,
        unmatched: prometheus::IntCounter,
    ) -> io::Result<WebrtcEngine> {
        let transport = UdpTransport::bind(config.udp_listen, unmatched).await?;
        let receivers = transport.spawn_receivers();
        Ok(WebrtcEngine {
            transport,
            public_ips: config.public_ips.clone(),
            next_key: AtomicU64::new(1),
            receivers,
        })
    }

    /// The media port's local addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.transport.local_addrs()
    }

    /// Answers a WHEP offer and starts the viewer's session task. `on_end` runs when it ends.
    /// Outer error: our failure (500); inner error: the offer's fault (400).
    pub fn start_viewer(
        &self,
        offer_sdp: &str,
        subscription: Subscription,
        on_end: impl FnOnce(EndReason) + Send + 'static,
    ) -> Result<Result<StartedViewer, OfferError>, PeerSetupError> {
        let negotiated =
            match whep_peer::negotiate(offer_sdp, &self.transport.local_addrs(), &self.public_ips)?
            {
                Ok(negotiated) => negotiated,
                Err(e) => return Ok(Err(e)),
            };
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (inbox_tx, inbox) = mpsc::channel(udp_transport::SESSION_INBOX_DATAGRAMS);
        self.transport
            .register(key, negotiated.ice_ufrag.clone(), inbox_tx);
        let (close, close_rx) = oneshot::channel();
        let session = viewer_session::ViewerSession {
            key,
            peer: negotiated.peer,
            sender: negotiated.sender,
            rewriter: rtp_rewriter::RtpRewriter::new(
                negotiated.ssrc,
                negotiated.payload_type,
                rand::random(),
                rand::random(),
            ),
            subscription,
            inbox,
            transport: self.transport.clone(),
            close: close_rx,
        };
        tokio::spawn(async move {
            let reason = session.run().await;
            on_end(reason);
        });
        Ok(Ok(StartedViewer {
            answer_sdp: negotiated.answer_sdp,
            close,
        }))
    }
}

impl Drop for WebrtcEngine {
    fn drop(&mut self) {
        for receiver in &self.receivers {
            receiver.abort();
        }
    }
}
