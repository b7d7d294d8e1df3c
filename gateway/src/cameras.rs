//! The configured cameras at run time: for each, its feed in the hub and its ingest pipeline, and
//! the state the API, `/readyz` and `straja_camera_up` report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use straja_pipelines::CameraSource;
use straja_pipelines::{CameraOptions, CameraPipeline, CameraState};

use crate::config::CameraConfig;
use crate::hub::{CameraFeed, KeyframeSource};
use crate::metrics::Metrics;
use crate::transcoding::Transcoding;

impl KeyframeSource for CameraPipeline {
    fn request_keyframe(&self) {
        CameraPipeline::request_keyframe(self);
    }
}

/// One running camera.
pub struct Camera {
    /// Its id (from the config).
    pub id: String,
    /// Its human name.
    pub name: String,
    /// Its fan-out point.
    pub feed: Arc<CameraFeed>,
    /// Its audio's fan-out point (silent for a camera without audio).
    pub audio_feed: Arc<CameraFeed>,
    /// H.264 made from its H.265, while viewers without H.265 watch (idle for H.264 cameras).
    pub transcoding: Arc<Transcoding>,
    /// The configuration it runs with.
    config: CameraConfig,
    pipeline: Option<Arc<CameraPipeline>>,
    start_error: Option<String>,
    /// The pipeline's reconnects already added to `straja_camera_reconnects_total`.
    reported_reconnects: AtomicU64,
    /// The pipeline's failures (by kind) already added to `straja_pipeline_errors_total`.
    reported_failures: [AtomicU64; 6],
    /// The frame count and time at the last export (for the frame-rate gauge).
    frames_at: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
}

/// A camera as `GET /api/v1/cameras` shows it.
#[derive(Debug, Serialize)]
pub struct CameraStatus {
    /// Camera id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// `starting`, `playing`, `reconnecting`, `stopped` or `failed`.
    pub state: &'static str,
    /// Viewers now.
    pub viewers: usize,
    /// The recorder: `off`, `waiting`, `recording`, `disk_full`, `failed` or `stopped`.
    pub recording: &'static str,
}

