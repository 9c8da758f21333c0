//! Projects and runs: `model` (resume status), `upsertBucket` and `createRunFiles`.
//!
//! W&B's older names survive in its schema: a project is a "model" and a run a "bucket".
//! A run's `name` is the id that the SDK generates (8 base-36 characters), unique inside its
//! project; its `id` is Herald's own run id.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use herald_core::ValidationError;
use herald_core::wandb_json::parse_lenient;
use herald_store::{Project, Run, RunUpsert};
use serde_json::{Map, Value};

use super::RequestScope;
use super::entities::EntityNode;
use super::scalars::JsonString;
use crate::error::{ApiError, ApiResult};
use crate::wandb::access::{check_project_name, find_entity, find_run, find_writable_entity};
use crate::wandb::uploads::{UPLOAD_URL_LIFETIME, UploadGrant, sign_upload_token, validate_run_file_name};

/// How many history rows `historyTail` returns. The SDK reads only the last one, to
/// continue `_step` after it.
const HISTORY_TAIL_ROWS: usize = 10;

/// The maximum length of a run id, in characters.
// NOTE: W&B's own limit is unknown to Herald, so this one is a guess.
pub const MAX_RUN_NAME: usize = 128;

/// The characters a run id may not contain. The SDK rejects `: ; , # ? / '`, and Herald
/// also rejects `\` and `%`, because run ids appear in URL paths.
const RESERVED_RUN_NAME_CHARS: &[char] = &[':', ';', ',', '#', '?', '/', '\'', '\\', '%'];

// The limits below bound the run text that payload templates render (the display name) and
// that run filters match (display name, tags, group, job type and notes). One run then
// cannot make the evaluation or the deliveries of its project slow or large. The host is
// bounded like the other short labels. All are counted in characters.

/// The maximum length of a run's display name.
pub const MAX_RUN_DISPLAY_NAME: usize = 1_024;

/// The maximum length of a run's notes (`notes`, or W&B's older `description`).
pub const MAX_RUN_NOTES: usize = 65_536;

/// The maximum length of a run's group, job type and host.
pub const MAX_RUN_LABEL: usize = 256;

/// The maximum number of tags of one run.
pub const MAX_RUN_TAGS: usize = 1_000;

/// The maximum length of one run tag.
pub const MAX_RUN_TAG: usize = 256;

/// The `model` query.
#[derive(Default)]
pub struct RunQuery;

#[Object]
impl RunQuery {
    /// Finds a project by name in an entity, or in the caller's personal entity when
    /// `entityName` is null. Returns null when the project does not exist or the caller has
    /// no role in the entity. The SDK then treats the run as new, and `upsertBucket` reports
    /// the reason.
    async fn model(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        entity_name: Option<String>,
    ) -> Result<Option<ProjectNode>> {
        let scope = RequestScope::of(ctx)?;
        let Some(name) = name else {
            return Ok(None);
        };
        let project = visible_project(scope, entity_name.as_deref(), &name).await?;
        Ok(project.map(|project| ProjectNode { project }))
    }
}

/// Finds a project that the caller may read, turning "no such entity or project" and "no
/// role" into `None`.
async fn visible_project(scope: &RequestScope, entity_name: Option<&str>, name: &str) -> ApiResult<Option<Project>> {
    let entity = match find_entity(&scope.state, &scope.caller, entity_name).await {
        Ok(entity) => entity,
        Err(error) if error.status.is_client_error() => return Ok(None),
        Err(error) => return Err(error),
    };
    if check_project_name("name", name).is_err() || scope.caller.role_in(&scope.state, &entity).await?.is_none() {
        return Ok(None);
    }
    Ok(scope.state.store.project_by_name(entity.id, name).await?)
}

/// The `upsertBucket` and `createRunFiles` mutations.
#[derive(Default)]
pub struct RunMutation;

#[Object]
impl RunMutation {
    /// Creates or updates a run, creating its project when it does not exist, as W&B does.
    /// The caller needs the `member` role in the entity. Run state comes from file_stream,
    /// except that upserting a run that has ended resumes it.
    async fn upsert_bucket(&self, ctx: &Context<'_>, input: UpsertBucketInput) -> Result<Option<UpsertBucketPayload>> {
        let scope = RequestScope::of(ctx)?;
        Ok(Some(upsert_bucket(scope, input).await?))
    }

    /// Returns a signed upload URL for each named file of a run. The SDK then `PUT`s each
    /// file to its URL without an `Authorization` header.
    async fn create_run_files(&self, ctx: &Context<'_>, input: CreateRunFilesInput) -> Result<CreateRunFilesPayload> {
        let scope = RequestScope::of(ctx)?;
        Ok(create_run_files(scope, input).await?)
    }
}

