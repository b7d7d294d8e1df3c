//! A consultation's recording as one playable MP4 file (`straja recordings export --consultation
//! ID`): every participant's video and audio a track of its own, on one timeline that starts
//! with the first recorded media; a participant who joined later starts later in the file, one
//! who dropped out has a gap there. No re-encode.
//!
//! The segments of every track are decrypted and demuxed one at a time per track (memory: one
//! segment of each), and their samples written in time order across tracks, each track one
//! sample ahead, as the muxer needs ([`MultiTrackMp4Export`]). A track's times come from its
//! segments' wall-clock starts and, within a segment, from the RTP timestamps: participants stay
//! in step to within the network's jitter.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use straja_pipelines::{
    MAX_TRACKS, MediaSample, MultiTrackMp4Export, TrackCodec, TrackSpec, demux_segment,
};

use super::consultation_recordings::{ConsultationRecordings, TrackKind, parse_track_name};
use super::recording_key::RecordingKey;
use super::segment_catalogue::SegmentInfo;
use super::segment_file::SegmentReader;

/// Bound on reading one segment, and on writing the file's index at the end.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// Most segments one export reads (a 12 h consultation of 4 in one-minute segments, and more).
const MAX_SEGMENTS: usize = 8 * 12 * 60 + 1000;

/// Why a consultation's recording could not be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsultationExportError {
    /// No recording of that consultation on this box (never recorded, or deleted by retention).
    #[error("no recording of consultation {0} on this box (never recorded, or past its retention)")]
    NotFound(String),
    /// More tracks or segments than one export takes.
    #[error("the recording has more {0} than one export takes")]
    TooLarge(&'static str),
    /// A segment could not be read (damaged, altered, another key).
    #[error("segment {segment}: {source}")]
    Segment {
        /// The segment.
        segment: String,
        /// Why.
        source: super::segment_file::SegmentError,
    },
    /// GStreamer could not demux or write.
    #[error("{0}")]
    Pipeline(#[from] straja_pipelines::PipelineError),
    /// The output file could not be written.
    #[error("{path}: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One track of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedTrack {
    /// The participant (`p1` the clinician, `p2`…).
    pub participant: String,
    /// What it carries.
    pub codec: &'static str,
    /// Samples written (video frames, audio packets).
    pub samples: usize,
    /// Where it starts in the file.
    pub start: Duration,
    /// Where it ends in the file.
    pub end: Duration,
}

/// What an export holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsultationExportReport {
    /// Its tracks, in the file's order.
    pub tracks: Vec<ExportedTrack>,
    /// Segments read.
    pub segments: usize,
    /// The file's duration.
    pub duration: Duration,
    /// Wall time of its start (unix ms).
    pub first_ms: u64,
}

/// One track being read: its segments still to read, the samples of the one read, and the
/// sample to write next, on the file's timeline.
struct TrackCursor {
    name: String,
    segments: VecDeque<SegmentInfo>,
    samples: VecDeque<MediaSample>,
    /// The current segment's place on the timeline, and its first sample's times.
    offset: Duration,
    base_pts: Duration,
    base_dts: Duration,
    next: Option<(MediaSample, Duration, Duration)>,
    /// The timeline decoding time of the last sample written (None: none yet).
    last_dts: Option<Duration>,
    codec: Option<(TrackCodec, String)>,
    frame: Duration,
    report: ExportedTrack,
}

