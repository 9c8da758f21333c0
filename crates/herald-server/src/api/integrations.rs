//! Webhook integrations of a team.
//!
//! An integration names its secrets, but the store keeps their ids, so deleting and re-creating
//! a secret of the same name never silently re-binds an integration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::ValidationError;
use herald_core::document::ObjectReader;
use herald_core::ids::{EntityId, IntegrationId, SecretId};
use herald_core::model::Role;
use herald_core::names::validate_integration_name;
use herald_core::timestamp::Timestamp;
use herald_store::{Entity, Integration, NewIntegration};
use serde::Serialize;
use url::Url;
use utoipa::ToSchema;

use super::access::team_by_name;
use super::body::{ApiPath, Body, ReadBody};
use super::{ApiRoutes, Verb};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// The only integration type so far.
const WEBHOOK: &str = "webhook";

/// A webhook integration.
#[derive(Serialize, ToSchema)]
pub struct IntegrationOut {
    /// The integration's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: IntegrationId,
    /// The integration type: `webhook`.
    #[serde(rename = "type")]
    #[schema(rename = "type", example = "webhook")]
    pub kind: String,
    /// The owning team's name.
    pub team: String,
    /// The name, unique inside the team.
    pub name: String,
    /// The URL that deliveries POST to.
    pub url: String,
    /// The name of the secret sent as `Authorization: Bearer`, if any.
    pub access_token_secret: Option<String>,
    /// The name of the secret that signs deliveries, if any.
    pub signing_secret: Option<String>,
    /// When the integration was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// A webhook integration to create.
#[derive(ToSchema)]
pub struct IntegrationIn {
    /// The integration type: `webhook`.
    #[schema(rename = "type", example = "webhook")]
    pub kind: String,
    /// The name: words of letters, digits, `_` or `-` separated by single spaces, at most
    /// 64 characters.
    pub name: String,
    /// An http or https URL. Addresses that are not public are rejected unless the
    /// operator allows their network.
    pub url: String,
    /// The name of a team secret to send as `Authorization: Bearer`.
    pub access_token_secret: Option<String>,
    /// The name of a team secret that signs deliveries.
    pub signing_secret: Option<String>,
}

impl ReadBody for IntegrationIn {
    fn read(body: &ObjectReader<'_>) -> Result<Self, ValidationError> {
        body.reject_unknown(&["type", "name", "url", "access_token_secret", "signing_secret"], &[])?;

        let kind = body.required_string("type")?;
        if kind != WEBHOOK {
            return Err(ValidationError::invalid(
                "type",
                format!("unsupported integration type {kind:?}; use \"{WEBHOOK}\""),
            ));
        }
        let name = body.required_string("name")?;
        validate_integration_name("name", name)?;

        Ok(Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            url: body.required_string("url")?.to_owned(),
            access_token_secret: body.optional_string("access_token_secret")?.map(str::to_owned),
            signing_secret: body.optional_string("signing_secret")?.map(str::to_owned),
        })
    }
}

/// The list of a team's integrations.
#[derive(Serialize, ToSchema)]
pub struct IntegrationListOut {
    /// Integrations by name.
    pub items: Vec<IntegrationOut>,
}

/// Creates a webhook integration. Team admins may.
#[utoipa::path(
    post, path = "/teams/{team}/integrations", tag = "integrations", operation_id = "create_integration",
    params(("team" = String, Path, description = "The team's name")),
    request_body = IntegrationIn,
    responses(
        (status = 201, description = "The new integration", body = IntegrationOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "The caller is not a team admin", body = ErrorBody),
        (status = 404, description = "No such team", body = ErrorBody),
        (status = 409, description = "The team already has an integration so named", body = ErrorBody),
        (status = 422, description = "A field is invalid, the URL is rejected, or a named secret does not exist", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(team_name): ApiPath<String>,
    Body(input): Body<IntegrationIn>,
) -> ApiResult<(StatusCode, Json<IntegrationOut>)> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Admin).await?;

    // The normalized URL is stored, so that the dispatcher sends to exactly what was checked.
    let url = check_url(&state, &input.url)?;
    let access_token_secret_id =
        secret_id(&state, &team, "access_token_secret", input.access_token_secret.as_deref()).await?;
    let signing_secret_id = secret_id(&state, &team, "signing_secret", input.signing_secret.as_deref()).await?;

    let new_integration = NewIntegration {
        entity_id: team.id,
        name: input.name,
        url: url.to_string(),
        access_token_secret_id,
        signing_secret_id,
    };
    let integration = state.store.create_integration(new_integration).await?;

    tracing::info!(team.id = %team.id, integration.id = %integration.id, integration.kind = %input.kind, by = %caller.user.id, "integration created");
    Ok((StatusCode::CREATED, Json(integration_out(&state, &team, integration).await?)))
}

