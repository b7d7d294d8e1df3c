//! Taking a new configuration while serving (SIGHUP, `systemctl reload`): what changed
//! ([`ReloadPlan`]), and putting it in force without touching what did not.
//!
//! - Cameras are matched by id. An added camera starts; a removed one has its viewers closed,
//!   its recorder's segment ended cleanly and its pipeline stopped (its recordings stay on disk);
//!   a changed one keeps its feed, so that its viewers and recorder stay attached: a new source
//!   or stall timeout restarts only its pipeline (its viewers see a reconnect), a new name, GOP
//!   cache bound or recording setting leaves the pipeline alone. Unchanged cameras, and their
//!   viewers, are not touched at all.
//! - TLS material (`http.tls_cert`, `tls_key`, `client_ca`) is read again, also when its paths
//!   did not change: new connections get it, established ones carry on.
//! - `http.cors_origins`, `limits.max_sessions` and `limits.max_sessions_per_camera` apply to
//!   requests and sessions from now on; `log.level` is applied by the daemon.
//! - Everything else (listeners, the state and recordings directories, WebRTC, audit and auth
//!   settings, login limits) is fixed at start-up: a change is logged as needing a restart and
//!   the running value stays, so that the configuration in force always says what runs.
//!
//! A configuration that does not load, or whose TLS material does not, is rejected as a whole:
//! nothing changes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum_server::tls_rustls::RustlsConfig;

use crate::audit::{Action, AuditEvent, Outcome};
use crate::cameras::Camera;
use crate::config::{CameraConfig, Config};
use crate::gateway::Gateway;

/// What a new configuration changes, against the one in force.
#[derive(Debug, Default, PartialEq)]
pub struct ReloadPlan {
    /// Cameras in the new configuration only.
    pub added: Vec<String>,
    /// Cameras in the old configuration only.
    pub removed: Vec<String>,
    /// Cameras in both, configured differently.
    pub changed: Vec<String>,
    /// Settings that changed but take effect only at the next start (TOML paths).
    pub needs_restart: Vec<&'static str>,
    /// `log.level`, when it changed.
    pub log_level: Option<String>,
}

impl ReloadPlan {
    /// Compares the configuration in force with a new one.
    pub fn between(old: &Config, new: &Config) -> ReloadPlan {
        let find = |cameras: &[CameraConfig], id: &str| cameras.iter().any(|c| c.id == id);
        let mut plan = ReloadPlan {
            added: new
                .cameras
                .iter()
                .filter(|c| !find(&old.cameras, &c.id))
                .map(|c| c.id.clone())
                .collect(),
            removed: old
                .cameras
                .iter()
                .filter(|c| !find(&new.cameras, &c.id))
                .map(|c| c.id.clone())
                .collect(),
            changed: new
                .cameras
                .iter()
                .filter(|c| old.cameras.iter().any(|o| o.id == c.id && o != *c))
                .map(|c| c.id.clone())
                .collect(),
            needs_restart: Vec::new(),
            log_level: (old.log.level != new.log.level).then(|| new.log.level.clone()),
        };
        let fixed: [(&'static str, bool); 10] = [
            ("state_dir", old.state_dir != new.state_dir),
            ("http.listen", old.http.listen != new.http.listen),
            ("metrics.listen", old.metrics != new.metrics),
            ("webrtc", old.webrtc != new.webrtc),
            ("audit", old.audit != new.audit),
            ("auth", old.auth != new.auth),
            (
                "limits.login_attempts_per_minute",
                old.limits.login_attempts_per_minute != new.limits.login_attempts_per_minute,
            ),
            (
                "limits.max_sign_ins",
                old.limits.max_sign_ins != new.limits.max_sign_ins,
            ),
            ("recording", old.recording != new.recording),
            ("consultations", old.consultations != new.consultations),
        ];
        plan.needs_restart = fixed
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(field, _)| field)
            .collect();
        plan
    }
}

/// `new`, with the settings fixed at start-up taken from `old` (what will really run).
pub fn in_force(old: &Config, mut new: Config) -> Config {
    new.state_dir = old.state_dir.clone();
    new.http.listen = old.http.listen;
    new.metrics = old.metrics.clone();
    new.webrtc = old.webrtc.clone();
    new.audit = old.audit.clone();
    new.auth = old.auth.clone();
    new.limits.login_attempts_per_minute = old.limits.login_attempts_per_minute;
    new.limits.max_sign_ins = old.limits.max_sign_ins;
    new.recording = old.recording.clone();
    new.consultations = old.consultations.clone();
    new
}

