//! H.265 RTP payload inspection (RFC 7798): does this packet start a keyframe a decoder can begin
//! from (a VPS or SPS, sent in-band before each IRAP picture, or the start of an IRAP slice)?

/// NAL unit types (the 6 bits after the forbidden bit of the 2-byte NAL header).
const NAL_IRAP_FIRST: u8 = 16; // BLA_W_LP
const NAL_IRAP_LAST: u8 = 21; // CRA_NUT
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_AP: u8 = 48;
const NAL_FU: u8 = 49;

fn nal_type(first: u8) -> u8 {
    (first >> 1) & 0x3f
}

fn starts_decoding(nal_type: u8) -> bool {
    matches!(nal_type, NAL_VPS | NAL_SPS) || (NAL_IRAP_FIRST..=NAL_IRAP_LAST).contains(&nal_type)
}

/// True when an H.265 RTP payload begins a keyframe.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match nal_type(first) {
        NAL_AP => {
            // Aggregation packet: 2-byte header, then (16-bit size, NAL unit)*.
            let mut rest = payload.get(2..).unwrap_or_default();
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if starts_decoding(nal_type(rest[2])) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            false
        }
        // Fragmentation unit: 2-byte header, then the FU header (S bit 0x80, 6-bit type).
        NAL_FU => payload
            .get(2)
            .is_some_and(|fu| fu & 0x80 != 0 && starts_decoding(fu & 0x3f)),
        other => starts_decoding(other),
    }
}

/// True when an H.265 RTP payload carries (a part of) a coded slice (a VCL NAL unit, types 0 to
/// 31), i.e. picture data rather than only parameter sets or SEI.
pub fn carries_slice(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let is_slice = |nal_type: u8| nal_type <= 31;
    match nal_type(first) {
        NAL_AP => {
            let mut rest = payload.get(2..).unwrap_or_default();
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if is_slice(nal_type(rest[2])) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            false
        }
        NAL_FU => payload.get(2).is_some_and(|fu| is_slice(fu & 0x3f)),
        other => is_slice(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(nal_type: u8) -> [u8; 2] {
        [nal_type << 1, 1]
    }

    #[test]
    fn parameter_sets_and_irap_starts_are_keyframes_nothing_else() {
        assert!(starts_keyframe(&[&header(NAL_VPS)[..], &[0xaa]].concat()));
        assert!(starts_keyframe(&[&header(19)[..], &[0xaa]].concat())); // IDR_W_RADL
        assert!(!starts_keyframe(&[&header(1)[..], &[0xaa]].concat())); // TRAIL_R
        let ap = [
            &header(NAL_AP)[..],
            &[0, 2],
            &header(NAL_VPS),
            &[0, 2],
            &header(34),
        ]
        .concat();
        assert!(starts_keyframe(&ap));
        let fu_start = [&header(NAL_FU)[..], &[0x80 | 19, 0xaa]].concat();
        let fu_middle = [&header(NAL_FU)[..], &[19, 0xaa]].concat();
        assert!(starts_keyframe(&fu_start));
        assert!(!starts_keyframe(&fu_middle));
        for garbage in [&[][..], &[0x60], &[0x62, 1], &[0x60, 1, 0xff, 0xff, 0x40]] {
            let _ = starts_keyframe(garbage);
            let _ = carries_slice(garbage);
        }
        assert!(carries_slice(&fu_middle), "a slice's fragment");
        assert!(!carries_slice(&ap), "parameter sets only");
        assert!(carries_slice(&[&header(1)[..], &[0xaa]].concat()));
    }
}
