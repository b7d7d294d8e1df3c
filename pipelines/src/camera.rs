//! A camera's ingest pipeline and the supervisor thread that keeps it running.
//!
//! The supervisor (a `std::thread` named `camera-<id>`) owns the GStreamer pipeline and its bus:
//! it builds the pipeline, sets it PLAYING, and watches the bus with a short timeout so that it
//! sees the stop flag promptly. On an error, end of stream or stall (no packet for
//! [`CameraOptions::stall_timeout`]) it tears the pipeline down and builds a new one after an
//! exponential backoff with jitter. Callers only read atomics, and take the one small lock
//! ([`CameraPipeline::last_error`]) that is never held across a GStreamer call.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use crate::audio::AudioCodec;
use crate::backoff::Backoff;
use crate::delivery::{self, FlowStats};
use crate::error::PipelineError;
use crate::failure_kind::FailureKind;
use crate::packet_sink::PacketSink;
use crate::pipeline_description::{self, BuiltPipeline};
use crate::source::CameraSource;
use crate::video_codec::VideoCodec;

/// How long the supervisor waits on the bus before it looks at the stop flag and the packet
/// counters again: the bound on how late it notices a stop or a stall.
const BUS_POLL: gst::ClockTime = gst::ClockTime::from_mseconds(50);

/// Tunables of a camera pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraOptions {
    /// A pipeline that delivers no packet for this long (including from its start) is torn down
    /// and rebuilt. Default 5 s.
    pub stall_timeout: Duration,
}

impl Default for CameraOptions {
    fn default() -> Self {
        CameraOptions {
            stall_timeout: Duration::from_secs(5),
        }
    }
}

/// Where a camera pipeline is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraState {
    /// The first pipeline is being built or is waiting for its first packet.
    Starting,
    /// Packets are flowing.
    Playing,
    /// The pipeline failed; a new one is due or is waiting for its first packet.
    Reconnecting,
    /// Stopped for good ([`CameraPipeline::stop`]).
    Stopped,
}

impl CameraState {
    /// Lower-case name for logs, JSON and metric labels: `starting`, `playing`, `reconnecting`,
    /// `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Starting => "starting",
            CameraState::Playing => "playing",
            CameraState::Reconnecting => "reconnecting",
            CameraState::Stopped => "stopped",
        }
    }

    fn from_u8(value: u8) -> CameraState {
        match value {
            0 => CameraState::Starting,
            1 => CameraState::Playing,
            2 => CameraState::Reconnecting,
            _ => CameraState::Stopped,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            CameraState::Starting => 0,
            CameraState::Playing => 1,
            CameraState::Reconnecting => 2,
            CameraState::Stopped => 3,
        }
    }
}

impl fmt::Display for CameraState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller and the supervisor share.
struct Shared {
    id: String,
    /// The redacted source, for logs.
    source: String,
    state: AtomicU8,
    reconnects: AtomicU64,
    /// Failures by [`FailureKind`].
    failures: [AtomicU64; 6],
    stop: AtomicBool,
    /// Redacted. Locked only to read or replace the string.
    last_error: Mutex<Option<String>>,
    /// The appsink's sink pad while a pipeline runs, for keyframe requests. Locked only to clone
    /// or replace the pad, never while an event is sent.
    keyframe_pad: Mutex<Option<gst::Pad>>,
    /// The audio the camera hands on ([`AudioCodec::to_u8`]; 0: none known).
    audio_codec: Arc<AtomicU8>,
    /// The video the camera hands on ([`VideoCodec::to_u8`]; 0: not known yet).
    video_codec: Arc<AtomicU8>,
}