/// A reload that was put in force.
#[derive(Debug)]
pub struct ReloadReport {
    /// What changed.
    pub plan: ReloadPlan,
    /// From the start of the reload until everything was in force (new pipelines started, old
    /// ones stopped; cameras connect in the background).
    pub took: Duration,
    /// Problems that did not stop the reload (a recorder that could not start).
    pub problems: Vec<String>,
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &[String]| {
            if ids.is_empty() {
                String::new()
            } else {
                format!(" ({})", ids.join(", "))
            }
        };
        let plan = &self.plan;
        write!(
            f,
            "cameras: {} added{}, {} removed{}, {} changed{}",
            plan.added.len(),
            list(&plan.added),
            plan.removed.len(),
            list(&plan.removed),
            plan.changed.len(),
            list(&plan.changed),
        )?;
        if let Some(level) = &plan.log_level {
            write!(f, "; log level {level}")?;
        }
        if !plan.needs_restart.is_empty() {
            write!(
                f,
                "; needs a restart to change: {}",
                plan.needs_restart.join(", ")
            )?;
        }
        for problem in &self.problems {
            write!(f, "; {problem}")?;
        }
        Ok(())
    }
}

/// Why a reload was rejected (the configuration in force stays).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The new configuration does not load.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// Its TLS material does not load.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The reload's work could not run.
    #[error("the reload could not run: {0}")]
    Internal(String),
}

/// Puts `new` in force (see the module's documentation), or rejects it; either way the outcome
/// is logged, counted (`straja_config_reloads_total`) and on record in the audit log.
pub async fn reload(
    gateway: &Arc<Gateway>,
    tls: &RustlsConfig,
    new: Result<Config, crate::config::ConfigError>,
) -> Result<ReloadReport, ReloadError> {
    let began = Instant::now();
    let result = match new {
        Ok(new) => apply(gateway, tls, new, began).await,
        Err(e) => Err(ReloadError::Config(e)),
    };
    let (outcome, reason, label) = match &result {
        Ok(report) => {
            tracing::info!(
                took_ms = report.took.as_millis() as u64,
                "configuration reloaded: {report}"
            );
            if !report.plan.needs_restart.is_empty() {
                tracing::warn!(
                    "changed settings that take effect only after a restart (the running values \
                     stay): {}",
                    report.plan.needs_restart.join(", ")
                );
            }
            (Outcome::Allowed, report.to_string(), "applied")
        }
        Err(e) => {
            tracing::error!("configuration reload rejected, the running configuration stays: {e}");
            (Outcome::Denied, e.to_string(), "rejected")
        }
    };
    gateway
        .metrics
        .config_reloads
        .with_label_values(&[label])
        .inc();
    gateway
        .metrics
        .config_last_reload_successful
        .set(i64::from(result.is_ok()));
    let event = AuditEvent {
        actor: "system".to_owned(),
        role: None,
        action: Action::ConfigReload,
        resource: "config".to_owned(),
        outcome,
        source: None,
        reason: Some(reason),
    };
    if let Err(e) = gateway.audit(event).await {
        tracing::error!(error = %e, "the configuration reload could not be recorded in the audit log");
    }
    result
}

async fn apply(
    gateway: &Arc<Gateway>,
    tls: &RustlsConfig,
    new: Config,
    began: Instant,
) -> Result<ReloadReport, ReloadError> {
    let old = gateway.config();
    let plan = ReloadPlan::between(&old, &new);
    let new = in_force(&old, new);
    // Everything that can fail for a reason in the configuration is checked before anything
    // changes.
    let tls_config = crate::tls::server_config(&new.http, &new.state_dir)?;
    let problems = {
        let gateway = gateway.clone();
        let new = new.clone();
        // Pipelines and recorders stop synchronously (a few seconds at most): off the runtime.
        tokio::task::spawn_blocking(move || apply_cameras(&gateway, &new))
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))?
    };
    gateway
        .sessions
        .set_caps(new.limits.max_sessions, new.limits.max_sessions_per_camera);
    gateway.config.store(Arc::new(new));
    tls.reload_from_config(tls_config);
    tracing::info!("TLS certificate and key reloaded");
    crate::server::export_certificate_expiry(gateway);
    Ok(ReloadReport {
        plan,
        took: began.elapsed(),
        problems,
    })
}

