//! Users: the caller (`/viewer`), the user list, and user creation with a first API key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::ValidationError;
use herald_core::document::ObjectReader;
use herald_core::ids::UserId;
use herald_core::model::Role;
use herald_core::names::validate_entity_name;
use herald_core::timestamp::Timestamp;
use herald_store::{NewUser, User};
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{Body, ReadBody};
use super::openapi::RoleName;
use super::{ApiRoutes, Verb};
use crate::auth::{Caller, api_key_hash, generate_api_key};
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// A user.
#[derive(Serialize, ToSchema)]
pub struct UserOut {
    /// The user's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// The login name, which is also the name of the user's personal entity.
    pub name: String,
    /// Whether the user may do everything, in every team.
    pub is_org_admin: bool,
    /// When the user was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<User> for UserOut {
    fn from(user: User) -> Self {
        Self { id: user.id, name: user.name, is_org_admin: user.is_org_admin, created_at: user.created_at }
    }
}

/// A user to create.
#[derive(ToSchema)]
pub struct UserIn {
    /// The login name: 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or
    /// digit, not taken by a user or a team.
    pub name: String,
    /// Whether the user may do everything, in every team. False when absent.
    pub is_org_admin: Option<bool>,
}

impl ReadBody for UserIn {
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError> {
        body.reject_unknown(&["name", "is_org_admin"], &[])?;
        let name = body.required_string("name")?;
        validate_entity_name("name", name)?;
        let is_org_admin = body.optional_bool("is_org_admin")?;
        Ok(Self { name: name.to_owned(), is_org_admin })
    }
}

/// A new user and its API key. The key is shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct UserCreatedOut {
    /// The new user.
    pub user: UserOut,
    /// The user's API key. Herald stores only its hash, so it cannot be shown again.
    pub api_key: String,
}

/// The list of users.
#[derive(Serialize, ToSchema)]
pub struct UserListOut {
    /// Users by name.
    pub items: Vec<UserOut>,
}

/// The caller and the caller's teams.
#[derive(Serialize, ToSchema)]
pub struct ViewerOut {
    /// The caller's user id.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// The caller's name.
    pub name: String,
    /// The caller's personal entity, which has the caller's name.
    pub entity: String,
    /// Whether the caller may do everything, in every team.
    pub is_org_admin: bool,
    /// The teams the caller belongs to, by name.
    pub teams: Vec<ViewerTeamOut>,
}

/// A team of the caller, with the caller's role in it.
#[derive(Serialize, ToSchema)]
pub struct ViewerTeamOut {
    /// The team's name.
    pub name: String,
    /// The caller's role in the team.
    #[schema(value_type = RoleName)]
    pub role: Role,
}

/// Returns the caller and the caller's teams.
#[utoipa::path(
    get, path = "/viewer", tag = "users", operation_id = "get_viewer",
    responses((status = 200, description = "The caller", body = ViewerOut)),
)]
pub async fn viewer(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ViewerOut>> {
    let user = caller.user;
    let mut teams = Vec::new();
    for team in state.store.list_teams(Some(user.id)).await? {
        // The stored role, not the caller's effective one: an organization admin is an
        // admin everywhere, but this lists the memberships as they are.
        if let Some(role) = state.store.role_in(team.id, user.id).await? {
            teams.push(ViewerTeamOut { name: team.name, role });
        }
    }
    Ok(Json(ViewerOut {
        id: user.id,
        entity: user.name.clone(),
        name: user.name,
        is_org_admin: user.is_org_admin,
        teams,
    }))
}

/// Lists every user. Only organization admins may.
#[utoipa::path(
    get, path = "/users", tag = "users", operation_id = "list_users",
    responses(
        (status = 200, description = "Users by name", body = UserListOut),
        (status = 403, description = "The caller is not an organization admin", body = ErrorBody),
    ),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<UserListOut>> {
    caller.require_org_admin()?;
    let users = state.store.list_users().await?;
    Ok(Json(UserListOut { items: users.into_iter().map(UserOut::from).collect() }))
}

/// Creates a user with a new API key. Only organization admins may.
#[utoipa::path(
    post, path = "/users", tag = "users", operation_id = "create_user",
    request_body = UserIn,
    responses(
        (status = 201, description = "The user and its API key, shown only here", body = UserCreatedOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "The caller is not an organization admin", body = ErrorBody),
        (status = 409, description = "The name is taken by a user or a team", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<UserIn>,
) -> ApiResult<(StatusCode, Json<UserCreatedOut>)> {
    caller.require_org_admin()?;

    let api_key = generate_api_key();
    let new_user = NewUser {
        name: input.name,
        is_org_admin: input.is_org_admin.unwrap_or(false),
        api_key_hash: api_key_hash(&api_key),
    };
    let user = state.store.create_user(new_user).await?;

    tracing::info!(user.id = %user.id, user.name = %user.name, user.is_org_admin = user.is_org_admin, by = %caller.user.id, "user created");
    Ok((StatusCode::CREATED, Json(UserCreatedOut { user: user.into(), api_key })))
}

/// Builds the routes of this module.
pub fn routes() -> ApiRoutes {
    ApiRoutes::new().add(Verb::Get, "/viewer", viewer).add(Verb::Get, "/users", list).add(Verb::Post, "/users", create)
}
