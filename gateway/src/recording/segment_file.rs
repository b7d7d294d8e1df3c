//! A recorded segment on disk: fragmented MP4, encrypted at rest in independently sealed chunks
//! (AES-256-GCM), appended as the muxer produces them, so that a crash loses at most the chunk
//! being written and a reader can seek without decrypting what comes before.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! header  (48 bytes)  "STRJREC1" | start, unix ms (u64) | salt (32 random bytes)
//! record  (repeated)  length (u32) | kind (u8: 1 data, 2 end) | 0 0 0 | covered until, unix ms (u64)
//!                     | ciphertext (length bytes) | GCM tag (16 bytes)
//! ```
//!
//! Each file has its own key (HKDF of the recording key over the salt and the camera id); record
//! `i` is sealed under the nonce `0000 || i` with the file header and its record header as
//! associated data, so records cannot be altered, reordered, moved between files or between
//! cameras without the reader noticing. The `end` record (no data) marks a segment that was
//! finished cleanly; without it the segment was cut short, and its records up to the first
//! incomplete one are what was recorded.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use ring::rand::{SecureRandom, SystemRandom};

use super::recording_key::RecordingKey;

const MAGIC: &[u8; 8] = b"STRJREC1";
/// Bytes of the file header.
pub const HEADER_LEN: usize = 48;
const RECORD_HEADER_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// Largest plaintext of one record (bigger appends are split).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
const KIND_DATA: u8 = 1;
const KIND_END: u8 = 2;

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a segment (wrong magic, too short a header).
    #[error("{0}: not a Straja recording segment")]
    NotASegment(PathBuf),
    /// A record failed authentication: the file was altered, damaged, moved from another camera,
    /// or sealed under another recording key.
    #[error("{path}: record {record} does not authenticate (altered, damaged, or another key)")]
    Tampered {
        /// The file.
        path: PathBuf,
        /// The record's index.
        record: usize,
    },
}

/// A segment file being written. Every [`SegmentWriter::append`] is on disk (in the page cache,
/// which survives the process) when it returns; [`SegmentWriter::sync`] makes it durable.
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    records: u64,
    /// Bytes of the file up to the end of the last whole record.
    committed: u64,
}

/// Where one record is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecordEntry {
    /// Offset of the record header in the file.
    file_offset: u64,
    /// Offset of its plaintext in the segment's MP4 stream.
    plain_offset: u64,
    len: u32,
    kind: u8,
    until_ms: u64,
}

fn record_header(len: u32, kind: u8, until_ms: u64) -> [u8; RECORD_HEADER_LEN] {
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = kind;
    header[8..].copy_from_slice(&until_ms.to_be_bytes());
    header
}

fn nonce(index: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn aad(file_header: &[u8; HEADER_LEN], record_header: &[u8; RECORD_HEADER_LEN]) -> Vec<u8> {
    [&file_header[..], &record_header[..]].concat()
}

impl SegmentWriter {
    /// Creates a new segment file (mode 0600; never overwrites) for `camera`, whose first frame
    /// was at `start_ms` (unix ms).
    pub fn create(
        path: &Path,
        key: &RecordingKey,
        camera: &str,
        start_ms: u64,
    ) -> io::Result<SegmentWriter> {
        let mut salt = [0u8; 32];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| io::Error::other("the system random source failed"))?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&start_ms.to_be_bytes());
        header[16..].copy_from_slice(&salt);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(&header)?;
        Ok(SegmentWriter {
            file,
            path: path.to_owned(),
            key: key.file_key(&salt, camera),
            header,
            records: 0,
            committed: HEADER_LEN as u64,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk so far (whole records only).
    pub fn file_bytes(&self) -> u64 {
        self.committed
    }

    /// Seals and appends `data` (split into records of at most [`MAX_RECORD_BYTES`]), noting that
    /// the segment now covers media up to `until_ms`. On error, the file is cut back to its last
    /// whole record, so what was written before stays readable.
    pub fn append(&mut self, data: &[u8], until_ms: u64) -> io::Result<()> {
        for chunk in data.chunks(MAX_RECORD_BYTES) {
            self.write_record(KIND_DATA, chunk, until_ms)?;
        }
        Ok(())
    }

    fn write_record(&mut self, kind: u8, data: &[u8], until_ms: u64) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| io::Error::other("record too large"))?;
        let header = record_header(len, kind, until_ms);
        let mut sealed = Vec::with_capacity(RECORD_HEADER_LEN + data.len() + TAG_LEN);
        sealed.extend_from_slice(&header);
        sealed.extend_from_slice(data);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(self.records),
                Aad::from(aad(&self.header, &header)),
                &mut sealed[RECORD_HEADER_LEN..],
            )
            .map_err(|_| io::Error::other("AES-GCM sealing failed"))?;
        sealed.extend_from_slice(tag.as_ref());
        if let Err(e) = self.file.write_all(&sealed) {
            // Cut a torn record off; the error stays the one to report.
            let _ = self.file.set_len(self.committed);
            let _ = self.file.seek(SeekFrom::Start(self.committed));
            return Err(e);
        }
        self.committed += sealed.len() as u64;
        self.records += 1;
        Ok(())
    }

    /// Makes what was appended durable (fdatasync).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Appends the end record and syncs: the segment is complete.
    pub fn finish(mut self, until_ms: u64) -> io::Result<u64> {
        self.write_record(KIND_END, &[], until_ms)?;
        self.file.sync_all()?;
        Ok(self.committed)
    }
}