/// Starts, reconfigures and stops cameras so that they match `new` (blocking); returns the
/// problems that did not stop it.
fn apply_cameras(gateway: &Gateway, new: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let running = gateway.cameras.all();
    let mut cameras = Vec::with_capacity(new.cameras.len());
    let mut touched = Vec::new();
    for config in &new.cameras {
        let camera = match running.iter().find(|c| c.id == config.id) {
            Some(camera) if camera.config() == config => camera.clone(),
            Some(camera) => {
                if camera.needs_new_pipeline(config) {
                    tracing::info!(camera = %config.id, "camera reconfigured: restarting its pipeline");
                }
                let camera = Arc::new(camera.reconfigured(config));
                touched.push(camera.clone());
                camera
            }
            None => {
                tracing::info!(camera = %config.id, "camera added");
                gateway.snapshots.add_camera(&config.id);
                let camera = Arc::new(Camera::start(config, &gateway.metrics));
                touched.push(camera.clone());
                camera
            }
        };
        cameras.push(camera);
    }
    // From here on, requests find the new cameras and no longer find the removed ones.
    gateway.cameras.replace(cameras);
    for camera in touched {
        if let Err(e) = gateway.recordings.configure(camera.config(), &camera.feed) {
            tracing::error!(camera = %camera.id, error = %e, "the camera's recorder could not start");
            problems.push(format!("camera {}: recorder not started: {e}", camera.id));
        }
    }
    for camera in running
        .iter()
        .filter(|c| gateway.cameras.get(&c.id).is_none())
    {
        let viewers = gateway.sessions.close_camera(&camera.id);
        gateway.export_session_count();
        // The recorder first, while the camera still delivers: its segment ends cleanly.
        gateway.recordings.remove_camera(&camera.id);
        camera.stop();
        gateway.snapshots.remove_camera(&camera.id);
        gateway.metrics.forget_camera(&camera.id);
        tracing::info!(camera = %camera.id, viewers, "camera removed: its viewers were closed, its recordings stay on disk");
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
state_dir = "/tmp/straja-reload-test"
[http]
listen = "127.0.0.1:8443"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball"
[[cameras]]
id = "yard"
name = "Yard"
source = "test://snow"
"#;

    fn config(text: &str) -> Config {
        Config::parse(text).expect("valid")
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let plan = ReloadPlan::between(&config(BASE), &config(BASE));
        assert_eq!(plan, ReloadPlan::default());
    }

    #[test]
    fn cameras_are_matched_by_id() {
        let new = BASE
            .replace("name = \"Yard\"", "name = \"Back yard\"")
            .replace(
                "id = \"gate\"\nname = \"Gate\"",
                "id = \"lobby\"\nname = \"Lobby\"",
            );
        let plan = ReloadPlan::between(&config(BASE), &config(&new));
        assert_eq!(plan.added, ["lobby"]);
        assert_eq!(plan.removed, ["gate"]);
        assert_eq!(plan.changed, ["yard"]);
        assert!(plan.needs_restart.is_empty());
    }

    #[test]
    fn settings_fixed_at_start_need_a_restart_and_keep_their_running_value() {
        let new = format!(
            "{}\n[log]\nlevel = \"debug\"\n[limits]\nmax_sessions = 5\nmax_sign_ins = 9\n",
            BASE.replace("127.0.0.1:8443", "127.0.0.1:9443")
        );
        let (old, new) = (config(BASE), config(&new));
        let plan = ReloadPlan::between(&old, &new);
        assert_eq!(plan.needs_restart, ["http.listen", "limits.max_sign_ins"]);
        assert_eq!(plan.log_level.as_deref(), Some("debug"));
        let running = in_force(&old, new);
        assert_eq!(running.http.listen, old.http.listen);
        assert_eq!(running.limits.max_sign_ins, old.limits.max_sign_ins);
        assert_eq!(running.limits.max_sessions, 5, "applied live");
        assert_eq!(running.log.level, "debug");
        assert!(ReloadPlan::between(&old, &running).needs_restart.is_empty());
    }

    #[test]
    fn the_report_says_what_changed() {
        let report = ReloadReport {
            plan: ReloadPlan {
                added: vec!["lobby".into()],
                removed: vec![],
                changed: vec!["gate".into(), "yard".into()],
                needs_restart: vec!["webrtc"],
                log_level: Some("debug".into()),
            },
            took: Duration::from_millis(12),
            problems: vec![],
        };
        assert_eq!(
            report.to_string(),
            "cameras: 1 added (lobby), 0 removed, 2 changed (gate, yard); log level debug; \
             needs a restart to change: webrtc"
        );
    }
}
