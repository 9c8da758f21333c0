//! Conversions between PostgreSQL values and Herald's types, and the mapping of sqlx errors
//! into [`StoreError`].

use std::borrow::Cow;

use herald_store::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Wraps a sqlx error. Row-not-found becomes [`StoreError::NotFound`], but queries here
/// use `fetch_optional` and name what was missing themselves.
pub fn backend(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Returns true if and only if the error is a UNIQUE or PRIMARY KEY violation (SQLSTATE
/// 23505).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// Returns true if and only if the error is a FOREIGN KEY violation (SQLSTATE 23503).
pub fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_foreign_key_violation())
}

/// Maps a unique violation to `conflict` and every other error to [`backend`].
pub fn unique_or_backend(error: sqlx::Error, conflict: impl FnOnce() -> StoreError) -> StoreError {
    if is_unique_violation(&error) { conflict() } else { backend(error) }
}

/// Reads a column, naming it in the error when its type does not match.
pub fn column<'r, T>(row: &'r PgRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name).map_err(|error| StoreError::Corrupt(format!("column {name}: {error}")))
}

/// Parses stored JSON.
pub fn parse_json(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("invalid stored JSON: {error}")))
}

/// Parses optional stored JSON.
pub fn parse_optional_json(text: Option<String>) -> StoreResult<Option<Value>> {
    text.as_deref().map(parse_json).transpose()
}

/// Parses a stored enumeration value with `parse`.
pub fn parse_enum<T>(text: &str, parse: impl Fn(&str) -> Option<T>, what: &str) -> StoreResult<T> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("invalid stored {what} {text:?}")))
}

/// Converts a row limit to the BIGINT that `LIMIT` takes, saturating instead of wrapping.
pub fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Marks SQL text that this crate assembled from its own constant fragments, such as a
/// shared column list. Values always travel as bind parameters, never inside the text.
pub fn assembled(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// Replaces NUL characters, which PostgreSQL cannot store in TEXT, with U+FFFD. Only for
/// free text that comes from the network, such as a webhook receiver's response, where
/// failing the whole write would lose the record of an attempt.
pub fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(text) }
}
