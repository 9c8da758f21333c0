//! Automations: documents that name a project scope, an event with its filters, and an
//! action.
//!
//! Documents are parsed by `herald_core::automation::AutomationDraft::parse`, which names
//! the rejected field. The handlers resolve the scope's entity and project and the action's
//! integration by name, and the store keeps their ids. The output document is valid input:
//! the parser ignores `id`, `revision`, `created_at` and `updated_at`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::ValidationError;
use herald_core::automation::{ActionDraft, ActionSpec, AutomationDraft, AutomationSpec};
use herald_core::ids::{AutomationId, IntegrationId, ProjectId};
use herald_core::model::{EntityKind, Role};
use herald_core::timestamp::Timestamp;
use herald_store::{Automation, AutomationFilter, Entity, NewAutomation, Project};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::access::{Readable, entity_by_name, project_by_name};
use super::body::{ApiPath, ApiQuery, JsonDocument, parse_id};
use super::projects::split_project_path;
use super::{ApiRoutes, Verb};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// An automation with its current revision, in the document form that input also takes.
#[derive(Serialize, ToSchema)]
pub struct AutomationOut {
    /// The automation's id, which stays the same across revisions.
    #[schema(value_type = String, format = Uuid)]
    pub id: AutomationId,
    /// The name, unique within the project.
    pub name: String,
    /// Free text shown in lists.
    pub description: Option<String>,
    /// The project the automation watches.
    pub scope: AutomationScope,
    /// The event type and its filters.
    #[schema(value_type = AutomationEvent)]
    pub event: Value,
    /// The action, naming its integration.
    #[schema(value_type = AutomationAction)]
    pub action: Value,
    /// Whether the automation fires.
    pub enabled: bool,
    /// Minimum time between two firings for the same run, in seconds.
    pub cooldown_seconds: u64,
    /// The current revision, starting at 1. Every update adds one.
    pub revision: i64,
    /// When the automation was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the automation last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// An automation document, as `POST /automations` and `PUT /automations/{id}` read it.
/// The fields `id`, `revision`, `created_at`, `updated_at` and `created_by` of the output
/// are accepted and ignored.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the document for OpenAPI; AutomationDraft::parse reads it")]
pub struct AutomationIn {
    /// The name: 1 to 255 characters, no control characters or surrounding spaces, not
    /// shaped like a UUID. Unique within the project.
    pub name: String,
    /// Free text of at most 4000 characters.
    pub description: Option<String>,
    /// The project the automation watches. The project must exist.
    pub scope: AutomationScope,
    /// The event type and its filters.
    pub event: AutomationEvent,
    /// The action.
    pub action: AutomationAction,
    /// Whether the automation fires. True when absent.
    pub enabled: Option<bool>,
    /// Minimum time between two firings for the same run, in seconds, from 0 to 31536000.
    /// 86400 (24 hours) when absent.
    pub cooldown_seconds: Option<u64>,
}

/// The scope of an automation: one project.
#[derive(Serialize, ToSchema)]
pub struct AutomationScope {
    /// The scope type: `PROJECT`.
    #[serde(rename = "type")]
    #[schema(rename = "type", example = "PROJECT")]
    pub kind: &'static str,
    /// The entity (user or team) that owns the project.
    pub entity: String,
    /// The project's name.
    pub project: String,
}

/// The event of an automation.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the document for OpenAPI; AutomationDraft::parse reads it")]
pub struct AutomationEvent {
    /// The event type: `RUN_METRIC`.
    #[schema(rename = "type", example = "RUN_METRIC")]
    pub kind: String,
    /// A Mongo-style filter on run fields (`$and $or $nor $not $eq $ne $gt $gte $lt $lte
    /// $in $nin $exists $regex $contains`), as an object or as a string that contains one. Absent
    /// or empty matches every run.
    #[schema(value_type = Option<Object>)]
    pub run_filter: Option<Value>,
    /// The threshold condition on a logged metric.
    pub threshold_filter: ThresholdFilterDocument,
}

/// `agg_op(last window_size values of name) cmp_op threshold`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the document for OpenAPI; AutomationDraft::parse reads it")]
pub struct ThresholdFilterDocument {
    /// The metric's key in the run history, such as `loss`: at most 512 characters, without
    /// control characters.
    pub name: String,
    /// `MIN`, `MAX` or `AVERAGE`. Absent or null means the latest value.
    #[schema(example = "AVERAGE")]
    pub agg_op: Option<String>,
    /// How many logged values the window contains, from 1 to 1000. 1 when absent.
    pub window_size: Option<u32>,
    /// `$gt`, `$gte`, `$lt` or `$lte`.
    #[schema(example = "$lt")]
    pub cmp_op: String,
    /// The finite number to compare with.
    pub threshold: f64,
}

/// The action of an automation.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the document for OpenAPI; AutomationDraft::parse reads it")]
pub struct AutomationAction {
    /// `GENERIC_WEBHOOK` or `NO_OP`.
    #[schema(rename = "type", example = "GENERIC_WEBHOOK")]
    pub kind: String,
    /// For `GENERIC_WEBHOOK`: the name of a webhook integration of the scope's team.
    pub integration: Option<String>,
    /// For `GENERIC_WEBHOOK`, the JSON payload template: an object or an array, or a string
    /// that contains one. Its strings may contain `${variable}`, at most 100 references in all,
    /// and its compact JSON is at most 64 KiB. Absent sends the default payload.
    #[schema(value_type = Option<Object>)]
    pub request_payload: Option<Value>,
}

/// The list of automations.
#[derive(Serialize, ToSchema)]
pub struct AutomationListOut {
    /// Automations by entity, project and name.
    pub items: Vec<AutomationOut>,
}

/// Filters of the automation list. Unset filters do not filter.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AutomationListQuery {
    /// Only automations of projects owned by this entity.
    pub entity: Option<String>,
    /// Only automations of this project, written `ENTITY/PROJECT`.
    pub project: Option<String>,
    /// Only automations with this name.
    pub name: Option<String>,
}

