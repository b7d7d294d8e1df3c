//! The consultation signalling protocol: JSON text messages over a WebSocket
//! (`GET /api/v1/consultations/{id}/signal`, subprotocol `straja.consultation.v1`), one object per
//! message with a `type` field. Versioned by the subprotocol: a client that does not offer
//! `straja.consultation.v1` is refused at the upgrade, and every message carries no version of
//! its own. Media goes in separate peer connections: each participant *publishes* its camera and
//! microphone in one (`publish`: its offer, sendonly; the gateway answers, recvonly) and
//! *subscribes* to each other participant in one more (`subscribe`: its offer, recvonly; the
//! gateway answers, sendonly, with that participant's media). A participant who comes or goes
//! changes nothing in the others' existing connections: they subscribe to the newcomer, or close
//! the leaver's subscription.
//!
//! Client to gateway ([`ClientMessage`]); gateway to client ([`ServerMessage`]). Limits: a text
//! message is at most [`MAX_MESSAGE_BYTES`]; a chat text at most [`MAX_CHAT_CHARS`] characters.

use serde::{Deserialize, Serialize};

/// The WebSocket subprotocol of this version.
pub const SUBPROTOCOL: &str = "straja.consultation.v1";
/// Largest message accepted (an SDP offer is a few KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;

/// A participant's id within its consultation (`p1`, `p2`, …; never a name).
pub type ParticipantId = String;

/// What a participant is in the consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantRole {
    /// The clinician who started it: admits others, ends it, starts recording.
    Host,
    /// Someone invited (patient, interpreter, family member, specialist).
    Guest,
}

/// Where a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Joined, waiting for the host to admit them.
    Waiting,
    /// In the consultation.
    Admitted,
    /// Connection lost; their place is kept for a while (they may come back).
    Away,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Its id.
    pub id: ParticipantId,
    /// The name shown on the pages (the invite's label, e.g. "Patient", or the clinician's).
    pub name: String,
    /// Host or guest.
    pub role: ParticipantRole,
    /// Where it is.
    pub presence: Presence,
    /// True once its media is published (others may subscribe).
    pub publishing: bool,
    /// Has consented to recording.
    pub consented: bool,
}

/// The recording's state, as every page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Not recording.
    Off,
    /// Recording (every page shows the indicator).
    On,
}

/// Client to gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Publishes (or re-publishes, e.g. after an ICE restart) the participant's media: an SDP
    /// offer with sendonly audio and video. Answered by [`ServerMessage::PublishAnswer`].
    Publish {
        /// The offer.
        sdp: String,
    },
    /// Subscribes to another participant's media: an SDP offer with recvonly audio and video.
    /// Answered by [`ServerMessage::SubscribeAnswer`].
    Subscribe {
        /// Whose media.
        participant: ParticipantId,
        /// The offer.
        sdp: String,
    },
    /// Host only: lets a waiting participant in.
    Admit {
        /// Who.
        participant: ParticipantId,
    },
    /// A chat message to everyone admitted.
    Chat {
        /// The text (at most [`MAX_CHAT_CHARS`]).
        text: String,
    },
    /// Consents to recording (each participant on their own page).
    Consent,
    /// Host only: starts or stops recording (start: only once everyone admitted consented).
    Record {
        /// True to start, false to stop.
        on: bool,
    },
    /// Leaves (the consultation goes on for the others).
    Leave,
    /// Host only: ends the consultation for everyone.
    End,
}

/// Gateway to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message: who you are, and the consultation as it is.
    Welcome {
        /// Your id.
        you: ParticipantId,
        /// Everyone, you included.
        participants: Vec<ParticipantInfo>,
        /// The recording's state.
        recording: RecordingState,
    },
    /// Someone joined, was admitted, went away, came back, published or consented.
    Participant {
        /// As it is now.
        participant: ParticipantInfo,
    },
    /// Someone left (or was removed when the consultation ended).
    ParticipantLeft {
        /// Who.
        participant: ParticipantId,
    },
    /// The answer to your `publish`.
    PublishAnswer {
        /// The SDP answer.
        sdp: String,
    },
    /// The answer to your `subscribe`.
    SubscribeAnswer {
        /// Whose media.
        participant: ParticipantId,
        /// The SDP answer.
        sdp: String,
    },
    /// A chat message.
    Chat {
        /// From whom.
        from: ParticipantId,
        /// The text.
        text: String,
    },
    /// The recording started or stopped.
    Recording {
        /// Its state.
        state: RecordingState,
    },
    /// The consultation ended (the host ended it, or it expired). The socket closes next.
    Ended {
        /// Why, for the page.
        reason: String,
    },
    /// A request was refused; the consultation goes on.
    Error {
        /// What was refused and why.
        message: String,
    },
}

impl ClientMessage {
    /// Parses a text message, with a reason for the page when it is not one.
    pub fn parse(text: &str) -> Result<ClientMessage, String> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "a message is at most {MAX_MESSAGE_BYTES} bytes; this one is {}",
                text.len()
            ));
        }
        serde_json::from_str(text).map_err(|e| format!("not a message of {SUBPROTOCOL}: {e}"))
    }
}

impl ServerMessage {
    /// The JSON text sent.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","message":"the gateway could not encode a message"}"#.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_round_trip_and_unknown_ones_are_refused() {
        for (text, message) in [
            (
                r#"{"type":"publish","sdp":"v=0"}"#,
                ClientMessage::Publish { sdp: "v=0".into() },
            ),
            (
                r#"{"type":"subscribe","participant":"p2","sdp":"v=0"}"#,
                ClientMessage::Subscribe {
                    participant: "p2".into(),
                    sdp: "v=0".into(),
                },
            ),
            (
                r#"{"type":"admit","participant":"p2"}"#,
                ClientMessage::Admit {
                    participant: "p2".into(),
                },
            ),
            (
                r#"{"type":"record","on":true}"#,
                ClientMessage::Record { on: true },
            ),
            (r#"{"type":"consent"}"#, ClientMessage::Consent),
            (r#"{"type":"end"}"#, ClientMessage::End),
        ] {
            assert_eq!(ClientMessage::parse(text), Ok(message.clone()), "{text}");
            let again = serde_json::to_string(&message).unwrap();
            assert_eq!(ClientMessage::parse(&again), Ok(message));
        }
        for bad in [
            "",
            "{}",
            r#"{"type":"shout"}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"publish","sdp":"v=0","extra":1}"#,
            "[1,2]",
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
        let huge = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(ClientMessage::parse(&huge).unwrap_err().contains("at most"));
    }

    #[test]
    fn server_messages_are_tagged_json() {
        let text = ServerMessage::Recording {
            state: RecordingState::On,
        }
        .to_text();
        assert_eq!(text, r#"{"type":"recording","state":"on"}"#);
        let text = ServerMessage::ParticipantLeft {
            participant: "p3".into(),
        }
        .to_text();
        assert_eq!(text, r#"{"type":"participant_left","participant":"p3"}"#);
    }
}
