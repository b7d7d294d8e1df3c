//! Password hashing for local users: PBKDF2-HMAC-SHA256 (ring) with a random 16-byte salt and
//! [`ITERATIONS`] iterations (OWASP's 2023 figure for PBKDF2-SHA256), stored as
//! `$pbkdf2-sha256$i=<iterations>$<salt hex>$<hash hex>`. Checking compares in constant time.

use std::num::NonZeroU32;

use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

/// Iterations for new hashes; stored hashes with fewer are refused (reset the password).
pub const ITERATIONS: u32 = 600_000;
/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes (bounds the work a login request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

const ALGORITHM: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
const PREFIX: &str = "$pbkdf2-sha256$i=";
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;

/// Why a password cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Too short.
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// Too long.
    #[error("the password must have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// Checks that `password` may be set (length bounds).
pub fn acceptable(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// Hashes a new password (after [`acceptable`]) into its stored form. Takes a fraction of a
/// second on purpose: call it off the async runtime.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    acceptable(password)?;
    let mut salt = [0u8; SALT_BYTES];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PasswordError::Random)?;
    Ok(hash_with(password, &salt, ITERATIONS))
}

fn hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; HASH_BYTES];
    let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(ALGORITHM, iterations, salt, password.as_bytes(), &mut out);
    format!("{PREFIX}{iterations}${}${}", hex(salt), hex(&out))
}

/// A stored hash, parsed.
struct Stored {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse(stored: &str) -> Option<Stored> {
    let rest = stored.strip_prefix(PREFIX)?;
    let mut parts = rest.split('$');
    let iterations: u32 = parts.next()?.parse().ok()?;
    let salt = unhex(parts.next()?)?;
    let hash = unhex(parts.next()?)?;
    if parts.next().is_some()
        || iterations < ITERATIONS
        || salt.len() < SALT_BYTES
        || hash.len() != HASH_BYTES
    {
        return None;
    }
    Some(Stored {
        iterations: NonZeroU32::new(iterations)?,
        salt,
        hash,
    })
}

/// True when `stored` is a hash this module accepts (format and strength).
pub fn is_valid_hash(stored: &str) -> bool {
    parse(stored).is_some()
}

/// True when `password` matches `stored`. A malformed or weak stored hash matches nothing.
/// Takes as long as [`hash`]: call it off the async runtime.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Some(stored) = parse(stored) else {
        return false;
    };
    pbkdf2::verify(
        ALGORITHM,
        stored.iterations,
        &stored.salt,
        password.as_bytes(),
        &stored.hash,
    )
    .is_ok()
}

/// A hash of no one's password, checked against when a login names an unknown user so that the
/// answer takes as long as for a known one (no user enumeration by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_with("decoy password, never set", &[0x5a; SALT_BYTES], ITERATIONS))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$pbkdf2-sha256$i=600000$"));
        assert!(is_valid_hash(&stored));
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert!(!verify("", &stored));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn weak_or_malformed_stored_hashes_match_nothing() {
        let weak = hash_with("correct horse battery", &[1; 16], 1000);
        assert!(!is_valid_hash(&weak));
        assert!(!verify("correct horse battery", &weak));
        for bad in [
            "",
            "plain",
            "$pbkdf2-sha256$i=600000$zz$00",
            "$pbkdf2-sha256$i=600000$00112233445566778899aabbccddeeff$00",
            "$pbkdf2-sha256$i=x$00$00",
        ] {
            assert!(!is_valid_hash(bad), "{bad}");
            assert!(!verify("anything at all", bad), "{bad}");
        }
    }

    #[test]
    fn password_length_is_bounded_both_ways() {
        assert_eq!(acceptable("short"), Err(PasswordError::TooShort));
        assert_eq!(
            acceptable(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(acceptable("twelve chars"), Ok(()));
    }

    #[test]
    fn the_decoy_is_a_valid_hash_of_nothing_users_type() {
        assert!(is_valid_hash(decoy_hash()));
        assert!(!verify("", decoy_hash()));
    }
}
