//! The login page's API: `POST /api/v1/login` checks a local user's name and password and sets
//! the sign-in cookie; `POST /api/v1/logout` ends the sign-in; `GET /api/v1/session` says who the
//! caller is (and gives a signed-in page its CSRF token). Every login, failed or not, and every
//! logout is in the audit log before the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::api_error::ApiError;
use super::content_type;
use super::whep::body_error;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::local_login::LoginRefused;
use crate::auth::require_access::sign_in_cookie;
use crate::auth::user_directory::validate_name;
use crate::auth::web_sessions::{CSRF_HEADER, clear_cookie, secrets_match, set_cookie};
use crate::auth::{Claims, Role};
use crate::gateway::Gateway;

/// Largest login request body (a name and a password).
const MAX_LOGIN_BYTES: usize = 4 * 1024;
/// Seconds a client is asked to wait when logins are queued up.
const BUSY_RETRY_SECONDS: u32 = 5;

/// A login request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    user: String,
    password: String,
}

/// The CSRF token of a cookie-authenticated request (set by the access middleware).
#[derive(Debug, Clone)]
pub struct SignInCsrf(pub String);

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /api/v1/login` with `{"user": "...", "password": "..."}`.
pub async fn login(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !content_type::is(&headers, "application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a login is sent with Content-Type: application/json",
        ));
    }
    let body = body.map_err(body_error)?;
    if body.len() > MAX_LOGIN_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a login request is at most {MAX_LOGIN_BYTES} bytes"),
        ));
    }
    let request: LoginRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request("a login is a JSON object {\"user\": \"...\", \"password\": \"...\"}")
    })?;
    // A signed-in browser that logs in again gets a new sign-in; the old one ends.
    if let Some(old) = sign_in_cookie(&headers) {
        gateway.login.logout(old);
    }
    // What was typed as a name goes to the audit log only if it has a name's form (a password
    // typed into the wrong field does not).
    let actor = match validate_name(&request.user) {
        Ok(()) => request.user.clone(),
        Err(_) => "(malformed user name)".to_owned(),
    };
    let record = |outcome, resource: String, reason: Option<String>| AuditEvent {
        actor: actor.clone(),
        role: None,
        action: Action::Login,
        resource,
        outcome,
        source: Some(client.to_string()),
        reason,
    };
    let logins = &gateway.metrics.logins;
    match gateway
        .login
        .login(&request.user, request.password, client.ip())
        .await
    {
        Ok((user, sign_in)) => {
            let mut event = record(Outcome::Allowed, format!("signin:{}", sign_in.tag), None);
            event.role = Some(user.role);
            if gateway.audit(event).await.is_err() {
                gateway.login.logout(&sign_in.cookie);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the audit log cannot be written; sign-in is refused until it can",
                ));
            }
            logins.with_label_values(&["success"]).inc();
            gateway
                .metrics
                .signed_in
                .set(gateway.login.signed_in() as i64);
            tracing::info!(role = user.role.as_str(), "a local user signed in");
            let body = Json(json!({
                "user": user.name,
                "role": user.role,
                "cameras": user.cameras,
                "csrf_token": sign_in.csrf,
                "idle_timeout_seconds": gateway.login.idle_timeout().as_secs(),
            }));
            Ok(with_cookie(
                body.into_response(),
                &set_cookie(&sign_in.cookie),
            ))
        }
        Err(LoginRefused::BadCredentials { reason }) => {
            logins.with_label_values(&["failure"]).inc();
            let _ = gateway
                .audit(record(Outcome::Denied, "login".into(), Some(reason.into())))
                .await;
            tracing::info!("a password login was refused");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong user name or password",
            ))
        }
        Err(LoginRefused::Throttled(wait)) => {
            logins.with_label_values(&["throttled"]).inc();
            let _ = gateway
                .audit(record(
                    Outcome::Denied,
                    "login".into(),
                    Some("too many failed attempts from this source".into()),
                ))
                .await;
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins from this address; wait before trying again",
            )
            .retry_after(wait.as_secs().clamp(1, 60) as u32))
        }
        Err(LoginRefused::Busy) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many logins at once; try again shortly",
        )
        .retry_after(BUSY_RETRY_SECONDS)),
    }
}

/// `POST /api/v1/logout`: ends the cookie's sign-in (a write: it needs the CSRF token) and
/// removes the cookie. Without a valid sign-in it only removes the cookie.
pub async fn logout(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cleared = || with_cookie(StatusCode::NO_CONTENT.into_response(), &clear_cookie());
    let Some(cookie) = sign_in_cookie(&headers) else {
        return Ok(cleared());
    };
    let Ok(signed) = gateway.login.authenticate(cookie) else {
        return Ok(cleared());
    };
    let csrf_ok = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| secrets_match(sent, &signed.csrf));
    if !csrf_ok {
        gateway
            .metrics
            .auth_failures
            .with_label_values(&["csrf"])
            .inc();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a logout must carry the page's CSRF token (X-CSRF-Token)",
        ));
    }
    gateway.login.logout(cookie);
    gateway
        .metrics
        .signed_in
        .set(gateway.login.signed_in() as i64);
    let _ = gateway
        .audit(AuditEvent {
            actor: signed.claims.sub.clone(),
            role: Some(signed.claims.role),
            action: Action::Logout,
            resource: signed.claims.jti.clone(),
            outcome: Outcome::Ended,
            source: Some(client.to_string()),
            reason: None,
        })
        .await;
    Ok(cleared())
}

/// `GET /api/v1/session`: who the caller is, by token or sign-in.
pub async fn whoami(
    State(gateway): State<Arc<Gateway>>,
    Extension(claims): Extension<Claims>,
    csrf: Option<Extension<SignInCsrf>>,
) -> Json<serde_json::Value> {
    let signed_in = csrf.is_some();
    Json(json!({
        "user": claims.sub,
        "role": claims.role,
        "cameras": if claims.role == Role::Security { claims.cameras.clone() } else { Vec::new() },
        "expires": claims.exp,
        "signed_in": signed_in,
        "csrf_token": csrf.map(|Extension(SignInCsrf(token))| token),
        "idle_timeout_seconds": signed_in.then(|| gateway.login.idle_timeout().as_secs()),
    }))
}
