//! `GET /api/v1/cameras/{id}/snapshot.jpg`: the camera's latest keyframe as a JPEG. A snapshot is
//! a view of footage: it is served only once its `view.snapshot` record is in the audit log.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api_error::ApiError;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::Claims;
use crate::gateway::Gateway;
use crate::snapshots::{SnapshotError, SnapshotOutcome};

/// Seconds a client is asked to wait before asking again when there is no picture.
const RETRY_AFTER_SECONDS: u32 = 2;

/// The JPEG: 200 `image/jpeg`; 404 for an unknown camera; 503 with `Retry-After` when the camera
/// has no picture now, it cannot be decoded, or the view cannot be recorded.
pub async fn jpeg(
    State(gateway): State<Arc<Gateway>>,
    Path(camera_id): Path<String>,
    Extension(claims): Extension<Claims>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiError> {
    let camera = gateway
        .camera(&camera_id)
        .ok_or_else(|| ApiError::not_found("no camera with this id"))?;
    let snapshots = &gateway.snapshots;
    let unavailable = |outcome, message: String| {
        snapshots.count(&camera.id, outcome);
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(RETRY_AFTER_SECONDS)
    };
    let served = match snapshots.latest(&camera.feed).await {
        Ok(served) => served,
        Err(SnapshotError::UnknownCamera) => {
            return Err(ApiError::not_found("no camera with this id"));
        }
        Err(error @ (SnapshotError::NoPicture | SnapshotError::Busy)) => {
            return Err(unavailable(
                SnapshotOutcome::Unavailable,
                format!("{error}; try again shortly"),
            ));
        }
        Err(SnapshotError::Undecodable(_)) => {
            return Err(unavailable(
                SnapshotOutcome::Failed,
                "could not decode the camera's picture; try again shortly".to_owned(),
            ));
        }
    };
    let view = AuditEvent {
        actor: claims.sub.clone(),
        role: Some(claims.role),
        action: Action::ViewSnapshot,
        resource: format!("camera:{}", camera.id),
        outcome: Outcome::Allowed,
        source: Some(client.to_string()),
        reason: None,
    };
    if let Err(e) = gateway.audit(view).await {
        tracing::error!(error = %e, "cannot record a snapshot in the audit log: refused");
        snapshots.count(&camera.id, SnapshotOutcome::Failed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log cannot be written; access is refused until it can",
        ));
    }
    let outcome = if served.from_cache {
        SnapshotOutcome::Cached
    } else {
        SnapshotOutcome::Served
    };
    snapshots.count(&camera.id, outcome);
    tracing::debug!(camera = %camera.id, outcome = outcome.as_str(), "snapshot served");
    Ok((
        [(header::CONTENT_TYPE, "image/jpeg")],
        Body::from(served.snapshot.jpeg),
    )
        .into_response())
}
