//! Straja's gateway: configuration, the HTTPS API and WHEP signalling, the media hub, the WebRTC
//! adapter and metrics. The daemon binary (`straja`) is a thin CLI over [`server`].
//!
//! Policy: a panic is a bug. Nothing a client, a camera or the network sends may panic the
//! gateway; bad input gets a 4xx or a logged, metered recovery.

#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod camera_set;
pub mod cameras;
pub mod config;
pub mod consultation;
pub mod gateway;
pub mod heartbeat;
pub mod http;
pub mod hub;
pub mod key_file;
pub mod metrics;
pub mod metrics_server;
pub mod recording;
pub mod reload;
pub mod server;
pub mod service_notify;
pub mod sessions;
pub mod snapshots;
pub mod tls;
pub mod tls_handshake_counter;
pub mod transcoding;
pub mod webrtc;
