//! The error body of every HTTP API: `{"code": "...", "detail": "..."}`.
//!
//! `code` is a stable snake_case string for programs; `detail` is a sentence for people that
//! names the rejected field and value and explains how to fix it. Validation errors also carry
//! `field`. Internal errors answer a bare 500 with code `internal` and are logged with their
//! cause, which never reaches the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_core::ValidationError;
use herald_store::StoreError;
use serde::Serialize;

/// An error returned to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// The problem and how to fix it.
    pub detail: String,
    /// The dotted path of the rejected field, for validation errors.
    pub field: Option<String>,
}

/// The JSON body of an error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, such as `not_found` or `invalid_value`.
    pub code: String,
    /// The problem and how to fix it.
    pub detail: String,
    /// The dotted path of the rejected field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// Creates an error.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), field: None }
    }

    /// 400 for a request body that is not what the endpoint reads.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 401 for a missing or wrong API key.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403 for a caller who may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 for a missing object.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 500 for a failure of Herald itself. The cause is logged here and not shown.
    #[track_caller]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let location = std::panic::Location::caller();
        tracing::error!(error = %cause, at = %location, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Herald failed to handle the request; see its log")
    }

    /// Returns the body of this error's response.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code.to_owned(), detail: self.detail.clone(), field: self.field.clone() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.code)
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let detail = error.to_string();
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code: error.code, detail, field: Some(error.field) }
    }
}

impl From<StoreError> for ApiError {
    #[track_caller]
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict { code, detail } => ApiError::new(StatusCode::CONFLICT, code, detail),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::debug!(code = self.code, detail = %self.detail, "request rejected");
        }
        let mut response = (self.status, Json(self.body())).into_response();
        // The Bearer challenge, unlike Basic, makes no browser prompt for a password that
        // it would then send with every request, including forged cross-site ones.
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer realm=\"herald\""));
        }
        response
    }
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
