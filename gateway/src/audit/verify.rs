//! Checks an audit log's chain from the first record to the last, across the rotated files (in
//! the order of the number in their names) and then the live file, as one chain: every line
//! parses, sequence numbers follow each other from 1 (across file boundaries too, so a removed
//! rotated file shows as a gap), each record's `prev` is the previous record's hash, and each hash
//! matches its record. The first record that fails is named with its file and line.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::audit_log::rotated_files;
use super::record::{AuditRecord, GENESIS};

/// An intact chain: how much was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSummary {
    /// Records checked, in all files.
    pub records: u64,
    /// Files checked: the rotated ones, then the live one (when it exists).
    pub files: usize,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ChainBroken {
    /// The file where it was found (the audit directory when it cannot be listed).
    pub file: PathBuf,
    /// Line number in that file, from 1; 0 for a problem with the file as a whole.
    pub line: usize,
    /// The record's own sequence number, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ChainBroken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, " line {}", self.line)?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (record {seq})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Verifies the chain of the log whose live file is `live` (rotated files are beside it).
pub fn verify(live: &Path) -> Result<ChainSummary, ChainBroken> {
    let dir = match live.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let whole = |file: &Path, reason: String| ChainBroken {
        file: file.to_owned(),
        line: 0,
        seq: None,
        reason,
    };
    // The live file is opened before the directory is listed, and every file is read through the
    // handle opened then, so that a writer rotating the live file while this runs neither hides
    // its records nor shows them twice: if rotated meanwhile, it is found in the listing under its
    // new name, and read there.
    let mut live_file = match File::open(live) {
        Ok(file) => Some(file),
        // A crash between a rotation and the next record leaves no live file: nothing is lost.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(whole(live, format!("cannot open: {e}"))),
    };
    let live_id = match &live_file {
        Some(file) => Some(
            file.metadata()
                .map(|m| (m.dev(), m.ino()))
                .map_err(|e| whole(live, format!("cannot read: {e}")))?,
        ),
        None => None,
    };
    let mut files = Vec::new();
    for (_, path) in rotated_files(dir)
        .map_err(|e| whole(dir, format!("cannot list the audit directory: {e}")))?
    {
        let file = File::open(&path).map_err(|e| whole(&path, format!("cannot open: {e}")))?;
        let id = file
            .metadata()
            .map(|m| (m.dev(), m.ino()))
            .map_err(|e| whole(&path, format!("cannot read: {e}")))?;
        if Some(id) == live_id {
            // Rotated since it was opened: read it here, through the first handle.
            files.extend(live_file.take().map(|file| (path, file)));
        } else {
            files.push((path, file));
        }
    }
    if let Some(file) = live_file {
        files.push((live.to_owned(), file));
    }
    if files.is_empty() {
        return Err(whole(
            live,
            "cannot open: no such file, and no rotated file beside it".to_owned(),
        ));
    }
    let mut chain = Chain {
        previous_hash: GENESIS.to_owned(),
        records: 0,
        previous_file: None,
    };
    for (path, file) in &files {
        chain.walk(path, file)?;
        chain.previous_file = Some(path.clone());
    }
    Ok(ChainSummary {
        records: chain.records,
        files: files.len(),
    })
}

/// "record 3 is" or "records 3 to 9 are".
fn records_between(first: u64, last: u64) -> String {
    if first == last {
        format!("record {first} is")
    } else {
        format!("records {first} to {last} are")
    }
}

/// The chain so far.
struct Chain {
    previous_hash: String,
    records: u64,
    /// The file the previous record is in, when it is not the current file.
    previous_file: Option<PathBuf>,
}

impl Chain {
    /// Checks the records of one file, continuing the chain.
    fn walk(&mut self, path: &Path, file: &File) -> Result<(), ChainBroken> {
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line_number = index + 1;
            let broken = |seq: Option<u64>, reason: String| ChainBroken {
                file: path.to_owned(),
                line: line_number,
                seq,
                reason,
            };
            let line = line.map_err(|e| broken(None, format!("unreadable: {e}")))?;
            let record: AuditRecord = serde_json::from_str(&line)
                .map_err(|e| broken(None, format!("not an audit record: {e}")))?;
            let seq = Some(record.seq);
            let expected = self.records + 1;
            // At the start of a file, a jump forward is a whole file (or more) gone.
            let first_in_file = line_number == 1;
            if record.seq != expected {
                let reason = if first_in_file && record.seq > expected && expected == 1 {
                    format!(
                        "the chain starts at record {} instead of 1: {} missing or out of order \
                         (the first rotated file removed or moved away?)",
                        record.seq,
                        records_between(1, record.seq - 1)
                    )
                } else if first_in_file && record.seq > expected {
                    format!(
                        "sequence {} where {expected} was expected: {} after {} missing or out \
                         of order (a rotated file removed?)",
                        record.seq,
                        records_between(expected, record.seq - 1),
                        self.previous_name()
                    )
                } else {
                    format!(
                        "sequence {} where {expected} was expected: records removed or reordered",
                        record.seq
                    )
                };
                return Err(broken(seq, reason));
            }
            if record.prev != self.previous_hash {
                let reason = match (&self.previous_file, first_in_file) {
                    (Some(_), true) => format!(
                        "does not follow the last record of {} (prev hash differs)",
                        self.previous_name()
                    ),
                    _ => "does not follow the previous record (prev hash differs)".to_owned(),
                };
                return Err(broken(seq, reason));
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
            self.previous_hash = record.hash;
            self.records += 1;
            self.previous_file = None;
        }
        Ok(())
    }

    /// The previous file's name, for messages.
    fn previous_name(&self) -> String {
        self.previous_file
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "the previous record".to_owned())
    }
}