/// Checks a delivery URL with the network guard. The guard's messages quote the URL, so a
/// URL with credentials is rejected here first, with a message that leaves them out.
fn check_url(state: &AppState, text: &str) -> Result<Url, ValidationError> {
    let has_credentials = Url::parse(text).is_ok_and(|url| !url.username().is_empty() || url.password().is_some());
    if has_credentials {
        return Err(ValidationError::new(
            "invalid_url",
            "url",
            "the URL contains credentials, which are not allowed; put a token in an access-token secret instead",
        ));
    }
    state
        .settings
        .network
        .check_url(text)
        .map_err(|error| ValidationError::new("invalid_url", "url", error.to_string()))
}

/// Resolves a secret named in field `field` of the body.
async fn secret_id(state: &AppState, team: &Entity, field: &str, name: Option<&str>) -> ApiResult<Option<SecretId>> {
    let Some(name) = name else {
        return Ok(None);
    };
    match state.store.secret_by_name(team.id, name).await? {
        Some(secret) => Ok(Some(secret.id)),
        None => Err(ValidationError::new(
            "not_found",
            field,
            format!(
                "secret {name:?} not found in team {:?}; set it first with `herald secret set --team {} {name}`",
                team.name, team.name
            ),
        )
        .into()),
    }
}

/// Lists a team's integrations.
#[utoipa::path(
    get, path = "/teams/{team}/integrations", tag = "integrations", operation_id = "list_integrations",
    params(("team" = String, Path, description = "The team's name")),
    responses(
        (status = 200, description = "Integrations by name", body = IntegrationListOut),
        (status = 403, description = "The caller is not a member", body = ErrorBody),
        (status = 404, description = "No such team", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(team_name): ApiPath<String>,
) -> ApiResult<Json<IntegrationListOut>> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Viewer).await?;
    let mut items = Vec::new();
    for integration in state.store.list_integrations(team.id).await? {
        items.push(integration_out(&state, &team, integration).await?);
    }
    Ok(Json(IntegrationListOut { items }))
}

/// Returns an integration.
#[utoipa::path(
    get, path = "/teams/{team}/integrations/{name}", tag = "integrations", operation_id = "get_integration",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("name" = String, Path, description = "The integration's name"),
    ),
    responses(
        (status = 200, description = "The integration", body = IntegrationOut),
        (status = 403, description = "The caller is not a member", body = ErrorBody),
        (status = 404, description = "No such team or integration", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((team_name, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<IntegrationOut>> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Viewer).await?;
    let integration = integration_by_name(&state, &team, &name).await?;
    Ok(Json(integration_out(&state, &team, integration).await?))
}

/// Deletes an integration. Team admins may, while no automation uses it.
#[utoipa::path(
    delete, path = "/teams/{team}/integrations/{name}", tag = "integrations", operation_id = "delete_integration",
    params(
        ("team" = String, Path, description = "The team's name"),
        ("name" = String, Path, description = "The integration's name"),
    ),
    responses(
        (status = 204, description = "The integration is deleted"),
        (status = 403, description = "The caller is not a team admin", body = ErrorBody),
        (status = 404, description = "No such team or integration", body = ErrorBody),
        (status = 409, description = "An automation uses the integration (code `in_use`)", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((team_name, name)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let team = team_by_name(&state, &team_name).await?;
    caller.require(&state, &team, Role::Admin).await?;
    let integration = integration_by_name(&state, &team, &name).await?;
    state.store.delete_integration(integration.id).await?;
    tracing::info!(team.id = %team.id, integration.id = %integration.id, by = %caller.user.id, "integration deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn integration_by_name(state: &AppState, team: &Entity, name: &str) -> ApiResult<Integration> {
    state
        .store
        .integration_by_name(team.id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("integration {name:?} not found in team {:?}", team.name)))
}

/// Builds the output, naming the secrets the integration refers to by id.
async fn integration_out(state: &AppState, team: &Entity, integration: Integration) -> ApiResult<IntegrationOut> {
    Ok(IntegrationOut {
        id: integration.id,
        kind: WEBHOOK.to_owned(),
        team: team.name.clone(),
        name: integration.name,
        url: integration.url,
        access_token_secret: secret_name(state, team.id, integration.access_token_secret_id).await?,
        signing_secret: secret_name(state, team.id, integration.signing_secret_id).await?,
        created_at: integration.created_at,
    })
}

async fn secret_name(state: &AppState, team: EntityId, id: Option<SecretId>) -> ApiResult<Option<String>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let secret = state.store.secret(id).await?.filter(|secret| secret.entity_id == team);
    Ok(secret.map(|secret| secret.name))
}

/// Builds the routes of this module.
pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .add(Verb::Post, "/teams/{team}/integrations", create)
        .add(Verb::Get, "/teams/{team}/integrations", list)
        .add(Verb::Get, "/teams/{team}/integrations/{name}", get)
        .add(Verb::Delete, "/teams/{team}/integrations/{name}", delete)
}
