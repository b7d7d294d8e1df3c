//! Which segments exist: one directory per camera under the recordings directory, one file per
//! segment, the times in its name, so that listing needs no file to be opened.
//!
//! - `<camera>/<start>.srec.part`: the segment being written (start in unix ms);
//! - `<camera>/<start>-<end>.srec`: a finished segment.
//!
//! A segment's id in the API is `<camera>.<start>` (camera ids have no dots). The catalogue is
//! read from the directory at start-up, where a `.part` file left by a crash is recovered (cut
//! after its last whole record, closed and renamed), and kept up to date by the recorders and
//! the retention sweep. Only the control plane takes its lock, never the media path.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use super::recording_key::RecordingKey;
use super::segment_file::{self, HEADER_LEN, SegmentReader};
use crate::config::validate_camera_id;

/// One segment as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    /// The camera.
    pub camera: String,
    /// Its first frame (unix ms).
    pub start_ms: u64,
    /// Up to when it covers media (unix ms).
    pub end_ms: u64,
    /// Size on disk.
    pub bytes: u64,
    /// True while it is being written.
    pub recording: bool,
    /// The file.
    #[serde(skip)]
    pub path: PathBuf,
}

impl SegmentInfo {
    /// Its id in the API: `<camera>.<start_ms>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.camera, self.start_ms)
    }
}

/// Parses a segment id (`<camera>.<start_ms>`); `None` when it is not one.
pub fn parse_segment_id(id: &str) -> Option<(&str, u64)> {
    let (camera, start) = id.rsplit_once('.')?;
    validate_camera_id(camera).ok()?;
    if start.is_empty() || start.len() > 20 || !start.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((camera, start.parse().ok()?))
}

/// The name of a segment being written.
pub fn part_name(start_ms: u64) -> String {
    format!("{start_ms}.srec.part")
}

/// The name of a finished segment.
pub fn finished_name(start_ms: u64, end_ms: u64) -> String {
    format!("{start_ms}-{end_ms}.srec")
}

/// What a file name in a camera's directory says.
enum Named {
    Finished { start_ms: u64, end_ms: u64 },
    Part { start_ms: u64 },
}

fn parse_name(name: &str) -> Option<Named> {
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if let Some(start) = name.strip_suffix(".srec.part") {
        return Some(Named::Part {
            start_ms: number(start)?,
        });
    }
    let (start, end) = name.strip_suffix(".srec")?.split_once('-')?;
    Some(Named::Finished {
        start_ms: number(start)?,
        end_ms: number(end)?,
    })
}

/// Every camera's segments, by start.
pub struct SegmentCatalogue {
    root: PathBuf,
    segments: Mutex<HashMap<String, BTreeMap<u64, SegmentInfo>>>,
}

/// How to treat a `.part` file found when the catalogue is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartFiles {
    /// The daemon starting: no recorder writes yet, so a `.part` file was left by a crash and is
    /// recovered.
    Recover,
    /// Another process (the export command) reads while the daemon may be writing: `.part` files
    /// are listed as they are and left alone.
    Leave,
}

