//! Counts every request as `straja_http_requests_total{route,code}`, with the route *template*
//! (`/api/v1/cameras/{id}/whep`), never the concrete path: ids stay out of labels.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::gateway::Gateway;

/// The middleware.
pub async fn count(State(gateway): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    gateway
        .metrics
        .http_requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}
