//! Playback of recordings: `GET /api/v1/cameras/{id}/recordings?from=&to=` lists a camera's
//! segments in a time range, and `GET /api/v1/recordings/{segment}` serves one segment decrypted,
//! as `video/mp4`, with HTTP range requests (RFC 9110) so that players can seek.
//!
//! A segment is decrypted record by record as the body is sent (at most a few MiB in flight per
//! request); a player's first fetch of a segment (a request from byte 0) is an audited view.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::api_error::ApiError;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::Claims;
use crate::gateway::Gateway;
use crate::recording::SegmentInfo;
use crate::recording::segment_file::{SegmentError, SegmentReader};
use crate::recording::wall_time::{parse_time, rfc3339};

/// Most segments one listing returns (oldest first; narrow `from`/`to` for more).
pub const MAX_LISTED: usize = 1000;
/// Records (up to 1 MiB each) decrypted ahead of the client per request.
const RECORDS_IN_FLIGHT: usize = 4;

/// `from` and `to`, RFC 3339 (e.g. `2026-12-01T18:00:00Z`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// One segment as listed.
#[derive(Debug, Serialize)]
pub struct ListedSegment {
    /// Its id, for `GET /api/v1/recordings/{id}`.
    pub id: String,
    /// Its first frame, RFC 3339.
    pub start: String,
    /// Up to when it covers, RFC 3339.
    pub end: String,
    /// `end - start`.
    pub duration_seconds: f64,
    /// Size on disk (encrypted).
    pub bytes: u64,
    /// True while it is being written.
    pub recording: bool,
}

impl From<&SegmentInfo> for ListedSegment {
    fn from(info: &SegmentInfo) -> Self {
        ListedSegment {
            id: info.id(),
            start: rfc3339(info.start_ms),
            end: rfc3339(info.end_ms),
            duration_seconds: info.end_ms.saturating_sub(info.start_ms) as f64 / 1000.0,
            bytes: info.bytes,
            recording: info.recording,
        }
    }
}

/// `GET /api/v1/cameras/{id}/recordings?from=&to=`: the camera's segments that overlap the range
/// (both ends optional), oldest first, at most [`MAX_LISTED`].
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    Path(camera): Path<String>,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<ListedSegment>>, ApiError> {
    if gateway.camera(&camera).is_none() {
        return Err(ApiError::not_found("no camera with this id"));
    }
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!("bad query: {e}; expected ?from=RFC3339&to=RFC3339"))
    })?;
    let from = match &query.from {
        Some(from) => parse_time("from", from).map_err(ApiError::bad_request)?,
        None => 0,
    };
    let to = match &query.to {
        Some(to) => parse_time("to", to).map_err(ApiError::bad_request)?,
        None => u64::MAX,
    };
    if to < from {
        return Err(ApiError::bad_request("'to' must not come before 'from'"));
    }
    let segments = gateway
        .recordings
        .catalogue
        .list(&camera, from, to, MAX_LISTED);
    Ok(axum::Json(
        segments.iter().map(ListedSegment::from).collect(),
    ))
}

/// What a `Range` header asks of a body of `total` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole body (no `Range`, or one this server ignores: several ranges, another unit,
    /// bad syntax — as RFC 9110 allows).
    Whole,
    /// Bytes `start..end` (end exclusive).
    Part(u64, u64),
    /// Nothing of the body can be given (416).
    Unsatisfiable,
}

/// Reads a `Range` header (RFC 9110 §14.2) against a body of `total` bytes.
pub fn parse_range(value: Option<&HeaderValue>, total: u64) -> RangeRequest {
    let Some(spec) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if total > 0 => RangeRequest::Part(total.saturating_sub(n), total),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        (start, end) => {
            let Some(start) = number(start) else {
                return RangeRequest::Whole;
            };
            // `a-` runs to the end; `a-b` with b < a is invalid syntax (ignored).
            let last = if end.is_empty() {
                u64::MAX
            } else {
                match number(end) {
                    Some(last) if last >= start => last,
                    _ => return RangeRequest::Whole,
                }
            };
            if start >= total {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(start, last.min(total - 1) + 1)
            }
        }
    }
}

fn segment_error(error: SegmentError, segment: &str) -> ApiError {
    tracing::error!(segment, error = %error, "a recorded segment could not be read");
    let message = match error {
        SegmentError::Tampered { .. } => {
            "the segment does not authenticate: it was altered or damaged on disk"
        }
        _ => "the segment could not be read from disk",
    };
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// `GET /api/v1/recordings/{segment}`: the segment's MP4, decrypted; `206` for a range.
pub async fn serve(
    State(gateway): State<Arc<Gateway>>,
    Path(segment_id): Path<String>,
    Extension(claims): Extension<Claims>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let info = gateway
        .recordings
        .catalogue
        .get(&segment_id)
        .ok_or_else(|| ApiError::not_found("no recorded segment with this id"))?;
    let key = gateway.recordings.key.clone();
    let reader = {
        let (path, camera) = (info.path.clone(), info.camera.clone());
        tokio::task::spawn_blocking(move || SegmentReader::open(&path, &key, &camera))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "reading failed"))?
            .map_err(|e| segment_error(e, &segment_id))?
    };
    let total = reader.plaintext_len();
    let (status, start, end) = match parse_range(headers.get(header::RANGE), total) {
        RangeRequest::Whole => (StatusCode::OK, 0, total),
        RangeRequest::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeRequest::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the segment has {total} bytes"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{total}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    if start == 0 {
        let event = AuditEvent {
            actor: claims.sub.clone(),
            role: Some(claims.role),
            action: Action::RecordingPlay,
            resource: format!("camera:{} segment:{}", info.camera, info.id()),
            outcome: Outcome::Allowed,
            source: Some(client.to_string()),
            reason: None,
        };
        if let Err(e) = gateway.audit(event).await {
            tracing::error!(error = %e, "audit log unavailable: playback refused");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written, so recordings cannot be played now",
            )
            .retry_after(5));
        }
    }

    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(RECORDS_IN_FLIGHT);
    let id = segment_id.clone();
    tokio::task::spawn_blocking(move || {
        let result = reader.read_range(start, end, |bytes| {
            tx.blocking_send(Ok(axum::body::Bytes::copy_from_slice(bytes)))
                .is_ok()
        });
        if let Err(e) = result {
            tracing::error!(segment = %id, error = %e, "a segment failed while being sent");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1))
    {
        response_headers.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, total: u64) -> RangeRequest {
        parse_range(Some(&HeaderValue::from_str(value).unwrap()), total)
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), RangeRequest::Whole);
        assert_eq!(range("bytes=0-", 100), RangeRequest::Part(0, 100));
        assert_eq!(range("bytes=10-19", 100), RangeRequest::Part(10, 20));
        assert_eq!(range("bytes=90-500", 100), RangeRequest::Part(90, 100));
        assert_eq!(range("bytes=-30", 100), RangeRequest::Part(70, 100));
        assert_eq!(range("bytes=-300", 100), RangeRequest::Part(0, 100));
        assert_eq!(range("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), RangeRequest::Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=x-",
            "bytes=5-1",
            "bytes=",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(range(ignored, 100), RangeRequest::Whole, "{ignored}");
        }
    }
}
