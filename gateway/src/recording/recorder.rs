//! One camera's recorder: takes the camera's packets from the hub (a bounded queue, like a
//! viewer's: a slow disk never slows the camera or its viewers), cuts them into segments at
//! keyframes, muxes each to fragmented MP4 and appends it encrypted to its segment file.
//!
//! A thread of its own (`record-<camera>`) owns the muxer and the file; nothing else touches them.
//! Segments start at a keyframe and end at the first keyframe after `segment` (the camera is
//! asked for one then), when the camera's stream restarts (new SSRC) or stalls, and on stop.
//! Every fragment (about 1 s) is written as soon as the muxer has it, and synced to disk once a
//! second: a crash loses at most the fragment being muxed.
//!
//! A full disk (free space under `min_free_bytes`, or a write failing with ENOSPC) ends the
//! segment cleanly where it can (or cuts it back to its last whole record), sets the state to
//! `disk_full`, logs and counts it; recording resumes at the next keyframe once twice that space
//! is free again. Live view is not affected either way.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use straja_pipelines::{FragmentedMp4Muxer, TrackCodec};

use super::disk_space;
use super::recording_key::RecordingKey;
use super::segment_catalogue::{SegmentCatalogue, SegmentInfo, finished_name, part_name};
use super::segment_file::{self, SegmentReader, SegmentWriter};
use crate::hub::{Attachment, CameraFeed, MediaPacket, MediaSink};
use crate::metrics::RecordingMetrics;

/// Packets the recorder's queue holds (about 15 s of a 2 Mbit/s camera).
const QUEUE_PACKETS: usize = 4096;
/// The muxer cuts a fragment this often: what a crash can lose at most.
const FRAGMENT: Duration = Duration::from_secs(1);
/// How often written fragments are synced to disk, free space checked and the catalogue updated.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// A camera silent for this long ends its segment (it resumes in a new one).
const STALL: Duration = Duration::from_secs(3);
/// After a write error other than a full disk, recording is retried after this long.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);
/// Bound on ending a segment (the muxer's last fragment).
const FINISH_TIMEOUT: Duration = Duration::from_secs(3);

/// What a camera's recorder is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecorderState {
    /// Waiting for a keyframe to start a segment (or for the camera).
    Waiting,
    /// Writing a segment.
    Recording,
    /// Paused: the disk is (nearly) full.
    DiskFull,
    /// Paused after a write or muxer error; retried shortly.
    Failed,
    /// Stopped.
    Stopped,
}

impl RecorderState {
    /// `waiting`, `recording`, `disk_full`, `failed` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecorderState::Waiting => "waiting",
            RecorderState::Recording => "recording",
            RecorderState::DiskFull => "disk_full",
            RecorderState::Failed => "failed",
            RecorderState::Stopped => "stopped",
        }
    }

    fn from_u8(value: u8) -> RecorderState {
        match value {
            0 => RecorderState::Waiting,
            1 => RecorderState::Recording,
            2 => RecorderState::DiskFull,
            3 => RecorderState::Failed,
            _ => RecorderState::Stopped,
        }
    }
}

/// How a camera is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecorderSettings {
    /// The camera.
    pub camera: String,
    /// Segment length (segments end at the first keyframe after it).
    pub segment: Duration,
    /// Recording pauses when the recordings' filesystem has less free space than this.
    pub min_free_bytes: u64,
}

/// The recorder's queue in the camera's fan-out.
struct RecorderQueue {
    queue: SyncSender<MediaPacket>,
    metrics: RecordingMetrics,
}

