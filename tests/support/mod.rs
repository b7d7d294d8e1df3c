//! Shared helpers for Straja's integration tests; include with `mod support;`.
//!
//! - [`chromium`]: headless Chromium driven over the DevTools protocol (WebRTC/WHEP playback).
//! - [`gateway_under_test`]: a real gateway on loopback with a dev CA, and an HTTPS client.
//! - [`whep_viewer`]: an in-process webrtc-rs WHEP viewer that counts complete H.264 frames.
#![allow(dead_code)]

pub mod chromium;
pub mod gateway_under_test;
pub mod whep_viewer;
