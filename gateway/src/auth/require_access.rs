//! The middleware that applies the access policy to every routed request: public routes pass,
//! others need a valid bearer token, or the login page's sign-in cookie (whose writes must also
//! carry the sign-in's CSRF token), whose role (and camera) the route's rule allows. A route with
//! no rule is refused (fail closed) and logged as the bug it is. The verified claims are handed
//! to the handler as a request extension.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::access_policy::{self, Access, Decision};
use super::claims::Claims;
use super::token_authority::TokenError;
use super::web_sessions::{
    COOKIE_NAME, CSRF_HEADER, SignInEnded, clear_cookie, cookie_value, secrets_match,
};
use crate::audit::{Action, AuditEvent, Outcome};
use crate::gateway::Gateway;
use crate::http::api_error::ApiError;
use crate::http::login::SignInCsrf;

/// The prefix of the WebSocket subprotocol that carries a page's token (`bearer.<token>`):
/// browsers cannot set `Authorization` on a WebSocket.
pub const SUBPROTOCOL_TOKEN_PREFIX: &str = "bearer.";

/// The token a WebSocket upgrade carries as a subprotocol, if any.
fn subprotocol_token(request: &Request) -> Option<&str> {
    if !request.headers().contains_key(header::UPGRADE) {
        return None;
    }
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(SUBPROTOCOL_TOKEN_PREFIX))
}

/// The bearer token of a request, if any.
fn bearer(request: &Request) -> Result<&str, TokenError> {
    if !request.headers().contains_key(header::AUTHORIZATION)
        && let Some(token) = subprotocol_token(request)
    {
        return Ok(token);
    }
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?;
    let value = value.to_str().map_err(|_| TokenError::Invalid)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Missing);
    }
    Ok(token.trim())
}

/// A 401 with its `WWW-Authenticate` challenge (`invalid_token` when one was presented).
fn unauthorized(message: String, token_presented: bool) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    let challenge = if token_presented {
        "Bearer realm=\"straja\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"straja\""
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Who a request comes from, and how they proved it.
enum Credential {
    /// An `Authorization: Bearer` token.
    Bearer(Claims),
    /// The login page's sign-in cookie, with the CSRF token its writes must carry.
    SignIn { claims: Claims, csrf: String },
}

/// Why a request could not be authenticated.
enum NotAuthenticated {
    Token(TokenError),
    SignIn(SignInEnded),
}

impl NotAuthenticated {
    fn metric_reason(&self) -> &'static str {
        match self {
            NotAuthenticated::Token(TokenError::Missing) => "missing",
            NotAuthenticated::Token(TokenError::Expired | TokenError::NotYetValid) => "expired",
            NotAuthenticated::Token(_) => "invalid",
            NotAuthenticated::SignIn(_) => "signed_out",
        }
    }

    fn message(&self) -> String {
        match self {
            NotAuthenticated::Token(e) => e.to_string(),
            NotAuthenticated::SignIn(SignInEnded::Idle) => {
                "you were signed out after a period of inactivity; sign in again".into()
            }
            NotAuthenticated::SignIn(SignInEnded::Expired) => {
                "your sign-in has expired; sign in again".into()
            }
            NotAuthenticated::SignIn(SignInEnded::Unknown) => {
                "your sign-in has ended; sign in again".into()
            }
        }
    }
}

/// The sign-in cookie's value, if the request carries one.
pub fn sign_in_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v, COOKIE_NAME))
}

/// A bearer token wins over a cookie (API clients), so a page's cookie never turns an API
/// client's request into a cookie-authenticated one.
fn authenticate(gateway: &Gateway, request: &Request) -> Result<Credential, NotAuthenticated> {
    if request.headers().contains_key(header::AUTHORIZATION) || subprotocol_token(request).is_some()
    {
        return bearer(request)
            .and_then(|token| gateway.tokens.verify(token))
            .map(Credential::Bearer)
            .map_err(NotAuthenticated::Token);
    }
    match sign_in_cookie(request.headers()) {
        Some(cookie) => gateway
            .login
            .authenticate(cookie)
            .map(|signed| Credential::SignIn {
                claims: signed.claims,
                csrf: signed.csrf,
            })
            .map_err(NotAuthenticated::SignIn),
        None => Err(NotAuthenticated::Token(TokenError::Missing)),
    }
}

