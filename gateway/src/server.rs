//! Starting and stopping the daemon: pipelines, media port, HTTPS API and metrics listener, in an
//! order where a failure says what could not start; and a graceful stop that closes sessions and
//! sets every pipeline to NULL.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinHandle;

use crate::audit::{Action, AuditEvent, Outcome};
use crate::cameras::{Camera, STATE_EXPORT_INTERVAL};
use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::metrics_server::MetricsServer;
use crate::sessions::Sessions;
use crate::webrtc::WebrtcEngine;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// GStreamer could not be initialised.
    #[error("GStreamer: {0}")]
    Pipelines(#[from] straja_pipelines::PipelineError),
    /// The state directory could not be created.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS material is missing or unusable.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The audit log cannot be opened or continued.
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The token signing key is unusable.
    #[error("{0}")]
    Tokens(#[from] crate::auth::token_authority::IssueError),
    /// Recording could not be set up (its key or directory).
    #[error("{0}")]
    Recording(#[from] crate::recording::RecordingError),
    /// A listener could not be bound.
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}

/// A started gateway.
pub struct RunningGateway {
    /// The HTTPS listener's address.
    pub https_addr: SocketAddr,
    /// The metrics listener's address.
    pub metrics_addr: SocketAddr,
    /// The media port's addresses.
    pub media_addrs: Vec<SocketAddr>,
    gateway: Arc<Gateway>,
    https: Handle<SocketAddr>,
    https_task: JoinHandle<()>,
    metrics_server: MetricsServer,
    exporter: JoinHandle<()>,
    tls: RustlsConfig,
    tls_watcher: JoinHandle<()>,
    retention: JoinHandle<()>,
    heartbeats: Arc<crate::heartbeat::Heartbeats>,
}

/// Starts everything; returns once the listeners are bound (cameras may still be connecting).
pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
    straja_pipelines::init()?;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| StartError::StateDir {
        path: config.state_dir.display().to_string(),
        source,
    })?;
    let tls = crate::tls::server_config(&config.http, &config.state_dir)?;
    let mut tokens = crate::auth::TokenAuthority::load_or_create(&config.state_dir)?;
    if let (Some(jwks), Some(issuer)) = (&config.auth.jwks_file, &config.auth.issuer) {
        let provider = crate::auth::identity_provider::IdentityProvider::load(
            jwks,
            issuer,
            config.auth.audience.as_deref(),
        )?;
        tokens = tokens.with_identity_provider(provider);
    }
    let audit = Arc::new(crate::audit::AuditLog::open(
        &config.state_dir,
        config.audit.rotate_bytes,
    )?);
    let metrics = Arc::new(Metrics::new());
    audit.report_to(crate::audit::AuditMetrics {
        write_seconds: metrics.audit_write_seconds.clone(),
        write_failures: metrics.audit_write_failures.clone(),
    });
    let heartbeats = Arc::new(crate::heartbeat::Heartbeats::new());
    let webrtc = WebrtcEngine::bind(
        &config.webrtc,
        metrics.udp_unmatched.clone(),
        &heartbeats,
        metrics.relay_latency.clone(),
    )
    .await?;
    let media_addrs = webrtc.local_addrs();

    let https_listener = std::net::TcpListener::bind(config.http.listen).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind HTTPS listener {}: {e}", config.http.listen),
        )
    })?;
    https_listener.set_nonblocking(true)?;
    let https_addr = https_listener.local_addr()?;
    let metrics_server = MetricsServer::start(config.metrics.listen, metrics.clone()).await?;

    let cameras: Vec<Arc<Camera>> = config
        .cameras
        .iter()
        .map(|c| Arc::new(Camera::start(c, &metrics)))
        .collect();
    let sessions = Sessions::new(
        config.limits.max_sessions,
        config.limits.max_sessions_per_camera,
    );
    let login = crate::auth::local_login::LocalLogin::new(&config);
    let recordings = crate::recording::Recordings::start(&config, &cameras, metrics.clone())?;
    let snapshots =
        crate::snapshots::Snapshots::new(config.cameras.iter().map(|c| c.id.as_str()), &metrics);
    let consultations = crate::consultation::Consultations::new(config.consultations.clone());
    let gateway = Arc::new(Gateway {
        consultations,
        recordings,
        login,
        snapshots,
        config: arc_swap::ArcSwap::from_pointee(config),
        cameras: crate::camera_set::CameraSet::new(cameras),
        sessions,
        webrtc,
        metrics,
        tokens,
        audit,
    });

    let https = Handle::new();
    let app = crate::http::router(gateway.clone());
    let tls = RustlsConfig::from_config(tls);
    let acceptor = crate::tls_handshake_counter::CountingAcceptor::new(
        axum_server::tls_rustls::RustlsAcceptor::new(tls.clone()),
        gateway.metrics.tls_handshake_failures.clone(),
    );
    let server = axum_server::from_tcp(https_listener)?
        .acceptor(acceptor)
        .handle(https.clone());
    let https_task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = server.serve(service).await {
            tracing::error!(error = %e, "HTTPS listener failed");
        }
    });

    let exporter = {
        let gateway = Arc::downgrade(&gateway);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATE_EXPORT_INTERVAL);
            loop {
                tick.tick().await;
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                for camera in gateway.cameras.all().iter() {
                    camera.export_metrics();
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if !gateway.consultations.end_expired(&gateway, now).is_empty() {
                    crate::http::consultations::export_gauges(&gateway);
                }
                // Also forgets sign-ins that ended by inactivity.
                gateway
                    .metrics
                    .signed_in
                    .set(gateway.login.signed_in() as i64);
            }
        })
    };

    export_certificate_expiry(&gateway);
    let tls_watcher = tokio::spawn(watch_tls_files(Arc::downgrade(&gateway), tls.clone()));
    let retention = tokio::spawn(sweep_recordings(Arc::downgrade(&gateway)));

    tracing::info!(
        https = %https_addr,
        metrics = %metrics_server.addr,
        media = ?media_addrs,
        cameras = gateway.cameras.len(),
        "straja is serving"
    );
    Ok(RunningGateway {
        https_addr,
        metrics_addr: metrics_server.addr,
        media_addrs,
        gateway,
        https,
        https_task,
        metrics_server,
        exporter,
        tls,
        tls_watcher,
        retention,
        heartbeats,
    })
}

