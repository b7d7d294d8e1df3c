//! The HTTPS API: routes, limits and middleware. Handlers live one concept per file; who may call
//! each route is in [`crate::auth::access_policy`], and a test keeps the two lists in step.

pub mod api_error;
pub mod cameras;
pub mod consultations;
pub mod content_type;
pub mod cors;
pub mod health;
pub mod login;
pub mod page;
pub mod recordings;
pub mod request_metrics;
pub mod security_headers;
pub mod snapshot;
pub mod whep;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, delete, get, options, post};

use crate::auth::require_access::require_access;
use crate::gateway::Gateway;
use api_error::ApiError;

/// Every route: method, template, handler.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Arc<Gateway>>)> {
    vec![
        ("GET", "/", get(page::index)),
        ("GET", "/app.css", get(page::style)),
        ("GET", "/app.js", get(page::script)),
        ("GET", "/recordings.js", get(page::recordings_script)),
        ("GET", "/consultation", get(page::consultation)),
        ("GET", "/join", get(page::join)),
        ("GET", "/consultation.js", get(page::consultation_script)),
        ("GET", "/consultation.css", get(page::consultation_style)),
        ("GET", "/healthz", get(health::healthz)),
        ("GET", "/readyz", get(health::readyz)),
        ("POST", "/api/v1/login", post(login::login)),
        ("POST", "/api/v1/logout", post(login::logout)),
        ("GET", "/api/v1/session", get(login::whoami)),
        ("GET", "/api/v1/cameras", get(cameras::list)),
        ("POST", "/api/v1/cameras/{id}/whep", post(whep::offer)),
        (
            "GET",
            "/api/v1/cameras/{id}/snapshot.jpg",
            get(snapshot::jpeg),
        ),
        (
            "OPTIONS",
            "/api/v1/cameras/{id}/whep",
            options(cors::preflight),
        ),
        ("DELETE", "/api/v1/sessions/{sid}", delete(whep::delete)),
        (
            "GET",
            "/api/v1/cameras/{id}/recordings",
            get(recordings::list),
        ),
        (
            "GET",
            "/api/v1/recordings/{segment}",
            get(recordings::serve),
        ),
        (
            "OPTIONS",
            "/api/v1/sessions/{sid}",
            options(cors::preflight),
        ),
        ("POST", "/api/v1/consultations", post(consultations::create)),
        (
            "POST",
            "/api/v1/consultations/join",
            post(consultations::join),
        ),
        (
            "DELETE",
            "/api/v1/consultations/{id}",
            delete(consultations::end),
        ),
        (
            "GET",
            "/api/v1/consultations/{id}/signal",
            get(consultations::signal),
        ),
    ]
}

/// The API's router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            require_access,
        ))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(whep::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            request_metrics::count,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            cors::allow_configured_origins,
        ))
        .layer(axum::middleware::from_fn(security_headers::add))
        .with_state(gateway)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::access_policy::{RULES, rule};

    #[test]
    fn every_route_has_an_access_rule_and_every_rule_a_route() {
        let routes = routes();
        for (method, path, _) in &routes {
            assert!(
                rule(method, path).is_some(),
                "{method} {path} has no entry in auth::access_policy::RULES"
            );
        }
        for r in RULES {
            assert!(
                routes
                    .iter()
                    .any(|(m, p, _)| *m == r.method && *p == r.path),
                "the rule for {} {} matches no route",
                r.method,
                r.path
            );
        }
    }
}
