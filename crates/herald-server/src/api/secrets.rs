//! Team secrets, which are write-only.
//!
//! A value is sealed with the server's secret key before it reaches the store, and no
//! response, log line or error message contains it: errors about the `value` field
//! describe the problem without quoting the value.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::ValidationError;
use herald_core::document::ObjectReader;
use herald_core::model::Role;
use herald_core::names::validate_secret_name;
use herald_core::timestamp::Timestamp;
use herald_store::{PutOutcome, SecretMeta};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::access::team_by_name;
use super::body::{ApiPath, Body, ReadBody};
use super::{ApiRoutes, Verb};
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Maximum size of a secret value, in bytes. Tokens and signing keys are far smaller, and the limit
/// keeps a mistaken upload of a file out of the store.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// A secret's name and times. The value is never returned.
#[derive(Serialize, ToSchema)]
pub struct SecretOut {
    /// The secret's name.
    pub name: String,
    /// When the secret was first set.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the value last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<SecretMeta> for SecretOut {
    fn from(secret: SecretMeta) -> Self {
        Self { name: secret.name, created_at: secret.created_at, updated_at: secret.updated_at }
    }
}

/// A secret value to store. It deliberately has no `Debug`, so it cannot be logged.
#[derive(ToSchema)]
pub struct SecretIn {
    /// The value: a non-empty string of at most 16 KiB.
    #[schema(format = Password)]
    pub value: String,
}

impl ReadBody for SecretIn {
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError> {
        body.reject_unknown(&["value"], &[])?;

        // ObjectReader's errors quote the rejected value, so the value is checked here
        // with messages that describe it without showing it.
        let value = match body.optional("value") {
            None => return Err(ValidationError::missing("value")),
            Some(Value::String(text)) => text,
            Some(_) => {
                return Err(ValidationError::invalid("value", "value must be a JSON string; it is not shown here"));
            }
        };
        if value.is_empty() {
            return Err(ValidationError::invalid("value", "value is empty; give the secret's value"));
        }
        // An access token travels in an HTTP header, which cannot carry control characters,
        // so such a value would fail every delivery that uses it.
        if value.chars().any(char::is_control) {
            return Err(ValidationError::invalid(
                "value",
                "value contains a control character, such as a line break or a carriage return; remove it",
            ));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(ValidationError::invalid(
                "value",
                format!("value has {} bytes; the maximum is {MAX_SECRET_BYTES}", value.len()),
            ));
        }
        Ok(Self { value: value.clone() })
    }
}

/// The list of a team's secrets.
#[derive(Serialize, ToSchema)]
pub struct SecretListOut {
    /// Secrets by name, without values.
    pub items: Vec<SecretOut>,
}

/// Sets a secret's value, creating the secret if needed. Team admins may.
#[utoipa::path(
    put, path = "/teams/{team}/secrets/{name}", tag = "secrets", operation_id = "put_secret",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("name" = String, Path, description = "The secret's name: letters, digits or `_`, not starting with a digit"),
    ),
    request_body = SecretIn,
    responses(
        (status = 200, description = "The value was replaced", body = SecretOut),
        (status = 201, description = "The secret was created", body = SecretOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "The caller is not a team admin", body = ErrorBody),
        (status = 404, description = "No such team", body = ErrorBody),
        (status = 422, description = "The name or the value is invalid", body = ErrorBody),
    ),
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((team_name, name)): ApiPath<(String, String)>,
    Body(input): Body<SecretIn>,
) -> ApiResult<(StatusCode, Json<SecretOut>)> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Admin).await?;
    validate_secret_name("name", &name)?;

    let sealed = state.settings.secret_key.seal(input.value.as_bytes());
    let (secret, outcome) = state.store.put_secret(team.id, &name, sealed).await?;

    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Updated => StatusCode::OK,
    };
    tracing::info!(team.id = %team.id, secret.id = %secret.id, secret.name = %secret.name, ?outcome, by = %caller.user.id, "secret set");
    Ok((status, Json(secret.into())))
}

/// Lists a team's secrets by name, without values.
#[utoipa::path(
    get, path = "/teams/{team}/secrets", tag = "secrets", operation_id = "list_secrets",
    params(("team" = String, Path, description = "The team's name")),
    responses(
        (status = 200, description = "Secrets by name", body = SecretListOut),
        (status = 403, description = "The caller is not a member", body = ErrorBody),
        (status = 404, description = "No such team", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(team_name): ApiPath<String>,
) -> ApiResult<Json<SecretListOut>> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Viewer).await?;
    let secrets = state.store.list_secrets(team.id).await?;
    Ok(Json(SecretListOut { items: secrets.into_iter().map(SecretOut::from).collect() }))
}

/// Deletes a secret. Team admins may, while no integration uses it.
#[utoipa::path(
    delete, path = "/teams/{team}/secrets/{name}", tag = "secrets", operation_id = "delete_secret",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("name" = String, Path, description = "The secret's name"),
    ),
    responses(
        (status = 204, description = "The secret is deleted"),
        (status = 403, description = "The caller is not a team admin", body = ErrorBody),
        (status = 404, description = "No such team or secret", body = ErrorBody),
        (status = 409, description = "An integration uses the secret (code `in_use`)", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((team_name, name)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Admin).await?;
    state.store.delete_secret(team.id, &name).await?;
    tracing::info!(team.id = %team.id, secret.name = %name, by = %caller.user.id, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Builds the routes of this module.
pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .add(Verb::Put, "/teams/{team}/secrets/{name}", put)
        .add(Verb::Get, "/teams/{team}/secrets", list)
        .add(Verb::Delete, "/teams/{team}/secrets/{name}", delete)
}
