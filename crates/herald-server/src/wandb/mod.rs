//! The W&B client protocol, which the unmodified `wandb` SDK (0.31) speaks.
//!
//! - [`graphql`]: `POST /graphql`, the GraphQL endpoint, with its schema in [`schema`].
//! - [`file_stream`]: `POST /files/{entity}/{project}/{run}/file_stream`, where the SDK sends
//!   history rows, the summary, heartbeats and the exit code.
//! - [`uploads`]: `PUT /files/upload/{token}`, the signed URLs that run files are uploaded to.
//!   The SDK sends no `Authorization` header there, so the URL itself carries the grant.
//!
//! The SDK authenticates with HTTP Basic, user `api` and the API key as the password. A
//! missing or wrong key gets 401 before any other work, which makes `wandb.init` fail at once
//! with "unauthorized" instead of retrying.

mod access;
mod body;
pub mod file_stream;
pub mod graphql;
pub mod schema;
pub mod uploads;

use axum::routing::{post, put};
use axum::{Extension, Router};

use crate::state::AppState;

/// Builds the routes the wandb SDK calls. The GraphQL schema is built once here.
pub fn routes() -> Router<AppState> {
    let schema = schema::build_schema();
    Router::new()
        .route("/graphql", post(graphql::handle_graphql))
        .route("/files/{entity}/{project}/{run}/file_stream", post(file_stream::handle_file_stream))
        .route("/files/upload/{token}", put(uploads::handle_upload))
        .layer(Extension(schema))
}