impl MediaSink for RecorderQueue {
    fn offer(&self, packet: &MediaPacket) -> bool {
        match self.queue.try_send(packet.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.metrics.dropped_packets.inc();
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// A running recorder; stops (ending its segment cleanly) on [`Recorder::stop`] or drop.
pub struct Recorder {
    camera: String,
    state: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    attachment: Mutex<Option<Attachment>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Starts recording `feed`'s camera into `catalogue`'s directory for it.
    pub fn start(
        feed: &Arc<CameraFeed>,
        settings: RecorderSettings,
        key: Arc<RecordingKey>,
        catalogue: Arc<SegmentCatalogue>,
        metrics: RecordingMetrics,
    ) -> io::Result<Recorder> {
        let (queue, packets) = mpsc::sync_channel(QUEUE_PACKETS);
        let state = Arc::new(AtomicU8::new(RecorderState::Waiting as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            dir: catalogue.camera_dir(&settings.camera),
            settings: settings.clone(),
            key,
            catalogue,
            feed: feed.clone(),
            metrics: metrics.clone(),
            state: state.clone(),
            stop: stop.clone(),
            packets,
            current: None,
            paused: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("record-{}", settings.camera))
            .spawn(move || worker.run())?;
        let attachment = feed.attach(Arc::new(RecorderQueue { queue, metrics }));
        Ok(Recorder {
            camera: settings.camera,
            state,
            stop,
            attachment: Mutex::new(Some(attachment)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// What the recorder is doing.
    pub fn state(&self) -> RecorderState {
        RecorderState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Ends the current segment cleanly (every finished segment playable) and stops. Idempotent;
    /// blocks for the muxer's last fragment (bounded, a few seconds at most).
    pub fn stop(&self) {
        let attachment = self
            .attachment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(attachment);
        self.stop.store(true, Ordering::Release);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!(camera = %self.camera, "the recorder thread panicked");
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The segment being written.
struct OpenSegment {
    muxer: FragmentedMp4Muxer,
    writer: SegmentWriter,
    start_ms: u64,
    epoch: u32,
    /// The track's RTP clock rate.
    clock_rate: u64,
    /// The first packet's RTP timestamp, extended to 64 bits.
    first_ts: i64,
    /// The last packet's RTP timestamp, and extended.
    last_ts: u32,
    last_ext_ts: i64,
    /// Media time of the last packet from the segment's start.
    media: Duration,
    pending: Vec<u8>,
    last_housekeeping: Instant,
    last_packet: Instant,
    keyframe_requested: bool,
}

impl OpenSegment {
    /// Media time from the segment's start of a packet with RTP timestamp `ts`.
    fn media_of(&self, ts: u32) -> Duration {
        let ext = self.last_ext_ts + i64::from(ts.wrapping_sub(self.last_ts) as i32);
        let ticks = (ext - self.first_ts).max(0) as u64;
        Duration::from_micros(ticks * 1_000_000 / self.clock_rate)
    }

    fn until_ms(&self) -> u64 {
        self.start_ms + self.media.as_millis() as u64
    }

    fn info(&self, camera: &str, recording: bool, path: PathBuf) -> SegmentInfo {
        SegmentInfo {
            camera: camera.to_owned(),
            start_ms: self.start_ms,
            end_ms: self.until_ms(),
            bytes: self.writer.file_bytes(),
            recording,
            path,
        }
    }
}

/// Why recording paused, and until when.
#[derive(Clone, Copy)]
enum Pause {
    DiskFull { next_check: Instant },
    Error { retry_at: Instant },
}

/// Why a segment ended early or could not go on.
enum Failure {
    DiskFull(String),
    Write(String),
    Muxer(String),
}

struct Worker {
    settings: RecorderSettings,
    dir: PathBuf,
    key: Arc<RecordingKey>,
    catalogue: Arc<SegmentCatalogue>,
    feed: Arc<CameraFeed>,
    metrics: RecordingMetrics,
    state: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    packets: Receiver<MediaPacket>,
    current: Option<OpenSegment>,
    paused: Option<Pause>,
}

/// The wall-clock time (unix ms) of a past instant.
fn unix_ms(at: Instant) -> u64 {
    super::now_ms().saturating_sub(at.elapsed().as_millis() as u64)
}

impl Worker {
    fn set_state(&self, state: RecorderState) {
        self.state.store(state as u8, Ordering::Relaxed);
        self.metrics
            .up
            .set(i64::from(state == RecorderState::Recording));
    }

    fn run(mut self) {
        tracing::info!(camera = %self.settings.camera, segment_seconds = self.settings.segment.as_secs(), "recording");
        self.set_state(RecorderState::Waiting);
        // The first segment starts at a keyframe: ask for one rather than wait for the next.
        self.feed.request_keyframe();
        while !self.stop.load(Ordering::Acquire) {
            match self.packets.recv_timeout(Duration::from_millis(100)) {
                Ok(packet) => self.on_packet(packet),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.housekeeping();
        }
        // What is still queued was recorded by the camera before the stop: keep it.
        while let Ok(packet) = self.packets.try_recv() {
            if self.current.is_none() {
                break;
            }
            self.on_packet(packet);
        }
        self.finish_segment("stop");
        self.set_state(RecorderState::Stopped);
        tracing::info!(camera = %self.settings.camera, "recording stopped");
    }

    fn on_packet(&mut self, packet: MediaPacket) {
        if self.paused.is_some() {
            return;
        }
        let new_frame = |segment: &OpenSegment| packet.header.timestamp != segment.last_ts;
        if let Some(segment) = &self.current {
            if packet.epoch != segment.epoch {
                self.finish_segment("the camera's stream restarted");
            } else if segment.media_of(packet.header.timestamp) >= self.settings.segment {
                if packet.keyframe_start && new_frame(segment) {
                    self.finish_segment("segment length reached");
                } else if !segment.keyframe_requested {
                    self.feed.request_keyframe();
                    if let Some(segment) = &mut self.current {
                        segment.keyframe_requested = true;
                    }
                }
            }
        }
        if self.current.is_none() {
            if !packet.keyframe_start {
                return;
            }
            if let Err(failure) = self.start_segment(&packet) {
                self.fail(failure);
                return;
            }
        }
        if let Err(failure) = self.write(packet) {
            self.fail(failure);
        }
    }

    fn start_segment(&mut self, packet: &MediaPacket) -> Result<(), Failure> {
        let free = disk_space::available_bytes(self.catalogue_root()).unwrap_or(u64::MAX);
        if free < self.settings.min_free_bytes {
            return Err(Failure::DiskFull(format!(
                "{free} bytes free, under min_free_bytes ({})",
                self.settings.min_free_bytes
            )));
        }
        create_private_dir(&self.dir).map_err(|e| classify(&e))?;
        let mut start_ms = unix_ms(packet.arrived);
        // Two segments never share a start (and so an id): a restart within the same millisecond.
        while self.dir.join(part_name(start_ms)).exists()
            || self
                .catalogue
                .get(&format!("{}.{start_ms}", self.settings.camera))
                .is_some()
        {
            start_ms += 1;
        }
        let path = self.dir.join(part_name(start_ms));
        let writer = SegmentWriter::create(&path, &self.key, &self.settings.camera, start_ms)
            .map_err(|e| classify(&e))?;
        let codec = self.codec();
        let muxer = match FragmentedMp4Muxer::start(FRAGMENT, codec) {
            Ok(muxer) => muxer,
            Err(e) => {
                drop(writer);
                let _ = std::fs::remove_file(&path);
                return Err(Failure::Muxer(e.to_string()));
            }
        };
        let ts = i64::from(packet.header.timestamp);
        let segment = OpenSegment {
            muxer,
            writer,
            start_ms,
            epoch: packet.epoch,
            clock_rate: u64::from(codec.clock_rate()),
            first_ts: ts,
            last_ts: packet.header.timestamp,
            last_ext_ts: ts,
            media: Duration::ZERO,
            pending: Vec::with_capacity(512 * 1024),
            last_housekeeping: Instant::now(),
            last_packet: Instant::now(),
            keyframe_requested: false,
        };
        self.catalogue
            .upsert(segment.info(&self.settings.camera, true, path));
        self.current = Some(segment);
        self.set_state(RecorderState::Recording);
        tracing::debug!(camera = %self.settings.camera, start_ms, "segment started");
        Ok(())
    }

    /// What the feed carries: its video codec, or Opus for an audio feed (a consultation
    /// participant's; cameras' audio is not recorded).
    fn codec(&self) -> TrackCodec {
        if self.feed.is_audio() {
            TrackCodec::Opus
        } else {
            self.feed.video_codec().into()
        }
    }

    fn catalogue_root(&self) -> &std::path::Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    fn write(&mut self, packet: MediaPacket) -> Result<(), Failure> {
        let Some(segment) = &mut self.current else {
            return Ok(());
        };
        let pts = segment.media_of(packet.header.timestamp);
        segment.last_ext_ts +=
            i64::from(packet.header.timestamp.wrapping_sub(segment.last_ts) as i32);
        segment.last_ts = packet.header.timestamp;
        segment.last_packet = Instant::now();
        segment.media = segment.media.max(pts);
        segment
            .muxer
            .push(packet.data, pts)
            .map_err(|e| Failure::Muxer(e.to_string()))?;
        while let Some(bytes) = segment.muxer.pull() {
            segment.pending.extend_from_slice(&bytes);
        }
        if !segment.pending.is_empty() {
            let until = segment.until_ms();
            segment
                .writer
                .append(&segment.pending, until)
                .map_err(|e| classify(&e))?;
            self.metrics
                .bytes_written
                .inc_by(segment.pending.len() as u64);
            segment.pending.clear();
        }
        Ok(())
    }

    /// Once a second: sync, check the free space, update the catalogue; end a stalled segment;
    /// resume after a pause.
    fn housekeeping(&mut self) {
        if let Some(pause) = self.paused {
            self.check_resume(pause);
            return;
        }
        let Some(segment) = &mut self.current else {
            return;
        };
        if segment.last_packet.elapsed() >= STALL {
            self.finish_segment("the camera went silent");
            return;
        }
        if segment.last_housekeeping.elapsed() < HOUSEKEEPING {
            return;
        }
        segment.last_housekeeping = Instant::now();
        if let Err(e) = segment.writer.sync() {
            let failure = classify(&e);
            self.fail(failure);
            return;
        }
        let path = segment.writer.path().to_owned();
        let info = segment.info(&self.settings.camera, true, path);
        self.catalogue.upsert(info);
        let free = disk_space::available_bytes(self.catalogue_root()).unwrap_or(u64::MAX);
        self.metrics
            .disk_free_bytes
            .set(free.min(i64::MAX as u64) as i64);
        if free < self.settings.min_free_bytes {
            tracing::error!(
                camera = %self.settings.camera, free_bytes = free,
                min_free_bytes = self.settings.min_free_bytes,
                "the recordings' disk is nearly full: recording paused (live view goes on); it \
                 resumes when space is freed"
            );
            self.finish_segment("the disk is nearly full");
            self.pause_for_disk();
        }
    }

    fn pause_for_disk(&mut self) {
        self.metrics.count_failure("disk_full");
        self.paused = Some(Pause::DiskFull {
            next_check: Instant::now() + HOUSEKEEPING,
        });
        self.set_state(RecorderState::DiskFull);
    }

    fn check_resume(&mut self, pause: Pause) {
        match pause {
            Pause::DiskFull { next_check } => {
                if Instant::now() < next_check {
                    return;
                }
                let free = disk_space::available_bytes(self.catalogue_root()).unwrap_or(0);
                self.metrics
                    .disk_free_bytes
                    .set(free.min(i64::MAX as u64) as i64);
                if free >= self.settings.min_free_bytes.saturating_mul(2) {
                    tracing::info!(camera = %self.settings.camera, free_bytes = free, "space is back: recording resumes at the next keyframe");
                    self.resume();
                } else {
                    self.paused = Some(Pause::DiskFull {
                        next_check: Instant::now() + HOUSEKEEPING,
                    });
                }
            }
            Pause::Error { retry_at } => {
                if Instant::now() >= retry_at {
                    self.resume();
                }
            }
        }
    }

    fn resume(&mut self) {
        self.paused = None;
        // Packets queued during the pause are stale: start from a fresh keyframe.
        while self.packets.try_recv().is_ok() {}
        self.set_state(RecorderState::Waiting);
        self.feed.request_keyframe();
    }

    /// A segment could not go on: keep what it has, count, pause.
    fn fail(&mut self, failure: Failure) {
        let (reason, detail) = match &failure {
            Failure::DiskFull(d) => ("disk_full", d.as_str()),
            Failure::Write(d) => ("write_error", d.as_str()),
            Failure::Muxer(d) => ("muxer_error", d.as_str()),
        };
        tracing::error!(
            camera = %self.settings.camera, reason, error = %detail,
            "recording stopped (live view goes on)"
        );
        if let Some(segment) = self.current.take() {
            // The muxer's state is no longer trusted: drop it and cut the file back to its last
            // whole record.
            let OpenSegment {
                muxer,
                writer,
                start_ms,
                ..
            } = segment;
            drop(muxer);
            let path = writer.path().to_owned();
            drop(writer);
            self.close_cut_short(&path, start_ms);
        }
        match failure {
            Failure::DiskFull(_) => self.pause_for_disk(),
            Failure::Write(_) | Failure::Muxer(_) => {
                self.metrics.count_failure(reason);
                self.paused = Some(Pause::Error {
                    retry_at: Instant::now() + RETRY_AFTER_ERROR,
                });
                self.set_state(RecorderState::Failed);
            }
        }
    }

    /// Recovers a segment whose writing failed and files it under its finished name.
    /// A segment cut before its first fragment holds no video: it is removed, not listed.
    fn close_cut_short(&mut self, path: &std::path::Path, start_ms: u64) {
        match segment_file::recover(path, &self.key, &self.settings.camera) {
            Ok(_) if !self.holds_video(path) => {
                let _ = std::fs::remove_file(path);
                self.catalogue.remove(&self.settings.camera, start_ms);
                tracing::debug!(camera = %self.settings.camera, start_ms, "a segment cut before its first fragment was discarded (it held no video)");
            }
            Ok(recovered) => self.file_finished(path, start_ms, recovered.end_ms, recovered.bytes),
            Err(e) => {
                tracing::error!(camera = %self.settings.camera, error = %e, "a segment cut short could not be closed");
            }
        }
    }

    /// True when a segment file holds at least one movie fragment (`moof`), that is, media.
    fn holds_video(&self, path: &std::path::Path) -> bool {
        let Ok(reader) = SegmentReader::open(path, &self.key, &self.settings.camera) else {
            return false;
        };
        let Ok(mp4) = reader.read_all() else {
            // Unreadable is not the same as empty: keep it for an operator to look at.
            return true;
        };
        let mut offset = 0usize;
        while let Some(header) = mp4.get(offset..offset + 8) {
            if &header[4..8] == b"moof" {
                return true;
            }
            let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            if size < 8 {
                break;
            }
            offset += size;
        }
        false
    }

    /// Renames a closed segment to its finished name and lists it as finished.
    fn file_finished(&mut self, path: &std::path::Path, start_ms: u64, end_ms: u64, bytes: u64) {
        let finished = path.with_file_name(finished_name(start_ms, end_ms));
        let path = match std::fs::rename(path, &finished) {
            Ok(()) => finished,
            Err(e) => {
                tracing::error!(camera = %self.settings.camera, error = %e, "a finished segment could not be renamed");
                path.to_owned()
            }
        };
        self.catalogue.upsert(SegmentInfo {
            camera: self.settings.camera.clone(),
            start_ms,
            end_ms,
            bytes,
            recording: false,
            path,
        });
        self.metrics.segments.inc();
    }

    /// Ends the current segment cleanly: the muxer's last fragment, the end record, the rename.
    fn finish_segment(&mut self, why: &str) {
        let Some(segment) = self.current.take() else {
            return;
        };
        let OpenSegment {
            muxer,
            mut writer,
            start_ms,
            media,
            ..
        } = segment;
        let end_ms = start_ms + media.as_millis() as u64 + 33;
        let path = writer.path().to_owned();
        let mut result = muxer
            .finish(FINISH_TIMEOUT)
            .map_err(|e| Failure::Muxer(e.to_string()))
            .and_then(|rest| {
                let rest = rest.concat();
                writer
                    .append(&rest, end_ms)
                    .map_err(|e| classify(&e))
                    .map(|()| self.metrics.bytes_written.inc_by(rest.len() as u64))
            });
        if result.is_ok() {
            result = writer.finish(end_ms).map(|_| ()).map_err(|e| classify(&e));
        } else {
            drop(writer);
        }
        match result {
            Ok(()) => {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                self.file_finished(&path, start_ms, end_ms, bytes);
                tracing::debug!(camera = %self.settings.camera, start_ms, end_ms, why, "segment finished");
            }
            Err(failure) => {
                self.close_cut_short(&path, start_ms);
                if matches!(failure, Failure::DiskFull(_)) && self.paused.is_none() {
                    self.pause_for_disk();
                }
            }
        }
        if self.paused.is_none() {
            self.set_state(RecorderState::Waiting);
        }
    }
}

fn classify(error: &io::Error) -> Failure {
    if disk_space::is_disk_full(error) {
        Failure::DiskFull(error.to_string())
    } else {
        Failure::Write(error.to_string())
    }
}

fn create_private_dir(dir: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::recording::segment_catalogue::PartFiles;
    use bytes::Bytes;

    #[test]
    fn a_camera_is_cut_into_segments_at_keyframes_that_decrypt_and_play() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(RecordingKey::from_bytes(&[5u8; 32], PathBuf::from("k")).unwrap());
        let catalogue = Arc::new(
            SegmentCatalogue::open(dir.path(), &["gate".to_owned()], &key, PartFiles::Recover)
                .unwrap(),
        );
        let metrics = Metrics::new();
        let feed = CameraFeed::new("gate", metrics.camera("gate"));
        let settings = RecorderSettings {
            camera: "gate".into(),
            segment: Duration::from_secs(2),
            min_free_bytes: 0,
        };
        let recording_metrics = metrics.recording("gate");
        let recorder = Recorder::start(
            &feed,
            settings,
            key.clone(),
            catalogue.clone(),
            recording_metrics.clone(),
        )
        .unwrap();
        // 5 s of video with a keyframe every second, as fast as the recorder takes it.
        let clip = straja_pipelines::h264_rtp_clip(150, 30).unwrap();
        for (packet, _) in clip {
            feed.publish(packet);
            std::thread::sleep(Duration::from_micros(200));
        }
        recorder.stop();
        assert_eq!(recorder.state(), RecorderState::Stopped);

        let segments = catalogue.segments("gate");
        assert_eq!(segments.len(), 3, "{segments:?}");
        assert_eq!(recording_metrics.segments.get(), 3);
        let mut frames = 0;
        for segment in &segments {
            assert!(!segment.recording);
            assert!(segment.path.to_string_lossy().ends_with(".srec"));
            let reader = SegmentReader::open(&segment.path, &key, "gate").unwrap();
            assert!(reader.is_complete());
            let mp4 = reader.read_all().unwrap();
            let samples =
                straja_pipelines::demux_segment(Bytes::from(mp4), Duration::from_secs(10)).unwrap();
            assert!(
                samples.samples[0].keyframe,
                "a segment starts at a keyframe"
            );
            frames += samples.samples.len();
        }
        assert_eq!(frames, 150, "every frame is in exactly one segment");
    }
}