/// W&B's `UpsertBucketInput`. The SDK always sends every field, most of them null.
#[derive(InputObject, Debug, Default)]
#[graphql(name = "UpsertBucketInput")]
pub struct UpsertBucketInput {
    /// Herald's run id from an earlier upsert. Runs are found by `name`, so it is not read.
    pub id: Option<String>,
    /// The run id that the SDK generated.
    pub name: Option<String>,
    /// The run group.
    pub group_name: Option<String>,
    /// The project name.
    pub model_name: Option<String>,
    /// The entity name; null means the caller's personal entity.
    pub entity_name: Option<String>,
    /// W&B's older name for the notes, used when `notes` is null.
    pub description: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// Run notes.
    pub notes: Option<String>,
    /// The run config: `{key: {"value": v}}`, plus `_wandb` with the SDK's telemetry.
    pub config: Option<JsonString>,
    /// The git commit. Not stored.
    pub commit: Option<String>,
    /// The host the run started on.
    pub host: Option<String>,
    /// The SDK's debug flag. Not read.
    pub debug: Option<bool>,
    /// The program that started the run. Not stored.
    pub job_program: Option<String>,
    /// The git repository. Not stored.
    pub job_repo: Option<String>,
    /// The job type.
    pub job_type: Option<String>,
    /// The run state. Not read, because the state comes from file_stream.
    pub state: Option<String>,
    /// The sweep id. Not read, because Herald has no sweeps.
    pub sweep: Option<String>,
    /// Run tags, replacing the stored ones.
    pub tags: Option<Vec<String>>,
    /// The summary. Not read, because the summary comes from file_stream. The SDK always
    /// sends null.
    pub summary_metrics: Option<JsonString>,
}

/// W&B's `UpsertBucketPayload`.
#[derive(SimpleObject)]
#[graphql(name = "UpsertBucketPayload")]
pub struct UpsertBucketPayload {
    /// The run as stored.
    pub bucket: Option<RunNode>,
    /// Whether the run was created.
    pub inserted: Option<bool>,
}

async fn upsert_bucket(scope: &RequestScope, input: UpsertBucketInput) -> ApiResult<UpsertBucketPayload> {
    let Some(project_name) = input.model_name.as_deref() else {
        return Err(ValidationError::missing("modelName").into());
    };
    check_project_name("modelName", project_name)?;
    let Some(run_name) = input.name.clone() else {
        return Err(ValidationError::missing("name").into());
    };
    validate_run_name("name", &run_name)?;
    let config = input.config.as_ref().map(|config| parse_config("config", config)).transpose()?;
    check_run_text(&input)?;

    let state = &scope.state;
    let entity = find_writable_entity(state, &scope.caller, input.entity_name.as_deref()).await?;
    let project = state.store.ensure_project(entity.id, project_name).await?;

    let upsert = RunUpsert {
        name: run_name,
        user_id: Some(scope.caller.user.id),
        display_name: input.display_name,
        config,
        tags: input.tags,
        notes: input.notes.or(input.description),
        group: input.group_name,
        job_type: input.job_type,
        host: input.host,
    };
    let (run, inserted) = state.store.upsert_run(project.id, upsert).await?;

    // Upserting a run that had ended resumes it and records a state event. The store does
    // not say whether that happened, so every update wakes the evaluator. A wake-up that
    // finds no event costs one empty evaluation pass.
    if !inserted {
        state.wake_evaluator();
    }
    tracing::debug!(run.id = %run.id, run.name = %run.name, project.id = %project.id, inserted, "run upserted");
    Ok(UpsertBucketPayload { bucket: Some(RunNode { run, project }), inserted: Some(inserted) })
}

/// Checks a run id: 1 to 128 characters, no surrounding whitespace, no control characters,
/// none of `: ; , # ? / ' \ %`, and not `.` or `..`, which URL paths resolve away.
pub fn validate_run_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_RUN_NAME
        && name.trim() == name
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c.is_control() || RESERVED_RUN_NAME_CHARS.contains(&c));
    if valid {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!(
            "invalid run id {name:?}; use 1 to {MAX_RUN_NAME} characters without surrounding spaces, \
             control characters or any of : ; , # ? / ' \\ %, other than '.' and '..'"
        ),
    ))
}