/// Creates an automation. Members of the scope's entity may.
#[utoipa::path(
    post, path = "/automations", tag = "automations", operation_id = "create_automation",
    request_body = AutomationIn,
    responses(
        (status = 201, description = "The new automation, revision 1", body = AutomationOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "The caller is not a member of the scope's entity", body = ErrorBody),
        (status = 409, description = "The project already has an automation so named", body = ErrorBody),
        (status = 422, description = "The document is invalid, or names a project or integration that does not exist; `field` names the field", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonDocument(document): JsonDocument,
) -> ApiResult<(StatusCode, Json<AutomationOut>)> {
    let draft = AutomationDraft::parse(&document)?;
    let enabled = draft.enabled;
    let (project, spec) = resolve(&state, &caller, draft).await?;

    let new_automation = NewAutomation { project_id: project.id, spec, enabled, created_by: caller.user.id };
    let automation = state.store.create_automation(new_automation).await?;

    tracing::info!(automation.id = %automation.id, project.id = %project.id, by = %caller.user.id, "automation created");
    let output = Lookup::new(&state).automation_out(automation).await?;
    Ok((StatusCode::CREATED, Json(output)))
}

/// Lists automations of the entities the caller may read.
#[utoipa::path(
    get, path = "/automations", tag = "automations", operation_id = "list_automations",
    params(AutomationListQuery),
    responses(
        (status = 200, description = "Automations by entity, project and name", body = AutomationListOut),
        (status = 400, description = "The query string is invalid", body = ErrorBody),
        (status = 403, description = "The caller is not a member of the named entity", body = ErrorBody),
        (status = 404, description = "No such entity or project", body = ErrorBody),
        (status = 422, description = "`project` is not written `ENTITY/PROJECT`", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AutomationListQuery>,
) -> ApiResult<Json<AutomationListOut>> {
    let mut filter = AutomationFilter { name: query.name, ..AutomationFilter::default() };
    if let Some(text) = &query.project {
        let (entity_name, project_name) = split_project_path(text, "project")?;
        let entity = entity_by_name(&state, &entity_name).await?;
        caller.require(&state, &entity, Role::Viewer).await?;
        filter.project_id = Some(project_by_name(&state, &entity, &project_name).await?.id);
    }
    if let Some(entity_name) = &query.entity {
        let entity = entity_by_name(&state, entity_name).await?;
        caller.require(&state, &entity, Role::Viewer).await?;
        filter.entity_id = Some(entity.id);
    }

    let readable = Readable::load(&state, &caller).await?;
    let mut lookup = Lookup::new(&state);
    let mut items = Vec::new();
    for automation in state.store.list_automations(filter).await? {
        let project = lookup.project(automation.project_id).await?;
        if readable.contains(project.entity_id) {
            items.push(lookup.automation_out(automation).await?);
        }
    }
    Ok(Json(AutomationListOut { items }))
}

/// Returns an automation.
#[utoipa::path(
    get, path = "/automations/{id}", tag = "automations", operation_id = "get_automation",
    params(("id" = String, Path, format = Uuid, description = "The automation's id")),
    responses(
        (status = 200, description = "The automation", body = AutomationOut),
        (status = 403, description = "The caller is not a member of the automation's entity", body = ErrorBody),
        (status = 404, description = "No such automation", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AutomationOut>> {
    let automation = load(&state, &caller, &id, Role::Viewer).await?;
    Ok(Json(Lookup::new(&state).automation_out(automation).await?))
}

/// Replaces an automation's document, which stores a new revision. The document may move
/// the automation to another project. Members of both entities may.
#[utoipa::path(
    put, path = "/automations/{id}", tag = "automations", operation_id = "update_automation",
    params(("id" = String, Path, format = Uuid, description = "The automation's id")),
    request_body = AutomationIn,
    responses(
        (status = 200, description = "The automation with its new revision", body = AutomationOut),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "The caller is not a member of the old or the new entity", body = ErrorBody),
        (status = 404, description = "No such automation", body = ErrorBody),
        (status = 409, description = "The target project already has another automation so named", body = ErrorBody),
        (status = 422, description = "The document is invalid, or names a project or integration that does not exist; `field` names the field", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonDocument(document): JsonDocument,
) -> ApiResult<Json<AutomationOut>> {
    let current = load(&state, &caller, &id, Role::Member).await?;
    let draft = AutomationDraft::parse(&document)?;
    let enabled = draft.enabled;
    let (project, spec) = resolve(&state, &caller, draft).await?;

    let automation = state.store.update_automation(current.id, project.id, spec, enabled, caller.user.id).await?;

    tracing::info!(automation.id = %automation.id, revision = automation.revision, by = %caller.user.id, "automation updated");
    Ok(Json(Lookup::new(&state).automation_out(automation).await?))
}

/// Enables an automation without a new revision. Members may.
#[utoipa::path(
    post, path = "/automations/{id}/enable", tag = "automations", operation_id = "enable_automation",
    params(("id" = String, Path, format = Uuid, description = "The automation's id")),
    responses(
        (status = 200, description = "The enabled automation", body = AutomationOut),
        (status = 403, description = "The caller is not a member of the automation's entity", body = ErrorBody),
        (status = 404, description = "No such automation", body = ErrorBody),
    ),
)]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AutomationOut>> {
    set_enabled(&state, &caller, &id, true).await
}

/// Disables an automation without a new revision. Members may.
#[utoipa::path(
    post, path = "/automations/{id}/disable", tag = "automations", operation_id = "disable_automation",
    params(("id" = String, Path, format = Uuid, description = "The automation's id")),
    responses(
        (status = 200, description = "The disabled automation", body = AutomationOut),
        (status = 403, description = "The caller is not a member of the automation's entity", body = ErrorBody),
        (status = 404, description = "No such automation", body = ErrorBody),
    ),
)]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AutomationOut>> {
    set_enabled(&state, &caller, &id, false).await
}

