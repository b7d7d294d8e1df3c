//! The daemon's configuration: the TOML file of DESIGN.md's "Config" section, parsed with unknown
//! keys rejected, then validated so that every problem is reported at once with its field.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use straja_pipelines::CameraSource;

use crate::hub::gop_cache::MAX_GOP_CACHE_BYTES;

/// The embedded demo configuration used by `straja run` without `--config`.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// Largest configuration file accepted, in bytes (a config is a few KiB; this bounds a mistake).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Most cameras one box is configured with.
const MAX_CAMERAS: usize = 256;
/// Longest camera id (it appears in URLs and metric labels).
const MAX_CAMERA_ID_LEN: usize = 64;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the daemon keeps its state (self-signed TLS material, later recordings and audit log).
    pub state_dir: PathBuf,
    /// The HTTPS listener (API, signalling, web page).
    pub http: HttpConfig,
    /// The Prometheus metrics listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// WebRTC media transport.
    #[serde(default)]
    pub webrtc: WebrtcConfig,
    /// Caps on what clients may open.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Tokens from an identity provider.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Where and how recordings are kept.
    #[serde(default)]
    pub recording: RecordingConfig,
    /// What the daemon logs.
    #[serde(default)]
    pub log: LogConfig,
    /// Telemedicine consultations.
    #[serde(default)]
    pub consultations: ConsultationsConfig,
    /// The cameras this box ingests.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
}

/// `[auth]`: tokens issued by the city's or hospital's identity provider (besides the gateway's
/// own), and local users who sign in on the login page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The provider's public keys (a JWK set: ES256 P-256, RS256, EdDSA Ed25519; each with `kid`).
    pub jwks_file: Option<PathBuf>,
    /// The `iss` its tokens carry (required with `jwks_file`).
    pub issuer: Option<String>,
    /// The `aud` its tokens must carry, if any.
    pub audience: Option<String>,
    /// Local users who sign in with a password (absent: `<state_dir>/auth/users.json`).
    pub users_file: Option<PathBuf>,
    /// A signed-in person is signed out after this long without a request (automatic logoff).
    #[serde(default = "AuthConfig::default_idle_timeout_seconds")]
    pub idle_timeout_seconds: u64,
    /// And at the latest this long after signing in.
    #[serde(default = "AuthConfig::default_sign_in_lifetime_seconds")]
    pub sign_in_lifetime_seconds: u64,
}

impl AuthConfig {
    fn default_idle_timeout_seconds() -> u64 {
        15 * 60
    }
    fn default_sign_in_lifetime_seconds() -> u64 {
        12 * 3600
    }

    /// The users file for a state directory.
    pub fn users_file_in(&self, state_dir: &Path) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| state_dir.join("auth").join("users.json"))
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_file: None,
            issuer: None,
            audience: None,
            users_file: None,
            idle_timeout_seconds: Self::default_idle_timeout_seconds(),
            sign_in_lifetime_seconds: Self::default_sign_in_lifetime_seconds(),
        }
    }
}

/// `[limits]`: caps that keep one client, or many, from exhausting the box.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Viewer sessions open at once, all cameras together.
    #[serde(default = "LimitsConfig::default_max_sessions")]
    pub max_sessions: usize,
    /// Viewer sessions open at once on one camera.
    #[serde(default = "LimitsConfig::default_max_sessions_per_camera")]
    pub max_sessions_per_camera: usize,
    /// Failed password logins allowed per source address (IPv6: per /64) per minute.
    #[serde(default = "LimitsConfig::default_login_attempts_per_minute")]
    pub login_attempts_per_minute: u32,
    /// People signed in at once (the oldest idle sign-in ends first beyond it).
    #[serde(default = "LimitsConfig::default_max_sign_ins")]
    pub max_sign_ins: usize,
}

impl LimitsConfig {
    fn default_max_sessions() -> usize {
        1024
    }
    fn default_max_sessions_per_camera() -> usize {
        256
    }
    fn default_login_attempts_per_minute() -> u32 {
        5
    }
    fn default_max_sign_ins() -> usize {
        10_000
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_sessions: Self::default_max_sessions(),
            max_sessions_per_camera: Self::default_max_sessions_per_camera(),
            login_attempts_per_minute: Self::default_login_attempts_per_minute(),
            max_sign_ins: Self::default_max_sign_ins(),
        }
    }
}

