//! SRTP protection with AEAD_AES_128_GCM (RFC 7714) of the RTP packets the gateway sends, in
//! place: the packet is sealed in the caller's buffer and its tag appended, with no allocation
//! and no copy. The first piece of the egress media path of our own that issue 7 plans
//! (`benches/EGRESS-PLAN.md`); `rtc`'s SRTP context allocates and copies twice per packet.
//!
//! Keys: the DTLS-SRTP master key (16 bytes) and salt (12 bytes) give the session key and salt by
//! the AES-CM key derivation of RFC 3711 §4.3 (key derivation rate 0, labels 0x00 and 0x02). Per
//! packet (RFC 7714 §8): IV = (0x0000 ‖ SSRC ‖ ROC ‖ SEQ) ⊕ session salt; the RTP header is the
//! associated data, the payload is encrypted, and the 16-byte tag follows it. The rollover
//! counter (ROC) of each SSRC goes up when its sequence numbers wrap; a retransmission of a
//! packet sent before the wrap gets the ROC it was sent with (RFC 3711 Appendix A's estimate),
//! so it is sealed byte for byte as the first time, never under a reused nonce with other bytes.

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rtc::crypto::{BlockCipherAlgorithm, RTCCrypto};

/// Master key length of AEAD_AES_128_GCM.
pub const MASTER_KEY_LEN: usize = 16;
/// Master salt length of AEAD_AES_128_GCM.
pub const MASTER_SALT_LEN: usize = 12;
/// Bytes the tag adds to every packet.
pub const TAG_LEN: usize = 16;
/// SSRCs one sender tracks (a viewer receives video and audio; room to spare).
const MAX_SSRCS: usize = 8;
/// KDF label of the SRTP encryption key.
const LABEL_SRTP_ENCRYPTION: u8 = 0x00;
/// KDF label of the SRTP salt.
const LABEL_SRTP_SALT: u8 = 0x02;

/// Why a packet could not be protected, or keys not set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// The key derivation's block cipher failed.
    #[error("SRTP key derivation failed: {0}")]
    KeyDerivation(String),
    /// Not an RTP packet (too short, not version 2, or a header longer than the packet).
    #[error("not an RTP packet")]
    NotRtp,
    /// More SSRCs than one sender tracks.
    #[error("more than {MAX_SSRCS} SSRCs")]
    TooManySsrcs,
    /// The sealing failed (ring refuses only impossible lengths).
    #[error("AES-GCM sealing failed")]
    Seal,
}

/// One SSRC's rollover counter and highest sequence number sent.
#[derive(Clone, Copy, Debug)]
struct Rollover {
    ssrc: u32,
    roc: u32,
    highest: u16,
}

/// Protects outgoing RTP packets of one DTLS-SRTP association (one direction).
pub struct SrtpGcmSender {
    key: LessSafeKey,
    salt: [u8; NONCE_LEN],
    rollovers: Vec<Rollover>,
}

/// AES-CM key derivation (RFC 3711 §4.3.3, key derivation rate 0): `out.len()` bytes for `label`.
fn derive(
    crypto: &dyn RTCCrypto,
    master_key: &[u8; MASTER_KEY_LEN],
    master_salt: &[u8; MASTER_SALT_LEN],
    label: u8,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    // x = (label ‖ index DIV kdr = 0) ⊕ master salt, the salt aligned left in the 16-byte block;
    // the last two bytes count the output blocks.
    let mut input = [0u8; 16];
    input[..MASTER_SALT_LEN].copy_from_slice(master_salt);
    input[7] ^= label;
    for (counter, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = input;
        block[14..].copy_from_slice(&(counter as u16).to_be_bytes());
        crypto
            .block_encrypt(BlockCipherAlgorithm::Aes128, master_key, &mut block)
            .map_err(|e| SrtpError::KeyDerivation(e.to_string()))?;
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    Ok(())
}

/// The length of an RTP packet's header (fixed part, CSRCs, extension), if it is one.
fn header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    if first >> 6 != 2 || packet.len() < 12 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= packet.len()).then_some(len)
}

impl SrtpGcmSender {
    /// A sender keyed from the DTLS-SRTP master key and salt (the local side's).
    pub fn new(
        master_key: &[u8; MASTER_KEY_LEN],
        master_salt: &[u8; MASTER_SALT_LEN],
    ) -> Result<SrtpGcmSender, SrtpError> {
        let provider =
            rtc::crypto::default_provider().map_err(|e| SrtpError::KeyDerivation(e.to_string()))?;
        let crypto = provider.crypto();
        let mut session_key = [0u8; 16];
        derive(
            crypto,
            master_key,
            master_salt,
            LABEL_SRTP_ENCRYPTION,
            &mut session_key,
        )?;
        let mut salt = [0u8; NONCE_LEN];
        derive(crypto, master_key, master_salt, LABEL_SRTP_SALT, &mut salt)?;
        let key = UnboundKey::new(&AES_128_GCM, &session_key)
            .map_err(|_| SrtpError::KeyDerivation("AES-128-GCM refused the session key".into()))?;
        Ok(SrtpGcmSender {
            key: LessSafeKey::new(key),
            salt,
            rollovers: Vec::with_capacity(2),
        })
    }