impl Camera {
    /// Creates the camera's feed and starts its pipeline (returns at once, even if the camera is down).
    pub fn start(config: &CameraConfig, metrics: &Metrics) -> Camera {
        let feed = CameraFeed::with_gop_cache(
            &config.id,
            metrics.camera(&config.id),
            config.gop_cache_bytes,
        );
        let audio_feed = CameraFeed::audio(&config.id, metrics.camera(&config.id));
        let (pipeline, start_error) = start_pipeline(config, &feed, &audio_feed);
        Camera {
            id: config.id.clone(),
            name: config.name.clone(),
            transcoding: Transcoding::new(&config.id, feed.clone(), metrics),
            feed,
            audio_feed,
            config: config.clone(),
            pipeline,
            start_error,
            reported_reconnects: AtomicU64::new(0),
            reported_failures: Default::default(),
            frames_at: std::sync::Mutex::new(None),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &CameraConfig {
        &self.config
    }

    /// True when `config` needs a new pipeline (another source or stall timeout).
    pub fn needs_new_pipeline(&self, config: &CameraConfig) -> bool {
        self.config.source != config.source || self.config.stall_seconds != config.stall_seconds
    }

    /// The camera under a changed configuration (a reload), on the same feeds, so that its viewers
    /// and recorder stay attached: a new source or stall timeout stops this camera's pipeline and
    /// starts another (viewers see a reconnect); a new name or GOP cache bound keeps the pipeline.
    /// Blocking while the old pipeline stops.
    pub fn reconfigured(&self, config: &CameraConfig) -> Camera {
        self.feed.set_gop_cache_bytes(config.gop_cache_bytes);
        let (pipeline, start_error, reported, reported_failures) =
            if self.needs_new_pipeline(config) {
                self.stop();
                let (pipeline, start_error) = start_pipeline(config, &self.feed, &self.audio_feed);
                (pipeline, start_error, 0, [0; 6])
            } else {
                (
                    self.pipeline.clone(),
                    self.start_error.clone(),
                    self.reported_reconnects.load(Ordering::Relaxed),
                    std::array::from_fn(|i| self.reported_failures[i].load(Ordering::Relaxed)),
                )
            };
        Camera {
            id: config.id.clone(),
            name: config.name.clone(),
            feed: self.feed.clone(),
            audio_feed: self.audio_feed.clone(),
            transcoding: self.transcoding.clone(),
            config: config.clone(),
            pipeline,
            start_error,
            reported_reconnects: AtomicU64::new(reported),
            reported_failures: reported_failures.map(AtomicU64::new),
            frames_at: std::sync::Mutex::new(None),
        }
    }

    /// The pipeline's state, `None` when it could not be built at all.
    pub fn state(&self) -> Option<CameraState> {
        self.pipeline.as_ref().map(|p| p.state())
    }

    /// The audio the camera hands on, once known (`None`: none, or not known yet).
    pub fn audio_codec(&self) -> Option<straja_pipelines::AudioCodec> {
        self.pipeline.as_ref().and_then(|p| p.audio_codec())
    }

    /// The camera's video codec, once known (H.264 until an RTSP camera says otherwise).
    pub fn video_codec(&self) -> straja_pipelines::VideoCodec {
        self.pipeline
            .as_ref()
            .and_then(|p| p.video_codec())
            .unwrap_or(straja_pipelines::VideoCodec::H264)
    }

    /// True when the pipeline is playing.
    pub fn is_up(&self) -> bool {
        self.state() == Some(CameraState::Playing)
    }

    /// The state for the API.
    pub fn status(&self) -> CameraStatus {
        CameraStatus {
            id: self.id.clone(),
            name: self.name.clone(),
            state: match self.state() {
                Some(CameraState::Starting) => "starting",
                Some(CameraState::Playing) => "playing",
                Some(CameraState::Reconnecting) => "reconnecting",
                Some(CameraState::Stopped) => "stopped",
                None => "failed",
            },
            viewers: self.feed.subscriber_count(),
            recording: "off",
        }
    }

    /// Why the pipeline could not be built, if it could not.
    pub fn start_error(&self) -> Option<&str> {
        self.start_error.as_deref()
    }

    /// Stops the pipeline (sets it to NULL and joins its supervisor).
    pub fn stop(&self) {
        if let Some(pipeline) = &self.pipeline {
            pipeline.stop();
        }
    }

    /// Copies the pipeline's state into the camera's metrics.
    pub fn export_metrics(&self) {
        let metrics = self.feed.metrics();
        metrics.up.set(i64::from(self.is_up()));
        if let Some(pipeline) = &self.pipeline {
            let reconnects = pipeline.reconnects();
            let reported = self.reported_reconnects.swap(reconnects, Ordering::Relaxed);
            metrics
                .reconnects
                .inc_by(reconnects.saturating_sub(reported));
            for ((failures, reported), counter) in pipeline
                .failures()
                .into_iter()
                .zip(&self.reported_failures)
                .zip(&metrics.pipeline_errors)
            {
                let reported = reported.swap(failures, Ordering::Relaxed);
                counter.inc_by(failures.saturating_sub(reported));
            }
        }
        let now = std::time::Instant::now();
        let frames = self.feed.frames();
        let mut frames_at = self.frames_at.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((before, at)) = frames_at.replace((frames, now)) {
            let seconds = now.saturating_duration_since(at).as_secs_f64();
            if seconds > 0.0 {
                metrics
                    .frame_rate
                    .set(frames.saturating_sub(before) as f64 / seconds);
            }
        }
    }
}

/// Builds and starts a camera's pipeline into its feeds; on failure, why (logged).
fn start_pipeline(
    config: &CameraConfig,
    feed: &Arc<CameraFeed>,
    audio_feed: &Arc<CameraFeed>,
) -> (Option<Arc<CameraPipeline>>, Option<String>) {
    let started = CameraSource::parse(&config.source)
        .map_err(|e| e.to_string())
        .and_then(|source| {
            let options = CameraOptions {
                stall_timeout: Duration::from_secs(config.stall_seconds),
            };
            CameraPipeline::start_with_audio(
                &config.id,
                source,
                feed.clone(),
                Some(audio_feed.clone()),
                options,
            )
            .map_err(|e| e.to_string())
        });
    match started {
        Ok(pipeline) => {
            let pipeline = Arc::new(pipeline);
            feed.set_keyframe_source(pipeline.clone());
            (Some(pipeline), None)
        }
        Err(e) => {
            tracing::error!(camera = %config.id, error = %e, "camera pipeline did not start");
            (None, Some(e))
        }
    }
}

/// How often camera state is copied to the metrics.
pub const STATE_EXPORT_INTERVAL: Duration = Duration::from_millis(500);
