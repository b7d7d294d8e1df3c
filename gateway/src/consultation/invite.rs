//! Invitations to a consultation: a link with a 256-bit random secret (in the URL's fragment, so
//! that it never reaches a server log or a `Referer`), of which the gateway keeps only the
//! SHA-256 digest. Single use: the first join consumes it. It expires (24 h by default).

use rand::RngCore;

/// A new invitation's secret, as it goes into the link (64 hex characters).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest kept for a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// One invitation.
#[derive(Debug, Clone)]
pub struct Invite {
    /// Who it is for, as the pages show them ("Patient", "Interpreter"); never logged.
    pub label: String,
    /// The secret's digest.
    pub digest: [u8; 32],
    /// When it stops working (Unix seconds).
    pub expires_at: u64,
    /// Consumed by a join.
    pub used: bool,
}

/// Why an invitation does not let anyone in (one answer for all, so that the reply tells a
/// guesser nothing).
pub const NOT_VALID: &str = "this invitation link is not valid: it was already used, has expired, \
                             or the consultation has ended; ask the clinician for a new one";

impl Invite {
    /// An invitation for `label`, valid until `expires_at`; returns it and its secret.
    pub fn new(label: &str, expires_at: u64) -> (Invite, String) {
        let secret = new_secret();
        (
            Invite {
                label: label.to_owned(),
                digest: digest(&secret),
                expires_at,
                used: false,
            },
            secret,
        )
    }

    /// True when `secret` is this invitation's.
    pub fn matches(&self, secret: &str) -> bool {
        // Digests of 256-bit secrets: how long a comparison takes tells nothing about a secret.
        digest(secret) == self.digest
    }

    /// Consumes it at `now` (Unix seconds), if it still works.
    pub fn consume(&mut self, now: u64) -> Result<(), &'static str> {
        if self.used || now >= self.expires_at {
            return Err(NOT_VALID);
        }
        self.used = true;
        Ok(())
    }
}

/// Checks an invitation label: 1 to 40 characters, no control characters.
pub fn validate_label(label: &str) -> Result<(), String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 40 {
        return Err("an invitation label is 1 to 40 characters".into());
    }
    if label.chars().any(char::is_control) {
        return Err("an invitation label has no control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_works_once_and_not_after_it_expires() {
        let (mut invite, secret) = Invite::new("Patient", 1000);
        assert_eq!(secret.len(), 64);
        assert!(invite.matches(&secret));
        assert!(!invite.matches(&new_secret()));
        assert!(!invite.matches(""));
        assert_eq!(invite.consume(999), Ok(()));
        assert_eq!(invite.consume(999), Err(NOT_VALID), "single use");
        let (mut late, _) = Invite::new("Patient", 1000);
        assert_eq!(late.consume(1000), Err(NOT_VALID), "expired");
        assert_ne!(new_secret(), new_secret());
    }

    #[test]
    fn labels_are_short_plain_text() {
        assert!(validate_label("Interpreter").is_ok());
        assert!(validate_label(" ").is_err());
        assert!(validate_label(&"x".repeat(41)).is_err());
        assert!(validate_label("a\u{7}b").is_err());
    }
}
