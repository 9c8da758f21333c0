//! Settings, users, API keys, entities, teams and memberships.

use herald_core::Timestamp;
use herald_core::ids::{EntityId, UserId};
use herald_core::model::{EntityKind, Role};
use herald_store::{Bootstrap, BootstrapOutcome, Entity, Member, NewUser, StoreError, StoreResult, User};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::convert::{assembled, backend, column, parse_enum, unique_or_backend};

/// The setting that records the organization's name once the store is bootstrapped.
const ORGANIZATION_SETTING: &str = "organization";

pub async fn setting(connection: &mut PgConnection, key: &str) -> StoreResult<Option<String>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(connection)
        .await
        .map_err(backend)
}

pub async fn insert_setting_if_absent(connection: &mut PgConnection, key: &str, value: &str) -> StoreResult<String> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(&mut *connection)
        .await
        .map_err(backend)?;
    setting(connection, key).await?.ok_or_else(|| StoreError::Backend(format!("setting {key:?} vanished after insert")))
}

/// Creates the organization and its admin unless another bootstrap got there first.
///
/// The organization setting is inserted first. A concurrent bootstrap in another process
/// waits on its key until this transaction ends, then inserts nothing and reports
/// `AlreadyInitialized`, so exactly one admin is created.
pub async fn bootstrap(connection: &mut PgConnection, bootstrap: Bootstrap) -> StoreResult<BootstrapOutcome> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key",
    )
    .bind(ORGANIZATION_SETTING)
    .bind(&bootstrap.organization)
    .fetch_optional(&mut *connection)
    .await
    .map_err(backend)?;
    if inserted.is_none() {
        return Ok(BootstrapOutcome::AlreadyInitialized);
    }

    let admin = NewUser { name: bootstrap.admin_name, is_org_admin: true, api_key_hash: bootstrap.admin_api_key_hash };
    let admin = create_user(connection, admin).await?;
    Ok(BootstrapOutcome::Created(admin))
}

const USER_COLUMNS: &str = "u.id, u.name, u.entity_id, u.is_org_admin, u.created_at";

fn user_from_row(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(column(row, "id")?),
        name: column(row, "name")?,
        entity_id: EntityId(column(row, "entity_id")?),
        is_org_admin: column(row, "is_org_admin")?,
        created_at: Timestamp(column(row, "created_at")?),
    })
}

pub async fn user_by_api_key(connection: &mut PgConnection, api_key_hash: &[u8; 32]) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1");
    let row = sqlx::query(assembled(sql)).bind(&api_key_hash[..]).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn user_by_name(connection: &mut PgConnection, name: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1");
    let row = sqlx::query(assembled(sql)).bind(name).fetch_optional(connection).await.map_err(backend)?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn list_users(connection: &mut PgConnection) -> StoreResult<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name");
    let rows = sqlx::query(assembled(sql)).fetch_all(connection).await.map_err(backend)?;
    rows.iter().map(user_from_row).collect()
}

