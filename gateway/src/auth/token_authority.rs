//! Issues and checks the gateway's own access tokens: JWTs signed with HS256 (HMAC-SHA256, ring)
//! under a 256-bit key kept in `<state_dir>/auth/token-signing.key` (mode 0600, created on first
//! use), or given by systemd as the credential `token-signing.key` (`LoadCredential=`).
//!
//! Checks: the algorithm is HS256 and nothing else, the signature, `iss`, `exp` and `nbf` with at
//! most [`CLOCK_SKEW`] of leeway, and a lifetime (`exp - iat`) of at most [`MAX_TTL`].

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};

use super::claims::Claims;
use super::identity_provider::IdentityProvider;
use super::role::Role;

/// Longest lifetime of a token (a security shift, with margin).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Clock difference tolerated between the issuer and this box.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Issuer of locally issued tokens.
pub const ISSUER: &str = "straja";
/// Longest token accepted, in bytes (a Straja token is a few hundred).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// File name of the signing key in the state directory and as a systemd credential.
const KEY_FILE: &str = "token-signing.key";
const KEY_BYTES: usize = 32;

/// Why a token was refused (the reason goes into the 401 response; never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token was presented.
    #[error("an access token is required (Authorization: Bearer ...)")]
    Missing,
    /// The token is larger than [`MAX_TOKEN_BYTES`].
    #[error("the access token is too large")]
    TooLarge,
    /// Expired.
    #[error("the access token has expired")]
    Expired,
    /// Not valid yet.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// Lives longer than [`MAX_TTL`].
    #[error("the access token's lifetime exceeds the maximum")]
    TooLong,
    /// Bad signature, algorithm, issuer or format.
    #[error("the access token is invalid")]
    Invalid,
}

/// A failure to set up or use the signing key, or to issue a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The key file could not be read or written.
    #[error("token signing key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The request for a token is not acceptable.
    #[error("{0}")]
    Request(String),
}