impl TrackCursor {
    /// Makes `next` the track's next sample (reading segments as needed; `None` at its end).
    fn advance(
        &mut self,
        key: &RecordingKey,
        origin_ms: u64,
        segments_read: &mut usize,
    ) -> Result<(), ConsultationExportError> {
        loop {
            if let Some(sample) = self.samples.pop_front() {
                let mut pts = self.offset + sample.pts.saturating_sub(self.base_pts);
                let mut dts = self.offset + sample.dts.saturating_sub(self.base_dts);
                // Wall-clock segment starts can overlap the previous segment by a few ms:
                // decoding times only go forward within a track.
                if let Some(last) = self.last_dts
                    && dts <= last
                {
                    dts = last + Duration::from_millis(1);
                }
                pts = pts.max(dts);
                self.next = Some((sample, pts, dts));
                return Ok(());
            }
            let Some(segment) = self.segments.pop_front() else {
                self.next = None;
                return Ok(());
            };
            *segments_read += 1;
            let read_error = |source| ConsultationExportError::Segment {
                segment: segment.id(),
                source,
            };
            let reader = SegmentReader::open(&segment.path, key, &self.name).map_err(read_error)?;
            let demuxed = demux_segment(
                Bytes::from(reader.read_all().map_err(read_error)?),
                STEP_TIMEOUT,
            )?;
            let Some(first) = demuxed.samples.first() else {
                continue;
            };
            if self.codec.is_none() {
                self.codec = Some((demuxed.codec, demuxed.caps.clone()));
                self.report.codec = demuxed.codec.as_str();
            }
            self.base_pts = first.pts;
            self.base_dts = first.dts.min(first.pts);
            self.offset = Duration::from_millis(reader.start_ms().saturating_sub(origin_ms));
            self.frame = match demuxed.samples.as_slice() {
                [.., a, b] if b.pts > a.pts => b.pts - a.pts,
                _ => Duration::from_millis(20),
            };
            self.samples = demuxed.samples.into();
        }
    }
}

