//! Typed identifiers for the resources that the REST API exposes.
//!
//! Every public resource is named by a UUIDv7, so ids sort by creation time and cursor
//! paging is a range scan on the primary key. A newtype per resource keeps an automation
//! id from being passed where an integration id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Creates a new time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Id of a user.
    UserId
);
uuid_id!(
    /// Id of an entity: a user's personal namespace or a team.
    EntityId
);
uuid_id!(
    /// Id of a project.
    ProjectId
);
uuid_id!(
    /// Id of a run. W&B's own run id is the run's `name` inside its project.
    RunId
);
uuid_id!(
    /// Id of a team secret.
    SecretId
);
uuid_id!(
    /// Id of an integration (a webhook target).
    IntegrationId
);
uuid_id!(
    /// Id of an automation. It stays the same across revisions.
    AutomationId
);
uuid_id!(
    /// Id of an execution. Receivers see it as `webhook-id` on every attempt.
    ExecutionId
);
