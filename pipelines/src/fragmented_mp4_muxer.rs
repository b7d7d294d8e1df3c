//! The recorder's muxer: one track's RTP packets in (a camera's H.264 or H.265, a consultation
//! participant's video or Opus audio), fragmented MP4 out, for one segment.
//!
//! `appsrc ! rtph264depay ! h264parse ! mp4mux fragment-duration=… streamable=true ! appsink`
//! (`rtpopusdepay ! opusparse` for Opus): no re-encode. The output is `ftyp` + `moov` (with `mvex`), then one `moof` + `mdat` per
//! fragment, then `mfra` at the end of stream. Everything before the last complete fragment is
//! a playable file, so a crash loses at most the fragment being muxed. The muxer never seeks its
//! output (streamable), so the caller may encrypt and append the bytes as they come.
//!
//! Threads: the caller pushes and pulls from one thread of its own (no callbacks, no lock);
//! GStreamer's streaming thread does the muxing between the two queues.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::PipelineError;
use crate::launch::{bus_error, element, launch};
use crate::track_codec::TrackCodec;

/// Most bytes the muxer's input queue holds before `push` refuses packets (about 30 s of a
/// 2 Mbit/s camera: far more than one fragment).
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;

/// One segment's muxer, playing from creation until [`FragmentedMp4Muxer::finish`] or drop.
pub struct FragmentedMp4Muxer {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    appsink: gst_app::AppSink,
}

impl FragmentedMp4Muxer {
    /// Builds and starts a muxer of `codec` RTP that cuts a fragment every `fragment` (at least
    /// 100 ms).
    pub fn start(
        fragment: Duration,
        codec: impl Into<TrackCodec>,
    ) -> Result<FragmentedMp4Muxer, PipelineError> {
        crate::init()?;
        let codec = codec.into();
        let fragment_ms = fragment.as_millis().clamp(100, 60_000);
        let (depayloader, parser) = codec.depayloader_and_parser();
        let caps = codec.rtp_caps();
        let description = format!(
            "appsrc name=src format=time is-live=false do-timestamp=false block=false \
             max-bytes={MAX_QUEUED_BYTES} caps=\"{caps}\" ! \
             {depayloader} ! {parser} ! \
             mp4mux fragment-duration={fragment_ms} streamable=true ! \
             appsink name=sink sync=false emit-signals=false enable-last-sample=false"
        );
        let pipeline = launch(&description)?;
        let appsrc: gst_app::AppSrc = element(&pipeline, "src")?;
        let appsink: gst_app::AppSink = element(&pipeline, "sink")?;
        if pipeline.set_state(gst::State::Playing).is_err() {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(PipelineError::Build(
                "the muxer refused to start (state change to PLAYING failed)".to_owned(),
            ));
        }
        Ok(FragmentedMp4Muxer {
            pipeline,
            appsrc,
            appsink,
        })
    }

    /// Queues one RTP packet whose media time in the segment is `pts`. Never blocks. Fails when
    /// the muxer stopped on an error or its input queue is full (the muxer is not keeping up).
    pub fn push(&self, packet: Bytes, pts: Duration) -> Result<(), PipelineError> {
        if let Some(error) = self.error() {
            return Err(error);
        }
        if self.appsrc.current_level_bytes() >= MAX_QUEUED_BYTES {
            return Err(PipelineError::Muxer(
                "the muxer is not keeping up (its input queue is full)".to_owned(),
            ));
        }
        let mut buffer = gst::Buffer::from_slice(packet);
        if let Some(buffer) = buffer.get_mut() {
            buffer.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
        }
        self.appsrc
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|flow| PipelineError::Muxer(format!("the muxer refused a packet: {flow:?}")))
    }

    /// The next piece of muxed output, if one is ready (never waits).
    pub fn pull(&self) -> Option<Bytes> {
        let sample = self.appsink.try_pull_sample(gst::ClockTime::ZERO)?;
        sample_bytes(sample)
    }

    /// Ends the segment: sends end-of-stream and returns the rest of the output (the last
    /// fragment), waiting at most `timeout` for it. The pipeline is stopped either way.
    pub fn finish(self, timeout: Duration) -> Result<Vec<Bytes>, PipelineError> {
        let _ = self.appsrc.end_of_stream();
        let deadline = Instant::now() + timeout;
        let mut rest = Vec::new();
        loop {
            if let Some(error) = self.error() {
                return Err(error);
            }
            if self.appsink.is_eos() {
                // Whatever is still queued before the EOS.
                while let Some(bytes) = self.pull() {
                    rest.push(bytes);
                }
                return Ok(rest);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PipelineError::Muxer(format!(
                    "the muxer did not finish within {} ms",
                    timeout.as_millis()
                )));
            }
            let wait = (deadline - now).min(Duration::from_millis(20));
            if let Some(sample) = self
                .appsink
                .try_pull_sample(gst::ClockTime::from_nseconds(wait.as_nanos() as u64))
                && let Some(bytes) = sample_bytes(sample)
            {
                rest.push(bytes);
            }
        }
    }

    /// The error the muxer stopped on, if it did (drains its bus).
    fn error(&self) -> Option<PipelineError> {
        bus_error(&self.pipeline).map(PipelineError::Muxer)
    }
}

impl Drop for FragmentedMp4Muxer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn sample_bytes(sample: gst::Sample) -> Option<Bytes> {
    let buffer = sample.buffer_owned()?;
    let mapped = buffer.into_mapped_buffer_readable().ok()?;
    Some(Bytes::from_owner(mapped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use crate::video_codec::VideoCodec;

    #[test]
    fn rtp_packets_become_a_fragmented_mp4() {
        let out =
            test_support::fragmented_mp4(VideoCodec::H264, crate::h264_rtp_clip(60, 30).unwrap());
        let boxes = test_support::top_level_boxes(&out);
        assert_eq!(&boxes[..2], ["ftyp", "moov"], "{boxes:?}");
        assert!(
            boxes.iter().filter(|b| *b == "moof").count() >= 3,
            "{boxes:?}"
        );
        // Streamable: no `mfra` index at the end (the muxer would have to seek for it).
        assert_eq!(boxes.last().map(String::as_str), Some("mdat"), "{boxes:?}");
    }

    #[test]
    fn opus_rtp_packets_become_a_fragmented_mp4() {
        let out =
            test_support::fragmented_mp4(TrackCodec::Opus, crate::opus_rtp_clip(150).unwrap());
        let boxes = test_support::top_level_boxes(&out);
        assert_eq!(&boxes[..2], ["ftyp", "moov"], "{boxes:?}");
        assert!(
            boxes.iter().filter(|b| *b == "moof").count() >= 4,
            "3 s of audio in 500 ms fragments: {boxes:?}"
        );
        assert_eq!(TrackCodec::of_mp4(&out), TrackCodec::Opus);
    }

    #[test]
    fn garbage_input_is_an_error_or_nothing_never_a_panic() {
        let muxer =
            FragmentedMp4Muxer::start(Duration::from_millis(500), VideoCodec::H264).unwrap();
        for i in 0..50u64 {
            let _ = muxer.push(
                Bytes::from(vec![
                    0x80, 96, 0, i as u8, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xee,
                ]),
                Duration::from_millis(i * 33),
            );
        }
        let _ = muxer.finish(Duration::from_secs(2));
    }
}