/// Runs recording retention now and then (off the async runtime: it deletes files).
async fn sweep_recordings(gateway: std::sync::Weak<Gateway>) {
    let mut tick = tokio::time::interval(crate::recording::RETENTION_INTERVAL);
    loop {
        tick.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        let swept = gateway.clone();
        let sweep =
            tokio::task::spawn_blocking(move || swept.recordings.sweep(crate::recording::now_ms()));
        let deleted = match sweep.await {
            Ok(deleted) => deleted,
            Err(e) => {
                tracing::error!(error = %e, "the retention sweep failed");
                continue;
            }
        };
        let days = gateway.config().consultations.recording_retain_days;
        for consultation in deleted {
            let event = crate::audit::AuditEvent {
                actor: "system".into(),
                role: None,
                action: crate::audit::Action::RecordingDelete,
                resource: format!("consultation:{}", consultation.get(..8).unwrap_or("")),
                outcome: crate::audit::Outcome::Allowed,
                source: None,
                reason: Some(format!("retention: {days} days after the recording")),
            };
            if let Err(e) = gateway.audit(event).await {
                tracing::error!(error = %e, "a recording's deletion could not be put on record");
            }
        }
    }
}

/// How often the TLS files' modification times are checked.
const TLS_FILE_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Reloads the TLS material when its files change (new connections get it; live ones and media
/// sessions are untouched).
async fn watch_tls_files(gateway: std::sync::Weak<Gateway>, tls: RustlsConfig) {
    let mut last = None;
    let mut tick = tokio::time::interval(TLS_FILE_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        let modified = crate::tls::files_modified(&gateway.config().http);
        if last.is_some() && modified.is_some() && modified != last {
            tracing::info!("TLS files changed");
            let _ = reload(&gateway, &tls, "file change");
        }
        if modified.is_some() {
            last = modified;
        }
    }
}

/// Reloads the TLS material and records it (`config.reload` on `tls`) with its `cause`.
fn reload(gateway: &Gateway, tls: &RustlsConfig, cause: &str) -> Result<(), crate::tls::TlsError> {
    let config = gateway.config();
    let result = match crate::tls::server_config(&config.http, &config.state_dir) {
        Ok(config) => {
            tls.reload_from_config(config);
            tracing::info!("TLS certificate and key reloaded");
            export_certificate_expiry(gateway);
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "TLS reload failed: keeping the current certificate");
            Err(e)
        }
    };
    let (outcome, reason) = match &result {
        Ok(()) => (Outcome::Allowed, format!("on {cause}")),
        Err(e) => (Outcome::Denied, format!("on {cause}: {e}")),
    };
    // Rare (SIGHUP or a file change): the short blocking write is acceptable here, and the record
    // is on disk when this returns.
    if let Err(e) = gateway.audit.append(AuditEvent {
        actor: "system".to_owned(),
        role: None,
        action: Action::ConfigReload,
        resource: "tls".to_owned(),
        outcome,
        source: None,
        reason: Some(reason),
    }) {
        tracing::error!(error = %e, "the TLS reload could not be recorded in the audit log");
    }
    result
}

