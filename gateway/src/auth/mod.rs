//! Identity and access control: the gateway's signed access tokens, local users who sign in with
//! a password (with the cookie that carries their sign-in), the roles they carry, the one table of
//! which role may use which route, and the middleware that enforces it on every request.

pub mod access_policy;
pub mod claims;
pub mod identity_provider;
pub mod local_login;
pub mod login_throttle;
pub mod password;
pub mod require_access;
pub mod role;
pub mod token_authority;
pub mod user_directory;
pub mod web_sessions;

pub use claims::Claims;
pub use role::Role;
pub use token_authority::{TokenAuthority, TokenError};