impl Shared {
    fn state(&self) -> CameraState {
        CameraState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, state: CameraState) {
        self.state.store(state.to_u8(), Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running camera: its supervisor thread and what it reports. `Send + Sync`; stopped on drop.
pub struct CameraPipeline {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    supervisor_id: ThreadId,
}

impl CameraPipeline {
    /// Starts the camera's supervisor (a `std::thread` named `camera-<id>`) which builds the
    /// pipeline, sets it PLAYING, watches its bus, and on error / EOS / stall (no packet for
    /// `stall_timeout`) tears it down and rebuilds it with exponential backoff with jitter
    /// (0.5 s doubling, capped at 10 s; reset after a successful PLAYING that delivered packets).
    ///
    /// Returns at once: a camera that is down does not delay the caller. Fails only when the
    /// pipeline cannot be built at all (GStreamer or one of its plugins missing), the id holds a
    /// NUL byte, or the thread cannot be started.
    pub fn start(
        id: &str,
        source: CameraSource,
        sink: Arc<dyn PacketSink>,
        options: CameraOptions,
    ) -> Result<CameraPipeline, PipelineError> {
        Self::start_with_audio(id, source, sink, None, options)
    }

    /// Like [`CameraPipeline::start`], also handing the camera's audio to `audio_sink`: RTP
    /// packets of Opus or G.711 as the camera sent them, or Opus transcoded from the camera's AAC
    /// (payload type [`crate::OPUS_PAYLOAD_TYPE`]). [`CameraPipeline::audio_codec`] says which,
    /// once the camera has described its streams.
    pub fn start_with_audio(
        id: &str,
        source: CameraSource,
        sink: Arc<dyn PacketSink>,
        audio_sink: Option<Arc<dyn PacketSink>>,
        options: CameraOptions,
    ) -> Result<CameraPipeline, PipelineError> {
        if id.contains('\0') {
            return Err(PipelineError::InvalidId);
        }
        // Built here rather than in the thread so that a missing plugin is reported to the
        // caller; building is local and takes milliseconds.
        let video_codec = Arc::new(AtomicU8::new(0));
        let first = pipeline_description::parse_noting_codec(&source, &video_codec)?;
        let shared = Arc::new(Shared {
            id: id.to_owned(),
            source: source.redacted(),
            state: AtomicU8::new(CameraState::Starting.to_u8()),
            reconnects: AtomicU64::new(0),
            failures: Default::default(),
            stop: AtomicBool::new(false),
            last_error: Mutex::new(None),
            keyframe_pad: Mutex::new(None),
            audio_codec: Arc::new(AtomicU8::new(0)),
            video_codec,
        });
        let supervisor = Supervisor {
            shared: Arc::clone(&shared),
            source,
            sink,
            audio_sink,
            options,
        };
        let name = format!("camera-{id}");
        let handle = thread::Builder::new()
            .name(name.clone())
            .spawn(move || supervisor.run(first))
            .map_err(|source| PipelineError::Thread { name, source })?;
        Ok(CameraPipeline {
            shared,
            supervisor_id: handle.thread().id(),
            supervisor: Mutex::new(Some(handle)),
        })
    }

    /// The camera's id, as given to [`CameraPipeline::start`].
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Where the camera is in its life (a lock-free read).
    pub fn state(&self) -> CameraState {
        self.shared.state()
    }

    /// Times the pipeline failed and was (or is about to be) rebuilt.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Failures so far, by [`FailureKind`] (index = kind).
    pub fn failures(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.shared.failures[i].load(Ordering::Relaxed))
    }

    /// The video codec the camera hands on (known once its pipeline has seen the camera's
    /// streams; H.264 for every source but an RTSP camera that sends H.265).
    pub fn video_codec(&self) -> Option<VideoCodec> {
        VideoCodec::from_u8(self.shared.video_codec.load(Ordering::Acquire))
    }

    /// The audio the camera hands on (known once its pipeline has seen the camera's streams;
    /// kept while it reconnects). `None`: no audio, or not known yet.
    pub fn audio_codec(&self) -> Option<AudioCodec> {
        AudioCodec::from_u8(self.shared.audio_codec.load(Ordering::Acquire))
    }

    /// Why the pipeline last failed; kept after it recovers. Never contains credentials.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Asks for a keyframe: sends an upstream GstForceKeyUnit (all-headers=true) event from the
    /// appsink's sink pad. x264enc makes one for test and v4l2 sources; for RTSP it reaches
    /// rtpbin, which sends RTCP PLI/FIR when the camera supports it.
    ///
    /// Cheap, never blocks for long; safe to call from any thread; a no-op when not playing.
    pub fn request_keyframe(&self) {
        if self.state() != CameraState::Playing {
            return;
        }
        let pad = lock(&self.shared.keyframe_pad).clone();
        let Some(pad) = pad else { return };
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if !pad.push_event(event) {
            tracing::debug!(camera = %self.shared.id, "keyframe request not handled upstream");
        }
    }

    /// Sets the pipeline to NULL, stops and joins the supervisor. Idempotent; also done on drop.
    /// Returns within about 50 ms plus the time GStreamer takes to stop (tens of ms).
    ///
    /// Must not be called from a [`PacketSink`] callback (it waits for the streaming threads).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        if thread::current().id() == self.supervisor_id {
            return;
        }
        // Held while joining so that a concurrent `stop` also returns only once it is done;
        // the supervisor never takes this lock.
        let mut supervisor = lock(&self.supervisor);
        if let Some(handle) = supervisor.take() {
            handle.thread().unpark();
            if handle.join().is_err() {
                tracing::error!(camera = %self.shared.id, "camera supervisor panicked");
            }
        }
        self.shared.set_state(CameraState::Stopped);
    }
}

