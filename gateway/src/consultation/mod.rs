//! Telemedicine consultations: a clinician and up to three invited participants (patient,
//! interpreter, family member, specialist) in their browsers, the gateway relaying every
//! participant's audio and video to the others (an SFU: no peer-to-peer, no transcoding), so that
//! media stays inside the box and its encryption.
//!
//! - [`protocol`]: the signalling messages (JSON over a WebSocket, versioned by subprotocol).

pub mod protocol;
