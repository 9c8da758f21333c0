//! `herald project create|list`.

use anyhow::format_err;
use clap::Subcommand;
use serde_json::json;

use super::http::ApiClient;
use super::output::{items, print_json, print_table, text};

/// `herald project` subcommands.
#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        /// The project, written ENTITY/PROJECT, where the entity is your user name or a team.
        path: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the projects you can read.
    List {
        /// Only projects of this user or team.
        #[arg(long)]
        entity: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `herald project` subcommand.
pub async fn run(client: &ApiClient, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { path, json } => {
            let (entity, name) = split_project_path(&path)?;
            let project = client.post(&["projects"], Some(&json!({"entity": entity, "name": name}))).await?;
            if json {
                return print_json(&project);
            }
            println!("created project {}/{}", text(&project["entity"]), text(&project["name"]));
        }
        ProjectCommand::List { entity, json } => {
            let query: Vec<(&str, &str)> = entity.as_deref().map(|entity| ("entity", entity)).into_iter().collect();
            let projects = client.get(&["projects"], &query).await?;
            if json {
                return print_json(&projects);
            }
            let rows = items(&projects)
                .iter()
                .map(|project| {
                    vec![
                        format!("{}/{}", text(&project["entity"]), text(&project["name"])),
                        text(&project["created_at"]),
                    ]
                })
                .collect();
            print_table("projects", &["PROJECT", "CREATED"], rows);
        }
    }
    Ok(())
}

/// Splits `ENTITY/PROJECT` at its first slash, because project names cannot contain one.
pub fn split_project_path(path: &str) -> anyhow::Result<(&str, &str)> {
    path.split_once('/')
        .filter(|(entity, project)| !entity.is_empty() && !project.is_empty())
        .ok_or_else(|| format_err!("invalid project {path:?}; write it as ENTITY/PROJECT, such as ml/demo"))
}
