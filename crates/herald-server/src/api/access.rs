//! Lookups of entities, teams and projects by name, and the set of entities a caller may
//! read.

use std::collections::HashSet;

use herald_core::ids::EntityId;
use herald_core::model::EntityKind;
use herald_store::{Entity, Project};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Finds a team by name, or fails with 404. A user's personal entity is not a team.
pub async fn team_by_name(state: &AppState, name: &str) -> ApiResult<Entity> {
    match state.store.entity_by_name(name).await? {
        Some(entity) if entity.kind == EntityKind::Team => Ok(entity),
        _ => Err(ApiError::not_found(format!("team {name:?} not found; list your teams with GET /api/v1/teams"))),
    }
}

/// Finds a user's personal entity or a team by name, or fails with 404.
pub async fn entity_by_name(state: &AppState, name: &str) -> ApiResult<Entity> {
    state.store.entity_by_name(name).await?.ok_or_else(|| {
        ApiError::not_found(format!("entity {name:?} not found; an entity is a user name or a team name"))
    })
}

/// Finds a project by entity and name, or fails with 404.
pub async fn project_by_name(state: &AppState, entity: &Entity, name: &str) -> ApiResult<Project> {
    state.store.project_by_name(entity.id, name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "project \"{}/{name}\" not found; list projects with GET /api/v1/projects",
            entity.name
        ))
    })
}

/// The entities a caller may read.
pub enum Readable {
    /// Every entity, for organization admins.
    All,
    /// The caller's personal entity and the teams the caller belongs to.
    Only(HashSet<EntityId>),
}

impl Readable {
    /// Loads the entities `caller` may read.
    pub async fn load(state: &AppState, caller: &Caller) -> ApiResult<Self> {
        if caller.user.is_org_admin {
            return Ok(Readable::All);
        }
        let teams = state.store.list_teams(Some(caller.user.id)).await?;
        let mut entities: HashSet<EntityId> = teams.into_iter().map(|team| team.id).collect();
        entities.insert(caller.user.entity_id);
        Ok(Readable::Only(entities))
    }

    /// Returns true if and only if the caller may read `entity`.
    pub fn contains(&self, entity: EntityId) -> bool {
        match self {
            Readable::All => true,
            Readable::Only(entities) => entities.contains(&entity),
        }
    }
}
