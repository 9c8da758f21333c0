//! The evaluation transaction: events after the cursor in, executions and state out.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::Timestamp;
use herald_core::evaluate::MetricWindowState;
use herald_core::ids::{AutomationId, ProjectId, RunId};
use herald_store::{
    Automation, BatchEvaluator, EvaluationReport, EvaluationTx, EventKind, HistoryRow, NewExecution, RunContext,
    StoreError, StoreResult, StoredEvent,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::convert::{backend, parse_enum, parse_id, parse_json, parse_optional_id};
use crate::{automations, executions, runs};

/// Evaluates up to `max_events` events after the cursor and advances the cursor. Runs on
/// the writer thread, inside the write job's savepoint, so a failing evaluator rolls back
/// its executions and the cursor together.
pub fn evaluate_events(
    connection: &mut Connection,
    max_events: usize,
    evaluator: Arc<dyn BatchEvaluator>,
) -> StoreResult<EvaluationReport> {
    let cursor: i64 = connection
        .query_row("SELECT last_seq FROM evaluator_cursor WHERE shard = 0", [], |row| row.get(0))
        .map_err(backend)?;
    let events = events_after(connection, cursor, max_events)?;
    let Some(last) = events.last() else {
        return Ok(EvaluationReport::default());
    };
    let last_seq = last.seq;

    // The transaction's methods never wait on anything but this thread's own connection,
    // so driving the evaluator's future to completion here cannot deadlock.
    let mut tx = SqliteEvaluationTx { connection: &mut *connection };
    let report = futures::executor::block_on(evaluator.evaluate(&mut tx, &events))?;

    connection.execute("UPDATE evaluator_cursor SET last_seq = ?1 WHERE shard = 0", [last_seq]).map_err(backend)?;
    Ok(report)
}

fn events_after(connection: &Connection, cursor: i64, limit: usize) -> StoreResult<Vec<StoredEvent>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT seq, kind, project_id, run_id, data, created_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = statement
        .query_map(params![cursor, limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })
        .map_err(backend)?;
    rows.map(|row| {
        let (seq, kind, project_id, run_id, data, created_at) = row.map_err(backend)?;
        Ok(StoredEvent {
            seq,
            kind: parse_enum(&kind, EventKind::parse, "event kind")?,
            project_id: parse_id(&project_id)?,
            run_id: parse_optional_id(run_id)?,
            data: parse_json(&data)?,
            created_at: Timestamp(created_at),
        })
    })
    .collect()
}

/// Holds the connection mutably, which makes it `Send` as the evaluator requires.
struct SqliteEvaluationTx<'a> {
    connection: &'a mut Connection,
}

#[async_trait]
impl EvaluationTx for SqliteEvaluationTx<'_> {
    async fn run_context(&mut self, run: RunId) -> StoreResult<Option<RunContext>> {
        runs::run_context(&*self.connection, run)
    }

    async fn active_automations(&mut self, project: ProjectId, event_type: &str) -> StoreResult<Vec<Automation>> {
        automations::active_automations(&*self.connection, project, event_type)
    }

    async fn history_rows(&mut self, run: RunId, first_line: i64, last_line: i64) -> StoreResult<Vec<HistoryRow>> {
        runs::history_rows(&*self.connection, run, first_line, last_line)
    }

    async fn history_rows_before(
        &mut self,
        run: RunId,
        before_line: i64,
        limit: usize,
    ) -> StoreResult<Vec<HistoryRow>> {
        runs::history_rows_before(&*self.connection, run, before_line, limit)
    }

    async fn window_state(&mut self, automation: AutomationId, run: RunId) -> StoreResult<Option<MetricWindowState>> {
        let text: Option<String> = self
            .connection
            .prepare_cached("SELECT state FROM metric_states WHERE automation_id = ?1 AND run_id = ?2")
            .and_then(|mut statement| {
                statement.query_row([automation.to_string(), run.to_string()], |row| row.get(0)).optional()
            })
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
        self.connection
            .prepare_cached(
                "INSERT INTO metric_states (automation_id, run_id, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (automation_id, run_id) DO UPDATE SET state = excluded.state",
            )
            .and_then(|mut statement| statement.execute(params![automation.to_string(), run.to_string(), text]))
            .map_err(backend)?;
        Ok(())
    }

    async fn insert_execution(&mut self, execution: &NewExecution) -> StoreResult<()> {
        executions::insert_execution(&*self.connection, execution)
    }
}