impl Drop for CameraPipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for CameraPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraPipeline")
            .field("id", &self.shared.id)
            .field("source", &self.shared.source)
            .field("state", &self.state())
            .field("reconnects", &self.reconnects())
            .finish()
    }
}

/// How one pipeline's run ended.
enum Outcome {
    /// Asked to stop.
    Stopped,
    /// Failed; `delivered` when it had delivered packets before failing.
    Failed {
        reason: String,
        kind: FailureKind,
        delivered: bool,
    },
}

/// The supervisor thread's state: owns the source, the sink and, while it runs, the pipeline.
struct Supervisor {
    shared: Arc<Shared>,
    source: CameraSource,
    sink: Arc<dyn PacketSink>,
    audio_sink: Option<Arc<dyn PacketSink>>,
    options: CameraOptions,
}

/// Sets the state to `Stopped` when the supervisor ends, even by a panic.
struct StoppedOnExit(Arc<Shared>);

impl Drop for StoppedOnExit {
    fn drop(&mut self) {
        let pad = lock(&self.0.keyframe_pad).take();
        drop(pad); // after the lock is released
        self.0.set_state(CameraState::Stopped);
    }
}

impl Supervisor {
    fn run(self, first: BuiltPipeline) {
        let _stopped_on_exit = StoppedOnExit(Arc::clone(&self.shared));
        let (id, source) = (&self.shared.id, &self.shared.source);
        tracing::info!(camera = %id, %source, "camera starting");
        let mut next = Some(first);
        let mut backoff = Backoff::new();
        while !self.shared.stopping() {
            let built = match next.take() {
                Some(built) => Ok(built),
                None => {
                    pipeline_description::parse_noting_codec(&self.source, &self.shared.video_codec)
                }
            };
            let outcome = match built {
                Ok(built) => self.play(built),
                Err(error) => Outcome::Failed {
                    reason: error.to_string(),
                    kind: FailureKind::Other,
                    delivered: false,
                },
            };
            let Outcome::Failed {
                reason,
                kind,
                delivered,
            } = outcome
            else {
                break;
            };
            if self.shared.stopping() {
                break;
            }
            if delivered {
                backoff.reset();
            }
            let reason = self.scrub(&reason);
            let delay = backoff.next_delay();
            tracing::warn!(
                camera = %id, %source, error = %reason, retry_in_ms = delay.as_millis(),
                "camera pipeline failed; reconnecting"
            );
            *lock(&self.shared.last_error) = Some(reason);
            self.shared.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
            self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            self.shared.set_state(CameraState::Reconnecting);
            self.sleep(delay);
        }
        tracing::info!(camera = %id, %source, "camera stopped");
    }

