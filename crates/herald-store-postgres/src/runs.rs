//! Runs, their history and files, and the events that run writes record.

use std::collections::BTreeMap;

use herald_core::Timestamp;
use herald_core::ids::{ProjectId, RunId, UserId};
use herald_core::model::RunState;
use herald_store::{
    EventKind, FileStreamBatch, FileStreamOutcome, HistoryLine, HistoryRow, Run, RunContext, RunFile, RunUpsert,
    StoreError, StoreResult,
};
use serde_json::{Value, json};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::convert::{assembled, backend, column, limit, parse_enum, parse_optional_json};

const RUN_COLUMNS: &str = "r.id, r.project_id, r.name, r.display_name, r.user_id, r.state, r.exit_code, r.config, \
     r.summary, r.tags, r.notes, r.group_name, r.job_type, r.host, r.history_line_count, r.created_at, r.updated_at, \
     r.heartbeat_at";

fn run_from_row(row: &PgRow) -> StoreResult<Run> {
    let state: String = column(row, "state")?;
    let tags: String = column(row, "tags")?;
    Ok(Run {
        id: RunId(column(row, "id")?),
        project_id: ProjectId(column(row, "project_id")?),
        name: column(row, "name")?,
        display_name: column(row, "display_name")?,
        user_id: UserId(column(row, "user_id")?),
        state: parse_enum(&state, RunState::parse, "run state")?,
        exit_code: column(row, "exit_code")?,
        config: parse_optional_json(column(row, "config")?)?,
        summary: parse_optional_json(column(row, "summary")?)?,
        tags: serde_json::from_str(&tags)
            .map_err(|error| StoreError::Corrupt(format!("invalid stored tags: {error}")))?,
        notes: column(row, "notes")?,
        group: column(row, "group_name")?,
        job_type: column(row, "job_type")?,
        host: column(row, "host")?,
        history_line_count: column(row, "history_line_count")?,
        created_at: Timestamp(column(row, "created_at")?),
        updated_at: Timestamp(column(row, "updated_at")?),
        heartbeat_at: Timestamp(column(row, "heartbeat_at")?),
    })
}

pub async fn run_by_name(connection: &mut PgConnection, project: ProjectId, name: &str) -> StoreResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.project_id = $1 AND r.name = $2");
    let row =
        sqlx::query(assembled(sql)).bind(project.0).bind(name).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(run_from_row).transpose()
}

/// Reads a run, locking its row until the transaction ends when `lock` is set. Writes to a
/// run lock it first, so that concurrent requests for the same run apply one after another
/// and record their events in the order they commit.
async fn run_by_id(connection: &mut PgConnection, id: RunId, lock: bool) -> StoreResult<Option<Run>> {
    let lock_clause = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = $1{lock_clause}");
    let row = sqlx::query(assembled(sql)).bind(id.0).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(run_from_row).transpose()
}

pub async fn run_context(connection: &mut PgConnection, id: RunId) -> StoreResult<Option<RunContext>> {
    let Some(run) = run_by_id(connection, id, false).await? else {
        return Ok(None);
    };
    let names: Option<(String, String, String)> = sqlx::query_as(
        "SELECT p.name, e.name, u.name FROM projects p JOIN entities e ON e.id = p.entity_id, users u
         WHERE p.id = $1 AND u.id = $2",
    )
    .bind(run.project_id.0)
    .bind(run.user_id.0)
    .fetch_optional(connection)
    .await
    .map_err(backend)?;
    let Some((project_name, entity_name, user_name)) = names else {
        return Err(StoreError::Corrupt(format!("run {id} refers to a missing project or user")));
    };
    Ok(Some(RunContext { run, project_name, entity_name, user_name }))
}

