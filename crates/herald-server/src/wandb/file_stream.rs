//! `POST /files/{entity}/{project}/{run}/file_stream`: the SDK's stream of run data.
//!
//! The SDK batches what a run logged and posts it about every 15 seconds, sends `{}` as a
//! heartbeat after 30 seconds without data, and ends with a request that carries
//! `complete: true` and the process exit code. The body looks like this:
//!
//! ```json
//! {"files": {"wandb-history.jsonl": {"offset": 3, "content": ["{\"_step\":3,\"loss\":NaN}"]},
//!            "wandb-summary.json": {"offset": 0, "content": ["{\"loss\":NaN}"]}},
//!  "uploaded": ["config.yaml"], "complete": true, "exitcode": 0}
//! ```
//!
//! `offset` is the absolute line index of the first content line. A retried or resumed
//! request sends the same indexes again, so history lines are upserted by index. Every line
//! is parsed and checked before anything is stored, and one request is one
//! [`herald_store::Store::apply_file_stream`] transaction, so a bad line stores nothing.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use herald_core::Timestamp;
use herald_core::error::quote_value;
use herald_core::wandb_json::parse_lenient;
use herald_store::{FileStreamBatch, HistoryLine};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{authenticate_headers, check_project_name, find_run, find_writable_entity};
use super::body::read_json_body;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The file that carries one JSON object per `run.log` step.
pub const HISTORY_FILE: &str = "wandb-history.jsonl";

/// The file that carries the whole current summary as one JSON object.
pub const SUMMARY_FILE: &str = "wandb-summary.json";

/// The body of a file_stream request. Fields that Herald does not read yet, such as
/// `uploaded` and `preempting`, are ignored.
#[derive(Debug, Deserialize)]
struct FileStreamRequest {
    #[serde(default)]
    files: Option<HashMap<String, FileChunk>>,
    #[serde(default)]
    complete: Option<bool>,
    #[serde(default)]
    exitcode: Option<i64>,
}

/// New lines of one file, starting at line index `offset`.
#[derive(Debug, Deserialize)]
struct FileChunk {
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    content: Vec<String>,
}

/// Stores one file_stream request and returns `{}`, in which the SDK reads only `stopped`.
pub async fn handle_file_stream(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let caller = authenticate_headers(&state, request.headers()).await?;
    let Path((entity, project, run)) =
        path.map_err(|rejection| ApiError::bad_request(format!("invalid path: {}", rejection.body_text())))?;
    let body = read_json_body(&state, request).await?;
    let batch = parse_file_stream(&body, Timestamp::now())?;

    check_project_name("project", &project)?;
    let entity = find_writable_entity(&state, &caller, Some(&entity)).await?;
    let (_, run) = find_run(&state, &entity, &project, &run).await?;

    let history_lines = batch.history.len();
    let outcome = state.store.apply_file_stream(run.id, batch).await?;
    if outcome.events_recorded > 0 {
        state.wake_evaluator();
    }

    tracing::debug!(
        run.id = %run.id,
        history_lines,
        history_lines_written = outcome.history_lines_written,
        ended_as = ?outcome.ended_as,
        "file_stream applied"
    );
    Ok(Json(json!({})))
}

/// Parses a file_stream body into the batch to store, checking every line first.
fn parse_file_stream(body: &[u8], received_at: Timestamp) -> ApiResult<FileStreamBatch> {
    // Serde also fills a struct from a JSON list, so a list body would pass as a heartbeat
    // without this check.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(invalid_body("the body is not a JSON object"));
    }
    let request: FileStreamRequest = serde_json::from_slice(body).map_err(|error| invalid_body(&error.to_string()))?;

    let mut batch = FileStreamBatch { received_at, ..FileStreamBatch::default() };
    let files = request.files.unwrap_or_default();
    if let Some(chunk) = files.get(HISTORY_FILE) {
        batch.history = parse_history(chunk)?;
    }
    if let Some(chunk) = files.get(SUMMARY_FILE) {
        batch.summary = parse_summary(chunk)?;
    }
    // FIXME: `wandb-events.jsonl` (system metrics) and `output.log` (console lines) are
    // accepted but not stored, so RunResumeStatus reports 0 lines for both.

    // The SDK sends `complete` without `exitcode` only when the process ended normally.
    if request.complete == Some(true) {
        batch.exit_code = Some(request.exitcode.unwrap_or(0));
    }
    Ok(batch)
}

