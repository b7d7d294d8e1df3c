//! The running gateway's shared state: configuration, cameras, sessions, the WebRTC engine and
//! metrics. Handlers get it as `Arc<Gateway>`.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::audit::{AuditError, AuditEvent, AuditLog};
use crate::auth::TokenAuthority;
use crate::auth::local_login::LocalLogin;
use crate::camera_set::CameraSet;
use crate::cameras::Camera;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::recording::Recordings;
use crate::sessions::Sessions;
use crate::snapshots::Snapshots;
use crate::webrtc::WebrtcEngine;

/// Everything the control plane shares.
pub struct Gateway {
    /// The configuration in force (a reload replaces it).
    pub config: ArcSwap<Config>,
    /// The configured cameras, in config order.
    pub cameras: CameraSet,
    /// Open viewer sessions.
    pub sessions: Sessions,
    /// The WebRTC side.
    pub webrtc: WebrtcEngine,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Signs and checks access tokens.
    pub tokens: TokenAuthority,
    /// The tamper-evident audit log.
    pub audit: Arc<AuditLog>,
    /// Local users' password sign-in (login page, cookies).
    pub login: LocalLogin,
    /// Recorders, recorded segments and their key.
    pub recordings: Recordings,
    /// Cameras' snapshots (latest keyframe as a JPEG).
    pub snapshots: Snapshots,
    /// Telemedicine consultations running now.
    pub consultations: crate::consultation::Consultations,
}

impl Gateway {
    /// The camera with this id.
    pub fn camera(&self, id: &str) -> Option<Arc<Camera>> {
        self.cameras.get(id)
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Appends an audit record and waits until it is on disk.
    pub async fn audit(&self, event: AuditEvent) -> Result<(), AuditError> {
        let audit = self.audit.clone();
        match tokio::task::spawn_blocking(move || audit.append(event)).await {
            Ok(result) => result.map(|_| ()),
            Err(e) => Err(AuditError::Io {
                path: self.audit.path().to_owned(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Keeps `straja_webrtc_sessions` equal to the registry's size.
    pub fn export_session_count(&self) {
        self.metrics
            .webrtc_sessions
            .with_label_values(&["whep"])
            .set(self.sessions.len() as i64);
    }
}
