//! Executions, their delivery claims and their attempts.

use std::time::Duration;

use herald_core::Timestamp;
use herald_core::ids::{AutomationId, ExecutionId, IntegrationId};
use herald_core::model::ExecutionState;
use herald_store::{
    Attempt, AttemptNext, AttemptRecord, ClaimedExecution, Execution, NewExecution, Page, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::convert::{backend, parse_enum, parse_id, parse_json, parse_optional_id};

pub fn insert_execution(connection: &Connection, execution: &NewExecution) -> StoreResult<()> {
    let next_attempt_at = (execution.state == ExecutionState::Pending).then_some(execution.created_at.millis());
    connection
        .prepare_cached(
            "INSERT INTO executions (id, automation_id, automation_name, revision, event_seq, event_line, event_type,
                                     run_id, state, action_type, integration_id, request_body, event_data,
                                     skip_reason, last_error, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17)
             ON CONFLICT DO NOTHING",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                execution.id.to_string(),
                execution.automation_id.to_string(),
                execution.automation_name,
                execution.revision,
                execution.event_seq,
                execution.event_line,
                execution.event_type,
                execution.run_id.map(|id| id.to_string()),
                execution.state.as_str(),
                execution.action_type,
                execution.integration_id.map(|id| id.to_string()),
                execution.request_body,
                execution.event_data.to_string(),
                execution.skip_reason,
                execution.error,
                next_attempt_at,
                execution.created_at.millis(),
            ])
        })
        .map_err(backend)?;
    Ok(())
}

/// Claims the earliest due executions: ?1 is the claim token, ?2 the lease end, ?3 now, ?4 the
/// limit and ?5 a JSON array of the integration ids to pass over.
///
/// The ids travel as one JSON array read by `json_each`, so the statement text is the same for
/// every claim and stays in the statement cache, whatever the number of ids. The query still
/// walks `executions_due` in due order and tests each row against the list, which SQLite
/// builds once per statement. `NOT IN` is NULL for a NULL integration, so executions without
/// an integration are kept by the `IS NULL` test.
const CLAIM_DUE_EXECUTIONS: &str = "
    UPDATE executions SET state = 'delivering', claim_token = ?1, next_attempt_at = ?2, updated_at = ?3
    WHERE id IN (SELECT id FROM executions
                 WHERE state IN ('pending', 'delivering') AND next_attempt_at <= ?3
                   AND (integration_id IS NULL OR integration_id NOT IN (SELECT value FROM json_each(?5)))
                 ORDER BY next_attempt_at LIMIT ?4)
    RETURNING id, integration_id, request_body, attempt_count";

/// Claims due executions, earliest first, passing over those of the integrations in `exclude`.
pub fn claim_due_executions(
    connection: &Connection,
    now: Timestamp,
    limit: usize,
    lease: Duration,
    exclude: &[IntegrationId],
) -> StoreResult<Vec<ClaimedExecution>> {
    let token = uuid::Uuid::now_v7().to_string();
    let lease_end = now.plus(lease);
    let excluded = serde_json::Value::from(exclude.iter().map(ToString::to_string).collect::<Vec<_>>()).to_string();
    let mut statement = connection.prepare_cached(CLAIM_DUE_EXECUTIONS).map_err(backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(params![token, lease_end.millis(), now.millis(), limit, excluded], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?, row.get(2)?, row.get(3)?))
        })
        .map_err(backend)?;
    rows.map(|row| {
        let (id, integration_id, request_body, attempt_count) = row.map_err(backend)?;
        Ok(ClaimedExecution {
            id: parse_id(&id)?,
            claim_token: token.clone(),
            integration_id: parse_optional_id(integration_id)?,
            request_body,
            attempt_count,
        })
    })
    .collect()
}

pub fn record_attempt(connection: &Connection, record: AttemptRecord) -> StoreResult<()> {
    let id = record.execution_id.to_string();
    let attempt = &record.attempt;
    let exists: Option<i64> = connection
        .query_row("SELECT 1 FROM executions WHERE id = ?1", [&id], |row| row.get(0))
        .optional()
        .map_err(backend)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("execution {id}")));
    }

    connection
        .prepare_cached(
            "INSERT INTO attempts (execution_id, number, started_at, duration_ms, status_code, response_body, error,
                                   succeeded)
             VALUES (?1, (SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE execution_id = ?1),
                     ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                id,
                attempt.started_at.millis(),
                attempt.duration_ms,
                attempt.status_code,
                attempt.response_body,
                attempt.error,
                attempt.succeeded
            ])
        })
        .map_err(backend)?;

    let (state, next_attempt_at) = match record.next {
        AttemptNext::Succeeded => (ExecutionState::Succeeded, None),
        AttemptNext::RetryAt(at) => (ExecutionState::Pending, Some(at.millis())),
        AttemptNext::Failed => (ExecutionState::Failed, None),
    };
    let updated = connection
        .prepare_cached(
            "UPDATE executions SET state = ?3, next_attempt_at = ?4, claim_token = NULL,
                                   attempt_count = attempt_count + 1, last_status_code = ?5, last_error = ?6,
                                   updated_at = ?7
             WHERE id = ?1 AND claim_token = ?2",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                id,
                record.claim_token,
                state.as_str(),
                next_attempt_at,
                attempt.status_code,
                attempt.error,
                Timestamp::now().millis()
            ])
        })
        .map_err(backend)?;
    if updated == 0 {
        tracing::warn!(execution.id = %id, "attempt recorded after its claim was taken over; the state is left to the newer claim");
    }
    Ok(())
}

