//! Executions, their delivery claims and their attempts.

use std::time::Duration;

use herald_core::Timestamp;
use herald_core::ids::{AutomationId, ExecutionId, IntegrationId, RunId};
use herald_core::model::ExecutionState;
use herald_store::{
    Attempt, AttemptNext, AttemptRecord, ClaimedExecution, Execution, NewExecution, Page, StoreError, StoreResult,
};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::convert::{assembled, backend, column, limit, parse_enum, parse_json, without_nul};

pub async fn insert_execution(connection: &mut PgConnection, execution: &NewExecution) -> StoreResult<()> {
    let next_attempt_at = (execution.state == ExecutionState::Pending).then_some(execution.created_at.millis());
    sqlx::query(
        "INSERT INTO executions (id, automation_id, automation_name, revision, event_seq, event_line, event_type,
                                 run_id, state, action_type, integration_id, request_body, event_data,
                                 skip_reason, last_error, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
         ON CONFLICT DO NOTHING",
    )
    .bind(execution.id.0)
    .bind(execution.automation_id.0)
    .bind(&execution.automation_name)
    .bind(execution.revision)
    .bind(execution.event_seq)
    .bind(execution.event_line)
    .bind(&execution.event_type)
    .bind(execution.run_id.map(|id| id.0))
    .bind(execution.state.as_str())
    .bind(&execution.action_type)
    .bind(execution.integration_id.map(|id| id.0))
    .bind(&execution.request_body)
    .bind(execution.event_data.to_string())
    .bind(&execution.skip_reason)
    .bind(&execution.error)
    .bind(next_attempt_at)
    .bind(execution.created_at.millis())
    .execute(connection)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Claims due executions. `FOR UPDATE SKIP LOCKED` makes a dispatcher in another process pass
/// over the rows this one is claiming instead of waiting for them, so two claims never return
/// the same execution and neither blocks the other.
///
/// The excluded integrations travel as one array parameter, so the statement text is the same
/// for every claim. The planner still walks `executions_due` in due order and filters each row
/// with `<> ALL`, which is true for an empty array. A NULL integration makes `<> ALL` NULL,
/// so executions without an integration are kept by the `IS NULL` test.
pub async fn claim_due_executions(
    connection: &mut PgConnection,
    now: Timestamp,
    limit_rows: usize,
    lease: Duration,
    exclude: &[IntegrationId],
) -> StoreResult<Vec<ClaimedExecution>> {
    let token = uuid::Uuid::now_v7().to_string();
    let lease_end = now.plus(lease);
    let excluded: Vec<uuid::Uuid> = exclude.iter().map(|id| id.0).collect();
    let rows = sqlx::query(
        "WITH due AS (
             SELECT id, next_attempt_at AS due_at FROM executions
             WHERE state IN ('pending', 'delivering') AND next_attempt_at <= $3
               AND (integration_id IS NULL OR integration_id <> ALL($5))
             ORDER BY next_attempt_at LIMIT $4
             FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE executions e SET state = 'delivering', claim_token = $1, next_attempt_at = $2, updated_at = $3
             FROM due WHERE e.id = due.id
             RETURNING e.id, e.integration_id, e.request_body, e.attempt_count, due.due_at
         )
         SELECT id, integration_id, request_body, attempt_count FROM claimed ORDER BY due_at, id",
    )
    .bind(&token)
    .bind(lease_end.millis())
    .bind(now.millis())
    .bind(limit(limit_rows))
    .bind(&excluded)
    .fetch_all(connection)
    .await
    .map_err(backend)?;

    rows.iter()
        .map(|row| {
            let integration_id: Option<uuid::Uuid> = column(row, "integration_id")?;
            Ok(ClaimedExecution {
                id: ExecutionId(column(row, "id")?),
                claim_token: token.clone(),
                integration_id: integration_id.map(IntegrationId),
                request_body: column(row, "request_body")?,
                attempt_count: column(row, "attempt_count")?,
            })
        })
        .collect()
}

