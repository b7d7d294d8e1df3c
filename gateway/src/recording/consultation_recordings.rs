//! Consultations' recordings: made only once every participant consented and the clinician
//! started it, from the relayed RTP (no re-encode), each participant's video and audio a track of
//! its own, encrypted at rest like cameras' segments (AES-256-GCM under the box's recording key),
//! and deleted `[consultations] recording_retain_days` after the consultation's last recording.
//!
//! On disk, under `<state_dir>/consultation-recordings/` (mode 0700):
//! `<consultation id>/<participant>-video/<start>-<end>.srec` and `…-audio/…`: the segments of
//! each track, in the camera segment format; a track's name, with its consultation's id, is
//! sealed into every record of its segments, so no segment passes for another consultation's or
//! participant's. Participants appear by their id in the consultation (`p1` the clinician,
//! `p2`…): no name, no invitation label.
//!
//! A track's recorder is the cameras' [`Recorder`] on the participant's feed: segments of a
//! minute cut at keyframes, a new segment when the participant's stream restarts (a re-publish),
//! disk-full pauses, crash recovery. Stopping a recorder (its segment ended cleanly, a few
//! seconds at most) happens on a thread of its own: the signalling that asked for it does not
//! wait; [`ConsultationRecordings::stop_all`] waits for all of them.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus::IntGauge;

use super::recorder::{Recorder, RecorderSettings};
use super::recording_key::RecordingKey;
use super::segment_catalogue::{PartFiles, SegmentCatalogue, SegmentInfo};
use crate::hub::CameraFeed;
use crate::metrics::RecordingMetrics;

/// The directory under the state directory.
pub const DIR: &str = "consultation-recordings";
/// Segment length of a consultation's tracks.
const SEGMENT: Duration = Duration::from_secs(60);
/// Consultations a catalogue lists at most (old ones are deleted by retention long before).
const MAX_CONSULTATIONS: usize = 100_000;

/// A track's kind, in its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackKind {
    /// The participant's camera.
    Video,
    /// The participant's microphone.
    Audio,
}

impl TrackKind {
    /// `video` or `audio`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        }
    }
}

/// The name of a consultation's track (its directory, and what its records are sealed to).
pub fn track_name(consultation: &str, participant: &str, kind: TrackKind) -> String {
    format!("{consultation}/{participant}-{}", kind.as_str())
}

/// A track name's consultation, participant and kind.
pub fn parse_track_name(name: &str) -> Option<(&str, &str, TrackKind)> {
    let (consultation, track) = name.split_once('/')?;
    let (participant, kind) = track.rsplit_once('-')?;
    let kind = match kind {
        "video" => TrackKind::Video,
        "audio" => TrackKind::Audio,
        _ => return None,
    };
    (is_consultation_id(consultation) && is_participant_id(participant)).then_some((
        consultation,
        participant,
        kind,
    ))
}

/// True for a consultation id as the gateway makes them (32 lowercase hex digits).
pub fn is_consultation_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_participant_id(id: &str) -> bool {
    id.len() >= 2
        && id.len() <= 4
        && id.starts_with('p')
        && id[1..].bytes().all(|b| b.is_ascii_digit())
}

/// One recorded consultation, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedConsultation {
    /// Its id.
    pub id: String,
    /// Its first recorded media (unix ms).
    pub start_ms: u64,
    /// Its last recorded media (unix ms).
    pub end_ms: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Its tracks' names.
    pub tracks: Vec<String>,
    /// True while a track is being written.
    pub recording: bool,
}

/// A participant's two recorders.
struct ParticipantRecorders {
    video: Recorder,
    audio: Recorder,
}

