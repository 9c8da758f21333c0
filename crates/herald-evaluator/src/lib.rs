//! The evaluator: the pipeline stage between the store's events and the dispatcher's
//! executions.
//!
//! [`pass`] turns a batch of events into executions inside the store's transaction;
//! [`service`] runs passes as events arrive.

pub mod pass;
pub mod service;

pub use pass::{EvaluatorSettings, EventEvaluator};
