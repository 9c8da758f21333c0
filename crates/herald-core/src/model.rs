//! Enumerations shared by the store, the API and the pipeline.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A user's role in a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything in the team.
    Viewer,
    /// Also logs runs and edits automations.
    Member,
    /// Also manages members, secrets and integrations.
    Admin,
}

impl Role {
    /// Returns the lower-case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    /// Parses a lower-case role name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an entity is a user's personal namespace or a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    /// A user's personal entity, named like the user.
    User,
    /// A team.
    Team,
}

impl EntityKind {
    /// Returns the lower-case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Team => "team",
        }
    }

    /// Parses a lower-case kind name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(EntityKind::User),
            "team" => Some(EntityKind::Team),
            _ => None,
        }
    }
}

/// The state of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    /// The run is sending data.
    Running,
    /// The run ended with exit code 0.
    Finished,
    /// The run ended with a non-zero exit code.
    Failed,
    /// The run stopped sending heartbeats.
    Crashed,
    /// A person stopped the run. Killed runs never trigger automations.
    Killed,
}

impl RunState {
    /// Returns the upper-case name used by W&B.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "RUNNING",
            RunState::Finished => "FINISHED",
            RunState::Failed => "FAILED",
            RunState::Crashed => "CRASHED",
            RunState::Killed => "KILLED",
        }
    }

    /// Parses an upper-case state name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RUNNING" => Some(RunState::Running),
            "FINISHED" => Some(RunState::Finished),
            "FAILED" => Some(RunState::Failed),
            "CRASHED" => Some(RunState::Crashed),
            "KILLED" => Some(RunState::Killed),
            _ => None,
        }
    }

    /// Returns the state a run ends in for a process exit code.
    pub fn from_exit_code(exit_code: i64) -> Self {
        if exit_code == 0 { RunState::Finished } else { RunState::Failed }
    }

    /// Returns true if and only if the run has ended.
    pub fn is_terminal(self) -> bool {
        self != RunState::Running
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionState {
    /// Waiting for its next attempt.
    Pending,
    /// A dispatcher has claimed it and is sending it now.
    Delivering,
    /// An attempt got a 2xx response, or the action needs no delivery.
    Succeeded,
    /// Every attempt failed.
    Failed,
    /// The automation matched but did not act, for example inside its cooldown.
    Skipped,
}

impl ExecutionState {
    /// Returns the lower-case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Pending => "pending",
            ExecutionState::Delivering => "delivering",
            ExecutionState::Succeeded => "succeeded",
            ExecutionState::Failed => "failed",
            ExecutionState::Skipped => "skipped",
        }
    }

    /// Parses a lower-case state name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(ExecutionState::Pending),
            "delivering" => Some(ExecutionState::Delivering),
            "succeeded" => Some(ExecutionState::Succeeded),
            "failed" => Some(ExecutionState::Failed),
            "skipped" => Some(ExecutionState::Skipped),
            _ => None,
        }
    }

    /// Returns true if and only if the execution will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, ExecutionState::Succeeded | ExecutionState::Failed | ExecutionState::Skipped)
    }
}

impl fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
