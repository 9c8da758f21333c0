//! Team secrets and webhook integrations.

use herald_core::Timestamp;
use herald_core::ids::{EntityId, IntegrationId, SecretId};
use herald_store::{Integration, NewIntegration, PutOutcome, SecretMeta, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::convert::{backend, is_unique_violation, parse_id, parse_optional_id};

const SECRET_COLUMNS: &str = "id, entity_id, name, created_at, updated_at";

fn secret_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, i64, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn secret_from_columns(
    (id, entity_id, name, created_at, updated_at): (String, String, String, i64, i64),
) -> StoreResult<SecretMeta> {
    Ok(SecretMeta {
        id: parse_id(&id)?,
        entity_id: parse_id(&entity_id)?,
        name,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
    })
}

pub fn put_secret(
    connection: &Connection,
    team: EntityId,
    name: &str,
    sealed: Vec<u8>,
) -> StoreResult<(SecretMeta, PutOutcome)> {
    let now = Timestamp::now();
    let updated = connection
        .execute(
            "UPDATE secrets SET sealed = ?3, updated_at = ?4 WHERE entity_id = ?1 AND name = ?2",
            params![team.to_string(), name, sealed, now.millis()],
        )
        .map_err(backend)?;
    let outcome = if updated > 0 {
        PutOutcome::Updated
    } else {
        connection
            .execute(
                "INSERT INTO secrets (id, entity_id, name, sealed, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![SecretId::new().to_string(), team.to_string(), name, sealed, now.millis()],
            )
            .map_err(backend)?;
        PutOutcome::Created
    };
    let secret = secret_by_name(connection, team, name)?
        .ok_or_else(|| StoreError::Backend("a stored secret vanished".into()))?;
    Ok((secret, outcome))
}

pub fn list_secrets(connection: &Connection, team: EntityId) -> StoreResult<Vec<SecretMeta>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE entity_id = ?1 ORDER BY name");
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement.query_map([team.to_string()], secret_from_row).map_err(backend)?;
    rows.map(|row| secret_from_columns(row.map_err(backend)?)).collect()
}

pub fn secret_by_name(connection: &Connection, team: EntityId, name: &str) -> StoreResult<Option<SecretMeta>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE entity_id = ?1 AND name = ?2");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row(params![team.to_string(), name], secret_from_row).optional())
        .map_err(backend)?;
    columns.map(secret_from_columns).transpose()
}

pub fn secret(connection: &Connection, id: SecretId) -> StoreResult<Option<SecretMeta>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE id = ?1");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([id.to_string()], secret_from_row).optional())
        .map_err(backend)?;
    columns.map(secret_from_columns).transpose()
}

pub fn sealed_secret(connection: &Connection, id: SecretId) -> StoreResult<Option<Vec<u8>>> {
    connection
        .prepare_cached("SELECT sealed FROM secrets WHERE id = ?1")
        .and_then(|mut statement| statement.query_row([id.to_string()], |row| row.get(0)).optional())
        .map_err(backend)
}

pub fn delete_secret(connection: &Connection, team: EntityId, name: &str) -> StoreResult<()> {
    let Some(secret) = secret_by_name(connection, team, name)? else {
        return Err(StoreError::NotFound(format!("secret {name:?}")));
    };
    let users: Vec<String> = {
        let mut statement = connection
            .prepare_cached(
                "SELECT name FROM integrations WHERE access_token_secret_id = ?1 OR signing_secret_id = ?1 ORDER BY name",
            )
            .map_err(backend)?;
        let rows = statement.query_map([secret.id.to_string()], |row| row.get(0)).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)?
    };
    if !users.is_empty() {
        return Err(StoreError::in_use(format!(
            "secret {name:?} is used by integration(s) {}; delete or change them first",
            users.join(", ")
        )));
    }
    connection.execute("DELETE FROM secrets WHERE id = ?1", [secret.id.to_string()]).map_err(backend)?;
    Ok(())
}

const INTEGRATION_COLUMNS: &str = "id, entity_id, name, url, access_token_secret_id, signing_secret_id, created_at";

type IntegrationColumns = (String, String, String, String, Option<String>, Option<String>, i64);

fn integration_from_row(row: &Row<'_>) -> rusqlite::Result<IntegrationColumns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
}

fn integration_from_columns(columns: IntegrationColumns) -> StoreResult<Integration> {
    let (id, entity_id, name, url, access_token, signing, created_at) = columns;
    Ok(Integration {
        id: parse_id(&id)?,
        entity_id: parse_id(&entity_id)?,
        name,
        url,
        access_token_secret_id: parse_optional_id(access_token)?,
        signing_secret_id: parse_optional_id(signing)?,
        created_at: Timestamp(created_at),
    })
}

pub fn create_integration(connection: &Connection, integration: NewIntegration) -> StoreResult<Integration> {
    let id = IntegrationId::new();
    connection
        .execute(
            "INSERT INTO integrations (id, entity_id, name, kind, url, access_token_secret_id, signing_secret_id, created_at)
             VALUES (?1, ?2, ?3, 'webhook', ?4, ?5, ?6, ?7)",
            params![
                id.to_string(),
                integration.entity_id.to_string(),
                integration.name,
                integration.url,
                integration.access_token_secret_id.map(|id| id.to_string()),
                integration.signing_secret_id.map(|id| id.to_string()),
                Timestamp::now().millis()
            ],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::already_exists(format!("integration {:?} already exists in this team", integration.name))
            } else {
                backend(error)
            }
        })?;
    self::integration(connection, id)?.ok_or_else(|| StoreError::Backend("a new integration vanished".into()))
}

pub fn list_integrations(connection: &Connection, team: EntityId) -> StoreResult<Vec<Integration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE entity_id = ?1 ORDER BY name");
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement.query_map([team.to_string()], integration_from_row).map_err(backend)?;
    rows.map(|row| integration_from_columns(row.map_err(backend)?)).collect()
}

pub fn integration(connection: &Connection, id: IntegrationId) -> StoreResult<Option<Integration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = ?1");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([id.to_string()], integration_from_row).optional())
        .map_err(backend)?;
    columns.map(integration_from_columns).transpose()
}

pub fn integration_by_name(connection: &Connection, team: EntityId, name: &str) -> StoreResult<Option<Integration>> {
    let sql = format!("SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE entity_id = ?1 AND name = ?2");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row(params![team.to_string(), name], integration_from_row).optional())
        .map_err(backend)?;
    columns.map(integration_from_columns).transpose()
}

pub fn delete_integration(connection: &Connection, id: IntegrationId) -> StoreResult<()> {
    let users: Vec<String> = {
        let mut statement = connection
            .prepare_cached(
                "SELECT name FROM automations WHERE integration_id = ?1 AND deleted_at IS NULL ORDER BY name",
            )
            .map_err(backend)?;
        let rows = statement.query_map([id.to_string()], |row| row.get(0)).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)?
    };
    if !users.is_empty() {
        return Err(StoreError::in_use(format!(
            "the integration is used by automation(s) {}; delete them or point them at another integration first",
            users.join(", ")
        )));
    }
    let deleted = connection.execute("DELETE FROM integrations WHERE id = ?1", [id.to_string()]).map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("integration {id}")));
    }
    Ok(())
}
