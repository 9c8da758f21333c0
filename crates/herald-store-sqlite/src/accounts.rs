//! Settings, users, API keys, entities, teams and memberships.

use herald_core::Timestamp;
use herald_core::ids::{EntityId, UserId};
use herald_core::model::{EntityKind, Role};
use herald_store::{Bootstrap, BootstrapOutcome, Entity, Member, NewUser, StoreError, StoreResult, User};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::convert::{backend, is_unique_violation, parse_enum, parse_id};

/// The setting that records the organization's name once the store is bootstrapped.
const ORGANIZATION_SETTING: &str = "organization";

pub fn setting(connection: &Connection, key: &str) -> StoreResult<Option<String>> {
    connection
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")
        .and_then(|mut statement| statement.query_row([key], |row| row.get(0)).optional())
        .map_err(backend)
}

pub fn insert_setting_if_absent(connection: &Connection, key: &str, value: &str) -> StoreResult<String> {
    connection
        .execute("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING", [key, value])
        .map_err(backend)?;
    setting(connection, key)?.ok_or_else(|| StoreError::Backend(format!("setting {key:?} vanished after insert")))
}

pub fn bootstrap(connection: &Connection, bootstrap: Bootstrap) -> StoreResult<BootstrapOutcome> {
    if setting(connection, ORGANIZATION_SETTING)?.is_some() {
        return Ok(BootstrapOutcome::AlreadyInitialized);
    }
    insert_setting_if_absent(connection, ORGANIZATION_SETTING, &bootstrap.organization)?;
    let admin = create_user(
        connection,
        NewUser { name: bootstrap.admin_name, is_org_admin: true, api_key_hash: bootstrap.admin_api_key_hash },
    )?;
    Ok(BootstrapOutcome::Created(admin))
}

const USER_COLUMNS: &str = "u.id, u.name, u.entity_id, u.is_org_admin, u.created_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, bool, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn user_from_columns(
    (id, name, entity_id, is_org_admin, created_at): (String, String, String, bool, i64),
) -> StoreResult<User> {
    Ok(User {
        id: parse_id(&id)?,
        name,
        entity_id: parse_id(&entity_id)?,
        is_org_admin,
        created_at: Timestamp(created_at),
    })
}

pub fn user_by_api_key(connection: &Connection, api_key_hash: &[u8; 32]) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?1");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([&api_key_hash[..]], user_from_row).optional())
        .map_err(backend)?;
    columns.map(user_from_columns).transpose()
}

pub fn user_by_name(connection: &Connection, name: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?1");
    let columns = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([name], user_from_row).optional())
        .map_err(backend)?;
    columns.map(user_from_columns).transpose()
}

pub fn list_users(connection: &Connection) -> StoreResult<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name");
    let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
    let rows = statement.query_map([], user_from_row).map_err(backend)?;
    rows.map(|row| user_from_columns(row.map_err(backend)?)).collect()
}

pub fn create_user(connection: &Connection, user: NewUser) -> StoreResult<User> {
    let now = Timestamp::now();
    let entity = insert_entity(connection, &user.name, EntityKind::User, now)?;
    let id = UserId::new();
    connection
        .execute(
            "INSERT INTO users (id, name, entity_id, is_org_admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.to_string(), user.name, entity.id.to_string(), user.is_org_admin, now.millis()],
        )
        .map_err(backend)?;
    connection
        .execute(
            "INSERT INTO api_keys (key_hash, user_id, created_at) VALUES (?1, ?2, ?3)",
            params![&user.api_key_hash[..], id.to_string(), now.millis()],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::already_exists("that API key is already in use; generate a new one")
            } else {
                backend(error)
            }
        })?;
    Ok(User { id, name: user.name, entity_id: entity.id, is_org_admin: user.is_org_admin, created_at: now })
}

fn insert_entity(connection: &Connection, name: &str, kind: EntityKind, now: Timestamp) -> StoreResult<Entity> {
    let id = EntityId::new();
    connection
        .execute(
            "INSERT INTO entities (id, name, kind, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), name, kind.as_str(), now.millis()],
        )
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::already_exists(format!(
                    "the name {name:?} is already taken by a user or a team; choose another"
                ))
            } else {
                backend(error)
            }
        })?;
    Ok(Entity { id, name: name.to_owned(), kind, created_at: now })
}

fn entity_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn entity_from_columns((id, name, kind, created_at): (String, String, String, i64)) -> StoreResult<Entity> {
    Ok(Entity {
        id: parse_id(&id)?,
        name,
        kind: parse_enum(&kind, EntityKind::parse, "entity kind")?,
        created_at: Timestamp(created_at),
    })
}

