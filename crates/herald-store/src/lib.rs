//! The storage interface of Herald.
//!
//! [`Store`] is implemented by `herald-store-sqlite` (the embedded default) and
//! `herald-store-postgres`, and one behavioural suite in `herald-store-tests` runs against
//! both. The trait is coarse on purpose: each method is one transaction, so the invariants
//! below hold inside the backend and callers cannot forget a step.
//!
//! Invariants every backend keeps:
//! - A write that can trigger an automation records its event in the same transaction
//!   ([`Store::apply_file_stream`]).
//! - [`Store::evaluate_events`] records the executions for a batch of events, the evaluator
//!   state and its cursor in one transaction, so each event is evaluated once even across
//!   crashes, and an execution is unique per (automation, event, history line).
//! - Secret values are stored sealed; the store never receives a plaintext secret.
//! - Every time is UTC milliseconds ([`Timestamp`]).

pub mod error;
pub mod models;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::Timestamp;
use herald_core::evaluate::MetricWindowState;
use herald_core::ids::{AutomationId, EntityId, ExecutionId, IntegrationId, ProjectId, RunId, SecretId, UserId};
use herald_core::model::Role;

pub use error::{StoreError, StoreResult};
pub use models::*;

/// Herald's persistent state.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Set-up.

    /// Creates the organization, its admin user and the admin's API key when the store contains
    /// no organization yet; otherwise changes nothing.
    async fn bootstrap(&self, bootstrap: Bootstrap) -> StoreResult<BootstrapOutcome>;

    /// Reads a server setting, such as the check value of the secret key.
    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;

    /// Stores a server setting unless it is already set, and returns the stored value.
    async fn insert_setting_if_absent(&self, key: &str, value: &str) -> StoreResult<String>;

    // Users and API keys.

    /// Finds the user that owns the API key with this SHA-256 hash.
    async fn user_by_api_key(&self, api_key_hash: &[u8; 32]) -> StoreResult<Option<User>>;

    /// Creates a user, its personal entity and its API key. Fails with a conflict when the
    /// name is taken by a user or a team.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;

    /// Finds a user by name.
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;

    /// Lists every user, by name.
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    // Entities and teams.

    /// Finds a user's personal entity or a team by name.
    async fn entity_by_name(&self, name: &str) -> StoreResult<Option<Entity>>;

    /// Creates a team whose first admin is `creator`. Fails with a conflict when the name is
    /// taken by a user or a team.
    async fn create_team(&self, name: &str, creator: UserId) -> StoreResult<Entity>;

    /// Lists teams by name: all of them, or only those `member` belongs to.
    async fn list_teams(&self, member: Option<UserId>) -> StoreResult<Vec<Entity>>;

    /// Adds a member to a team or changes the member's role.
    async fn set_membership(&self, team: EntityId, user: UserId, role: Role) -> StoreResult<()>;

    /// Removes a member from a team. Fails with a conflict when it would leave the team
    /// without an admin.
    async fn remove_membership(&self, team: EntityId, user: UserId) -> StoreResult<()>;

    /// Lists a team's members by name.
    async fn list_members(&self, team: EntityId) -> StoreResult<Vec<Member>>;

    /// Returns the user's role in an entity: admin in the user's own personal entity, the
    /// membership role in a team, `None` elsewhere.
    async fn role_in(&self, entity: EntityId, user: UserId) -> StoreResult<Option<Role>>;

    // Projects.

    /// Creates a project. Fails with a conflict when the entity already has one so named.
    async fn create_project(&self, entity: EntityId, name: &str) -> StoreResult<Project>;

    /// Returns the named project, creating it first when it does not exist.
    async fn ensure_project(&self, entity: EntityId, name: &str) -> StoreResult<Project>;

    /// Finds a project by its entity and name.
    async fn project_by_name(&self, entity: EntityId, name: &str) -> StoreResult<Option<Project>>;

    /// Finds a project by id.
    async fn project(&self, id: ProjectId) -> StoreResult<Option<Project>>;

    /// Lists projects by entity name and project name, optionally of one entity only.
    async fn list_projects(&self, entity: Option<EntityId>) -> StoreResult<Vec<Project>>;

    // Runs.

    /// Creates or updates a run, as W&B's `UpsertBucket` does. Returns the run and whether
    /// it was created.
    async fn upsert_run(&self, project: ProjectId, upsert: RunUpsert) -> StoreResult<(Run, bool)>;

    /// Finds a run by its W&B id inside a project.
    async fn run_by_name(&self, project: ProjectId, name: &str) -> StoreResult<Option<Run>>;

    /// Applies one file_stream request in one transaction: upserts history lines by index,
    /// replaces the summary, ends the run on an exit code, refreshes the heartbeat, and
    /// records the events the evaluator needs. Lines re-sent with unchanged content change
    /// nothing and record no event.
    async fn apply_file_stream(&self, run: RunId, batch: FileStreamBatch) -> StoreResult<FileStreamOutcome>;

    /// Reads up to `limit` history rows from line `from_line` on, in line order.
    async fn history(&self, run: RunId, from_line: i64, limit: usize) -> StoreResult<Vec<HistoryRow>>;

    /// Records an uploaded run file, replacing an earlier upload of the same name.
    async fn put_run_file(&self, run: RunId, file: RunFile) -> StoreResult<()>;

    /// Lists a run's uploaded files by name.
    async fn list_run_files(&self, run: RunId) -> StoreResult<Vec<RunFile>>;

    // Secrets.

    /// Stores a sealed secret value under a name in a team, replacing an earlier value.
    async fn put_secret(&self, team: EntityId, name: &str, sealed: Vec<u8>) -> StoreResult<(SecretMeta, PutOutcome)>;

    /// Lists a team's secrets by name, without values.
    async fn list_secrets(&self, team: EntityId) -> StoreResult<Vec<SecretMeta>>;

    /// Finds a secret by name.
    async fn secret_by_name(&self, team: EntityId, name: &str) -> StoreResult<Option<SecretMeta>>;

    /// Finds a secret by id.
    async fn secret(&self, id: SecretId) -> StoreResult<Option<SecretMeta>>;

    /// Reads a sealed secret value. Only the dispatcher calls this, at send time.
    async fn sealed_secret(&self, id: SecretId) -> StoreResult<Option<Vec<u8>>>;

    /// Deletes a secret. Fails with an `in_use` conflict while an integration refers to it.
    async fn delete_secret(&self, team: EntityId, name: &str) -> StoreResult<()>;

    // Integrations.

    /// Creates a webhook integration. Fails with a conflict when the team already has one
    /// so named.
    async fn create_integration(&self, integration: NewIntegration) -> StoreResult<Integration>;

    /// Lists a team's integrations by name.
    async fn list_integrations(&self, team: EntityId) -> StoreResult<Vec<Integration>>;

    /// Finds an integration by id.
    async fn integration(&self, id: IntegrationId) -> StoreResult<Option<Integration>>;

    /// Finds an integration by name.
    async fn integration_by_name(&self, team: EntityId, name: &str) -> StoreResult<Option<Integration>>;

    /// Deletes an integration. Fails with an `in_use` conflict while an automation that is
    /// not deleted refers to it.
    async fn delete_integration(&self, id: IntegrationId) -> StoreResult<()>;

    // Automations.

    /// Creates an automation with revision 1. Fails with a conflict when its project already
    /// has an automation so named.
    async fn create_automation(&self, automation: NewAutomation) -> StoreResult<Automation>;

    /// Finds an automation by id; deleted automations are not found.
    async fn automation(&self, id: AutomationId) -> StoreResult<Option<Automation>>;

    /// Returns the project of an automation, deleted or not, so that access to a deleted
    /// automation's executions can be checked. A deleted automation keeps the project it had
    /// when it was deleted. `None` means that no automation ever had this id.
    async fn automation_project(&self, id: AutomationId) -> StoreResult<Option<ProjectId>>;

    /// Lists automations that are not deleted, by project and name.
    async fn list_automations(&self, filter: AutomationFilter) -> StoreResult<Vec<Automation>>;

    /// Stores a new revision of an automation, possibly moving it to another project, and
    /// sets its enabled flag. The evaluator state of the automation is kept, so an edit
    /// that keeps a condition true does not fire again.
    async fn update_automation(
        &self,
        id: AutomationId,
        project: ProjectId,
        spec: herald_core::automation::AutomationSpec,
        enabled: bool,
        editor: UserId,
    ) -> StoreResult<Automation>;

    /// Enables or disables an automation without a new revision.
    async fn set_automation_enabled(&self, id: AutomationId, enabled: bool) -> StoreResult<Automation>;

    /// Deletes an automation. Its executions stay in the history, and pending deliveries
    /// still go out.
    async fn delete_automation(&self, id: AutomationId) -> StoreResult<()>;

    // Evaluation.

    /// Runs `evaluator` over up to `max_events` events after the evaluator's cursor, inside
    /// one transaction that also advances the cursor.
    async fn evaluate_events(
        &self,
        max_events: usize,
        evaluator: Arc<dyn BatchEvaluator>,
    ) -> StoreResult<EvaluationReport>;

    // Executions and delivery.

    /// Claims up to `limit` executions that are due at `now`: pending ones whose next
    /// attempt time has come, and delivering ones whose lease ran out because their
    /// dispatcher stopped. The earliest due are claimed first, and the claim lasts `lease`.
    ///
    /// Executions of the integrations in `exclude` are passed over and stay due, so a
    /// dispatcher can leave them until it has room for more attempts to those integrations.
    /// Executions without an integration are never excluded.
    async fn claim_due_executions(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
        exclude: &[IntegrationId],
    ) -> StoreResult<Vec<ClaimedExecution>>;

    /// Records an attempt and moves its execution on. The state changes only while the
    /// claim token still matches, so a dispatcher whose lease ran out cannot overwrite the
    /// outcome of a newer attempt.
    async fn record_attempt(&self, record: AttemptRecord) -> StoreResult<()>;

    /// Returns when the earliest pending execution is due, so the dispatcher can sleep
    /// until then.
    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>>;

    /// Lists an automation's executions, newest first.
    async fn list_executions(&self, automation: AutomationId, page: Page<ExecutionId>) -> StoreResult<Vec<Execution>>;

    /// Finds an execution by id.
    async fn execution(&self, id: ExecutionId) -> StoreResult<Option<Execution>>;

    /// Lists an execution's attempts, oldest first.
    async fn list_attempts(&self, execution: ExecutionId) -> StoreResult<Vec<Attempt>>;
}

