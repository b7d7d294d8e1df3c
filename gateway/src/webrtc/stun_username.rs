//! Reads the local ICE username fragment out of a STUN Binding request (RFC 8489 §14.3, RFC 8445
//! §7.2.2): the one field the UDP demultiplexer needs to route a new address to its session.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;

/// The local ufrag (before the `:`) of a STUN Binding request's USERNAME, or `None` when the
/// datagram is not such a request. Never panics on any input.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < 20 || datagram[0] & 0xc0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([datagram[0], datagram[1]]) != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let mut attributes = datagram.get(20..20 + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        let padded = (len + 3) & !3;
        attributes = attributes.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attrs = vec![0x80, 0x2a, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]; // ICE-CONTROLLING first
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0, 1];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_the_local_ufrag() {
        assert_eq!(local_ufrag(&binding_request(b"abcd:wxyz")), Some("abcd"));
    }

    #[test]
    fn ignores_non_requests_and_garbage() {
        let mut response = binding_request(b"abcd:wxyz");
        response[1] = 0x01;
        response[0] = 0x01; // binding success response
        assert_eq!(local_ufrag(&response), None);
        assert_eq!(local_ufrag(&[0x80, 96, 0, 0]), None); // RTP
        assert_eq!(local_ufrag(&[22, 254, 253]), None); // DTLS
        let mut truncated = binding_request(b"abcd:wxyz");
        truncated.truncate(30);
        assert_eq!(local_ufrag(&truncated), None);
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 29) as u8 & 0x3f).collect();
            let _ = local_ufrag(&junk);
        }
    }
}
