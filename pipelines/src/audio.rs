//! Camera audio: what browsers take as it is (Opus, G.711 µ-law and A-law) goes through untouched,
//! RTP packets as the camera sent them; AAC, which no browser takes over WebRTC, is transcoded to
//! Opus once per camera, in the camera's own pipeline, and shared by all its viewers.
//!
//! An RTSP camera's audio stream appears as a pad of `rtspsrc` once the camera has described its
//! streams; [`link_rtsp_audio`] builds the branch for it then. A test source's audio
//! (`test://ball?audio=opus`) is part of its pipeline description.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::delivery::{self, FlowStats};
use crate::packet_sink::PacketSink;

/// Name of the audio appsink.
pub(crate) const AUDIO_SINK: &str = "asink";
/// Payload type of Opus made here (transcoded AAC, test sources).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// The audio a camera hands on, as viewers receive it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// Opus, 48 kHz (RTP clock), as sent by the camera or transcoded from AAC.
    Opus,
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
}

impl AudioCodec {
    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Opus => 48_000,
            AudioCodec::Pcmu | AudioCodec::Pcma => 8_000,
        }
    }

    /// Channels as SDP counts them (Opus is always signalled as 2).
    pub fn channels(self) -> u16 {
        match self {
            AudioCodec::Opus => 2,
            AudioCodec::Pcmu | AudioCodec::Pcma => 1,
        }
    }

    /// `opus`, `pcmu` or `pcma` (config, logs, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            AudioCodec::Opus => "opus",
            AudioCodec::Pcmu => "pcmu",
            AudioCodec::Pcma => "pcma",
        }
    }

    /// Parses `opus`, `pcmu` or `pcma`.
    pub fn parse(name: &str) -> Option<AudioCodec> {
        match name {
            "opus" => Some(AudioCodec::Opus),
            "pcmu" => Some(AudioCodec::Pcmu),
            "pcma" => Some(AudioCodec::Pcma),
            _ => None,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            AudioCodec::Opus => 1,
            AudioCodec::Pcmu => 2,
            AudioCodec::Pcma => 3,
        }
    }

    pub(crate) fn from_u8(value: u8) -> Option<AudioCodec> {
        match value {
            1 => Some(AudioCodec::Opus),
            2 => Some(AudioCodec::Pcmu),
            3 => Some(AudioCodec::Pcma),
            _ => None,
        }
    }
}

/// The encoder and payloader of a test source's audio.
pub(crate) fn test_audio_branch(codec: AudioCodec) -> String {
    let encode = match codec {
        AudioCodec::Opus => format!(
            "audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=32000 ! \
             rtpopuspay pt={OPUS_PAYLOAD_TYPE} mtu=1200"
        ),
        AudioCodec::Pcmu => {
            "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay max-ptime=20000000".to_owned()
        }
        AudioCodec::Pcma => {
            "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay max-ptime=20000000".to_owned()
        }
    };
    format!(
        "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample ! \
         {encode} ! {}",
        appsink_description()
    )
}

fn appsink_description() -> String {
    format!(
        "appsink name={AUDIO_SINK} emit-signals=false sync=false max-buffers=64 drop=true \
         enable-last-sample=false"
    )
}

/// What a camera's audio stream becomes, by its RTP encoding name.
enum Branch {
    /// Handed on as the camera sent it.
    Passthrough(AudioCodec),
    /// AAC to Opus; the depayloader for the RTP packing the camera uses.
    TranscodeAac { depayloader: &'static str },
}

fn branch_for(encoding: &str) -> Option<Branch> {
    match encoding.to_ascii_uppercase().as_str() {
        "OPUS" => Some(Branch::Passthrough(AudioCodec::Opus)),
        "PCMU" => Some(Branch::Passthrough(AudioCodec::Pcmu)),
        "PCMA" => Some(Branch::Passthrough(AudioCodec::Pcma)),
        "MPEG4-GENERIC" => Some(Branch::TranscodeAac {
            depayloader: "rtpmp4gdepay",
        }),
        "MP4A-LATM" => Some(Branch::TranscodeAac {
            depayloader: "rtpmp4adepay",
        }),
        _ => None,
    }
}

/// The first AAC decoder installed: FFmpeg's, else FAAD's.
fn aac_decoder() -> Option<&'static str> {
    ["avdec_aac", "faad"]
        .into_iter()
        .find(|name| gst::ElementFactory::find(name).is_some())
}

