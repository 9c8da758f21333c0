//! Herald's shared store: PostgreSQL, for several Herald processes that share one database.
//!
//! The schema and the SQL mirror `herald-store-sqlite` table for table, and the behavioural
//! suite in `herald-store-tests` runs against both. What differs is concurrency: SQLite has
//! one writer thread, while here many transactions from many processes run at once. Each
//! `Store` method is one transaction, and the methods that read before they write lock what
//! they read:
//!
//! - Writes to a run lock the run's row, so requests for one run apply one at a time.
//! - Membership changes lock the team's row, so no two changes can remove the last admin.
//! - An automation edit locks the automation, and an attempt locks its execution.
//! - Evaluation passes lock the evaluator cursor's row (`FOR UPDATE`), so one pass runs at a
//!   time across all processes.
//! - Dispatchers claim executions with `FOR UPDATE SKIP LOCKED`, so two claims never return
//!   the same execution and neither waits for the other.
//!
//! # Event order
//!
//! The evaluator must read every event exactly once, and the events of one run in the
//! order they were written. A plain identity column does not give that: values are handed
//! out when a row is inserted, so a transaction holding value 7 can commit after another
//! transaction's value 8 has been read and the cursor has moved past 8. Event 7 would then
//! never be evaluated.
//!
//! So an event gets two numbers. `id` is an identity column assigned on insert. `seq`, the
//! position the evaluator reads by, is NULL until an evaluation pass, while it holds the
//! cursor's row lock, numbers the committed events that have none, in `id` order, after the
//! highest position given so far. Because only the lock holder numbers events and it sees
//! only committed ones, an event that commits late is numbered late and lands after the
//! cursor. Events of one run keep their order because writes to a run hold the run's row
//! lock from before the event insert until commit.
//!
//! Two other ways were rejected. Taking a transaction-level advisory lock before inserting
//! an event makes identity values commit in order, but every event-writing transaction in
//! every process then holds one lock through its commit, which serializes commits and
//! their WAL flushes. Reading only events older than the oldest running transaction
//! (`pg_snapshot_xmin`) stalls evaluation whenever any transaction in the cluster stays
//! open, such as an idle `psql` session. Numbering at evaluation costs one extra row
//! update per event, and events are per request, not per history line.

mod accounts;
mod automations;
mod convert;
mod evaluation;
mod executions;
mod integrations;
mod projects;
mod runs;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::Timestamp;
use herald_core::automation::AutomationSpec;
use herald_core::ids::{AutomationId, EntityId, ExecutionId, IntegrationId, ProjectId, RunId, SecretId, UserId};
use herald_core::model::Role;
use herald_store::*;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

/// Settings of the PostgreSQL store. `Debug` hides the password of the URL.
#[derive(Clone)]
pub struct PostgresOptions {
    /// A `postgres://user:password@host:port/database` URL.
    pub url: String,
    /// Maximum number of pooled connections.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before the operation fails.
    pub acquire_timeout: Duration,
}

impl PostgresOptions {
    /// Default settings for a database URL: 10 connections, 30 seconds to get one.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), max_connections: 10, acquire_timeout: Duration::from_secs(30) }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// Returns the URL with its password replaced by `***`, for logs and error messages. Text
/// that does not parse as a URL is replaced whole, since it may hold a password anywhere.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // `set_password` fails only for URLs without a host, and a URL with a
                // password has a host.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("connections", &self.pool.size()).finish()
    }
}

impl PostgresStore {
    /// Connects with `max_connections` pooled connections and brings the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::open(PostgresOptions { max_connections, ..PostgresOptions::new(url) }).await
    }

    /// Connects with the given settings and brings the schema up to date. Processes that
    /// start together may all call this: sqlx takes an advisory lock while it migrates.
    pub async fn open(options: PostgresOptions) -> StoreResult<Self> {
        let redacted = redact_url(&options.url);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(&options.url)
            .await
            .map_err(|error| StoreError::Backend(format!("failed to connect to PostgreSQL at {redacted}: {error}")))?;

        sqlx::migrate!("./migrations").run(&pool).await.map_err(|error| {
            StoreError::Backend(format!("failed to migrate the PostgreSQL database at {redacted}: {error}"))
        })?;
        tracing::info!(url = %redacted, max_connections = options.max_connections, "opened PostgreSQL store");
        Ok(Self { pool })
    }

    /// Returns the connection pool, for tests and tools that read the schema directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection. Operations started afterwards fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn connection(&self) -> StoreResult<PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(convert::backend)
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(convert::backend)
    }
}

/// Commits `tx` and returns `value`. A transaction dropped without this rolls back.
async fn commit<T>(tx: Transaction<'static, Postgres>, value: T) -> StoreResult<T> {
    tx.commit().await.map_err(convert::backend)?;
    Ok(value)
}

#[async_trait]
impl Store for PostgresStore {
    async fn bootstrap(&self, bootstrap: Bootstrap) -> StoreResult<BootstrapOutcome> {
        let mut tx = self.begin().await?;
        let outcome = accounts::bootstrap(&mut tx, bootstrap).await?;
        commit(tx, outcome).await
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        accounts::setting(&mut *self.connection().await?, key).await
    }

