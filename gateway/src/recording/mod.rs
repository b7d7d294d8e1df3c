//! Recording: cameras recorded continuously to segmented, fragmented MP4, encrypted at rest
//! (AES-256-GCM under a key of the box's own), kept per camera by age and size, listed, played
//! back and exported.
//!
//! - [`recorder`]: one thread per recorded camera, fed by the hub like a viewer;
//! - [`segment_file`]: the encrypted, chunked segment format (writer, reader, crash recovery);
//! - [`segment_catalogue`]: which segments exist, from their file names;
//! - [`retention`]: which segments are due for deletion;
//! - [`export`]: segments of a time range into one playable MP4;
//! - [`consultation_recordings`], [`consultation_export`]: consultations' recordings (with
//!   everyone's consent), a track per participant and kind, and their export to one MP4;
//! - [`recording_key`], [`disk_space`], [`wall_time`]: the key, the free-space check, times.
//!
//! [`Recordings`] ties them together for the daemon.

pub mod consultation_export;
pub mod consultation_recordings;
pub mod disk_space;
pub mod export;
pub mod recorder;
pub mod recording_key;
pub mod retention;
pub mod segment_catalogue;
pub mod segment_file;
pub mod wall_time;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use consultation_recordings::ConsultationRecordings;
pub use recorder::{Recorder, RecorderSettings, RecorderState};
pub use recording_key::RecordingKey;
pub use segment_catalogue::{PartFiles, SegmentCatalogue, SegmentInfo};
pub use wall_time::now_ms;

use crate::cameras::Camera;
use crate::config::{CameraConfig, Config};
use crate::hub::CameraFeed;
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
/// camera's retention policy. A reload adds, changes and removes cameras' recorders.
pub struct Recordings {
    /// The key segments are sealed under.
    pub key: Arc<RecordingKey>,
    /// Which segments exist.
    pub catalogue: Arc<SegmentCatalogue>,
    /// Recording pauses below this much free space (`[recording] min_free_bytes`).
    min_free_bytes: u64,
    recorders: Mutex<Vec<(RecorderSettings, Arc<Recorder>)>>,
    policies: Mutex<Vec<(String, RetentionPolicy)>>,
    metrics: Arc<Metrics>,
    /// Consultations' recordings (only with everyone's consent).
    pub consultations: ConsultationRecordings,
    /// `[consultations] recording_retain_days`.
    consultation_retention: Duration,
}

impl Recordings {
    /// Opens the catalogue (recovering segments a crash cut short) and starts a recorder for every
    /// camera with `record = true`.
    pub fn start(
        config: &Config,
        cameras: &[Arc<Camera>],
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
        let consultations = ConsultationRecordings::open(
            &config.state_dir,
            key.clone(),
            PartFiles::Recover,
            config.recording.min_free_bytes,
            metrics.consultation_recording(),
            metrics.consultation_recordings.clone(),
        )
        .map_err(|source| RecordingError::Dir {
            path: config.state_dir.join(consultation_recordings::DIR),
            source,
        })?;
        let recordings = Recordings {
            key,
            catalogue,
            min_free_bytes: config.recording.min_free_bytes,
            recorders: Mutex::new(Vec::new()),
            policies: Mutex::new(Vec::new()),
            metrics,
            consultations,
            consultation_retention: Duration::from_secs(
                config.consultations.recording_retain_days * 24 * 3600,
            ),
        };
        for camera_config in &config.cameras {
            if let Some(camera) = cameras.iter().find(|c| c.id == camera_config.id) {
                recordings.configure(camera_config, &camera.feed)?;
            }
        }
        Ok(recordings)
    }

    /// Applies a camera's recording settings: its retention policy, and a recorder started,
    /// restarted (its segment ended cleanly first) or stopped as `record` and the segment length
    /// say. Blocking when a recorder stops (a few seconds at most).
    pub fn configure(
        &self,
        camera: &CameraConfig,
        feed: &Arc<CameraFeed>,
    ) -> Result<(), RecordingError> {
        self.catalogue
            .add_camera(&camera.id, &self.key)
            .map_err(|source| RecordingError::Dir {
                path: self.catalogue.camera_dir(&camera.id),
                source,
            })?;
        let policy = RetentionPolicy {
            max_age: camera
                .record_retain_hours
                .map(|h| Duration::from_secs(h * 3600)),
            max_bytes: camera.record_max_bytes,
        };
        {
            let mut policies = lock(&self.policies);
            policies.retain(|(id, _)| *id != camera.id);
            policies.push((camera.id.clone(), policy));
        }
        self.metrics
            .recording_stored_bytes
            .with_label_values(&[&camera.id])
            .set(self.catalogue.bytes(&camera.id) as i64);
        let wanted = camera.record.then(|| RecorderSettings {
            camera: camera.id.clone(),
            segment: Duration::from_secs(camera.record_segment_seconds),
            min_free_bytes: self.min_free_bytes,
        });
        let running = lock(&self.recorders)
            .iter()
            .find(|(settings, _)| settings.camera == camera.id)
            .map(|(settings, _)| settings.clone());
        if running == wanted {
            return Ok(());
        }
        if running.is_some() {
            self.stop_recorder(&camera.id);
        }
        let Some(settings) = wanted else {
            // Recording turned off: its series go, or they would read as a stopped recorder.
            self.metrics.forget_recording(&camera.id);
            return Ok(());
        };
        let recorder = Recorder::start(
            feed,
            settings.clone(),
            self.key.clone(),
            self.catalogue.clone(),
            self.metrics.recording(&camera.id),
        )
        .map_err(|source| RecordingError::Thread {
            camera: camera.id.clone(),
            source,
        })?;
        lock(&self.recorders).push((settings, Arc::new(recorder)));
        Ok(())
    }

    /// Stops the recorder of a camera removed by a reload (its segment ends cleanly). Its segments
    /// stay on disk, and its retention policy keeps applying to them while the daemon runs.
    /// Blocking (a few seconds at most).
    pub fn remove_camera(&self, camera: &str) {
        self.stop_recorder(camera);
    }

    fn stop_recorder(&self, camera: &str) {
        let recorder = {
            let mut recorders = lock(&self.recorders);
            let index = recorders.iter().position(|(s, _)| s.camera == camera);
            index.map(|i| recorders.remove(i).1)
        };
        if let Some(recorder) = recorder {
            recorder.stop();
        }
    }

    /// What the camera's recorder is doing (`None`: the camera is not recorded).
    pub fn recorder_state(&self, camera: &str) -> Option<RecorderState> {
        lock(&self.recorders)
            .iter()
            .find(|(settings, _)| settings.camera == camera)
            .map(|(_, recorder)| recorder.state())
    }

    /// Deletes what every camera's retention policy says is due, and updates the stored-bytes
    /// gauges; deletes consultations' recordings past their retention and returns their ids.
    /// Blocking (file deletions): run it off the async runtime.
    pub fn sweep(&self, now_ms: u64) -> Vec<String> {
        let policies = lock(&self.policies).clone();
        for (camera, policy) in &policies {
            let camera = camera.as_str();
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
        self.consultations
            .sweep(now_ms, self.consultation_retention)
    }

    /// Ends every recorder's segment cleanly and stops them, consultations' too (blocking, a few
    /// seconds at most).
    pub fn stop(&self) {
        self.consultations.stop_all();
        let recorders: Vec<Arc<Recorder>> = lock(&self.recorders)
            .iter()
            .map(|(_, r)| r.clone())
            .collect();
        for recorder in recorders {
            recorder.stop();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How often retention runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(30);