/// Records an attempt. The execution's row is locked first, which numbers concurrent attempts
/// of one execution one after another and makes the claim-token check see the newest claim.
pub async fn record_attempt(connection: &mut PgConnection, record: AttemptRecord) -> StoreResult<()> {
    let id = record.execution_id;
    let attempt = &record.attempt;
    let response_body = attempt.response_body.as_deref().map(without_nul);
    let error = attempt.error.as_deref().map(without_nul);
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM executions WHERE id = $1 FOR UPDATE")
        .bind(id.0)
        .fetch_optional(&mut *connection)
        .await
        .map_err(backend)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("execution {id}")));
    }

    sqlx::query(
        "INSERT INTO attempts (execution_id, number, started_at, duration_ms, status_code, response_body, error,
                               succeeded)
         VALUES ($1, (SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE execution_id = $1),
                 $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.0)
    .bind(attempt.started_at.millis())
    .bind(attempt.duration_ms)
    .bind(attempt.status_code)
    .bind(response_body.as_deref())
    .bind(error.as_deref())
    .bind(attempt.succeeded)
    .execute(&mut *connection)
    .await
    .map_err(backend)?;

    let (state, next_attempt_at) = match record.next {
        AttemptNext::Succeeded => (ExecutionState::Succeeded, None),
        AttemptNext::RetryAt(at) => (ExecutionState::Pending, Some(at.millis())),
        AttemptNext::Failed => (ExecutionState::Failed, None),
    };
    let updated = sqlx::query(
        "UPDATE executions SET state = $3, next_attempt_at = $4, claim_token = NULL,
                               attempt_count = attempt_count + 1, last_status_code = $5, last_error = $6,
                               updated_at = $7
         WHERE id = $1 AND claim_token = $2",
    )
    .bind(id.0)
    .bind(&record.claim_token)
    .bind(state.as_str())
    .bind(next_attempt_at)
    .bind(attempt.status_code)
    .bind(error.as_deref())
    .bind(Timestamp::now().millis())
    .execute(connection)
    .await
    .map_err(backend)?;
    if updated.rows_affected() == 0 {
        tracing::warn!(execution.id = %id, "attempt recorded after its claim was taken over; the state is left to the newer claim");
    }
    Ok(())
}

pub async fn next_due_at(connection: &mut PgConnection) -> StoreResult<Option<Timestamp>> {
    let next: Option<i64> =
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM executions WHERE state IN ('pending', 'delivering')")
            .fetch_one(connection)
            .await
            .map_err(backend)?;
    Ok(next.map(Timestamp))
}

const EXECUTION_COLUMNS: &str = "id, automation_id, automation_name, revision, event_seq, event_type, run_id, state, \
     action_type, integration_id, request_body, event_data, skip_reason, attempt_count, next_attempt_at, \
     last_status_code, last_error, created_at, updated_at";

fn execution_from_row(row: &PgRow) -> StoreResult<Execution> {
    let state: String = column(row, "state")?;
    let state = parse_enum(&state, ExecutionState::parse, "execution state")?;
    let run_id: Option<uuid::Uuid> = column(row, "run_id")?;
    let integration_id: Option<uuid::Uuid> = column(row, "integration_id")?;
    let event_data: String = column(row, "event_data")?;
    let next_attempt_at: Option<i64> = column(row, "next_attempt_at")?;
    Ok(Execution {
        id: ExecutionId(column(row, "id")?),
        automation_id: AutomationId(column(row, "automation_id")?),
        automation_name: column(row, "automation_name")?,
        revision: column(row, "revision")?,
        event_seq: column(row, "event_seq")?,
        event_type: column(row, "event_type")?,
        run_id: run_id.map(RunId),
        state,
        action_type: column(row, "action_type")?,
        integration_id: integration_id.map(IntegrationId),
        request_body: column(row, "request_body")?,
        event_data: parse_json(&event_data)?,
        skip_reason: column(row, "skip_reason")?,
        attempt_count: column(row, "attempt_count")?,
        // While delivering, the column holds the lease's end, which is not a due time.
        next_attempt_at: next_attempt_at.filter(|_| state == ExecutionState::Pending).map(Timestamp),
        last_status_code: column(row, "last_status_code")?,
        last_error: column(row, "last_error")?,
        created_at: Timestamp(column(row, "created_at")?),
        updated_at: Timestamp(column(row, "updated_at")?),
    })
}

pub async fn list_executions(
    connection: &mut PgConnection,
    automation: AutomationId,
    page: Page<ExecutionId>,
) -> StoreResult<Vec<Execution>> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions
         WHERE automation_id = $1 AND ($2::uuid IS NULL OR id < $2::uuid) ORDER BY id DESC LIMIT $3"
    );
    let rows = sqlx::query(assembled(sql))
        .bind(automation.0)
        .bind(page.before.map(|id| id.0))
        .bind(limit(page.limit))
        .fetch_all(connection)
        .await
        .map_err(backend)?;
    rows.iter().map(execution_from_row).collect()
}

pub async fn execution(connection: &mut PgConnection, id: ExecutionId) -> StoreResult<Option<Execution>> {
    let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
    let row = sqlx::query(assembled(sql)).bind(id.0).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(execution_from_row).transpose()
}

pub async fn list_attempts(connection: &mut PgConnection, execution: ExecutionId) -> StoreResult<Vec<Attempt>> {
    let rows = sqlx::query(
        "SELECT number, started_at, duration_ms, status_code, response_body, error, succeeded FROM attempts
         WHERE execution_id = $1 ORDER BY number",
    )
    .bind(execution.0)
    .fetch_all(connection)
    .await
    .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(Attempt {
                number: column(row, "number")?,
                started_at: Timestamp(column(row, "started_at")?),
                duration_ms: column(row, "duration_ms")?,
                status_code: column(row, "status_code")?,
                response_body: column(row, "response_body")?,
                error: column(row, "error")?,
                succeeded: column(row, "succeeded")?,
            })
        })
        .collect()
}
