//! The `viewer` and `serverInfo` queries: who is calling, and what the server supports.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use herald_store::User;

use super::RequestScope;
use super::entities::{EntityConnection, EntityEdge, EntityNode};
use super::scalars::JsonString;

/// The `viewer` and `serverInfo` queries.
#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// Returns the user whose API key authenticated the request. The SDK takes a non-null viewer as
    /// proof that the key is valid, and adopts its `entity` as the default entity.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let scope = RequestScope::of(ctx)?;
        Ok(Some(UserNode { user: scope.caller.user.clone() }))
    }

    /// Returns the server's capabilities.
    async fn server_info(&self) -> ServerInfo {
        ServerInfo { features: server_features() }
    }
}

/// Returns the features Herald advertises, which are none yet. An empty list makes the SDK send the oldest,
/// smallest document shapes, and each feature can be added once its operations exist.
fn server_features() -> Vec<ServerFeature> {
    Vec::new()
}

/// W&B's `User` type.
pub struct UserNode {
    user: User,
}

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.user.id.to_string())
    }

    /// Returns the user's personal entity, which is named like the user.
    async fn entity(&self) -> &str {
        &self.user.name
    }

    async fn username(&self) -> &str {
        &self.user.name
    }

    /// Always null, because Herald does not store e-mail addresses.
    async fn email(&self) -> Option<String> {
        None
    }

    /// W&B's per-user feature flags, which Herald does not have.
    async fn flags(&self) -> Option<JsonString> {
        None
    }

    /// Lists the teams the user belongs to.
    async fn teams(&self, ctx: &Context<'_>) -> Result<EntityConnection> {
        let scope = RequestScope::of(ctx)?;
        let teams = scope.state.store.list_teams(Some(self.user.id)).await.map_err(crate::error::ApiError::from)?;
        let edges = teams.iter().map(|team| EntityEdge { node: EntityNode::from(team) }).collect();
        Ok(EntityConnection { edges })
    }
}

/// W&B's `ServerInfo` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ServerInfo")]
pub struct ServerInfo {
    /// The features the server advertises.
    pub features: Vec<ServerFeature>,
}

/// W&B's `ServerFeature` type: a named feature and whether it is on.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ServerFeature")]
pub struct ServerFeature {
    /// The feature's name, as in the SDK's `ServerFeature` enum.
    pub name: String,
    /// Whether the feature is on.
    pub is_enabled: bool,
}
