//! Recorded segments back into one playable MP4: [`demux_segment`] reads one (decrypted)
//! fragmented MP4 segment into its samples (H.264/H.265 access units, or Opus packets), and
//! [`Mp4Export`] writes a camera's access units from any number of segments, in order, into one
//! regular MP4 file. No re-encode.
//!
//! `appsrc ! qtdemux ! h264parse ! appsink` (`opusparse` for Opus) for each segment, and
//! `appsrc ! h264parse ! mp4mux ! filesink` for the export; the caller sets each sample's place
//! on the export's timeline, so segments follow each other without a gap.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::PipelineError;
use crate::launch::{bus_error, element, launch};
use crate::track_codec::TrackCodec;
use crate::video_codec::VideoCodec;

/// One sample of a track: an H.264 or H.265 access unit (Annex B byte stream, parameter sets
/// before each keyframe), or one Opus packet.
#[derive(Clone, Debug)]
pub struct MediaSample {
    /// The access unit or packet.
    pub data: Bytes,
    /// Presentation time from the segment's start.
    pub pts: Duration,
    /// Decoding time from the segment's start (equal to `pts` without B-frames).
    pub dts: Duration,
    /// True when a decoder can start here (every Opus packet).
    pub keyframe: bool,
}

/// A segment's samples, in decoding order.
#[derive(Clone, Debug)]
pub struct SegmentSamples {
    /// The segment's codec.
    pub codec: TrackCodec,
    /// The caps of its samples (what a writer of them takes: for Opus, its header).
    pub caps: String,
    /// The samples.
    pub samples: Vec<MediaSample>,
    /// Time from the first sample's start to the last sample's end.
    pub duration: Duration,
}

/// Sets a pipeline to NULL when dropped.
struct Stopped(gst::Pipeline);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Reads one fragmented (or regular) MP4 segment of one track, held in memory, into its H.264
/// or H.265 access units or its Opus packets. A file cut short (a crash while recording) gives
/// the samples of its complete fragments. Waits at most `timeout`.
pub fn demux_segment(mp4: Bytes, timeout: Duration) -> Result<SegmentSamples, PipelineError> {
    let codec = TrackCodec::of_mp4(&mp4);
    let parse = match codec {
        TrackCodec::Video(video) => {
            let (_, parser, _) = video.elements();
            format!(
                "{parser} config-interval=-1 ! \
                 video/x-{},stream-format=byte-stream,alignment=au",
                video.as_str()
            )
        }
        TrackCodec::Opus => "opusparse ! audio/x-opus".to_owned(),
    };
    let pipeline = launch(&format!(
        "appsrc name=src format=bytes caps=video/quicktime ! qtdemux ! {parse} ! \
         appsink name=sink sync=false enable-last-sample=false"
    ))?;
    let _stopped = Stopped(pipeline.clone());
    let appsrc: gst_app::AppSrc = element(&pipeline, "src")?;
    let appsink: gst_app::AppSink = element(&pipeline, "sink")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| PipelineError::Export("the demuxer refused to start".to_owned()))?;
    let _ = appsrc.push_buffer(gst::Buffer::from_slice(mp4));
    let _ = appsrc.end_of_stream();
    let deadline = Instant::now() + timeout;
    let mut segment = SegmentSamples {
        codec,
        caps: String::new(),
        samples: Vec::new(),
        duration: Duration::ZERO,
    };
    let mut end = Duration::ZERO;
    loop {
        if let Some(error) = bus_error(&pipeline) {
            // A truncated last fragment ends the stream with an error after the good samples.
            if segment.samples.is_empty() {
                return Err(PipelineError::Export(format!(
                    "segment unreadable: {error}"
                )));
            }
            break;
        }
        if appsink.is_eos() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(PipelineError::Export(format!(
                "reading a segment took over {} ms",
                timeout.as_millis()
            )));
        }
        let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(20)) else {
            continue;
        };
        if segment.caps.is_empty()
            && let Some(caps) = sample.caps()
        {
            segment.caps = caps.to_string();
        }
        let Some(buffer) = sample.buffer_owned() else {
            continue;
        };
        let pts = buffer.pts().map(gst::ClockTime::nseconds);
        let dts = buffer.dts().map(gst::ClockTime::nseconds).or(pts);
        let duration = buffer.duration().map(gst::ClockTime::nseconds).unwrap_or(0);
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let (Some(pts), Some(dts)) = (pts, dts) else {
            continue;
        };
        let Ok(mapped) = buffer.into_mapped_buffer_readable() else {
            continue;
        };
        end = end.max(Duration::from_nanos(pts + duration));
        segment.samples.push(MediaSample {
            data: Bytes::from_owner(mapped),
            pts: Duration::from_nanos(pts),
            dts: Duration::from_nanos(dts),
            keyframe,
        });
    }
    let start = segment
        .samples
        .iter()
        .map(|s| s.pts)
        .min()
        .unwrap_or(Duration::ZERO);
    segment.duration = end.saturating_sub(start);
    Ok(segment)
}