/// Turns a batch of events into executions. `herald-evaluator` implements it; the store
/// calls it inside the transaction of [`Store::evaluate_events`].
#[async_trait]
pub trait BatchEvaluator: Send + Sync {
    /// Evaluates `events`, in order, reading and writing through `tx`.
    async fn evaluate(&self, tx: &mut dyn EvaluationTx, events: &[StoredEvent]) -> StoreResult<EvaluationReport>;
}

/// The reads and writes evaluation makes inside the transaction of
/// [`Store::evaluate_events`].
#[async_trait]
pub trait EvaluationTx: Send {
    /// Loads a run with the names that templates need.
    async fn run_context(&mut self, run: RunId) -> StoreResult<Option<RunContext>>;

    /// Lists the enabled automations of a project that react to `event_type`.
    async fn active_automations(&mut self, project: ProjectId, event_type: &str) -> StoreResult<Vec<Automation>>;

    /// Reads history rows with line indexes in `first_line..=last_line`, in line order.
    async fn history_rows(&mut self, run: RunId, first_line: i64, last_line: i64) -> StoreResult<Vec<HistoryRow>>;

    /// Reads up to `limit` history rows before line `before_line`, newest first.
    async fn history_rows_before(&mut self, run: RunId, before_line: i64, limit: usize)
    -> StoreResult<Vec<HistoryRow>>;

    /// Reads the evaluator state of an (automation, run) pair.
    async fn window_state(&mut self, automation: AutomationId, run: RunId) -> StoreResult<Option<MetricWindowState>>;

    /// Writes the evaluator state of an (automation, run) pair.
    async fn save_window_state(
        &mut self,
        automation: AutomationId,
        run: RunId,
        state: &MetricWindowState,
    ) -> StoreResult<()>;

    /// Records an execution. An execution for the same (automation, event, line) that
    /// already exists is left as it is.
    async fn insert_execution(&mut self, execution: &NewExecution) -> StoreResult<()>;
}
