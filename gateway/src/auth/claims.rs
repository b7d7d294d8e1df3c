//! What a token says: who, which role, which cameras (or consultation), and when it is valid.

use serde::{Deserialize, Serialize};

use super::role::Role;

/// The claims of a Straja access token. Other claims (an identity provider's `aud`, `azp`, …)
/// are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the person or system the token was issued to.
    pub sub: String,
    /// Their role.
    pub role: Role,
    /// Cameras a `security` token may view (ids from the config).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<String>,
    /// The consultation an invite token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consultation: Option<String>,
    /// Issuer (`straja` for locally issued tokens).
    pub iss: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// Not valid before.
    pub nbf: u64,
    /// Expires at.
    pub exp: u64,
    /// Unique token id (for revocation and the audit log).
    pub jti: String,
}

impl Claims {
    /// True when this token may view `camera`.
    pub fn may_view(&self, camera: &str) -> bool {
        self.cameras.iter().any(|c| c == camera)
    }
}
