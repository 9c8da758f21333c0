//! Herald's domain core: models, automation documents, run filters, metric evaluation and
//! payload templates.
//!
//! Architecture invariant: nothing in this crate performs I/O or reads the wall clock on its
//! own. The store, the evaluator service and the dispatcher call into it with the data they
//! loaded, so every rule here is tested with plain values.

pub mod automation;
pub mod document;
pub mod error;
pub mod evaluate;
pub mod filter;
pub mod ids;
pub mod metric;
pub mod model;
pub mod names;
pub mod template;
pub mod timestamp;
pub mod wandb_json;

pub use error::ValidationError;
pub use timestamp::Timestamp;
