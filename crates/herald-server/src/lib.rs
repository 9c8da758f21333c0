//! Herald's HTTP server.
//!
//! - [`wandb`]: the W&B client protocol that the unmodified `wandb` SDK speaks: `/graphql`,
//!   file_stream and signed file uploads.
//! - [`api`]: the REST API v1 under `/api/v1`, with its OpenAPI document.
//! - [`health`]: `/healthz` and `/readyz`.
//!
//! Architecture invariant: handlers change state only through the `Store` trait, and a
//! handler whose write recorded an event wakes the evaluator before it answers.
//!
//! Unknown paths and methods reach the fallbacks here, which return the JSON error body of
//! [`error`], and a panic in a handler becomes a JSON 500 instead of a dropped connection.

pub mod api;
pub mod auth;
pub mod blobs;
pub mod body;
pub mod error;
pub mod health;
pub mod state;
pub mod wandb;

use std::any::Any;
use std::future::Future;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use state::{AppState, ServerSettings};

/// Builds the router with every endpoint.
pub fn router(state: AppState) -> Router {
    let max_request_bytes = state.settings.max_request_bytes;
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(wandb::routes())
        .nest(api::PREFIX, api::routes());
    with_shared_layers(routes, max_request_bytes).with_state(state)
}

/// Adds what every route shares: the JSON fallbacks for unknown paths and methods, the body
/// size limit, panic recovery and request tracing.
///
/// The fallbacks apply to every route added before this call whose router has no fallback
/// of its own. Panic recovery sits inside the trace layer, so the trace records the 500.
fn with_shared_layers<S: Clone + Send + Sync + 'static>(routes: Router<S>, max_request_bytes: usize) -> Router<S> {
    routes
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
}

async fn route_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "no route matches {:?}; the REST API's routes are listed in {}/openapi.json",
        uri.path(),
        api::PREFIX
    ))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; the Allow header lists the methods it accepts, and the REST API's \
             routes are listed in {}/openapi.json",
            uri.path(),
            api::PREFIX
        ),
    )
}

/// Logs a handler's panic and returns a 500 response with the `internal` error body.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::internal(format!("a request handler panicked: {message}")).into_response()
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Serves `routes` with the shared layers on 127.0.0.1 and returns the base URL.
    async fn serve_with_shared_layers(routes: Router) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = with_shared_layers(routes, 1 << 20);
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    #[tokio::test]
    async fn handler_panic_returns_json_500() {
        async fn panicking() -> &'static str {
            panic!("test handler failed on purpose")
        }
        let url = serve_with_shared_layers(Router::new().route("/panic", get(panicking))).await;

        let response = reqwest::get(format!("{url}/panic")).await.unwrap();

        assert_eq!(response.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "internal");
        assert!(body["detail"].as_str().unwrap().contains("see its log"), "{body}");

        let response = reqwest::get(format!("{url}/panic")).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR, "the server keeps serving");
    }
}
