//! Automations and their revisions.

use herald_core::Timestamp;
use herald_core::automation::AutomationSpec;
use herald_core::ids::{AutomationId, ProjectId, UserId};
use herald_store::{Automation, AutomationFilter, NewAutomation, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::convert::{backend, is_unique_violation, parse_id, parse_json, parse_optional_id};

const AUTOMATION_SELECT: &str = "SELECT a.id, a.project_id, a.revision, r.spec, a.enabled, a.created_by, a.created_at, \
     a.updated_at FROM automations a JOIN automation_revisions r ON r.automation_id = a.id AND r.revision = a.revision";

type AutomationColumns = (String, String, i64, String, bool, String, i64, i64);

fn automation_from_row(row: &Row<'_>) -> rusqlite::Result<AutomationColumns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
}

fn automation_from_columns(columns: AutomationColumns) -> StoreResult<Automation> {
    let (id, project_id, revision, spec, enabled, created_by, created_at, updated_at) = columns;
    let spec = AutomationSpec::from_stored(&parse_json(&spec)?)
        .map_err(|error| StoreError::Corrupt(format!("automation {id} revision {revision}: {error}")))?;
    Ok(Automation {
        id: parse_id(&id)?,
        project_id: parse_id(&project_id)?,
        revision,
        spec,
        enabled,
        created_by: parse_id(&created_by)?,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
    })
}

fn name_taken(name: &str) -> StoreError {
    StoreError::already_exists(format!(
        "an automation named {name:?} already exists in this project; choose another name"
    ))
}

fn insert_revision(
    connection: &Connection,
    id: AutomationId,
    revision: i64,
    spec: &AutomationSpec,
    editor: UserId,
    now: Timestamp,
) -> StoreResult<()> {
    connection
        .execute(
            "INSERT INTO automation_revisions (automation_id, revision, spec, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.to_string(), revision, spec.to_stored().to_string(), editor.to_string(), now.millis()],
        )
        .map_err(backend)?;
    Ok(())
}

pub fn create_automation(connection: &Connection, automation: NewAutomation) -> StoreResult<Automation> {
    let id = AutomationId::new();
    let now = Timestamp::now();
    let spec = &automation.spec;
    connection
        .execute(
            "INSERT INTO automations (id, project_id, name, event_type, integration_id, revision, enabled, created_by,
                                      created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?8)",
            params![
                id.to_string(),
                automation.project_id.to_string(),
                spec.name,
                spec.event.event_type(),
                spec.action.integration_id().map(|id| id.to_string()),
                automation.enabled,
                automation.created_by.to_string(),
                now.millis()
            ],
        )
        .map_err(|error| if is_unique_violation(&error) { name_taken(&spec.name) } else { backend(error) })?;
    insert_revision(connection, id, 1, spec, automation.created_by, now)?;
    self::automation(connection, id)?.ok_or_else(|| StoreError::Backend("a new automation vanished".into()))
}

pub fn automation(connection: &Connection, id: AutomationId) -> StoreResult<Option<Automation>> {
    let sql = format!("{AUTOMATION_SELECT} WHERE a.id = ?1 AND a.deleted_at IS NULL");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([id.to_string()], automation_from_row).optional())
        .map_err(backend)?;
    columns.map(automation_from_columns).transpose()
}

/// Reads the project of an automation, including a deleted one.
pub fn automation_project(connection: &Connection, id: AutomationId) -> StoreResult<Option<ProjectId>> {
    let project = connection
        .prepare_cached("SELECT project_id FROM automations WHERE id = ?1")
        .and_then(|mut statement| statement.query_row([id.to_string()], |row| row.get::<_, String>(0)).optional())
        .map_err(backend)?;
    parse_optional_id(project)
}

pub fn list_automations(connection: &Connection, filter: AutomationFilter) -> StoreResult<Vec<Automation>> {
    let sql = format!(
        "{AUTOMATION_SELECT} JOIN projects p ON p.id = a.project_id JOIN entities e ON e.id = p.entity_id
         WHERE a.deleted_at IS NULL AND (?1 IS NULL OR a.project_id = ?1) AND (?2 IS NULL OR p.entity_id = ?2)
           AND (?3 IS NULL OR a.name = ?3)
         ORDER BY e.name, p.name, a.name"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement
        .query_map(
            params![filter.project_id.map(|id| id.to_string()), filter.entity_id.map(|id| id.to_string()), filter.name],
            automation_from_row,
        )
        .map_err(backend)?;
    rows.map(|row| automation_from_columns(row.map_err(backend)?)).collect()
}

pub fn active_automations(
    connection: &Connection,
    project: ProjectId,
    event_type: &str,
) -> StoreResult<Vec<Automation>> {
    let sql = format!(
        "{AUTOMATION_SELECT} WHERE a.project_id = ?1 AND a.event_type = ?2 AND a.enabled AND a.deleted_at IS NULL
         ORDER BY a.id"
    );
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement.query_map(params![project.to_string(), event_type], automation_from_row).map_err(backend)?;
    rows.map(|row| automation_from_columns(row.map_err(backend)?)).collect()
}

pub fn update_automation(
    connection: &Connection,
    id: AutomationId,
    project: ProjectId,
    spec: AutomationSpec,
    enabled: bool,
    editor: UserId,
) -> StoreResult<Automation> {
    let Some(current) = automation(connection, id)? else {
        return Err(StoreError::NotFound(format!("automation {id}")));
    };
    let now = Timestamp::now();
    let revision = current.revision + 1;
    insert_revision(connection, id, revision, &spec, editor, now)?;
    connection
        .execute(
            "UPDATE automations SET project_id = ?2, name = ?3, event_type = ?4, integration_id = ?5, revision = ?6,
                                    enabled = ?7, updated_at = ?8
             WHERE id = ?1",
            params![
                id.to_string(),
                project.to_string(),
                spec.name,
                spec.event.event_type(),
                spec.action.integration_id().map(|id| id.to_string()),
                revision,
                enabled,
                now.millis()
            ],
        )
        .map_err(|error| if is_unique_violation(&error) { name_taken(&spec.name) } else { backend(error) })?;
    automation(connection, id)?.ok_or_else(|| StoreError::Backend("an updated automation vanished".into()))
}

pub fn set_automation_enabled(connection: &Connection, id: AutomationId, enabled: bool) -> StoreResult<Automation> {
    let changed = connection
        .execute(
            "UPDATE automations SET enabled = ?2, updated_at = ?3 WHERE id = ?1 AND deleted_at IS NULL",
            params![id.to_string(), enabled, Timestamp::now().millis()],
        )
        .map_err(backend)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("automation {id}")));
    }
    automation(connection, id)?.ok_or_else(|| StoreError::Backend("an updated automation vanished".into()))
}

/// Marks the automation deleted. The row stays for its executions; its integration
/// reference is cleared so that the integration can be deleted too.
pub fn delete_automation(connection: &Connection, id: AutomationId) -> StoreResult<()> {
    let now = Timestamp::now();
    let changed = connection
        .execute(
            "UPDATE automations SET deleted_at = ?2, updated_at = ?2, enabled = 0, integration_id = NULL
             WHERE id = ?1 AND deleted_at IS NULL",
            params![id.to_string(), now.millis()],
        )
        .map_err(backend)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("automation {id}")));
    }
    connection.execute("DELETE FROM metric_states WHERE automation_id = ?1", [id.to_string()]).map_err(backend)?;
    Ok(())
}
