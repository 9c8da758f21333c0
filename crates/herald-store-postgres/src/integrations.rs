//! Team secrets and webhook integrations.

use herald_core::Timestamp;
use herald_core::ids::{EntityId, IntegrationId, SecretId};
use herald_store::{Integration, NewIntegration, PutOutcome, SecretMeta, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::convert::{assembled, backend, column, is_foreign_key_violation, unique_or_backend};

const SECRET_COLUMNS: &str = "id, entity_id, name, created_at, updated_at";

fn secret_from_row(row: &PgRow) -> StoreResult<SecretMeta> {
    Ok(SecretMeta {
        id: SecretId(column(row, "id")?),
        entity_id: EntityId(column(row, "entity_id")?),
        name: column(row, "name")?,
        created_at: Timestamp(column(row, "created_at")?),
        updated_at: Timestamp(column(row, "updated_at")?),
    })
}

/// Stores a secret value. The insert comes first so that two concurrent puts of a new name
/// cannot both insert: the second waits on the unique key, inserts nothing, and updates.
pub async fn put_secret(
    connection: &mut PgConnection,
    team: EntityId,
    name: &str,
    sealed: Vec<u8>,
) -> StoreResult<(SecretMeta, PutOutcome)> {
    let now = Timestamp::now();
    let sql = format!(
        "INSERT INTO secrets (id, entity_id, name, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (entity_id, name) DO NOTHING RETURNING {SECRET_COLUMNS}"
    );
    let inserted = sqlx::query(assembled(sql))
        .bind(SecretId::new().0)
        .bind(team.0)
        .bind(name)
        .bind(&sealed)
        .bind(now.millis())
        .fetch_optional(&mut *connection)
        .await
        .map_err(backend)?;
    if let Some(row) = inserted {
        return Ok((secret_from_row(&row)?, PutOutcome::Created));
    }

    let sql = format!(
        "UPDATE secrets SET sealed = $3, updated_at = $4 WHERE entity_id = $1 AND name = $2 RETURNING {SECRET_COLUMNS}"
    );
    let updated = sqlx::query(assembled(sql))
        .bind(team.0)
        .bind(name)
        .bind(&sealed)
        .bind(now.millis())
        .fetch_optional(connection)
        .await
        .map_err(backend)?;
    let Some(row) = updated else {
        return Err(StoreError::Backend(format!("secret {name:?} was deleted while its value was being replaced")));
    };
    Ok((secret_from_row(&row)?, PutOutcome::Updated))
}

pub async fn list_secrets(connection: &mut PgConnection, team: EntityId) -> StoreResult<Vec<SecretMeta>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE entity_id = $1 ORDER BY name");
    let rows = sqlx::query(assembled(sql)).bind(team.0).fetch_all(connection).await.map_err(backend)?;
    rows.iter().map(secret_from_row).collect()
}

pub async fn secret_by_name(
    connection: &mut PgConnection,
    team: EntityId,
    name: &str,
) -> StoreResult<Option<SecretMeta>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE entity_id = $1 AND name = $2");
    let row = sqlx::query(assembled(sql)).bind(team.0).bind(name).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(secret_from_row).transpose()
}

pub async fn secret(connection: &mut PgConnection, id: SecretId) -> StoreResult<Option<SecretMeta>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE id = $1");
    let row = sqlx::query(assembled(sql)).bind(id.0).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(secret_from_row).transpose()
}

pub async fn sealed_secret(connection: &mut PgConnection, id: SecretId) -> StoreResult<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT sealed FROM secrets WHERE id = $1")
        .bind(id.0)
        .fetch_optional(connection)
        .await
        .map_err(backend)
}

/// Deletes a secret unless an integration refers to it. The secret's row is locked first, so an
/// integration created concurrently with a reference to it either commits before the check,
/// which then finds it, or fails its foreign key check after the delete.
pub async fn delete_secret(connection: &mut PgConnection, team: EntityId, name: &str) -> StoreResult<()> {
    let id: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM secrets WHERE entity_id = $1 AND name = $2 FOR UPDATE")
            .bind(team.0)
            .bind(name)
            .fetch_optional(&mut *connection)
            .await
            .map_err(backend)?;
    let Some(id) = id else {
        return Err(StoreError::NotFound(format!("secret {name:?}")));
    };

    let users: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM integrations WHERE access_token_secret_id = $1 OR signing_secret_id = $1 ORDER BY name",
    )
    .bind(id)
    .fetch_all(&mut *connection)
    .await
    .map_err(backend)?;
    if !users.is_empty() {
        return Err(secret_in_use(name, &format!("integration(s) {}", users.join(", "))));
    }

    sqlx::query("DELETE FROM secrets WHERE id = $1").bind(id).execute(connection).await.map_err(|error| {
        if is_foreign_key_violation(&error) {
            secret_in_use(name, "an integration created while it was being deleted")
        } else {
            backend(error)
        }
    })?;
    Ok(())
}

