//! Records that the store reads and writes.
//!
//! `New*` types are what callers hand to the store; the plain names are what it returns.

use herald_core::Timestamp;
use herald_core::automation::AutomationSpec;
use herald_core::ids::{AutomationId, EntityId, ExecutionId, IntegrationId, ProjectId, RunId, SecretId, UserId};
use herald_core::model::{EntityKind, ExecutionState, Role, RunState};
use serde::Serialize;
use serde_json::Value;

/// A user who can log in with an API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The login name, also the name of the user's personal entity.
    pub name: String,
    /// The user's personal entity.
    pub entity_id: EntityId,
    /// Organization admins may do everything, in every team.
    pub is_org_admin: bool,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A new user and the hash of its first API key.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The login name; it must not be taken by a user or a team.
    pub name: String,
    /// Whether the user is an organization admin.
    pub is_org_admin: bool,
    /// SHA-256 of the API key. The key itself is never stored.
    pub api_key_hash: [u8; 32],
}

/// A namespace that owns projects: a user's personal entity or a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entity {
    /// The entity's id.
    pub id: EntityId,
    /// The entity's name, unique across users and teams.
    pub name: String,
    /// User or team.
    pub kind: EntityKind,
    /// When the entity was created.
    pub created_at: Timestamp,
}

/// A user's membership in a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The member.
    pub user_id: UserId,
    /// The member's name.
    pub user_name: String,
    /// The member's role.
    pub role: Role,
}

/// The organization and admin that the first start creates in an empty store.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// The organization's name.
    pub organization: String,
    /// The admin user's name.
    pub admin_name: String,
    /// SHA-256 of the admin's API key.
    pub admin_api_key_hash: [u8; 32],
}

/// The result of [`crate::Store::bootstrap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// The store was empty and now contains the organization and its admin.
    Created(User),
    /// The store already held an organization; nothing changed.
    AlreadyInitialized,
}

/// A project inside an entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Project {
    /// The project's id.
    pub id: ProjectId,
    /// The owning entity.
    pub entity_id: EntityId,
    /// The owning entity's name.
    pub entity_name: String,
    /// The project's name, unique inside its entity.
    pub name: String,
    /// When the project was created.
    pub created_at: Timestamp,
}

/// A run, as logged by the wandb SDK.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// Herald's id of the run.
    pub id: RunId,
    /// The project the run belongs to.
    pub project_id: ProjectId,
    /// W&B's run id, unique inside the project (the SDK generates 8 characters).
    pub name: String,
    /// The display name.
    pub display_name: String,
    /// The user who logged the run.
    pub user_id: UserId,
    /// The run state.
    pub state: RunState,
    /// The process exit code, once the run has ended.
    pub exit_code: Option<i64>,
    /// The run config as the SDK sends it: `{key: {"value": v}}`.
    pub config: Option<Value>,
    /// The latest summary.
    pub summary: Option<Value>,
    /// Run tags.
    pub tags: Vec<String>,
    /// Run notes.
    pub notes: Option<String>,
    /// Run group.
    pub group: Option<String>,
    /// Job type.
    pub job_type: Option<String>,
    /// The host the run started on.
    pub host: Option<String>,
    /// The number of history lines stored, which is one past the highest line index.
    pub history_line_count: i64,
    /// When the run was created.
    pub created_at: Timestamp,
    /// When the run last changed.
    pub updated_at: Timestamp,
    /// When the client last sent anything for the run.
    pub heartbeat_at: Timestamp,
}

/// Fields of `UpsertBucket`. `None` leaves a stored field unchanged.
#[derive(Clone, Debug, Default)]
pub struct RunUpsert {
    /// W&B's run id.
    pub name: String,
    /// The user logging the run. Used only when the run is created.
    pub user_id: Option<UserId>,
    /// The display name; a new run without one is named after its id.
    pub display_name: Option<String>,
    /// The run config.
    pub config: Option<Value>,
    /// Run tags.
    pub tags: Option<Vec<String>>,
    /// Run notes.
    pub notes: Option<String>,
    /// Run group.
    pub group: Option<String>,
    /// Job type.
    pub job_type: Option<String>,
    /// Host name.
    pub host: Option<String>,
}

/// One line of a run's history, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryLine {
    /// The absolute line index, which is the upsert key.
    pub line: i64,
    /// The row's `_step`, or the line index when the row has none.
    pub step: i64,
    /// The row as standard JSON; non-finite numbers are the strings "NaN", "Infinity" and
    /// "-Infinity".
    pub data: String,
}