/// A segment file opened for reading: its records indexed (headers only), decrypted on demand.
pub struct SegmentReader {
    file: File,
    path: PathBuf,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    records: Vec<RecordEntry>,
    complete: bool,
    /// Bytes of the file up to the end of the last whole record.
    whole_len: u64,
}

impl SegmentReader {
    /// Opens `path`, a segment of `camera`, and indexes its records up to the end record or the
    /// first incomplete one (a crash while writing). Reads only record headers.
    pub fn open(
        path: &Path,
        key: &RecordingKey,
        camera: &str,
    ) -> Result<SegmentReader, SegmentError> {
        let io_error = |source| SegmentError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        let file_len = file.metadata().map_err(io_error)?.len();
        let mut header = [0u8; HEADER_LEN];
        if file.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
            return Err(SegmentError::NotASegment(path.to_owned()));
        }
        let key = key.file_key(&header[16..], camera);
        let mut records = Vec::new();
        let mut complete = false;
        let mut offset = HEADER_LEN as u64;
        let mut plain_offset = 0u64;
        loop {
            let mut record = [0u8; RECORD_HEADER_LEN];
            if offset + RECORD_HEADER_LEN as u64 > file_len
                || file.read_exact_at(&mut record, offset).is_err()
            {
                break;
            }
            let len = u32::from_be_bytes([record[0], record[1], record[2], record[3]]);
            let kind = record[4];
            let until_ms = u64::from_be_bytes(record[8..16].try_into().unwrap_or_default());
            let total = RECORD_HEADER_LEN as u64 + u64::from(len) + TAG_LEN as u64;
            if len as usize > MAX_RECORD_BYTES
                || !matches!(kind, KIND_DATA | KIND_END)
                || offset + total > file_len
            {
                break;
            }
            records.push(RecordEntry {
                file_offset: offset,
                plain_offset,
                len,
                kind,
                until_ms,
            });
            offset += total;
            plain_offset += u64::from(len);
            if kind == KIND_END {
                complete = true;
                break;
            }
        }
        Ok(SegmentReader {
            file,
            path: path.to_owned(),
            key,
            header,
            records,
            complete,
            whole_len: offset,
        })
    }

    /// When the segment's first frame was (unix ms).
    pub fn start_ms(&self) -> u64 {
        u64::from_be_bytes(self.header[8..16].try_into().unwrap_or_default())
    }

    /// Up to when the segment covers media (unix ms), by its last record.
    pub fn end_ms(&self) -> u64 {
        self.records
            .last()
            .map(|r| r.until_ms)
            .unwrap_or_else(|| self.start_ms())
    }

    /// True when the segment was finished cleanly (it has its end record).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Bytes of the decrypted MP4.
    pub fn plaintext_len(&self) -> u64 {
        self.records
            .last()
            .map(|r| r.plain_offset + u64::from(r.len))
            .unwrap_or(0)
    }

    fn decrypt(&self, index: usize) -> Result<Vec<u8>, SegmentError> {
        let entry = self.records[index];
        let total = RECORD_HEADER_LEN + entry.len as usize + TAG_LEN;
        let mut sealed = vec![0u8; total];
        self.file
            .read_exact_at(&mut sealed, entry.file_offset)
            .map_err(|source| SegmentError::Io {
                path: self.path.clone(),
                source,
            })?;
        let header: [u8; RECORD_HEADER_LEN] =
            sealed[..RECORD_HEADER_LEN].try_into().unwrap_or_default();
        let plain = self
            .key
            .open_in_place(
                nonce(index as u64),
                Aad::from(aad(&self.header, &header)),
                &mut sealed[RECORD_HEADER_LEN..],
            )
            .map_err(|_| SegmentError::Tampered {
                path: self.path.clone(),
                record: index,
            })?
            .len();
        sealed.copy_within(RECORD_HEADER_LEN..RECORD_HEADER_LEN + plain, 0);
        sealed.truncate(plain);
        Ok(sealed)
    }

    /// Decrypts bytes `start..end` of the MP4 (clamped to its length), handing them to `out` one
    /// record's worth at a time; stops at the first error from `out`.
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        mut out: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), SegmentError> {
        let end = end.min(self.plaintext_len());
        if start >= end {
            return Ok(());
        }
        let first = self
            .records
            .partition_point(|r| r.plain_offset + u64::from(r.len) <= start);
        for index in first..self.records.len() {
            let entry = self.records[index];
            if entry.plain_offset >= end {
                break;
            }
            if entry.len == 0 {
                continue;
            }
            let plain = self.decrypt(index)?;
            let from = start.saturating_sub(entry.plain_offset) as usize;
            let to = ((end - entry.plain_offset) as usize).min(plain.len());
            if !out(&plain[from..to]) {
                break;
            }
        }
        Ok(())
    }

    /// The whole decrypted MP4.
    pub fn read_all(&self) -> Result<Vec<u8>, SegmentError> {
        let mut all = Vec::with_capacity(self.plaintext_len() as usize);
        self.read_range(0, u64::MAX, |bytes| {
            all.extend_from_slice(bytes);
            true
        })?;
        Ok(all)
    }

    /// Checks every record; returns how many authenticate before the first that does not.
    fn authentic_records(&self) -> usize {
        (0..self.records.len())
            .find(|&i| self.decrypt(i).is_err())
            .unwrap_or(self.records.len())
    }
}