pub fn entity_by_name(connection: &Connection, name: &str) -> StoreResult<Option<Entity>> {
    let columns = connection
        .prepare_cached("SELECT id, name, kind, created_at FROM entities WHERE name = ?1")
        .and_then(|mut statement| statement.query_row([name], entity_from_row).optional())
        .map_err(backend)?;
    columns.map(entity_from_columns).transpose()
}

pub fn create_team(connection: &Connection, name: &str, creator: UserId) -> StoreResult<Entity> {
    let team = insert_entity(connection, name, EntityKind::Team, Timestamp::now())?;
    set_membership(connection, team.id, creator, Role::Admin)?;
    Ok(team)
}

pub fn list_teams(connection: &Connection, member: Option<UserId>) -> StoreResult<Vec<Entity>> {
    let member = member.map(|id| id.to_string());
    let mut statement = connection
        .prepare_cached(
            "SELECT e.id, e.name, e.kind, e.created_at FROM entities e
             WHERE e.kind = 'team'
               AND (?1 IS NULL OR EXISTS (SELECT 1 FROM memberships m WHERE m.entity_id = e.id AND m.user_id = ?1))
             ORDER BY e.name",
        )
        .map_err(backend)?;
    let rows = statement.query_map([member], entity_from_row).map_err(backend)?;
    rows.map(|row| entity_from_columns(row.map_err(backend)?)).collect()
}

pub fn set_membership(connection: &Connection, team: EntityId, user: UserId, role: Role) -> StoreResult<()> {
    let kind: Option<String> = connection
        .query_row("SELECT kind FROM entities WHERE id = ?1", [team.to_string()], |row| row.get(0))
        .optional()
        .map_err(backend)?;
    match kind.as_deref() {
        Some("team") => {}
        Some(_) => return Err(StoreError::NotFound(format!("team {team}"))),
        None => return Err(StoreError::NotFound(format!("team {team}"))),
    }
    if role != Role::Admin {
        ensure_other_admin(connection, team, user)?;
    }
    connection
        .execute(
            "INSERT INTO memberships (entity_id, user_id, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (entity_id, user_id) DO UPDATE SET role = excluded.role",
            params![team.to_string(), user.to_string(), role.as_str()],
        )
        .map_err(backend)?;
    Ok(())
}

pub fn remove_membership(connection: &Connection, team: EntityId, user: UserId) -> StoreResult<()> {
    ensure_other_admin(connection, team, user)?;
    let removed = connection
        .execute("DELETE FROM memberships WHERE entity_id = ?1 AND user_id = ?2", [team.to_string(), user.to_string()])
        .map_err(backend)?;
    if removed == 0 {
        return Err(StoreError::NotFound(format!("membership of user {user} in team {team}")));
    }
    Ok(())
}

/// Fails when `user` is the team's only admin, so that no change leaves a team without one.
fn ensure_other_admin(connection: &Connection, team: EntityId, user: UserId) -> StoreResult<()> {
    let (is_admin, admins): (bool, i64) = connection
        .query_row(
            "SELECT COALESCE(MAX(user_id = ?2), 0), COUNT(*) FROM memberships WHERE entity_id = ?1 AND role = 'admin'",
            [team.to_string(), user.to_string()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(backend)?;
    if is_admin && admins == 1 {
        return Err(StoreError::Conflict {
            code: "last_admin",
            detail: "this user is the team's only admin; make another member admin first".into(),
        });
    }
    Ok(())
}

pub fn list_members(connection: &Connection, team: EntityId) -> StoreResult<Vec<Member>> {
    let mut statement = connection
        .prepare_cached(
            "SELECT u.id, u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.entity_id = ?1 ORDER BY u.name",
        )
        .map_err(backend)?;
    let rows = statement
        .query_map([team.to_string()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
        })
        .map_err(backend)?;
    rows.map(|row| {
        let (id, name, role) = row.map_err(backend)?;
        Ok(Member { user_id: parse_id(&id)?, user_name: name, role: parse_enum(&role, Role::parse, "role")? })
    })
    .collect()
}

pub fn role_in(connection: &Connection, entity: EntityId, user: UserId) -> StoreResult<Option<Role>> {
    let role: Option<String> = connection
        .prepare_cached(
            "SELECT 'admin' FROM users WHERE id = ?2 AND entity_id = ?1
             UNION ALL
             SELECT role FROM memberships WHERE entity_id = ?1 AND user_id = ?2",
        )
        .and_then(|mut statement| {
            statement.query_row([entity.to_string(), user.to_string()], |row| row.get(0)).optional()
        })
        .map_err(backend)?;
    role.map(|role| parse_enum(&role, Role::parse, "role")).transpose()
}
