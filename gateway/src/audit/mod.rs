//! The tamper-evident audit log: who viewed which camera, who was refused, which tokens were
//! issued — each record chained to the previous by SHA-256 and on disk before access is granted.

pub mod audit_log;
pub mod record;
pub mod verify;

pub use audit_log::{AuditError, AuditLog};
pub use record::{Action, AuditEvent, AuditRecord, Outcome};
pub use verify::{ChainBroken, verify};

#[cfg(test)]
mod tests;