/// What [`recover`] made of a segment cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// The segment's start (unix ms).
    pub start_ms: u64,
    /// Up to when it covers media (unix ms).
    pub end_ms: u64,
    /// Its size now.
    pub bytes: u64,
    /// True when the end record could be added (false on a full disk: still readable).
    pub closed: bool,
}

/// Makes a segment that was cut short (a crash, a full disk) whole: checks every record, cuts the
/// file after the last one that authenticates and adds the end record.
pub fn recover(path: &Path, key: &RecordingKey, camera: &str) -> Result<Recovered, SegmentError> {
    let mut reader = SegmentReader::open(path, key, camera)?;
    let io_error = |source| SegmentError::Io {
        path: path.to_owned(),
        source,
    };
    let good = reader.authentic_records();
    reader.records.truncate(good);
    if reader.records.last().map(|r| r.kind) == Some(KIND_END) {
        return Ok(Recovered {
            start_ms: reader.start_ms(),
            end_ms: reader.end_ms(),
            bytes: reader.whole_len,
            closed: true,
        });
    }
    let keep = reader
        .records
        .last()
        .map(|r| r.file_offset + RECORD_HEADER_LEN as u64 + u64::from(r.len) + TAG_LEN as u64)
        .unwrap_or(HEADER_LEN as u64);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error)?;
    file.set_len(keep).map_err(io_error)?;
    let (start_ms, end_ms) = (reader.start_ms(), reader.end_ms());
    let mut writer = SegmentWriter {
        file,
        path: path.to_owned(),
        key: reader.key,
        header: reader.header,
        records: good as u64,
        committed: keep,
    };
    writer.file.seek(SeekFrom::Start(keep)).map_err(io_error)?;
    let (bytes, closed) = match writer.write_record(KIND_END, &[], end_ms) {
        Ok(()) => {
            let _ = writer.file.sync_all();
            (writer.committed, true)
        }
        Err(_) => (keep, false),
    };
    Ok(Recovered {
        start_ms,
        end_ms,
        bytes,
        closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RecordingKey {
        RecordingKey::from_bytes(&[9u8; 32], PathBuf::from("test")).unwrap()
    }

    fn written(dir: &Path, chunks: &[&[u8]]) -> PathBuf {
        let path = dir.join("1000.srec.part");
        let mut writer = SegmentWriter::create(&path, &key(), "gate", 1000).unwrap();
        for (i, chunk) in chunks.iter().enumerate() {
            writer.append(chunk, 2000 + i as u64).unwrap();
        }
        writer.finish(5000).unwrap();
        path
    }

    #[test]
    fn what_is_written_reads_back_whole_and_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), &[b"hello ", b"encrypted ", b"world"]);
        let reader = SegmentReader::open(&path, &key(), "gate").unwrap();
        assert!(reader.is_complete());
        assert_eq!(reader.start_ms(), 1000);
        assert_eq!(reader.end_ms(), 5000);
        assert_eq!(reader.read_all().unwrap(), b"hello encrypted world");
        let mut range = Vec::new();
        reader
            .read_range(3, 18, |b| {
                range.extend_from_slice(b);
                true
            })
            .unwrap();
        assert_eq!(range, b"lo encrypted wo");
        let raw = std::fs::read(&path).unwrap();
        assert!(
            !raw.windows(9).any(|w| w == b"encrypted"),
            "plaintext on disk"
        );
    }

    #[test]
    fn large_appends_are_split_into_bounded_records() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; MAX_RECORD_BYTES * 2 + 10];
        let path = written(dir.path(), &[&big]);
        let reader = SegmentReader::open(&path, &key(), "gate").unwrap();
        assert_eq!(reader.records.len(), 4, "three data records and the end");
        assert_eq!(reader.read_all().unwrap(), big);
    }

    #[test]
    fn an_altered_byte_another_camera_or_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), &[b"evidence"]);
        let other_camera = SegmentReader::open(&path, &key(), "yard").unwrap();
        assert!(matches!(
            other_camera.read_all(),
            Err(SegmentError::Tampered { .. })
        ));
        let other_key = RecordingKey::from_bytes(&[1u8; 32], PathBuf::from("k")).unwrap();
        let reader = SegmentReader::open(&path, &other_key, "gate").unwrap();
        assert!(reader.read_all().is_err());
        let mut raw = std::fs::read(&path).unwrap();
        raw[HEADER_LEN + RECORD_HEADER_LEN + 2] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let reader = SegmentReader::open(&path, &key(), "gate").unwrap();
        assert!(matches!(
            reader.read_all(),
            Err(SegmentError::Tampered { record: 0, .. })
        ));
    }

    #[test]
    fn a_file_cut_mid_record_reads_up_to_its_last_whole_record_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1000.srec.part");
        let mut writer = SegmentWriter::create(&path, &key(), "gate", 1000).unwrap();
        writer.append(b"first fragment;", 2000).unwrap();
        writer.append(b"second fragment;", 3000).unwrap();
        let whole = writer.file_bytes();
        writer.append(b"third, torn", 4000).unwrap();
        drop(writer);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole + 20).unwrap(); // the crash tore the third record
        let reader = SegmentReader::open(&path, &key(), "gate").unwrap();
        assert!(!reader.is_complete());
        assert_eq!(reader.end_ms(), 3000);
        assert_eq!(
            reader.read_all().unwrap(),
            b"first fragment;second fragment;"
        );
        let recovered = recover(&path, &key(), "gate").unwrap();
        assert!(recovered.closed);
        assert_eq!((recovered.start_ms, recovered.end_ms), (1000, 3000));
        let reader = SegmentReader::open(&path, &key(), "gate").unwrap();
        assert!(reader.is_complete());
        assert_eq!(
            reader.read_all().unwrap(),
            b"first fragment;second fragment;"
        );
    }

    #[test]
    fn garbage_files_are_not_segments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.srec");
        std::fs::write(&path, b"STRJ").unwrap();
        assert!(matches!(
            SegmentReader::open(&path, &key(), "gate"),
            Err(SegmentError::NotASegment(_))
        ));
        let mut bogus = MAGIC.to_vec();
        bogus.resize(HEADER_LEN, 0);
        bogus.extend_from_slice(&record_header(u32::MAX, KIND_DATA, 0));
        std::fs::write(&path, &bogus).unwrap();
        let reader = SegmentReader::open(&path, &key(), "gate").unwrap();
        assert_eq!(reader.plaintext_len(), 0, "an absurd length ends the index");
    }
}
