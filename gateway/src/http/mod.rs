//! The HTTPS API: routes, limits and middleware. Handlers live one concept per file.

pub mod api_error;
pub mod cameras;
pub mod health;
pub mod page;
pub mod request_metrics;
pub mod security_headers;
pub mod whep;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::gateway::Gateway;
use api_error::ApiError;

/// The API's router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/cameras", get(cameras::list))
        .route("/api/v1/cameras/{id}/whep", post(whep::offer))
        .route("/api/v1/sessions/{sid}", delete(whep::delete))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(whep::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            request_metrics::count,
        ))
        .layer(axum::middleware::from_fn(security_headers::add))
        .with_state(gateway)
}
