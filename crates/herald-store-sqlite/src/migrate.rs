//! Schema migrations, tracked in SQLite's `user_version`.
//!
//! Each migration is a SQL file under `migrations/`, applied in order inside one
//! transaction together with the version bump. This is written by hand rather than with a
//! migration crate because the whole mechanism is a version number and a list, and the
//! store already owns its connection on the writer thread.

use herald_store::{StoreError, StoreResult};
use rusqlite::Connection;

/// The migrations, in order. Migration `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_initial.sql")];

/// Brings the schema up to date. Refuses a database written by a newer Herald.
pub fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let current: usize = connection
        .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .map_err(|error| StoreError::Backend(format!("failed to read the schema version: {error}")))?
        as usize;

    if current > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, but this Herald knows only up to {}; run a newer Herald",
            MIGRATIONS.len()
        )));
    }

    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let mut apply = || -> rusqlite::Result<()> {
            let transaction = connection.transaction()?;
            transaction.execute_batch(sql)?;
            transaction.pragma_update(None, "user_version", version as i64)?;
            transaction.commit()
        };
        apply().map_err(|error| StoreError::Backend(format!("failed to apply migration {version}: {error}")))?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}
