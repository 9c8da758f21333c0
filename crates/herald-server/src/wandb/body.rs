//! Request bodies of the W&B protocol: the JSON endpoints' bodies, checked for a JSON content
//! type and decoded from gzip.

use std::io::Read;

use axum::extract::Request;
use axum::http::header::CONTENT_ENCODING;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use flate2::read::GzDecoder;

use crate::body::{payload_too_large, read_body, require_json_content_type};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Reads the JSON body of a `/graphql` or file_stream request, with its `Content-Encoding`
/// removed.
///
/// The body must be labelled as JSON (`application/json` or `application/*+json`). The wandb
/// 0.31.0 SDK sends `application/json` on both endpoints (observed with a recording proxy
/// between the SDK and Herald). The check stops a page on another site
/// from posting a form, whose content type can only be `text/plain`, a form encoding or
/// multipart, with credentials that the browser remembers. A cross-site request with a JSON
/// content type needs a CORS preflight, which Herald does not grant.
pub async fn read_json_body(state: &AppState, request: Request) -> ApiResult<Bytes> {
    require_json_content_type(request.headers())?;
    let max_bytes = state.settings.max_request_bytes;
    let headers = request.headers().clone();
    let body = read_body(state, request).await?;
    decode_body(&headers, body, max_bytes)
}

/// Returns the body with its `Content-Encoding` removed. Only `gzip` and `identity` are
/// accepted. A gzipped body may expand to at most `max_bytes`, so a small compressed request
/// cannot fill memory.
fn decode_body(headers: &HeaderMap, body: Bytes, max_bytes: usize) -> ApiResult<Bytes> {
    let encoding = match headers.get(CONTENT_ENCODING) {
        None => return Ok(body),
        Some(value) => value.to_str().unwrap_or_default().trim().to_ascii_lowercase(),
    };

    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => gunzip(&body, max_bytes),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding {other:?} is not supported; send the body uncompressed or gzipped"),
        )),
    }
}

fn gunzip(compressed: &[u8], max_bytes: usize) -> ApiResult<Bytes> {
    let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX).saturating_add(1);
    let mut decoded = Vec::with_capacity(compressed.len().saturating_mul(4).min(max_bytes));
    GzDecoder::new(compressed).take(limit).read_to_end(&mut decoded).map_err(|error| {
        ApiError::bad_request(format!("the body is marked Content-Encoding: gzip but is not valid gzip: {error}"))
    })?;

    if decoded.len() > max_bytes {
        return Err(payload_too_large("the gzipped request body expands to more than", max_bytes));
    }
    Ok(Bytes::from(decoded))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    fn gzip_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers
    }

    #[test]
    fn gzip_body_is_decoded() {
        let decoded = decode_body(&gzip_headers(), gzip(b"{\"a\":1}"), 1024).unwrap();
        assert_eq!(&decoded[..], b"{\"a\":1}");
    }

    #[test]
    fn plain_body_passes_unchanged() {
        let decoded = decode_body(&HeaderMap::new(), Bytes::from_static(b"{}"), 1024).unwrap();
        assert_eq!(&decoded[..], b"{}");
    }

    #[test]
    fn gzip_bomb_is_rejected() {
        let error = decode_body(&gzip_headers(), gzip(&vec![b'a'; 10_000]), 100).unwrap_err();
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error.code, "payload_too_large");
        assert!(error.detail.contains("limit of 100 bytes"), "{}", error.detail);
    }

    #[test]
    fn invalid_gzip_is_rejected() {
        let error = decode_body(&gzip_headers(), Bytes::from_static(b"not gzip"), 100).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unknown_encoding_is_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        let error = decode_body(&headers, Bytes::from_static(b"{}"), 100).unwrap_err();
        assert_eq!(error.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
