//! Access tokens as the HTTP API receives them: `TokenAuthority::verify` on arbitrary strings,
//! with an identity provider configured (ES256, EdDSA and RS256 keys from a JWK set), so that
//! tokens whose header names another algorithm than HS256 go through the provider's path too.
//!
//! Input: a first byte below 0x80 means the whole input is the token, as presented. From 0x80 on,
//! the rest is `HEADER\0PAYLOAD` (any bytes), which the harness base64url-encodes and signs with
//! one of four keys chosen by the first byte's low bits: the gateway's HS256 key, another HS256 key,
//! the provider's ES256 key or its Ed25519 key. That reaches the claims checks behind the signature.
//!
//! Checked besides "never panics": a token verifies only when signed by the key its header's
//! algorithm belongs to (never with the wrong key, never across algorithms), its issuer is the
//! one of that key's owner, and its lifetime, `nbf` and `exp` are within bounds.

#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use straja_gateway::auth::TokenAuthority;
use straja_gateway::auth::identity_provider::IdentityProvider;
use straja_gateway::auth::token_authority::{CLOCK_SKEW, ISSUER, MAX_TTL};

/// The gateway's signing key (as in the seed token, issued by `straja token issue`).
const GATEWAY_KEY: [u8; 32] = [5; 32];
/// Some other HS256 key: nothing it signs may verify.
const WRONG_KEY: [u8; 32] = [6; 32];
const PROVIDER_ISSUER: &str = "https://idp.hospital.example";
const PROVIDER_AUDIENCE: &str = "straja";
/// The modulus of a 2048-bit RSA key (public only: RS256 tokens are verified, never signed here).
const RSA_N: &str = "zEJlmn-X3-teLxRmjJg2cO7V42O7h6pnfmLzTAdkfBDs9V5eVCs6Kpl2hziMDdDDbj_ZyGAi7JVWzZlwtWKn6lbfwznPF_wqNY4tQXW_P93aGAq8WsXZU8qUw9TW88bq_MitwLhgVwU2OzzsW-3i3WulZoNwd8mXMWoOUNP3At8Q56B9ykEXC3_u20nK5_Ut2BVLsv1ouDi5tE998erCLOlcwQvxFwFDarMFitRGtLcWDiH6IPs7khlHHWL6fGpyaiZbEn85az2yVOQlZikrORXWgoxTulyQBVll3wnPiVLIQ7gwFPQwgUTDjr-380t5tqCE-qs-V1Kbsgwr-JKUfw";

struct Fixture {
    authority: TokenAuthority,
    ec: EncodingKey,
    ed: EncodingKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rng = SystemRandom::new();
        let ec_pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec_public =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_pkcs8.as_ref(), &rng)
                .unwrap()
                .public_key()
                .as_ref()
                .to_vec();
        let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_public = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref())
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let jwks = format!(
            r#"{{"keys": [
                {{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": "{}", "y": "{}"}},
                {{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": "{}"}},
                {{"kty": "RSA", "kid": "rsa-1", "e": "AQAB", "n": "{RSA_N}"}}
            ]}}"#,
            URL_SAFE_NO_PAD.encode(&ec_public[1..33]),
            URL_SAFE_NO_PAD.encode(&ec_public[33..65]),
            URL_SAFE_NO_PAD.encode(&ed_public),
        );
        let provider =
            IdentityProvider::from_jwks(&jwks, PROVIDER_ISSUER, Some(PROVIDER_AUDIENCE)).unwrap();
        Fixture {
            authority: TokenAuthority::from_key(&GATEWAY_KEY)
                .unwrap()
                .with_identity_provider(provider),
            ec: EncodingKey::from_ec_der(ec_pkcs8.as_ref()),
            ed: EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
        }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Who signed a token the harness made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    Gateway,
    Wrong,
    ProviderEs256,
    ProviderEdDsa,
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some(&first) = data.first() else {
        let _ = f.authority.verify("");
        return;
    };
    let (token, signer) = if first < 0x80 {
        let Ok(token) = std::str::from_utf8(data) else {
            return;
        };
        (token.to_owned(), None)
    } else {
        let rest = &data[1..];
        let (header, payload) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let (signer, key, algorithm) = match first & 3 {
            0 => (
                Signer::Gateway,
                &EncodingKey::from_secret(&GATEWAY_KEY),
                Algorithm::HS256,
            ),
            1 => (
                Signer::Wrong,
                &EncodingKey::from_secret(&WRONG_KEY),
                Algorithm::HS256,
            ),
            2 => (Signer::ProviderEs256, &f.ec, Algorithm::ES256),
            _ => (Signer::ProviderEdDsa, &f.ed, Algorithm::EdDSA),
        };
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm).unwrap();
        (format!("{message}.{signature}"), Some(signer))
    };

    let before = now();
    let outcome = f.authority.verify(&token);
    let after = now();
    let Ok(claims) = outcome else {
        return;
    };
    // Whatever verifies is a well-formed token whose header algorithm matches its signer.
    let alg = jsonwebtoken::decode_header(&token)
        .expect("a verified token has a header")
        .alg;
    match signer {
        None => {}
        Some(Signer::Gateway) => assert_eq!(alg, Algorithm::HS256, "{token}"),
        Some(Signer::Wrong) => panic!("a token signed with another key verified: {token}"),
        Some(Signer::ProviderEs256) => assert_eq!(alg, Algorithm::ES256, "{token}"),
        Some(Signer::ProviderEdDsa) => assert_eq!(alg, Algorithm::EdDSA, "{token}"),
    }
    if alg == Algorithm::HS256 {
        assert_eq!(claims.iss, ISSUER, "{token}");
    } else {
        assert_eq!(claims.iss, PROVIDER_ISSUER, "{token}");
    }
    let skew = CLOCK_SKEW.as_secs();
    assert!(
        claims.exp.saturating_sub(claims.iat) <= MAX_TTL.as_secs(),
        "{claims:?}"
    );
    assert!(claims.nbf <= after.saturating_add(skew), "{claims:?}");
    assert!(claims.exp.saturating_add(skew) >= before, "{claims:?}");
});
