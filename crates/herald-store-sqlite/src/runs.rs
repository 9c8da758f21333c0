//! Runs, their history and files, and the events that run writes record.

use herald_core::Timestamp;
use herald_core::ids::{ProjectId, RunId};
use herald_core::model::RunState;
use herald_store::{
    EventKind, FileStreamBatch, FileStreamOutcome, HistoryRow, Run, RunContext, RunFile, RunUpsert, StoreError,
    StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

use crate::convert::{backend, parse_enum, parse_id, parse_optional_json};

const RUN_COLUMNS: &str = "r.id, r.project_id, r.name, r.display_name, r.user_id, r.state, r.exit_code, r.config, \
     r.summary, r.tags, r.notes, r.group_name, r.job_type, r.host, r.history_line_count, r.created_at, r.updated_at, \
     r.heartbeat_at";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<Run>> {
    let id: String = row.get(0)?;
    let project_id: String = row.get(1)?;
    let user_id: String = row.get(4)?;
    let state: String = row.get(5)?;
    let config: Option<String> = row.get(7)?;
    let summary: Option<String> = row.get(8)?;
    let tags: String = row.get(9)?;
    let fields = (row.get(2)?, row.get(3)?, row.get(6)?, row.get(10)?, row.get(11)?, row.get(12)?, row.get(13)?);
    let counts = (row.get(14)?, row.get(15)?, row.get(16)?, row.get(17)?);

    Ok((|| {
        let (name, display_name, exit_code, notes, group, job_type, host) = fields;
        let (history_line_count, created_at, updated_at, heartbeat_at) = counts;
        Ok(Run {
            id: parse_id(&id)?,
            project_id: parse_id(&project_id)?,
            name,
            display_name,
            user_id: parse_id(&user_id)?,
            state: parse_enum(&state, RunState::parse, "run state")?,
            exit_code,
            config: parse_optional_json(config)?,
            summary: parse_optional_json(summary)?,
            tags: serde_json::from_str(&tags)
                .map_err(|error| StoreError::Corrupt(format!("invalid stored tags: {error}")))?,
            notes,
            group,
            job_type,
            host,
            history_line_count,
            created_at: Timestamp(created_at),
            updated_at: Timestamp(updated_at),
            heartbeat_at: Timestamp(heartbeat_at),
        })
    })())
}

pub fn run_by_name(connection: &Connection, project: ProjectId, name: &str) -> StoreResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.project_id = ?1 AND r.name = ?2");
    connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row(params![project.to_string(), name], run_from_row).optional())
        .map_err(backend)?
        .transpose()
}

fn run_by_id(connection: &Connection, id: RunId) -> StoreResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ?1");
    connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([id.to_string()], run_from_row).optional())
        .map_err(backend)?
        .transpose()
}

