//! Several tracks into one regular MP4 file on one timeline: a consultation's recording, every
//! participant's video and audio a track of its own. No re-encode.
//!
//! `appsrc ! h264parse ! mux.video_%u` (`opusparse ! mux.audio_%u` for Opus) per track, and
//! `mp4mux ! filesink`. A track that starts late starts late in the file; one that ends early
//! ends there.
//!
//! The muxer only writes once every track still open has a sample queued: the caller must keep
//! one queued on each (push a track's next sample as soon as the muxer may need it, that is, once
//! the previous one is pushed, and end a track with [`MultiTrackMp4Export::end_track`] as soon as
//! it has no more), or the writer stalls. Pushing blocks while a track's queue is full.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::PipelineError;
use crate::launch::{bus_error, element, launch};
use crate::mp4_export::{MediaSample, sample_buffer, wait_for_end};
use crate::track_codec::TrackCodec;

/// Most bytes one track's input queue holds before a push waits for the muxer.
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;
/// Most tracks one file takes (a consultation of 4, video and audio each, and room to spare).
pub const MAX_TRACKS: usize = 16;

/// One track of the file.
#[derive(Clone, Debug)]
pub struct TrackSpec {
    /// What it carries.
    pub codec: TrackCodec,
    /// The caps of its samples, as [`crate::demux_segment`] reports them (empty: the codec's
    /// defaults).
    pub caps: String,
}

/// An MP4 file being written from several tracks' samples; finished by
/// [`MultiTrackMp4Export::finish`].
pub struct MultiTrackMp4Export {
    pipeline: gst::Pipeline,
    sources: Vec<gst_app::AppSrc>,
    ended: Vec<bool>,
}

impl MultiTrackMp4Export {
    /// Starts writing `path` (created or truncated) with these tracks, in this order.
    pub fn create(path: &Path, tracks: &[TrackSpec]) -> Result<MultiTrackMp4Export, PipelineError> {
        crate::init()?;
        if tracks.is_empty() || tracks.len() > MAX_TRACKS {
            return Err(PipelineError::Export(format!(
                "a file takes 1 to {MAX_TRACKS} tracks, not {}",
                tracks.len()
            )));
        }
        let mut description = String::from("mp4mux name=mux ! filesink name=file");
        for (index, track) in tracks.iter().enumerate() {
            let (parser, pad) = match track.codec {
                TrackCodec::Video(codec) => (codec.elements().1, "video_%u"),
                TrackCodec::Opus => ("opusparse", "audio_%u"),
            };
            description.push_str(&format!(
                " appsrc name=src{index} format=time is-live=false block=true \
                 max-bytes={MAX_QUEUED_BYTES} ! {parser} ! mux.{pad}"
            ));
        }
        // Stopped (on drop) whatever fails from here.
        let mut export = MultiTrackMp4Export {
            pipeline: launch(&description)?,
            sources: Vec::with_capacity(tracks.len()),
            ended: vec![false; tracks.len()],
        };
        let file: gst::Element = element(&export.pipeline, "file")?;
        file.set_property("location", path.display().to_string());
        for (index, track) in tracks.iter().enumerate() {
            let source: gst_app::AppSrc = element(&export.pipeline, &format!("src{index}"))?;
            let caps = if track.caps.is_empty() {
                default_caps(track.codec)
            } else {
                track.caps.clone()
            };
            let caps = caps.parse::<gst::Caps>().map_err(|_| {
                PipelineError::Export(format!("track {index}: caps unreadable: {caps}"))
            })?;
            source.set_caps(Some(&caps));
            export.sources.push(source);
        }
        if export.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = bus_error(&export.pipeline).unwrap_or_else(|| "cannot start".to_owned());
            return Err(PipelineError::Export(format!(
                "cannot write {}: {reason}",
                path.display()
            )));
        }
        Ok(export)
    }

    /// Appends one sample to `track` at `pts` / `dts` on the file's timeline (blocks while that
    /// track's queue is full).
    pub fn push(
        &self,
        track: usize,
        sample: &MediaSample,
        pts: Duration,
        dts: Duration,
    ) -> Result<(), PipelineError> {
        if let Some(error) = bus_error(&self.pipeline) {
            return Err(PipelineError::Export(error));
        }
        let source = self
            .sources
            .get(track)
            .filter(|_| !self.ended[track])
            .ok_or_else(|| PipelineError::Export(format!("no open track {track}")))?;
        source
            .push_buffer(sample_buffer(sample, pts, dts))
            .map(|_| ())
            .map_err(|flow| {
                PipelineError::Export(format!("track {track} refused a sample: {flow:?}"))
            })
    }

    /// `track` has no more samples.
    pub fn end_track(&mut self, track: usize) {
        if let Some(source) = self.sources.get(track)
            && !self.ended[track]
        {
            let _ = source.end_of_stream();
            self.ended[track] = true;
        }
    }

    /// Ends every track and the file (the muxer writes its index), waiting at most `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Result<(), PipelineError> {
        for track in 0..self.sources.len() {
            self.end_track(track);
        }
        wait_for_end(&self.pipeline, timeout)
    }
}

