//! Automations and their revisions.

use herald_core::Timestamp;
use herald_core::automation::AutomationSpec;
use herald_core::ids::{AutomationId, ProjectId, UserId};
use herald_store::{Automation, AutomationFilter, NewAutomation, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::convert::{assembled, backend, column, parse_json, unique_or_backend};

const AUTOMATION_SELECT: &str = "SELECT a.id, a.project_id, a.revision, r.spec, a.enabled, a.created_by, \
     a.created_at, a.updated_at FROM automations a \
     JOIN automation_revisions r ON r.automation_id = a.id AND r.revision = a.revision";

fn automation_from_row(row: &PgRow) -> StoreResult<Automation> {
    let id: uuid::Uuid = column(row, "id")?;
    let revision: i64 = column(row, "revision")?;
    let spec: String = column(row, "spec")?;
    let spec = AutomationSpec::from_stored(&parse_json(&spec)?)
        .map_err(|error| StoreError::Corrupt(format!("automation {id} revision {revision}: {error}")))?;
    Ok(Automation {
        id: AutomationId(id),
        project_id: ProjectId(column(row, "project_id")?),
        revision,
        spec,
        enabled: column(row, "enabled")?,
        created_by: UserId(column(row, "created_by")?),
        created_at: Timestamp(column(row, "created_at")?),
        updated_at: Timestamp(column(row, "updated_at")?),
    })
}

fn name_taken(name: &str) -> StoreError {
    StoreError::already_exists(format!(
        "an automation named {name:?} already exists in this project; choose another name"
    ))
}

async fn insert_revision(
    connection: &mut PgConnection,
    id: AutomationId,
    revision: i64,
    spec: &AutomationSpec,
    editor: UserId,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO automation_revisions (automation_id, revision, spec, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.0)
    .bind(revision)
    .bind(spec.to_stored().to_string())
    .bind(editor.0)
    .bind(now.millis())
    .execute(connection)
    .await
    .map_err(backend)?;
    Ok(())
}

pub async fn create_automation(connection: &mut PgConnection, automation: NewAutomation) -> StoreResult<Automation> {
    let id = AutomationId::new();
    let now = Timestamp::now();
    let spec = &automation.spec;
    sqlx::query(
        "INSERT INTO automations (id, project_id, name, event_type, integration_id, revision, enabled, created_by,
                                  created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $8)",
    )
    .bind(id.0)
    .bind(automation.project_id.0)
    .bind(&spec.name)
    .bind(spec.event.event_type())
    .bind(spec.action.integration_id().map(|id| id.0))
    .bind(automation.enabled)
    .bind(automation.created_by.0)
    .bind(now.millis())
    .execute(&mut *connection)
    .await
    .map_err(|error| unique_or_backend(error, || name_taken(&spec.name)))?;

    insert_revision(connection, id, 1, spec, automation.created_by, now).await?;
    self::automation(connection, id).await?.ok_or_else(|| StoreError::Backend("a new automation vanished".into()))
}

pub async fn automation(connection: &mut PgConnection, id: AutomationId) -> StoreResult<Option<Automation>> {
    let sql = format!("{AUTOMATION_SELECT} WHERE a.id = $1 AND a.deleted_at IS NULL");
    let row = sqlx::query(assembled(sql)).bind(id.0).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(automation_from_row).transpose()
}

/// Reads the project of an automation, including a deleted one.
pub async fn automation_project(connection: &mut PgConnection, id: AutomationId) -> StoreResult<Option<ProjectId>> {
    let project: Option<uuid::Uuid> = sqlx::query_scalar("SELECT project_id FROM automations WHERE id = $1")
        .bind(id.0)
        .fetch_optional(connection)
        .await
        .map_err(backend)?;
    Ok(project.map(ProjectId))
}

