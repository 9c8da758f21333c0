//! `herald team create|list|get|add-member|remove-member`.

use clap::Subcommand;
use serde_json::json;

use super::http::ApiClient;
use super::output::{items, print_json, print_table, text};

/// `herald team` subcommands.
#[derive(Subcommand, Debug)]
pub enum TeamCommand {
    /// Create a team with you as its admin.
    Create {
        /// The team name: letters, digits, '-', '_' or '.', starting with a letter or digit.
        name: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List your teams (organization admins see every team).
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a team's members.
    Get {
        /// The team name.
        name: String,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a user to a team, or change the user's role.
    AddMember {
        /// The team name.
        team: String,
        /// The user name.
        user: String,
        /// The role: viewer, member or admin.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Remove a user from a team.
    RemoveMember {
        /// The team name.
        team: String,
        /// The user name.
        user: String,
    },
}

/// Runs a `herald team` subcommand.
pub async fn run(client: &ApiClient, command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::Create { name, json } => {
            let team = client.post(&["teams"], Some(&json!({"name": name}))).await?;
            if json {
                return print_json(&team);
            }
            println!("created team {}", text(&team["name"]));
        }
        TeamCommand::List { json } => {
            let teams = client.get(&["teams"], &[]).await?;
            if json {
                return print_json(&teams);
            }
            let rows = items(&teams).iter().map(|team| vec![text(&team["name"]), text(&team["created_at"])]).collect();
            print_table("teams", &["NAME", "CREATED"], rows);
        }
        TeamCommand::Get { name, json } => {
            let team = client.get(&["teams", &name], &[]).await?;
            if json {
                return print_json(&team);
            }
            let members = team["members"].as_array().map_or(&[][..], Vec::as_slice);
            let rows = members.iter().map(|member| vec![text(&member["user"]), text(&member["role"])]).collect();
            print_table("members", &["MEMBER", "ROLE"], rows);
        }
        TeamCommand::AddMember { team, user, role } => {
            let member = client.put(&["teams", &team, "members", &user], &json!({"role": role})).await?;
            println!("{} is now {} of team {team}", text(&member["user"]), text(&member["role"]));
        }
        TeamCommand::RemoveMember { team, user } => {
            client.delete(&["teams", &team, "members", &user]).await?;
            println!("removed {user} from team {team}");
        }
    }
    Ok(())
}
