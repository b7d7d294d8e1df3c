//! The configured cameras at run time: for each, its feed in the hub and its ingest pipeline, and
//! the state the API, `/readyz` and `straja_camera_up` report.

use std::sync::Arc;
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
    pipeline: Option<Arc<CameraPipeline>>,
    start_error: Option<String>,
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
        let (pipeline, start_error) = match started {
            Ok(pipeline) => {
                let pipeline = Arc::new(pipeline);
                feed.set_keyframe_source(pipeline.clone());
                (Some(pipeline), None)
            }
            Err(e) => {
                tracing::error!(camera = %config.id, error = %e, "camera pipeline did not start");
                (None, Some(e))
            }
        };
        Camera {
            id: config.id.clone(),
            name: config.name.clone(),
            transcoding: Transcoding::new(&config.id, feed.clone(), metrics),
            feed,
            audio_feed,
            pipeline,
            start_error,
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
    pub fn export_metrics(&self, reported_reconnects: &mut u64) {
        let metrics = self.feed.metrics();
        metrics.up.set(i64::from(self.is_up()));
        if let Some(pipeline) = &self.pipeline {
            let reconnects = pipeline.reconnects();
            metrics
                .reconnects
                .inc_by(reconnects.saturating_sub(*reported_reconnects));
            *reported_reconnects = reconnects;
        }
    }
}

/// How often camera state is copied to the metrics.
pub const STATE_EXPORT_INTERVAL: Duration = Duration::from_millis(500);
