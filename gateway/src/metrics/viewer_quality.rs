//! What viewers actually get, per camera and kind (`video`, `audio`): the loss, jitter and
//! round-trip time their RTCP receiver reports give, the NACKs and keyframe requests they send,
//! the keyframes sent to them, and how long a new viewer waited for its first frame.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// The `kind` label's values, in index order of [`ViewerQuality`]'s arrays.
pub const KINDS: [&str; 2] = ["video", "audio"];

/// A media kind, as an index into [`KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The camera's video.
    Video = 0,
    /// The camera's audio.
    Audio = 1,
}

/// The families.
#[derive(Clone)]
pub struct ViewerQualityFamilies {
    /// `straja_viewer_packet_loss_ratio{camera,kind}`.
    pub loss: HistogramVec,
    /// `straja_viewer_jitter_seconds{camera,kind}`.
    pub jitter: HistogramVec,
    /// `straja_viewer_rtt_seconds{camera,kind}`.
    pub rtt: HistogramVec,
    /// `straja_viewer_nacks_total{camera,kind}`.
    pub nacks: IntCounterVec,
    /// `straja_viewer_retransmits_total{camera}`.
    pub retransmits: IntCounterVec,
    /// `straja_viewer_keyframe_requests_total{camera}`.
    pub keyframe_requests: IntCounterVec,
    /// `straja_keyframes_sent_total{camera}`.
    pub keyframes_sent: IntCounterVec,
    /// `straja_time_to_first_frame_seconds{camera}`.
    pub time_to_first_frame: HistogramVec,
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric")
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl ViewerQualityFamilies {
    /// The families, unregistered.
    pub fn new() -> ViewerQualityFamilies {
        ViewerQualityFamilies {
            loss: histogram(
                "straja_viewer_packet_loss_ratio",
                "Fraction of packets lost (0 to 1) on the way to a viewer, from each RTCP \
                 receiver report viewers send.",
                &["camera", "kind"],
                vec![0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            ),
            jitter: histogram(
                "straja_viewer_jitter_seconds",
                "Interarrival jitter viewers report (RTCP receiver reports).",
                &["camera", "kind"],
                vec![0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25],
            ),
            rtt: histogram(
                "straja_viewer_rtt_seconds",
                "Round-trip time to viewers, from RTCP receiver reports (LSR and DLSR).",
                &["camera", "kind"],
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
            ),
            nacks: counter(
                "straja_viewer_nacks_total",
                "RTCP NACK packets (retransmission requests) received from viewers.",
                &["camera", "kind"],
            ),
            retransmits: counter(
                "straja_viewer_retransmits_total",
                "Video packets sent again to viewers on their NACKs (the gateway's own viewer \
                 stack; at most 100 a second per viewer).",
                &["camera"],
            ),
            keyframe_requests: counter(
                "straja_viewer_keyframe_requests_total",
                "Keyframe requests (RTCP PLI, FIR) received from viewers.",
                &["camera"],
            ),
            keyframes_sent: counter(
                "straja_keyframes_sent_total",
                "Keyframes sent to viewers (one per viewer that got it).",
                &["camera"],
            ),
            time_to_first_frame: histogram(
                "straja_time_to_first_frame_seconds",
                "Time from a viewer's session being set up (its WHEP answer) to the first \
                 keyframe sent to it.",
                &["camera"],
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            ),
        }
    }

    /// Every family, to register.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.loss.clone()),
            Box::new(self.jitter.clone()),
            Box::new(self.rtt.clone()),
            Box::new(self.nacks.clone()),
            Box::new(self.retransmits.clone()),
            Box::new(self.keyframe_requests.clone()),
            Box::new(self.keyframes_sent.clone()),
            Box::new(self.time_to_first_frame.clone()),
        ]
    }

    /// One camera's handles (its series created, at 0).
    pub fn camera(&self, camera: &str) -> ViewerQuality {
        let per_kind =
            |vec: &HistogramVec| KINDS.map(|kind| vec.with_label_values(&[camera, kind]));
        ViewerQuality {
            loss: per_kind(&self.loss),
            jitter: per_kind(&self.jitter),
            rtt: per_kind(&self.rtt),
            nacks: KINDS.map(|kind| self.nacks.with_label_values(&[camera, kind])),
            retransmits: self.retransmits.with_label_values(&[camera]),
            keyframe_requests: self.keyframe_requests.with_label_values(&[camera]),
            keyframes_sent: self.keyframes_sent.with_label_values(&[camera]),
            time_to_first_frame: self.time_to_first_frame.with_label_values(&[camera]),
        }
    }

    /// Removes a camera's series.
    pub fn forget(&self, camera: &str) {
        for kind in KINDS {
            let _ = self.loss.remove_label_values(&[camera, kind]);
            let _ = self.jitter.remove_label_values(&[camera, kind]);
            let _ = self.rtt.remove_label_values(&[camera, kind]);
            let _ = self.nacks.remove_label_values(&[camera, kind]);
        }
        let _ = self.retransmits.remove_label_values(&[camera]);
        let _ = self.keyframe_requests.remove_label_values(&[camera]);
        let _ = self.keyframes_sent.remove_label_values(&[camera]);
        let _ = self.time_to_first_frame.remove_label_values(&[camera]);
    }
}

impl Default for ViewerQualityFamilies {
    fn default() -> Self {
        Self::new()
    }
}

/// One camera's viewer-quality series, resolved once.
#[derive(Clone)]
pub struct ViewerQuality {
    /// Loss ratio, by [`Kind`].
    pub loss: [Histogram; 2],
    /// Jitter, by [`Kind`].
    pub jitter: [Histogram; 2],
    /// Round-trip time, by [`Kind`].
    pub rtt: [Histogram; 2],
    /// NACKs received, by [`Kind`].
    pub nacks: [IntCounter; 2],
    /// Packets sent again on NACKs.
    pub retransmits: IntCounter,
    /// PLI/FIR received.
    pub keyframe_requests: IntCounter,
    /// Keyframes sent.
    pub keyframes_sent: IntCounter,
    /// Time to a viewer's first frame.
    pub time_to_first_frame: Histogram,
}