/// The recordings of consultations, and the recorders running now.
pub struct ConsultationRecordings {
    root: PathBuf,
    key: Arc<RecordingKey>,
    catalogue: Arc<SegmentCatalogue>,
    min_free_bytes: u64,
    metrics: RecordingMetrics,
    recording_now: IntGauge,
    running: Mutex<HashMap<String, HashMap<String, ParticipantRecorders>>>,
    stopping: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ConsultationRecordings {
    /// Reads what is recorded under `<state_dir>/consultation-recordings` (made, mode 0700, when
    /// missing). `parts`: [`PartFiles::Recover`] for the daemon starting, [`PartFiles::Leave`]
    /// for a command reading while the daemon may write.
    pub fn open(
        state_dir: &Path,
        key: Arc<RecordingKey>,
        parts: PartFiles,
        min_free_bytes: u64,
        metrics: RecordingMetrics,
        recording_now: IntGauge,
    ) -> io::Result<ConsultationRecordings> {
        let root = state_dir.join(DIR);
        let catalogue = Arc::new(SegmentCatalogue::open(&root, &[], &key, parts)?);
        for consultation in std::fs::read_dir(&root)? {
            let consultation = consultation?;
            let Some(id) = consultation.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_consultation_id(&id) || !consultation.file_type()?.is_dir() {
                continue;
            }
            for track in std::fs::read_dir(consultation.path())? {
                let track = track?;
                let Some(name) = track.file_name().to_str().map(|t| format!("{id}/{t}")) else {
                    continue;
                };
                if parse_track_name(&name).is_some() {
                    catalogue.scan_camera(&name, &key, parts)?;
                }
            }
        }
        Ok(ConsultationRecordings {
            root,
            key,
            catalogue,
            min_free_bytes,
            metrics,
            recording_now,
            running: Mutex::new(HashMap::new()),
            stopping: Mutex::new(Vec::new()),
        })
    }

    /// Reads what is recorded, for a command reading while the daemon may write (no recorder
    /// runs; `.part` files are listed as they are).
    pub fn open_to_read(
        state_dir: &Path,
        key: Arc<RecordingKey>,
    ) -> io::Result<ConsultationRecordings> {
        let metrics = crate::metrics::Metrics::new();
        let detached = IntGauge::new("detached", "not exported").expect("valid metric");
        Self::open(
            state_dir,
            key,
            PartFiles::Leave,
            0,
            metrics.consultation_recording(),
            detached,
        )
    }

    /// The key its segments are sealed under.
    pub fn key(&self) -> &RecordingKey {
        &self.key
    }

    /// The segments of every track.
    pub fn catalogue(&self) -> &SegmentCatalogue {
        &self.catalogue
    }

    /// Starts recording `participant` of `consultation` from their feeds (nothing when already
    /// recorded). Logged.
    pub fn start(
        &self,
        consultation: &str,
        participant: &str,
        video: &Arc<CameraFeed>,
        audio: &Arc<CameraFeed>,
    ) -> io::Result<()> {
        let mut running = lock(&self.running);
        if running
            .get(consultation)
            .is_some_and(|p| p.contains_key(participant))
        {
            return Ok(());
        }
        let start = |kind, feed: &Arc<CameraFeed>| {
            let settings = RecorderSettings {
                camera: track_name(consultation, participant, kind),
                segment: SEGMENT,
                min_free_bytes: self.min_free_bytes,
            };
            Recorder::start(
                feed,
                settings,
                self.key.clone(),
                self.catalogue.clone(),
                self.metrics.clone(),
            )
        };
        let recorders = ParticipantRecorders {
            video: start(TrackKind::Video, video)?,
            audio: start(TrackKind::Audio, audio)?,
        };
        running
            .entry(consultation.to_owned())
            .or_default()
            .insert(participant.to_owned(), recorders);
        self.recording_now.set(running.len() as i64);
        Ok(())
    }

    /// Stops recording `participant` (their segments end cleanly, on a thread of their own).
    pub fn stop(&self, consultation: &str, participant: &str) {
        let recorders = {
            let mut running = lock(&self.running);
            let recorders = running
                .get_mut(consultation)
                .and_then(|p| p.remove(participant));
            if running.get(consultation).is_some_and(HashMap::is_empty) {
                running.remove(consultation);
            }
            self.recording_now.set(running.len() as i64);
            recorders
        };
        if let Some(recorders) = recorders {
            self.stop_in_background(vec![recorders]);
        }
    }

    /// Stops recording every participant of `consultation`.
    pub fn stop_consultation(&self, consultation: &str) {
        let recorders = {
            let mut running = lock(&self.running);
            let recorders = running.remove(consultation);
            self.recording_now.set(running.len() as i64);
            recorders
        };
        if let Some(recorders) = recorders {
            self.stop_in_background(recorders.into_values().collect());
        }
    }

    /// True while some participant of `consultation` is being recorded.
    pub fn is_recording(&self, consultation: &str) -> bool {
        lock(&self.running).contains_key(consultation)
    }

    fn stop_in_background(&self, recorders: Vec<ParticipantRecorders>) {
        let stop = move || {
            for recorders in recorders {
                recorders.video.stop();
                recorders.audio.stop();
            }
        };
        let mut stopping = lock(&self.stopping);
        stopping.retain(|thread| !thread.is_finished());
        match std::thread::Builder::new()
            .name("record-stop".into())
            .spawn(stop)
        {
            Ok(thread) => stopping.push(thread),
            Err(e) => {
                tracing::error!(error = %e, "no thread to stop a consultation's recorders: they stop when dropped");
            }
        }
    }

    /// Stops every recorder and waits until all have ended their segments (the daemon stopping).
    pub fn stop_all(&self) {
        let all: Vec<String> = lock(&self.running).keys().cloned().collect();
        for consultation in all {
            self.stop_consultation(&consultation);
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.stopping).drain(..).collect();
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a consultation recorder panicked while stopping");
            }
        }
    }

    /// The recorded consultations, oldest first.
    pub fn list(&self) -> Vec<RecordedConsultation> {
        let mut by_id: HashMap<String, RecordedConsultation> = HashMap::new();
        for track in self.catalogue.cameras() {
            let Some((id, _, _)) = parse_track_name(&track) else {
                continue;
            };
            let segments = self.catalogue.segments(&track);
            if segments.is_empty() {
                continue;
            }
            let entry = by_id
                .entry(id.to_owned())
                .or_insert_with(|| RecordedConsultation {
                    id: id.to_owned(),
                    start_ms: u64::MAX,
                    end_ms: 0,
                    bytes: 0,
                    tracks: Vec::new(),
                    recording: false,
                });
            entry.start_ms = entry.start_ms.min(segments[0].start_ms);
            entry.end_ms = entry
                .end_ms
                .max(segments.iter().map(|s| s.end_ms).max().unwrap_or(0));
            entry.bytes += segments.iter().map(|s| s.bytes).sum::<u64>();
            entry.recording |= segments.iter().any(|s| s.recording);
            entry.tracks.push(track);
        }
        let mut list: Vec<RecordedConsultation> = by_id.into_values().collect();
        list.sort_by_key(|c| (c.start_ms, c.id.clone()));
        list.truncate(MAX_CONSULTATIONS);
        list
    }

    /// A consultation's tracks and their segments, by track name.
    pub fn tracks(&self, consultation: &str) -> Vec<(String, Vec<SegmentInfo>)> {
        let prefix = format!("{consultation}/");
        self.catalogue
            .cameras()
            .into_iter()
            .filter(|t| t.starts_with(&prefix))
            .map(|t| {
                let segments = self.catalogue.segments(&t);
                (t, segments)
            })
            .filter(|(_, segments)| !segments.is_empty())
            .collect()
    }

    /// Deletes the recordings of consultations not recorded now whose last media is older than
    /// `retain`; returns their ids (for the audit log). Blocking (file deletions).
    pub fn sweep(&self, now_ms: u64, retain: Duration) -> Vec<String> {
        let retain_ms = retain.as_millis() as u64;
        let mut deleted = Vec::new();
        for consultation in self.list() {
            if consultation.recording
                || self.is_recording(&consultation.id)
                || consultation.end_ms.saturating_add(retain_ms) > now_ms
            {
                continue;
            }
            let dir = self.root.join(&consultation.id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(consultation = %short(&consultation.id), error = %e, "retention could not delete a consultation's recording");
                    continue;
                }
            }
            for track in &consultation.tracks {
                self.catalogue.forget_camera(track);
            }
            tracing::info!(consultation = %short(&consultation.id), "retention deleted a consultation's recording");
            deleted.push(consultation.id);
        }
        deleted
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Publishes 2 s of a participant's video (H.264, 60 frames) and audio (Opus, 100 packets) into
/// their feeds, faster than real time.
#[cfg(test)]
pub(crate) fn publish_test_media(video: &CameraFeed, audio: &CameraFeed) {
    let clip = straja_pipelines::h264_rtp_clip(60, 30).unwrap();
    let mut sound = straja_pipelines::opus_rtp_clip(100).unwrap().into_iter();
    for (packet, _) in clip {
        video.publish(packet);
        for _ in 0..2 {
            if let Some((packet, _)) = sound.next() {
                audio.publish(packet);
            }
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn track_names_round_trip_and_refuse_what_is_not_one() {
        let id = "0123456789abcdef0123456789abcdef";
        let name = track_name(id, "p2", TrackKind::Audio);
        assert_eq!(parse_track_name(&name), Some((id, "p2", TrackKind::Audio)));
        for bad in [
            "0123/p2-video",
            &format!("{id}/p2-subtitles"),
            &format!("{id}/../p2-video"),
            &format!("{id}/Maria-video"),
            &format!("{id}/p2video"),
        ] {
            assert_eq!(parse_track_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_participant_is_recorded_on_two_tracks_that_retention_deletes_together() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(RecordingKey::from_bytes(&[7u8; 32], PathBuf::from("k")).unwrap());
        let metrics = Metrics::new();
        let recordings = ConsultationRecordings::open(
            dir.path(),
            key.clone(),
            PartFiles::Recover,
            0,
            metrics.consultation_recording(),
            metrics.consultation_recordings.clone(),
        )
        .unwrap();
        let id = "00112233445566778899aabbccddeeff";
        let video = CameraFeed::new("p2", metrics.consultation_media());
        let audio = CameraFeed::audio("p2", metrics.consultation_media());
        recordings.start(id, "p2", &video, &audio).unwrap();
        assert_eq!(metrics.consultation_recordings.get(), 1);
        publish_test_media(&video, &audio);
        recordings.stop(id, "p2");
        assert_eq!(metrics.consultation_recordings.get(), 0);
        recordings.stop_all();

        let tracks = recordings.tracks(id);
        let names: Vec<&str> = tracks.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            names,
            [format!("{id}/p2-audio"), format!("{id}/p2-video")],
            "a track each"
        );
        assert!(tracks.iter().all(|(_, s)| !s.is_empty() && !s[0].recording));
        let listed = recordings.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert!(listed[0].bytes > 0);

        // Read again, as the export command does.
        let again = ConsultationRecordings::open_to_read(dir.path(), key).unwrap();
        assert_eq!(again.tracks(id).len(), 2);

        let end = listed[0].end_ms;
        assert!(
            recordings
                .sweep(end + 1000, Duration::from_secs(3600))
                .is_empty(),
            "kept within its retention"
        );
        assert_eq!(
            recordings.sweep(end + 3_601_000, Duration::from_secs(3600)),
            [id.to_owned()]
        );
        assert!(recordings.list().is_empty());
        assert!(!dir.path().join(DIR).join(id).exists());
    }
}