pub async fn upsert_run(
    connection: &mut PgConnection,
    project: ProjectId,
    upsert: RunUpsert,
) -> StoreResult<(Run, bool)> {
    let now = Timestamp::now();
    let existing = match locked_run_by_name(connection, project, &upsert.name).await? {
        Some(run) => run,
        None => {
            if let Some(created) = insert_run(connection, project, &upsert, now).await? {
                return Ok((created, true));
            }
            // Another transaction created the run between the lookup and the insert, and
            // has committed by now, so this request updates it instead.
            locked_run_by_name(connection, project, &upsert.name)
                .await?
                .ok_or_else(|| StoreError::Backend("a run that conflicted on insert vanished".into()))?
        }
    };

    update_run_fields(connection, existing.id, &upsert, now).await?;

    // A client that upserts a run which has ended is resuming it.
    if existing.state.is_terminal() {
        sqlx::query("UPDATE runs SET state = 'RUNNING', exit_code = NULL WHERE id = $1")
            .bind(existing.id.0)
            .execute(&mut *connection)
            .await
            .map_err(backend)?;
        let data = json!({"state": "RUNNING", "previous": existing.state.as_str(), "exit_code": null});
        insert_event(connection, EventKind::RunState, project, Some(existing.id), &data, now).await?;
    }

    let run = run_by_id(connection, existing.id, false)
        .await?
        .ok_or_else(|| StoreError::Backend("an updated run vanished".into()))?;
    Ok((run, false))
}

async fn locked_run_by_name(connection: &mut PgConnection, project: ProjectId, name: &str) -> StoreResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.project_id = $1 AND r.name = $2 FOR UPDATE");
    let row =
        sqlx::query(assembled(sql)).bind(project.0).bind(name).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(run_from_row).transpose()
}

/// Inserts a new run. Returns `None` when a concurrent transaction created a run of the
/// same name first.
async fn insert_run(
    connection: &mut PgConnection,
    project: ProjectId,
    upsert: &RunUpsert,
    now: Timestamp,
) -> StoreResult<Option<Run>> {
    let Some(user_id) = upsert.user_id else {
        return Err(StoreError::Backend("a new run needs the id of the user who logs it".into()));
    };
    let tags = upsert.tags.as_ref().map_or_else(|| "[]".to_owned(), |tags| json!(tags).to_string());

    // FIXME: PostgreSQL rejects NUL characters in TEXT, so a run field that contains one fails
    // here and in `update_run_fields` with a backend error, while SQLite stores it. The API
    // should reject such fields as invalid input before they reach a store.
    let id = RunId::new();
    let inserted = sqlx::query(
        "INSERT INTO runs (id, project_id, name, display_name, user_id, state, config, tags, notes, group_name,
                           job_type, host, created_at, updated_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, 'RUNNING', $6, $7, $8, $9, $10, $11, $12, $12, $12)
         ON CONFLICT (project_id, name) DO NOTHING",
    )
    .bind(id.0)
    .bind(project.0)
    .bind(&upsert.name)
    .bind(upsert.display_name.as_deref().unwrap_or(&upsert.name))
    .bind(user_id.0)
    .bind(upsert.config.as_ref().map(Value::to_string))
    .bind(tags)
    .bind(&upsert.notes)
    .bind(&upsert.group)
    .bind(&upsert.job_type)
    .bind(&upsert.host)
    .bind(now.millis())
    .execute(&mut *connection)
    .await
    .map_err(backend)?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    run_by_id(connection, id, false).await?.ok_or_else(|| StoreError::Backend("a new run vanished".into())).map(Some)
}

async fn update_run_fields(
    connection: &mut PgConnection,
    id: RunId,
    upsert: &RunUpsert,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE runs SET display_name = COALESCE($2, display_name), config = COALESCE($3, config),
                         tags = COALESCE($4, tags), notes = COALESCE($5, notes),
                         group_name = COALESCE($6, group_name), job_type = COALESCE($7, job_type),
                         host = COALESCE($8, host), updated_at = $9, heartbeat_at = $9
         WHERE id = $1",
    )
    .bind(id.0)
    .bind(&upsert.display_name)
    .bind(upsert.config.as_ref().map(Value::to_string))
    .bind(upsert.tags.as_ref().map(|tags| json!(tags).to_string()))
    .bind(&upsert.notes)
    .bind(&upsert.group)
    .bind(&upsert.job_type)
    .bind(&upsert.host)
    .bind(now.millis())
    .execute(connection)
    .await
    .map_err(backend)?;
    Ok(())
}