/// Parses history lines. Each must be a JSON object; bare `NaN`, `Infinity` and `-Infinity`
/// are accepted and stored as strings. The step is `_step`, or the line index for a row
/// without one.
fn parse_history(chunk: &FileChunk) -> ApiResult<Vec<HistoryLine>> {
    let first_line = check_offset(HISTORY_FILE, chunk)?;
    let mut lines = Vec::with_capacity(chunk.content.len());

    for (line, text) in (first_line..).zip(&chunk.content) {
        let value = parse_object_line(HISTORY_FILE, line, text)?;
        let step = history_step(line, &value)?;
        let data = serde_json::to_string(&value).map_err(ApiError::internal)?;
        lines.push(HistoryLine { line, step, data });
    }
    Ok(lines)
}

/// Returns a history row's step: its `_step`, which must be an integer from 0 to `i64::MAX`,
/// or the line index when the row has no `_step`.
///
/// A `_step` of another type is rejected instead of replaced, because metric windows order
/// rows by step and the `step` template variable reports it, so an invented step would put
/// the row in the wrong place.
fn history_step(line: i64, row: &Value) -> ApiResult<i64> {
    let Some(step) = row.get("_step") else {
        return Ok(line);
    };
    step.as_u64().and_then(|step| i64::try_from(step).ok()).ok_or_else(|| {
        invalid_line(
            HISTORY_FILE,
            line,
            format!(
                "has _step {}; _step must be an integer from 0 to {}, or absent to use the line index",
                quote_value(step),
                i64::MAX
            ),
        )
    })
}

/// Parses the summary: the last content line holds the whole current summary.
fn parse_summary(chunk: &FileChunk) -> ApiResult<Option<Value>> {
    let first_line = check_offset(SUMMARY_FILE, chunk)?;
    let Some(text) = chunk.content.last() else {
        return Ok(None);
    };
    let line = first_line.saturating_add(chunk.content.len() as i64 - 1);
    parse_object_line(SUMMARY_FILE, line, text).map(Some)
}

/// Checks that a chunk's line indexes are non-negative and fit in an `i64`.
fn check_offset(file: &str, chunk: &FileChunk) -> ApiResult<i64> {
    let count = i64::try_from(chunk.content.len()).unwrap_or(i64::MAX);
    if chunk.offset < 0 || chunk.offset.checked_add(count).is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_offset",
            format!("{file} has offset {}; an offset is the line index of the first line, 0 or more", chunk.offset),
        ));
    }
    Ok(chunk.offset)
}

fn parse_object_line(file: &str, line: i64, text: &str) -> ApiResult<Value> {
    let value = parse_lenient(text).map_err(|error| {
        invalid_line(file, line, format!("is not valid JSON ({error}); write one JSON object per line"))
    })?;
    if !value.is_object() {
        return Err(invalid_line(file, line, "is not a JSON object; write one JSON object per line".into()));
    }
    Ok(value)
}

fn invalid_body(problem: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_file_stream",
        format!(
            "the file_stream body is not valid: {problem}; send a JSON object such as \
             {{\"files\": {{\"{HISTORY_FILE}\": {{\"offset\": 0, \"content\": [\"{{}}\"]}}}}}}"
        ),
    )
}