impl SegmentCatalogue {
    /// Reads the segments of `cameras` under `root` (made, mode 0700, when missing).
    pub fn open(
        root: &Path,
        cameras: &[String],
        key: &RecordingKey,
        parts: PartFiles,
    ) -> io::Result<SegmentCatalogue> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
        let catalogue = SegmentCatalogue {
            root: root.to_owned(),
            segments: Mutex::new(HashMap::new()),
        };
        for camera in cameras {
            let found = catalogue.scan(camera, key, parts)?;
            catalogue.lock().insert(camera.clone(), found);
        }
        Ok(catalogue)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<u64, SegmentInfo>>> {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the segments of a camera added by a reload (recovering what a crash cut short, as at
    /// start-up: its recorder has not started yet). A camera already known is left as it is.
    pub fn add_camera(&self, camera: &str, key: &RecordingKey) -> io::Result<()> {
        self.scan_camera(camera, key, PartFiles::Recover)
    }

    /// Reads the segments of a camera (or consultation track) not read yet, treating `.part`
    /// files as `parts` says. One already known is left as it is.
    pub fn scan_camera(
        &self,
        camera: &str,
        key: &RecordingKey,
        parts: PartFiles,
    ) -> io::Result<()> {
        if self.lock().contains_key(camera) {
            return Ok(());
        }
        let found = self.scan(camera, key, parts)?;
        self.lock().entry(camera.to_owned()).or_insert(found);
        Ok(())
    }

    /// The directory of a camera's segments.
    pub fn camera_dir(&self, camera: &str) -> PathBuf {
        self.root.join(camera)
    }

    fn scan(
        &self,
        camera: &str,
        key: &RecordingKey,
        parts: PartFiles,
    ) -> io::Result<BTreeMap<u64, SegmentInfo>> {
        let dir = self.camera_dir(camera);
        let mut found = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match parse_name(&name) {
                Some(Named::Finished { start_ms, end_ms }) => {
                    found.insert(
                        start_ms,
                        SegmentInfo {
                            camera: camera.to_owned(),
                            start_ms,
                            end_ms,
                            bytes,
                            recording: false,
                            path,
                        },
                    );
                }
                Some(Named::Part { start_ms }) => {
                    if let Some(info) = self.part_file(camera, start_ms, &path, bytes, key, parts) {
                        found.insert(start_ms, info);
                    }
                }
                None => {}
            }
        }
        Ok(found)
    }

    fn part_file(
        &self,
        camera: &str,
        start_ms: u64,
        path: &Path,
        bytes: u64,
        key: &RecordingKey,
        parts: PartFiles,
    ) -> Option<SegmentInfo> {
        if parts == PartFiles::Leave {
            let reader = SegmentReader::open(path, key, camera).ok()?;
            return Some(SegmentInfo {
                camera: camera.to_owned(),
                start_ms,
                end_ms: reader.end_ms(),
                bytes,
                recording: true,
                path: path.to_owned(),
            });
        }
        if bytes <= HEADER_LEN as u64 {
            // Made just before a crash, with no record in it: nothing was recorded.
            let _ = std::fs::remove_file(path);
            return None;
        }
        match segment_file::recover(path, key, camera) {
            Ok(recovered) => {
                let finished = path.with_file_name(finished_name(start_ms, recovered.end_ms));
                if let Err(e) = std::fs::rename(path, &finished) {
                    tracing::error!(camera, error = %e, "a recovered segment could not be renamed");
                    return None;
                }
                tracing::warn!(
                    camera,
                    segment = %format!("{camera}.{start_ms}"),
                    seconds = recovered.end_ms.saturating_sub(start_ms) / 1000,
                    "recovered a segment cut short by an unclean stop (kept up to its last fragment)"
                );
                Some(SegmentInfo {
                    camera: camera.to_owned(),
                    start_ms,
                    end_ms: recovered.end_ms,
                    bytes: recovered.bytes,
                    recording: false,
                    path: finished,
                })
            }
            Err(e) => {
                tracing::error!(camera, error = %e, "a segment cut short could not be recovered; left as it is");
                None
            }
        }
    }

    /// A camera's segments that overlap `from_ms..to_ms`, oldest first, at most `limit`.
    pub fn list(&self, camera: &str, from_ms: u64, to_ms: u64, limit: usize) -> Vec<SegmentInfo> {
        let segments = self.lock();
        let Some(segments) = segments.get(camera) else {
            return Vec::new();
        };
        segments
            .values()
            .filter(|s| s.end_ms >= from_ms && s.start_ms <= to_ms)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every segment of a camera, oldest first.
    pub fn segments(&self, camera: &str) -> Vec<SegmentInfo> {
        self.list(camera, 0, u64::MAX, usize::MAX)
    }

    /// The segment with this id.
    pub fn get(&self, id: &str) -> Option<SegmentInfo> {
        let (camera, start_ms) = parse_segment_id(id)?;
        self.lock().get(camera)?.get(&start_ms).cloned()
    }

    /// Adds or replaces a segment.
    pub fn upsert(&self, info: SegmentInfo) {
        self.lock()
            .entry(info.camera.clone())
            .or_default()
            .insert(info.start_ms, info);
    }

    /// Forgets a segment (its file is the caller's business).
    pub fn remove(&self, camera: &str, start_ms: u64) -> Option<SegmentInfo> {
        self.lock().get_mut(camera)?.remove(&start_ms)
    }

    /// Every camera (or consultation track) it has segments of, or has read.
    pub fn cameras(&self) -> Vec<String> {
        let mut cameras: Vec<String> = self.lock().keys().cloned().collect();
        cameras.sort();
        cameras
    }

    /// Forgets a camera's segments (their files are the caller's business).
    pub fn forget_camera(&self, camera: &str) {
        self.lock().remove(camera);
    }

    /// Bytes on disk of a camera's segments.
    pub fn bytes(&self, camera: &str) -> u64 {
        self.lock()
            .get(camera)
            .map(|s| s.values().map(|s| s.bytes).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::segment_file::SegmentWriter;

    fn key() -> RecordingKey {
        RecordingKey::from_bytes(&[3u8; 32], PathBuf::from("k")).unwrap()
    }

    #[test]
    fn ids_and_names_round_trip_and_nothing_else_parses() {
        assert_eq!(
            parse_segment_id("north-gate.1700000000000"),
            Some(("north-gate", 1700000000000))
        );
        for bad in [
            "gate", "gate.", ".12", "Gate.12", "gate.12a", "../x.1", "gate.-1", "a/b.1",
        ] {
            assert_eq!(parse_segment_id(bad), None, "{bad}");
        }
        assert!(matches!(
            parse_name(&finished_name(5, 9)),
            Some(Named::Finished {
                start_ms: 5,
                end_ms: 9
            })
        ));
        assert!(matches!(
            parse_name(&part_name(5)),
            Some(Named::Part { start_ms: 5 })
        ));
        assert!(parse_name("5-x.srec").is_none());
        assert!(parse_name("notes.txt").is_none());
    }

    #[test]
    fn start_up_lists_finished_segments_and_recovers_a_part_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("gate");
        std::fs::create_dir_all(&dir).unwrap();
        let mut finished =
            SegmentWriter::create(&dir.join("1000.srec.part"), &key(), "gate", 1000).unwrap();
        finished.append(b"a", 1500).unwrap();
        finished.finish(2000).unwrap();
        std::fs::rename(
            dir.join("1000.srec.part"),
            dir.join(finished_name(1000, 2000)),
        )
        .unwrap();
        let mut crashed =
            SegmentWriter::create(&dir.join(part_name(3000)), &key(), "gate", 3000).unwrap();
        crashed.append(b"fragment", 3900).unwrap();
        drop(crashed); // no end record: the process died
        std::fs::write(dir.join(part_name(5000)), b"").unwrap(); // died right after creating it

        let catalogue = SegmentCatalogue::open(
            root.path(),
            &["gate".to_owned()],
            &key(),
            PartFiles::Recover,
        )
        .unwrap();
        let listed: Vec<(u64, u64, bool)> = catalogue
            .segments("gate")
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.recording))
            .collect();
        assert_eq!(listed, [(1000, 2000, false), (3000, 3900, false)]);
        assert!(dir.join(finished_name(3000, 3900)).exists());
        assert!(!dir.join(part_name(5000)).exists());
        assert_eq!(catalogue.list("gate", 2500, 9999, 10).len(), 1);
        assert_eq!(catalogue.get("gate.3000").unwrap().end_ms, 3900);
        assert!(catalogue.get("yard.3000").is_none());
    }
}