/// The content of one file_stream request.
#[derive(Clone, Debug, Default)]
pub struct FileStreamBatch {
    /// History lines to upsert by line index.
    pub history: Vec<HistoryLine>,
    /// The whole current summary, replacing the stored one.
    pub summary: Option<Value>,
    /// The exit code of the final request, which ends the run.
    pub exit_code: Option<i64>,
    /// When Herald received the request.
    pub received_at: Timestamp,
}

/// The changes that one file_stream request made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileStreamOutcome {
    /// History lines inserted or changed. Lines re-sent with the same content count as none.
    pub history_lines_written: usize,
    /// The run's new state, when the request ended the run.
    pub ended_as: Option<RunState>,
    /// Events recorded for the evaluator.
    pub events_recorded: usize,
}

/// A stored history row.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    /// The line index.
    pub line: i64,
    /// The row's step.
    pub step: i64,
    /// The row as stored.
    pub data: String,
}

/// A file a run uploaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunFile {
    /// The file name, such as `config.yaml`.
    pub name: String,
    /// SHA-256 of the content, hex, which names the blob.
    pub digest: String,
    /// The size in bytes.
    pub size: i64,
    /// When the upload finished.
    pub uploaded_at: Timestamp,
}

/// A team secret, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    /// The secret's id.
    pub id: SecretId,
    /// The owning team.
    pub entity_id: EntityId,
    /// The secret's name.
    pub name: String,
    /// When the secret was first set.
    pub created_at: Timestamp,
    /// When the value last changed.
    pub updated_at: Timestamp,
}

/// Whether [`crate::Store::put_secret`] created a secret or replaced a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new secret.
    Created,
    /// A new value for an existing secret.
    Updated,
}

/// A webhook integration of a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Integration {
    /// The integration's id.
    pub id: IntegrationId,
    /// The owning team.
    pub entity_id: EntityId,
    /// The name, unique inside the team.
    pub name: String,
    /// The URL that deliveries POST to.
    pub url: String,
    /// The secret sent as `Authorization: Bearer`.
    pub access_token_secret_id: Option<SecretId>,
    /// The secret that signs deliveries.
    pub signing_secret_id: Option<SecretId>,
    /// When the integration was created.
    pub created_at: Timestamp,
}

/// A webhook integration to create.
#[derive(Clone, Debug)]
pub struct NewIntegration {
    /// The owning team.
    pub entity_id: EntityId,
    /// The name, unique inside the team.
    pub name: String,
    /// The URL that deliveries POST to.
    pub url: String,
    /// The secret sent as `Authorization: Bearer`.
    pub access_token_secret_id: Option<SecretId>,
    /// The secret that signs deliveries.
    pub signing_secret_id: Option<SecretId>,
}

/// An automation with its current revision.
#[derive(Clone, Debug, PartialEq)]
pub struct Automation {
    /// The automation's id.
    pub id: AutomationId,
    /// The project it watches.
    pub project_id: ProjectId,
    /// The current revision number, starting at 1.
    pub revision: i64,
    /// The current revision's content.
    pub spec: AutomationSpec,
    /// Whether it fires.
    pub enabled: bool,
    /// The user who created it.
    pub created_by: UserId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An automation to create.
#[derive(Clone, Debug)]
pub struct NewAutomation {
    /// The project it watches.
    pub project_id: ProjectId,
    /// The first revision.
    pub spec: AutomationSpec,
    /// Whether it fires.
    pub enabled: bool,
    /// The user who creates it.
    pub created_by: UserId,
}

/// A filter of automations to list. Unset fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct AutomationFilter {
    /// Only automations of this project.
    pub project_id: Option<ProjectId>,
    /// Only automations of projects owned by this entity.
    pub entity_id: Option<EntityId>,
    /// Only automations with this name.
    pub name: Option<String>,
}

/// The kinds of events the store records for the evaluator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// History lines were written; `data` contains `first_line`, `last_line`, and `run_state`,
    /// the run's state while the lines were logged.
    RunHistory,
    /// A run changed state; `data` contains `state`, `previous` and `exit_code`.
    RunState,
}

impl EventKind {
    /// Returns the name used in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunHistory => "run_history",
            EventKind::RunState => "run_state",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "run_history" => Some(EventKind::RunHistory),
            "run_state" => Some(EventKind::RunState),
            _ => None,
        }
    }
}

/// An event as the store recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The event's position in the store's single, gap-tolerant sequence.
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// The project it happened in.
    pub project_id: ProjectId,
    /// The run it happened to.
    pub run_id: Option<RunId>,
    /// Kind-specific details.
    pub data: Value,
    /// When the store recorded it. Cooldowns measure time with this value.
    pub created_at: Timestamp,
}