    /// Runs one pipeline until it fails or a stop is asked, then sets it to NULL.
    fn play(&self, built: BuiltPipeline) -> Outcome {
        let BuiltPipeline {
            pipeline,
            appsink,
            audio_appsink,
        } = built;
        let stats = Arc::new(FlowStats::new());
        delivery::connect_video_sink(
            &appsink,
            Arc::clone(&self.sink),
            Arc::clone(&stats),
            Arc::clone(&self.shared.video_codec),
        );
        if let Some(audio_sink) = &self.audio_sink {
            self.connect_audio(&pipeline, audio_appsink.as_ref(), audio_sink);
        }
        let outcome = self.watch(&pipeline, &appsink, &stats);
        let pad = lock(&self.shared.keyframe_pad).take();
        drop(pad); // after the lock is released
        if pipeline.set_state(gst::State::Null).is_err() {
            tracing::warn!(camera = %self.shared.id, "pipeline did not go to NULL cleanly");
        }
        outcome
    }

    fn watch(
        &self,
        pipeline: &gst::Pipeline,
        appsink: &gstreamer_app::AppSink,
        stats: &FlowStats,
    ) -> Outcome {
        let Some(bus) = pipeline.bus() else {
            return Outcome::Failed {
                reason: "the pipeline has no bus".to_owned(),
                kind: FailureKind::Other,
                delivered: false,
            };
        };
        let started = Instant::now();
        if pipeline.set_state(gst::State::Playing).is_err() {
            let (reason, kind) = first_error(&bus).unwrap_or_else(|| {
                (
                    "the pipeline refused to start (state change to PLAYING failed)".to_owned(),
                    FailureKind::Other,
                )
            });
            return Outcome::Failed {
                reason,
                kind,
                delivered: false,
            };
        }
        let pad = appsink.static_pad("sink");
        *lock(&self.shared.keyframe_pad) = pad;
        let stall_timeout = self.options.stall_timeout;
        loop {
            if self.shared.stopping() {
                return Outcome::Stopped;
            }
            if let Some(message) = bus.timed_pop(BUS_POLL)
                && let Some((reason, kind)) = self.failure_in(&message, pipeline)
            {
                return Outcome::Failed {
                    reason,
                    kind,
                    delivered: stats.packets() > 0,
                };
            }
            let delivered = stats.packets() > 0;
            if delivered && self.shared.state() != CameraState::Playing {
                self.shared.set_state(CameraState::Playing);
                tracing::info!(
                    camera = %self.shared.id, source = %self.shared.source,
                    after_ms = started.elapsed().as_millis(), "camera playing"
                );
            }
            let since = stats.last_packet().unwrap_or(started);
            if since.elapsed() >= stall_timeout {
                let reason = if delivered {
                    format!("stalled: no packet for {} ms", stall_timeout.as_millis())
                } else {
                    format!(
                        "stalled: no packet within {} ms of starting",
                        stall_timeout.as_millis()
                    )
                };
                return Outcome::Failed {
                    reason,
                    kind: FailureKind::Stall,
                    delivered,
                };
            }
        }
    }