pub fn run_context(connection: &Connection, id: RunId) -> StoreResult<Option<RunContext>> {
    let Some(run) = run_by_id(connection, id)? else {
        return Ok(None);
    };
    let names = connection
        .prepare_cached(
            "SELECT p.name, e.name, u.name FROM projects p JOIN entities e ON e.id = p.entity_id, users u
             WHERE p.id = ?1 AND u.id = ?2",
        )
        .and_then(|mut statement| {
            statement
                .query_row([run.project_id.to_string(), run.user_id.to_string()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })
        .map_err(backend)?;
    let Some((project_name, entity_name, user_name)) = names else {
        return Err(StoreError::Corrupt(format!("run {id} refers to a missing project or user")));
    };
    Ok(Some(RunContext { run, project_name, entity_name, user_name }))
}

pub fn upsert_run(connection: &Connection, project: ProjectId, upsert: RunUpsert) -> StoreResult<(Run, bool)> {
    let now = Timestamp::now();
    let existing = run_by_name(connection, project, &upsert.name)?;
    let config = upsert.config.as_ref().map(Value::to_string);
    let tags = upsert.tags.as_ref().map(|tags| json!(tags).to_string());

    let Some(existing) = existing else {
        let Some(user_id) = upsert.user_id else {
            return Err(StoreError::Backend("a new run needs the id of the user who logs it".into()));
        };
        let id = RunId::new();
        connection
            .execute(
                "INSERT INTO runs (id, project_id, name, display_name, user_id, state, config, tags, notes, group_name,
                                   job_type, host, created_at, updated_at, heartbeat_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'RUNNING', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?12)",
                params![
                    id.to_string(),
                    project.to_string(),
                    upsert.name,
                    upsert.display_name.as_deref().unwrap_or(&upsert.name),
                    user_id.to_string(),
                    config,
                    tags.unwrap_or_else(|| "[]".into()),
                    upsert.notes,
                    upsert.group,
                    upsert.job_type,
                    upsert.host,
                    now.millis(),
                ],
            )
            .map_err(backend)?;
        let run = run_by_id(connection, id)?.ok_or_else(|| StoreError::Backend("a new run vanished".into()))?;
        return Ok((run, true));
    };

    connection
        .execute(
            "UPDATE runs SET display_name = COALESCE(?2, display_name), config = COALESCE(?3, config),
                             tags = COALESCE(?4, tags), notes = COALESCE(?5, notes),
                             group_name = COALESCE(?6, group_name), job_type = COALESCE(?7, job_type),
                             host = COALESCE(?8, host), updated_at = ?9, heartbeat_at = ?9
             WHERE id = ?1",
            params![
                existing.id.to_string(),
                upsert.display_name,
                config,
                tags,
                upsert.notes,
                upsert.group,
                upsert.job_type,
                upsert.host,
                now.millis()
            ],
        )
        .map_err(backend)?;

    // A client that upserts a run which has ended is resuming it.
    if existing.state.is_terminal() {
        connection
            .execute("UPDATE runs SET state = 'RUNNING', exit_code = NULL WHERE id = ?1", [existing.id.to_string()])
            .map_err(backend)?;
        let data = json!({"state": "RUNNING", "previous": existing.state.as_str(), "exit_code": null});
        insert_event(connection, EventKind::RunState, project, Some(existing.id), &data, now)?;
    }

    let run =
        run_by_id(connection, existing.id)?.ok_or_else(|| StoreError::Backend("an updated run vanished".into()))?;
    Ok((run, false))
}

pub fn apply_file_stream(
    connection: &Connection,
    run_id: RunId,
    batch: FileStreamBatch,
) -> StoreResult<FileStreamOutcome> {
    let Some(run) = run_by_id(connection, run_id)? else {
        return Err(StoreError::NotFound(format!("run {run_id}")));
    };
    let now = batch.received_at;
    let mut outcome = FileStreamOutcome::default();

    let mut changed_lines: Option<(i64, i64)> = None;
    let mut next_line = run.history_line_count;
    {
        let mut upsert = connection
            .prepare_cached(
                "INSERT INTO history (run_id, line, step, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (run_id, line) DO UPDATE SET step = excluded.step, data = excluded.data
                 WHERE history.data IS NOT excluded.data",
            )
            .map_err(backend)?;
        let run_key = run_id.to_string();
        for line in &batch.history {
            let changed = upsert.execute(params![run_key, line.line, line.step, line.data]).map_err(backend)?;
            next_line = next_line.max(line.line.saturating_add(1));
            if changed == 0 {
                continue;
            }
            outcome.history_lines_written += 1;
            changed_lines = Some(match changed_lines {
                None => (line.line, line.line),
                Some((first, last)) => (first.min(line.line), last.max(line.line)),
            });
        }
    }

    let summary = batch.summary.as_ref().map(Value::to_string);
    connection
        .prepare_cached(
            "UPDATE runs SET history_line_count = ?2, summary = COALESCE(?3, summary), heartbeat_at = ?4,
                             updated_at = ?4
             WHERE id = ?1",
        )
        .and_then(|mut statement| statement.execute(params![run_id.to_string(), next_line, summary, now.millis()]))
        .map_err(backend)?;

    if let Some((first_line, last_line)) = changed_lines {
        // The rows were logged while the run had its state from before this request, which
        // the evaluator needs because the same request may also end the run.
        let data = json!({
            "first_line": first_line,
            "last_line": last_line,
            "lines": outcome.history_lines_written,
            "run_state": run.state.as_str(),
        });
        insert_event(connection, EventKind::RunHistory, run.project_id, Some(run_id), &data, now)?;
        outcome.events_recorded += 1;
    }

    // A repeated final request finds the run already ended and changes nothing.
    if let Some(exit_code) = batch.exit_code
        && !run.state.is_terminal()
    {
        let state = RunState::from_exit_code(exit_code);
        connection
            .execute(
                "UPDATE runs SET state = ?2, exit_code = ?3 WHERE id = ?1",
                params![run_id.to_string(), state.as_str(), exit_code],
            )
            .map_err(backend)?;
        let data = json!({"state": state.as_str(), "previous": run.state.as_str(), "exit_code": exit_code});
        insert_event(connection, EventKind::RunState, run.project_id, Some(run_id), &data, now)?;
        outcome.events_recorded += 1;
        outcome.ended_as = Some(state);
    }
    Ok(outcome)
}

/// Appends an event for the evaluator. Callers run it in the transaction of the write that
/// caused the event.
pub fn insert_event(
    connection: &Connection,
    kind: EventKind,
    project: ProjectId,
    run: Option<RunId>,
    data: &Value,
    now: Timestamp,
) -> StoreResult<()> {
    connection
        .prepare_cached("INSERT INTO events (kind, project_id, run_id, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
        .and_then(|mut statement| {
            statement.execute(params![
                kind.as_str(),
                project.to_string(),
                run.map(|id| id.to_string()),
                data.to_string(),
                now.millis()
            ])
        })
        .map_err(backend)?;
    Ok(())
}

fn history_from_row(row: &Row<'_>) -> rusqlite::Result<HistoryRow> {
    Ok(HistoryRow { line: row.get(0)?, step: row.get(1)?, data: row.get(2)? })
}

pub fn history(connection: &Connection, run: RunId, from_line: i64, limit: usize) -> StoreResult<Vec<HistoryRow>> {
    let mut statement = connection
        .prepare_cached("SELECT line, step, data FROM history WHERE run_id = ?1 AND line >= ?2 ORDER BY line LIMIT ?3")
        .map_err(backend)?;
    let rows =
        statement.query_map(params![run.to_string(), from_line, limit as i64], history_from_row).map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

pub fn history_rows(
    connection: &Connection,
    run: RunId,
    first_line: i64,
    last_line: i64,
) -> StoreResult<Vec<HistoryRow>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT line, step, data FROM history WHERE run_id = ?1 AND line BETWEEN ?2 AND ?3 ORDER BY line",
        )
        .map_err(backend)?;
    let rows =
        statement.query_map(params![run.to_string(), first_line, last_line], history_from_row).map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

pub fn history_rows_before(
    connection: &Connection,
    run: RunId,
    before_line: i64,
    limit: usize,
) -> StoreResult<Vec<HistoryRow>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT line, step, data FROM history WHERE run_id = ?1 AND line < ?2 ORDER BY line DESC LIMIT ?3",
        )
        .map_err(backend)?;
    let rows =
        statement.query_map(params![run.to_string(), before_line, limit as i64], history_from_row).map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

pub fn put_run_file(connection: &Connection, run: RunId, file: RunFile) -> StoreResult<()> {
    connection
        .execute(
            "INSERT INTO run_files (run_id, name, digest, size, uploaded_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (run_id, name) DO UPDATE SET digest = excluded.digest, size = excluded.size,
                                                      uploaded_at = excluded.uploaded_at",
            params![run.to_string(), file.name, file.digest, file.size, file.uploaded_at.millis()],
        )
        .map_err(backend)?;
    Ok(())
}

pub fn list_run_files(connection: &Connection, run: RunId) -> StoreResult<Vec<RunFile>> {
    let mut statement = connection
        .prepare_cached("SELECT name, digest, size, uploaded_at FROM run_files WHERE run_id = ?1 ORDER BY name")
        .map_err(backend)?;
    let rows = statement
        .query_map([run.to_string()], |row| {
            Ok(RunFile {
                name: row.get(0)?,
                digest: row.get(1)?,
                size: row.get(2)?,
                uploaded_at: Timestamp(row.get(3)?),
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}