/// Signs and checks tokens with the gateway's key, and checks the identity provider's tokens when
/// one is configured.
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    identity_provider: Option<IdentityProvider>,
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenAuthority {
    /// Loads the signing key (systemd credential first, then the state directory), creating it
    /// in the state directory when there is none.
    pub fn load_or_create(state_dir: &Path) -> Result<TokenAuthority, IssueError> {
        let path = state_dir.join("auth").join(KEY_FILE);
        let (key, _) =
            crate::key_file::load_or_create(KEY_FILE, &path, KEY_BYTES).map_err(|e| {
                IssueError::Key {
                    path: e.path,
                    reason: e.reason,
                }
            })?;
        Self::from_key(&key)
    }

    /// An authority over this key (at least 32 bytes).
    pub fn from_key(key: &[u8]) -> Result<TokenAuthority, IssueError> {
        if key.len() < KEY_BYTES {
            return Err(IssueError::Request(format!(
                "the signing key must have at least {KEY_BYTES} bytes"
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = CLOCK_SKEW.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        Ok(TokenAuthority {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            identity_provider: None,
        })
    }

    /// Also accepts tokens from this identity provider.
    pub fn with_identity_provider(mut self, provider: IdentityProvider) -> TokenAuthority {
        self.identity_provider = Some(provider);
        self
    }

    /// Issues a token for `subject` with `role`, valid for `ttl` (at most [`MAX_TTL`]).
    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        cameras: &[String],
        ttl: Duration,
    ) -> Result<String, IssueError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(IssueError::Request(format!(
                "the lifetime must be between 1 s and {} h",
                MAX_TTL.as_secs() / 3600
            )));
        }
        if subject.trim().is_empty() || subject.len() > 256 {
            return Err(IssueError::Request(
                "the subject must be 1 to 256 characters".into(),
            ));
        }
        let now = now_seconds();
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            cameras: cameras.to_vec(),
            consultation: None,
            iss: ISSUER.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            jti: random_id(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| IssueError::Request(format!("cannot sign the token: {e}")))
    }

    /// Issues a consultation participant's token: `role` patient, `subject` their participant
    /// id, valid for `consultation` only, for `ttl` (at most [`MAX_TTL`]).
    pub fn issue_participant(
        &self,
        subject: &str,
        consultation: &str,
        ttl: Duration,
    ) -> Result<String, IssueError> {
        let ttl = ttl.min(MAX_TTL);
        let now = now_seconds();
        let claims = Claims {
            sub: subject.to_owned(),
            role: Role::Patient,
            cameras: Vec::new(),
            consultation: Some(consultation.to_owned()),
            iss: ISSUER.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs().max(1),
            jti: random_id(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| IssueError::Request(format!("cannot sign the token: {e}")))
    }

    /// Checks a token (ours, or the identity provider's) and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return match &self.identity_provider {
                Some(provider) => provider.verify(token, header.kid.as_deref(), header.alg),
                None => Err(TokenError::Invalid),
            };
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        if claims.exp.saturating_sub(claims.iat) > MAX_TTL.as_secs() {
            return Err(TokenError::TooLong);
        }
        Ok(claims)
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source does not fail on Linux; an all-zero id would only weaken the audit trail.
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn authority() -> TokenAuthority {
        TokenAuthority::from_key(&[7u8; 32]).unwrap()
    }

    fn sign(claims: &serde_json::Value, key: &[u8], algorithm: Algorithm) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(key),
        )
        .unwrap()
    }

    fn claims(iat: u64, nbf: u64, exp: u64) -> serde_json::Value {
        serde_json::json!({"sub": "ana", "role": "security", "cameras": ["gate"], "iss": ISSUER,
                           "iat": iat, "nbf": nbf, "exp": exp, "jti": "1"})
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let a = authority();
        let token = a
            .issue(
                "ana",
                Role::Security,
                &["gate".into()],
                Duration::from_secs(600),
            )
            .unwrap();
        let claims = a.verify(&token).unwrap();
        assert_eq!(claims.role, Role::Security);
        assert!(claims.may_view("gate") && !claims.may_view("yard"));
        assert_eq!(claims.exp - claims.iat, 600);
    }

    #[test]
    fn expired_early_long_forged_and_garbage_tokens_are_refused() {
        let a = authority();
        let now = now_seconds();
        let key = [7u8; 32];
        assert_eq!(
            a.verify(&sign(
                &claims(now - 7200, now - 7200, now - 3600),
                &key,
                Algorithm::HS256
            )),
            Err(TokenError::Expired)
        );
        assert_eq!(
            a.verify(&sign(
                &claims(now, now + 3600, now + 7200),
                &key,
                Algorithm::HS256
            )),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            a.verify(&sign(
                &claims(now, now, now + 30 * 24 * 3600),
                &key,
                Algorithm::HS256
            )),
            Err(TokenError::TooLong)
        );
        let forged = sign(&claims(now, now, now + 60), &[8u8; 32], Algorithm::HS256);
        assert_eq!(a.verify(&forged), Err(TokenError::Invalid));
        let other_algorithm = sign(&claims(now, now, now + 60), &key, Algorithm::HS512);
        assert_eq!(a.verify(&other_algorithm), Err(TokenError::Invalid));
        let mut wrong_issuer = claims(now, now, now + 60);
        wrong_issuer["iss"] = "elsewhere".into();
        assert_eq!(
            a.verify(&sign(&wrong_issuer, &key, Algorithm::HS256)),
            Err(TokenError::Invalid)
        );
        // alg "none": header {"alg":"none"} with an empty signature.
        let unsigned = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            sign(&claims(now, now, now + 60), &key, Algorithm::HS256)
                .split('.')
                .nth(1)
                .unwrap()
        );
        assert_eq!(a.verify(&unsigned), Err(TokenError::Invalid));
        for garbage in [
            "",
            "a.b.c",
            "....",
            "\u{0}",
            &"x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(a.verify(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn within_the_clock_skew_a_token_is_accepted() {
        let a = authority();
        let now = now_seconds();
        let just_expired = sign(
            &claims(now - 600, now - 600, now - 10),
            &[7u8; 32],
            Algorithm::HS256,
        );
        assert!(a.verify(&just_expired).is_ok());
    }

    #[test]
    fn lifetimes_outside_bounds_are_not_issued() {
        let a = authority();
        assert!(a.issue("ana", Role::Ops, &[], Duration::ZERO).is_err());
        assert!(
            a.issue("ana", Role::Ops, &[], MAX_TTL + Duration::from_secs(1))
                .is_err()
        );
        assert!(
            a.issue(" ", Role::Ops, &[], Duration::from_secs(60))
                .is_err()
        );
    }

    #[test]
    fn the_key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = TokenAuthority::load_or_create(dir.path()).unwrap();
        let path = dir.path().join("auth").join(KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let token = a
            .issue("ana", Role::Ops, &[], Duration::from_secs(60))
            .unwrap();
        let b = TokenAuthority::load_or_create(dir.path()).unwrap();
        assert!(b.verify(&token).is_ok(), "same key after reload");
    }
}
