//! Projects.

use herald_core::Timestamp;
use herald_core::ids::{EntityId, ProjectId};
use herald_store::{Project, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::convert::{assembled, backend, column, unique_or_backend};

const PROJECT_SELECT: &str = "SELECT p.id, p.entity_id, e.name AS entity_name, p.name, p.created_at \
     FROM projects p JOIN entities e ON e.id = p.entity_id";

fn project_from_row(row: &PgRow) -> StoreResult<Project> {
    Ok(Project {
        id: ProjectId(column(row, "id")?),
        entity_id: EntityId(column(row, "entity_id")?),
        entity_name: column(row, "entity_name")?,
        name: column(row, "name")?,
        created_at: Timestamp(column(row, "created_at")?),
    })
}

pub async fn create_project(connection: &mut PgConnection, entity: EntityId, name: &str) -> StoreResult<Project> {
    let id = ProjectId::new();
    sqlx::query("INSERT INTO projects (id, entity_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id.0)
        .bind(entity.0)
        .bind(name)
        .bind(Timestamp::now().millis())
        .execute(&mut *connection)
        .await
        .map_err(|error| {
            unique_or_backend(error, || {
                StoreError::already_exists(format!("project {name:?} already exists in this entity"))
            })
        })?;
    project(connection, id).await?.ok_or_else(|| StoreError::Backend("a new project vanished".into()))
}

/// Creates the project unless it exists. A concurrent creation of the same name waits on the
/// unique key and then inserts nothing, so both callers get the same project.
pub async fn ensure_project(connection: &mut PgConnection, entity: EntityId, name: &str) -> StoreResult<Project> {
    sqlx::query(
        "INSERT INTO projects (id, entity_id, name, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (entity_id, name) DO NOTHING",
    )
    .bind(ProjectId::new().0)
    .bind(entity.0)
    .bind(name)
    .bind(Timestamp::now().millis())
    .execute(&mut *connection)
    .await
    .map_err(backend)?;
    project_by_name(connection, entity, name)
        .await?
        .ok_or_else(|| StoreError::Backend("an ensured project vanished".into()))
}

pub async fn project_by_name(
    connection: &mut PgConnection,
    entity: EntityId,
    name: &str,
) -> StoreResult<Option<Project>> {
    let sql = format!("{PROJECT_SELECT} WHERE p.entity_id = $1 AND p.name = $2");
    let row =
        sqlx::query(assembled(sql)).bind(entity.0).bind(name).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(project_from_row).transpose()
}

pub async fn project(connection: &mut PgConnection, id: ProjectId) -> StoreResult<Option<Project>> {
    let sql = format!("{PROJECT_SELECT} WHERE p.id = $1");
    let row = sqlx::query(assembled(sql)).bind(id.0).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(project_from_row).transpose()
}

pub async fn list_projects(connection: &mut PgConnection, entity: Option<EntityId>) -> StoreResult<Vec<Project>> {
    let sql = format!("{PROJECT_SELECT} WHERE $1::uuid IS NULL OR p.entity_id = $1::uuid ORDER BY e.name, p.name");
    let rows = sqlx::query(assembled(sql)).bind(entity.map(|id| id.0)).fetch_all(connection).await.map_err(backend)?;
    rows.iter().map(project_from_row).collect()
}
