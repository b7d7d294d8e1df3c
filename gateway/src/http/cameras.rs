//! `GET /api/v1/cameras`: the configured cameras and their state.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};

use crate::auth::{Claims, Role};
use crate::cameras::CameraStatus;
use crate::gateway::Gateway;

/// The cameras, in config order: all of them for ops, the token's own for security staff.
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    Extension(claims): Extension<Claims>,
) -> Json<Vec<CameraStatus>> {
    Json(
        gateway
            .cameras
            .all()
            .iter()
            .filter(|c| claims.role == Role::Ops || claims.may_view(&c.id))
            .map(|c| {
                let mut status = c.status();
                if let Some(state) = gateway.recordings.recorder_state(&c.id) {
                    status.recording = state.as_str();
                }
                status
            })
            .collect(),
    )
}
