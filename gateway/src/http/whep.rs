//! WHEP (WebRTC-HTTP Egress Protocol): `POST /api/v1/cameras/{id}/whep` answers a viewer's offer
//! and starts its session; `DELETE /api/v1/sessions/{sid}` ends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api_error::ApiError;
use super::content_type;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::{Claims, Role};
use crate::gateway::Gateway;
use crate::sessions::new_session_id;
use crate::webrtc::EndReason;

/// Largest request body accepted (an SDP offer is a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Seconds a client is asked to wait when the session caps are reached.
const RETRY_AFTER_SECONDS: u32 = 5;

fn at_capacity() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "this camera or this gateway is at its session limit; try again later",
    )
    .retry_after(RETRY_AFTER_SECONDS)
}

/// Maps a body that could not be read to 413 (too large) or 400.
pub fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    } else {
        ApiError::bad_request(format!("cannot read the request body: {rejection}"))
    }
}

/// Answers a WHEP offer: `201 Created`, `Location: /api/v1/sessions/{sid}`, body = SDP answer.
pub async fn offer(
    State(gateway): State<Arc<Gateway>>,
    Path(camera_id): Path<String>,
    Extension(claims): Extension<Claims>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let camera = gateway
        .camera(&camera_id)
        .ok_or_else(|| ApiError::not_found("no camera with this id"))?;
    if !content_type::is(&headers, "application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a WHEP offer is sent with Content-Type: application/sdp",
        ));
    }
    let body = body.map_err(body_error)?;
    let offer = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("malformed SDP: the body is not UTF-8 text"))?;
    if !gateway.sessions.has_room(&camera.id) {
        return Err(at_capacity());
    }

    let session_id = new_session_id();
    let view = |action, outcome, reason: Option<String>| AuditEvent {
        actor: claims.sub.clone(),
        role: Some(claims.role),
        action,
        resource: format!("camera:{} session:{}", camera.id, &session_id[..8]),
        outcome,
        source: Some(client.to_string()),
        reason,
    };
    // An H.265 camera: its own stream for a viewer that offers H.265, else its H.264 transcode,
    // which runs while such viewers hold a lease on it.
    use crate::webrtc::whep_peer::{VideoCodec, offer_takes_video};
    let (video_feed, transcode_lease) = if camera.video_codec() == VideoCodec::H265
        && !offer_takes_video(offer, VideoCodec::H265)
    {
        if !offer_takes_video(offer, VideoCodec::H264) {
            return Err(ApiError::bad_request(
                "unacceptable SDP offer: this camera sends H.265 (or H.264 transcoded from it), \
                 and the offer has neither",
            ));
        }
        let lease = camera.transcoding.acquire().map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "this camera sends H.265, which the offer does not take, and it cannot be \
                     transcoded to H.264 now: {e}"
                ),
            )
            .retry_after(RETRY_AFTER_SECONDS)
        })?;
        (camera.transcoding.output().clone(), Some(lease))
    } else {
        (camera.feed.clone(), None)
    };
    let on_end = {
        // Held for the session's life: the transcode stops when its last viewer ends.
        let transcode_lease = transcode_lease;
        let gateway = Arc::downgrade(&gateway);
        let session_id = session_id.clone();
        let camera = camera.id.clone();
        let stop = view(Action::ViewStop, Outcome::Ended, None);
        move |reason: EndReason| {
            if let Some(gateway) = gateway.upgrade() {
                gateway.sessions.remove(&session_id);
                gateway.export_session_count();
                let audit = gateway.audit.clone();
                let stop = AuditEvent {
                    reason: Some(format!("{reason:?}")),
                    ..stop
                };
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = audit.append(stop) {
                        tracing::error!(error = %e, "cannot record a view's end in the audit log");
                    }
                });
            }
            tracing::info!(%camera, session = &session_id[..8], ?reason, "viewer session ended");
            drop(transcode_lease);
        }
    };
    let started = match gateway.webrtc.start_viewer(
        offer,
        video_feed,
        camera
            .audio_codec()
            .map(|codec| (camera.audio_feed.clone(), codec)),
        on_end,
    ) {
        Ok(Ok(started)) => started,
        Ok(Err(offer_error)) => return Err(ApiError::bad_request(offer_error.to_string())),
        Err(setup_error) => {
            tracing::error!(error = %setup_error, "cannot answer a WHEP offer");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the gateway could not set up the session",
            ));
        }
    };
    // The grant is on disk before the viewer gets its answer; without the record, no view.
    if let Err(e) = gateway
        .audit(view(Action::ViewStart, Outcome::Allowed, None))
        .await
    {
        tracing::error!(error = %e, "cannot record a view in the audit log: refused");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log cannot be written; access is refused until it can",
        ));
    }
    if !gateway.sessions.insert(
        session_id.clone(),
        &claims.sub,
        &camera.id,
        Box::new(started.close),
    ) {
        return Err(at_capacity());
    }
    // A reload may have removed the camera while the session was set up (after its viewers were
    // closed): this one would watch a stopped feed.
    if gateway
        .camera(&camera.id)
        .is_none_or(|now| !Arc::ptr_eq(&now.feed, &camera.feed))
    {
        gateway.sessions.close(&session_id, None);
        return Err(ApiError::not_found("no camera with this id"));
    }
    gateway.export_session_count();
    gateway
        .metrics
        .whep_answer_seconds
        .observe(arrived.elapsed().as_secs_f64());
    tracing::info!(camera = %camera.id, session = &session_id[..8], "viewer session started");
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/api/v1/sessions/{session_id}")),
        ],
        started.answer_sdp,
    )
        .into_response())
}

/// Ends a session: 200, or 404 when there is no such session or it is someone else's (ops may
/// end any session).
pub async fn delete(
    State(gateway): State<Arc<Gateway>>,
    Path(session_id): Path<String>,
    Extension(claims): Extension<Claims>,
) -> Result<StatusCode, ApiError> {
    let owner = (claims.role != Role::Ops).then_some(claims.sub.as_str());
    if gateway.sessions.close(&session_id, owner) {
        gateway.export_session_count();
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found("no session with this id"))
    }
}
