//! Extractors that read request bodies, query strings and path parameters and reject bad
//! input with the API's JSON error body.
//!
//! Bodies are parsed into a `serde_json::Value` first and then read field by field with
//! [`ObjectReader`], because serde's derived readers stop at the first problem with a
//! message that does not name the field. Malformed JSON is 400 `invalid_request` with
//! serde's message, and a body that is JSON but has a wrong or unknown field is 422 with the
//! field's dotted path.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use herald_core::ValidationError;
use herald_core::document::ObjectReader;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A request body that is a JSON document.
pub struct JsonDocument(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonDocument {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(request.headers())?;

        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the server accepts; send a smaller body",
                )
            } else {
                ApiError::bad_request(format!("failed to read the request body: {}", rejection.body_text()))
            }
        })?;

        let document = serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::bad_request(format!("the request body is not valid JSON: {error}")))?;
        Ok(Self(document))
    }
}

/// Rejects a body that is not labelled as JSON. The check also stops a browser on another
/// site from posting a form to the API with credentials it remembers. A cross-site request
/// with a JSON content type needs a CORS preflight, which Herald does not grant because it
/// has no CORS layer.
fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        return Ok(());
    }
    let shown = if content_type.is_empty() { "no Content-Type".to_owned() } else { format!("{content_type:?}") };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("the request has {shown}; send the body as JSON with `Content-Type: application/json`"),
    ))
}

/// A request type read from a JSON object with [`ObjectReader`].
pub trait ReadBody: Sized {
    /// Reads the fields of `body` and rejects unknown ones.
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError>;
}

/// A JSON request body read into `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: ReadBody> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonDocument(document) = JsonDocument::from_request(request, state).await?;
        let reader = ObjectReader::new(&document, "")?;
        Ok(Self(T::read(&reader)?))
    }
}

/// Query parameters deserialized into `T`. Query structs deny unknown fields, so a
/// misspelt parameter is rejected instead of silently ignored.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(format!("invalid query string: {}", rejection.body_text())))?;
        Ok(Self(query))
    }
}

/// Path parameters deserialized into `T`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(path) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(format!("invalid path: {}", rejection.body_text())))?;
        Ok(Self(path))
    }
}

/// Parses a path parameter that names a resource by id. A value that is not a UUID cannot
/// name anything, so it is 404 like an id that does not exist.
pub fn parse_id<Id: std::str::FromStr>(text: &str, what: &str) -> Result<Id, ApiError> {
    text.parse().map_err(|_| ApiError::not_found(format!("{what} {text:?} not found; {what} ids are UUIDs")))
}