/// Checks the text fields of an `upsertBucket` input against their length limits and for
/// NUL characters.
fn check_run_text(input: &UpsertBucketInput) -> Result<(), ValidationError> {
    let text_fields = [
        ("displayName", input.display_name.as_deref(), MAX_RUN_DISPLAY_NAME),
        ("notes", input.notes.as_deref(), MAX_RUN_NOTES),
        ("description", input.description.as_deref(), MAX_RUN_NOTES),
        ("groupName", input.group_name.as_deref(), MAX_RUN_LABEL),
        ("jobType", input.job_type.as_deref(), MAX_RUN_LABEL),
        ("host", input.host.as_deref(), MAX_RUN_LABEL),
    ];
    for (field, value, max_chars) in text_fields {
        if let Some(text) = value {
            check_text(field, text, max_chars)?;
        }
    }

    let tags = input.tags.as_deref().unwrap_or_default();
    if tags.len() > MAX_RUN_TAGS {
        return Err(ValidationError::invalid(
            "tags",
            format!("tags has {} tags; a run may have at most {MAX_RUN_TAGS}", tags.len()),
        ));
    }
    for (index, tag) in tags.iter().enumerate() {
        check_text(&format!("tags[{index}]"), tag, MAX_RUN_TAG)?;
    }
    Ok(())
}

/// Rejects text longer than `max_chars` characters, or with a NUL character, which
/// PostgreSQL cannot store in a text column, so that both stores accept the same runs.
fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ValidationError> {
    let length = text.chars().count();
    if length > max_chars {
        return Err(ValidationError::invalid(
            field,
            format!("{field} has {length} characters; shorten it to at most {max_chars}"),
        ));
    }
    if text.contains('\0') {
        return Err(ValidationError::invalid(field, format!("{field} contains a NUL character; remove it")));
    }
    Ok(())
}

/// Parses a run config, which must be a JSON object. Bare `NaN` and `Infinity`, which
/// Python's `json` module writes, become strings.
fn parse_config(field: &str, config: &JsonString) -> Result<Value, ValidationError> {
    match parse_lenient(&config.0) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(ValidationError::invalid(
            field,
            "the run config must be a JSON object such as {\"lr\": {\"value\": 0.1}}",
        )),
        Err(error) => Err(ValidationError::invalid(field, format!("the run config is not valid JSON: {error}"))),
    }
}

/// W&B's `CreateRunFilesInput`.
#[derive(InputObject, Debug)]
#[graphql(name = "CreateRunFilesInput")]
pub struct CreateRunFilesInput {
    /// The run's entity.
    pub entity_name: String,
    /// The run's project.
    pub project_name: String,
    /// The run id.
    pub run_name: String,
    /// The names of the files to upload, such as `config.yaml` or `media/images/a.png`.
    pub files: Vec<String>,
}

/// W&B's `CreateRunFilesPayload`.
#[derive(SimpleObject)]
#[graphql(name = "CreateRunFilesPayload")]
pub struct CreateRunFilesPayload {
    /// Herald's run id.
    #[graphql(name = "runID")]
    pub run_id: ID,
    /// Headers the SDK must send with every upload, as `Name:Value`. Herald needs none.
    pub upload_headers: Vec<String>,
    /// One upload URL per requested file.
    pub files: Vec<RunFileUpload>,
}

/// W&B's `File` type, as `createRunFiles` returns it.
#[derive(SimpleObject)]
#[graphql(name = "File")]
pub struct RunFileUpload {
    /// The file name.
    pub name: String,
    /// The signed URL to `PUT` the content to.
    pub upload_url: Option<String>,
}

async fn create_run_files(scope: &RequestScope, input: CreateRunFilesInput) -> ApiResult<CreateRunFilesPayload> {
    for name in &input.files {
        validate_run_file_name("files", name)?;
    }
    check_project_name("projectName", &input.project_name)?;

    let state = &scope.state;
    let entity = find_writable_entity(state, &scope.caller, Some(&input.entity_name)).await?;
    let (_, run) = find_run(state, &entity, &input.project_name, &input.run_name).await?;

    let expires_at = herald_core::Timestamp::now().plus(UPLOAD_URL_LIFETIME);
    let public_url = state.settings.public_url.trim_end_matches('/');
    let files = input
        .files
        .into_iter()
        .map(|file_name| {
            let grant = UploadGrant { run_id: run.id, file_name, expires_at };
            let token = sign_upload_token(&state.upload_key, &grant);
            RunFileUpload { name: grant.file_name, upload_url: Some(format!("{public_url}/files/upload/{token}")) }
        })
        .collect();

    Ok(CreateRunFilesPayload { run_id: ID(run.id.to_string()), upload_headers: Vec::new(), files })
}

/// W&B's `Project` type.
pub struct ProjectNode {
    project: Project,
}