async fn set_enabled(state: &AppState, caller: &Caller, id: &str, enabled: bool) -> ApiResult<Json<AutomationOut>> {
    let current = load(state, caller, id, Role::Member).await?;
    let automation = state.store.set_automation_enabled(current.id, enabled).await?;
    tracing::info!(automation.id = %automation.id, enabled, by = %caller.user.id, "automation enabled flag set");
    Ok(Json(Lookup::new(state).automation_out(automation).await?))
}

/// Deletes an automation. Its executions stay in the history, readable by the automation's id
/// at `/automations/{id}/executions`. Members may.
#[utoipa::path(
    delete, path = "/automations/{id}", tag = "automations", operation_id = "delete_automation",
    params(("id" = String, Path, format = Uuid, description = "The automation's id")),
    responses(
        (status = 204, description = "The automation is deleted"),
        (status = 403, description = "The caller is not a member of the automation's entity", body = ErrorBody),
        (status = 404, description = "No such automation", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let automation = load(&state, &caller, &id, Role::Member).await?;
    state.store.delete_automation(automation.id).await?;
    tracing::info!(automation.id = %automation.id, by = %caller.user.id, "automation deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Loads the automation with id `id_text` and checks that the caller has at least
/// `needed` in its entity.
pub async fn load(state: &AppState, caller: &Caller, id_text: &str, needed: Role) -> ApiResult<Automation> {
    let id: AutomationId = parse_id(id_text, "automation")?;
    let automation = state.store.automation(id).await?;
    let Some(automation) = automation else {
        return Err(ApiError::not_found(format!("automation {id} not found")));
    };
    require_access(state, caller, &automation, needed).await?;
    Ok(automation)
}

/// Checks that the caller has at least `needed` in the entity of the automation's project.
pub async fn require_access(state: &AppState, caller: &Caller, automation: &Automation, needed: Role) -> ApiResult<()> {
    require_project_access(state, caller, automation.project_id, needed).await
}

/// Checks that the caller has at least `needed` in the entity that owns a stored project.
pub async fn require_project_access(
    state: &AppState,
    caller: &Caller,
    project: ProjectId,
    needed: Role,
) -> ApiResult<()> {
    let entity = entity_of_project(state, project).await?;
    caller.require(state, &entity, needed).await?;
    Ok(())
}

/// Returns the entity that owns a stored project. Both must exist, so a miss is a fault
/// of the store.
async fn entity_of_project(state: &AppState, project: ProjectId) -> ApiResult<Entity> {
    let Some(project) = state.store.project(project).await? else {
        return Err(ApiError::internal(format!("project {project} of a stored automation is missing")));
    };
    match state.store.entity_by_name(&project.entity_name).await? {
        Some(entity) => Ok(entity),
        None => Err(ApiError::internal(format!("entity {} of project {} is missing", project.entity_id, project.id))),
    }
}

/// Resolves the names of a draft into the project and the stored spec, checking that the
/// caller is a member of the scope's entity. The project is created when it does not exist.
/// A name that does not resolve is a 422 that names the document field, because the document
/// is what the caller has to fix.
async fn resolve(state: &AppState, caller: &Caller, draft: AutomationDraft) -> ApiResult<(Project, AutomationSpec)> {
    let scope = draft.scope;
    let Some(entity) = state.store.entity_by_name(&scope.entity).await? else {
        return Err(ValidationError::new(
            "not_found",
            "scope.entity",
            format!("entity {:?} not found; use your user name or the name of one of your teams", scope.entity),
        )
        .into());
    };
    caller.require(state, &entity, Role::Member).await?;

    herald_core::names::validate_project_name("scope.project", &scope.project)?;

    let action = match draft.action {
        ActionDraft::NoOp => ActionSpec::NoOp,
        ActionDraft::GenericWebhook { integration, payload } => {
            let Some(found) = state.store.integration_by_name(entity.id, &integration).await? else {
                return Err(integration_not_found(&entity, &integration).into());
            };
            ActionSpec::GenericWebhook { integration_id: found.id, payload }
        }
    };

    // As `wandb.init` does, a project is created on first use, but only once the whole
    // document is valid, so that a rejected document changes nothing.
    let project = state.store.ensure_project(entity.id, &scope.project).await?;

    let spec = AutomationSpec {
        name: draft.name,
        description: draft.description,
        event: draft.event,
        action,
        cooldown_seconds: draft.cooldown_seconds,
    };
    Ok((project, spec))
}

/// Builds the error for an action's integration that the scope's entity does not have. Only
/// teams have integrations, so for a user's personal entity the fix is another scope, not a
/// new integration.
fn integration_not_found(entity: &Entity, integration: &str) -> ValidationError {
    let detail = match entity.kind {
        EntityKind::Team => format!(
            "integration {integration:?} not found in team {:?}; create it with `herald integration webhook create \
             --team {} --name {integration:?} --url URL`",
            entity.name, entity.name
        ),
        EntityKind::User => format!(
            "integration {integration:?} not found: {:?} is a user's personal entity, and integrations belong to \
             teams; use a project of a team as the scope, or a NO_OP action",
            entity.name
        ),
    };
    ValidationError::new("not_found", "action.integration", detail)
}

/// Names of projects and integrations, loaded once per request while building outputs.
pub struct Lookup<'a> {
    state: &'a AppState,
    projects: HashMap<ProjectId, Project>,
    integrations: HashMap<IntegrationId, Option<String>>,
}

impl<'a> Lookup<'a> {
    /// Starts with nothing loaded.
    pub fn new(state: &'a AppState) -> Self {
        Self { state, projects: HashMap::new(), integrations: HashMap::new() }
    }

    /// Returns a stored project.
    pub async fn project(&mut self, id: ProjectId) -> ApiResult<Project> {
        if let Some(project) = self.projects.get(&id) {
            return Ok(project.clone());
        }
        let Some(project) = self.state.store.project(id).await? else {
            return Err(ApiError::internal(format!("project {id} of a stored automation is missing")));
        };
        self.projects.insert(id, project.clone());
        Ok(project)
    }

    /// Returns an integration's current name, or `None` once it is deleted.
    pub async fn integration_name(&mut self, id: IntegrationId) -> ApiResult<Option<String>> {
        if let Some(name) = self.integrations.get(&id) {
            return Ok(name.clone());
        }
        let name = self.state.store.integration(id).await?.map(|integration| integration.name);
        self.integrations.insert(id, name.clone());
        Ok(name)
    }

    /// Builds the output document of an automation.
    pub async fn automation_out(&mut self, automation: Automation) -> ApiResult<AutomationOut> {
        let project = self.project(automation.project_id).await?;
        let integration_name = match automation.spec.action.integration_id() {
            Some(id) => self.integration_name(id).await?,
            None => None,
        };
        let spec = automation.spec;
        Ok(AutomationOut {
            id: automation.id,
            name: spec.name,
            description: spec.description,
            scope: AutomationScope { kind: "PROJECT", entity: project.entity_name, project: project.name },
            event: spec.event.to_document(),
            action: spec.action.to_document(integration_name.as_deref()),
            enabled: automation.enabled,
            cooldown_seconds: spec.cooldown_seconds,
            revision: automation.revision,
            created_at: automation.created_at,
            updated_at: automation.updated_at,
        })
    }
}

/// Builds the routes of this module.
pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .add(Verb::Post, "/automations", create)
        .add(Verb::Get, "/automations", list)
        .add(Verb::Get, "/automations/{id}", get)
        .add(Verb::Put, "/automations/{id}", update)
        .add(Verb::Post, "/automations/{id}/enable", enable)
        .add(Verb::Post, "/automations/{id}/disable", disable)
        .add(Verb::Delete, "/automations/{id}", delete)
}
