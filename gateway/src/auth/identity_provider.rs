//! Tokens from the city's or hospital's identity provider: JWTs signed with ES256, RS256 or EdDSA,
//! checked against the provider's public keys from a JWKS file. The algorithm is taken from the
//! key (its type and curve), never from the token, so a token cannot choose a weaker check
//! (no HS256 with a public key as secret, no `none`). The same claims, lifetime bound and clock
//! skew apply as to local tokens; `iss` must be the configured issuer, and `aud` the configured
//! audience when one is set.

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::claims::Claims;
use super::token_authority::{CLOCK_SKEW, IssueError, MAX_TTL, TokenError};

/// Largest JWKS file read (a provider publishes a handful of keys).
const MAX_JWKS_BYTES: u64 = 1024 * 1024;

/// The provider's keys, by key id.
pub struct IdentityProvider {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: String,
    audience: Option<String>,
}

fn algorithm_of(parameters: &AlgorithmParameters) -> Option<Algorithm> {
    match parameters {
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        // Symmetric keys in a published key set, P-384/P-521, X25519: not for signing tokens here.
        _ => None,
    }
}

impl IdentityProvider {
    /// Loads the provider's JWKS file. Keys without a `kid` or of another kind are refused.
    pub fn load(
        jwks_file: &Path,
        issuer: &str,
        audience: Option<&str>,
    ) -> Result<IdentityProvider, IssueError> {
        let problem = |reason: String| IssueError::Key {
            path: jwks_file.to_owned(),
            reason,
        };
        let size = std::fs::metadata(jwks_file)
            .map_err(|e| problem(e.to_string()))?
            .len();
        if size > MAX_JWKS_BYTES {
            return Err(problem(format!("{size} bytes; at most {MAX_JWKS_BYTES}")));
        }
        let text = std::fs::read_to_string(jwks_file).map_err(|e| problem(e.to_string()))?;
        Self::from_jwks(&text, issuer, audience).map_err(problem)
    }

