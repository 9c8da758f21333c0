//! Request bodies of the W&B protocol, which may arrive gzipped.

use std::io::Read;

use axum::http::header::CONTENT_ENCODING;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use flate2::read::GzDecoder;

use crate::error::{ApiError, ApiResult};

/// Returns the body with its `Content-Encoding` removed. Only `gzip` and `identity` are
/// accepted. A gzipped body may expand to at most `max_bytes`, so a small compressed request
/// cannot fill memory.
pub fn decode_body(headers: &HeaderMap, body: Bytes, max_bytes: usize) -> ApiResult<Bytes> {
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
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the gzipped body expands to more than {max_bytes} bytes; send smaller requests"),
        ));
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
        assert_eq!(error.code, "body_too_large");
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
