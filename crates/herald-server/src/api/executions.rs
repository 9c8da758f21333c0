//! Executions, the history of automation firings, and their delivery attempts.

use axum::Json;
use axum::extract::State;
use herald_core::ValidationError;
use herald_core::ids::{AutomationId, ExecutionId};
use herald_core::model::{ExecutionState, Role};
use herald_core::timestamp::Timestamp;
use herald_store::{Attempt, Execution, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::automations::{Lookup, require_project_access};
use super::body::{ApiPath, ApiQuery, parse_id};
use super::openapi::ExecutionStateName;
use super::{ApiRoutes, Verb};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Page size when the request sets none.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 500;

/// One firing of an automation for one event.
#[derive(Serialize, ToSchema)]
pub struct ExecutionOut {
    /// The execution's id, which webhook receivers see as `webhook-id` on every attempt.
    #[schema(value_type = String, format = Uuid)]
    pub id: ExecutionId,
    /// The automation that fired.
    #[schema(value_type = String, format = Uuid)]
    pub automation_id: AutomationId,
    /// The automation's name when it fired.
    pub automation_name: String,
    /// The automation revision that fired.
    pub revision: i64,
    /// W&B's event type, such as `RUN_METRIC`.
    pub event_type: String,
    /// The delivery state.
    #[schema(value_type = ExecutionStateName)]
    pub state: ExecutionState,
    /// W&B's action type, such as `GENERIC_WEBHOOK` or `NO_OP`.
    pub action_type: String,
    /// The integration's current name, or null for actions without one and once it is deleted.
    pub integration: Option<String>,
    /// The template variables of the event.
    #[schema(value_type = Object)]
    pub event_data: Value,
    /// The reason a skipped execution did not act.
    pub skip_reason: Option<String>,
    /// How many delivery attempts were made.
    pub attempt_count: i64,
    /// When the next attempt is due, while the execution is pending.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last attempt.
    pub last_status_code: Option<i64>,
    /// The error of the last attempt.
    pub last_error: Option<String>,
    /// When the execution was recorded, which is the event's time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the execution last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// An execution with its delivery attempts.
#[derive(Serialize, ToSchema)]
pub struct ExecutionDetailOut {
    /// The execution.
    #[serde(flatten)]
    pub execution: ExecutionOut,
    /// The rendered request body, exactly as sent. It never contains a secret. Only this
    /// response has it, because a list of bodies of up to 1 MiB each would be too large.
    pub request_body: Option<String>,
    /// The attempts, oldest first.
    pub attempts: Vec<AttemptOut>,
}

/// One try at delivering an execution.
#[derive(Serialize, ToSchema)]
pub struct AttemptOut {
    /// 1 for the first attempt.
    pub number: i64,
    /// When the request started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// How long the attempt took, in milliseconds.
    pub duration_ms: i64,
    /// The HTTP status, when a response came back.
    pub status_code: Option<i64>,
    /// The start of the response body, with secret values redacted.
    pub response_body: Option<String>,
    /// The error, with secret values redacted.
    pub error: Option<String>,
    /// Whether the attempt delivered the execution.
    pub succeeded: bool,
}

impl From<Attempt> for AttemptOut {
    fn from(attempt: Attempt) -> Self {
        Self {
            number: attempt.number,
            started_at: attempt.started_at,
            duration_ms: attempt.duration_ms,
            status_code: attempt.status_code,
            response_body: attempt.response_body,
            error: attempt.error,
            succeeded: attempt.succeeded,
        }
    }
}

/// One page of an automation's executions.
#[derive(Serialize, ToSchema)]
pub struct ExecutionListOut {
    /// Executions, newest first.
    pub items: Vec<ExecutionOut>,
    /// The `before` value of the next page, or null on the last page.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_before: Option<ExecutionId>,
}

/// Paging of the execution list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExecutionListQuery {
    /// Return executions older than this execution id, as `next_before` gives it.
    #[param(format = Uuid)]
    pub before: Option<String>,
    /// The page size, from 1 to 500, or 50 when absent.
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// Lists an automation's executions, newest first. A deleted automation's executions stay
/// listed under its id.
#[utoipa::path(
    get, path = "/automations/{id}/executions", tag = "executions", operation_id = "list_executions",
    params(("id" = String, Path, format = Uuid, description = "The automation's id"), ExecutionListQuery),
    responses(
        (status = 200, description = "A page of executions", body = ExecutionListOut),
        (status = 400, description = "The query string is invalid", body = ErrorBody),
        (status = 403, description = "The caller is not a member of the automation's entity", body = ErrorBody),
        (status = 404, description = "No automation ever had this id", body = ErrorBody),
        (status = 422, description = "`before` or `limit` is invalid", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ExecutionListQuery>,
) -> ApiResult<Json<ExecutionListOut>> {
    let page = parse_page(&query)?;
    let automation: AutomationId = parse_id(&id, "automation")?;
    // A deleted automation's executions stay readable, so access follows the project that the
    // store keeps for it instead of requiring a live automation.
    let Some(project) = state.store.automation_project(automation).await? else {
        return Err(ApiError::not_found(format!("automation {automation} not found")));
    };
    require_project_access(&state, &caller, project, Role::Viewer).await?;

    // Reading one more row than the page size shows whether a next page exists, so the last page
    // never points at an empty one.
    let mut executions =
        state.store.list_executions(automation, Page { before: page.before, limit: page.limit + 1 }).await?;
    let next_before = if executions.len() > page.limit {
        executions.truncate(page.limit);
        executions.last().map(|execution| execution.id)
    } else {
        None
    };

    let mut lookup = Lookup::new(&state);
    let mut items = Vec::with_capacity(executions.len());
    for execution in executions {
        items.push(execution_out(&mut lookup, execution).await?);
    }
    Ok(Json(ExecutionListOut { items, next_before }))
}

fn parse_page(query: &ExecutionListQuery) -> ApiResult<Page<ExecutionId>> {
    let before = match &query.before {
        None => None,
        Some(text) => Some(text.parse::<ExecutionId>().map_err(|_| {
            ValidationError::invalid(
                "before",
                format!("invalid execution id {text:?}; pass the `next_before` of the previous page"),
            )
        })?),
    };
    let limit = match &query.limit {
        None => DEFAULT_LIMIT,
        Some(text) => text.parse::<usize>().ok().filter(|limit| (1..=MAX_LIMIT).contains(limit)).ok_or_else(|| {
            ValidationError::invalid(
                "limit",
                format!("invalid limit {text:?}; use a whole number from 1 to {MAX_LIMIT}"),
            )
        })?,
    };
    Ok(Page { before, limit })
}

/// Returns an execution with its attempts.
#[utoipa::path(
    get, path = "/executions/{id}", tag = "executions", operation_id = "get_execution",
    params(("id" = String, Path, format = Uuid, description = "The execution's id")),
    responses(
        (status = 200, description = "The execution and its attempts", body = ExecutionDetailOut),
        (status = 403, description = "The caller is not a member of the automation's entity", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id_text): ApiPath<String>,
) -> ApiResult<Json<ExecutionDetailOut>> {
    let id: ExecutionId = parse_id(&id_text, "execution")?;
    let Some(execution) = state.store.execution(id).await? else {
        return Err(ApiError::not_found(format!("execution {id} not found")));
    };

    // The store keeps the project of deleted automations too, so a miss is a fault of the store.
    let Some(project) = state.store.automation_project(execution.automation_id).await? else {
        return Err(ApiError::internal(format!("automation {} of execution {id} is missing", execution.automation_id)));
    };
    require_project_access(&state, &caller, project, Role::Viewer).await?;

    let attempts = state.store.list_attempts(id).await?;
    let request_body = execution.request_body.clone();
    let execution = execution_out(&mut Lookup::new(&state), execution).await?;
    let attempts = attempts.into_iter().map(AttemptOut::from).collect();
    Ok(Json(ExecutionDetailOut { execution, request_body, attempts }))
}

async fn execution_out(lookup: &mut Lookup<'_>, execution: Execution) -> ApiResult<ExecutionOut> {
    let integration = match execution.integration_id {
        Some(id) => lookup.integration_name(id).await?,
        None => None,
    };
    Ok(ExecutionOut {
        id: execution.id,
        automation_id: execution.automation_id,
        automation_name: execution.automation_name,
        revision: execution.revision,
        event_type: execution.event_type,
        state: execution.state,
        action_type: execution.action_type,
        integration,
        event_data: execution.event_data,
        skip_reason: execution.skip_reason,
        attempt_count: execution.attempt_count,
        next_attempt_at: execution.next_attempt_at,
        last_status_code: execution.last_status_code,
        last_error: execution.last_error,
        created_at: execution.created_at,
        updated_at: execution.updated_at,
    })
}

/// Builds the routes of this module.
pub fn routes() -> ApiRoutes {
    ApiRoutes::new().add(Verb::Get, "/automations/{id}/executions", list).add(Verb::Get, "/executions/{id}", get)
}