pub fn next_due_at(connection: &Connection) -> StoreResult<Option<Timestamp>> {
    let next: Option<i64> = connection
        .prepare_cached("SELECT MIN(next_attempt_at) FROM executions WHERE state IN ('pending', 'delivering')")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(backend)?;
    Ok(next.map(Timestamp))
}

const EXECUTION_COLUMNS: &str = "id, automation_id, automation_name, revision, event_seq, event_type, run_id, state, \
     action_type, integration_id, request_body, event_data, skip_reason, attempt_count, next_attempt_at, \
     last_status_code, last_error, created_at, updated_at";

fn execution_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<Execution>> {
    let id: String = row.get(0)?;
    let automation_id: String = row.get(1)?;
    let run_id: Option<String> = row.get(6)?;
    let state: String = row.get(7)?;
    let integration_id: Option<String> = row.get(9)?;
    let event_data: String = row.get(11)?;
    let next_attempt_at: Option<i64> = row.get(14)?;
    let (automation_name, revision, event_seq, event_type) = (row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?);
    let (action_type, request_body, skip_reason, attempt_count) =
        (row.get(8)?, row.get(10)?, row.get(12)?, row.get(13)?);
    let (last_status_code, last_error, created_at, updated_at) =
        (row.get(15)?, row.get(16)?, row.get(17)?, row.get(18)?);

    Ok((|| {
        let state = parse_enum(&state, ExecutionState::parse, "execution state")?;
        Ok(Execution {
            id: parse_id(&id)?,
            automation_id: parse_id(&automation_id)?,
            automation_name,
            revision,
            event_seq,
            event_type,
            run_id: parse_optional_id(run_id)?,
            state,
            action_type,
            integration_id: parse_optional_id(integration_id)?,
            request_body,
            event_data: parse_json(&event_data)?,
            skip_reason,
            attempt_count,
            // While delivering, the column holds the lease's end, which is not a due time.
            next_attempt_at: next_attempt_at.filter(|_| state == ExecutionState::Pending).map(Timestamp),
            last_status_code,
            last_error,
            created_at: Timestamp(created_at),
            updated_at: Timestamp(updated_at),
        })
    })())
}

pub fn list_executions(
    connection: &Connection,
    automation: AutomationId,
    page: Page<ExecutionId>,
) -> StoreResult<Vec<Execution>> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions
         WHERE automation_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement
        .query_map(
            params![automation.to_string(), page.before.map(|id| id.to_string()), page.limit as i64],
            execution_from_row,
        )
        .map_err(backend)?;
    rows.map(|row| row.map_err(backend)?).collect()
}

pub fn execution(connection: &Connection, id: ExecutionId) -> StoreResult<Option<Execution>> {
    let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1");
    connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([id.to_string()], execution_from_row).optional())
        .map_err(backend)?
        .transpose()
}

pub fn list_attempts(connection: &Connection, execution: ExecutionId) -> StoreResult<Vec<Attempt>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT number, started_at, duration_ms, status_code, response_body, error, succeeded FROM attempts
             WHERE execution_id = ?1 ORDER BY number",
        )
        .map_err(backend)?;
    let rows = statement
        .query_map([execution.to_string()], |row| {
            Ok(Attempt {
                number: row.get(0)?,
                started_at: Timestamp(row.get(1)?),
                duration_ms: row.get(2)?,
                status_code: row.get(3)?,
                response_body: row.get(4)?,
                error: row.get(5)?,
                succeeded: row.get(6)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::CLAIM_DUE_EXECUTIONS;

    /// Returns the details of the query plan of a claim, one line per step.
    fn claim_plan() -> Vec<String> {
        let mut connection = Connection::open_in_memory().expect("in-memory database");
        crate::migrate::migrate(&mut connection).expect("migrations");
        let mut statement =
            connection.prepare(&format!("EXPLAIN QUERY PLAN {CLAIM_DUE_EXECUTIONS}")).expect("explain the claim");
        let parameters = rusqlite::params!["token", 2_000, 1_000, 10, r#"["0190b2d6-0000-7000-8000-000000000000"]"#];
        statement
            .query_map(parameters, |row| row.get::<_, String>(3))
            .expect("query plan")
            .collect::<Result<_, _>>()
            .expect("plan rows")
    }

    #[test]
    fn claim_walks_due_index_in_order() {
        let plan = claim_plan();
        assert!(plan.iter().any(|step| step.contains("USING INDEX executions_due")), "{plan:#?}");
        assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "the claim sorts its rows: {plan:#?}");
        assert!(!plan.iter().any(|step| step.starts_with("CORRELATED")), "the list is read per row: {plan:#?}");
    }
}