/// `[audit]`: the audit log (`<state_dir>/audit/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Size in bytes past which the live file is rotated (renamed, kept read-only) and a new one
    /// continues the chain; at least 4 KiB, 64 MiB by default.
    #[serde(default = "AuditConfig::default_rotate_bytes")]
    pub rotate_bytes: u64,
}

impl AuditConfig {
    fn default_rotate_bytes() -> u64 {
        crate::audit::DEFAULT_ROTATE_BYTES
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            rotate_bytes: Self::default_rotate_bytes(),
        }
    }
}

/// `[recording]`: where recorded segments go, and the free space recording keeps on that disk.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// The recordings' directory (absent: `<state_dir>/recordings`).
    pub dir: Option<PathBuf>,
    /// Recording pauses when its filesystem has less free space than this (and resumes at twice
    /// it), so that the disk never fills up under the box's other files. Default 256 MiB.
    #[serde(default = "RecordingConfig::default_min_free_bytes")]
    pub min_free_bytes: u64,
}

impl RecordingConfig {
    fn default_min_free_bytes() -> u64 {
        256 * 1024 * 1024
    }

    /// The recordings' directory for a state directory.
    pub fn dir_in(&self, state_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| state_dir.join("recordings"))
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            dir: None,
            min_free_bytes: Self::default_min_free_bytes(),
        }
    }
}

/// `[consultations]`: telemedicine consultations (a clinician and invited participants).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultationsConfig {
    /// An invitation link works for this long (and once). Default 24, 1..=168.
    #[serde(default = "ConsultationsConfig::default_invite_hours")]
    pub invite_hours: u64,
    /// Participants at most, the clinician included. Default 4, 2..=4.
    #[serde(default = "ConsultationsConfig::default_max_participants")]
    pub max_participants: usize,
    /// A consultation nobody ended is ended this long after it was created. Default 12, 1..=48.
    #[serde(default = "ConsultationsConfig::default_max_hours")]
    pub max_hours: u64,
    /// A consultation's recording (made only with everyone's consent) is deleted this many days
    /// after it ended. Default 30, 1..=3650.
    #[serde(default = "ConsultationsConfig::default_recording_retain_days")]
    pub recording_retain_days: u64,
}

impl ConsultationsConfig {
    fn default_invite_hours() -> u64 {
        24
    }
    fn default_max_participants() -> usize {
        4
    }
    fn default_max_hours() -> u64 {
        12
    }
    fn default_recording_retain_days() -> u64 {
        30
    }
}

impl Default for ConsultationsConfig {
    fn default() -> Self {
        Self {
            invite_hours: Self::default_invite_hours(),
            max_participants: Self::default_max_participants(),
            max_hours: Self::default_max_hours(),
            recording_retain_days: Self::default_recording_retain_days(),
        }
    }
}

/// `[log]`: what the daemon logs (on stderr, or the journal under systemd).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info` (default), `debug` or `trace`, or per-module directives in
    /// `tracing-subscriber`'s `EnvFilter` syntax (`info,straja_gateway::recording=debug`).
    /// Changed by a reload; `$STRAJA_LOG`, when set, overrides it.
    #[serde(default = "LogConfig::default_level")]
    pub level: String,
}

impl LogConfig {
    fn default_level() -> String {
        "info".to_owned()
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: Self::default_level(),
        }
    }
}

