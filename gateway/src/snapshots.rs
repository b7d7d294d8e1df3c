//! Snapshots: a camera's latest keyframe as a JPEG, decoded on demand by the `pipelines` crate
//! off the async runtime, at most [`MAX_DECODES`] at once, and kept per camera by the keyframe's
//! identity, so that asking again while the camera's GOP has not moved on costs no decode.
//!
//! The keyframe comes from the camera's GOP cache; when that holds none (cache off, camera just
//! started, GOP over its bound), the camera is asked for one and its live packets are watched for
//! at most [`KEYFRAME_WAIT`]. Requests for one camera take turns, so concurrent ones decode once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::IntCounter;
use straja_pipelines::{JpegQuality, PipelineError};
use tokio::sync::{Mutex, Semaphore};

use crate::hub::{CameraFeed, Keyframe, KeyframeCollector, KeyframeId};
use crate::metrics::Metrics;

/// Decodes running at once, all cameras together (the box has few cores; the media path comes
/// first).
pub const MAX_DECODES: usize = 2;
/// How long a request waits for a keyframe when the camera's GOP cache has none.
pub const KEYFRAME_WAIT: Duration = Duration::from_millis(2500);
/// How long a request waits for a decode slot, or for its turn behind another request for the
/// same camera, before it is answered "busy".
pub const TURN_WAIT: Duration = Duration::from_secs(10);

/// A camera's picture as a JPEG.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The JPEG file.
    pub jpeg: Bytes,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The keyframe it was decoded from.
    pub keyframe: KeyframeId,
}

/// A snapshot request's answer.
#[derive(Clone, Debug)]
pub struct Served {
    /// The picture.
    pub snapshot: Snapshot,
    /// True when it was made for an earlier request from the same keyframe.
    pub from_cache: bool,
}

/// Why there is no picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The camera sent no keyframe in time (it is down, stalled or silent).
    #[error(
        "the camera has no picture now: no keyframe came from it within {} ms",
        KEYFRAME_WAIT.as_millis()
    )]
    NoPicture,
    /// The keyframe could not be decoded (damaged, or no decoder is installed).
    #[error("could not decode the camera's picture: {0}")]
    Undecodable(String),
    /// Too many snapshots are being made at once.
    #[error("the gateway is busy making other snapshots")]
    Busy,
    /// The camera is not configured.
    #[error("no camera with this id")]
    UnknownCamera,
}

/// How a snapshot request ended, as `straja_snapshots_total{outcome}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// A JPEG decoded for this request was served.
    Served,
    /// The JPEG of the same keyframe, made earlier, was served.
    Cached,
    /// No live keyframe, or too busy: 503.
    Unavailable,
    /// The keyframe could not be decoded, or the view could not be recorded: 503.
    Failed,
}

impl SnapshotOutcome {
    /// Every outcome, for exporting the series at 0.
    pub const ALL: [SnapshotOutcome; 4] = [
        SnapshotOutcome::Served,
        SnapshotOutcome::Cached,
        SnapshotOutcome::Unavailable,
        SnapshotOutcome::Failed,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotOutcome::Served => "served",
            SnapshotOutcome::Cached => "cached",
            SnapshotOutcome::Unavailable => "unavailable",
            SnapshotOutcome::Failed => "failed",
        }
    }
}

/// What was last decoded for a camera: a picture, or why its keyframe gave none.
type LastDecode = (KeyframeId, Result<Snapshot, SnapshotError>);

/// One camera's snapshot state.
struct CameraSnapshots {
    /// Held (async) through one request's wait and decode: requests for the camera take turns.
    last: Mutex<Option<LastDecode>>,
    /// `straja_snapshots_total{camera,outcome}`, in [`SnapshotOutcome::ALL`] order.
    counters: [IntCounter; 4],
}

/// Every camera's snapshots.
pub struct Snapshots {
    /// By camera id (a reload adds and removes cameras).
    cameras: std::sync::RwLock<HashMap<String, Arc<CameraSnapshots>>>,
    /// `straja_snapshots_total`.
    counters: prometheus::IntCounterVec,
    decodes: Arc<Semaphore>,
    quality: JpegQuality,
}

