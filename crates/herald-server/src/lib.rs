//! Herald's HTTP server.
//!
//! - [`wandb`]: the W&B client protocol that the unmodified `wandb` SDK speaks: `/graphql`,
//!   file_stream and signed file uploads.
//! - [`api`]: the REST API v1 under `/api/v1`, with its OpenAPI document.
//! - [`health`]: `/healthz` and `/readyz`.
//!
//! Architecture invariant: handlers change state only through the `Store` trait, and a
//! handler whose write recorded an event wakes the evaluator before it answers.

pub mod api;
pub mod auth;
pub mod blobs;
pub mod error;
pub mod health;
pub mod state;
pub mod wandb;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use state::{AppState, ServerSettings};

/// Builds the router with every endpoint.
pub fn router(state: AppState) -> Router {
    let max_request_bytes = state.settings.max_request_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(wandb::routes())
        .nest("/api/v1", api::routes())
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