/// Sets `straja_tls_certificate_expiry_timestamp_seconds` from the certificate in force.
pub fn export_certificate_expiry(gateway: &Gateway) {
    let config = gateway.config();
    match crate::tls::certificate_expiry(&config.http, &config.state_dir) {
        Some(expiry) => gateway.metrics.tls_certificate_expiry.set(expiry as f64),
        None => tracing::warn!("cannot read the TLS certificate's expiry"),
    }
}

impl RunningGateway {
    /// The shared state (for tests and the CLI).
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The heartbeats of the loops that must keep turning (the egress shards'), for the service
    /// watchdog; more can be registered.
    pub fn heartbeats(&self) -> &Arc<crate::heartbeat::Heartbeats> {
        &self.heartbeats
    }

    /// Reloads the TLS certificate, key and client CAs from their files (SIGHUP). New connections
    /// get them; established connections and media sessions carry on. On error the current
    /// material stays in force.
    pub fn reload_tls(&self) -> Result<(), crate::tls::TlsError> {
        reload(&self.gateway, &self.tls, "SIGHUP")
    }

    /// Reloads the configuration (SIGHUP): `new` is the configuration file read again. Invalid,
    /// or with unusable TLS material, it is rejected and the running configuration stays;
    /// otherwise cameras are added, changed and removed without touching the others, and TLS
    /// material, CORS origins and session caps are applied ([`crate::reload`]). Logged, counted
    /// and on record either way.
    pub async fn reload(
        &self,
        new: Result<Config, crate::config::ConfigError>,
    ) -> Result<crate::reload::ReloadReport, crate::reload::ReloadError> {
        crate::reload::reload(&self.gateway, &self.tls, new).await
    }

    /// Stops accepting, closes every session, stops the pipelines (NULL state) and the listeners.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.https.graceful_shutdown(Some(Duration::from_secs(2)));
        self.gateway.sessions.close_all();
        self.gateway.consultations.end_all(&self.gateway);
        self.gateway.export_session_count();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.https_task).await;
        self.metrics_server.stop().await;
        self.exporter.abort();
        self.tls_watcher.abort();
        self.retention.abort();
        let gateway = self.gateway.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // Recorders first, while their cameras still deliver: each ends its segment cleanly.
            gateway.recordings.stop();
            for camera in gateway.cameras.all().iter() {
                camera.stop();
            }
        })
        .await;
        // Give the egress shards a moment to send DTLS close_notify before the runtime ends.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tracing::info!("stopped");
    }
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let running = start(config).await?;
    shutdown.await;
    running.shutdown().await;
    Ok(())
}
