//! The append-only audit log: JSON lines in `<state_dir>/audit/audit.log` (directory 0700, file
//! 0600), each chained to the one before by SHA-256. An append takes an exclusive lock on the
//! file, reads the last record to continue the chain (so the daemon and `straja` commands can
//! both append), writes the line and syncs it to disk before returning: callers grant access only
//! after that.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::record::{AuditEvent, AuditRecord, GENESIS};

/// Bytes read back from the end of the log to find the last record (records are far smaller).
const TAIL_BYTES: u64 = 64 * 1024;

/// An audit log failure. Access that should be audited is refused when its record cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file could not be opened, read, locked, written or synced.
    #[error("audit log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The last record cannot be read, so the chain cannot be continued.
    #[error(
        "audit log {path}: the last record is unreadable ({reason}); run `straja audit verify`"
    )]
    Tail {
        /// The log file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The audit log.
pub struct AuditLog {
    path: PathBuf,
    file: File,
}

impl AuditLog {
    /// The log's path for a state directory.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("audit").join("audit.log")
    }

    /// Opens (creating if needed) the log of `state_dir`.
    pub fn open(state_dir: &Path) -> Result<AuditLog, AuditError> {
        let path = Self::path_in(state_dir);
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let log = AuditLog { path, file };
        // Fail at start rather than at the first access if the chain cannot be continued.
        log.last_record()?;
        Ok(log)
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and syncs it to disk. Blocking: call from a blocking context.
    pub fn append(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.lock().map_err(io)?;
        let result = (|| {
            let (seq, prev) = match self.last_record()? {
                Some(last) => (last.seq + 1, last.hash),
                None => (1, GENESIS.to_owned()),
            };
            let time = OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_else(|_| "unknown".to_owned());
            let record = AuditRecord::chained(event, seq, time, &prev);
            let mut line = record.to_line();
            line.push('\n');
            (&self.file).write_all(line.as_bytes()).map_err(io)?;
            self.file.sync_data().map_err(io)?;
            Ok(record)
        })();
        let _ = self.file.unlock();
        result
    }

    /// The last complete record, if any.
    fn last_record(&self) -> Result<Option<AuditRecord>, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = &self.file;
        let length = file.seek(SeekFrom::End(0)).map_err(io)?;
        if length == 0 {
            return Ok(None);
        }
        let start = length.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut tail = Vec::with_capacity((length - start) as usize);
        file.take(length - start)
            .read_to_end(&mut tail)
            .map_err(io)?;
        let tail_error = |reason: &str| AuditError::Tail {
            path: self.path.clone(),
            reason: reason.to_owned(),
        };
        if tail.last() != Some(&b'\n') {
            return Err(tail_error("the last line is incomplete"));
        }
        let body = &tail[..tail.len() - 1];
        let line = body
            .rsplit(|b| *b == b'\n')
            .next()
            .ok_or_else(|| tail_error("no line"))?;
        serde_json::from_slice(line)
            .map(Some)
            .map_err(|e| tail_error(&e.to_string()))
    }
}
