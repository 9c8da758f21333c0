//! Projects.

use herald_core::Timestamp;
use herald_core::ids::{EntityId, ProjectId};
use herald_store::{Project, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::convert::{backend, is_unique_violation, parse_id};

const PROJECT_SELECT: &str =
    "SELECT p.id, p.entity_id, e.name, p.name, p.created_at FROM projects p JOIN entities e ON e.id = p.entity_id";

type ProjectColumns = (String, String, String, String, i64);

fn project_from_row(row: &Row<'_>) -> rusqlite::Result<ProjectColumns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn project_from_columns((id, entity_id, entity_name, name, created_at): ProjectColumns) -> StoreResult<Project> {
    Ok(Project {
        id: parse_id(&id)?,
        entity_id: parse_id(&entity_id)?,
        entity_name,
        name,
        created_at: Timestamp(created_at),
    })
}

pub fn create_project(connection: &Connection, entity: EntityId, name: &str) -> StoreResult<Project> {
    let id = ProjectId::new();
    connection
        .execute(
            "INSERT INTO projects (id, entity_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), entity.to_string(), name, Timestamp::now().millis()],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::already_exists(format!("project {name:?} already exists in this entity"))
            } else {
                backend(error)
            }
        })?;
    project(connection, id)?.ok_or_else(|| StoreError::Backend("a new project vanished".into()))
}

pub fn ensure_project(connection: &Connection, entity: EntityId, name: &str) -> StoreResult<Project> {
    connection
        .execute(
            "INSERT INTO projects (id, entity_id, name, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (entity_id, name) DO NOTHING",
            params![ProjectId::new().to_string(), entity.to_string(), name, Timestamp::now().millis()],
        )
        .map_err(backend)?;
    project_by_name(connection, entity, name)?.ok_or_else(|| StoreError::Backend("an ensured project vanished".into()))
}

pub fn project_by_name(connection: &Connection, entity: EntityId, name: &str) -> StoreResult<Option<Project>> {
    let sql = format!("{PROJECT_SELECT} WHERE p.entity_id = ?1 AND p.name = ?2");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row(params![entity.to_string(), name], project_from_row).optional())
        .map_err(backend)?;
    columns.map(project_from_columns).transpose()
}

pub fn project(connection: &Connection, id: ProjectId) -> StoreResult<Option<Project>> {
    let sql = format!("{PROJECT_SELECT} WHERE p.id = ?1");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([id.to_string()], project_from_row).optional())
        .map_err(backend)?;
    columns.map(project_from_columns).transpose()
}

pub fn list_projects(connection: &Connection, entity: Option<EntityId>) -> StoreResult<Vec<Project>> {
    let sql = format!("{PROJECT_SELECT} WHERE ?1 IS NULL OR p.entity_id = ?1 ORDER BY e.name, p.name");
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement.query_map([entity.map(|id| id.to_string())], project_from_row).map_err(backend)?;
    rows.map(|row| project_from_columns(row.map_err(backend)?)).collect()
}