    /// Hands the camera's audio to `sink`: a test source's audio appsink now, an RTSP camera's
    /// audio branch when `rtspsrc` adds its pad.
    fn connect_audio(
        &self,
        pipeline: &gst::Pipeline,
        audio_appsink: Option<&gstreamer_app::AppSink>,
        sink: &Arc<dyn PacketSink>,
    ) {
        match (&self.source, audio_appsink) {
            (CameraSource::Test(test), Some(appsink)) => {
                if let Some(codec) = test.audio() {
                    self.shared
                        .audio_codec
                        .store(codec.to_u8(), Ordering::Release);
                }
                delivery::connect_sink(appsink, Arc::clone(sink), Arc::new(FlowStats::new()));
            }
            (CameraSource::Rtsp(_), _) => {
                if let Some(rtspsrc) = pipeline.by_name(pipeline_description::SOURCE) {
                    crate::audio::link_rtsp_audio(
                        pipeline,
                        &rtspsrc,
                        crate::audio::AudioOutput {
                            sink: Arc::clone(sink),
                            codec: Arc::clone(&self.shared.audio_codec),
                            camera: self.shared.id.clone(),
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// The failure a bus message reports, if it reports one, and its kind. Logs warnings.
    fn failure_in(
        &self,
        message: &gst::Message,
        pipeline: &gst::Pipeline,
    ) -> Option<(String, FailureKind)> {
        use gst::MessageView;
        match message.view() {
            MessageView::Error(error) => Some((
                describe_error(error.src(), &error.error(), error.debug().as_deref()),
                FailureKind::of_error(&error.error()),
            )),
            MessageView::Eos(_) => Some(("end of stream".to_owned(), FailureKind::Stream)),
            MessageView::Warning(warning) => {
                let text = describe_error(warning.src(), &warning.error(), None);
                tracing::warn!(camera = %self.shared.id, warning = %self.scrub(&text), "camera pipeline warning");
                None
            }
            MessageView::StateChanged(change)
                if change.src() == Some(pipeline.upcast_ref::<gst::Object>()) =>
            {
                tracing::debug!(
                    camera = %self.shared.id, from = ?change.old(), to = ?change.current(),
                    "camera pipeline state"
                );
                None
            }
            _ => None,
        }
    }

    /// Removes the source's secrets from text that came from GStreamer.
    fn scrub(&self, text: &str) -> String {
        match &self.source {
            CameraSource::Rtsp(rtsp) => rtsp.scrub(text),
            _ => text.to_owned(),
        }
    }

    /// Sleeps for `delay`, or less if a stop is asked (stop unparks this thread).
    fn sleep(&self, delay: Duration) {
        let deadline = Instant::now() + delay;
        while !self.shared.stopping() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::park_timeout(deadline - now);
        }
    }
}

/// The first error already posted on the bus, described, and its kind.
fn first_error(bus: &gst::Bus) -> Option<(String, FailureKind)> {
    // Bounded: the bus holds a finite number of messages and nothing waits.
    for _ in 0..64 {
        let message = bus.pop()?;
        if let gst::MessageView::Error(error) = message.view() {
            return Some((
                describe_error(error.src(), &error.error(), error.debug().as_deref()),
                FailureKind::of_error(&error.error()),
            ));
        }
    }
    None
}

/// `element: message (detail)`: the element by its factory (`rtspsrc`, `x264enc`, …), the
/// detail being the last line of GStreamer's debug text when it says more than the message.
fn describe_error(
    src: Option<&gst::Object>,
    error: &gst::glib::Error,
    debug: Option<&str>,
) -> String {
    let element = src
        .map(|object| {
            object
                .downcast_ref::<gst::Element>()
                .and_then(|element| element.factory())
                .map(|factory| factory.name().to_string())
                .unwrap_or_else(|| object.name().to_string())
        })
        .unwrap_or_else(|| "pipeline".to_owned());
    let message = error.message().trim();
    let detail = debug
        .and_then(|d| d.lines().map(str::trim).rfind(|l| !l.is_empty()))
        .filter(|d| *d != message && !d.ends_with(':'));
    match detail {
        // "Unauthorized" + "Unauthorized (401)": the detail alone says it all.
        Some(detail) if detail.starts_with(message) => format!("{element}: {detail}"),
        Some(detail) => format!("{element}: {message} ({detail})"),
        None => format!("{element}: {message}"),
    }
}

#[cfg(test)]
mod tests;