pub async fn apply_file_stream(
    connection: &mut PgConnection,
    run_id: RunId,
    batch: FileStreamBatch,
) -> StoreResult<FileStreamOutcome> {
    let Some(run) = run_by_id(connection, run_id, true).await? else {
        return Err(StoreError::NotFound(format!("run {run_id}")));
    };
    let now = batch.received_at;
    let mut outcome = FileStreamOutcome::default();

    let written = upsert_history(connection, run_id, &batch.history).await?;
    outcome.history_lines_written = written.len();
    let next_line = batch.history.iter().map(|line| line.line.saturating_add(1)).fold(run.history_line_count, i64::max);

    sqlx::query(
        "UPDATE runs SET history_line_count = $2, summary = COALESCE($3, summary), heartbeat_at = $4, updated_at = $4
         WHERE id = $1",
    )
    .bind(run_id.0)
    .bind(next_line)
    .bind(batch.summary.as_ref().map(Value::to_string))
    .bind(now.millis())
    .execute(&mut *connection)
    .await
    .map_err(backend)?;

    if let (Some(first_line), Some(last_line)) = (written.iter().min(), written.iter().max()) {
        // The rows were logged while the run had its state from before this request, which
        // the evaluator needs because the same request may also end the run.
        let data = json!({
            "first_line": first_line,
            "last_line": last_line,
            "lines": written.len(),
            "run_state": run.state.as_str(),
        });
        insert_event(connection, EventKind::RunHistory, run.project_id, Some(run_id), &data, now).await?;
        outcome.events_recorded += 1;
    }

    // A repeated final request finds the run already ended and changes nothing.
    if let Some(exit_code) = batch.exit_code
        && !run.state.is_terminal()
    {
        let state = RunState::from_exit_code(exit_code);
        sqlx::query("UPDATE runs SET state = $2, exit_code = $3 WHERE id = $1")
            .bind(run_id.0)
            .bind(state.as_str())
            .bind(exit_code)
            .execute(&mut *connection)
            .await
            .map_err(backend)?;
        let data = json!({"state": state.as_str(), "previous": run.state.as_str(), "exit_code": exit_code});
        insert_event(connection, EventKind::RunState, run.project_id, Some(run_id), &data, now).await?;
        outcome.events_recorded += 1;
        outcome.ended_as = Some(state);
    }
    Ok(outcome)
}

/// Upserts a request's history lines in one statement and returns the indexes of the
/// lines it inserted or changed. Lines whose stored content is identical are not written.
///
/// `ON CONFLICT DO UPDATE` may not touch one row twice in a statement, so when a request
/// carries the same line index more than once, only its last occurrence is written.
async fn upsert_history(
    connection: &mut PgConnection,
    run_id: RunId,
    history: &[HistoryLine],
) -> StoreResult<Vec<i64>> {
    if history.is_empty() {
        return Ok(Vec::new());
    }
    let last_by_line: BTreeMap<i64, &HistoryLine> = history.iter().map(|line| (line.line, line)).collect();
    let lines: Vec<i64> = last_by_line.keys().copied().collect();
    let steps: Vec<i64> = last_by_line.values().map(|line| line.step).collect();
    let data: Vec<&str> = last_by_line.values().map(|line| line.data.as_str()).collect();

    sqlx::query_scalar(
        "INSERT INTO history (run_id, line, step, data)
         SELECT $1, batch.line, batch.step, batch.data FROM UNNEST($2::bigint[], $3::bigint[], $4::text[])
             AS batch (line, step, data)
         ON CONFLICT (run_id, line) DO UPDATE SET step = excluded.step, data = excluded.data
             WHERE history.data IS DISTINCT FROM excluded.data
         RETURNING line",
    )
    .bind(run_id.0)
    .bind(&lines)
    .bind(&steps)
    .bind(&data)
    .fetch_all(connection)
    .await
    .map_err(backend)
}

