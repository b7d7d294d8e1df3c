//! What one recorded track carries: a camera's or a participant's video (H.264, H.265), or a
//! consultation participant's Opus audio. The recorder's muxer, the segment demuxer and the
//! multi-track export take it to pick their caps and elements.

use crate::video_codec::VideoCodec;

/// The media of one recorded track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackCodec {
    /// Video, H.264 or H.265 (90 kHz RTP clock).
    Video(VideoCodec),
    /// Opus audio (48 kHz RTP clock).
    Opus,
}

impl From<VideoCodec> for TrackCodec {
    fn from(codec: VideoCodec) -> TrackCodec {
        TrackCodec::Video(codec)
    }
}

impl TrackCodec {
    /// `h264`, `h265` or `opus` (logs, reports).
    pub fn as_str(self) -> &'static str {
        match self {
            TrackCodec::Video(codec) => codec.as_str(),
            TrackCodec::Opus => "opus",
        }
    }

    /// True for video.
    pub fn is_video(self) -> bool {
        matches!(self, TrackCodec::Video(_))
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            TrackCodec::Video(_) => 90_000,
            TrackCodec::Opus => 48_000,
        }
    }

    /// Caps of its RTP packets as the hub forwards them.
    pub(crate) fn rtp_caps(self) -> String {
        match self {
            TrackCodec::Video(codec) => format!(
                "application/x-rtp,media=video,clock-rate=90000,encoding-name={},payload=96",
                codec.as_str().to_ascii_uppercase()
            ),
            TrackCodec::Opus => format!(
                "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={}",
                crate::OPUS_PAYLOAD_TYPE
            ),
        }
    }

    /// Its depayloader and parser.
    pub(crate) fn depayloader_and_parser(self) -> (&'static str, &'static str) {
        match self {
            TrackCodec::Video(codec) => {
                let (depayloader, parser, _) = codec.elements();
                (depayloader, parser)
            }
            TrackCodec::Opus => ("rtpopusdepay", "opusparse"),
        }
    }

    /// The codec of an MP4 file, by the sample entry in its movie box (`Opus`, `hvc1`/`hev1`,
    /// else H.264).
    pub fn of_mp4(mp4: &[u8]) -> TrackCodec {
        let head = &mp4[..mp4.len().min(256 * 1024)];
        if head.windows(4).any(|w| w == b"Opus") {
            TrackCodec::Opus
        } else if head.windows(4).any(|w| w == b"hvc1" || w == b"hev1") {
            TrackCodec::Video(VideoCodec::H265)
        } else {
            TrackCodec::Video(VideoCodec::H264)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_rates_and_names() {
        assert_eq!(TrackCodec::Opus.clock_rate(), 48_000);
        assert_eq!(TrackCodec::from(VideoCodec::H265).clock_rate(), 90_000);
        assert_eq!(TrackCodec::Opus.as_str(), "opus");
        assert!(TrackCodec::Video(VideoCodec::H264).is_video());
        assert!(TrackCodec::Opus.rtp_caps().contains("OPUS"));
        assert_eq!(
            TrackCodec::of_mp4(b"....moov....Opus...."),
            TrackCodec::Opus
        );
        assert_eq!(
            TrackCodec::of_mp4(b"....moov....hvc1"),
            TrackCodec::Video(VideoCodec::H265)
        );
        assert_eq!(
            TrackCodec::of_mp4(b"....moov....avc1"),
            TrackCodec::Video(VideoCodec::H264)
        );
    }
}
