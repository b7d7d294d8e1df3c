//! The video codecs a camera pipeline hands on: H.264 (every camera kind) and H.265 (RTSP
//! cameras that send it; re-payloaded like H.264, never re-encoded here).

/// A camera's video codec, as its RTP packets carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 / AVC (RFC 6184).
    H264,
    /// H.265 / HEVC (RFC 7798).
    H265,
}

impl VideoCodec {
    /// `h264` or `h265` (logs, JSON, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
        }
    }

    /// The codec of an RTP `encoding-name` (`H264`, `H265`), if it is one of these.
    pub fn from_encoding_name(name: &str) -> Option<VideoCodec> {
        match name.to_ascii_uppercase().as_str() {
            "H264" => Some(VideoCodec::H264),
            "H265" => Some(VideoCodec::H265),
            _ => None,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            VideoCodec::H264 => 1,
            VideoCodec::H265 => 2,
        }
    }

    pub(crate) fn from_u8(value: u8) -> Option<VideoCodec> {
        match value {
            1 => Some(VideoCodec::H264),
            2 => Some(VideoCodec::H265),
            _ => None,
        }
    }

    /// The depayloader, parser and payloader names for this codec.
    pub(crate) fn elements(self) -> (&'static str, &'static str, &'static str) {
        match self {
            VideoCodec::H264 => ("rtph264depay", "h264parse", "rtph264pay"),
            VideoCodec::H265 => ("rtph265depay", "h265parse", "rtph265pay"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip() {
        for codec in [VideoCodec::H264, VideoCodec::H265] {
            assert_eq!(VideoCodec::from_u8(codec.to_u8()), Some(codec));
            assert_eq!(
                VideoCodec::from_encoding_name(&codec.as_str().to_ascii_uppercase()),
                Some(codec)
            );
        }
        assert_eq!(VideoCodec::from_encoding_name("VP8"), None);
        assert_eq!(VideoCodec::from_u8(0), None);
    }
}
