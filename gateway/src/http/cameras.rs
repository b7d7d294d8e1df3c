//! `GET /api/v1/cameras`: the configured cameras and their state.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::cameras::CameraStatus;
use crate::gateway::Gateway;

/// The cameras, in config order.
pub async fn list(State(gateway): State<Arc<Gateway>>) -> Json<Vec<CameraStatus>> {
    Json(gateway.cameras.iter().map(|c| c.status()).collect())
}