    /// Builds from JWKS text.
    pub fn from_jwks(
        jwks: &str,
        issuer: &str,
        audience: Option<&str>,
    ) -> Result<IdentityProvider, String> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys = HashMap::new();
        for (index, jwk) in set.keys.iter().enumerate() {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| format!("key {index} has no \"kid\""))?;
            let algorithm = algorithm_of(&jwk.algorithm).ok_or_else(|| {
                format!("key \"{kid}\" is not an ES256 (P-256), RS256 or EdDSA (Ed25519) key")
            })?;
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| format!("key \"{kid}\" is unusable: {e}"))?;
            keys.insert(kid, (key, algorithm));
        }
        if keys.is_empty() {
            return Err("the JWK set has no keys".into());
        }
        Ok(IdentityProvider {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.map(str::to_owned),
        })
    }

    /// Checks a provider token whose header names `kid` and `algorithm`.
    pub fn verify(
        &self,
        token: &str,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Claims, TokenError> {
        let (key, expected) = kid
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenError::Invalid)?;
        if algorithm != *expected {
            return Err(TokenError::Invalid);
        }
        let mut validation = Validation::new(*expected);
        validation.leeway = CLOCK_SKEW.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                // jsonwebtoken checks `aud` only when present unless it is required.
                validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
            }
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.exp.saturating_sub(claims.iat) > MAX_TTL.as_secs() {
            return Err(TokenError::TooLong);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use std::time::{SystemTime, UNIX_EPOCH};

    const ISSUER: &str = "https://idp.hospital.example";

    struct Keys {
        es256: Vec<u8>,
        ed25519: Vec<u8>,
        jwks: String,
    }

    fn keys() -> Keys {
        let rng = SystemRandom::new();
        let es256 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let ec_public = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &es256, &rng)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let ed25519 = Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let ed_public = Ed25519KeyPair::from_pkcs8(&ed25519)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
             "x": URL_SAFE_NO_PAD.encode(&ec_public[1..33]),
             "y": URL_SAFE_NO_PAD.encode(&ec_public[33..65])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "use": "sig",
             "x": URL_SAFE_NO_PAD.encode(&ed_public)},
        ]})
        .to_string();
        Keys {
            es256,
            ed25519,
            jwks,
        }
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = serde_json::json!({"sub": "dr.popescu", "role": "clinician", "iss": ISSUER,
            "iat": now, "nbf": now, "exp": now + 600, "jti": "x1", "azp": "portal"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    fn sign(
        algorithm: Algorithm,
        kid: &str,
        key: &EncodingKey,
        claims: &serde_json::Value,
    ) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn verify(provider: &IdentityProvider, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).unwrap();
        provider.verify(token, header.kid.as_deref(), header.alg)
    }

    #[test]
    fn es256_and_eddsa_tokens_from_the_provider_verify() {
        let k = keys();
        let provider = IdentityProvider::from_jwks(&k.jwks, ISSUER, None).unwrap();
        let es = sign(
            Algorithm::ES256,
            "ec-1",
            &EncodingKey::from_ec_der(&k.es256),
            &claims(serde_json::json!({})),
        );
        assert_eq!(verify(&provider, &es).unwrap().sub, "dr.popescu");
        let ed = sign(
            Algorithm::EdDSA,
            "ed-1",
            &EncodingKey::from_ed_der(&k.ed25519),
            &claims(serde_json::json!({})),
        );
        assert_eq!(
            verify(&provider, &ed).unwrap().role,
            crate::auth::Role::Clinician
        );
    }

    #[test]
    fn wrong_issuer_unknown_kid_and_algorithm_swaps_are_refused() {
        let k = keys();
        let provider = IdentityProvider::from_jwks(&k.jwks, ISSUER, None).unwrap();
        let ec = EncodingKey::from_ec_der(&k.es256);
        let other_issuer = claims(serde_json::json!({"iss": "https://evil.example"}));
        assert_eq!(
            verify(
                &provider,
                &sign(Algorithm::ES256, "ec-1", &ec, &other_issuer)
            ),
            Err(TokenError::Invalid)
        );
        let good = claims(serde_json::json!({}));
        assert_eq!(
            verify(&provider, &sign(Algorithm::ES256, "nope", &ec, &good)),
            Err(TokenError::Invalid)
        );
        // The EC key's token presented as if it were the Ed25519 key's.
        assert_eq!(
            verify(&provider, &sign(Algorithm::ES256, "ed-1", &ec, &good)),
            Err(TokenError::Invalid)
        );
        // A token naming another algorithm than its key's.
        let token = sign(Algorithm::ES256, "ec-1", &ec, &good);
        assert_eq!(
            provider.verify(&token, Some("ec-1"), Algorithm::ES384),
            Err(TokenError::Invalid)
        );
        // HS256 with the public key as the secret (the classic confusion) is not even routed here,
        // and would not match: the key's algorithm is ES256.
        assert_eq!(
            provider.verify(&token, Some("ec-1"), Algorithm::HS256),
            Err(TokenError::Invalid)
        );
    }

    /// An RSA key from `openssl genrsa` (ring cannot generate RSA keys): PKCS#1 DER and modulus.
    fn rsa_key() -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("k.pem");
        let der = dir.path().join("k.der");
        let run = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl (installed by scripts/setup.sh --test)");
            assert!(output.status.success(), "{output:?}");
            output.stdout
        };
        let pem_path = pem.to_str().unwrap();
        run(&["genrsa", "-traditional", "-out", pem_path, "2048"]);
        run(&[
            "rsa",
            "-in",
            pem_path,
            "-traditional",
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ]);
        let modulus =
            String::from_utf8(run(&["rsa", "-in", pem_path, "-noout", "-modulus"])).unwrap();
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        (std::fs::read(der).unwrap(), n)
    }

    #[test]
    fn rs256_tokens_verify_and_other_rsa_algorithms_are_refused() {
        let (der, n) = rsa_key();
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "rsa-1", "e": "AQAB",
            "n": URL_SAFE_NO_PAD.encode(&n)}]})
        .to_string();
        let provider = IdentityProvider::from_jwks(&jwks, ISSUER, None).unwrap();
        let key = EncodingKey::from_rsa_der(&der);
        let token = sign(
            Algorithm::RS256,
            "rsa-1",
            &key,
            &claims(serde_json::json!({})),
        );
        assert_eq!(verify(&provider, &token).unwrap().sub, "dr.popescu");
        let ps256 = sign(
            Algorithm::PS256,
            "rsa-1",
            &key,
            &claims(serde_json::json!({})),
        );
        assert_eq!(
            verify(&provider, &ps256),
            Err(TokenError::Invalid),
            "RS256 only"
        );
    }

    #[test]
    fn the_audience_is_enforced_when_configured() {
        let k = keys();
        let provider = IdentityProvider::from_jwks(&k.jwks, ISSUER, Some("straja")).unwrap();
        let ec = EncodingKey::from_ec_der(&k.es256);
        let without = sign(
            Algorithm::ES256,
            "ec-1",
            &ec,
            &claims(serde_json::json!({})),
        );
        assert_eq!(verify(&provider, &without), Err(TokenError::Invalid));
        let wrong = sign(
            Algorithm::ES256,
            "ec-1",
            &ec,
            &claims(serde_json::json!({"aud": "billing"})),
        );
        assert_eq!(verify(&provider, &wrong), Err(TokenError::Invalid));
        let right = sign(
            Algorithm::ES256,
            "ec-1",
            &ec,
            &claims(serde_json::json!({"aud": "straja"})),
        );
        assert!(verify(&provider, &right).is_ok());
    }

    #[test]
    fn bad_key_sets_say_what_is_wrong() {
        for (jwks, says) in [
            ("not json", "not a JWK set"),
            (r#"{"keys": []}"#, "no keys"),
            (
                r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#,
                "not an ES256",
            ),
            (
                r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}"#,
                "no \"kid\"",
            ),
        ] {
            let error = IdentityProvider::from_jwks(jwks, ISSUER, None)
                .err()
                .unwrap();
            assert!(error.contains(says), "{jwks}: {error}");
        }
    }

    #[test]
    fn the_gateway_authority_routes_provider_tokens_and_refuses_them_without_a_provider() {
        let k = keys();
        let ec = EncodingKey::from_ec_der(&k.es256);
        let token = sign(
            Algorithm::ES256,
            "ec-1",
            &ec,
            &claims(serde_json::json!({})),
        );
        let local_only = crate::auth::TokenAuthority::from_key(&[1u8; 32]).unwrap();
        assert_eq!(local_only.verify(&token), Err(TokenError::Invalid));
        let with_provider = crate::auth::TokenAuthority::from_key(&[1u8; 32])
            .unwrap()
            .with_identity_provider(IdentityProvider::from_jwks(&k.jwks, ISSUER, None).unwrap());
        assert_eq!(with_provider.verify(&token).unwrap().sub, "dr.popescu");
    }
}
