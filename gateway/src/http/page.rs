//! The web pages: at `/`, sign-in, the camera wall (every camera a live tile over WHEP) and the
//! recordings (segments fetched with the page's sign-in and played one after the other); at
//! `/consultation` the clinician's consultation page and at `/join` the invitee's (both driven
//! by `consultation.js` over the signalling WebSocket of [`crate::consultation::protocol`]).
//! Static files compiled in, holding no data; no inline script or style, so the
//! Content-Security-Policy can forbid them.

use axum::http::{HeaderName, header};
use axum::response::IntoResponse;

/// The `Permissions-Policy` of the consultation pages: they use this origin's camera and
/// microphone (every other page gets [`super::security_headers::PERMISSIONS_POLICY`], which
/// allows neither).
pub const CONSULTATION_PERMISSIONS: &str =
    "camera=(self), microphone=(self), display-capture=(), geolocation=(), usb=()";

/// A consultation page's headers: HTML, with camera and microphone allowed.
fn consultation_page(html: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                HeaderName::from_static("permissions-policy"),
                CONSULTATION_PERMISSIONS,
            ),
        ],
        html,
    )
}

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("assets/index.html"),
    )
}

/// `GET /app.css`.
pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
}

/// `GET /app.js`.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

/// `GET /recordings.js`: the page's recordings view.
pub async fn recordings_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/recordings.js"),
    )
}

/// `GET /consultation`: the clinician's page (start a consultation, invite, admit, the call).
pub async fn consultation() -> impl IntoResponse {
    consultation_page(include_str!("assets/consultation.html"))
}

/// `GET /join`: the invitee's page (the invite comes in the URL's fragment, never sent here).
pub async fn join() -> impl IntoResponse {
    consultation_page(include_str!("assets/join.html"))
}

/// `GET /consultation.js`: the call, shared by both consultation pages.
pub async fn consultation_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/consultation.js"),
    )
}

/// `GET /consultation.css`.
pub async fn consultation_style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/consultation.css"),
    )
}
