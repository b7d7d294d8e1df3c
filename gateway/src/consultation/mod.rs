//! Telemedicine consultations: a clinician and up to three invited participants (patient,
//! interpreter, family member, specialist) in their browsers, the gateway relaying every
//! participant's audio and video to the others (an SFU: no peer-to-peer, no transcoding), so that
//! media stays inside the box and its encryption.
//!
//! - [`protocol`]: the signalling messages (JSON over a WebSocket, versioned by subprotocol);
//! - [`room`]: one consultation's state machine (no sockets, no media);
//! - [`invite`]: single-use, expiring invitations;
//! - [`registry`]: the running consultations, their signalling links and their media;
//! - [`message_rate`]: how fast one page may send.

pub mod invite;
pub mod message_rate;
pub mod protocol;
pub mod registry;
pub mod room;

pub use registry::{Consultation, Consultations};
