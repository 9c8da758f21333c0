//! Delivery of executions to the outside world.
//!
//! The dispatcher is the last pipeline stage: it claims due executions from the store,
//! POSTs their stored bodies to webhook integrations, and records each attempt with what
//! happens next (success, a retry at a later time, or failure).
//!
//! - [`service`]: the dispatcher loop, [`service::run`].
//! - `in_flight`: the attempts in flight, and the cap on those of one integration.
//! - [`settings`]: [`DispatchSettings`], the timeouts, retry schedule and concurrency.
//! - [`client`]: the HTTP client, with no redirects, no proxy, a resolver that applies the
//!   network guard, and a cap on the response body read.
//! - [`signing`]: `X-Wandb-Signature` and the Standard Webhooks signature headers, and their
//!   verification.
//! - [`redact`]: removal of secret values from stored response bodies and errors.
//! - [`retry`]: the delay before the next attempt, with jitter and `Retry-After`.
//! - [`network`]: which addresses deliveries may reach.
//! - [`sealing`]: encryption of secret values at rest.

pub mod client;
mod deliver;
mod in_flight;
pub mod network;
pub mod redact;
pub mod retry;
pub mod sealing;
pub mod service;
pub mod settings;
pub mod signing;

pub use service::run;
pub use settings::DispatchSettings;