pub async fn create_user(connection: &mut PgConnection, user: NewUser) -> StoreResult<User> {
    let now = Timestamp::now();
    let entity = insert_entity(connection, &user.name, EntityKind::User, now).await?;

    let id = UserId::new();
    sqlx::query("INSERT INTO users (id, name, entity_id, is_org_admin, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id.0)
        .bind(&user.name)
        .bind(entity.id.0)
        .bind(user.is_org_admin)
        .bind(now.millis())
        .execute(&mut *connection)
        .await
        .map_err(backend)?;

    sqlx::query("INSERT INTO api_keys (key_hash, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(&user.api_key_hash[..])
        .bind(id.0)
        .bind(now.millis())
        .execute(&mut *connection)
        .await
        .map_err(|error| {
            unique_or_backend(error, || {
                StoreError::already_exists("that API key is already in use; generate a new one")
            })
        })?;

    Ok(User { id, name: user.name, entity_id: entity.id, is_org_admin: user.is_org_admin, created_at: now })
}

async fn insert_entity(
    connection: &mut PgConnection,
    name: &str,
    kind: EntityKind,
    now: Timestamp,
) -> StoreResult<Entity> {
    let id = EntityId::new();
    sqlx::query("INSERT INTO entities (id, name, kind, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id.0)
        .bind(name)
        .bind(kind.as_str())
        .bind(now.millis())
        .execute(connection)
        .await
        .map_err(|error| {
            unique_or_backend(error, || {
                StoreError::already_exists(format!(
                    "the name {name:?} is already taken by a user or a team; choose another"
                ))
            })
        })?;
    Ok(Entity { id, name: name.to_owned(), kind, created_at: now })
}

fn entity_from_row(row: &PgRow) -> StoreResult<Entity> {
    let kind: String = column(row, "kind")?;
    Ok(Entity {
        id: EntityId(column(row, "id")?),
        name: column(row, "name")?,
        kind: parse_enum(&kind, EntityKind::parse, "entity kind")?,
        created_at: Timestamp(column(row, "created_at")?),
    })
}

pub async fn entity_by_name(connection: &mut PgConnection, name: &str) -> StoreResult<Option<Entity>> {
    let row = sqlx::query("SELECT id, name, kind, created_at FROM entities WHERE name = $1")
        .bind(name)
        .fetch_optional(connection)
        .await
        .map_err(backend)?;
    row.as_ref().map(entity_from_row).transpose()
}

pub async fn create_team(connection: &mut PgConnection, name: &str, creator: UserId) -> StoreResult<Entity> {
    let team = insert_entity(connection, name, EntityKind::Team, Timestamp::now()).await?;
    set_membership(connection, team.id, creator, Role::Admin).await?;
    Ok(team)
}

pub async fn list_teams(connection: &mut PgConnection, member: Option<UserId>) -> StoreResult<Vec<Entity>> {
    let rows = sqlx::query(
        "SELECT e.id, e.name, e.kind, e.created_at FROM entities e
         WHERE e.kind = 'team'
           AND ($1::uuid IS NULL
                OR EXISTS (SELECT 1 FROM memberships m WHERE m.entity_id = e.id AND m.user_id = $1::uuid))
         ORDER BY e.name",
    )
    .bind(member.map(|id| id.0))
    .fetch_all(connection)
    .await
    .map_err(backend)?;
    rows.iter().map(entity_from_row).collect()
}

pub async fn set_membership(
    connection: &mut PgConnection,
    team: EntityId,
    user: UserId,
    role: Role,
) -> StoreResult<()> {
    lock_team(connection, team).await?;
    if role != Role::Admin {
        ensure_other_admin(connection, team, user).await?;
    }

    sqlx::query(
        "INSERT INTO memberships (entity_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (entity_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(team.0)
    .bind(user.0)
    .bind(role.as_str())
    .execute(connection)
    .await
    .map_err(backend)?;
    Ok(())
}

pub async fn remove_membership(connection: &mut PgConnection, team: EntityId, user: UserId) -> StoreResult<()> {
    lock_team(connection, team).await?;
    ensure_other_admin(connection, team, user).await?;

    let removed = sqlx::query("DELETE FROM memberships WHERE entity_id = $1 AND user_id = $2")
        .bind(team.0)
        .bind(user.0)
        .execute(connection)
        .await
        .map_err(backend)?;
    if removed.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("membership of user {user} in team {team}")));
    }
    Ok(())
}

/// Locks the team's row until the transaction ends, so that two concurrent changes cannot
/// each see another admin and together leave the team with none. Fails when `team` is not
/// a team.
async fn lock_team(connection: &mut PgConnection, team: EntityId) -> StoreResult<()> {
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM entities WHERE id = $1 FOR UPDATE")
        .bind(team.0)
        .fetch_optional(connection)
        .await
        .map_err(backend)?;
    match kind.as_deref() {
        Some("team") => Ok(()),
        _ => Err(StoreError::NotFound(format!("team {team}"))),
    }
}

/// Fails when `user` is the team's only admin, so that no change leaves a team without one.
async fn ensure_other_admin(connection: &mut PgConnection, team: EntityId, user: UserId) -> StoreResult<()> {
    let (is_admin, admins): (bool, i64) = sqlx::query_as(
        "SELECT COALESCE(BOOL_OR(user_id = $2), false), COUNT(*) FROM memberships
         WHERE entity_id = $1 AND role = 'admin'",
    )
    .bind(team.0)
    .bind(user.0)
    .fetch_one(connection)
    .await
    .map_err(backend)?;
    if is_admin && admins == 1 {
        return Err(StoreError::Conflict {
            code: "last_admin",
            detail: "this user is the team's only admin; make another member admin first".into(),
        });
    }
    Ok(())
}

pub async fn list_members(connection: &mut PgConnection, team: EntityId) -> StoreResult<Vec<Member>> {
    let rows = sqlx::query(
        "SELECT u.id, u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.entity_id = $1 ORDER BY u.name",
    )
    .bind(team.0)
    .fetch_all(connection)
    .await
    .map_err(backend)?;
    rows.iter()
        .map(|row| {
            let role: String = column(row, "role")?;
            Ok(Member {
                user_id: UserId(column(row, "id")?),
                user_name: column(row, "name")?,
                role: parse_enum(&role, Role::parse, "role")?,
            })
        })
        .collect()
}

pub async fn role_in(connection: &mut PgConnection, entity: EntityId, user: UserId) -> StoreResult<Option<Role>> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT 'admin'::text FROM users WHERE id = $2 AND entity_id = $1
         UNION ALL
         SELECT role FROM memberships WHERE entity_id = $1 AND user_id = $2
         LIMIT 1",
    )
    .bind(entity.0)
    .bind(user.0)
    .fetch_optional(connection)
    .await
    .map_err(backend)?;
    role.map(|role| parse_enum(&role, Role::parse, "role")).transpose()
}
