//! On-demand H.265 → H.264 for a camera that sends H.265: browsers that offer H.265 get the
//! camera's own stream; for the others one transcoder per camera runs while at least one such
//! viewer holds a [`TranscodeLease`], and stops when the last lease is dropped.
//!
//! The transcoder takes the camera's packets from its feed like one more viewer (pushed into its
//! input queue from the camera's thread, never blocking it) and publishes H.264 into an output
//! feed of its own, with the usual GOP cache and keyframe requests (to its encoder), which viewers
//! use as they would an H.264 camera's. A new transcoder starts from the camera's cached GOP, so
//! its decoder has a keyframe at once. GStreamer work (start, stop) happens outside the state lock.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use prometheus::IntGauge;
use straja_pipelines::H265ToH264Transcoder;

use crate::hub::{Attachment, CameraFeed, KeyframeSource, MediaPacket, MediaSink};
use crate::metrics::Metrics;

/// Bitrate of the H.264 made from an H.265 camera, kbit/s.
const TRANSCODE_KBPS: u32 = 2500;

/// A camera's H.265 → H.264 transcoding, started and stopped by its leases.
pub struct Transcoding {
    camera: String,
    source: Arc<CameraFeed>,
    output: Arc<CameraFeed>,
    state: Mutex<State>,
    running_gauge: IntGauge,
}

#[derive(Default)]
struct State {
    leases: usize,
    running: Option<Running>,
}

/// A running transcoder and its place in the camera's fan-out.
struct Running {
    transcoder: Arc<H265ToH264Transcoder>,
    _attachment: Attachment,
}

/// The transcoder's input in the camera's fan-out.
struct TranscoderInput(Arc<H265ToH264Transcoder>);

impl MediaSink for TranscoderInput {
    fn offer(&self, packet: &MediaPacket) -> bool {
        self.0.push(packet.data.clone())
    }
}

/// Keyframe requests of the output's viewers go to the running transcoder's encoder.
struct EncoderKeyframes(Weak<Transcoding>);

impl KeyframeSource for EncoderKeyframes {
    fn request_keyframe(&self) {
        let Some(transcoding) = self.0.upgrade() else {
            return;
        };
        let transcoder = transcoding
            .lock()
            .running
            .as_ref()
            .map(|r| r.transcoder.clone());
        if let Some(transcoder) = transcoder {
            transcoder.request_keyframe();
        }
    }
}

/// Keeps the camera's transcoder running; dropping the last lease stops it.
pub struct TranscodeLease(Arc<Transcoding>);

impl Drop for TranscodeLease {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Transcoding {
    /// Transcoding for the camera whose (H.265) feed is `source`; nothing runs until leased.
    pub fn new(camera: &str, source: Arc<CameraFeed>, metrics: &Metrics) -> Arc<Transcoding> {
        let output = CameraFeed::new(camera, metrics.camera(camera));
        let running_gauge = metrics.transcoders_running.with_label_values(&[camera]);
        Arc::new_cyclic(|weak: &Weak<Transcoding>| {
            output.set_keyframe_source(Arc::new(EncoderKeyframes(weak.clone())));
            Transcoding {
                camera: camera.to_owned(),
                source,
                output,
                state: Mutex::new(State::default()),
                running_gauge,
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The H.264 feed that viewers of the transcode watch.
    pub fn output(&self) -> &Arc<CameraFeed> {
        &self.output
    }

    /// True while a transcoder runs.
    pub fn is_running(&self) -> bool {
        self.lock().running.is_some()
    }

    /// A lease on the transcode, starting the transcoder if it is not running. Fails (and holds
    /// no lease) when it cannot start (a GStreamer plugin missing).
    pub fn acquire(self: &Arc<Self>) -> Result<TranscodeLease, String> {
        let must_start = {
            let mut state = self.lock();
            state.leases += 1;
            state.running.is_none()
        };
        let lease = TranscodeLease(self.clone());
        if !must_start {
            return Ok(lease);
        }
        let transcoder = match H265ToH264Transcoder::start(self.output.clone(), TRANSCODE_KBPS) {
            Ok(transcoder) => Arc::new(transcoder),
            Err(e) => {
                tracing::error!(camera = %self.camera, error = %e, "the H.265 to H.264 transcoder could not start");
                // Dropping the lease takes the count back.
                return Err(e.to_string());
            }
        };
        // Start from the camera's current GOP: the decoder has a keyframe at once.
        if let Some(gop) = self.source.cached_gop() {
            for packet in gop {
                transcoder.push(packet.data);
            }
        } else {
            self.source.request_keyframe();
        }
        let attachment = self
            .source
            .attach(Arc::new(TranscoderInput(transcoder.clone())));
        let unused = {
            let mut state = self.lock();
            if state.leases > 0 && state.running.is_none() {
                state.running = Some(Running {
                    transcoder,
                    _attachment: attachment,
                });
                self.running_gauge.set(1);
                None
            } else {
                // Started twice at once, or every lease went meanwhile.
                Some((transcoder, attachment))
            }
        };
        if unused.is_none() {
            tracing::info!(camera = %self.camera, "H.265 to H.264 transcoding started for a viewer without H.265");
        }
        drop(unused);
        Ok(lease)
    }

    fn release(&self) {
        let stopped = {
            let mut state = self.lock();
            state.leases = state.leases.saturating_sub(1);
            if state.leases == 0 {
                state.running.take()
            } else {
                None
            }
        };
        if let Some(running) = stopped {
            self.running_gauge.set(0);
            tracing::info!(camera = %self.camera, "H.265 to H.264 transcoding stopped: no viewer needs it");
            // Setting a pipeline to NULL waits for its threads: not on the async runtime.
            let stop = move || drop(running);
            if std::thread::Builder::new()
                .name("transcoder-stop".to_owned())
                .spawn(stop)
                .is_err()
            {
                tracing::warn!(camera = %self.camera, "could not stop the transcoder on a thread of its own");
            }
        }
    }
}
