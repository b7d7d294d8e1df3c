//! The consultations API: a clinician starts one with its invitations (`POST
//! /api/v1/consultations`), an invitee turns an invitation into their own token (`POST
//! /api/v1/consultations/join`), the clinician ends it (`DELETE /api/v1/consultations/{id}`), and
//! every participant's page speaks [`crate::consultation::protocol`] over
//! `GET /api/v1/consultations/{id}/signal` (a WebSocket, subprotocol `straja.consultation.v1`; a
//! page passes its token as a second subprotocol, `bearer.<token>`, since browsers cannot set an
//! `Authorization` header on a WebSocket).
//!
//! Privacy: invitation labels and display names go to the pages only; logs and the audit log name
//! consultations by id and participants by `p1`, `p2`, ….

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::api_error::ApiError;
use super::content_type;
use super::whep::body_error;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::{Claims, Role};
use crate::consultation::invite::validate_label;
use crate::consultation::message_rate::{MAX_MESSAGES, MessageRate};
use crate::consultation::protocol::{ClientMessage, MAX_MESSAGE_BYTES, SUBPROTOCOL, ServerMessage};
use crate::consultation::registry::{Outbound, short};
use crate::consultation::room::HOST;
use crate::consultation::{Consultation, Consultations};
use crate::gateway::Gateway;

/// Largest body of a create or join request.
const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// Longest display name of the clinician.
const MAX_NAME_CHARS: usize = 60;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rfc3339(seconds: u64) -> String {
    crate::recording::wall_time::rfc3339(seconds.saturating_mul(1000))
}

/// Parses a small JSON body, with the content type checked and a reason on failure.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    if !content_type::is(headers, "application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON with Content-Type: application/json",
        ));
    }
    let body = body.map_err(body_error)?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is at most {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

/// A clinician's request to start a consultation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    /// The clinician's name as the pages show it.
    #[serde(default)]
    name: Option<String>,
    /// One invitation per invitee.
    #[serde(default)]
    invites: Vec<InviteRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    label: String,
}

/// Starts a consultation: `201` with its id and one invitation link per invitee.
pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    Extension(claims): Extension<Claims>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: CreateRequest = json_body(&headers, body)?;
    let name = request
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or("Clinician");
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "name: 1 to {MAX_NAME_CHARS} characters of plain text"
        )));
    }
    let mut labels = Vec::with_capacity(request.invites.len());
    for (i, invite) in request.invites.iter().enumerate() {
        validate_label(&invite.label)
            .map_err(|e| ApiError::bad_request(format!("invites[{i}]: {e}")))?;
        labels.push(invite.label.trim().to_owned());
    }
    let (consultation, invites) = gateway
        .consultations
        .create(&claims.sub, name, &labels, now())
        .map_err(ApiError::bad_request)?;
    audit(
        &gateway,
        &claims.sub,
        Some(claims.role),
        Action::ConsultationCreate,
        &consultation.id,
        Outcome::Allowed,
        Some(client),
        Some(format!("{} invitation(s)", invites.len())),
    )
    .await?;
    export_gauges(&gateway);
    tracing::info!(consultation = %short(&consultation.id), invites = invites.len(), "consultation started");
    let invites: Vec<_> = invites
        .into_iter()
        .map(|invite| {
            json!({
                "label": invite.label,
                "url": format!("/join#invite={}", invite.secret),
                "expires_at": rfc3339(invite.expires_at),
            })
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": consultation.id, "invites": invites })),
    )
        .into_response())
}

/// An invitee's join request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinRequest {
    invite: String,
}

/// Turns an invitation into the invitee's own token (once): `200 {consultation, token}`, or
/// `410` for an invitation that is used, expired or unknown.
pub async fn join(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: JoinRequest = json_body(&headers, body)?;
    let joined = match gateway.consultations.join(request.invite.trim(), now()) {
        Ok(joined) => joined,
        Err(reason) => {
            audit(
                &gateway,
                "anonymous",
                None,
                Action::ConsultationJoin,
                "unknown",
                Outcome::Denied,
                Some(client),
                Some(reason.to_owned()),
            )
            .await?;
            return Err(ApiError::new(StatusCode::GONE, reason));
        }
    };
    let token = gateway
        .tokens
        .issue_participant(&joined.participant, &joined.consultation, joined.token_ttl)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot sign a participant's token");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the gateway could not issue a token",
            )
        })?;
    audit(
        &gateway,
        &joined.participant,
        Some(Role::Patient),
        Action::ConsultationJoin,
        &joined.consultation,
        Outcome::Allowed,
        Some(client),
        None,
    )
    .await?;
    tracing::info!(consultation = %short(&joined.consultation), participant = %joined.participant, "invitee joined the waiting room");
    Ok(Json(json!({ "consultation": joined.consultation, "token": token })).into_response())
}

/// The clinician ends the consultation for everyone: `204`.
pub async fn end(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Extension(claims): Extension<Claims>,
) -> Result<StatusCode, ApiError> {
    let consultation = host_consultation(&gateway.consultations, &id, &claims)?;
    consultation.end(&gateway, "the clinician ended the consultation");
    audit(
        &gateway,
        &claims.sub,
        Some(claims.role),
        Action::ConsultationEnd,
        &id,
        Outcome::Allowed,
        None,
        None,
    )
    .await?;
    export_gauges(&gateway);
    Ok(StatusCode::NO_CONTENT)
}