/// Writes `consultation`'s recording into `out` (through a temporary file next to it, renamed
/// when complete).
pub fn export(
    recordings: &ConsultationRecordings,
    consultation: &str,
    out: &Path,
) -> Result<ConsultationExportReport, ConsultationExportError> {
    let tracks = recordings.tracks(consultation);
    if tracks.is_empty() {
        return Err(ConsultationExportError::NotFound(consultation.to_owned()));
    }
    if tracks.len() > MAX_TRACKS {
        return Err(ConsultationExportError::TooLarge("tracks"));
    }
    if tracks.iter().map(|(_, s)| s.len()).sum::<usize>() > MAX_SEGMENTS {
        return Err(ConsultationExportError::TooLarge("segments"));
    }
    let origin_ms = tracks
        .iter()
        .filter_map(|(_, s)| s.first().map(|s| s.start_ms))
        .min()
        .unwrap_or(0);
    let key = recordings.key();
    let mut segments_read = 0;
    let mut cursors = Vec::new();
    // Video before audio, participant by participant.
    let mut ordered = tracks;
    ordered.sort_by_key(|(name, _)| {
        parse_track_name(name).map(|(_, p, kind)| (p.to_owned(), kind == TrackKind::Audio))
    });
    for (name, segments) in ordered {
        let participant = parse_track_name(&name)
            .map(|(_, p, _)| p.to_owned())
            .unwrap_or_default();
        let mut cursor = TrackCursor {
            name,
            segments: segments.into(),
            samples: VecDeque::new(),
            offset: Duration::ZERO,
            base_pts: Duration::ZERO,
            base_dts: Duration::ZERO,
            next: None,
            last_dts: None,
            codec: None,
            frame: Duration::ZERO,
            report: ExportedTrack {
                participant,
                codec: "",
                samples: 0,
                start: Duration::ZERO,
                end: Duration::ZERO,
            },
        };
        cursor.advance(key, origin_ms, &mut segments_read)?;
        if cursor.next.is_some() {
            cursors.push(cursor);
        }
    }
    let specs: Vec<TrackSpec> = cursors
        .iter()
        .filter_map(|c| c.codec.clone())
        .map(|(codec, caps)| TrackSpec { codec, caps })
        .collect();
    if specs.is_empty() {
        return Err(ConsultationExportError::NotFound(consultation.to_owned()));
    }
    let temporary = out.with_extension("mp4.part");
    let mut writer = MultiTrackMp4Export::create(&temporary, &specs)?;
    let result = (|| {
        // The track whose last written sample is the earliest (one not started yet first) gets
        // its next sample: every track keeps one queued ahead of the muxer.
        while let Some(index) = cursors
            .iter()
            .enumerate()
            .filter(|(_, c)| c.next.is_some())
            .min_by_key(|(i, c)| (c.last_dts, *i))
            .map(|(i, _)| i)
        {
            let cursor = &mut cursors[index];
            let Some((sample, pts, dts)) = cursor.next.take() else {
                break;
            };
            writer.push(index, &sample, pts, dts)?;
            if cursor.report.samples == 0 {
                cursor.report.start = pts;
            }
            cursor.report.samples += 1;
            cursor.report.end = cursor.report.end.max(pts + cursor.frame);
            cursor.last_dts = Some(dts);
            cursor.advance(key, origin_ms, &mut segments_read)?;
            if cursor.next.is_none() {
                writer.end_track(index);
            }
        }
        writer.finish(STEP_TIMEOUT)?;
        std::fs::rename(&temporary, out).map_err(|source| ConsultationExportError::Output {
            path: out.to_owned(),
            source,
        })
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    let tracks: Vec<ExportedTrack> = cursors.into_iter().map(|c| c.report).collect();
    Ok(ConsultationExportReport {
        duration: tracks.iter().map(|t| t.end).max().unwrap_or_default(),
        tracks,
        segments: segments_read,
        first_ms: origin_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::CameraFeed;
    use crate::metrics::Metrics;
    use crate::recording::consultation_recordings::publish_test_media;
    use crate::recording::segment_catalogue::PartFiles;
    use std::sync::Arc;

    #[test]
    fn two_participants_export_to_one_file_with_a_track_each_the_later_one_starting_later() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(RecordingKey::from_bytes(&[9u8; 32], PathBuf::from("k")).unwrap());
        let metrics = Metrics::new();
        let recordings = ConsultationRecordings::open(
            dir.path(),
            key,
            PartFiles::Recover,
            0,
            metrics.consultation_recording(),
            metrics.consultation_recordings.clone(),
        )
        .unwrap();
        let id = "ffeeddccbbaa99887766554433221100";
        let feeds = |p| {
            (
                CameraFeed::new(p, metrics.consultation_media()),
                CameraFeed::audio(p, metrics.consultation_media()),
            )
        };
        let (v1, a1) = feeds("p1");
        let (v2, a2) = feeds("p2");
        recordings.start(id, "p1", &v1, &a1).unwrap();
        publish_test_media(&v1, &a1);
        std::thread::sleep(Duration::from_millis(500));
        recordings.start(id, "p2", &v2, &a2).unwrap();
        publish_test_media(&v2, &a2);
        recordings.stop_all();

        let out = dir.path().join("consultation.mp4");
        let report = export(&recordings, id, &out).unwrap();
        assert!(out.exists() && !dir.path().join("consultation.mp4.part").exists());
        let tracks: Vec<(&str, &str)> = report
            .tracks
            .iter()
            .map(|t| (t.participant.as_str(), t.codec))
            .collect();
        assert_eq!(
            tracks,
            [
                ("p1", "h264"),
                ("p1", "opus"),
                ("p2", "h264"),
                ("p2", "opus")
            ]
        );
        assert_eq!(report.tracks[0].samples, 60, "every frame of p1");
        assert!(report.tracks[1].samples >= 100, "every packet of p1");
        assert!(
            report.tracks[0].start <= Duration::from_millis(5),
            "p1 from the start (wall-clock ms apart): {:?}",
            report.tracks[0].start
        );
        assert!(
            report.tracks[2].start >= Duration::from_millis(450),
            "p2 was recorded from later on: {:?}",
            report.tracks[2].start
        );
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.windows(4).filter(|w| w == b"trak").count(), 4);

        let other = "0000000000000000000000000000000a";
        assert!(matches!(
            export(&recordings, other, &dir.path().join("none.mp4")),
            Err(ConsultationExportError::NotFound(_))
        ));
    }
}
