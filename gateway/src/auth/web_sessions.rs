//! Sign-ins from the login page: a random 256-bit session id in an HttpOnly, Secure,
//! SameSite=Strict `__Host-` cookie, held in memory (only its SHA-256 is kept), ended by logout,
//! by [`idle`](WebSessions::new) time without a request (automatic logoff), at the latest after
//! its lifetime, and when the user's role, cameras or password change. Each sign-in has its own
//! CSRF token, which cookie-authenticated writes must echo in [`CSRF_HEADER`].
//!
//! The store is bounded: at capacity, expired sign-ins go first, then the longest idle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use super::claims::Claims;
use super::role::Role;
use super::user_directory::User;

/// The cookie's name. The `__Host-` prefix makes browsers refuse it unless it is Secure, has
/// `Path=/` and no `Domain` (so no other host can set or read it).
pub const COOKIE_NAME: &str = "__Host-straja_session";
/// The header in which cookie-authenticated writes carry the sign-in's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long an ended sign-in is remembered, to tell a returning browser why it ended.
pub const REMEMBER_ENDED: Duration = Duration::from_secs(600);
/// The issuer named in the claims of a signed-in person.
pub const ISSUER: &str = "straja-login";

/// One signed-in person.
#[derive(Debug, Clone)]
struct WebSession {
    user: String,
    role: Role,
    cameras: Vec<String>,
    stamp: [u8; 16],
    csrf: String,
    created: Instant,
    last_seen: Instant,
    tag: String,
}

/// A sign-in just made: the cookie's value and the page's CSRF token.
#[derive(Debug, Clone)]
pub struct NewSignIn {
    /// The cookie's value (secret; only its hash is kept).
    pub cookie: String,
    /// The CSRF token for writes.
    pub csrf: String,
    /// A short public tag naming this sign-in in the audit log.
    pub tag: String,
}

/// A sign-in presented with a request and found valid.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// What the handlers see, as for a token.
    pub claims: Claims,
    /// The user's credential stamp when they signed in.
    pub stamp: [u8; 16],
    /// The CSRF token writes must carry.
    pub csrf: String,
}

/// Why a presented cookie does not sign anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInEnded {
    /// Unknown: never issued, logged out, or forgotten.
    Unknown,
    /// No request for longer than the idle timeout.
    Idle,
    /// Older than the sign-in lifetime.
    Expired,
}

/// The sign-ins of the login page.
pub struct WebSessions {
    sessions: Mutex<HashMap<[u8; 32], WebSession>>,
    idle: Duration,
    lifetime: Duration,
    capacity: usize,
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // The OS random source does not fail on Linux; a failure leaves zeros, which the
    // uniqueness check in `create` would catch for the session id.
    let _ = SystemRandom::new().fill(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_of(cookie: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, cookie.as_bytes()).as_ref());
    key
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl WebSessions {
    /// A store whose sign-ins end after `idle` without a request or `lifetime` in all, holding
    /// at most `capacity` at once.
    pub fn new(idle: Duration, lifetime: Duration, capacity: usize) -> WebSessions {
        WebSessions {
            sessions: Mutex::new(HashMap::new()),
            idle,
            lifetime,
            capacity: capacity.max(1),
        }
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    /// Signs `user` in.
    pub fn create(&self, user: &User) -> NewSignIn {
        let now = Instant::now();
        let cookie = random_hex(32);
        let csrf = random_hex(32);
        let tag = random_hex(4);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= self.capacity {
            sessions.retain(|_, s| self.ended(s, now).is_none());
        }
        if sessions.len() >= self.capacity
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            key_of(&cookie),
            WebSession {
                user: user.name.clone(),
                role: user.role,
                cameras: user.cameras.clone(),
                stamp: user.credential_stamp(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                tag: tag.clone(),
            },
        );
        NewSignIn { cookie, csrf, tag }
    }

    fn ended(&self, session: &WebSession, now: Instant) -> Option<SignInEnded> {
        if now.duration_since(session.created) >= self.lifetime {
            Some(SignInEnded::Expired)
        } else if now.duration_since(session.last_seen) >= self.idle {
            Some(SignInEnded::Idle)
        } else {
            None
        }
    }

    /// The sign-in this cookie value names, if still valid; counts as activity.
    pub fn authenticate(&self, cookie: &str) -> Result<SignedIn, SignInEnded> {
        if cookie.len() != 64 {
            return Err(SignInEnded::Unknown);
        }
        let key = key_of(cookie);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions.get_mut(&key).ok_or(SignInEnded::Unknown)?;
        if let Some(ended) = self.ended(session, now) {
            sessions.remove(&key);
            return Err(ended);
        }
        session.last_seen = now;
        let remaining = self
            .lifetime
            .saturating_sub(now.duration_since(session.created))
            .min(self.idle);
        let unix = unix_now();
        let age = now.duration_since(session.created).as_secs();
        Ok(SignedIn {
            claims: Claims {
                sub: session.user.clone(),
                role: session.role,
                cameras: session.cameras.clone(),
                consultation: None,
                iss: ISSUER.to_owned(),
                iat: unix.saturating_sub(age),
                nbf: unix.saturating_sub(age),
                exp: unix + remaining.as_secs(),
                jti: format!("signin:{}", session.tag),
            },
            stamp: session.stamp,
            csrf: session.csrf.clone(),
        })
    }

    /// Ends the sign-in this cookie value names; true if there was one.
    pub fn end(&self, cookie: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key_of(cookie))
            .is_some()
    }

    /// Sign-ins still valid. Those that ended more than [`REMEMBER_ENDED`] ago are forgotten on
    /// the way; until then a returning browser is told why its sign-in ended.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| {
            let ends = (s.last_seen + self.idle).min(s.created + self.lifetime);
            now.saturating_duration_since(ends) < REMEMBER_ENDED
        });
        sessions
            .values()
            .filter(|s| self.ended(s, now).is_none())
            .count()
    }

    /// True when nobody is signed in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` request header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value.trim())
    })
}