impl Snapshots {
    /// Snapshot state for each of `cameras` (ids from the config), its series exported at 0.
    pub fn new<'a>(cameras: impl IntoIterator<Item = &'a str>, metrics: &Metrics) -> Snapshots {
        let snapshots = Snapshots {
            cameras: std::sync::RwLock::new(HashMap::new()),
            counters: metrics.snapshots.clone(),
            decodes: Arc::new(Semaphore::new(MAX_DECODES)),
            quality: JpegQuality::DEFAULT,
        };
        for id in cameras {
            snapshots.add_camera(id);
        }
        snapshots
    }

    /// Snapshot state for a camera (added by a reload), its series exported at 0; a camera
    /// already known keeps its state.
    pub fn add_camera(&self, id: &str) {
        let counters = SnapshotOutcome::ALL
            .map(|outcome| self.counters.with_label_values(&[id, outcome.as_str()]));
        self.cameras
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(CameraSnapshots {
                    last: Mutex::new(None),
                    counters,
                })
            });
    }

    /// Forgets a camera removed by a reload.
    pub fn remove_camera(&self, id: &str) {
        self.cameras
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    fn camera(&self, id: &str) -> Option<Arc<CameraSnapshots>> {
        self.cameras
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Counts a request's outcome for `camera`.
    pub fn count(&self, camera: &str, outcome: SnapshotOutcome) {
        if let Some(state) = self.camera(camera) {
            let index = SnapshotOutcome::ALL
                .iter()
                .position(|o| *o == outcome)
                .unwrap_or(0);
            state.counters[index].inc();
        }
    }

    /// The camera's latest picture: its latest keyframe, decoded (or taken from the last decode
    /// when the keyframe is the same).
    pub async fn latest(&self, feed: &Arc<CameraFeed>) -> Result<Served, SnapshotError> {
        let state = self.camera(feed.id()).ok_or(SnapshotError::UnknownCamera)?;
        let mut last = tokio::time::timeout(TURN_WAIT, state.last.lock())
            .await
            .map_err(|_| SnapshotError::Busy)?;
        let keyframe = match feed.latest_keyframe() {
            Some(keyframe) => keyframe,
            None => next_keyframe(feed, KEYFRAME_WAIT)
                .await
                .ok_or(SnapshotError::NoPicture)?,
        };
        if let Some((id, result)) = last.as_ref()
            && *id == keyframe.id
        {
            return result.clone().map(|snapshot| Served {
                snapshot,
                from_cache: true,
            });
        }
        let id = keyframe.id;
        let result = self.decode(feed.id(), keyframe).await;
        if !matches!(result, Err(SnapshotError::Busy)) {
            *last = Some((id, result.clone()));
        }
        result.map(|snapshot| Served {
            snapshot,
            from_cache: false,
        })
    }

    /// Decodes on a blocking thread once a decode slot is free.
    async fn decode(&self, camera: &str, keyframe: Keyframe) -> Result<Snapshot, SnapshotError> {
        let permit = tokio::time::timeout(TURN_WAIT, self.decodes.clone().acquire_owned())
            .await
            .map_err(|_| SnapshotError::Busy)?
            .map_err(|_| SnapshotError::Busy)?;
        let Keyframe {
            id, packets, codec, ..
        } = keyframe;
        let quality = self.quality;
        let started = Instant::now();
        // The permit goes with the decode: a request that is dropped meanwhile does not free a
        // slot that is still busy.
        let decoded = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            straja_pipelines::jpeg_from_keyframe_of(codec, &packets, quality)
        })
        .await;
        let picture = match decoded {
            Ok(Ok(picture)) => picture,
            Ok(Err(error)) => {
                if matches!(error, PipelineError::MissingElement(_)) {
                    tracing::error!(%camera, %error, "cannot make snapshots: no H.264 decoder");
                } else {
                    tracing::warn!(%camera, %error, "snapshot: the keyframe did not decode");
                }
                return Err(SnapshotError::Undecodable(error.to_string()));
            }
            Err(join_error) => {
                tracing::error!(%camera, error = %join_error, "snapshot decode thread failed");
                return Err(SnapshotError::Undecodable(
                    "the decoder thread failed".to_owned(),
                ));
            }
        };
        tracing::debug!(
            %camera,
            decoder = picture.decoder,
            width = picture.width,
            height = picture.height,
            bytes = picture.jpeg.len(),
            decode_ms = started.elapsed().as_millis(),
            "snapshot decoded"
        );
        Ok(Snapshot {
            jpeg: Bytes::from(picture.jpeg),
            width: picture.width,
            height: picture.height,
            keyframe: id,
        })
    }
}

/// Asks the camera for a keyframe and takes the next whole one from its live packets, waiting at
/// most `wait`.
async fn next_keyframe(feed: &Arc<CameraFeed>, wait: Duration) -> Option<Keyframe> {
    // Subscribed before the request, so the keyframe it brings cannot slip by.
    let mut subscription = feed.subscribe();
    feed.request_keyframe();
    let mut collector = KeyframeCollector::for_codec(feed.video_codec());
    tokio::time::timeout(wait, async {
        // Bounded by the timeout around it.
        loop {
            let packet = subscription.recv().await?;
            if let Some(keyframe) = collector.push(packet) {
                return Some(keyframe);
            }
        }
    })
    .await
    .ok()
    .flatten()
}
