//! `GET /healthz` (the process serves) and `GET /readyz` (every configured camera's pipeline plays).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::gateway::Gateway;

/// 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when every camera is playing, else 503 naming the cameras that are not.
pub async fn readyz(State(gateway): State<Arc<Gateway>>) -> (StatusCode, Json<Value>) {
    let not_ready: Vec<Value> = gateway
        .cameras
        .all()
        .iter()
        .filter(|c| !c.is_up())
        .map(|c| match c.start_error() {
            Some(error) => json!({ "camera": c.id, "state": c.status().state, "error": error }),
            None => json!({ "camera": c.id, "state": c.status().state }),
        })
        .collect();
    if not_ready.is_empty() {
        (StatusCode::OK, Json(json!({ "ready": true })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "not_ready": not_ready })),
        )
    }
}