/// The `Set-Cookie` value that stores a sign-in (a session cookie: it also ends with the browser).
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE_NAME}={value}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> User {
        User {
            name: "ana".into(),
            role: Role::Security,
            cameras: vec!["gate".into()],
            password: "$x".into(),
        }
    }

    #[test]
    fn a_sign_in_authenticates_until_logout() {
        let store = WebSessions::new(Duration::from_secs(60), Duration::from_secs(3600), 10);
        let new = store.create(&ana());
        let signed = store.authenticate(&new.cookie).unwrap();
        assert_eq!(signed.claims.sub, "ana");
        assert_eq!(signed.claims.cameras, ["gate"]);
        assert_eq!(signed.csrf, new.csrf);
        assert!(signed.claims.exp > signed.claims.iat);
        assert!(store.end(&new.cookie));
        assert_eq!(
            store.authenticate(&new.cookie).unwrap_err(),
            SignInEnded::Unknown
        );
        assert_eq!(
            store.authenticate("not a cookie").unwrap_err(),
            SignInEnded::Unknown
        );
    }

    #[test]
    fn idle_and_old_sign_ins_end() {
        let store = WebSessions::new(Duration::ZERO, Duration::from_secs(3600), 10);
        let new = store.create(&ana());
        assert_eq!(
            store.authenticate(&new.cookie).unwrap_err(),
            SignInEnded::Idle
        );
        let store = WebSessions::new(Duration::from_secs(60), Duration::ZERO, 10);
        let new = store.create(&ana());
        assert_eq!(
            store.authenticate(&new.cookie).unwrap_err(),
            SignInEnded::Expired
        );
        assert!(store.is_empty(), "ended sign-ins do not count");
    }

    #[test]
    fn the_store_is_bounded_and_evicts_the_longest_idle() {
        let store = WebSessions::new(Duration::from_secs(60), Duration::from_secs(3600), 2);
        let first = store.create(&ana());
        let second = store.create(&ana());
        store.authenticate(&first.cookie).unwrap();
        let third = store.create(&ana());
        assert_eq!(store.len(), 2);
        assert!(store.authenticate(&second.cookie).is_err());
        assert!(store.authenticate(&first.cookie).is_ok());
        assert!(store.authenticate(&third.cookie).is_ok());
    }

    #[test]
    fn cookies_parse_and_secrets_compare() {
        let header = format!("a=1; {COOKIE_NAME}=abc ; b=2");
        assert_eq!(cookie_value(&header, COOKIE_NAME), Some("abc"));
        assert_eq!(cookie_value("a=1", COOKIE_NAME), None);
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("abc", "ab"));
        let set = set_cookie("v");
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attribute), "{set}");
        }
    }
}
