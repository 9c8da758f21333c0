//! The evaluation transaction: events after the cursor in, executions and state out.
//!
//! A pass locks the cursor's row, numbers the committed events that have no position yet,
//! reads the events after the cursor in that order, runs the evaluator, and advances the
//! cursor, all in one transaction. The crate documentation explains why positions are
//! given here rather than when an event is inserted.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::Timestamp;
use herald_core::evaluate::MetricWindowState;
use herald_core::ids::{AutomationId, ProjectId, RunId};
use herald_store::{
    Automation, BatchEvaluator, EvaluationReport, EvaluationTx, EventKind, HistoryRow, NewExecution, RunContext,
    StoreError, StoreResult, StoredEvent,
};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::convert::{backend, column, limit, parse_enum, parse_json};
use crate::{automations, executions, runs};

/// The only evaluation shard so far, so every process evaluates all events, one pass at a time.
const SHARD: i32 = 0;

/// Evaluates up to `max_events` events after the cursor and advances the cursor. A failing
/// evaluator returns an error, and the caller rolls back the executions, the positions given
/// and the cursor together.
pub async fn evaluate_events(
    connection: &mut PgConnection,
    max_events: usize,
    evaluator: Arc<dyn BatchEvaluator>,
) -> StoreResult<EvaluationReport> {
    // The row lock serializes evaluation passes across every process sharing the database.
    let cursor: i64 = sqlx::query_scalar("SELECT last_seq FROM evaluator_cursor WHERE shard = $1 FOR UPDATE")
        .bind(SHARD)
        .fetch_optional(&mut *connection)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::Corrupt(format!("the evaluator cursor of shard {SHARD} is missing")))?;

    sequence_committed_events(connection, max_events).await?;
    let events = events_after(connection, cursor, max_events).await?;
    let Some(last) = events.last() else {
        return Ok(EvaluationReport::default());
    };
    let last_seq = last.seq;

    let mut tx = PgEvaluationTx { connection: &mut *connection };
    let report = evaluator.evaluate(&mut tx, &events).await?;

    sqlx::query("UPDATE evaluator_cursor SET last_seq = $2 WHERE shard = $1")
        .bind(SHARD)
        .bind(last_seq)
        .execute(connection)
        .await
        .map_err(backend)?;
    Ok(report)
}

/// Gives up to `max_events` committed events without a position the next positions after
/// the highest one given so far, in insertion order.
///
/// Only the holder of the cursor's row lock runs this, and this statement reads only
/// committed events, so every event numbered later gets a higher position than every
/// event numbered now. An event whose transaction commits late is therefore numbered late
/// and read after the cursor, never behind it.
async fn sequence_committed_events(connection: &mut PgConnection, max_events: usize) -> StoreResult<()> {
    sqlx::query(
        "WITH base AS (SELECT COALESCE(MAX(seq), 0) AS last_seq FROM events),
              waiting AS (SELECT id, row_number() OVER (ORDER BY id) AS position FROM events
                          WHERE seq IS NULL ORDER BY id LIMIT $1)
         UPDATE events e SET seq = base.last_seq + waiting.position
         FROM base, waiting WHERE e.id = waiting.id",
    )
    .bind(limit(max_events))
    .execute(connection)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn events_after(connection: &mut PgConnection, cursor: i64, max_events: usize) -> StoreResult<Vec<StoredEvent>> {
    let rows = sqlx::query(
        "SELECT seq, kind, project_id, run_id, data, created_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(cursor)
    .bind(limit(max_events))
    .fetch_all(connection)
    .await
    .map_err(backend)?;
    rows.iter().map(event_from_row).collect()
}

fn event_from_row(row: &PgRow) -> StoreResult<StoredEvent> {
    let kind: String = column(row, "kind")?;
    let run_id: Option<uuid::Uuid> = column(row, "run_id")?;
    let data: String = column(row, "data")?;
    Ok(StoredEvent {
        seq: column(row, "seq")?,
        kind: parse_enum(&kind, EventKind::parse, "event kind")?,
        project_id: ProjectId(column(row, "project_id")?),
        run_id: run_id.map(RunId),
        data: parse_json(&data)?,
        created_at: Timestamp(column(row, "created_at")?),
    })
}

/// The evaluator's view of the evaluation transaction.
pub struct PgEvaluationTx<'a> {
    connection: &'a mut PgConnection,
}

#[async_trait]
impl EvaluationTx for PgEvaluationTx<'_> {
    async fn run_context(&mut self, run: RunId) -> StoreResult<Option<RunContext>> {
        runs::run_context(self.connection, run).await
    }

    async fn active_automations(&mut self, project: ProjectId, event_type: &str) -> StoreResult<Vec<Automation>> {
        automations::active_automations(self.connection, project, event_type).await
    }

    async fn history_rows(&mut self, run: RunId, first_line: i64, last_line: i64) -> StoreResult<Vec<HistoryRow>> {
        runs::history_rows(self.connection, run, first_line, last_line).await
    }

    async fn history_rows_before(
        &mut self,
        run: RunId,
        before_line: i64,
        limit_rows: usize,
    ) -> StoreResult<Vec<HistoryRow>> {
        runs::history_rows_before(self.connection, run, before_line, limit_rows).await
    }

    async fn window_state(&mut self, automation: AutomationId, run: RunId) -> StoreResult<Option<MetricWindowState>> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT state FROM metric_states WHERE automation_id = $1 AND run_id = $2")
                .bind(automation.0)
                .bind(run.0)
                .fetch_optional(&mut *self.connection)
                .await
                .map_err(backend)?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|error| {
                StoreError::Corrupt(format!("invalid window state of automation {automation}: {error}"))
            })
        })
        .transpose()
    }

    async fn save_window_state(
        &mut self,
        automation: AutomationId,
        run: RunId,
        state: &MetricWindowState,
    ) -> StoreResult<()> {
        let text = serde_json::to_string(state).map_err(|error| StoreError::Backend(error.to_string()))?;
        sqlx::query(
            "INSERT INTO metric_states (automation_id, run_id, state) VALUES ($1, $2, $3)
             ON CONFLICT (automation_id, run_id) DO UPDATE SET state = excluded.state",
        )
        .bind(automation.0)
        .bind(run.0)
        .bind(text)
        .execute(&mut *self.connection)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn insert_execution(&mut self, execution: &NewExecution) -> StoreResult<()> {
        executions::insert_execution(self.connection, execution).await
    }
}