/// Checks a `log.level`: comma-separated directives, each a level (`error`, `warn`, `info`,
/// `debug`, `trace`, `off`) or `TARGET=LEVEL`. Stricter than `EnvFilter`, which takes a bare word
/// as a target, so that a misspelt level (`deubg`) is an error rather than logging turned off.
fn validate_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let expected = "use error, warn, info, debug, trace or off, or TARGET=LEVEL directives \
                    separated by commas";
    if level.trim().is_empty() {
        return Err(format!("empty; {expected}"));
    }
    for directive in level.split(',').map(str::trim) {
        let named = match directive.rsplit_once('=') {
            Some((target, named)) if !target.is_empty() => named,
            _ => directive,
        };
        if !LEVELS.contains(&named.to_ascii_lowercase().as_str()) {
            return Err(format!("'{directive}' names no level; {expected}"));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(level)
        .map(|_| ())
        .map_err(|e| format!("{e}; {expected}"))
}

/// Longest `log.level` accepted.
const MAX_LOG_LEVEL_LEN: usize = 1024;

/// `[http]`: the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain; absent: a self-signed certificate generated in `state_dir`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs that sign API clients' certificates: when set, every HTTPS client
    /// must present a certificate from one of them (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// Web origins (`https://host[:port]`) whose pages may use WHEP from the browser (CORS,
    /// with bearer tokens only). Empty: no cross-origin access at all.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// `[metrics]`: the Prometheus listener (plain HTTP, meant for loopback or a management network).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[webrtc]`: media transport for every session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebrtcConfig {
    /// The UDP address all sessions share. A wildcard address (`0.0.0.0`, `::`) binds the same
    /// port on every interface address; port 0 picks a free port (for tests: firewalls need a
    /// fixed one).
    pub udp_listen: SocketAddr,
    /// Addresses to announce when the box is behind a 1:1 NAT.
    #[serde(default)]
    pub public_ips: Vec<IpAddr>,
    /// Who runs a viewer's connection after the SDP answer (see [`ViewerStack`]).
    #[serde(default)]
    pub viewer_stack: ViewerStack,
}

/// `[webrtc] viewer_stack`: the code that runs viewers' connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ViewerStack {
    /// `"straja"` (default): the gateway's own ICE-lite, DTLS-SRTP and SRTP sealed in place,
    /// several times cheaper per packet (benches/README.md, relay_load); an offer it cannot take
    /// (no sha-256 fingerprint, or the browser wants to be the DTLS client) falls back to
    /// `rtc`'s peer connection.
    #[default]
    #[serde(rename = "straja")]
    Straja,
    /// `"webrtc-rs"`: `rtc`'s peer connection for every viewer (as before issue 7).
    #[serde(rename = "webrtc-rs")]
    WebrtcRs,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            udp_listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            public_ips: Vec::new(),
            viewer_stack: ViewerStack::default(),
        }
    }
}

/// `[[cameras]]`: one camera.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// `[a-z0-9-]`, unique; used in URLs and metric labels.
    pub id: String,
    /// Human name shown to security staff.
    pub name: String,
    /// `rtsp://…`, `rtsps://…`, `test://pattern`, or `v4l2:///dev/videoN`.
    pub source: String,
    /// Bound on the camera's cached GOP, from which new viewers start at once (0: no cache; new
    /// viewers then wait for the camera's next keyframe).
    #[serde(default = "default_gop_cache_bytes")]
    pub gop_cache_bytes: usize,
    /// A camera that sends no packet for this long is reconnected (stall detection). Default 5.
    #[serde(default = "default_stall_seconds")]
    pub stall_seconds: u64,
    /// Record the camera continuously (encrypted segmented MP4).
    #[serde(default)]
    pub record: bool,
    /// Length of a recorded segment (it ends at the first keyframe after it). Default 60 s.
    #[serde(default = "default_record_segment_seconds")]
    pub record_segment_seconds: u64,
    /// Delete the camera's segments this many hours after their last frame (absent: no limit).
    pub record_retain_hours: Option<u64>,
    /// Keep at most this many bytes of the camera's segments, deleting the oldest (absent: no
    /// limit).
    pub record_max_bytes: Option<u64>,
}

fn default_gop_cache_bytes() -> usize {
    crate::hub::gop_cache::DEFAULT_GOP_CACHE_BYTES
}

fn default_record_segment_seconds() -> u64 {
    60
}

fn default_stall_seconds() -> u64 {
    5
}

/// Bounds of `stall_seconds`.
const STALL_SECONDS: std::ops::RangeInclusive<u64> = 1..=300;

/// Bounds of `record_segment_seconds`.
const RECORD_SEGMENT_SECONDS: std::ops::RangeInclusive<u64> = 2..=3600;
/// Bounds of `record_retain_hours` (ten years).
const RECORD_RETAIN_HOURS: std::ops::RangeInclusive<u64> = 1..=87_600;
/// Smallest `record_max_bytes`.
const MIN_RECORD_MAX_BYTES: u64 = 1024 * 1024;