fn invalid_line(file: &str, line: i64, problem: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_line", format!("{file} line {line} {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> ApiResult<FileStreamBatch> {
        parse_file_stream(body.as_bytes(), Timestamp(1))
    }

    #[test]
    fn history_lines_are_indexed_from_offset() {
        let body = r#"{"files":{"wandb-history.jsonl":{"offset":5,"content":["{\"_step\":9,\"a\":1}","{\"a\":2}"]}}}"#;
        let batch = parse(body).unwrap();
        assert_eq!(batch.history.len(), 2);
        assert_eq!((batch.history[0].line, batch.history[0].step), (5, 9));
        assert_eq!((batch.history[1].line, batch.history[1].step), (6, 6));
    }

    #[test]
    fn non_finite_numbers_become_strings() {
        let body = r#"{"files":{"wandb-history.jsonl":{"offset":0,"content":["{\"loss\":NaN,\"b\":-Infinity}"]}}}"#;
        let batch = parse(body).unwrap();
        assert_eq!(batch.history[0].data, r#"{"loss":"NaN","b":"-Infinity"}"#);
    }

    #[test]
    fn summary_takes_last_line() {
        let body = r#"{"files":{"wandb-summary.json":{"offset":0,"content":["{\"a\":1}","{\"a\":Infinity}"]}}}"#;
        let batch = parse(body).unwrap();
        assert_eq!(batch.summary, Some(json!({"a": "Infinity"})));
    }

    #[test]
    fn invalid_step_is_rejected() {
        for step in ["1.5", "-1", "\"3\"", "9223372036854775808", "1e3", "null", "NaN", "true", "[1]"] {
            let line = format!(r#"{{"_step":{step},"a":1}}"#);
            let body = json!({"files": {"wandb-history.jsonl": {"offset": 2, "content": ["{}", line]}}});
            let error = parse(&body.to_string()).unwrap_err();
            assert_eq!(error.code, "invalid_line", "{step}");
            assert!(error.detail.starts_with("wandb-history.jsonl line 3 has _step"), "{step}: {}", error.detail);
        }
    }

    #[test]
    fn largest_step_is_accepted() {
        let body = r#"{"files":{"wandb-history.jsonl":{"offset":0,"content":["{\"_step\":9223372036854775807}"]}}}"#;
        assert_eq!(parse(body).unwrap().history[0].step, i64::MAX);
    }

    #[test]
    fn complete_without_exit_code_means_zero() {
        assert_eq!(parse(r#"{"complete":true}"#).unwrap().exit_code, Some(0));
        assert_eq!(parse(r#"{"complete":true,"exitcode":3}"#).unwrap().exit_code, Some(3));
        assert_eq!(parse(r#"{"exitcode":3}"#).unwrap().exit_code, None);
    }

    #[test]
    fn heartbeat_is_an_empty_batch() {
        let batch = parse("{}").unwrap();
        assert!(batch.history.is_empty());
        assert_eq!(batch.summary, None);
        assert_eq!(batch.exit_code, None);
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let body = r#"{"files":{"wandb-history.jsonl":{"offset":7,"content":["{}","{oops"]}}}"#;
        let error = parse(body).unwrap_err();
        assert_eq!(error.code, "invalid_line");
        assert!(error.detail.starts_with("wandb-history.jsonl line 8 is not valid JSON"), "{}", error.detail);
    }

    #[test]
    fn non_object_line_is_rejected() {
        let body = r#"{"files":{"wandb-summary.json":{"offset":0,"content":["[1]"]}}}"#;
        let error = parse(body).unwrap_err();
        assert_eq!(error.code, "invalid_line");
        assert!(error.detail.contains("wandb-summary.json line 0"), "{}", error.detail);
    }

    #[test]
    fn negative_offset_is_rejected() {
        let body = r#"{"files":{"wandb-history.jsonl":{"offset":-1,"content":["{}"]}}}"#;
        assert_eq!(parse(body).unwrap_err().code, "invalid_offset");
    }

    #[test]
    fn malformed_body_is_rejected() {
        for body in ["", "[]", "{\"files\":3}", "{\"files\":{\"x\":{\"content\":\"a\"}}}"] {
            assert_eq!(parse(body).unwrap_err().code, "invalid_file_stream", "{body:?}");
        }
    }

    #[test]
    fn other_files_are_accepted() {
        let body = r#"{"files":{"output.log":{"offset":0,"content":["2026-01-01T00:00:00 hi"]},
                               "wandb-events.jsonl":{"offset":0,"content":["{\"system.cpu\":1}"]}}}"#;
        let batch = parse(body).unwrap();
        assert!(batch.history.is_empty());
    }
}
