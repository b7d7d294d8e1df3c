//! Cross-origin access, only where configured: pages on the origins in `http.cors_origins` may
//! use WHEP (offer and end a session) with a bearer token. Nothing else is shared across
//! origins, credentials (the sign-in cookie) never are, and without configuration no CORS header
//! is ever sent, so browsers keep every other origin out.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api_error::ApiError;
use crate::gateway::Gateway;

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// True for the WHEP paths that may be used across origins.
fn is_whep_path(path: &str) -> bool {
    let cameras = path
        .strip_prefix("/api/v1/cameras/")
        .and_then(|rest| rest.strip_suffix("/whep"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    let sessions = path
        .strip_prefix("/api/v1/sessions/")
        .is_some_and(|sid| !sid.is_empty() && !sid.contains('/'));
    cameras || sessions
}

/// The request's `Origin`, when it is one of the configured ones.
fn allowed_origin<'a>(gateway: &Gateway, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    gateway
        .config
        .load()
        .http
        .cors_origins
        .iter()
        .any(|allowed| allowed == text)
        .then_some(origin)
}

/// `OPTIONS` on a WHEP path: the preflight. 204 with the permissions for a configured origin,
/// 403 for any other.
pub async fn preflight(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let Some(origin) = allowed_origin(&gateway, &headers).cloned() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin requests from this origin are not allowed (see http.cors_origins)",
        )
        .into_response();
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    for (name, value) in [
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "POST, DELETE, OPTIONS",
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, content-type",
        ),
        (header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE),
        (header::VARY, "origin"),
    ] {
        out.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Middleware: a WHEP response to a configured origin says so, and exposes `Location` (the
/// session URL the page needs to end it).
pub async fn allow_configured_origins(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = if is_whep_path(request.uri().path()) {
        allowed_origin(&gateway, request.headers()).cloned()
    } else {
        None
    };
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("location"),
            );
        }
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whep_paths_are_shared() {
        assert!(is_whep_path("/api/v1/cameras/gate/whep"));
        assert!(is_whep_path("/api/v1/sessions/abc"));
        for path in [
            "/api/v1/cameras",
            "/api/v1/cameras//whep",
            "/api/v1/cameras/a/b/whep",
            "/api/v1/login",
            "/api/v1/session",
            "/api/v1/sessions/",
            "/",
        ] {
            assert!(!is_whep_path(path), "{path}");
        }
    }
}
