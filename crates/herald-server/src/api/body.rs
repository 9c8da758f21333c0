//! Extractors that read request bodies, query strings and path parameters and reject bad
//! input with the API's JSON error body.
//!
//! Bodies are parsed into a `serde_json::Value` first and then read field by field with
//! [`ObjectReader`], because serde's derived readers stop at the first problem with a
//! message that does not name the field. Malformed JSON is 400 `invalid_request` with
//! serde's message, and a body that is JSON but has a wrong or unknown field is 422 with the
//! field's dotted path.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use herald_core::ValidationError;
use herald_core::document::ObjectReader;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::body::{read_body, require_json_content_type};
use crate::error::ApiError;
use crate::state::AppState;

/// A request body that is a JSON document.
pub struct JsonDocument(pub Value);

impl FromRequest<AppState> for JsonDocument {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        require_json_content_type(request.headers())?;
        let bytes = read_body(state, request).await?;
        let document = serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::bad_request(format!("the request body is not valid JSON: {error}")))?;
        Ok(Self(document))
    }
}

/// A request type read from a JSON object with [`ObjectReader`].
pub trait ReadBody: Sized {
    /// Reads the fields of `body` and rejects unknown ones.
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError>;
}

/// A JSON request body read into `T`.
pub struct Body<T>(pub T);

impl<T: ReadBody> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
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
