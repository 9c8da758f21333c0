//! The scenarios, grouped by the part of the `Store` trait they cover.
//!
//! Every scenario starts from an empty store, so it may bootstrap, create names freely and
//! count rows. A scenario fails by panicking, with a message that names what differed.

pub mod accounts;
pub mod automations;
pub mod concurrency;
pub mod delivery;
pub mod evaluation;
pub mod projects;
pub mod runs;
pub mod secrets;

use std::fmt::Debug;

use herald_store::{StoreError, StoreResult};

/// Returns the detail of a conflict with `code`, and fails on any other outcome.
#[track_caller]
fn expect_conflict<T: Debug>(result: StoreResult<T>, code: &str) -> String {
    match result {
        Err(StoreError::Conflict { code: actual, detail }) if actual == code => detail,
        other => panic!("expected a {code:?} conflict, got {other:?}"),
    }
}

/// Fails unless the result is a not-found error.
#[track_caller]
fn expect_not_found<T: Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected a not-found error, got {other:?}"),
    }
}
