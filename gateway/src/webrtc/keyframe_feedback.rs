//! An interceptor that lets a viewer's RTCP feedback reach the application: keyframe requests
//! (PLI and FIR), which it turns into a request to the camera, and receiver reports and NACKs,
//! which it reads for the quality metrics ([`super::rtcp_quality`]). The packets also go on
//! through the interceptor chain (the NACK responder answers NACKs).

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::header::{FORMAT_FIR, FORMAT_PLI, PacketType};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// True when an RTCP packet asks the sender for a keyframe.
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let header = packet.header();
    header.packet_type == PacketType::PayloadSpecificFeedback
        && (header.count == FORMAT_PLI || header.count == FORMAT_FIR)
}

/// True when the application reads this RTCP packet: a keyframe request, a receiver or sender
/// report (report blocks), or a NACK.
pub fn is_for_application(packet: &dyn rtc::rtcp::Packet) -> bool {
    let kind = packet.header().packet_type;
    is_keyframe_request(packet)
        || kind == PacketType::ReceiverReport
        || kind == PacketType::SenderReport
        || kind == PacketType::TransportSpecificFeedback
}

/// Marks inbound RTCP feedback ([`is_for_application`]) for delivery to the application.
#[derive(Default)]
pub struct KeyframeFeedback {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeFeedback {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| is_for_application(p.as_ref()))
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        None
    }
}

impl Interceptor for KeyframeFeedback {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::receiver_report::ReceiverReport;

    #[test]
    fn pli_and_fir_are_keyframe_requests_reports_are_not() {
        assert!(is_keyframe_request(&PictureLossIndication::default()));
        assert!(is_keyframe_request(&FullIntraRequest::default()));
        assert!(!is_keyframe_request(&ReceiverReport::default()));
    }
}