pub async fn list_automations(connection: &mut PgConnection, filter: AutomationFilter) -> StoreResult<Vec<Automation>> {
    let sql = format!(
        "{AUTOMATION_SELECT} JOIN projects p ON p.id = a.project_id JOIN entities e ON e.id = p.entity_id
         WHERE a.deleted_at IS NULL AND ($1::uuid IS NULL OR a.project_id = $1::uuid)
           AND ($2::uuid IS NULL OR p.entity_id = $2::uuid) AND ($3::text IS NULL OR a.name = $3::text)
         ORDER BY e.name, p.name, a.name"
    );
    let rows = sqlx::query(assembled(sql))
        .bind(filter.project_id.map(|id| id.0))
        .bind(filter.entity_id.map(|id| id.0))
        .bind(filter.name)
        .fetch_all(connection)
        .await
        .map_err(backend)?;
    rows.iter().map(automation_from_row).collect()
}

pub async fn active_automations(
    connection: &mut PgConnection,
    project: ProjectId,
    event_type: &str,
) -> StoreResult<Vec<Automation>> {
    let sql = format!(
        "{AUTOMATION_SELECT} WHERE a.project_id = $1 AND a.event_type = $2 AND a.enabled AND a.deleted_at IS NULL
         ORDER BY a.id"
    );
    let rows =
        sqlx::query(assembled(sql)).bind(project.0).bind(event_type).fetch_all(connection).await.map_err(backend)?;
    rows.iter().map(automation_from_row).collect()
}

/// Stores a new revision. The automation's row is locked first, so that two concurrent edits
/// get revisions n + 1 and n + 2 instead of both claiming n + 1.
pub async fn update_automation(
    connection: &mut PgConnection,
    id: AutomationId,
    project: ProjectId,
    spec: AutomationSpec,
    enabled: bool,
    editor: UserId,
) -> StoreResult<Automation> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT revision FROM automations WHERE id = $1 AND deleted_at IS NULL FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *connection)
            .await
            .map_err(backend)?;
    let Some(current) = current else {
        return Err(StoreError::NotFound(format!("automation {id}")));
    };

    let now = Timestamp::now();
    let revision = current + 1;
    insert_revision(connection, id, revision, &spec, editor, now).await?;
    sqlx::query(
        "UPDATE automations SET project_id = $2, name = $3, event_type = $4, integration_id = $5, revision = $6,
                                enabled = $7, updated_at = $8
         WHERE id = $1",
    )
    .bind(id.0)
    .bind(project.0)
    .bind(&spec.name)
    .bind(spec.event.event_type())
    .bind(spec.action.integration_id().map(|id| id.0))
    .bind(revision)
    .bind(enabled)
    .bind(now.millis())
    .execute(&mut *connection)
    .await
    .map_err(|error| unique_or_backend(error, || name_taken(&spec.name)))?;

    automation(connection, id).await?.ok_or_else(|| StoreError::Backend("an updated automation vanished".into()))
}

pub async fn set_automation_enabled(
    connection: &mut PgConnection,
    id: AutomationId,
    enabled: bool,
) -> StoreResult<Automation> {
    let changed =
        sqlx::query("UPDATE automations SET enabled = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.0)
            .bind(enabled)
            .bind(Timestamp::now().millis())
            .execute(&mut *connection)
            .await
            .map_err(backend)?;
    if changed.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("automation {id}")));
    }
    automation(connection, id).await?.ok_or_else(|| StoreError::Backend("an updated automation vanished".into()))
}

/// Marks the automation deleted. The row stays for its executions, and its integration
/// reference is cleared so that the integration can be deleted too.
pub async fn delete_automation(connection: &mut PgConnection, id: AutomationId) -> StoreResult<()> {
    let now = Timestamp::now();
    let changed = sqlx::query(
        "UPDATE automations SET deleted_at = $2, updated_at = $2, enabled = false, integration_id = NULL
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.0)
    .bind(now.millis())
    .execute(&mut *connection)
    .await
    .map_err(backend)?;
    if changed.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("automation {id}")));
    }

    sqlx::query("DELETE FROM metric_states WHERE automation_id = $1")
        .bind(id.0)
        .execute(connection)
        .await
        .map_err(backend)?;
    Ok(())
}
