//! The GraphQL schema that the wandb SDK's documents run against.
//!
//! W&B's own schema is private, so this one is rebuilt from the documents that the 0.31 SDK
//! sends and from the response models it validates. Two rules follow from that:
//! - A GraphQL engine rejects a whole document when it selects one unknown field, so every
//!   field those documents select is declared, even where Herald always returns null.
//! - Object type names are W&B's (`User`, `Entity`, `Project`, `Run`...), because the
//!   Python side checks `__typename` values.
//!
//! The root types are merged from one object per area ([`viewer`], [`runs`]), so that
//! artifacts, registries and automations can each add their own module later.
//!
//! Resolvers fail with [`ApiError`](crate::error::ApiError). The HTTP handler in
//! [`super::graphql`] turns it into a GraphQL error with the stable code in
//! `extensions.code` and picks the HTTP status from it.

pub mod entities;
pub mod runs;
pub mod scalars;
pub mod viewer;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The schema type.
pub type WandbSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// The deepest selection a document may make. The deepest SDK document nests about eight
/// levels, so this leaves room and still stops documents built to exhaust the server.
const MAX_DEPTH: usize = 32;

/// The query root.
#[derive(MergedObject, Default)]
pub struct QueryRoot(viewer::ViewerQuery, entities::EntityQuery, runs::RunQuery);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct MutationRoot(runs::RunMutation);

/// Builds the schema. It contains no state, so one schema serves every request, and each
/// request brings its [`RequestScope`] as data.
pub fn build_schema() -> WandbSchema {
    Schema::build(QueryRoot::default(), MutationRoot::default(), EmptySubscription).limit_depth(MAX_DEPTH).finish()
}

/// The per-request data that resolvers read: the server state and the authenticated caller.
pub struct RequestScope {
    /// The server state.
    pub state: AppState,
    /// The user whose API key authenticated the request.
    pub caller: Caller,
}

impl RequestScope {
    /// Returns the scope of the request that `ctx` belongs to.
    pub fn of<'a>(ctx: &Context<'a>) -> ApiResult<&'a RequestScope> {
        ctx.data::<RequestScope>().map_err(|_| ApiError::internal("a GraphQL request ran without its request scope"))
    }
}
