//! Password login for local users: the throttle per source, the password check (off the async
//! runtime, one at a time so that guessing cannot take the media path's cores), and the sign-in
//! it makes. The HTTP side (JSON, cookie, audit record) is in `crate::http::login`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::password;
use super::user_directory::{User, UserDirectory, UsersFile};
use super::web_sessions::{NewSignIn, SignInEnded, SignedIn, WebSessions};
use crate::config::Config;

/// Longest a login waits for its turn to check a password before it is refused as busy.
const HASHING_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    /// Unknown user or wrong password (the caller is told only that it is one of the two).
    BadCredentials {
        /// For the audit log: which of the two.
        reason: &'static str,
    },
    /// Too many failures from this source: wait this long.
    Throttled(Duration),
    /// Too many logins at once: try again shortly.
    Busy,
}

/// Local users' sign-in.
pub struct LocalLogin {
    users: UserDirectory,
    sessions: WebSessions,
    throttle: super::login_throttle::LoginThrottle,
    hashing: Arc<Semaphore>,
}

impl LocalLogin {
    /// Sign-in as a configuration sets it up.
    pub fn new(config: &Config) -> LocalLogin {
        LocalLogin {
            users: UserDirectory::new(UsersFile::new(config.auth.users_file_in(&config.state_dir))),
            sessions: WebSessions::new(
                Duration::from_secs(config.auth.idle_timeout_seconds),
                Duration::from_secs(config.auth.sign_in_lifetime_seconds),
                config.limits.max_sign_ins,
            ),
            throttle: super::login_throttle::LoginThrottle::new(
                config.limits.login_attempts_per_minute,
            ),
            hashing: Arc::new(Semaphore::new(1)),
        }
    }

    /// Checks a name and password from `source`; signs the user in when they match.
    pub async fn login(
        &self,
        name: &str,
        password: String,
        source: IpAddr,
    ) -> Result<(User, NewSignIn), LoginRefused> {
        let attempt = self
            .throttle
            .attempt(source)
            .map_err(LoginRefused::Throttled)?;
        let Ok(Ok(_permit)) =
            tokio::time::timeout(HASHING_QUEUE_WAIT, self.hashing.clone().acquire_owned()).await
        else {
            attempt.succeeded();
            return Err(LoginRefused::Busy);
        };
        let user = self.users.current().find(name).cloned();
        // An unknown user is checked against a decoy so both answers take as long.
        let stored = user
            .as_ref()
            .map_or_else(|| password::decoy_hash().to_owned(), |u| u.password.clone());
        let matches = tokio::task::spawn_blocking(move || password::verify(&password, &stored))
            .await
            .unwrap_or(false);
        match (user, matches) {
            (Some(user), true) => {
                attempt.succeeded();
                let sign_in = self.sessions.create(&user);
                Ok((user, sign_in))
            }
            (Some(_), false) => {
                attempt.failed();
                Err(LoginRefused::BadCredentials {
                    reason: "wrong password",
                })
            }
            (None, _) => {
                attempt.failed();
                Err(LoginRefused::BadCredentials {
                    reason: "unknown user",
                })
            }
        }
    }

    /// The sign-in a cookie names, if it is valid and the user's role, cameras and password are
    /// what they were when they signed in (otherwise the sign-in ends now).
    pub fn authenticate(&self, cookie: &str) -> Result<SignedIn, SignInEnded> {
        let signed = self.sessions.authenticate(cookie)?;
        let users = self.users.current();
        match users.find(&signed.claims.sub) {
            Some(user) if user.credential_stamp() == signed.stamp => Ok(signed),
            _ => {
                self.sessions.end(cookie);
                Err(SignInEnded::Unknown)
            }
        }
    }

    /// Ends the sign-in a cookie names; true if there was one.
    pub fn logout(&self, cookie: &str) -> bool {
        self.sessions.end(cookie)
    }

    /// The idle timeout (for the page, which says when it will sign out).
    pub fn idle_timeout(&self) -> Duration {
        self.sessions.idle_timeout()
    }

    /// Sign-ins held now.
    pub fn signed_in(&self) -> usize {
        self.sessions.len()
    }
}
