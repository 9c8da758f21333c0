//! Entities (a user's personal namespace or a team) and their organization.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use herald_core::ids::EntityId;
use herald_store::{Entity, Project};

use super::RequestScope;
use crate::wandb::access::find_entity;

/// The `entity` query.
#[derive(Default)]
pub struct EntityQuery;

#[Object]
impl EntityQuery {
    /// Finds an entity by name, or the caller's personal entity when no name is given.
    /// Returns null for an entity that does not exist or in which the caller has no role,
    /// so that the response does not reveal which team names exist.
    async fn entity(&self, ctx: &Context<'_>, name: Option<String>) -> Result<Option<EntityNode>> {
        let scope = RequestScope::of(ctx)?;
        let entity = match find_entity(&scope.state, &scope.caller, name.as_deref()).await {
            Ok(entity) => entity,
            Err(error) if error.status.is_client_error() => return Ok(None),
            Err(error) => return Err(error.into()),
        };

        if scope.caller.role_in(&scope.state, &entity).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(EntityNode::from(&entity)))
    }
}

/// W&B's `Entity` type.
#[derive(Clone, Debug)]
pub struct EntityNode {
    /// The entity's id.
    pub id: EntityId,
    /// The entity's name.
    pub name: String,
}

impl From<&Entity> for EntityNode {
    fn from(entity: &Entity) -> Self {
        Self { id: entity.id, name: entity.name.clone() }
    }
}

impl From<&Project> for EntityNode {
    fn from(project: &Project) -> Self {
        Self { id: project.entity_id, name: project.entity_name.clone() }
    }
}

#[Object(name = "Entity")]
impl EntityNode {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.name
    }

    /// The organization that owns the entity. Always null for now: the SDK requests it
    /// only to find a CoreWeave organization id, and a non-null organization makes it fetch
    /// CoreWeave metadata as well.
    async fn organization(&self) -> Option<OrganizationNode> {
        None
    }
}

/// W&B's `Organization` type.
#[derive(Clone, Debug, Default)]
pub struct OrganizationNode;

#[Object(name = "Organization")]
impl OrganizationNode {
    /// Returns null, because Herald has no CoreWeave organization id.
    async fn core_weave_organization_id(&self) -> Option<String> {
        None
    }
}

/// W&B's `EntityConnection`: a list of entities, such as the teams of a user.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "EntityConnection")]
pub struct EntityConnection {
    /// The entities, in name order.
    pub edges: Vec<EntityEdge>,
}

/// W&B's `EntityEdge`.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "EntityEdge")]
pub struct EntityEdge {
    /// The entity.
    pub node: EntityNode,
}
