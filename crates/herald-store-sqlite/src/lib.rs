//! Herald's embedded store: one SQLite file in WAL mode.
//!
//! All writes go through one writer thread that commits queued writes together (see
//! [`workers`]), and reads go to a pool of reader threads. Each module contains the SQL for one
//! part of the data model as plain functions over a connection; this file maps the `Store`
//! trait onto them and onto the right thread.

mod accounts;
mod automations;
mod convert;
mod evaluation;
mod executions;
mod integrations;
mod migrate;
mod projects;
mod runs;
pub mod workers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::Timestamp;
use herald_core::automation::AutomationSpec;
use herald_core::ids::{AutomationId, EntityId, ExecutionId, IntegrationId, ProjectId, RunId, SecretId, UserId};
use herald_core::model::Role;
use herald_store::*;
use rusqlite::Connection;

use crate::workers::Workers;

/// The durability of a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: a commit survives a crash of the process but may be lost with
    /// the last few commits on power loss. The default, and much faster.
    Normal,
    /// `synchronous=FULL`: every commit is flushed to disk before it is acknowledged.
    Full,
}

/// Settings of the SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// The database file. It is created when missing.
    pub path: PathBuf,
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// Reader threads.
    pub readers: usize,
}

impl SqliteOptions {
    /// Default settings for a database file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), synchronous: Synchronous::Normal, readers: 4 }
    }
}

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    workers: Workers,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens or creates the database and brings its schema up to date.
    pub fn open(options: SqliteOptions) -> StoreResult<Self> {
        let mut connection = Connection::open(&options.path).map_err(|error| {
            StoreError::Backend(format!("failed to open SQLite database {}: {error}", options.path.display()))
        })?;
        configure(&connection, options.synchronous)
            .map_err(|error| StoreError::Backend(format!("failed to configure SQLite: {error}")))?;
        migrate::migrate(&mut connection)?;
        drop(connection);

        let synchronous = options.synchronous;
        let workers =
            Workers::start(&options.path, options.readers, move |connection| configure(connection, synchronous))?;
        tracing::info!(path = %options.path.display(), "opened SQLite store");
        Ok(Self { workers, path: options.path })
    }

    /// Returns the database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn configure(connection: &Connection, synchronous: Synchronous) -> rusqlite::Result<()> {
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    let level = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    connection.pragma_update(None, "synchronous", level)?;
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn bootstrap(&self, bootstrap: Bootstrap) -> StoreResult<BootstrapOutcome> {
        self.workers.write(move |c| accounts::bootstrap(c, bootstrap)).await
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_owned();
        self.workers.read(move |c| accounts::setting(c, &key)).await
    }

    async fn insert_setting_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.workers.write(move |c| accounts::insert_setting_if_absent(c, &key, &value)).await
    }

    async fn user_by_api_key(&self, api_key_hash: &[u8; 32]) -> StoreResult<Option<User>> {
        let hash = *api_key_hash;
        self.workers.read(move |c| accounts::user_by_api_key(c, &hash)).await
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        self.workers.write(move |c| accounts::create_user(c, user)).await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let name = name.to_owned();
        self.workers.read(move |c| accounts::user_by_name(c, &name)).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.workers.read(accounts::list_users).await
    }

    async fn entity_by_name(&self, name: &str) -> StoreResult<Option<Entity>> {
        let name = name.to_owned();
        self.workers.read(move |c| accounts::entity_by_name(c, &name)).await
    }

    async fn create_team(&self, name: &str, creator: UserId) -> StoreResult<Entity> {
        let name = name.to_owned();
        self.workers.write(move |c| accounts::create_team(c, &name, creator)).await
    }

    async fn list_teams(&self, member: Option<UserId>) -> StoreResult<Vec<Entity>> {
        self.workers.read(move |c| accounts::list_teams(c, member)).await
    }

    async fn set_membership(&self, team: EntityId, user: UserId, role: Role) -> StoreResult<()> {
        self.workers.write(move |c| accounts::set_membership(c, team, user, role)).await
    }

    async fn remove_membership(&self, team: EntityId, user: UserId) -> StoreResult<()> {
        self.workers.write(move |c| accounts::remove_membership(c, team, user)).await
    }

    async fn list_members(&self, team: EntityId) -> StoreResult<Vec<Member>> {
        self.workers.read(move |c| accounts::list_members(c, team)).await
    }

    async fn role_in(&self, entity: EntityId, user: UserId) -> StoreResult<Option<Role>> {
        self.workers.read(move |c| accounts::role_in(c, entity, user)).await
    }

    async fn create_project(&self, entity: EntityId, name: &str) -> StoreResult<Project> {
        let name = name.to_owned();
        self.workers.write(move |c| projects::create_project(c, entity, &name)).await
    }

    async fn ensure_project(&self, entity: EntityId, name: &str) -> StoreResult<Project> {
        let name = name.to_owned();
        self.workers.write(move |c| projects::ensure_project(c, entity, &name)).await
    }

    async fn project_by_name(&self, entity: EntityId, name: &str) -> StoreResult<Option<Project>> {
        let name = name.to_owned();
        self.workers.read(move |c| projects::project_by_name(c, entity, &name)).await
    }

    async fn project(&self, id: ProjectId) -> StoreResult<Option<Project>> {
        self.workers.read(move |c| projects::project(c, id)).await
    }

    async fn list_projects(&self, entity: Option<EntityId>) -> StoreResult<Vec<Project>> {
        self.workers.read(move |c| projects::list_projects(c, entity)).await
    }

    async fn upsert_run(&self, project: ProjectId, upsert: RunUpsert) -> StoreResult<(Run, bool)> {
        self.workers.write(move |c| runs::upsert_run(c, project, upsert)).await
    }

    async fn run_by_name(&self, project: ProjectId, name: &str) -> StoreResult<Option<Run>> {
        let name = name.to_owned();
        self.workers.read(move |c| runs::run_by_name(c, project, &name)).await
    }

    async fn apply_file_stream(&self, run: RunId, batch: FileStreamBatch) -> StoreResult<FileStreamOutcome> {
        self.workers.write(move |c| runs::apply_file_stream(c, run, batch)).await
    }

    async fn history(&self, run: RunId, from_line: i64, limit: usize) -> StoreResult<Vec<HistoryRow>> {
        self.workers.read(move |c| runs::history(c, run, from_line, limit)).await
    }

    async fn put_run_file(&self, run: RunId, file: RunFile) -> StoreResult<()> {
        self.workers.write(move |c| runs::put_run_file(c, run, file)).await
    }

    async fn list_run_files(&self, run: RunId) -> StoreResult<Vec<RunFile>> {
        self.workers.read(move |c| runs::list_run_files(c, run)).await
    }

    async fn put_secret(&self, team: EntityId, name: &str, sealed: Vec<u8>) -> StoreResult<(SecretMeta, PutOutcome)> {
        let name = name.to_owned();
        self.workers.write(move |c| integrations::put_secret(c, team, &name, sealed)).await
    }

    async fn list_secrets(&self, team: EntityId) -> StoreResult<Vec<SecretMeta>> {
        self.workers.read(move |c| integrations::list_secrets(c, team)).await
    }

    async fn secret_by_name(&self, team: EntityId, name: &str) -> StoreResult<Option<SecretMeta>> {
        let name = name.to_owned();
        self.workers.read(move |c| integrations::secret_by_name(c, team, &name)).await
    }

    async fn secret(&self, id: SecretId) -> StoreResult<Option<SecretMeta>> {
        self.workers.read(move |c| integrations::secret(c, id)).await
    }

    async fn sealed_secret(&self, id: SecretId) -> StoreResult<Option<Vec<u8>>> {
        self.workers.read(move |c| integrations::sealed_secret(c, id)).await
    }

    async fn delete_secret(&self, team: EntityId, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.workers.write(move |c| integrations::delete_secret(c, team, &name)).await
    }

    async fn create_integration(&self, integration: NewIntegration) -> StoreResult<Integration> {
        self.workers.write(move |c| integrations::create_integration(c, integration)).await
    }

    async fn list_integrations(&self, team: EntityId) -> StoreResult<Vec<Integration>> {
        self.workers.read(move |c| integrations::list_integrations(c, team)).await
    }

    async fn integration(&self, id: IntegrationId) -> StoreResult<Option<Integration>> {
        self.workers.read(move |c| integrations::integration(c, id)).await
    }

    async fn integration_by_name(&self, team: EntityId, name: &str) -> StoreResult<Option<Integration>> {
        let name = name.to_owned();
        self.workers.read(move |c| integrations::integration_by_name(c, team, &name)).await
    }

    async fn delete_integration(&self, id: IntegrationId) -> StoreResult<()> {
        self.workers.write(move |c| integrations::delete_integration(c, id)).await
    }

    async fn create_automation(&self, automation: NewAutomation) -> StoreResult<Automation> {
        self.workers.write(move |c| automations::create_automation(c, automation)).await
    }

    async fn automation(&self, id: AutomationId) -> StoreResult<Option<Automation>> {
        self.workers.read(move |c| automations::automation(c, id)).await
    }

    async fn automation_project(&self, id: AutomationId) -> StoreResult<Option<ProjectId>> {
        self.workers.read(move |c| automations::automation_project(c, id)).await
    }

    async fn list_automations(&self, filter: AutomationFilter) -> StoreResult<Vec<Automation>> {
        self.workers.read(move |c| automations::list_automations(c, filter)).await
    }

    async fn update_automation(
        &self,
        id: AutomationId,
        project: ProjectId,
        spec: AutomationSpec,
        enabled: bool,
        editor: UserId,
    ) -> StoreResult<Automation> {
        self.workers.write(move |c| automations::update_automation(c, id, project, spec, enabled, editor)).await
    }

    async fn set_automation_enabled(&self, id: AutomationId, enabled: bool) -> StoreResult<Automation> {
        self.workers.write(move |c| automations::set_automation_enabled(c, id, enabled)).await
    }

    async fn delete_automation(&self, id: AutomationId) -> StoreResult<()> {
        self.workers.write(move |c| automations::delete_automation(c, id)).await
    }

    async fn evaluate_events(
        &self,
        max_events: usize,
        evaluator: Arc<dyn BatchEvaluator>,
    ) -> StoreResult<EvaluationReport> {
        self.workers.write(move |c| evaluation::evaluate_events(c, max_events, evaluator)).await
    }

    async fn claim_due_executions(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
        exclude: &[IntegrationId],
    ) -> StoreResult<Vec<ClaimedExecution>> {
        let exclude = exclude.to_vec();
        self.workers.write(move |c| executions::claim_due_executions(c, now, limit, lease, &exclude)).await
    }

    async fn record_attempt(&self, record: AttemptRecord) -> StoreResult<()> {
        self.workers.write(move |c| executions::record_attempt(c, record)).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>> {
        self.workers.read(executions::next_due_at).await
    }

    async fn list_executions(&self, automation: AutomationId, page: Page<ExecutionId>) -> StoreResult<Vec<Execution>> {
        self.workers.read(move |c| executions::list_executions(c, automation, page)).await
    }

    async fn execution(&self, id: ExecutionId) -> StoreResult<Option<Execution>> {
        self.workers.read(move |c| executions::execution(c, id)).await
    }

    async fn list_attempts(&self, execution: ExecutionId) -> StoreResult<Vec<Attempt>> {
        self.workers.read(move |c| executions::list_attempts(c, execution)).await
    }
}
