//! Authentication and the entity, project and run lookups that the W&B endpoints share.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use herald_core::model::Role;
use herald_core::names::{validate_entity_name, validate_project_name};
use herald_store::{Entity, Project, Run};

use crate::auth::{Caller, authenticate, key_from_authorization};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Authenticates the API key that the SDK sends as HTTP Basic with user `api`.
pub async fn authenticate_headers(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let header = headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    let Some(key) = header.and_then(key_from_authorization) else {
        return Err(ApiError::unauthorized(
            "missing API key; set WANDB_API_KEY, which the wandb SDK sends as HTTP Basic with user `api`",
        ));
    };
    authenticate(state, &key).await
}

/// Finds the entity that a W&B request names, or the caller's personal entity when it
/// names none, as W&B does for a script without `entity=`.
pub async fn find_entity(state: &AppState, caller: &Caller, name: Option<&str>) -> ApiResult<Entity> {
    let name = match name {
        Some(name) if !name.is_empty() => name,
        _ => caller.user.name.as_str(),
    };
    validate_entity_name("entityName", name)?;

    match state.store.entity_by_name(name).await? {
        Some(entity) => Ok(entity),
        None => Err(ApiError::not_found(format!(
            "entity {name:?} not found; check the entity given to wandb.init or WANDB_ENTITY, \
             or ask an admin to create the team in Herald"
        ))),
    }
}

/// Finds the entity a W&B request names and checks that the caller may log runs in it,
/// which needs the `member` role.
pub async fn find_writable_entity(state: &AppState, caller: &Caller, name: Option<&str>) -> ApiResult<Entity> {
    let entity = find_entity(state, caller, name).await?;
    caller.require(state, &entity, Role::Member).await?;
    Ok(entity)
}

/// Checks a project name that a W&B request carries.
pub fn check_project_name(field: &str, name: &str) -> ApiResult<()> {
    Ok(validate_project_name(field, name)?)
}

/// Finds a run by entity, project and W&B run id. Fails with 404 when either the project or
/// the run does not exist.
pub async fn find_run(state: &AppState, entity: &Entity, project: &str, run: &str) -> ApiResult<(Project, Run)> {
    let Some(found_project) = state.store.project_by_name(entity.id, project).await? else {
        return Err(ApiError::not_found(format!("project {project:?} not found in entity {:?}", entity.name)));
    };
    let Some(found_run) = state.store.run_by_name(found_project.id, run).await? else {
        return Err(ApiError::not_found(format!(
            "run {run:?} not found in {}/{project}; start it with wandb.init first",
            entity.name
        )));
    };
    Ok((found_project, found_run))
}
