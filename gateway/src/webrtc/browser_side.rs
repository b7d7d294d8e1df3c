//! The browser's side of the gateway's own viewer stack, for unit tests: its DTLS server (as
//! Chromium runs it: GCM first, our certificate required), a certificate and its SDP
//! fingerprint, and its ICE Binding requests. Built on `rtc`'s pieces, independent of ours.

use std::net::SocketAddr;
use std::sync::Arc;

use rtc::dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType};
use rtc::dtls::crypto::Certificate;
use rtc::dtls::endpoint::Endpoint;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::shared::TransportProtocol;
use rtc::stun::attributes::{ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_USERNAME};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};
use rtc::stun::textattrs::TextAttribute;

/// A fresh self-signed certificate.
pub fn certificate() -> Certificate {
    let provider = rtc::crypto::default_provider().unwrap();
    Certificate::generate_self_signed(vec!["straja".to_owned()], provider.crypto()).unwrap()
}

/// `certificate`'s SDP `a=fingerprint` value (sha-256).
pub fn fingerprint(certificate: &Certificate) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &certificate.certificate[0]);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    format!("sha-256 {}", hex.join(":"))
}

/// The browser's DTLS endpoint at `address`: a server offering the profiles Chromium offers,
/// asking for our certificate.
pub fn dtls_server(address: SocketAddr, certificate: Certificate) -> Endpoint {
    let provider = rtc::crypto::default_provider().unwrap();
    let config = ConfigBuilder::default()
        .with_crypto_provider(provider)
        .with_certificates(vec![certificate])
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .with_client_auth(ClientAuthType::RequireAnyClientCert)
        .with_insecure_skip_verify(true)
        .build(false, None)
        .unwrap();
    Endpoint::new(address, TransportProtocol::UDP, Some(Arc::new(config)))
}

/// A Binding request as a browser sends it (USERNAME, PRIORITY, USE-CANDIDATE when
/// nominating, MESSAGE-INTEGRITY under `password`, FINGERPRINT), and its transaction.
pub fn binding_request(username: &str, password: &str, nominate: bool) -> (Vec<u8>, TransactionId) {
    let provider = rtc::crypto::default_provider().unwrap();
    let mut m = Message::new();
    let transaction = TransactionId::new();
    let setters: [Box<dyn Setter>; 3] = [
        Box::new(BINDING_REQUEST),
        Box::new(transaction),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
    ];
    m.build(&setters).unwrap();
    m.add(ATTR_PRIORITY, &1_845_501_695u32.to_be_bytes());
    if nominate {
        m.add(ATTR_USE_CANDIDATE, &[]);
    }
    MessageIntegrity::new_short_term_integrity_with_provider(
        password.to_owned(),
        provider.crypto(),
    )
    .add_to(&mut m)
    .unwrap();
    FINGERPRINT.add_to(&mut m).unwrap();
    (m.raw.clone(), transaction)
}