/// Where a camera's audio goes and what it became.
#[derive(Clone)]
pub(crate) struct AudioOutput {
    pub(crate) sink: Arc<dyn PacketSink>,
    pub(crate) codec: Arc<AtomicU8>,
    pub(crate) camera: String,
}

/// Links the audio pads `rtspsrc` adds (once the camera has described its streams) to a branch
/// that ends in an audio appsink delivering to `output.sink`; other media are left to the video
/// branch. An audio codec that cannot be handled is logged once and dropped into a fakesink, so
/// that it never stalls the camera's video.
pub(crate) fn link_rtsp_audio(
    pipeline: &gst::Pipeline,
    rtspsrc: &gst::Element,
    output: AudioOutput,
) {
    let pipeline = pipeline.downgrade();
    rtspsrc.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline.upgrade() else {
            return;
        };
        let Some(caps) = pad.current_caps() else {
            return;
        };
        let Some(structure) = caps.structure(0) else {
            return;
        };
        if structure.get::<&str>("media").ok() != Some("audio") {
            return;
        }
        let encoding = structure
            .get::<&str>("encoding-name")
            .unwrap_or("")
            .to_owned();
        let description = match branch_for(&encoding) {
            Some(Branch::Passthrough(codec)) => {
                output.codec.store(codec.to_u8(), Ordering::Release);
                format!("queue max-size-time=200000000 leaky=downstream ! {}", appsink_description())
            }
            Some(Branch::TranscodeAac { depayloader }) => match aac_decoder() {
                Some(decoder) => {
                    output.codec.store(AudioCodec::Opus.to_u8(), Ordering::Release);
                    format!(
                        "queue max-size-time=500000000 leaky=downstream ! {depayloader} ! \
                         {decoder} ! audioconvert ! audioresample ! \
                         audio/x-raw,rate=48000,channels=2 ! audiorate skip-to-first=true ! \
                         opusenc bitrate=48000 inband-fec=true ! \
                         rtpopuspay pt={OPUS_PAYLOAD_TYPE} mtu=1200 ! {}",
                        appsink_description()
                    )
                }
                None => {
                    tracing::warn!(camera = %output.camera, "the camera sends AAC audio, but no AAC decoder is installed (gstreamer1.0-libav): audio is dropped");
                    "fakesink sync=false".to_owned()
                }
            },
            None => {
                tracing::warn!(camera = %output.camera, encoding = %encoding.chars().take(32).collect::<String>(), "the camera's audio codec is not supported (Opus, G.711 and AAC are): audio is dropped");
                "fakesink sync=false".to_owned()
            }
        };
        let bin = match gst::parse::bin_from_description(&description, true) {
            Ok(bin) => bin,
            Err(e) => {
                tracing::warn!(camera = %output.camera, error = %e, "the audio branch could not be built: audio is dropped");
                return;
            }
        };
        if pipeline.add(&bin).is_err() {
            return;
        }
        if let Some(appsink) = bin
            .by_name(AUDIO_SINK)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        {
            delivery::connect_sink(&appsink, output.sink.clone(), Arc::new(FlowStats::new()));
        }
        let _ = bin.sync_state_with_parent();
        if let Some(sink_pad) = bin.static_pad("sink")
            && pad.link(&sink_pad).is_err()
        {
            tracing::warn!(camera = %output.camera, "the audio branch could not be linked: audio is dropped");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_and_encodings_map_to_branches() {
        for codec in [AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma] {
            assert_eq!(AudioCodec::from_u8(codec.to_u8()), Some(codec));
            assert_eq!(AudioCodec::parse(codec.as_str()), Some(codec));
        }
        assert_eq!(AudioCodec::from_u8(0), None);
        assert!(matches!(
            branch_for("opus"),
            Some(Branch::Passthrough(AudioCodec::Opus))
        ));
        assert!(matches!(
            branch_for("PCMA"),
            Some(Branch::Passthrough(AudioCodec::Pcma))
        ));
        assert!(matches!(
            branch_for("mpeg4-generic"),
            Some(Branch::TranscodeAac { .. })
        ));
        assert!(branch_for("G726-32").is_none());
    }
}
