//! The roles a token can carry. What each may do is in [`super::access_policy`].

use serde::{Deserialize, Serialize};

/// A person's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Operations: status, readiness and metrics of the box; may end any session.
    Ops,
    /// Security staff: live view of the cameras named in their token.
    Security,
    /// Clinicians: start and run consultations.
    Clinician,
    /// Patients and invitees: join their own consultation.
    Patient,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Ops, Role::Security, Role::Clinician, Role::Patient];

    /// The role's name as in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ops => "ops",
            Role::Security => "security",
            Role::Clinician => "clinician",
            Role::Patient => "patient",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role '{s}'; expected ops, security, clinician or patient")
            })
    }
}
