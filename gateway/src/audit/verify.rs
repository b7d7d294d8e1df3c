//! Checks an audit log's chain from the first record to the last: every line parses, sequence
//! numbers follow each other from 1, each record's `prev` is the previous record's hash, and each
//! hash matches its record. The first record that fails is named.

use std::io::{BufRead, BufReader};
use std::path::Path;

use super::record::{AuditRecord, GENESIS};

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {reason}", seq.map(|s| format!(" (record {s})")).unwrap_or_default())]
pub struct ChainBroken {
    /// Line number, from 1.
    pub line: usize,
    /// The record's own sequence number, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// Verifies the log at `path`; returns the number of records when the chain is intact.
pub fn verify(path: &Path) -> Result<u64, ChainBroken> {
    let file = std::fs::File::open(path).map_err(|e| ChainBroken {
        line: 0,
        seq: None,
        reason: format!("cannot open {}: {e}", path.display()),
    })?;
    let mut previous_hash = GENESIS.to_owned();
    let mut count = 0u64;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line_number = index + 1;
        let broken = |seq: Option<u64>, reason: String| ChainBroken {
            line: line_number,
            seq,
            reason,
        };
        let line = line.map_err(|e| broken(None, format!("unreadable: {e}")))?;
        let record: AuditRecord = serde_json::from_str(&line)
            .map_err(|e| broken(None, format!("not an audit record: {e}")))?;
        let seq = Some(record.seq);
        if record.seq != count + 1 {
            return Err(broken(
                seq,
                format!(
                    "sequence {} where {} was expected: records removed or reordered",
                    record.seq,
                    count + 1
                ),
            ));
        }
        if record.prev != previous_hash {
            return Err(broken(
                seq,
                "does not follow the previous record (prev hash differs)".into(),
            ));
        }
        if record.computed_hash() != record.hash {
            return Err(broken(
                seq,
                "altered: its hash does not match its content".into(),
            ));
        }
        if record.to_line() != line {
            return Err(broken(seq, "altered: not in its canonical form".into()));
        }
        previous_hash = record.hash;
        count += 1;
    }
    Ok(count)
}