/// The consultation `id` when `claims` are its clinician's; 404 otherwise (a consultation is not
/// revealed to anyone else).
fn host_consultation(
    consultations: &Consultations,
    id: &str,
    claims: &Claims,
) -> Result<Arc<Consultation>, ApiError> {
    consultations
        .get(id)
        .filter(|c| claims.role == Role::Clinician && c.host_subject == claims.sub)
        .ok_or_else(|| ApiError::not_found("no consultation with this id"))
}

/// Who the caller is in the consultation: its clinician (`p1`), or the invitee its token names.
fn participant_of(consultation: &Consultation, claims: &Claims) -> Option<String> {
    match claims.role {
        Role::Clinician if consultation.host_subject == claims.sub => Some(HOST.to_owned()),
        Role::Patient
            if claims.consultation.as_deref() == Some(consultation.id.as_str())
                && consultation.has(&claims.sub) =>
        {
            Some(claims.sub.clone())
        }
        _ => None,
    }
}

/// The signalling WebSocket.
pub async fn signal(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Extension(claims): Extension<Claims>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A WebSocket is not subject to CORS: refuse pages of other origins (cross-site WebSocket
    // hijacking with a signed-in clinician's cookie).
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let own = host.is_some_and(|host| origin.to_str().ok() == Some(&format!("https://{host}")));
        if !own {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the signalling socket is for this gateway's own pages",
            ));
        }
    }
    let consultation = gateway
        .consultations
        .get(&id)
        .ok_or_else(|| ApiError::not_found("no consultation with this id (it may have ended)"))?;
    let participant = participant_of(&consultation, &claims)
        .ok_or_else(|| ApiError::not_found("no consultation with this id (it may have ended)"))?;
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if !offered {
        return Err(ApiError::bad_request(format!(
            "open the socket with the subprotocol {SUBPROTOCOL}"
        )));
    }
    Ok(upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| run_link(gateway, consultation, participant, socket)))
}

/// One participant's socket: messages in go to the room, the room's messages go out.
async fn run_link(
    gateway: Arc<Gateway>,
    consultation: Arc<Consultation>,
    participant: String,
    mut socket: WebSocket,
) {
    let (link, mut outbound) = consultation.connect(&gateway, &participant);
    export_gauges(&gateway);
    let mut rate = MessageRate::new(std::time::Instant::now());
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(_))) if !rate.allow(std::time::Instant::now()) => {
                    let error = ServerMessage::Error {
                        message: format!(
                            "too many messages: at most {MAX_MESSAGES} a second; this one was dropped"
                        ),
                    };
                    if socket.send(Message::Text(error.to_text().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) => match ClientMessage::parse(text.as_str()) {
                    Ok(ClientMessage::End) if participant == HOST => {
                        consultation.end(&gateway, "the clinician ended the consultation");
                        let _ = audit(&gateway, &consultation.host_subject, Some(Role::Clinician), Action::ConsultationEnd, &consultation.id, Outcome::Allowed, None, None).await;
                    }
                    Ok(message) => consultation.handle(&gateway, &participant, message),
                    Err(reason) => {
                        let error = ServerMessage::Error { message: reason };
                        if socket.send(Message::Text(error.to_text().into())).await.is_err() {
                            break;
                        }
                    }
                },
                Some(Ok(Message::Binary(_))) => {
                    let error = ServerMessage::Error { message: "messages are JSON text".into() };
                    if socket.send(Message::Text(error.to_text().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = outbound.recv() => match out {
                Some(Outbound::Message(message)) => {
                    if socket.send(Message::Text(message.to_text().into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
        }
    }
    consultation.disconnect(&gateway, &participant, link);
    export_gauges(&gateway);
    // A page that does not come back within the limit is removed (bounded: one timer).
    tokio::spawn(async move {
        tokio::time::sleep(crate::consultation::registry::AWAY_LIMIT).await;
        consultation.remove_if_away(&gateway, &participant);
        export_gauges(&gateway);
    });
}

/// Keeps `straja_consultations` and `straja_consultation_participants` current.
pub fn export_gauges(gateway: &Gateway) {
    gateway
        .metrics
        .consultations
        .set(gateway.consultations.len() as i64);
    gateway
        .metrics
        .consultation_participants
        .set(gateway.consultations.participants() as i64);
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    gateway: &Gateway,
    actor: &str,
    role: Option<Role>,
    action: Action,
    consultation: &str,
    outcome: Outcome,
    source: Option<SocketAddr>,
    reason: Option<String>,
) -> Result<(), ApiError> {
    gateway
        .audit(AuditEvent {
            actor: actor.to_owned(),
            role,
            action,
            resource: format!("consultation:{}", short(consultation)),
            outcome,
            source: source.map(|s| s.to_string()),
            reason,
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot record a consultation event in the audit log: refused");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written; access is refused until it can",
            )
        })
}