    async fn insert_setting_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        let mut tx = self.begin().await?;
        let stored = accounts::insert_setting_if_absent(&mut tx, key, value).await?;
        commit(tx, stored).await
    }

    async fn user_by_api_key(&self, api_key_hash: &[u8; 32]) -> StoreResult<Option<User>> {
        accounts::user_by_api_key(&mut *self.connection().await?, api_key_hash).await
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let created = accounts::create_user(&mut tx, user).await?;
        commit(tx, created).await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        accounts::user_by_name(&mut *self.connection().await?, name).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        accounts::list_users(&mut *self.connection().await?).await
    }

    async fn entity_by_name(&self, name: &str) -> StoreResult<Option<Entity>> {
        accounts::entity_by_name(&mut *self.connection().await?, name).await
    }

    async fn create_team(&self, name: &str, creator: UserId) -> StoreResult<Entity> {
        let mut tx = self.begin().await?;
        let team = accounts::create_team(&mut tx, name, creator).await?;
        commit(tx, team).await
    }

    async fn list_teams(&self, member: Option<UserId>) -> StoreResult<Vec<Entity>> {
        accounts::list_teams(&mut *self.connection().await?, member).await
    }

    async fn set_membership(&self, team: EntityId, user: UserId, role: Role) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        accounts::set_membership(&mut tx, team, user, role).await?;
        commit(tx, ()).await
    }

    async fn remove_membership(&self, team: EntityId, user: UserId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        accounts::remove_membership(&mut tx, team, user).await?;
        commit(tx, ()).await
    }

    async fn list_members(&self, team: EntityId) -> StoreResult<Vec<Member>> {
        accounts::list_members(&mut *self.connection().await?, team).await
    }

    async fn role_in(&self, entity: EntityId, user: UserId) -> StoreResult<Option<Role>> {
        accounts::role_in(&mut *self.connection().await?, entity, user).await
    }

    async fn create_project(&self, entity: EntityId, name: &str) -> StoreResult<Project> {
        let mut tx = self.begin().await?;
        let project = projects::create_project(&mut tx, entity, name).await?;
        commit(tx, project).await
    }

    async fn ensure_project(&self, entity: EntityId, name: &str) -> StoreResult<Project> {
        let mut tx = self.begin().await?;
        let project = projects::ensure_project(&mut tx, entity, name).await?;
        commit(tx, project).await
    }

    async fn project_by_name(&self, entity: EntityId, name: &str) -> StoreResult<Option<Project>> {
        projects::project_by_name(&mut *self.connection().await?, entity, name).await
    }

    async fn project(&self, id: ProjectId) -> StoreResult<Option<Project>> {
        projects::project(&mut *self.connection().await?, id).await
    }

    async fn list_projects(&self, entity: Option<EntityId>) -> StoreResult<Vec<Project>> {
        projects::list_projects(&mut *self.connection().await?, entity).await
    }

    async fn upsert_run(&self, project: ProjectId, upsert: RunUpsert) -> StoreResult<(Run, bool)> {
        let mut tx = self.begin().await?;
        let outcome = runs::upsert_run(&mut tx, project, upsert).await?;
        commit(tx, outcome).await
    }

    async fn run_by_name(&self, project: ProjectId, name: &str) -> StoreResult<Option<Run>> {
        runs::run_by_name(&mut *self.connection().await?, project, name).await
    }

    async fn apply_file_stream(&self, run: RunId, batch: FileStreamBatch) -> StoreResult<FileStreamOutcome> {
        let mut tx = self.begin().await?;
        let outcome = runs::apply_file_stream(&mut tx, run, batch).await?;
        commit(tx, outcome).await
    }

    async fn history(&self, run: RunId, from_line: i64, limit: usize) -> StoreResult<Vec<HistoryRow>> {
        runs::history(&mut *self.connection().await?, run, from_line, limit).await
    }

    async fn put_run_file(&self, run: RunId, file: RunFile) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        runs::put_run_file(&mut tx, run, file).await?;
        commit(tx, ()).await
    }

    async fn list_run_files(&self, run: RunId) -> StoreResult<Vec<RunFile>> {
        runs::list_run_files(&mut *self.connection().await?, run).await
    }

    async fn put_secret(&self, team: EntityId, name: &str, sealed: Vec<u8>) -> StoreResult<(SecretMeta, PutOutcome)> {
        let mut tx = self.begin().await?;
        let outcome = integrations::put_secret(&mut tx, team, name, sealed).await?;
        commit(tx, outcome).await
    }

    async fn list_secrets(&self, team: EntityId) -> StoreResult<Vec<SecretMeta>> {
        integrations::list_secrets(&mut *self.connection().await?, team).await
    }

    async fn secret_by_name(&self, team: EntityId, name: &str) -> StoreResult<Option<SecretMeta>> {
        integrations::secret_by_name(&mut *self.connection().await?, team, name).await
    }

    async fn secret(&self, id: SecretId) -> StoreResult<Option<SecretMeta>> {
        integrations::secret(&mut *self.connection().await?, id).await
    }

    async fn sealed_secret(&self, id: SecretId) -> StoreResult<Option<Vec<u8>>> {
        integrations::sealed_secret(&mut *self.connection().await?, id).await
    }

    async fn delete_secret(&self, team: EntityId, name: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        integrations::delete_secret(&mut tx, team, name).await?;
        commit(tx, ()).await
    }

    async fn create_integration(&self, integration: NewIntegration) -> StoreResult<Integration> {
        let mut tx = self.begin().await?;
        let created = integrations::create_integration(&mut tx, integration).await?;
        commit(tx, created).await
    }

    async fn list_integrations(&self, team: EntityId) -> StoreResult<Vec<Integration>> {
        integrations::list_integrations(&mut *self.connection().await?, team).await
    }

    async fn integration(&self, id: IntegrationId) -> StoreResult<Option<Integration>> {
        integrations::integration(&mut *self.connection().await?, id).await
    }

    async fn integration_by_name(&self, team: EntityId, name: &str) -> StoreResult<Option<Integration>> {
        integrations::integration_by_name(&mut *self.connection().await?, team, name).await
    }

    async fn delete_integration(&self, id: IntegrationId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        integrations::delete_integration(&mut tx, id).await?;
        commit(tx, ()).await
    }

    async fn create_automation(&self, automation: NewAutomation) -> StoreResult<Automation> {
        let mut tx = self.begin().await?;
        let created = automations::create_automation(&mut tx, automation).await?;
        commit(tx, created).await
    }

    async fn automation(&self, id: AutomationId) -> StoreResult<Option<Automation>> {
        automations::automation(&mut *self.connection().await?, id).await
    }

    async fn automation_project(&self, id: AutomationId) -> StoreResult<Option<ProjectId>> {
        automations::automation_project(&mut *self.connection().await?, id).await
    }

    async fn list_automations(&self, filter: AutomationFilter) -> StoreResult<Vec<Automation>> {
        automations::list_automations(&mut *self.connection().await?, filter).await
    }

    async fn update_automation(
        &self,
        id: AutomationId,
        project: ProjectId,
        spec: AutomationSpec,
        enabled: bool,
        editor: UserId,
    ) -> StoreResult<Automation> {
        let mut tx = self.begin().await?;
        let updated = automations::update_automation(&mut tx, id, project, spec, enabled, editor).await?;
        commit(tx, updated).await
    }

    async fn set_automation_enabled(&self, id: AutomationId, enabled: bool) -> StoreResult<Automation> {
        let mut tx = self.begin().await?;
        let updated = automations::set_automation_enabled(&mut tx, id, enabled).await?;
        commit(tx, updated).await
    }

    async fn delete_automation(&self, id: AutomationId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        automations::delete_automation(&mut tx, id).await?;
        commit(tx, ()).await
    }

    async fn evaluate_events(
        &self,
        max_events: usize,
        evaluator: Arc<dyn BatchEvaluator>,
    ) -> StoreResult<EvaluationReport> {
        let mut tx = self.begin().await?;
        let report = evaluation::evaluate_events(&mut tx, max_events, evaluator).await?;
        commit(tx, report).await
    }

    async fn claim_due_executions(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
        exclude: &[IntegrationId],
    ) -> StoreResult<Vec<ClaimedExecution>> {
        // One statement, so it needs no explicit transaction.
        executions::claim_due_executions(&mut *self.connection().await?, now, limit, lease, exclude).await
    }

    async fn record_attempt(&self, record: AttemptRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        executions::record_attempt(&mut tx, record).await?;
        commit(tx, ()).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<Timestamp>> {
        executions::next_due_at(&mut *self.connection().await?).await
    }

    async fn list_executions(&self, automation: AutomationId, page: Page<ExecutionId>) -> StoreResult<Vec<Execution>> {
        executions::list_executions(&mut *self.connection().await?, automation, page).await
    }

    async fn execution(&self, id: ExecutionId) -> StoreResult<Option<Execution>> {
        executions::execution(&mut *self.connection().await?, id).await
    }

    async fn list_attempts(&self, execution: ExecutionId) -> StoreResult<Vec<Attempt>> {
        executions::list_attempts(&mut *self.connection().await?, execution).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_debug_hides_password() {
        let options = PostgresOptions::new("postgres://herald:s3cret@db.internal:5432/herald");
        let printed = format!("{options:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("postgres://herald:***@db.internal:5432/herald"), "{printed}");
    }

    #[test]
    fn redact_url_keeps_url_without_password() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn redact_url_hides_unparsable_text() {
        assert_eq!(redact_url("host=db password=s3cret"), "<invalid URL>");
    }

    #[tokio::test]
    async fn connect_error_hides_password() {
        // Nothing listens on port 1 of the loopback address. The pool retries until the
        // acquire timeout, so a short one keeps the test fast.
        let options = PostgresOptions {
            acquire_timeout: Duration::from_millis(300),
            ..PostgresOptions::new("postgres://herald:s3cret@127.0.0.1:1/herald")
        };
        let error = PostgresStore::open(options).await.unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("database error: failed to connect to PostgreSQL at"), "{message}");
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