impl fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source URL may carry credentials: show it only redacted.
        let source = CameraSource::parse(&self.source)
            .map(|s| s.redacted())
            .unwrap_or_else(|_| "<invalid>".to_owned());
        f.debug_struct("CameraConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("source", &source)
            .field("gop_cache_bytes", &self.gop_cache_bytes)
            .field("stall_seconds", &self.stall_seconds)
            .field("record", &self.record)
            .field("record_segment_seconds", &self.record_segment_seconds)
            .field("record_retain_hours", &self.record_retain_hours)
            .field("record_max_bytes", &self.record_max_bytes)
            .finish()
    }
}

/// One problem found in a configuration: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field, as a TOML path (`cameras[1].id`), or empty for the file as a whole.
    pub field: String,
    /// What is wrong, and what is expected.
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// A configuration that could not be loaded: every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration{}:\n{}", origin.as_deref().map(|o| format!(" in {o}")).unwrap_or_default(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// Where the configuration came from (a path), if from a file.
    pub origin: Option<String>,
    /// Every problem found.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    fn single(origin: Option<String>, field: &str, reason: impl Into<String>) -> Self {
        Self {
            origin,
            problems: vec![ConfigProblem {
                field: field.to_owned(),
                reason: reason.into(),
            }],
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = Some(path.display().to_string());
        let meta = std::fs::metadata(path)
            .map_err(|e| ConfigError::single(origin.clone(), "", format!("cannot read: {e}")))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::single(
                origin,
                "",
                format!(
                    "file is {} bytes; at most {MAX_CONFIG_BYTES} accepted",
                    meta.len()
                ),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single(origin.clone(), "", format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(|mut e| {
            e.origin = origin;
            e
        })
    }

    /// The embedded demo configuration.
    pub fn demo() -> Config {
        Self::parse(DEMO_CONFIG).expect("the embedded demo configuration is valid")
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .map(|span| field_at(text, span.start))
                .unwrap_or_default();
            ConfigError::single(None, &field, e.message().to_owned())
        })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                origin: None,
                problems,
            })
        }
    }

    /// Every semantic problem of a parsed configuration (empty when valid).
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |field: String, reason: String| {
            problems.push(ConfigProblem { field, reason });
        };
        if self.state_dir.as_os_str().is_empty() {
            problem("state_dir".into(), "must not be empty".into());
        }
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(_), None) => problem(
                "http.tls_key".into(),
                "missing: tls_cert and tls_key go together".into(),
            ),
            (None, Some(_)) => problem(
                "http.tls_cert".into(),
                "missing: tls_cert and tls_key go together".into(),
            ),
            _ => {}
        }
        if self.http.listen == self.metrics.listen && self.http.listen.port() != 0 {
            problem(
                "metrics.listen".into(),
                format!("same address as http.listen ({})", self.http.listen),
            );
        }
        for (i, ip) in self.webrtc.public_ips.iter().enumerate() {
            if ip.is_unspecified() || ip.is_multicast() {
                problem(
                    format!("webrtc.public_ips[{i}]"),
                    format!("{ip} cannot be announced to browsers"),
                );
            }
        }
        for (field, value) in [
            ("limits.max_sessions", self.limits.max_sessions),
            (
                "limits.max_sessions_per_camera",
                self.limits.max_sessions_per_camera,
            ),
        ] {
            if !(1..=100_000).contains(&value) {
                problem(field.into(), format!("{value} is out of range 1..=100000"));
            }
        }
        if !(1..=10_000).contains(&self.limits.login_attempts_per_minute) {
            problem(
                "limits.login_attempts_per_minute".into(),
                format!(
                    "{} is out of range 1..=10000",
                    self.limits.login_attempts_per_minute
                ),
            );
        }
        if !(1..=1_000_000).contains(&self.limits.max_sign_ins) {
            problem(
                "limits.max_sign_ins".into(),
                format!("{} is out of range 1..=1000000", self.limits.max_sign_ins),
            );
        }
        if !(1..=86_400).contains(&self.auth.idle_timeout_seconds) {
            problem(
                "auth.idle_timeout_seconds".into(),
                format!(
                    "{} is out of range 1..=86400 (one day)",
                    self.auth.idle_timeout_seconds
                ),
            );
        }
        if !(1..=7 * 86_400).contains(&self.auth.sign_in_lifetime_seconds) {
            problem(
                "auth.sign_in_lifetime_seconds".into(),
                format!(
                    "{} is out of range 1..=604800 (a week)",
                    self.auth.sign_in_lifetime_seconds
                ),
            );
        }
        for (field, path) in [
            ("http.tls_cert", &self.http.tls_cert),
            ("http.tls_key", &self.http.tls_key),
            ("http.client_ca", &self.http.client_ca),
        ] {
            if let Some(Some(Err(reason))) = path.as_deref().map(crate::key_file::credential_name) {
                problem(field.into(), reason);
            }
        }
        for (i, origin) in self.http.cors_origins.iter().enumerate() {
            if let Err(reason) = validate_origin(origin) {
                problem(format!("http.cors_origins[{i}]"), reason);
            }
        }
        match (&self.auth.jwks_file, &self.auth.issuer) {
            (Some(_), None) => problem(
                "auth.issuer".into(),
                "missing: tokens from jwks_file are checked against their issuer".into(),
            ),
            (None, Some(_)) => problem(
                "auth.jwks_file".into(),
                "missing: issuer applies to the provider's keys in jwks_file".into(),
            ),
            _ => {}
        }
        if self.audit.rotate_bytes < crate::audit::MIN_ROTATE_BYTES {
            problem(
                "audit.rotate_bytes".into(),
                format!(
                    "{} is too small; at least {} (4 KiB)",
                    self.audit.rotate_bytes,
                    crate::audit::MIN_ROTATE_BYTES
                ),
            );
        }
        if self.log.level.len() > MAX_LOG_LEVEL_LEN {
            problem(
                "log.level".into(),
                format!("longer than {MAX_LOG_LEVEL_LEN} characters"),
            );
        } else if let Err(reason) = validate_log_level(&self.log.level) {
            problem("log.level".into(), reason);
        }
        for (field, value, range) in [
            (
                "consultations.invite_hours",
                self.consultations.invite_hours,
                1..=168,
            ),
            (
                "consultations.max_participants",
                self.consultations.max_participants as u64,
                2..=4,
            ),
            (
                "consultations.max_hours",
                self.consultations.max_hours,
                1..=48,
            ),
            (
                "consultations.recording_retain_days",
                self.consultations.recording_retain_days,
                1..=3650,
            ),
        ] {
            if !range.contains(&value) {
                problem(
                    field.into(),
                    format!(
                        "{value} is out of range {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
        if self.cameras.len() > MAX_CAMERAS {
            problem(
                "cameras".into(),
                format!(
                    "{} cameras configured; at most {MAX_CAMERAS}",
                    self.cameras.len()
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, camera) in self.cameras.iter().enumerate() {
            if let Err(reason) = validate_camera_id(&camera.id) {
                problem(format!("cameras[{i}].id"), reason);
            } else if !seen.insert(camera.id.as_str()) {
                problem(
                    format!("cameras[{i}].id"),
                    format!(
                        "'{}' is used by another camera; ids must be unique",
                        camera.id
                    ),
                );
            }
            if camera.name.trim().is_empty() || camera.name.len() > 200 {
                problem(
                    format!("cameras[{i}].name"),
                    "must be 1 to 200 characters".into(),
                );
            }
            if let Err(e) = CameraSource::parse(&camera.source) {
                problem(format!("cameras[{i}].source"), e.to_string());
            }
            if camera.gop_cache_bytes > MAX_GOP_CACHE_BYTES {
                problem(
                    format!("cameras[{i}].gop_cache_bytes"),
                    format!(
                        "{} is over the largest allowed, {MAX_GOP_CACHE_BYTES} (64 MiB); 0 turns \
                         the cache off",
                        camera.gop_cache_bytes
                    ),
                );
            }
            if !STALL_SECONDS.contains(&camera.stall_seconds) {
                problem(
                    format!("cameras[{i}].stall_seconds"),
                    format!(
                        "{} is out of range {}..={}",
                        camera.stall_seconds,
                        STALL_SECONDS.start(),
                        STALL_SECONDS.end()
                    ),
                );
            }
            if !RECORD_SEGMENT_SECONDS.contains(&camera.record_segment_seconds) {
                problem(
                    format!("cameras[{i}].record_segment_seconds"),
                    format!(
                        "{} is out of range {}..={}",
                        camera.record_segment_seconds,
                        RECORD_SEGMENT_SECONDS.start(),
                        RECORD_SEGMENT_SECONDS.end()
                    ),
                );
            }
            if let Some(hours) = camera.record_retain_hours
                && !RECORD_RETAIN_HOURS.contains(&hours)
            {
                problem(
                    format!("cameras[{i}].record_retain_hours"),
                    format!(
                        "{hours} is out of range {}..={} (ten years)",
                        RECORD_RETAIN_HOURS.start(),
                        RECORD_RETAIN_HOURS.end()
                    ),
                );
            }
            if let Some(bytes) = camera.record_max_bytes
                && bytes < MIN_RECORD_MAX_BYTES
            {
                problem(
                    format!("cameras[{i}].record_max_bytes"),
                    format!("{bytes} is too small; at least {MIN_RECORD_MAX_BYTES} (1 MiB)"),
                );
            }
        }
        if self.recording.min_free_bytes > 1 << 50 {
            problem(
                "recording.min_free_bytes".into(),
                format!(
                    "{} is out of range (at most 1 PiB)",
                    self.recording.min_free_bytes
                ),
            );
        }
        problems
    }
}

/// Checks a camera id: `[a-z0-9-]`, 1 to 64 characters, not starting or ending with `-`.
pub fn validate_camera_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_CAMERA_ID_LEN {
        return Err(format!("must be 1 to {MAX_CAMERA_ID_LEN} characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "'{id}' contains {c:?}; only a-z, 0-9 and '-' are allowed"
        ));
    }
    if id.starts_with('-') || id.ends_with('-') {
        return Err(format!("'{id}' must not start or end with '-'"));
    }
    Ok(())
}

/// Checks a CORS origin: `https://host` or `https://host:port`, nothing after it (browsers send
/// exactly that in `Origin`, and compare it byte for byte).
pub fn validate_origin(origin: &str) -> Result<(), String> {
    let parsed = url::Url::parse(origin).map_err(|e| format!("'{origin}' is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err(format!(
            "'{origin}' must be an https:// origin (the gateway serves HTTPS only)"
        ));
    }
    if parsed.host_str().is_none()
        || origin != parsed.origin().ascii_serialization()
        || origin.ends_with('/')
    {
        return Err(format!(
            "'{origin}' must be an origin: https://host[:port], without path, '*' or trailing '/'"
        ));
    }
    Ok(())
}

/// The TOML path of the key or table that contains byte `offset`, best effort, for error messages
/// from the TOML parser (which knows the span, not always the key's name).
fn field_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let mut table = String::new();
    let mut array_index: std::collections::HashMap<String, usize> = Default::default();
    for line in before.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            let name = name.trim().to_owned();
            let index = array_index.entry(name.clone()).or_insert(0);
            table = format!("{name}[{index}]");
            *index += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.trim().to_owned();
        }
    }
    let current_line = before.rsplit('\n').next().unwrap_or("");
    let rest_of_line = text[offset.min(text.len())..]
        .split('\n')
        .next()
        .unwrap_or("");
    let line = format!("{current_line}{rest_of_line}");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match (table.is_empty(), key) {
        (true, Some(key)) => key,
        (false, Some(key)) => format!("{table}.{key}"),
        (_, None) => table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
state_dir = "/var/lib/straja"
[http]
listen = "127.0.0.1:8443"
"#;

    #[test]
    fn demo_config_is_valid_and_has_two_test_cameras() {
        let config = Config::demo();
        assert_eq!(config.cameras.len(), 2);
        assert!(
            config
                .cameras
                .iter()
                .all(|c| c.source.starts_with("test://"))
        );
        assert_eq!(
            config.http.listen,
            "127.0.0.1:8443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            config.metrics.listen,
            "127.0.0.1:9464".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn design_md_example_is_accepted() {
        let text = r#"
state_dir = "/var/lib/straja"

[http]
listen = "0.0.0.0:8443"
tls_cert = "/etc/straja/tls/server.crt"
tls_key  = "/etc/straja/tls/server.key"

[metrics]
listen = "127.0.0.1:9464"

[webrtc]
udp_listen = "0.0.0.0:8189"
public_ips = []

[limits]
max_sessions = 1024
max_sessions_per_camera = 256

[[cameras]]
id = "north-gate"
name = "North gate"
source = "rtsp://10.0.0.5:554/stream1"
"#;
        let config = Config::parse(text).unwrap();
        assert_eq!(config.cameras[0].id, "north-gate");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text =
            format!("{MINIMAL}\n[webrtc]\nudp_listen = \"127.0.0.1:8189\"\nudp_lissen = 3\n");
        let err = Config::parse(&text).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("udp_lissen"), "{message}");
        assert!(message.contains("webrtc"), "{message}");
    }

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let text = r#"
state_dir = "/tmp/x"
[http]
listen = "127.0.0.1:9464"
tls_cert = "/a.crt"
[webrtc]
udp_listen = "127.0.0.1:8189"
[[cameras]]
id = "Bad_Id"
name = "A"
source = "test://ball"
[[cameras]]
id = "b"
name = " "
source = "http://example"
[[cameras]]
id = "b"
name = "C"
source = "test://ball"
gop_cache_bytes = 999999999999
stall_seconds = 0
record_segment_seconds = 1
record_retain_hours = 0
record_max_bytes = 10
[auth]
jwks_file = "/etc/straja/idp.jwks"
"#;
        let err = Config::parse(text).unwrap_err();
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        for expected in [
            "http.tls_key",
            "metrics.listen",
            "cameras[0].id",
            "cameras[1].name",
            "cameras[1].source",
            "cameras[2].id",
            "cameras[2].gop_cache_bytes",
            "cameras[2].stall_seconds",
            "cameras[2].record_segment_seconds",
            "cameras[2].record_retain_hours",
            "cameras[2].record_max_bytes",
            "auth.issuer",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing in {fields:?}"
            );
        }
    }

    #[test]
    fn camera_debug_output_redacts_credentials() {
        let camera = CameraConfig {
            id: "gate".into(),
            name: "Gate".into(),
            source: "rtsp://admin:s3cret@127.0.0.1:554/stream".into(),
            gop_cache_bytes: 0,
            stall_seconds: 5,
            record: false,
            record_segment_seconds: 60,
            record_retain_hours: None,
            record_max_bytes: None,
        };
        let shown = format!("{camera:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn camera_ids_follow_the_contract() {
        assert!(validate_camera_id("north-gate-2").is_ok());
        assert!(validate_camera_id("").is_err());
        assert!(validate_camera_id("North").is_err());
        assert!(validate_camera_id("-a").is_err());
        assert!(validate_camera_id("a/b").is_err());
        assert!(validate_camera_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn log_level_has_a_default_and_is_checked_as_a_filter() {
        assert_eq!(Config::parse(MINIMAL).unwrap().log.level, "info");
        for level in ["debug", "warn,straja_gateway::recording=debug", "error"] {
            let config = Config::parse(&format!("{MINIMAL}[log]\nlevel = \"{level}\"\n"));
            assert_eq!(config.expect(level).log.level, level);
        }
        for bad in [
            "info,[",
            "loud=",
            "info,x=verbose",
            "deubg",
            "",
            "info,,debug",
        ] {
            let err = Config::parse(&format!("{MINIMAL}[log]\nlevel = \"{bad}\"\n")).unwrap_err();
            assert_eq!(err.problems[0].field, "log.level", "{bad}: {err}");
        }
        let long = "a".repeat(2000);
        let err = Config::parse(&format!("{MINIMAL}[log]\nlevel = \"{long}\"\n")).unwrap_err();
        assert_eq!(err.problems[0].field, "log.level");
    }

    #[test]
    fn audit_rotation_size_has_a_default_a_minimum_and_no_unknown_keys() {
        let config = Config::parse(MINIMAL).unwrap();
        assert_eq!(config.audit.rotate_bytes, 64 * 1024 * 1024);
        let config = Config::parse(&format!("{MINIMAL}[audit]\nrotate_bytes = 4096\n")).unwrap();
        assert_eq!(config.audit.rotate_bytes, 4096);
        let err = Config::parse(&format!("{MINIMAL}[audit]\nrotate_bytes = 100\n")).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].field, "audit.rotate_bytes");
        assert!(err.problems[0].reason.contains("4096"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}[audit]\nrotate_bytes = -1\n")).unwrap_err();
        assert_eq!(err.problems[0].field, "audit.rotate_bytes", "{err}");
        let err = Config::parse(&format!("{MINIMAL}[audit]\nrotate_size = 4096\n")).unwrap_err();
        assert!(err.to_string().contains("rotate_size"), "{err}");
    }
}
