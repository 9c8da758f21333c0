//! The W&B client protocol.

use axum::Router;

use crate::state::AppState;

/// The routes the wandb SDK calls.
pub fn routes() -> Router<AppState> {
    Router::new()
}