impl Drop for MultiTrackMp4Export {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn default_caps(codec: TrackCodec) -> String {
    match codec {
        TrackCodec::Video(video) => format!(
            "video/x-{},stream-format=byte-stream,alignment=au",
            video.as_str()
        ),
        TrackCodec::Opus => "audio/x-opus,channel-mapping-family=0".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{VideoCodec, demux_segment};
    use bytes::Bytes;

    fn segment(codec: TrackCodec, clip: Vec<(Bytes, Duration)>) -> crate::SegmentSamples {
        let mp4 = crate::test_support::fragmented_mp4(codec, clip);
        demux_segment(Bytes::from(mp4), Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn a_late_track_and_an_early_end_make_one_file_of_every_track() {
        let video = segment(
            TrackCodec::Video(VideoCodec::H264),
            crate::h264_rtp_clip(90, 30).unwrap(),
        );
        let audio = segment(TrackCodec::Opus, crate::opus_rtp_clip(100).unwrap());
        let tracks = [
            TrackSpec {
                codec: video.codec,
                caps: video.caps.clone(),
            },
            TrackSpec {
                codec: audio.codec,
                caps: audio.caps.clone(),
            },
        ];
        let dir = std::env::temp_dir().join(format!(
            "straja-multi-track-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("both.mp4");
        let mut export = MultiTrackMp4Export::create(&path, &tracks).unwrap();
        // Video 0..3 s; audio from 1 s to 3 s. One sample queued ahead on each track, as the
        // consultation export does.
        let late = Duration::from_secs(1);
        let mut v = video.samples.iter().peekable();
        let mut a = audio.samples.iter().peekable();
        let (mut v_last, mut a_last) = (None::<Duration>, None::<Duration>);
        loop {
            let v_key = v.peek().map(|_| v_last.unwrap_or(Duration::ZERO));
            let a_key = a.peek().map(|_| a_last.unwrap_or(Duration::ZERO));
            match (v_key, a_key) {
                (Some(vk), ak) if ak.is_none_or(|ak| vk <= ak) => {
                    let s = v.next().unwrap();
                    export.push(0, s, s.pts, s.dts).unwrap();
                    v_last = Some(s.pts);
                    if v.peek().is_none() {
                        export.end_track(0);
                    }
                }
                (_, Some(_)) => {
                    let s = a.next().unwrap();
                    export.push(1, s, late + s.pts, late + s.dts).unwrap();
                    a_last = Some(late + s.pts);
                    if a.peek().is_none() {
                        export.end_track(1);
                    }
                }
                (None, None) => break,
                (Some(_), None) => unreachable!(),
            }
        }
        export.finish(Duration::from_secs(10)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let boxes = crate::test_support::top_level_boxes(&bytes);
        assert!(boxes.contains(&"moov".to_owned()), "{boxes:?}");
        let traks = bytes.windows(4).filter(|w| w == b"trak").count();
        assert_eq!(traks, 2, "a track each");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn no_track_or_too_many_is_an_error() {
        let path = std::env::temp_dir().join("straja-never-written.mp4");
        assert!(MultiTrackMp4Export::create(&path, &[]).is_err());
        let many = vec![
            TrackSpec {
                codec: TrackCodec::Opus,
                caps: String::new()
            };
            MAX_TRACKS + 1
        ];
        assert!(MultiTrackMp4Export::create(&path, &many).is_err());
    }
}
