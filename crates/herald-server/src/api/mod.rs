//! The REST API v1.

use axum::Router;

use crate::state::AppState;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
}
