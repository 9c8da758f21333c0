//! Delivery of executions to the outside world.
//!
//! - [`network`]: which addresses deliveries may reach.
//! - [`sealing`]: encryption of secret values at rest.

pub mod network;
pub mod sealing;