    /// The ROC of packet `sequence` of `ssrc`, updating the highest sequence sent.
    fn roc(&mut self, ssrc: u32, sequence: u16) -> Result<u32, SrtpError> {
        let Some(state) = self.rollovers.iter_mut().find(|r| r.ssrc == ssrc) else {
            if self.rollovers.len() >= MAX_SSRCS {
                return Err(SrtpError::TooManySsrcs);
            }
            self.rollovers.push(Rollover {
                ssrc,
                roc: 0,
                highest: sequence,
            });
            return Ok(0);
        };
        let ahead = sequence.wrapping_sub(state.highest);
        if ahead == 0 {
            return Ok(state.roc);
        }
        if ahead < 0x8000 {
            // A newer packet; past 0xffff the sequence wrapped.
            if sequence < state.highest {
                state.roc = state.roc.wrapping_add(1);
            }
            state.highest = sequence;
            Ok(state.roc)
        } else if sequence > state.highest {
            // An older packet from before the last wrap (a retransmission).
            Ok(state.roc.wrapping_sub(1))
        } else {
            Ok(state.roc)
        }
    }

    /// Protects the RTP packet in `packet` in place: its payload encrypted, the tag appended
    /// (`packet` grows by [`TAG_LEN`]; with that much spare capacity, nothing is allocated).
    pub fn protect(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let len = packet.len();
        packet.resize(len + TAG_LEN, 0);
        let sealed = self.seal(packet);
        if sealed.is_err() {
            packet.truncate(len);
        }
        sealed
    }

    /// Protects the RTP packet in `packet[..len - TAG_LEN]` in place, the tag written into the
    /// last [`TAG_LEN`] bytes (room the caller leaves): what the egress path does in its send
    /// buffer.
    pub fn seal(&mut self, packet: &mut [u8]) -> Result<(), SrtpError> {
        let rtp_len = packet.len().checked_sub(TAG_LEN).ok_or(SrtpError::NotRtp)?;
        let (rtp, tag_out) = packet.split_at_mut(rtp_len);
        let header = header_len(rtp).ok_or(SrtpError::NotRtp)?;
        let sequence = u16::from_be_bytes([rtp[2], rtp[3]]);
        let ssrc = u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]);
        let roc = self.roc(ssrc, sequence)?;
        let mut iv = [0u8; NONCE_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..10].copy_from_slice(&roc.to_be_bytes());
        iv[10..12].copy_from_slice(&sequence.to_be_bytes());
        for (byte, salt) in iv.iter_mut().zip(self.salt) {
            *byte ^= salt;
        }
        let (head, payload) = rtp.split_at_mut(header);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(&*head),
                payload,
            )
            .map_err(|_| SrtpError::Seal)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::srtp::context::Context;
    use rtc::srtp::protection_profile::ProtectionProfile;

    const KEY: [u8; 16] = [
        0x07, 0x7c, 0x61, 0x43, 0xcb, 0x22, 0x1b, 0xc3, 0x55, 0xff, 0x23, 0xd5, 0xf9, 0x84, 0xa1,
        0x6e,
    ];
    const SALT: [u8; 12] = [
        0x9a, 0xf3, 0xe9, 0x53, 0x64, 0xeb, 0xac, 0x9c, 0x05, 0x08, 0x2e, 0x5d,
    ];

    fn packet(sequence: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
        let mut packet = vec![0x80, 102];
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&(u32::from(sequence) * 3000).to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend((0..payload_len).map(|i| (i as u8) ^ (sequence as u8)));
        packet
    }

    fn receiver() -> Context {
        let provider = rtc::crypto::default_provider().unwrap();
        Context::new(
            &KEY,
            &SALT,
            ProtectionProfile::AeadAes128Gcm,
            None,
            None,
            provider.crypto(),
        )
        .unwrap()
    }

    #[test]
    fn what_it_seals_rtc_s_srtp_opens_across_a_sequence_wrap_and_for_two_ssrcs() {
        let mut sender = SrtpGcmSender::new(&KEY, &SALT).unwrap();
        let mut receiver = receiver();
        for (sequence, ssrc) in (65_530..=65_535u16)
            .chain(0..6)
            .flat_map(|s| [(s, 0x1111_1111), (s.wrapping_add(100), 0x2222_2222)])
        {
            let plain = packet(sequence, ssrc, 1188);
            let mut sealed = plain.clone();
            sealed.reserve(TAG_LEN);
            let capacity = sealed.capacity();
            sender.protect(&mut sealed).unwrap();
            assert_eq!(sealed.len(), plain.len() + TAG_LEN);
            assert_eq!(sealed.capacity(), capacity, "nothing allocated");
            assert_ne!(sealed[12..plain.len()], plain[12..], "encrypted");
            let opened = receiver.decrypt_rtp(&sealed).unwrap();
            assert_eq!(&opened[..], &plain[..], "seq {sequence} ssrc {ssrc:#x}");
        }
    }

    #[test]
    fn a_retransmission_from_before_the_wrap_is_sealed_as_the_first_time() {
        let mut sender = SrtpGcmSender::new(&KEY, &SALT).unwrap();
        let mut first = packet(65_534, 7, 100);
        sender.protect(&mut first).unwrap();
        for sequence in [65_535, 0, 1] {
            sender.protect(&mut packet(sequence, 7, 100)).unwrap();
        }
        let mut again = packet(65_534, 7, 100);
        sender.protect(&mut again).unwrap();
        assert_eq!(again, first, "same ROC, same nonce, same bytes");
    }

    #[test]
    fn what_is_not_rtp_is_refused() {
        let mut sender = SrtpGcmSender::new(&KEY, &SALT).unwrap();
        for bad in [vec![], vec![0x80; 11], vec![0x40; 40], {
            let mut p = packet(1, 1, 0);
            p[0] |= 0x0f; // 15 CSRCs that are not there
            p
        }] {
            let mut bad = bad;
            assert_eq!(sender.protect(&mut bad), Err(SrtpError::NotRtp));
        }
        for ssrc in 0..MAX_SSRCS as u32 {
            sender.protect(&mut packet(1, ssrc, 10)).unwrap();
        }
        assert_eq!(
            sender.protect(&mut packet(1, 99, 10)),
            Err(SrtpError::TooManySsrcs)
        );
    }
}
