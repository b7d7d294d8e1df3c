//! DTLS-SRTP (RFC 5764) for one viewer, as the DTLS client (`a=setup:active` in our answer):
//! the third piece of the egress path of our own that issue 7 plans (`benches/EGRESS-PLAN.md`),
//! on `rtc`'s sans-IO DTLS endpoint, whose keying-material exporter is public (`rtc`'s peer
//! connection keeps it private).
//!
//! Feed it the viewer's DTLS datagrams, send what [`DtlsSrtpClient::poll_transmit`] gives, drive
//! its timer; when the handshake completes it hands over the SRTP keys. The viewer's certificate
//! must match the `a=fingerprint` of its offer (SHA-256), or the handshake fails: that is what ties
//! the encrypted media to the signalling's authenticated offer. Extended master secret is
//! required; the SRTP profiles offered are AEAD_AES_128_GCM, then AES128_CM_HMAC_SHA1_80, as the
//! gateway offers them today. An unanswered handshake flight is sent again after 250 ms, then
//! after twice as long each time up to 4 s (RFC 6347 §4.2.4.1's backoff, which `rtc::dtls` lacks:
//! it retransmits at a fixed interval, at most 7 times); a viewer has ~16 s to answer a flight.
//! `rtc`'s peer connection: every 1 s, 7 s in all, not configurable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc::dtls::crypto::Certificate;
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::shared::TransportProtocol;

/// The exporter label of DTLS-SRTP (RFC 5764 §4.2).
const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// How often an unanswered handshake flight is sent again.
const FLIGHT_INTERVAL: Duration = Duration::from_millis(250);
/// The longest wait between two retransmissions of a flight. `rtc::dtls` gives up after its 7th;
/// with a fixed 250 ms a busy viewer had 2 s to answer (a swarm connecting 500 viewers at once
/// timed out 6 % of them), with the backoff it has 250 ms + 0.5 + 1 + 2 + 4 + 4 + 4 s.
const MAX_RETRANSMIT_WAIT: Duration = Duration::from_secs(4);
/// The association's key in the endpoint: one viewer, whatever address ICE picks (the transmits
/// are addressed by the caller).
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

/// The SRTP keys of a completed handshake.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The negotiated profile.
    pub profile: SrtpProfile,
    /// Our master key and salt (what we send is protected with them).
    pub local_key: Vec<u8>,
    /// Our master salt.
    pub local_salt: Vec<u8>,
    /// The viewer's master key (its RTCP is protected with it).
    pub remote_key: Vec<u8>,
    /// The viewer's master salt.
    pub remote_salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpKeys({:?}, [REDACTED])", self.profile)
    }
}

/// The SRTP protection profiles offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpProfile {
    /// AEAD_AES_128_GCM (16-byte key, 12-byte salt).
    AeadAes128Gcm,
    /// AES128_CM_HMAC_SHA1_80 (16-byte key, 14-byte salt).
    Aes128CmHmacSha1_80,
}

impl SrtpProfile {
    fn salt_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes128Gcm => 12,
            SrtpProfile::Aes128CmHmacSha1_80 => 14,
        }
    }
}

/// What a datagram led to.
#[derive(Debug, PartialEq, Eq)]
pub enum DtlsEvent {
    /// The handshake completed: the keys.
    Connected(SrtpKeys),
    /// The viewer closed the association (`close_notify`).
    Closed,
}

/// Why the handshake could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsError {
    /// The SDP fingerprint is not a SHA-256 one this can check.
    #[error("the offer's fingerprint is not a usable sha-256 fingerprint")]
    Fingerprint,
    /// The DTLS layer refused (a bad record, the peer's certificate, a failed handshake).
    #[error("DTLS: {0}")]
    Dtls(String),
    /// The handshake negotiated no SRTP profile we offered.
    #[error("the handshake negotiated no SRTP profile we offered")]
    NoSrtpProfile,
}

fn dtls(error: impl std::fmt::Display) -> DtlsError {
    DtlsError::Dtls(error.to_string())
}

