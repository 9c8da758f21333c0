//! Errors that every backend maps its driver's errors into.

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A failed store operation.
///
/// Backends map "no such row" into [`StoreError::NotFound`] and unique-key violations into
/// [`StoreError::Conflict`], so callers choose between 404, 409 and 500 without knowing
/// which database they talk to.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The write contradicts stored data, such as a name that is taken or an object that
    /// is still in use. `code` is stable and `detail` is written for people.
    #[error("{detail}")]
    Conflict {
        /// Stable snake_case code, such as `already_exists` or `in_use`.
        code: &'static str,
        /// What conflicts, and how to resolve it.
        detail: String,
    },
    /// Stored data that the code cannot read, which means a bug or a hand-edited database.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Creates an `already_exists` conflict.
    pub fn already_exists(detail: impl Into<String>) -> Self {
        StoreError::Conflict { code: "already_exists", detail: detail.into() }
    }

    /// Creates an `in_use` conflict.
    pub fn in_use(detail: impl Into<String>) -> Self {
        StoreError::Conflict { code: "in_use", detail: detail.into() }
    }

    /// Returns a copy of the error for another caller, as when one failed commit fails
    /// every write batched into it.
    pub fn duplicate(&self) -> Self {
        match self {
            StoreError::NotFound(what) => StoreError::NotFound(what.clone()),
            StoreError::Conflict { code, detail } => StoreError::Conflict { code, detail: detail.clone() },
            StoreError::Corrupt(detail) => StoreError::Corrupt(detail.clone()),
            StoreError::Backend(detail) => StoreError::Backend(detail.clone()),
        }
    }
}