/// A regular MP4 file being written from access units; finished by [`Mp4Export::finish`].
pub struct Mp4Export {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    codec: VideoCodec,
}

impl Mp4Export {
    /// Starts writing `path` (created or truncated) with `codec` video.
    pub fn create(path: &Path, codec: VideoCodec) -> Result<Mp4Export, PipelineError> {
        let (_, parser, _) = codec.elements();
        let pipeline = launch(&format!(
            "appsrc name=src format=time is-live=false block=true max-bytes=16777216 \
             caps=video/x-{},stream-format=byte-stream,alignment=au ! {parser} ! \
             mp4mux ! filesink name=file",
            codec.as_str()
        ))?;
        let appsrc: gst_app::AppSrc = element(&pipeline, "src")?;
        let file: gst::Element = element(&pipeline, "file")?;
        file.set_property("location", path.display().to_string());
        if pipeline.set_state(gst::State::Playing).is_err() {
            let reason = bus_error(&pipeline).unwrap_or_else(|| "cannot start".to_owned());
            let _ = pipeline.set_state(gst::State::Null);
            return Err(PipelineError::Export(format!(
                "cannot write {}: {reason}",
                path.display()
            )));
        }
        Ok(Mp4Export {
            pipeline,
            appsrc,
            codec,
        })
    }

    /// The codec it writes.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Appends one access unit at `pts` / `dts` on the export's timeline.
    pub fn push(
        &self,
        sample: &MediaSample,
        pts: Duration,
        dts: Duration,
    ) -> Result<(), PipelineError> {
        if let Some(error) = bus_error(&self.pipeline) {
            return Err(PipelineError::Export(error));
        }
        self.appsrc
            .push_buffer(sample_buffer(sample, pts, dts))
            .map(|_| ())
            .map_err(|flow| PipelineError::Export(format!("the writer refused a sample: {flow:?}")))
    }

    /// Ends the file (the muxer writes its index) and waits at most `timeout` for it to be written.
    pub fn finish(self, timeout: Duration) -> Result<(), PipelineError> {
        let _stopped = Stopped(self.pipeline.clone());
        let _ = self.appsrc.end_of_stream();
        wait_for_end(&self.pipeline, timeout)
    }
}

/// A sample as a buffer at `pts` / `dts`.
pub(crate) fn sample_buffer(sample: &MediaSample, pts: Duration, dts: Duration) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_slice(sample.data.clone());
    if let Some(buffer) = buffer.get_mut() {
        buffer.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
        buffer.set_dts(gst::ClockTime::from_nseconds(dts.as_nanos() as u64));
        if !sample.keyframe {
            buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
    }
    buffer
}

