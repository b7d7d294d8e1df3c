//! The append-only audit log: JSON lines in `<state_dir>/audit/` (directory 0700), each chained
//! to the one before by SHA-256.
//!
//! Records go to the live file, `audit.log` (0600). An append takes an exclusive lock (`flock`) on
//! the live file, checks that the file it locked is still the one named `audit.log` (another
//! process may have rotated it meanwhile: then it reopens and tries again), reads the last record
//! to continue the chain (so the daemon and `straja` commands can both append), writes the line
//! and syncs it to disk before returning: callers grant access only after that. Within one
//! process, appends through one [`AuditLog`] are also serialised by a mutex (a `flock` is held by
//! the open file, not by the thread).
//!
//! Rotation: when the next record would take the live file past `rotate_bytes`, the writer holding
//! the lock renames the live file to `audit-<first seq, 12 digits>.log` (names sort in chain
//! order), makes it read-only (0400), syncs the directory, and starts a new `audit.log` whose first
//! record continues the sequence and whose `prev` is the rotated file's last hash: one chain runs
//! across the files. Straja never deletes rotated files; archiving them is the operator's job.
//! Every step is crash-safe: records are synced before the rename, and a live file missing after a
//! crash is created again and continues from the newest rotated file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::record::{AuditEvent, AuditRecord, GENESIS};

/// Bytes read from either end of a file to find its first or last record (records are far smaller).
const TAIL_BYTES: u64 = 64 * 1024;
/// The live file's name in the audit directory.
pub const LIVE_FILE: &str = "audit.log";
/// `rotate_bytes` when the configuration does not set it: 64 MiB.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// The smallest `rotate_bytes` a configuration may set: 4 KiB.
pub const MIN_ROTATE_BYTES: u64 = 4 * 1024;
/// How many times an append reopens the live file because another writer rotated it, before
/// giving up (each rotation lets at least one record through, so this is never reached in use).
const MAX_REOPENS: usize = 64;

/// An audit log failure. Access that should be audited is refused when its record cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file or the directory could not be opened, read, locked, written, renamed or synced.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The last record cannot be read, so the chain cannot be continued.
    #[error(
        "audit log {path}: the last record is unreadable ({reason}); run `straja audit verify`"
    )]
    Tail {
        /// The file whose last record is unreadable.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The audit log of one state directory.
pub struct AuditLog {
    dir: PathBuf,
    path: PathBuf,
    rotate_bytes: u64,
    live: Mutex<Live>,
    /// Where appends are timed and failures counted, once the daemon's metrics exist.
    metrics: std::sync::OnceLock<AuditMetrics>,
    /// The last append failed (`/readyz` reports it until one succeeds).
    failing: std::sync::atomic::AtomicBool,
}

/// `straja_audit_write_seconds` and `straja_audit_write_failures_total`.
pub struct AuditMetrics {
    /// Time per append, until the record is on disk.
    pub write_seconds: prometheus::Histogram,
    /// Appends that failed.
    pub write_failures: prometheus::IntCounter,
}

/// The open live file, and whether a blocked rotation was already reported.
struct Live {
    file: File,
    rotation_blocked_reported: bool,
}

/// What one attempt at appending under the lock did.
enum Attempt {
    /// The record is on disk.
    Written(AuditRecord),
    /// The locked file is no longer the live file (rotated, by us or by another writer): reopen.
    Reopen,
}

impl AuditLog {
    /// The live file's path for a state directory (rotated files are beside it).
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("audit").join(LIVE_FILE)
    }

    /// Opens (creating if needed) the log of `state_dir`; the live file is rotated when the next
    /// record would take it past `rotate_bytes` (a file holds at least one record).
    pub fn open(state_dir: &Path, rotate_bytes: u64) -> Result<AuditLog, AuditError> {
        let path = Self::path_in(state_dir);
        let dir = state_dir.join("audit");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| AuditError::Io {
                path: dir.clone(),
                source,
            })?;
        let file = open_live(&dir, &path)?;
        // Fail at start rather than at the first access if the chain cannot be continued.
        file.lock().map_err(|source| AuditError::Io {
            path: path.clone(),
            source,
        })?;
        let tail = chain_tail(&dir, &path, &file);
        let _ = file.unlock();
        tail?;
        Ok(AuditLog {
            dir,
            path,
            rotate_bytes,
            live: Mutex::new(Live {
                file,
                rotation_blocked_reported: false,
            }),
            metrics: std::sync::OnceLock::new(),
            failing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The live file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding the live file and the rotated ones.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record and syncs it to disk, rotating the live file first if the record would
    /// take it past `rotate_bytes`. Blocking: call from a blocking context.
    pub fn append(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let started = std::time::Instant::now();
        let appended = self.append_now(event);
        self.failing
            .store(appended.is_err(), std::sync::atomic::Ordering::Relaxed);
        if let Some(metrics) = self.metrics.get() {
            metrics
                .write_seconds
                .observe(started.elapsed().as_secs_f64());
            if appended.is_err() {
                metrics.write_failures.inc();
            }
        }
        appended
    }

    /// True when the last append failed (actions that need a record are refused meanwhile).
    pub fn is_failing(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Times appends and counts their failures in `metrics` from now on (set once).
    pub fn report_to(&self, metrics: AuditMetrics) {
        let _ = self.metrics.set(metrics);
    }

    fn append_now(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..MAX_REOPENS {
            live.file.lock().map_err(|source| AuditError::Io {
                path: self.path.clone(),
                source,
            })?;
            let attempt = self.append_locked(&mut live, &event);
            let _ = live.file.unlock();
            match attempt? {
                Attempt::Written(record) => return Ok(record),
                Attempt::Reopen => live.file = open_live(&self.dir, &self.path)?,
            }
        }
        Err(AuditError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(format!(
                "the live file was replaced {MAX_REOPENS} times while appending; giving up"
            )),
        })
    }

    /// One attempt, with `live.file` locked.
    fn append_locked(&self, live: &mut Live, event: &AuditEvent) -> Result<Attempt, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        if !is_live(&self.path, &live.file).map_err(io)? {
            return Ok(Attempt::Reopen);
        }
        let (seq, prev) = match chain_tail(&self.dir, &self.path, &live.file)? {
            Some(last) => match last.seq.checked_add(1) {
                Some(seq) => (seq, last.hash),
                None => {
                    return Err(AuditError::Tail {
                        path: self.path.clone(),
                        reason: format!("its sequence number {} cannot be followed", last.seq),
                    });
                }
            },
            None => (1, GENESIS.to_owned()),
        };
        let time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "unknown".to_owned());
        let record = AuditRecord::chained(event.clone(), seq, time, &prev);
        let mut line = record.to_line();
        line.push('\n');
        let length = live.file.metadata().map_err(io)?.len();
        if length > 0 && length.saturating_add(line.len() as u64) > self.rotate_bytes {
            match self.rotate(&live.file, seq - 1)? {
                Ok(rotated) => {
                    tracing::info!(rotated = %rotated.display(), "audit log rotated");
                    return Ok(Attempt::Reopen);
                }
                Err(taken) if !live.rotation_blocked_reported => {
                    live.rotation_blocked_reported = true;
                    tracing::error!(
                        live = %self.path.display(),
                        taken = %taken.display(),
                        "audit log not rotated: the rotated file's name is taken (a restored or \
                         copied file?); records keep going to the live file, run `straja audit verify`"
                    );
                }
                Err(_) => {}
            }
        }
        (&live.file).write_all(line.as_bytes()).map_err(io)?;
        live.file.sync_data().map_err(io)?;
        Ok(Attempt::Written(record))
    }

    /// Renames the locked live file (whose last record is `last_seq`) to its rotated name, makes
    /// it read-only and syncs the directory: `Ok(rotated file)`, or `Err(that name)` when the
    /// name is already taken (nothing is overwritten; the live file then keeps growing).
    fn rotate(&self, file: &File, last_seq: u64) -> Result<Result<PathBuf, PathBuf>, AuditError> {
        // Named after its first record; if that is unreadable (verify will say why), after its
        // last, which still sorts after every earlier file and before every later one.
        let first_seq = first_record(file).map_or(last_seq, |r| r.seq);
        let rotated = self.dir.join(rotated_name(first_seq));
        // Every writer rotates only while holding the live file's lock: no race on the name.
        if rotated.symlink_metadata().is_ok() {
            return Ok(Err(rotated));
        }
        fs::rename(&self.path, &rotated).map_err(|source| AuditError::Io {
            path: self.path.clone(),
            source,
        })?;
        if let Err(e) = file.set_permissions(fs::Permissions::from_mode(0o400)) {
            tracing::warn!(file = %rotated.display(), error = %e, "rotated audit file left writable");
        }
        sync_dir(&self.dir)?;
        Ok(Ok(rotated))
    }
}

