//! The middleware that applies the access policy to every routed request: public routes pass,
//! others need a valid bearer token whose role (and camera) the route's rule allows. A route with
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
use crate::audit::{Action, AuditEvent, Outcome};
use crate::gateway::Gateway;
use crate::http::api_error::ApiError;

/// The bearer token of a request, if any.
fn bearer(request: &Request) -> Result<&str, TokenError> {
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

fn unauthorized(error: TokenError) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, error.to_string()).into_response();
    let challenge = match error {
        TokenError::Missing => "Bearer realm=\"straja\"",
        _ => "Bearer realm=\"straja\", error=\"invalid_token\"",
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
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
    let claims = match bearer(&request).and_then(|token| gateway.tokens.verify(token)) {
        Ok(claims) => claims,
        Err(error) => {
            record_denial(&gateway, None, route, source, error.to_string()).await;
            return unauthorized(error);
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
                    .map(|(_, value)| value.to_owned())
            }),
        None => None,
    };
    if let Decision::Forbid(reason) = access_policy::decide(rule.access, &claims, camera.as_deref())
    {
        let resource = match &camera {
            Some(camera) => format!("camera:{camera}"),
            None => route,
        };
        record_denial(&gateway, Some(&claims), resource, source, reason.clone()).await;
        return ApiError::new(StatusCode::FORBIDDEN, reason).into_response();
    }
    parts.extensions.insert(claims);
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
