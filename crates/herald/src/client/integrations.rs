//! `herald integration webhook create` and `herald integration list|get|delete`.

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::http::ApiClient;
use super::output::{items, print_fields, print_json, print_table, text};

/// `herald integration` subcommands.
#[derive(Subcommand, Debug)]
pub enum IntegrationCommand {
    /// Manage webhook integrations.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// List a team's integrations.
    List {
        /// The team.
        #[arg(long)]
        team: String,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an integration.
    Get {
        /// The team that owns the integration.
        #[arg(long)]
        team: String,
        /// The integration name.
        name: String,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete an integration that no automation uses.
    Delete {
        /// The team that owns the integration.
        #[arg(long)]
        team: String,
        /// The integration name.
        name: String,
    },
}

/// `herald integration webhook` subcommands.
#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Create a webhook integration.
    Create(WebhookCreateArgs),
}

/// Options of `herald integration webhook create`.
#[derive(Args, Debug)]
pub struct WebhookCreateArgs {
    /// The team that owns the integration.
    #[arg(long)]
    pub team: String,
    /// The integration name: words of letters, digits, '_' or '-' separated by single spaces.
    #[arg(long)]
    pub name: String,
    /// The http or https URL that deliveries POST to.
    #[arg(long)]
    pub url: String,
    /// A team secret sent as `Authorization: Bearer <value>`.
    #[arg(long)]
    pub access_token_secret: Option<String>,
    /// A team secret that signs each delivery.
    #[arg(long)]
    pub signing_secret: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `herald integration` subcommand.
pub async fn run(client: &ApiClient, command: IntegrationCommand) -> anyhow::Result<()> {
    match command {
        IntegrationCommand::Webhook(WebhookCommand::Create(args)) => create_webhook(client, args).await?,
        IntegrationCommand::List { team, json } => {
            let integrations = client.get(&["teams", &team, "integrations"], &[]).await?;
            if json {
                return print_json(&integrations);
            }
            let rows = items(&integrations)
                .iter()
                .map(|integration| {
                    vec![
                        text(&integration["name"]),
                        text(&integration["type"]),
                        text(&integration["url"]),
                        text(&integration["access_token_secret"]),
                        text(&integration["signing_secret"]),
                    ]
                })
                .collect();
            print_table("integrations", &["NAME", "TYPE", "URL", "ACCESS TOKEN SECRET", "SIGNING SECRET"], rows);
        }
        IntegrationCommand::Get { team, name, json } => {
            let integration = client.get(&["teams", &team, "integrations", &name], &[]).await?;
            if json {
                return print_json(&integration);
            }
            print_fields(
                ["name", "type", "team", "url", "access_token_secret", "signing_secret", "id", "created_at"]
                    .into_iter()
                    .map(|field| (field, text(&integration[field])))
                    .collect(),
            );
        }
        IntegrationCommand::Delete { team, name } => {
            client.delete(&["teams", &team, "integrations", &name]).await?;
            println!("deleted integration {name} of team {team}");
        }
    }
    Ok(())
}

async fn create_webhook(client: &ApiClient, args: WebhookCreateArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    body.insert("type".into(), Value::from("webhook"));
    body.insert("name".into(), Value::from(args.name));
    body.insert("url".into(), Value::from(args.url));
    if let Some(secret) = args.access_token_secret {
        body.insert("access_token_secret".into(), Value::from(secret));
    }
    if let Some(secret) = args.signing_secret {
        body.insert("signing_secret".into(), Value::from(secret));
    }

    let integration = client.post(&["teams", &args.team, "integrations"], Some(&Value::Object(body))).await?;
    if args.json {
        return print_json(&integration);
    }
    println!("created webhook integration {} of team {}", text(&integration["name"]), text(&integration["team"]));
    Ok(())
}
