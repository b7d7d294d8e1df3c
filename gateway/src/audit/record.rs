//! One audit record: who did what to which resource, when, from where, with what outcome — and
//! the hash chain that makes removing, altering or reordering records detectable.

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// The `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened (a bounded set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A live view was granted (WHEP session answered).
    #[serde(rename = "view.start")]
    ViewStart,
    /// A live view ended.
    #[serde(rename = "view.stop")]
    ViewStop,
    /// A camera's snapshot (its latest keyframe as a JPEG) was served.
    #[serde(rename = "view.snapshot")]
    ViewSnapshot,
    /// A request was refused for lack of a valid token, role or camera grant.
    #[serde(rename = "access.denied")]
    AccessDenied,
    /// An access token was issued.
    #[serde(rename = "token.issue")]
    TokenIssue,
    /// A password login on the login page (allowed or denied).
    #[serde(rename = "login")]
    Login,
    /// A sign-in ended by logout.
    #[serde(rename = "logout")]
    Logout,
    /// A local user was added.
    #[serde(rename = "user.add")]
    UserAdd,
    /// A local user was removed.
    #[serde(rename = "user.remove")]
    UserRemove,
    /// A local user's password was set.
    #[serde(rename = "user.passwd")]
    UserPasswd,
    /// Configuration was reloaded by the gateway itself (actor `system`): resource `config` for
    /// the configuration file (SIGHUP; the reason says what changed, or why it was rejected),
    /// `tls` for the TLS certificate, key and client CAs (a change to their files); `denied`
    /// when the reload failed and what was in force stays.
    #[serde(rename = "config.reload")]
    ConfigReload,
    /// A clinician started a consultation (resource `consultation:<id>`; the reason gives the
    /// number of invitations, never their labels).
    #[serde(rename = "consultation.create")]
    ConsultationCreate,
    /// An invitee joined through an invitation (`denied`: a used, expired or unknown one).
    #[serde(rename = "consultation.join")]
    ConsultationJoin,
    /// A consultation ended (by the clinician, or when it ran past its limit).
    #[serde(rename = "consultation.end")]
    ConsultationEnd,
    /// A consultation's recording started (`allowed`: everyone had consented, the clinician
    /// started it) or stopped (`ended`: by the clinician, a newcomer who had not consented, or
    /// the consultation's end).
    #[serde(rename = "consultation.record")]
    ConsultationRecord,
    /// Recordings were deleted by retention (actor `system`; resource `consultation:<id>`).
    #[serde(rename = "recording.delete")]
    RecordingDelete,
    /// A recorded segment was played back (its first bytes fetched: a player's later range
    /// requests for the same playback are not recorded again).
    #[serde(rename = "recording.play")]
    RecordingPlay,
    /// Recordings were exported to a file (`straja recordings export`).
    #[serde(rename = "recording.export")]
    RecordingExport,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Access was granted / the action was done.
    Allowed,
    /// Access was refused.
    Denied,
    /// Something that was going on ended.
    Ended,
}

/// What a caller records; the log adds sequence, time and the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Who: a token subject, `anonymous`, or `cli:<user>`.
    pub actor: String,
    /// Their role, when known.
    pub role: Option<Role>,
    /// What.
    pub action: Action,
    /// Which resource: `camera:<id>`, `session:<first 8 hex>`, `token:<jti>`, or a route.
    pub resource: String,
    /// Outcome.
    pub outcome: Outcome,
    /// From where: the client's address and port (only ever written here, never to logs).
    pub source: Option<String>,
    /// Why, for denials and ends.
    pub reason: Option<String>,
}

/// A record as stored: one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Who.
    pub actor: String,
    /// Their role.
    pub role: Option<Role>,
    /// What.
    pub action: Action,
    /// Which resource.
    pub resource: String,
    /// Outcome.
    pub outcome: Outcome,
    /// From where.
    pub source: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// `hash` of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// SHA-256 (hex) of this record serialised with `hash` empty.
    pub hash: String,
}

impl AuditRecord {
    /// Builds the record that follows `prev_hash` at `seq`, with its hash.
    pub fn chained(event: AuditEvent, seq: u64, time: String, prev_hash: &str) -> AuditRecord {
        let mut record = AuditRecord {
            seq,
            time,
            actor: event.actor,
            role: event.role,
            action: event.action,
            resource: event.resource,
            outcome: event.outcome,
            source: event.source,
            reason: event.reason,
            prev: prev_hash.to_owned(),
            hash: String::new(),
        };
        record.hash = record.computed_hash();
        record
    }

    /// The hash this record should carry.
    pub fn computed_hash(&self) -> String {
        let unsigned = AuditRecord {
            hash: String::new(),
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&unsigned).expect("an audit record always serialises");
        digest(&SHA256, &bytes)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The record as its JSON line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an audit record always serialises")
    }
}
