//! H.264 RTP payload inspection (RFC 6184): does this packet start a keyframe a decoder can begin
//! from? The hub starts every new or recovering viewer at such a packet. Does it carry picture
//! data? A keyframe's access unit ends with such a packet (see [`super::keyframe`]).

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// True when an H.264 RTP payload begins a keyframe: it carries an SPS (sent in-band right before
/// each IDR), or is the first fragment of / a whole IDR slice.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        NAL_IDR | NAL_SPS => true,
        NAL_STAP_A => stap_a_nal_types(&payload[1..]).any(|t| t == NAL_SPS || t == NAL_IDR),
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == NAL_IDR),
        _ => false,
    }
}

/// True when an H.264 RTP payload carries (a part of) a coded slice, i.e. picture data rather than
/// only parameter sets or SEI: a frame's last packet (marker bit) is one of these.
pub fn carries_slice(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let is_slice = |nal_type: u8| (1..=NAL_IDR).contains(&nal_type);
    match first & 0x1f {
        NAL_STAP_A => stap_a_nal_types(&payload[1..]).any(is_slice),
        NAL_FU_A => payload.get(1).is_some_and(|fu| is_slice(fu & 0x1f)),
        nal_type => is_slice(nal_type),
    }
}

/// The NAL unit types inside a STAP-A payload (after its own NAL header), stopping at malformed data.
fn stap_a_nal_types(mut rest: &[u8]) -> impl Iterator<Item = u8> + '_ {
    std::iter::from_fn(move || {
        let size = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let nal = rest.get(2..2 + size)?;
        rest = &rest[2 + size..];
        nal.first().map(|h| h & 0x1f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_single_nal_keyframes() {
        assert!(starts_keyframe(&[0x65, 0x88]));
        assert!(starts_keyframe(&[0x67, 0x42]));
        assert!(!starts_keyframe(&[0x41, 0x9a])); // non-IDR slice
        assert!(!starts_keyframe(&[0x68])); // PPS alone
        assert!(!starts_keyframe(&[]));
    }

    #[test]
    fn recognises_stap_a_with_sps() {
        let stap = [0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68];
        assert!(starts_keyframe(&stap));
        let no_sps = [0x78, 0, 1, 0x68, 0, 1, 0x06];
        assert!(!starts_keyframe(&no_sps));
        let truncated = [0x78, 0, 9, 0x67];
        assert!(!starts_keyframe(&truncated));
    }

    #[test]
    fn tells_slices_from_parameter_sets() {
        assert!(carries_slice(&[0x65, 0x88])); // IDR
        assert!(carries_slice(&[0x41, 0x9a])); // non-IDR
        assert!(carries_slice(&[0x7c, 0x05, 0xb8])); // FU-A of an IDR, middle
        assert!(!carries_slice(&[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68])); // STAP-A SPS+PPS
        assert!(carries_slice(&[0x78, 0, 1, 0x68, 0, 2, 0x65, 0x88])); // STAP-A PPS+IDR
        assert!(!carries_slice(&[0x06, 0x05])); // SEI
        assert!(!carries_slice(&[0x7c])); // truncated FU-A
        assert!(!carries_slice(&[]));
    }

    #[test]
    fn recognises_only_the_first_idr_fragment() {
        assert!(starts_keyframe(&[0x7c, 0x85, 0xb8]));
        assert!(!starts_keyframe(&[0x7c, 0x05, 0xb8])); // middle fragment
        assert!(!starts_keyframe(&[0x7c, 0x81, 0xb8])); // non-IDR start
        assert!(!starts_keyframe(&[0x7c])); // truncated
    }
}
