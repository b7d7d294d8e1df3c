//! Shared helpers for Straja's integration tests; include with `mod support;`.
//!
//! - [`consultation_client`]: a consultation participant's signalling socket (wss, JSON).
//! - [`consultation_participant`]: a whole participant (signalling, publisher, subscriptions)
//!   and the API calls that start and join a consultation.
//! - [`rtp_publisher`]: a participant's publishing webrtc-rs peer (real H.264 and Opus).
//! - [`chromium`]: headless Chromium driven over the DevTools protocol (WebRTC/WHEP playback).
//! - [`gateway_process`]: the `straja` binary in its own (optionally pinned) process, measured
//!   from `/proc`.
//! - [`gateway_under_test`]: a real gateway on loopback with a dev CA, and an HTTPS client.
//! - [`lossy_link`]: a poor network link (loss, delay) between one WebRTC peer and the gateway.
//! - [`notify_listener`]: the service manager's end of sd_notify (`NOTIFY_SOCKET`), read by a thread.
//! - [`recordings`]: segment files decrypted with the gateway's key, MP4s checked with ffprobe.
//! - [`reference_camera`]: the benchmarks' 720p30 2 Mbit/s GOP 1 s camera.
//! - [`tls_client`]: a rustls client configuration trusting only the test CA.
//! - [`test_artifacts`]: where tests keep files for people to look at (`target/test-artifacts/`).
//! - [`whep_viewer`]: an in-process webrtc-rs WHEP viewer that counts complete H.264 frames.
#![allow(dead_code)]

pub mod chromium;
pub mod consultation_client;
pub mod consultation_participant;
pub mod gateway_process;
pub mod gateway_under_test;
pub mod lossy_link;
pub mod notify_listener;
pub mod recordings;
pub mod reference_camera;
pub mod rtp_publisher;
pub mod test_artifacts;
pub mod tls_client;
pub mod whep_viewer;
