//! Conversions between SQLite values and Herald's types.

use std::str::FromStr;

use herald_store::{StoreError, StoreResult};
use rusqlite::ErrorCode;
use serde_json::Value;

/// Wraps a SQLite error.
pub fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// Returns true if and only if the error is a UNIQUE or PRIMARY KEY violation.
pub fn is_unique_violation(error: &rusqlite::Error) -> bool {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => {
            failure.code == ErrorCode::ConstraintViolation
                && matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
        }
        _ => false,
    }
}

/// Parses a stored id.
pub fn parse_id<T: FromStr>(text: &str) -> StoreResult<T> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("invalid stored id {text:?}")))
}

/// Parses an optional stored id.
pub fn parse_optional_id<T: FromStr>(text: Option<String>) -> StoreResult<Option<T>> {
    text.as_deref().map(parse_id).transpose()
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
