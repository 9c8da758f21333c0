//! Teams and their members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::ValidationError;
use herald_core::document::ObjectReader;
use herald_core::ids::{EntityId, UserId};
use herald_core::model::Role;
use herald_core::names::validate_entity_name;
use herald_core::timestamp::Timestamp;
use herald_store::{Entity, Member};
use serde::Serialize;
use utoipa::ToSchema;

use super::access::team_by_name;
use super::body::{ApiPath, Body, ReadBody};
use super::openapi::RoleName;
use super::{ApiRoutes, Verb};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// A team.
#[derive(Serialize, ToSchema)]
pub struct TeamOut {
    /// The team's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: EntityId,
    /// The team's name, unique across users and teams.
    pub name: String,
    /// When the team was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<Entity> for TeamOut {
    fn from(team: Entity) -> Self {
        Self { id: team.id, name: team.name, created_at: team.created_at }
    }
}

/// A team with its members.
#[derive(Serialize, ToSchema)]
pub struct TeamDetailOut {
    /// The team's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: EntityId,
    /// The team's name.
    pub name: String,
    /// When the team was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The members by name.
    pub members: Vec<MemberOut>,
}

/// A team to create.
#[derive(ToSchema)]
pub struct TeamIn {
    /// The name: 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or
    /// digit, not taken by a user or a team.
    pub name: String,
}

impl ReadBody for TeamIn {
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError> {
        body.reject_unknown(&["name"], &[])?;
        let name = body.required_string("name")?;
        validate_entity_name("name", name)?;
        Ok(Self { name: name.to_owned() })
    }
}

/// The list of teams.
#[derive(Serialize, ToSchema)]
pub struct TeamListOut {
    /// Teams by name.
    pub items: Vec<TeamOut>,
}

/// A member of a team.
#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    /// The member's user id.
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    /// The member's user name.
    pub user: String,
    /// The member's role.
    #[schema(value_type = RoleName)]
    pub role: Role,
}

impl From<Member> for MemberOut {
    fn from(member: Member) -> Self {
        Self { user_id: member.user_id, user: member.user_name, role: member.role }
    }
}

/// The list of a team's members.
#[derive(Serialize, ToSchema)]
pub struct MemberListOut {
    /// Members by name.
    pub items: Vec<MemberOut>,
}

/// A member's new role.
#[derive(ToSchema)]
pub struct MemberIn {
    /// The role.
    #[schema(value_type = RoleName)]
    pub role: Role,
}

impl ReadBody for MemberIn {
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError> {
        body.reject_unknown(&["role"], &[])?;
        let text = body.required_string("role")?;
        let role = Role::parse(text).ok_or_else(|| {
            ValidationError::invalid("role", format!("invalid role {text:?}; use \"viewer\", \"member\" or \"admin\""))
        })?;
        Ok(Self { role })
    }
}