#[Object(name = "Project")]
impl ProjectNode {
    async fn id(&self) -> ID {
        ID(self.project.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.project.name
    }

    async fn entity(&self) -> EntityNode {
        EntityNode::from(&self.project)
    }

    /// Finds a run by its W&B id. A missing run is null when `missingOk` is true and an
    /// error otherwise.
    async fn bucket(&self, ctx: &Context<'_>, name: String, missing_ok: Option<bool>) -> Result<Option<RunNode>> {
        let scope = RequestScope::of(ctx)?;
        let run = scope.state.store.run_by_name(self.project.id, &name).await.map_err(ApiError::from)?;
        match run {
            Some(run) => Ok(Some(RunNode { run, project: self.project.clone() })),
            None if missing_ok == Some(true) => Ok(None),
            None => Err(ApiError::not_found(format!(
                "run {name:?} not found in {}/{}",
                self.project.entity_name, self.project.name
            ))
            .into()),
        }
    }
}

/// W&B's `Run` type.
pub struct RunNode {
    run: Run,
    project: Project,
}

#[Object(name = "Run")]
impl RunNode {
    /// Herald's run id.
    async fn id(&self) -> ID {
        ID(self.run.id.to_string())
    }

    /// Returns the run id that the SDK generated.
    async fn name(&self) -> &str {
        &self.run.name
    }

    async fn display_name(&self) -> &str {
        &self.run.display_name
    }

    /// W&B's older name for the notes.
    async fn description(&self) -> Option<&str> {
        self.run.notes.as_deref()
    }

    async fn notes(&self) -> Option<&str> {
        self.run.notes.as_deref()
    }

    /// Returns the run config, or `{}` when none was sent. It is never null, because a
    /// resuming SDK fails on a null config.
    async fn config(&self) -> JsonString {
        match &self.run.config {
            Some(config @ Value::Object(_)) => JsonString::from_json(config),
            _ => JsonString("{}".into()),
        }
    }

    /// Always null, because Herald has no sweeps.
    async fn sweep_name(&self) -> Option<String> {
        None
    }

    async fn project(&self) -> ProjectNode {
        ProjectNode { project: self.project.clone() }
    }

    async fn tags(&self) -> &[String] {
        &self.run.tags
    }

    /// Returns one past the highest history line index stored. A resuming SDK continues
    /// there.
    async fn history_line_count(&self) -> i64 {
        self.run.history_line_count
    }

    /// Always 0, because Herald does not store `wandb-events.jsonl` yet.
    async fn events_line_count(&self) -> i64 {
        0
    }

    /// Always 0, because Herald does not store `output.log` yet.
    async fn log_line_count(&self) -> i64 {
        0
    }

    /// Returns the latest summary, or `{}` when none was sent.
    async fn summary_metrics(&self) -> JsonString {
        match &self.run.summary {
            Some(summary) => JsonString::from_json(summary),
            None => JsonString("{}".into()),
        }
    }

    /// Returns the last history rows as a JSON list of JSON strings, one per row, oldest
    /// first.
    async fn history_tail(&self, ctx: &Context<'_>) -> Result<JsonString> {
        let scope = RequestScope::of(ctx)?;
        let from_line = self.run.history_line_count.saturating_sub(HISTORY_TAIL_ROWS as i64).max(0);
        let rows =
            scope.state.store.history(self.run.id, from_line, HISTORY_TAIL_ROWS).await.map_err(ApiError::from)?;
        let tail: Vec<Value> = rows.into_iter().map(|row| Value::String(row.data)).collect();
        Ok(JsonString::from_json(&Value::Array(tail)))
    }

    /// Always an empty list, because Herald does not store `wandb-events.jsonl` yet.
    async fn events_tail(&self) -> JsonString {
        JsonString("[]".into())
    }

    /// Returns the requested keys of the SDK's own `_wandb` config entry, or all of it
    /// without `keys`. W&B returns null here for a run that was created but never started. Herald
    /// creates runs only when a client starts them, so the result is never null, and a
    /// requested key missing from the stored config is null.
    async fn wandb_config(&self, keys: Option<Vec<String>>) -> JsonString {
        let entry = self.run.config.as_ref().and_then(|config| config.get("_wandb"));
        let entry = entry.map(|entry| entry.get("value").unwrap_or(entry));
        let Some(keys) = keys else {
            return JsonString::from_json(entry.unwrap_or(&Value::Object(Map::new())));
        };

        let mut selected = Map::new();
        for key in keys {
            let value = entry.and_then(|entry| entry.get(&key)).cloned().unwrap_or(Value::Null);
            selected.insert(key, value);
        }
        JsonString::from_json(&Value::Object(selected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_follow_sdk_rules() {
        for name in ["a1b2c3d4", "my-run_1", "run.v2", "...", ".a"] {
            assert!(validate_run_name("name", name).is_ok(), "{name:?}");
        }
        for name in ["", " a", "a/b", "a:b", "a%b", "a\\b", "a\tb", ".", "..", &"x".repeat(129)] {
            assert!(validate_run_name("name", name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn config_must_be_an_object() {
        assert!(parse_config("config", &JsonString("{\"lr\":{\"value\":NaN}}".into())).is_ok());
        assert!(parse_config("config", &JsonString("[1]".into())).is_err());
        assert!(parse_config("config", &JsonString("{".into())).is_err());
    }
}
