//! Projects, which belong to a user's personal entity or to a team.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::ValidationError;
use herald_core::document::ObjectReader;
use herald_core::ids::ProjectId;
use herald_core::model::Role;
use herald_core::names::{validate_entity_name, validate_project_name};
use herald_core::timestamp::Timestamp;
use herald_store::Project;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::{Readable, entity_by_name, project_by_name};
use super::body::{ApiPath, ApiQuery, Body, ReadBody};
use super::{ApiRoutes, Verb};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// A project.
#[derive(Serialize, ToSchema)]
pub struct ProjectOut {
    /// The project's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: ProjectId,
    /// The entity (user or team) that owns the project.
    pub entity: String,
    /// The project's name, unique inside its entity.
    pub name: String,
    /// When the project was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<Project> for ProjectOut {
    fn from(project: Project) -> Self {
        Self { id: project.id, entity: project.entity_name, name: project.name, created_at: project.created_at }
    }
}

/// A project to create.
#[derive(ToSchema)]
pub struct ProjectIn {
    /// The entity (user or team) that will own the project.
    pub entity: String,
    /// The name: 1 to 128 characters without `/ \ # ? % :`, control characters or
    /// surrounding spaces.
    pub name: String,
}

impl ReadBody for ProjectIn {
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError> {
        body.reject_unknown(&["entity", "name"], &[])?;
        let entity = body.required_string("entity")?;
        validate_entity_name("entity", entity)?;
        let name = body.required_string("name")?;
        validate_project_name("name", name)?;
        Ok(Self { entity: entity.to_owned(), name: name.to_owned() })
    }
}

/// The list of projects.
#[derive(Serialize, ToSchema)]
pub struct ProjectListOut {
    /// Projects by entity and name.
    pub items: Vec<ProjectOut>,
}

/// Filters of the project list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProjectListQuery {
    /// Only projects of this entity.
    pub entity: Option<String>,
}

/// Creates a project. Members of the entity may.
#[utoipa::path(
    post, path = "/projects", tag = "projects", operation_id = "create_project",
    request_body = ProjectIn,
    responses(
        (status = 201, description = "The new project", body = ProjectOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "The caller is not a member of the entity", body = ErrorBody),
        (status = 409, description = "The entity already has a project so named", body = ErrorBody),
        (status = 422, description = "A field is invalid, or the entity does not exist", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<ProjectIn>,
) -> ApiResult<(StatusCode, Json<ProjectOut>)> {
    // The entity is a field of the body, so a missing one is a validation error of that
    // field rather than a missing resource.
    let Some(entity) = state.store.entity_by_name(&input.entity).await? else {
        return Err(ValidationError::new(
            "not_found",
            "entity",
            format!("entity {:?} not found; use your user name or the name of one of your teams", input.entity),
        )
        .into());
    };
    caller.require(&state, &entity, Role::Member).await?;

    let project = state.store.create_project(entity.id, &input.name).await?;

    tracing::info!(project.id = %project.id, entity.id = %entity.id, by = %caller.user.id, "project created");
    Ok((StatusCode::CREATED, Json(project.into())))
}

/// Lists the projects of the entities the caller may read.
#[utoipa::path(
    get, path = "/projects", tag = "projects", operation_id = "list_projects",
    params(ProjectListQuery),
    responses(
        (status = 200, description = "Projects by entity and name", body = ProjectListOut),
        (status = 400, description = "The query string is invalid", body = ErrorBody),
        (status = 403, description = "The caller is not a member of the entity", body = ErrorBody),
        (status = 404, description = "No such entity", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ProjectListQuery>,
) -> ApiResult<Json<ProjectListOut>> {
    let projects = match query.entity {
        Some(name) => {
            let entity = entity_by_name(&state, &name).await?;
            caller.require(&state, &entity, Role::Viewer).await?;
            state.store.list_projects(Some(entity.id)).await?
        }
        None => {
            let readable = Readable::load(&state, &caller).await?;
            let mut projects = state.store.list_projects(None).await?;
            projects.retain(|project| readable.contains(project.entity_id));
            projects
        }
    };
    Ok(Json(ProjectListOut { items: projects.into_iter().map(ProjectOut::from).collect() }))
}

/// Returns a project.
#[utoipa::path(
    get, path = "/projects/{entity}/{project}", tag = "projects", operation_id = "get_project",
    params(
        ("entity" = String, Path, description = "The owning entity's name"),
        ("project" = String, Path, description = "The project's name"),
    ),
    responses(
        (status = 200, description = "The project", body = ProjectOut),
        (status = 403, description = "The caller is not a member of the entity", body = ErrorBody),
        (status = 404, description = "No such entity or project", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((entity_name, project_name)): ApiPath<(String, String)>,
) -> ApiResult<Json<ProjectOut>> {
    let entity = entity_by_name(&state, &entity_name).await?;
    caller.require(&state, &entity, Role::Viewer).await?;
    let project = project_by_name(&state, &entity, &project_name).await?;
    Ok(Json(project.into()))
}

/// Splits `ENTITY/PROJECT`, as query parameters and CLI arguments write a project.
pub fn split_project_path(text: &str, field: &str) -> Result<(String, String), ApiError> {
    let Some((entity, project)) = text.split_once('/') else {
        return Err(ValidationError::invalid(
            field,
            format!("invalid project {text:?}; write it as ENTITY/PROJECT, such as \"ml/demo\""),
        )
        .into());
    };
    validate_entity_name(field, entity)?;
    validate_project_name(field, project)?;
    Ok((entity.to_owned(), project.to_owned()))
}

/// Builds the routes of this module.
pub fn routes() -> ApiRoutes {
    ApiRoutes::new().add(Verb::Post, "/projects", create).add(Verb::Get, "/projects", list).add(
        Verb::Get,
        "/projects/{entity}/{project}",
        get,
    )
}
