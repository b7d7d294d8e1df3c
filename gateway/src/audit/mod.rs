//! The tamper-evident audit log: who viewed which camera, who was refused, which tokens were
//! issued, when TLS material was reloaded — each record chained to the previous by SHA-256 and on
//! disk before access is granted. The live file is rotated at a configured size into read-only
//! files that Straja keeps; the chain runs across them, and [`verify()`] walks it from the oldest
//! rotated file to the live one.

pub mod audit_log;
pub mod record;
pub mod verify;

pub use audit_log::{
    AuditError, AuditLog, AuditMetrics, DEFAULT_ROTATE_BYTES, MIN_ROTATE_BYTES, rotated_files,
    rotated_name,
};
pub use record::{Action, AuditEvent, AuditRecord, Outcome};
pub use verify::{ChainBroken, ChainSummary, verify};

#[cfg(test)]
mod tests;