fn secret_in_use(name: &str, users: &str) -> StoreError {
    StoreError::in_use(format!("secret {name:?} is used by {users}; delete or change them first"))
}

const INTEGRATION_COLUMNS: &str = "id, entity_id, name, url, access_token_secret_id, signing_secret_id, created_at";

fn integration_from_row(row: &PgRow) -> StoreResult<Integration> {
    let access_token: Option<uuid::Uuid> = column(row, "access_token_secret_id")?;
    let signing: Option<uuid::Uuid> = column(row, "signing_secret_id")?;
    Ok(Integration {
        id: IntegrationId(column(row, "id")?),
        entity_id: EntityId(column(row, "entity_id")?),
        name: column(row, "name")?,
        url: column(row, "url")?,
        access_token_secret_id: access_token.map(SecretId),
        signing_secret_id: signing.map(SecretId),
        created_at: Timestamp(column(row, "created_at")?),
    })
}

pub async fn create_integration(
    connection: &mut PgConnection,
    integration: NewIntegration,
) -> StoreResult<Integration> {
    let id = IntegrationId::new();
    sqlx::query(
        "INSERT INTO integrations (id, entity_id, name, kind, url, access_token_secret_id, signing_secret_id, created_at)
         VALUES ($1, $2, $3, 'webhook', $4, $5, $6, $7)",
    )
    .bind(id.0)
    .bind(integration.entity_id.0)
    .bind(&integration.name)
    .bind(&integration.url)
    .bind(integration.access_token_secret_id.map(|id| id.0))
    .bind(integration.signing_secret_id.map(|id| id.0))
    .bind(Timestamp::now().millis())
    .execute(&mut *connection)
    .await
    .map_err(|error| {
        unique_or_backend(error, || {
            StoreError::already_exists(format!("integration {:?} already exists in this team", integration.name))
        })
    })?;
    self::integration(connection, id).await?.ok_or_else(|| StoreError::Backend("a new integration vanished".into()))
}

pub async fn list_integrations(connection: &mut PgConnection, team: EntityId) -> StoreResult<Vec<Integration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE entity_id = $1 ORDER BY name");
    let rows = sqlx::query(assembled(sql)).bind(team.0).fetch_all(connection).await.map_err(backend)?;
    rows.iter().map(integration_from_row).collect()
}

pub async fn integration(connection: &mut PgConnection, id: IntegrationId) -> StoreResult<Option<Integration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1");
    let row = sqlx::query(assembled(sql)).bind(id.0).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(integration_from_row).transpose()
}

pub async fn integration_by_name(
    connection: &mut PgConnection,
    team: EntityId,
    name: &str,
) -> StoreResult<Option<Integration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE entity_id = $1 AND name = $2");
    let row = sqlx::query(assembled(sql)).bind(team.0).bind(name).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(integration_from_row).transpose()
}

/// Deletes an integration unless a live automation refers to it. As with secrets, the foreign
/// key catches an automation created concurrently with a reference to it.
pub async fn delete_integration(connection: &mut PgConnection, id: IntegrationId) -> StoreResult<()> {
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM automations WHERE integration_id = $1 AND deleted_at IS NULL ORDER BY name",
    )
    .bind(id.0)
    .fetch_all(&mut *connection)
    .await
    .map_err(backend)?;
    if !users.is_empty() {
        return Err(integration_in_use(&format!("automation(s) {}", users.join(", "))));
    }

    let deleted = sqlx::query("DELETE FROM integrations WHERE id = $1").bind(id.0).execute(connection).await.map_err(
        |error| {
            if is_foreign_key_violation(&error) {
                integration_in_use("an automation created while it was being deleted")
            } else {
                backend(error)
            }
        },
    )?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("integration {id}")));
    }
    Ok(())
}

fn integration_in_use(users: &str) -> StoreError {
    StoreError::in_use(format!(
        "the integration is used by {users}; delete them or point them at another integration first"
    ))
}
