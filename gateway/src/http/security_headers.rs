//! Headers every response carries: HSTS (HTTPS only), no MIME sniffing, no framing, no referrer,
//! a Content-Security-Policy that allows only this origin's own scripts, a Permissions-Policy that
//! gives no page the camera or microphone (except the consultation pages, whose handlers set
//! their own: [`crate::http::page::CONSULTATION_PERMISSIONS`]), and no caching of API data.
//!
//! The CSP's `default-src 'self'` is also its `connect-src`: `fetch` to this origin, and the
//! consultation pages' WebSocket to it (`wss://` on the same host and port), which CSP Level 3
//! counts as `'self'` (Chromium, Firefox, Safari 15.4 and later; older Safari needed the `wss:`
//! origin listed, which cannot be written here without knowing the name the browser used).

use axum::extract::Request;
use axum::http::header;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The `Permissions-Policy` of every response that does not set its own.
pub const PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), display-capture=(), geolocation=(), usb=()";

/// The middleware.
pub async fn add(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; media-src 'self' blob: mediastream:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(HeaderName::from_static("permissions-policy"))
        .or_insert(HeaderValue::from_static(PERMISSIONS_POLICY));
    response
}
