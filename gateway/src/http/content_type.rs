//! The request's media type, compared by its essence (`application/sdp; charset=…` is SDP).

use axum::http::{HeaderMap, header};

/// True when the request's `Content-Type` essence is `essence` (case-insensitive).
pub fn is(headers: &HeaderMap, essence: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|found| found.trim().eq_ignore_ascii_case(essence))
}
