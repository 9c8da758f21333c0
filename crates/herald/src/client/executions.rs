//! `herald execution list|get`.

use clap::Subcommand;

use super::automations::resolve;
use super::http::ApiClient;
use super::output::{items, print_fields, print_json, print_table, text};

/// `herald execution` subcommands.
#[derive(Subcommand, Debug)]
pub enum ExecutionCommand {
    /// List an automation's executions, newest first.
    List {
        /// The automation's id or name. A deleted automation's executions stay listed under its
        /// id, but its name no longer resolves.
        #[arg(long, value_name = "NAME_OR_ID")]
        automation: String,
        /// The project to look the automation's name up in, written ENTITY/PROJECT.
        #[arg(long)]
        project: Option<String>,
        /// How many executions to list, from 1 to 500.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// List executions older than this execution id (the `next_before` of a page).
        #[arg(long)]
        before: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an execution and its delivery attempts.
    Get {
        /// The execution id.
        id: String,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `herald execution` subcommand.
pub async fn run(client: &ApiClient, command: ExecutionCommand) -> anyhow::Result<()> {
    match command {
        ExecutionCommand::List { automation, project, limit, before, json } => {
            let id = resolve(client, &automation, project.as_deref()).await?;
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            if let Some(before) = &before {
                query.push(("before", before));
            }
            let page = client.get(&["automations", &id, "executions"], &query).await?;
            if json {
                return print_json(&page);
            }
            print_list(&page);
        }
        ExecutionCommand::Get { id, json } => {
            let execution = client.get(&["executions", &id], &[]).await?;
            if json {
                return print_json(&execution);
            }
            print_details(&execution);
        }
    }
    Ok(())
}

/// Describes the outcome of the last attempt: its status, its error, or `-`.
fn last_outcome(execution: &serde_json::Value) -> String {
    match (execution["last_status_code"].as_i64(), execution["last_error"].as_str()) {
        (Some(status), Some(error)) => format!("{status}: {error}"),
        (Some(status), None) => status.to_string(),
        (None, Some(error)) => error.to_owned(),
        (None, None) => text(&execution["skip_reason"]),
    }
}

fn print_list(page: &serde_json::Value) {
    let rows = items(page)
        .iter()
        .map(|execution| {
            vec![
                text(&execution["created_at"]),
                text(&execution["state"]),
                text(&execution["event_type"]),
                text(&execution["action_type"]),
                text(&execution["attempt_count"]),
                last_outcome(execution),
                text(&execution["id"]),
            ]
        })
        .collect();
    print_table("executions", &["CREATED", "STATE", "EVENT", "ACTION", "ATTEMPTS", "LAST OUTCOME", "ID"], rows);
    if let Some(next) = page["next_before"].as_str() {
        println!("more: --before {next}");
    }
}

fn print_details(execution: &serde_json::Value) {
    print_fields(vec![
        ("id", text(&execution["id"])),
        ("automation", format!("{} ({})", text(&execution["automation_name"]), text(&execution["automation_id"]))),
        ("revision", text(&execution["revision"])),
        ("state", text(&execution["state"])),
        ("event", text(&execution["event_type"])),
        ("action", text(&execution["action_type"])),
        ("integration", text(&execution["integration"])),
        ("attempts", text(&execution["attempt_count"])),
        ("next attempt", text(&execution["next_attempt_at"])),
        ("last outcome", last_outcome(execution)),
        ("created", text(&execution["created_at"])),
        ("request body", text(&execution["request_body"])),
    ]);

    let attempts = execution["attempts"].as_array().map_or(&[][..], Vec::as_slice);
    let rows = attempts
        .iter()
        .map(|attempt| {
            vec![
                text(&attempt["number"]),
                text(&attempt["started_at"]),
                format!("{} ms", text(&attempt["duration_ms"])),
                text(&attempt["status_code"]),
                text(&attempt["succeeded"]),
                text(&attempt["error"]),
            ]
        })
        .collect();
    println!();
    print_table("attempts", &["ATTEMPT", "STARTED", "DURATION", "STATUS", "SUCCEEDED", "ERROR"], rows);
}