/// Parses an SDP `a=fingerprint` value (`sha-256 AB:CD:…`) into its 32 bytes.
pub fn parse_sha256_fingerprint(value: &str) -> Option<[u8; 32]> {
    let (algorithm, hex) = value.trim().split_once(' ')?;
    if !algorithm.eq_ignore_ascii_case("sha-256") {
        return None;
    }
    let mut bytes = [0u8; 32];
    let mut parts = hex.trim().split(':');
    for byte in &mut bytes {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(bytes)
}

/// One viewer's DTLS association, as the client.
pub struct DtlsSrtpClient {
    endpoint: Endpoint,
    connected: bool,
    /// The endpoint's retransmission timer is not run before this (the backoff).
    hold_until: Instant,
    /// How long the next retransmission of the flight in flight waits.
    retransmit_wait: Duration,
}

impl DtlsSrtpClient {
    /// Starts the handshake at `now` with our `certificate`, expecting the viewer's certificate
    /// to have `remote_fingerprint` (its offer's `a=fingerprint`); the ClientHello is then in
    /// [`DtlsSrtpClient::poll_transmit`].
    pub fn start(
        now: Instant,
        certificate: Certificate,
        remote_fingerprint: &str,
    ) -> Result<DtlsSrtpClient, DtlsError> {
        let expected =
            parse_sha256_fingerprint(remote_fingerprint).ok_or(DtlsError::Fingerprint)?;
        let provider = rtc::crypto::default_provider().map_err(dtls)?;
        let verify: rtc::dtls::config::VerifyPeerCertificateFn =
            Arc::new(move |raw: &[Vec<u8>], _| {
                let Some(certificate) = raw.first() else {
                    return Err(rtc::shared::error::Error::Other(
                        "the viewer sent no certificate".into(),
                    ));
                };
                let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
                if digest.as_ref() == expected {
                    Ok(())
                } else {
                    Err(rtc::shared::error::Error::Other(
                        "the viewer's certificate does not match its offer's fingerprint".into(),
                    ))
                }
            });
        let config = ConfigBuilder::default()
            .with_crypto_provider(provider)
            .with_certificates(vec![certificate])
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .with_flight_interval(FLIGHT_INTERVAL)
            .build(true, Some(PEER))
            .map_err(dtls)?;
        let mut endpoint = Endpoint::new(
            SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
            TransportProtocol::UDP,
            None,
        );
        endpoint
            .connect(now, PEER, Arc::new(config), None)
            .map_err(dtls)?;
        Ok(DtlsSrtpClient {
            endpoint,
            connected: false,
            hold_until: now,
            retransmit_wait: FLIGHT_INTERVAL * 2,
        })
    }

    /// Takes one DTLS datagram from the viewer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Vec<DtlsEvent>, DtlsError> {
        let events = self
            .endpoint
            .read(now, PEER, None, BytesMut::from(datagram))
            .map_err(dtls)?;
        // The viewer answered: the next flight starts its backoff afresh.
        self.hold_until = now;
        self.retransmit_wait = FLIGHT_INTERVAL * 2;
        let mut out = Vec::new();
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete if !self.connected => {
                    self.connected = true;
                    out.push(DtlsEvent::Connected(self.keys()?));
                }
                EndpointEvent::PeerClosed => out.push(DtlsEvent::Closed),
                _ => {}
            }
        }
        Ok(out)
    }

    fn keys(&self) -> Result<SrtpKeys, DtlsError> {
        let state = self
            .endpoint
            .get_connection_state(PEER)
            .ok_or_else(|| dtls("no association"))?;
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SrtpProfile::Aes128CmHmacSha1_80,
            _ => return Err(DtlsError::NoSrtpProfile),
        };
        let (key_len, salt_len) = (16, profile.salt_len());
        let material = state
            .export_keying_material(EXPORTER_LABEL, &[], 2 * (key_len + salt_len))
            .map_err(dtls)?;
        let m = material.as_ref();
        // client key, server key, client salt, server salt (RFC 5764 §4.2); we are the client.
        let salts = 2 * key_len;
        Ok(SrtpKeys {
            profile,
            local_key: m[..key_len].to_vec(),
            remote_key: m[key_len..salts].to_vec(),
            local_salt: m[salts..salts + salt_len].to_vec(),
            remote_salt: m[salts + salt_len..].to_vec(),
        })
    }

    /// The next datagram to send to the viewer.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.endpoint.poll_transmit().map(|t| t.message)
    }

    /// When [`DtlsSrtpClient::handle_timeout`] is due (a flight to send again).
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Once connected nothing is retransmitted: the endpoint is not asked (it is asked once
        // per viewer per send otherwise).
        if self.connected {
            return None;
        }
        self.endpoint
            .poll_timeout(&PEER)
            .map(|due| due.max(self.hold_until))
    }

    /// Sends a flight again if it is due at `now` (and its backoff has passed).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if now < self.hold_until {
            return Ok(());
        }
        let due = self
            .endpoint
            .poll_timeout(&PEER)
            .is_some_and(|due| due <= now);
        self.endpoint.handle_timeout(PEER, now).map_err(dtls)?;
        if due && !self.connected {
            self.hold_until = now + self.retransmit_wait;
            self.retransmit_wait = (self.retransmit_wait * 2).min(MAX_RETRANSMIT_WAIT);
        }
        Ok(())
    }

    /// Queues `close_notify` (the session ends).
    pub fn close(&mut self, now: Instant) {
        let _ = self.endpoint.stop(now, PEER);
    }

    /// True once the handshake completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::browser_side::{certificate, dtls_server, fingerprint};
    use crate::webrtc::srtp_gcm_sender::SrtpGcmSender;
    use rtc::srtp::context::Context;
    use rtc::srtp::protection_profile::ProtectionProfile;

    const BROWSER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50_000);

    fn browser(certificate: Certificate) -> Endpoint {
        dtls_server(BROWSER, certificate)
    }

    /// Runs the handshake between us and the browser; our events and the browser's completion.
    fn handshake(
        client: &mut DtlsSrtpClient,
        browser: &mut Endpoint,
    ) -> (Vec<DtlsEvent>, bool, Option<DtlsError>) {
        let mut ours = Vec::new();
        let mut browser_done = false;
        for _ in 0..16 {
            while let Some(datagram) = client.poll_transmit() {
                for event in browser
                    .read(Instant::now(), PEER, None, datagram)
                    .unwrap_or_default()
                {
                    browser_done |= matches!(event, EndpointEvent::HandshakeComplete);
                }
            }
            while let Some(transmit) = browser.poll_transmit() {
                match client.handle_datagram(Instant::now(), &transmit.message) {
                    Ok(events) => ours.extend(events),
                    Err(e) => return (ours, browser_done, Some(e)),
                }
            }
            if client.is_connected() && browser_done {
                break;
            }
        }
        (ours, browser_done, None)
    }

    #[test]
    fn the_handshake_gives_keys_the_browser_shares_and_what_we_seal_it_opens() {
        let browser_certificate = certificate();
        let expected = fingerprint(&browser_certificate);
        let mut browser = browser(browser_certificate);
        let mut client = DtlsSrtpClient::start(Instant::now(), certificate(), &expected).unwrap();
        let (events, browser_done, error) = handshake(&mut client, &mut browser);
        assert!(error.is_none(), "{error:?}");
        assert!(browser_done, "the browser's side completed");
        let [DtlsEvent::Connected(keys)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(keys.profile, SrtpProfile::AeadAes128Gcm, "GCM first");

        // The browser's keys, exported on its side: its remote (receive) keys are our local ones.
        let state = browser.get_connection_state(PEER).unwrap();
        let material = state
            .export_keying_material(EXPORTER_LABEL, &[], 56)
            .unwrap();
        let m = material.as_ref();
        assert_eq!(&m[..16], &keys.local_key[..]);
        assert_eq!(&m[32..44], &keys.local_salt[..]);
        let provider = rtc::crypto::default_provider().unwrap();
        let mut receive = Context::new(
            &m[..16],
            &m[32..44],
            ProtectionProfile::AeadAes128Gcm,
            None,
            None,
            provider.crypto(),
        )
        .unwrap();
        let key: [u8; 16] = keys.local_key.clone().try_into().unwrap();
        let salt: [u8; 12] = keys.local_salt.clone().try_into().unwrap();
        let mut sender = SrtpGcmSender::new(&key, &salt).unwrap();
        let plain: Vec<u8> = [0x80, 102, 0, 1, 0, 0, 0, 9, 0xab, 0xcd, 0xef, 0x01]
            .into_iter()
            .chain((0..500).map(|i| i as u8))
            .collect();
        let mut packet = plain.clone();
        sender.protect(&mut packet).unwrap();
        assert_eq!(&receive.decrypt_rtp(&packet).unwrap()[..], &plain[..]);
    }

    #[test]
    fn a_viewer_whose_certificate_is_not_its_offer_s_is_refused() {
        let mut browser = browser(certificate());
        let someone_else = fingerprint(&certificate());
        let mut client =
            DtlsSrtpClient::start(Instant::now(), certificate(), &someone_else).unwrap();
        let (events, _, error) = handshake(&mut client, &mut browser);
        assert!(events.is_empty() && !client.is_connected(), "{events:?}");
        let error = error.expect("the handshake fails").to_string();
        assert!(error.contains("fingerprint"), "{error}");
    }

    #[test]
    fn fingerprints_parse_only_as_sha_256() {
        let good = format!("sha-256 {}", vec!["0A"; 32].join(":"));
        assert_eq!(parse_sha256_fingerprint(&good), Some([0x0a; 32]));
        for bad in [
            format!("sha-1 {}", vec!["0A"; 20].join(":")),
            format!("sha-256 {}", vec!["0A"; 31].join(":")),
            format!("sha-256 {}", vec!["0A"; 33].join(":")),
            "sha-256 zz".to_owned(),
            String::new(),
        ] {
            assert_eq!(parse_sha256_fingerprint(&bad), None, "{bad}");
        }
        assert!(matches!(
            DtlsSrtpClient::start(Instant::now(), certificate(), "sha-1 00"),
            Err(DtlsError::Fingerprint)
        ));
    }

    #[test]
    fn an_unanswered_flight_is_sent_again_with_backoff() {
        let t0 = Instant::now();
        let mut client =
            DtlsSrtpClient::start(t0, certificate(), &fingerprint(&certificate())).unwrap();
        assert!(client.poll_transmit().is_some(), "the ClientHello");
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let due = client.poll_timeout().expect("a retransmission is due");
            waits.push(due.duration_since(now).as_millis());
            now = due;
            client.handle_timeout(now).unwrap();
            assert!(
                client.poll_transmit().is_some(),
                "the flight again at {now:?}"
            );
        }
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        // Nothing before it is due.
        client
            .handle_timeout(now + Duration::from_millis(10))
            .unwrap();
        assert!(client.poll_transmit().is_none());
    }
}
