//! A camera's recordings between two times, as one playable MP4 (`straja recordings export`):
//! the segments that overlap the range are decrypted one at a time, demuxed, trimmed (from the
//! last keyframe at or before the start, so the first frame decodes, to the last frame at or
//! before the end) and written one after the other without re-encoding. Time the camera was
//! not recorded (down, disk full) is left out: the report names those gaps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use straja_pipelines::{MediaSample, Mp4Export, TrackCodec, demux_segment};

use super::recording_key::RecordingKey;
use super::segment_catalogue::SegmentCatalogue;
use super::segment_file::SegmentReader;

/// Most segments one export takes (a day of one-minute segments, and some).
const MAX_SEGMENTS: usize = 2000;
/// Bound on reading one segment, and on writing the file's index at the end.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Nothing was recorded in the range.
    #[error("no recordings of camera '{camera}' in that time range")]
    Nothing {
        /// The camera.
        camera: String,
    },
    /// The range is empty or reversed.
    #[error("the end of the range must come after its start")]
    EmptyRange,
    /// The range covers more segments than one export takes.
    #[error("the range covers more than {MAX_SEGMENTS} segments; export a shorter range")]
    TooLong,
    /// The camera changed its video codec within the range (one file holds one codec).
    #[error(
        "the camera's video codec changes at segment {at}; export the parts before and after it apart"
    )]
    MixedCodecs {
        /// The first segment in the other codec.
        at: String,
    },
    /// A camera's segment holds no video (it is not a camera's).
    #[error("segment {at} holds no video")]
    NotVideo {
        /// The segment.
        at: String,
    },
    /// A segment could not be read (damaged, altered, another key).
    #[error("{0}")]
    Segment(#[from] super::segment_file::SegmentError),
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

/// What an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Segments that went into it.
    pub segments: usize,
    /// Video frames written.
    pub frames: usize,
    /// Its duration.
    pub duration: Duration,
    /// Wall time of its first and last frame (unix ms).
    pub first_ms: u64,
    /// Wall time of its last frame's end (unix ms).
    pub last_ms: u64,
    /// Spans (unix ms) between segments that were not recorded and so are not in the file.
    pub gaps: Vec<(u64, u64)>,
}

/// Writes `camera`'s recordings from `from_ms` to `to_ms` (unix ms) into `out` (through a
/// temporary file next to it, renamed when complete).
pub fn export(
    catalogue: &SegmentCatalogue,
    key: &RecordingKey,
    camera: &str,
    from_ms: u64,
    to_ms: u64,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    if to_ms <= from_ms {
        return Err(ExportError::EmptyRange);
    }
    let segments = catalogue.list(camera, from_ms, to_ms, MAX_SEGMENTS + 1);
    if segments.len() > MAX_SEGMENTS {
        return Err(ExportError::TooLong);
    }
    let temporary = out.with_extension("mp4.part");
    let output_error = |source| ExportError::Output {
        path: out.to_owned(),
        source,
    };
    let mut writer: Option<Mp4Export> = None;
    let mut report = ExportReport {
        segments: 0,
        frames: 0,
        duration: Duration::ZERO,
        first_ms: 0,
        last_ms: 0,
        gaps: Vec::new(),
    };
    let mut offset = Duration::ZERO;
    let result = (|| {
        for segment in &segments {
            let reader = SegmentReader::open(&segment.path, key, camera)?;
            let start_ms = reader.start_ms();
            let demuxed = demux_segment(Bytes::from(reader.read_all()?), STEP_TIMEOUT)?;
            let kept = trim(&demuxed.samples, start_ms, from_ms, to_ms);
            let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
                continue;
            };
            let frame = frame_duration(kept);
            let base_pts = first.pts;
            let base_dts = first.dts.min(first.pts);
            let first_wall = start_ms + first.pts.as_millis() as u64;
            if report.segments == 0 {
                report.first_ms = first_wall;
            } else if first_wall > report.last_ms + 1000 {
                report.gaps.push((report.last_ms, first_wall));
            }
            let TrackCodec::Video(codec) = demuxed.codec else {
                return Err(ExportError::NotVideo { at: segment.id() });
            };
            let writer = match &mut writer {
                Some(writer) if writer.codec() != codec => {
                    return Err(ExportError::MixedCodecs { at: segment.id() });
                }
                Some(writer) => writer,
                None => writer.insert(Mp4Export::create(&temporary, codec)?),
            };
            for sample in kept {
                writer.push(
                    sample,
                    offset + sample.pts.saturating_sub(base_pts),
                    offset + sample.dts.saturating_sub(base_dts),
                )?;
            }
            let span = last.pts.saturating_sub(base_pts) + frame;
            offset += span;
            report.segments += 1;
            report.frames += kept.len();
            report.last_ms = first_wall + span.as_millis() as u64;
        }
        let Some(writer) = writer.take() else {
            return Err(ExportError::Nothing {
                camera: camera.to_owned(),
            });
        };
        writer.finish(STEP_TIMEOUT)?;
        std::fs::rename(&temporary, out).map_err(output_error)?;
        Ok(())
    })();
    if let Err(e) = result {
        drop(writer);
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    report.duration = offset;
    Ok(report)
}

/// The samples of a segment (starting at wall time `start_ms`) to export for `from_ms..to_ms`:
/// from the last keyframe at or before `from_ms`, to the last frame that starts before `to_ms`.
fn trim(samples: &[MediaSample], start_ms: u64, from_ms: u64, to_ms: u64) -> &[MediaSample] {
    let wall = |s: &MediaSample| start_ms + s.pts.as_millis() as u64;
    if samples.last().is_none_or(|s| wall(s) < from_ms) {
        return &[];
    }
    let first = samples
        .iter()
        .rposition(|s| s.keyframe && wall(s) <= from_ms)
        .or_else(|| samples.iter().position(|s| s.keyframe))
        .unwrap_or(samples.len());
    let end = samples
        .iter()
        .rposition(|s| wall(s) < to_ms)
        .map_or(0, |i| i + 1);
    if first >= end {
        return &[];
    }
    &samples[first..end]
}

/// The usual spacing of frames (33 ms when it cannot be told).
fn frame_duration(samples: &[MediaSample]) -> Duration {
    match samples {
        [.., a, b] if b.pts > a.pts => b.pts - a.pts,
        _ => Duration::from_millis(33),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(frames: u64, gop: u64) -> Vec<MediaSample> {
        (0..frames)
            .map(|i| MediaSample {
                data: Bytes::new(),
                pts: Duration::from_millis(i * 100),
                dts: Duration::from_millis(i * 100),
                keyframe: i % gop == 0,
            })
            .collect()
    }

    #[test]
    fn trimming_starts_at_a_keyframe_at_or_before_the_start_and_stops_before_the_end() {
        let all = samples(30, 10); // 3 s, keyframes at 0, 1 and 2 s
        let kept = trim(&all, 10_000, 11_500, 12_450);
        assert!(kept[0].keyframe);
        assert_eq!(kept[0].pts, Duration::from_millis(1000));
        assert_eq!(kept.last().unwrap().pts, Duration::from_millis(2400));
        assert_eq!(
            trim(&all, 10_000, 0, u64::MAX).len(),
            30,
            "the whole segment"
        );
        assert!(
            trim(&all, 10_000, 20_000, 30_000).is_empty(),
            "after the segment"
        );
        assert!(
            trim(&all, 10_000, 0, 10_000).is_empty(),
            "ends before its first frame"
        );
    }
}
