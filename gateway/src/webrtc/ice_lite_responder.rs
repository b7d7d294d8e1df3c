//! ICE-lite (RFC 8445 §2.5) for one viewer: checks a STUN Binding request from the viewer's
//! browser and answers it, as the second piece of the egress path of our own that issue 7 plans
//! (`benches/EGRESS-PLAN.md`); today `rtc`'s ICE agent does this inside each peer connection.
//!
//! A request is answered only when it is one of this session's: FINGERPRINT valid, USERNAME
//! `<our ufrag>:<the viewer's ufrag>`, MESSAGE-INTEGRITY valid under our ICE password. Anything
//! else gets no answer at all (no reflection or amplification for a stranger, RFC 7675's consent
//! for media). The answer is a Binding success with the request's transaction id,
//! XOR-MAPPED-ADDRESS of where it came from, MESSAGE-INTEGRITY and FINGERPRINT. A request with
//! USE-CANDIDATE nominates its source address: media goes there (being ICE-lite, we are always
//! the controlled agent and never check the other way).

use std::net::SocketAddr;

use rtc::crypto::RTCCryptoProvider;
use rtc::stun::attributes::{ATTR_USE_CANDIDATE, ATTR_USERNAME};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;

/// What a Binding request was, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingCheck {
    /// One of this session's: send `response` back to `from`; `nominated` when it carries
    /// USE-CANDIDATE (media goes to `from` from now on).
    Answer {
        /// The Binding success, ready to send.
        response: Vec<u8>,
        /// Where the request came from (and the answer goes).
        from: SocketAddr,
        /// The request nominated this address.
        nominated: bool,
    },
    /// Not one of this session's (or not a Binding request): no answer.
    Ignored(&'static str),
}

/// One viewer's ICE-lite credentials.
pub struct IceLiteResponder {
    /// `<local ufrag>:<remote ufrag>`, what a request's USERNAME must be.
    username: String,
    local_password: String,
    crypto: std::sync::Arc<dyn RTCCryptoProvider>,
}

impl IceLiteResponder {
    /// A responder for the session whose local credentials are `local_ufrag` / `local_password`
    /// (in our answer) and whose remote ufrag is `remote_ufrag` (from the viewer's offer).
    pub fn new(
        local_ufrag: &str,
        local_password: &str,
        remote_ufrag: &str,
    ) -> Result<IceLiteResponder, String> {
        let crypto = rtc::crypto::default_provider().map_err(|e| e.to_string())?;
        Ok(IceLiteResponder {
            username: format!("{local_ufrag}:{remote_ufrag}"),
            local_password: local_password.to_owned(),
            crypto,
        })
    }

    /// Checks one datagram (a STUN message, by its first byte) from `from` and answers it.
    pub fn check(&self, datagram: &[u8], from: SocketAddr) -> BindingCheck {
        let mut request = Message::new();
        if request.unmarshal_binary(datagram).is_err() {
            return BindingCheck::Ignored("not a STUN message");
        }
        if request.typ != BINDING_REQUEST {
            return BindingCheck::Ignored("not a Binding request");
        }
        if FINGERPRINT.check(&request).is_err() {
            return BindingCheck::Ignored("no valid FINGERPRINT");
        }
        match TextAttribute::get_from_as(&request, ATTR_USERNAME) {
            Ok(username) if username.text == self.username => {}
            _ => return BindingCheck::Ignored("USERNAME is not this session's"),
        }
        let crypto = self.crypto.crypto();
        if MessageIntegrity::check(&mut request, self.local_password.as_bytes(), crypto).is_err() {
            return BindingCheck::Ignored("MESSAGE-INTEGRITY does not verify");
        }
        let mut response = Message::new();
        let setters: [Box<dyn Setter + '_>; 5] = [
            Box::new(request.clone()),
            Box::new(BINDING_SUCCESS),
            Box::new(XorMappedAddress {
                ip: from.ip(),
                port: from.port(),
            }),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                self.local_password.clone(),
                crypto,
            )),
            Box::new(FINGERPRINT),
        ];
        if response.build(&setters).is_err() {
            return BindingCheck::Ignored("the answer could not be built");
        }
        BindingCheck::Answer {
            response: response.raw,
            from,
            nominated: request.contains(ATTR_USE_CANDIDATE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::TransactionId;

    const LOCAL_UFRAG: &str = "gwUf";
    const LOCAL_PASSWORD: &str = "gateway-ice-password-of-24+chars";
    const REMOTE_UFRAG: &str = "brws";

    fn request(username: &str, password: &str, nominate: bool) -> (Vec<u8>, TransactionId) {
        crate::webrtc::browser_side::binding_request(username, password, nominate)
    }

    fn responder() -> IceLiteResponder {
        IceLiteResponder::new(LOCAL_UFRAG, LOCAL_PASSWORD, REMOTE_UFRAG).unwrap()
    }

    #[test]
    fn a_check_of_this_session_is_answered_as_the_browser_expects() {
        let from: SocketAddr = "127.0.0.1:50123".parse().unwrap();
        let username = format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}");
        for nominate in [false, true] {
            let (datagram, transaction) = request(&username, LOCAL_PASSWORD, nominate);
            let BindingCheck::Answer {
                response,
                from: to,
                nominated,
            } = responder().check(&datagram, from)
            else {
                panic!("not answered");
            };
            assert_eq!((to, nominated), (from, nominate));
            // The browser's side: a success for its transaction, its own address mapped, and
            // integrity under the password it has from our answer.
            let mut answer = Message::new();
            answer.unmarshal_binary(&response).unwrap();
            assert_eq!(answer.typ, BINDING_SUCCESS);
            assert_eq!(answer.transaction_id, transaction);
            FINGERPRINT.check(&answer).unwrap();
            let provider = rtc::crypto::default_provider().unwrap();
            MessageIntegrity::check(&mut answer, LOCAL_PASSWORD.as_bytes(), provider.crypto())
                .unwrap();
            let mut mapped = XorMappedAddress::default();
            use rtc::stun::message::Getter;
            mapped.get_from(&answer).unwrap();
            assert_eq!((mapped.ip, mapped.port), (from.ip(), from.port()));
        }
    }

    #[test]
    fn strangers_get_no_answer() {
        let from: SocketAddr = "127.0.0.1:50123".parse().unwrap();
        let username = format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}");
        let (wrong_password, _) = request(&username, "another-password-entirely-here", false);
        let (wrong_user, _) = request(&format!("{LOCAL_UFRAG}:xxxx"), LOCAL_PASSWORD, false);
        let (mut no_fingerprint, _) = request(&username, LOCAL_PASSWORD, false);
        let last = no_fingerprint.len() - 1;
        no_fingerprint[last] ^= 0xff;
        for (datagram, why) in [
            (wrong_password, "MESSAGE-INTEGRITY"),
            (wrong_user, "USERNAME"),
            (no_fingerprint, "FINGERPRINT"),
            (vec![0, 1, 0, 0], "STUN"),
            (b"\x16\xfe\xfd not stun at all".to_vec(), "STUN"),
        ] {
            match responder().check(&datagram, from) {
                BindingCheck::Ignored(reason) => assert!(reason.contains(why), "{reason}"),
                answered => panic!("{why}: answered {answered:?}"),
            }
        }
    }
}