/// For a cookie-authenticated write: the CSRF token must be echoed in its header, and an
/// `Origin`, when the browser sends one, must be this gateway's own.
fn csrf_ok(request: &Request, csrf: &str) -> bool {
    if matches!(request.method().as_str(), "GET" | "HEAD" | "OPTIONS") {
        return true;
    }
    let headers = request.headers();
    let token_ok = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| secrets_match(sent, csrf));
    let origin_ok = match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            match (origin.to_str().ok(), host) {
                (Some(origin), Some(host)) => origin == format!("https://{host}"),
                _ => false,
            }
        }
    };
    token_ok && origin_ok
}

/// The middleware (installed as a route layer, so the matched route is known).
pub async fn require_access(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(path) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    let method = request.method().as_str().to_owned();
    let Some(rule) = access_policy::rule(&method, path.as_str()) else {
        tracing::error!(%method, route = path.as_str(), "route has no access rule: refused");
        return ApiError::new(StatusCode::FORBIDDEN, "no access rule covers this route")
            .into_response();
    };
    let camera_param = match rule.access {
        Access::Public => return next.run(request).await,
        Access::Roles { camera_param, .. } => camera_param,
    };
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let route = format!("route:{method} {}", path.as_str());
    let refuse = |reason: &'static str| {
        gateway
            .metrics
            .auth_failures
            .with_label_values(&[reason])
            .inc();
    };
    let (claims, csrf) = match authenticate(&gateway, &request) {
        Ok(Credential::Bearer(claims)) => (claims, None),
        Ok(Credential::SignIn { claims, csrf }) => {
            if !csrf_ok(&request, &csrf) {
                refuse("csrf");
                let reason = "a signed-in page's write must carry its CSRF token (X-CSRF-Token) \
                              and come from this gateway's own origin";
                record_denial(&gateway, Some(&claims), route, source, reason.into()).await;
                return ApiError::new(StatusCode::FORBIDDEN, reason).into_response();
            }
            (claims, Some(csrf))
        }
        Err(error) => {
            refuse(error.metric_reason());
            let message = error.message();
            record_denial(&gateway, None, route, source, message.clone()).await;
            let mut response = unauthorized(
                message,
                !matches!(error, NotAuthenticated::Token(TokenError::Missing)),
            );
            if matches!(error, NotAuthenticated::SignIn(_))
                && let Ok(clear) = HeaderValue::from_str(&clear_cookie())
            {
                response.headers_mut().insert(header::SET_COOKIE, clear);
            }
            return response;
        }
    };
    let (mut parts, body) = request.into_parts();
    let camera = match camera_param {
        Some(name) => RawPathParams::from_request_parts(&mut parts, &())
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(key, _)| *key == name)
                    .and_then(|(_, value)| access_policy::camera_of(name, value))
            }),
        None => None,
    };
    if let Decision::Forbid(reason) = access_policy::decide(rule.access, &claims, camera.as_deref())
    {
        refuse("forbidden");
        let resource = match &camera {
            Some(camera) => format!("camera:{camera}"),
            None => route,
        };
        record_denial(&gateway, Some(&claims), resource, source, reason.clone()).await;
        return ApiError::new(StatusCode::FORBIDDEN, reason).into_response();
    }
    parts.extensions.insert(claims);
    if let Some(csrf) = csrf {
        parts.extensions.insert(SignInCsrf(csrf));
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Records a refusal in the audit log (the refusal stands even if the record cannot be written).
async fn record_denial(
    gateway: &Gateway,
    claims: Option<&Claims>,
    resource: String,
    source: Option<String>,
    reason: String,
) {
    let event = AuditEvent {
        actor: claims.map_or_else(|| "anonymous".to_owned(), |c| c.sub.clone()),
        role: claims.map(|c| c.role),
        action: Action::AccessDenied,
        resource,
        outcome: Outcome::Denied,
        source,
        reason: Some(reason),
    };
    if let Err(e) = gateway.audit(event).await {
        tracing::error!(error = %e, "cannot record a refusal in the audit log");
    }
}