/// Appends an event for the evaluator. Callers run it in the transaction of the write that
/// caused the event. The event gets its evaluation position (`seq`) later, from the first
/// evaluation pass that runs after this transaction commits.
pub async fn insert_event(
    connection: &mut PgConnection,
    kind: EventKind,
    project: ProjectId,
    run: Option<RunId>,
    data: &Value,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO events (kind, project_id, run_id, data, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(kind.as_str())
        .bind(project.0)
        .bind(run.map(|id| id.0))
        .bind(data.to_string())
        .bind(now.millis())
        .execute(connection)
        .await
        .map_err(backend)?;
    Ok(())
}

fn history_from_row(row: &PgRow) -> StoreResult<HistoryRow> {
    Ok(HistoryRow { line: column(row, "line")?, step: column(row, "step")?, data: column(row, "data")? })
}

pub async fn history(
    connection: &mut PgConnection,
    run: RunId,
    from_line: i64,
    limit_rows: usize,
) -> StoreResult<Vec<HistoryRow>> {
    let rows =
        sqlx::query("SELECT line, step, data FROM history WHERE run_id = $1 AND line >= $2 ORDER BY line LIMIT $3")
            .bind(run.0)
            .bind(from_line)
            .bind(limit(limit_rows))
            .fetch_all(connection)
            .await
            .map_err(backend)?;
    rows.iter().map(history_from_row).collect()
}

pub async fn history_rows(
    connection: &mut PgConnection,
    run: RunId,
    first_line: i64,
    last_line: i64,
) -> StoreResult<Vec<HistoryRow>> {
    let rows =
        sqlx::query("SELECT line, step, data FROM history WHERE run_id = $1 AND line BETWEEN $2 AND $3 ORDER BY line")
            .bind(run.0)
            .bind(first_line)
            .bind(last_line)
            .fetch_all(connection)
            .await
            .map_err(backend)?;
    rows.iter().map(history_from_row).collect()
}

pub async fn history_rows_before(
    connection: &mut PgConnection,
    run: RunId,
    before_line: i64,
    limit_rows: usize,
) -> StoreResult<Vec<HistoryRow>> {
    let rows =
        sqlx::query("SELECT line, step, data FROM history WHERE run_id = $1 AND line < $2 ORDER BY line DESC LIMIT $3")
            .bind(run.0)
            .bind(before_line)
            .bind(limit(limit_rows))
            .fetch_all(connection)
            .await
            .map_err(backend)?;
    rows.iter().map(history_from_row).collect()
}

pub async fn put_run_file(connection: &mut PgConnection, run: RunId, file: RunFile) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO run_files (run_id, name, digest, size, uploaded_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (run_id, name) DO UPDATE SET digest = excluded.digest, size = excluded.size,
                                                  uploaded_at = excluded.uploaded_at",
    )
    .bind(run.0)
    .bind(&file.name)
    .bind(&file.digest)
    .bind(file.size)
    .bind(file.uploaded_at.millis())
    .execute(connection)
    .await
    .map_err(backend)?;
    Ok(())
}

pub async fn list_run_files(connection: &mut PgConnection, run: RunId) -> StoreResult<Vec<RunFile>> {
    let rows = sqlx::query("SELECT name, digest, size, uploaded_at FROM run_files WHERE run_id = $1 ORDER BY name")
        .bind(run.0)
        .fetch_all(connection)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(RunFile {
                name: column(row, "name")?,
                digest: column(row, "digest")?,
                size: column(row, "size")?,
                uploaded_at: Timestamp(column(row, "uploaded_at")?),
            })
        })
        .collect()
}
