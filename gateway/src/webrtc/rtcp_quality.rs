//! What a viewer's RTCP says about the quality it gets: each receiver report block about one of
//! the streams sent to it gives the fraction lost, the jitter and (when it carries the last
//! sender report's time) the round-trip time; NACKs and keyframe requests are counted. Pure: the
//! caller passes the stream's SSRCs and clock rates and the wall-clock time, and records the
//! result in [`crate::metrics::viewer_quality`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtc::rtcp::Packet;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use super::keyframe_feedback::is_keyframe_request;
use crate::metrics::viewer_quality::{Kind, ViewerQuality};

/// Round-trip times beyond this are taken as a report about another clock (or garbage), not
/// recorded.
const MAX_RTT: Duration = Duration::from_secs(10);

/// A stream sent to the viewer.
#[derive(Debug, Clone, Copy)]
pub struct SentStream {
    /// Its SSRC (the viewer's, after rewriting).
    pub ssrc: u32,
    /// Its RTP clock rate.
    pub clock_rate: u32,
    /// Video or audio.
    pub kind: Kind,
}

/// One report block's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportFigures {
    /// The stream it is about.
    pub kind: Kind,
    /// Fraction lost since the previous report, 0 to 1.
    pub loss: f64,
    /// Interarrival jitter.
    pub jitter: Duration,
    /// Round-trip time, when the block answers a sender report.
    pub rtt: Option<Duration>,
}

/// What one RTCP compound packet from a viewer says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ViewerFeedback {
    /// Report blocks about the streams sent.
    pub reports: Vec<ReportFigures>,
    /// NACK packets, by [`Kind`].
    pub nacks: [u64; 2],
    /// PLI/FIR packets.
    pub keyframe_requests: u64,
}

impl ViewerFeedback {
    /// Reads `packets` (one compound packet) about `streams`, at wall-clock time `now`.
    pub fn read(packets: &[Box<dyn Packet>], streams: &[SentStream], now: SystemTime) -> Self {
        let mut feedback = ViewerFeedback::default();
        let stream = |ssrc: u32| streams.iter().find(|s| s.ssrc == ssrc);
        for packet in packets {
            let any = packet.as_any();
            let blocks: &[ReceptionReport] = if let Some(rr) = any.downcast_ref::<ReceiverReport>()
            {
                &rr.reports
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                &sr.reports
            } else {
                &[]
            };
            for block in blocks {
                if let Some(sent) = stream(block.ssrc) {
                    feedback.reports.push(figures(block, sent, now));
                }
            }
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                if let Some(sent) = stream(nack.media_ssrc) {
                    feedback.nacks[sent.kind as usize] += 1;
                }
            } else if is_keyframe_request(packet.as_ref()) {
                feedback.keyframe_requests += 1;
            }
        }
        feedback
    }

    /// True when there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.nacks == [0, 0] && self.keyframe_requests == 0
    }

    /// Records it in a camera's series.
    pub fn record(&self, quality: &ViewerQuality) {
        for report in &self.reports {
            let kind = report.kind as usize;
            quality.loss[kind].observe(report.loss);
            quality.jitter[kind].observe(report.jitter.as_secs_f64());
            if let Some(rtt) = report.rtt {
                quality.rtt[kind].observe(rtt.as_secs_f64());
            }
        }
        for (counter, nacks) in quality.nacks.iter().zip(self.nacks) {
            counter.inc_by(nacks);
        }
        quality.keyframe_requests.inc_by(self.keyframe_requests);
    }
}

fn figures(block: &ReceptionReport, sent: &SentStream, now: SystemTime) -> ReportFigures {
    let jitter = if sent.clock_rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(f64::from(block.jitter) / f64::from(sent.clock_rate))
    };
    ReportFigures {
        kind: sent.kind,
        loss: f64::from(block.fraction_lost) / 256.0,
        jitter,
        rtt: round_trip(block, now),
    }
}

/// RFC 3550 §6.4.1: RTT = arrival − LSR − DLSR, in NTP short format (1/65536 s).
fn round_trip(block: &ReceptionReport, now: SystemTime) -> Option<Duration> {
    if block.last_sender_report == 0 {
        return None;
    }
    let units = ntp_short(now)
        .wrapping_sub(block.last_sender_report)
        .wrapping_sub(block.delay);
    let rtt = Duration::from_secs_f64(f64::from(units) / 65536.0);
    (rtt <= MAX_RTT).then_some(rtt)
}

