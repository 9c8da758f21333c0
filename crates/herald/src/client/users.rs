//! `herald whoami` and `herald user create|list`.

use clap::{Args, Subcommand};
use serde_json::json;

use super::http::ApiClient;
use super::output::{items, print_fields, print_json, print_table, text};

/// Options of `herald whoami`.
#[derive(Args, Debug)]
pub struct WhoamiArgs {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `herald user` subcommands.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print its API key, which is shown only once.
    Create {
        /// The user name: letters, digits, '-', '_' or '.', starting with a letter or digit.
        name: String,
        /// Make the user an organization admin, who may do everything in every team.
        #[arg(long)]
        org_admin: bool,
        /// Print the API's JSON, with the key, instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every user.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Shows the caller.
pub async fn whoami(client: &ApiClient, args: WhoamiArgs) -> anyhow::Result<()> {
    let viewer = client.get(&["viewer"], &[]).await?;
    if args.json {
        return print_json(&viewer);
    }
    let teams: Vec<String> = viewer["teams"]
        .as_array()
        .map(|teams| teams.iter().map(|team| format!("{} ({})", text(&team["name"]), text(&team["role"]))).collect())
        .unwrap_or_default();
    print_fields(vec![
        ("name", text(&viewer["name"])),
        ("id", text(&viewer["id"])),
        ("org admin", text(&viewer["is_org_admin"])),
        ("teams", if teams.is_empty() { "-".to_owned() } else { teams.join(", ") }),
    ]);
    Ok(())
}

/// Runs a `herald user` subcommand.
pub async fn run(client: &ApiClient, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { name, org_admin, json } => {
            let created = client.post(&["users"], Some(&json!({"name": name, "is_org_admin": org_admin}))).await?;
            if json {
                return print_json(&created);
            }
            println!("created user {}", text(&created["user"]["name"]));
            println!("API key (shown only now; store it safely): {}", text(&created["api_key"]));
            Ok(())
        }
        UserCommand::List { json } => {
            let users = client.get(&["users"], &[]).await?;
            if json {
                return print_json(&users);
            }
            let rows = items(&users)
                .iter()
                .map(|user| vec![text(&user["name"]), text(&user["is_org_admin"]), text(&user["created_at"])])
                .collect();
            print_table("users", &["NAME", "ORG ADMIN", "CREATED"], rows);
            Ok(())
        }
    }
}