/// Creates a team. Any user may, and the creator becomes its first admin.
#[utoipa::path(
    post, path = "/teams", tag = "teams", operation_id = "create_team",
    request_body = TeamIn,
    responses(
        (status = 201, description = "The new team", body = TeamOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 409, description = "The name is taken by a user or a team", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<TeamIn>,
) -> ApiResult<(StatusCode, Json<TeamOut>)> {
    let team = state.store.create_team(&input.name, caller.user.id).await?;
    tracing::info!(team.id = %team.id, team.name = %team.name, by = %caller.user.id, "team created");
    Ok((StatusCode::CREATED, Json(team.into())))
}

/// Lists the caller's teams, or every team for organization admins.
#[utoipa::path(
    get, path = "/teams", tag = "teams", operation_id = "list_teams",
    responses((status = 200, description = "Teams by name", body = TeamListOut)),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TeamListOut>> {
    let member = if caller.user.is_org_admin { None } else { Some(caller.user.id) };
    let teams = state.store.list_teams(member).await?;
    Ok(Json(TeamListOut { items: teams.into_iter().map(TeamOut::from).collect() }))
}

/// Returns a team with its members.
#[utoipa::path(
    get, path = "/teams/{team}", tag = "teams", operation_id = "get_team",
    params(("team" = String, Path, description = "The team's name")),
    responses(
        (status = 200, description = "The team", body = TeamDetailOut),
        (status = 403, description = "The caller is not a member", body = ErrorBody),
        (status = 404, description = "No such team", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TeamDetailOut>> {
    let team = team_by_name(&state, &name).await?;
    caller.require(&state, &team, Role::Viewer).await?;
    let members = state.store.list_members(team.id).await?;
    Ok(Json(TeamDetailOut {
        id: team.id,
        name: team.name,
        created_at: team.created_at,
        members: members.into_iter().map(MemberOut::from).collect(),
    }))
}

/// Lists a team's members.
#[utoipa::path(
    get, path = "/teams/{team}/members", tag = "teams", operation_id = "list_team_members",
    params(("team" = String, Path, description = "The team's name")),
    responses(
        (status = 200, description = "Members by name", body = MemberListOut),
        (status = 403, description = "The caller is not a member", body = ErrorBody),
        (status = 404, description = "No such team", body = ErrorBody),
    ),
)]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<MemberListOut>> {
    let team = team_by_name(&state, &name).await?;
    caller.require(&state, &team, Role::Viewer).await?;
    let members = state.store.list_members(team.id).await?;
    Ok(Json(MemberListOut { items: members.into_iter().map(MemberOut::from).collect() }))
}

/// Adds a user to a team or changes the user's role. Team admins may.
#[utoipa::path(
    put, path = "/teams/{team}/members/{user}", tag = "teams", operation_id = "put_team_member",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("user" = String, Path, description = "The user's name"),
    ),
    request_body = MemberIn,
    responses(
        (status = 200, description = "The membership", body = MemberOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "The caller is not a team admin", body = ErrorBody),
        (status = 404, description = "No such team or user", body = ErrorBody),
        (status = 409, description = "The change would leave the team without an admin", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
)]
pub async fn put_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((team_name, user_name)): ApiPath<(String, String)>,
    Body(input): Body<MemberIn>,
) -> ApiResult<Json<MemberOut>> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Admin).await?;
    let user = state.store.user_by_name(&user_name).await?.ok_or_else(|| {
        ApiError::not_found(format!("user {user_name:?} not found; an organization admin creates users"))
    })?;

    state.store.set_membership(team.id, user.id, input.role).await?;

    tracing::info!(team.id = %team.id, user.id = %user.id, role = %input.role, by = %caller.user.id, "membership set");
    Ok(Json(MemberOut { user_id: user.id, user: user.name, role: input.role }))
}

/// Removes a user from a team. Team admins may.
#[utoipa::path(
    delete, path = "/teams/{team}/members/{user}", tag = "teams", operation_id = "delete_team_member",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("user" = String, Path, description = "The user's name"),
    ),
    responses(
        (status = 204, description = "The user is no longer a member"),
        (status = 403, description = "The caller is not a team admin", body = ErrorBody),
        (status = 404, description = "No such team, user or membership", body = ErrorBody),
        (status = 409, description = "The user is the team's only admin", body = ErrorBody),
    ),
)]
pub async fn delete_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((team_name, user_name)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Admin).await?;
    let user = state.store.user_by_name(&user_name).await?;
    let Some(user) = user else {
        return Err(ApiError::not_found(format!("user {user_name:?} not found")));
    };

    state.store.remove_membership(team.id, user.id).await.map_err(|error| match error {
        herald_store::StoreError::NotFound(_) => {
            ApiError::not_found(format!("user {user_name:?} is not a member of team {team_name:?}"))
        }
        other => other.into(),
    })?;

    tracing::info!(team.id = %team.id, user.id = %user.id, by = %caller.user.id, "membership removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Builds the routes of this module.
pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .add(Verb::Post, "/teams", create)
        .add(Verb::Get, "/teams", list)
        .add(Verb::Get, "/teams/{team}", get)
        .add(Verb::Get, "/teams/{team}/members", list_members)
        .add(Verb::Put, "/teams/{team}/members/{user}", put_member)
        .add(Verb::Delete, "/teams/{team}/members/{user}", delete_member)
}