/// Waits at most `timeout` for a writing pipeline's end of stream (its file complete).
pub(crate) fn wait_for_end(
    pipeline: &gst::Pipeline,
    timeout: Duration,
) -> Result<(), PipelineError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| PipelineError::Export("the writer has no bus".to_owned()))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) else {
            continue;
        };
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(error) => {
                return Err(PipelineError::Export(error.error().message().to_owned()));
            }
            _ => {}
        }
    }
    Err(PipelineError::Export(format!(
        "the export was not finished within {} ms",
        timeout.as_millis()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(frames: u32) -> Bytes {
        segment_of(VideoCodec::H264, frames)
    }

    fn segment_of(codec: VideoCodec, frames: u32) -> Bytes {
        let clip = match codec {
            VideoCodec::H264 => crate::h264_rtp_clip(frames, 30),
            VideoCodec::H265 => crate::h265_rtp_clip(frames, 30),
        };
        Bytes::from(crate::test_support::fragmented_mp4(codec, clip.unwrap()))
    }

    #[test]
    fn a_segment_demuxes_into_its_frames() {
        let samples = demux_segment(segment(90), Duration::from_secs(10)).unwrap();
        assert_eq!(samples.samples.len(), 90);
        assert!(samples.samples[0].keyframe);
        assert_eq!(samples.samples.iter().filter(|s| s.keyframe).count(), 3);
        let ms = samples.duration.as_millis();
        assert!((2900..=3100).contains(&ms), "{ms} ms");
    }

    #[test]
    fn an_h265_segment_demuxes_and_exports_as_h265() {
        let samples =
            demux_segment(segment_of(VideoCodec::H265, 60), Duration::from_secs(10)).unwrap();
        assert_eq!(samples.codec, TrackCodec::Video(VideoCodec::H265));
        assert_eq!(samples.samples.len(), 60);
        let dir = tempfile_dir();
        let path = dir.join("h265.mp4");
        let export = Mp4Export::create(&path, VideoCodec::H265).unwrap();
        for sample in &samples.samples {
            export.push(sample, sample.pts, sample.dts).unwrap();
        }
        export.finish(Duration::from_secs(10)).unwrap();
        let back = demux_segment(
            Bytes::from(std::fs::read(&path).unwrap()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            (back.codec, back.samples.len()),
            (TrackCodec::Video(VideoCodec::H265), 60)
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_opus_segment_demuxes_into_its_packets() {
        let out = crate::test_support::fragmented_mp4(
            TrackCodec::Opus,
            crate::opus_rtp_clip(100).unwrap(),
        );
        let samples = demux_segment(Bytes::from(out), Duration::from_secs(10)).unwrap();
        assert_eq!(samples.codec, TrackCodec::Opus);
        assert!(samples.caps.starts_with("audio/x-opus"), "{}", samples.caps);
        // The encoder's look-ahead may add a packet.
        assert!(
            (100..=102).contains(&samples.samples.len()),
            "{}",
            samples.samples.len()
        );
        assert!(samples.samples.iter().all(|s| s.keyframe));
        let ms = samples.duration.as_millis();
        assert!((1950..=2050).contains(&ms), "{ms} ms");
    }

    #[test]
    fn a_truncated_segment_gives_its_complete_fragments() {
        let whole = segment(90);
        let cut = whole.slice(..whole.len() * 2 / 3);
        let samples = demux_segment(cut, Duration::from_secs(10)).unwrap();
        assert!(
            (15..90).contains(&samples.samples.len()),
            "{} samples",
            samples.samples.len()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let result = demux_segment(
            Bytes::from_static(b"not an mp4 at all"),
            Duration::from_secs(5),
        );
        assert!(result.is_err() || result.unwrap().samples.is_empty());
    }

    #[test]
    fn two_segments_export_to_one_file() {
        let dir = tempfile_dir();
        let path = dir.join("export.mp4");
        let export = Mp4Export::create(&path, VideoCodec::H264).unwrap();
        let mut offset = Duration::ZERO;
        for _ in 0..2 {
            let samples = demux_segment(segment(60), Duration::from_secs(10)).unwrap();
            for sample in &samples.samples {
                export
                    .push(sample, offset + sample.pts, offset + sample.dts)
                    .unwrap();
            }
            offset += samples.duration;
        }
        export.finish(Duration::from_secs(10)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let boxes = crate::test_support::top_level_boxes(&bytes);
        assert!(boxes.contains(&"moov".to_owned()), "{boxes:?}");
        let back = demux_segment(Bytes::from(bytes), Duration::from_secs(10)).unwrap();
        assert_eq!(back.samples.len(), 120);
        let ms = back.duration.as_millis();
        assert!((3900..=4100).contains(&ms), "{ms} ms");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "straja-export-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