/// `time` as a 64-bit NTP timestamp (RFC 3550 §4: seconds since 1900, 32-bit fraction).
pub fn ntp_time(time: SystemTime) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// The middle 32 bits of the NTP timestamp of `time`.
pub fn ntp_short(time: SystemTime) -> u32 {
    (ntp_time(time) >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

    const VIDEO: SentStream = SentStream {
        ssrc: 1111,
        clock_rate: 90_000,
        kind: Kind::Video,
    };
    const AUDIO: SentStream = SentStream {
        ssrc: 2222,
        clock_rate: 48_000,
        kind: Kind::Audio,
    };

    fn block(ssrc: u32, fraction_lost: u8, jitter: u32, lsr: u32, dlsr: u32) -> ReceptionReport {
        ReceptionReport {
            ssrc,
            fraction_lost,
            jitter,
            last_sender_report: lsr,
            delay: dlsr,
            ..Default::default()
        }
    }

    #[test]
    fn receiver_reports_give_loss_jitter_and_rtt_per_stream() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now_short = ntp_short(now);
        // The SR went out 80 ms ago; the viewer held it 30 ms: 50 ms round trip.
        let lsr = now_short.wrapping_sub(80 * 65536 / 1000);
        let dlsr = 30 * 65536 / 1000;
        let packets: Vec<Box<dyn Packet>> = vec![Box::new(ReceiverReport {
            ssrc: 9,
            reports: vec![
                block(1111, 64, 900, lsr, dlsr),
                block(2222, 0, 480, 0, 0),
                block(3333, 255, 1, lsr, dlsr),
            ],
            ..Default::default()
        })];
        let feedback = ViewerFeedback::read(&packets, &[VIDEO, AUDIO], now);
        assert_eq!(feedback.reports.len(), 2, "the unknown SSRC is ignored");
        let video = feedback.reports[0];
        assert_eq!(video.kind, Kind::Video);
        assert!((video.loss - 0.25).abs() < 1e-9);
        assert!((video.jitter.as_secs_f64() - 0.01).abs() < 1e-9);
        let rtt = video.rtt.expect("an RTT").as_secs_f64();
        assert!((rtt - 0.050).abs() < 0.001, "{rtt}");
        let audio = feedback.reports[1];
        assert_eq!(audio.kind, Kind::Audio);
        assert!((audio.jitter.as_secs_f64() - 0.01).abs() < 1e-9);
        assert_eq!(audio.rtt, None, "no sender report answered yet");
    }

    #[test]
    fn an_rtt_from_another_clock_is_not_recorded() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let lsr = ntp_short(now).wrapping_add(65536); // "one second in the future"
        let packets: Vec<Box<dyn Packet>> = vec![Box::new(ReceiverReport {
            ssrc: 9,
            reports: vec![block(1111, 0, 0, lsr, 0)],
            ..Default::default()
        })];
        let feedback = ViewerFeedback::read(&packets, &[VIDEO], now);
        assert_eq!(feedback.reports[0].rtt, None);
    }

    #[test]
    fn nacks_and_keyframe_requests_are_counted() {
        let packets: Vec<Box<dyn Packet>> = vec![
            Box::new(TransportLayerNack {
                sender_ssrc: 9,
                media_ssrc: 2222,
                nacks: vec![NackPair {
                    packet_id: 10,
                    lost_packets: 0,
                }],
            }),
            Box::new(TransportLayerNack {
                sender_ssrc: 9,
                media_ssrc: 1111,
                nacks: vec![],
            }),
            Box::new(PictureLossIndication {
                sender_ssrc: 9,
                media_ssrc: 1111,
            }),
        ];
        let feedback = ViewerFeedback::read(&packets, &[VIDEO, AUDIO], SystemTime::now());
        assert_eq!(feedback.nacks, [1, 1]);
        assert_eq!(feedback.keyframe_requests, 1);
        assert!(!feedback.is_empty());
        assert!(ViewerFeedback::read(&[], &[VIDEO], SystemTime::now()).is_empty());
    }
}