/// Everything about a run that evaluation and templates read.
#[derive(Clone, Debug, PartialEq)]
pub struct RunContext {
    /// The run.
    pub run: Run,
    /// The run's project.
    pub project_name: String,
    /// The project's entity.
    pub entity_name: String,
    /// The user who logged the run.
    pub user_name: String,
}

/// An execution to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewExecution {
    /// The execution's id, which receivers see as `webhook-id`.
    pub id: ExecutionId,
    /// The automation that fired.
    pub automation_id: AutomationId,
    /// The automation's name when it fired.
    pub automation_name: String,
    /// The revision that fired.
    pub revision: i64,
    /// The event that caused it.
    pub event_seq: i64,
    /// The history line that completed the condition, for run-metric events.
    pub event_line: Option<i64>,
    /// W&B's event type, such as `RUN_METRIC`.
    pub event_type: String,
    /// The run it concerns.
    pub run_id: Option<RunId>,
    /// Pending for deliveries, succeeded for no-ops, skipped for crossings in a cooldown,
    /// failed for a delivery that cannot be made.
    pub state: ExecutionState,
    /// W&B's action type, such as `GENERIC_WEBHOOK`.
    pub action_type: String,
    /// The integration to deliver to.
    pub integration_id: Option<IntegrationId>,
    /// The rendered body. It never contains a secret.
    pub request_body: Option<String>,
    /// The template variables of the event, shown in the history.
    pub event_data: Value,
    /// The reason a skipped execution did not act.
    pub skip_reason: Option<String>,
    /// The reason an execution recorded as failed cannot be delivered at all, such as a
    /// rendered body over the size limit. It becomes the execution's `last_error`.
    pub error: Option<String>,
    /// When it was recorded, which is the event's time.
    pub created_at: Timestamp,
}

/// An execution with the outcome of its attempts so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Execution {
    /// The execution's id, which receivers see as `webhook-id`.
    pub id: ExecutionId,
    /// The automation that fired.
    pub automation_id: AutomationId,
    /// The automation's name when it fired.
    pub automation_name: String,
    /// The revision that fired.
    pub revision: i64,
    /// The event that caused it.
    pub event_seq: i64,
    /// W&B's event type.
    pub event_type: String,
    /// The run it concerns.
    pub run_id: Option<RunId>,
    /// The state.
    pub state: ExecutionState,
    /// W&B's action type.
    pub action_type: String,
    /// The integration it delivers to.
    pub integration_id: Option<IntegrationId>,
    /// The rendered body.
    pub request_body: Option<String>,
    /// The template variables of the event.
    pub event_data: Value,
    /// The reason a skipped execution did not act.
    pub skip_reason: Option<String>,
    /// How many attempts were made.
    pub attempt_count: i64,
    /// When the next attempt is due, while the execution is pending.
    pub next_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last attempt.
    pub last_status_code: Option<i64>,
    /// The error of the last attempt, when it got no HTTP response or a non-2xx one.
    pub last_error: Option<String>,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// One try at delivering an execution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: i64,
    /// When the request started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
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

/// An execution that a dispatcher holds for delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedExecution {
    /// The execution.
    pub id: ExecutionId,
    /// Proves the claim when the attempt is recorded.
    pub claim_token: String,
    /// The integration to deliver to.
    pub integration_id: Option<IntegrationId>,
    /// The rendered body.
    pub request_body: Option<String>,
    /// Attempts made before this one.
    pub attempt_count: i64,
}

/// The next step for an execution after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptNext {
    /// The attempt delivered it.
    Succeeded,
    /// Try again at the given time.
    RetryAt(Timestamp),
    /// Give up; the execution failed.
    Failed,
}

/// The outcome of one attempt, to record.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The claim the dispatcher holds.
    pub claim_token: String,
    /// The attempt's details.
    pub attempt: Attempt,
    /// The next step.
    pub next: AttemptNext,
}

/// One page of a listing, newest first.
#[derive(Clone, Copy, Debug)]
pub struct Page<Id> {
    /// Return items older than this one.
    pub before: Option<Id>,
    /// The maximum number of items to return.
    pub limit: usize,
}

/// The counts of one evaluation pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvaluationReport {
    /// Events evaluated.
    pub events: usize,
    /// Executions recorded, of any state.
    pub executions: usize,
    /// Executions recorded that wait for delivery.
    pub deliveries: usize,
}