/// The name of the rotated file whose first record is `first_seq`: `audit-000000000001.log`.
pub fn rotated_name(first_seq: u64) -> String {
    format!("audit-{first_seq:012}.log")
}

/// The rotated files in `dir`, in chain order (by the number in their name), with that number.
/// Other files are ignored.
pub fn rotated_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("audit-"))
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        files.push((number, entry.path()));
    }
    files.sort();
    Ok(files)
}

/// Opens (creating, 0600) the live file and syncs the directory so that a new file survives a crash.
fn open_live(dir: &Path, path: &Path) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| AuditError::Io {
            path: path.to_owned(),
            source,
        })?;
    sync_dir(dir)?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| AuditError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Whether `file` is still the file at `path` (not renamed away or replaced).
fn is_live(path: &Path, file: &File) -> std::io::Result<bool> {
    let named = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let open = file.metadata()?;
    Ok(named.dev() == open.dev() && named.ino() == open.ino())
}

/// The chain's last record: the live file's, or when it is empty, the newest non-empty rotated
/// file's; `None` for a new log.
fn chain_tail(dir: &Path, path: &Path, live: &File) -> Result<Option<AuditRecord>, AuditError> {
    if let Some(last) = last_record(live, path)? {
        return Ok(Some(last));
    }
    let rotated = rotated_files(dir).map_err(|source| AuditError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for (_, rotated) in rotated.iter().rev() {
        let file = File::open(rotated).map_err(|source| AuditError::Io {
            path: rotated.clone(),
            source,
        })?;
        if let Some(last) = last_record(&file, rotated)? {
            return Ok(Some(last));
        }
    }
    Ok(None)
}

/// The last complete record of `file` (at `path`), if it has any.
fn last_record(file: &File, path: &Path) -> Result<Option<AuditRecord>, AuditError> {
    let length = file
        .metadata()
        .map_err(|source| AuditError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if length == 0 {
        return Ok(None);
    }
    let start = length.saturating_sub(TAIL_BYTES);
    let mut tail = vec![0; (length - start) as usize];
    file.read_exact_at(&mut tail, start)
        .map_err(|source| AuditError::Io {
            path: path.to_owned(),
            source,
        })?;
    let tail_error = |reason: &str| AuditError::Tail {
        path: path.to_owned(),
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

/// The first record of `file`, if it can be read.
fn first_record(file: &File) -> Option<AuditRecord> {
    let mut head = vec![0; TAIL_BYTES as usize];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let line = head[..filled].split(|b| *b == b'\n').next()?;
    serde_json::from_slice(line).ok()
}
