//! Recording: cameras recorded continuously to segmented, fragmented MP4, encrypted at rest
//! (AES-256-GCM under a key of the box's own), kept per camera by age and size, listed, played
//! back and exported.
//!
//! - [`recorder`]: one thread per recorded camera, fed by the hub like a viewer;
//! - [`segment_file`]: the encrypted, chunked segment format (writer, reader, crash recovery);
//! - [`segment_catalogue`]: which segments exist, from their file names;
//! - [`retention`]: which segments are due for deletion;
//! - [`export`]: segments of a time range into one playable MP4;
//! - [`recording_key`], [`disk_space`], [`wall_time`]: the key, the free-space check, times.
//!
//! [`Recordings`] ties them together for the daemon.

pub mod disk_space;
pub mod export;
pub mod recorder;
pub mod recording_key;
pub mod retention;
pub mod segment_catalogue;
pub mod segment_file;
pub mod wall_time;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use recorder::{Recorder, RecorderSettings, RecorderState};
pub use recording_key::RecordingKey;
pub use segment_catalogue::{PartFiles, SegmentCatalogue, SegmentInfo};
pub use wall_time::now_ms;

use crate::cameras::Camera;
use crate::config::Config;
use crate::metrics::Metrics;
use retention::RetentionPolicy;

/// Why recording could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// The recording key could not be read or made.
    #[error("recording key {0}")]
    Key(#[from] crate::key_file::KeyFileError),
    /// The recordings' directory could not be read or made.
    #[error("recordings directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A recorder thread could not start.
    #[error("recorder for camera {camera}: {source}")]
    Thread {
        /// The camera.
        camera: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The daemon's recordings: the key, the catalogue, a recorder per recorded camera, and each
/// camera's retention policy.
pub struct Recordings {
    /// The key segments are sealed under.
    pub key: Arc<RecordingKey>,
    /// Which segments exist.
    pub catalogue: Arc<SegmentCatalogue>,
    recorders: Vec<(String, Recorder)>,
    policies: Vec<(String, RetentionPolicy)>,
    metrics: Arc<Metrics>,
}

impl Recordings {
    /// Opens the catalogue (recovering segments a crash cut short) and starts a recorder for every
    /// camera with `record = true`.
    pub fn start(
        config: &Config,
        cameras: &[Camera],
        metrics: Arc<Metrics>,
    ) -> Result<Recordings, RecordingError> {
        let key = Arc::new(RecordingKey::load_or_create(&config.state_dir)?);
        let dir = config.recording.dir_in(&config.state_dir);
        let ids: Vec<String> = config.cameras.iter().map(|c| c.id.clone()).collect();
        let catalogue = Arc::new(
            SegmentCatalogue::open(&dir, &ids, &key, PartFiles::Recover).map_err(|source| {
                RecordingError::Dir {
                    path: dir.clone(),
                    source,
                }
            })?,
        );
        let mut recorders = Vec::new();
        let mut policies = Vec::new();
        for camera_config in &config.cameras {
            policies.push((
                camera_config.id.clone(),
                RetentionPolicy {
                    max_age: camera_config
                        .record_retain_hours
                        .map(|h| Duration::from_secs(h * 3600)),
                    max_bytes: camera_config.record_max_bytes,
                },
            ));
            metrics
                .recording_stored_bytes
                .with_label_values(&[&camera_config.id])
                .set(catalogue.bytes(&camera_config.id) as i64);
            if !camera_config.record {
                continue;
            }
            let Some(camera) = cameras.iter().find(|c| c.id == camera_config.id) else {
                continue;
            };
            let settings = RecorderSettings {
                camera: camera_config.id.clone(),
                segment: Duration::from_secs(camera_config.record_segment_seconds),
                min_free_bytes: config.recording.min_free_bytes,
            };
            let recorder = Recorder::start(
                &camera.feed,
                settings,
                key.clone(),
                catalogue.clone(),
                metrics.recording(&camera_config.id),
            )
            .map_err(|source| RecordingError::Thread {
                camera: camera_config.id.clone(),
                source,
            })?;
            recorders.push((camera_config.id.clone(), recorder));
        }
        Ok(Recordings {
            key,
            catalogue,
            recorders,
            policies,
            metrics,
        })
    }

    /// What the camera's recorder is doing (`None`: the camera is not recorded).
    pub fn recorder_state(&self, camera: &str) -> Option<RecorderState> {
        self.recorders
            .iter()
            .find(|(id, _)| id == camera)
            .map(|(_, recorder)| recorder.state())
    }

    /// Deletes what every camera's retention policy says is due, and updates the stored-bytes
    /// gauges. Blocking (file deletions): run it off the async runtime.
    pub fn sweep(&self, now_ms: u64) {
        for (camera, policy) in &self.policies {
            let segments = self.catalogue.segments(camera);
            for (start_ms, reason) in retention::due_for_deletion(&segments, *policy, now_ms) {
                let Some(segment) = segments.iter().find(|s| s.start_ms == start_ms) else {
                    continue;
                };
                match std::fs::remove_file(&segment.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::error!(camera, segment = %segment.id(), error = %e, "retention could not delete a segment");
                        continue;
                    }
                }
                self.catalogue.remove(camera, start_ms);
                self.metrics
                    .recording_deleted
                    .with_label_values(&[camera, reason.as_str()])
                    .inc();
                tracing::info!(camera, segment = %segment.id(), reason = reason.as_str(), "retention deleted a segment");
            }
            self.metrics
                .recording_stored_bytes
                .with_label_values(&[camera])
                .set(self.catalogue.bytes(camera) as i64);
        }
    }

    /// Ends every recorder's segment cleanly and stops them (blocking, a few seconds at most).
    pub fn stop(&self) {
        for (_, recorder) in &self.recorders {
            recorder.stop();
        }
    }
}

/// How often retention runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(30);
