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

/// 200 when every part is ready, else 503 with `not_ready` naming each part that is not, with
/// why: a camera that is not playing (`part: "camera"`, its state and error), a recorded camera
/// whose recorder is not recording or waiting (`part: "recording"`, e.g. `disk_full`), the audit
/// log when its last write failed (`part: "audit"`: access that needs a record is refused).
pub async fn readyz(State(gateway): State<Arc<Gateway>>) -> (StatusCode, Json<Value>) {
    let mut not_ready: Vec<Value> = Vec::new();
    for camera in gateway.cameras.all().iter() {
        if !camera.is_up() {
            let state = camera.status().state;
            not_ready.push(match camera.start_error() {
                Some(error) => {
                    json!({ "part": "camera", "camera": camera.id, "state": state, "error": error })
                }
                None => json!({ "part": "camera", "camera": camera.id, "state": state }),
            });
        }
        if let Some(state) = gateway.recordings.recorder_state(&camera.id)
            && !matches!(
                state,
                crate::recording::RecorderState::Recording
                    | crate::recording::RecorderState::Waiting
            )
        {
            not_ready.push(json!({
                "part": "recording", "camera": camera.id, "state": state.as_str()
            }));
        }
    }
    if gateway.audit.is_failing() {
        not_ready.push(json!({
            "part": "audit",
            "error": "the last audit record could not be written; access that needs one is refused",
        }));
    }
    if not_ready.is_empty() {
        (StatusCode::OK, Json(json!({ "ready": true })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "not_ready": not_ready })),
        )
    }
}
