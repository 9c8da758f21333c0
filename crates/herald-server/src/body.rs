//! Request bodies, as every endpoint reads them: within the server's size limit, with the
//! JSON error body for a body that is too large or not labelled as JSON.

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Reads a request body as sent, within the server's `max_request_bytes`.
pub async fn read_body(state: &AppState, request: Request) -> ApiResult<Bytes> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large("the request body is larger than", state.settings.max_request_bytes)
        } else {
            ApiError::bad_request(format!("failed to read the request body: {}", rejection.body_text()))
        }
    })
}

/// Rejects a body that is not labelled as JSON (`application/json` or `application/*+json`)
/// with 415. The check stops a page on another site from posting a form, whose content type
/// can only be `text/plain`, a form encoding or multipart, with credentials that the browser
/// remembers. A cross-site request with a JSON content type needs a CORS preflight, which
/// Herald does not grant because it has no CORS layer.
pub fn require_json_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        return Ok(());
    }
    let described = if content_type.is_empty() { "no Content-Type".to_owned() } else { format!("{content_type:?}") };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("the request has {described}; send the body as JSON with `Content-Type: application/json`"),
    ))
}

/// Returns the 413 error for a body over `max_bytes`. `problem` starts the sentence, such as
/// "the request body is larger than".
pub fn payload_too_large(problem: &str, max_bytes: usize) -> ApiError {
    let limit = match max_bytes % (1 << 20) {
        0 => format!("{} MiB", max_bytes >> 20),
        _ => format!("{max_bytes} bytes"),
    };
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "{problem} Herald's limit of {limit}; send less data per request, or raise \
             `max_request_mib` (HERALD_MAX_REQUEST_MIB) in the server configuration"
        ),
    )
}
