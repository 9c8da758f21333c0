//! Signed upload URLs for run files: `PUT /files/upload/{token}`.
//!
//! The SDK uploads files with a plain `PUT` to whatever URL `CreateRunFiles` returned and
//! sends no `Authorization` header, so the URL carries the grant. A token is
//! `base64url(payload) "." base64url(HMAC-SHA256(upload_key, payload))`. The payload names
//! its purpose, the run, the file name and the expiry time. The purpose keeps a token minted
//! for one kind of upload from being accepted by another endpoint that shares the key.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_core::ids::RunId;
use herald_core::{Timestamp, ValidationError};
use herald_store::RunFile;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::body::read_body;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long an upload URL stays valid. The SDK uploads run files within seconds of asking,
/// but a slow or retried upload of a large file may take much longer.
pub const UPLOAD_URL_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The maximum length of a run file name, in bytes.
pub const MAX_RUN_FILE_NAME: usize = 1024;

/// The first line of the signed payload of a run file token.
const RUN_FILE_PURPOSE: &str = "herald-run-file-v1";

/// The grant that an upload token carries: uploads of one file of one run until it expires.
/// The token is not single-use, and each upload replaces the stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadGrant {
    /// The run the file belongs to.
    pub run_id: RunId,
    /// The file name, such as `config.yaml` or `media/images/a.png`.
    pub file_name: String,
    /// When the token stops being accepted.
    pub expires_at: Timestamp,
}

/// Checks a run file name: 1 to 1024 bytes without control characters or backslashes,
/// not starting with `/` and not containing `..`. These rules keep a name from reaching
/// outside the run's files when the files are written to disk or served by path.
pub fn validate_run_file_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_RUN_FILE_NAME
        && !name.starts_with('/')
        && !name.contains("..")
        && !name.chars().any(|c| c.is_control() || c == '\\');
    if valid {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!(
            "invalid run file name {name:?}; use 1 to {MAX_RUN_FILE_NAME} bytes without control characters, \
             backslashes or '..', not starting with '/'"
        ),
    ))
}

/// Signs a grant into a URL-safe token.
pub fn sign_upload_token(key: &[u8], grant: &UploadGrant) -> String {
    let payload = format!("{RUN_FILE_PURPOSE}\n{}\n{}\n{}", grant.run_id, grant.expires_at.millis(), grant.file_name);
    let signature = sign(key, payload.as_bytes()).finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(signature))
}

/// Checks a token's signature and expiry at `now` and returns its grant.
pub fn verify_upload_token(key: &[u8], token: &str, now: Timestamp) -> ApiResult<UploadGrant> {
    let (payload, signature) = token.split_once('.').ok_or_else(invalid_token)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid_token())?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid_token())?;

    // `verify_slice` compares in constant time, so response times reveal nothing about how
    // much of a forged signature was right.
    sign(key, &payload).verify_slice(&signature).map_err(|_| invalid_token())?;

    let grant = parse_payload(&payload).ok_or_else(invalid_token)?;
    if now > grant.expires_at {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "upload_url_expired",
            format!("the upload URL expired at {}; request a new one with CreateRunFiles", grant.expires_at),
        ));
    }
    Ok(grant)
}

/// Stores an uploaded run file. The token in the path authorizes the upload, and it is
/// checked before the body is read, so a forged URL costs no buffering.
///
/// NOTE: the body counts against the server's `max_request_bytes` like any request, so a
/// larger run file is rejected with 413 and the SDK only logs the failure.
pub async fn handle_upload(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let Path(token) = path.map_err(|_| invalid_token())?;
    let grant = verify_upload_token(&state.upload_key, &token, Timestamp::now())?;
    let body = read_body(&state, request).await?;

    let size = i64::try_from(body.len()).map_err(ApiError::internal)?;
    let digest = state.blobs.put(body).await.map_err(ApiError::internal)?;
    let file = RunFile { name: grant.file_name.clone(), digest, size, uploaded_at: Timestamp::now() };
    state.store.put_run_file(grant.run_id, file).await?;

    tracing::debug!(run.id = %grant.run_id, file.name = %grant.file_name, file.size = size, "run file uploaded");
    Ok(Json(json!({})))
}

fn sign(key: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    // The hmac crate (0.12) accepts HMAC keys of any length, so `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(payload);
    mac
}

fn parse_payload(payload: &[u8]) -> Option<UploadGrant> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(4, '\n');
    if parts.next()? != RUN_FILE_PURPOSE {
        return None;
    }
    let run_id = parts.next()?.parse().ok()?;
    let expires_at = Timestamp(parts.next()?.parse().ok()?);
    let file_name = parts.next()?.to_owned();
    Some(UploadGrant { run_id, file_name, expires_at })
}

fn invalid_token() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "invalid_upload_url",
        "the upload URL is invalid or was altered; upload to the exact URL that CreateRunFiles returned",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> UploadGrant {
        UploadGrant { run_id: RunId::new(), file_name: "media/a b.png".into(), expires_at: Timestamp(2_000) }
    }

    #[test]
    fn signed_token_round_trips() {
        let grant = grant();
        let token = sign_upload_token(b"key", &grant);
        assert_eq!(verify_upload_token(b"key", &token, Timestamp(1_000)).unwrap(), grant);
    }

    #[test]
    fn token_is_one_path_segment() {
        let token = sign_upload_token(b"key", &grant());
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
    }

    #[test]
    fn token_under_other_key_is_rejected() {
        let token = sign_upload_token(b"key", &grant());
        let error = verify_upload_token(b"other", &token, Timestamp(1_000)).unwrap_err();
        assert_eq!(error.code, "invalid_upload_url");
    }

    #[test]
    fn expired_token_is_rejected() {
        let token = sign_upload_token(b"key", &grant());
        let error = verify_upload_token(b"key", &token, Timestamp(2_001)).unwrap_err();
        assert_eq!(error.code, "upload_url_expired");
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for token in ["", ".", "abc", "abc.def", "!!.!!"] {
            let error = verify_upload_token(b"key", token, Timestamp(0)).unwrap_err();
            assert_eq!(error.code, "invalid_upload_url", "token {token:?}");
        }
    }

    #[test]
    fn run_file_names_are_checked() {
        for name in ["config.yaml", "media/images/x_1.png", "a b.txt"] {
            assert!(validate_run_file_name("files", name).is_ok(), "{name:?}");
        }
        for name in ["", "/etc/passwd", "../x", "a/../../b", "a\\b", "a\nb", &"x".repeat(1025)] {
            assert!(validate_run_file_name("files", name).is_err(), "{name:?}");
        }
    }
}
