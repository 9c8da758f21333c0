//! The client subcommands, which call the REST API v1.
//!
//! Each resource has a module with its clap arguments and one function per verb. Commands
//! print a table for people, or the API's JSON with `--json`. Errors carry the server's
//! `detail`, and `main` prints them and exits non-zero.

mod automations;
mod executions;
mod http;
mod integrations;
mod output;
mod projects;
mod secrets;
mod teams;
mod users;

use clap::{Args, Subcommand};

use self::http::ApiClient;

/// Where the server is and who is calling.
#[derive(Args, Clone, Debug)]
pub struct ClientOptions {
    /// Base URL of the Herald server. As a flag it goes before the subcommand.
    //
    // Not global: `integration webhook create --url URL` names the webhook's URL, and clap
    // would otherwise store that value as the server's URL.
    #[arg(long = "url", env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key to authenticate with. As a flag it goes before the subcommand.
    //
    // Not global either, so that it does not show in the help of `serve` and `config`, which
    // do not call the API.
    #[arg(long = "api-key", env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// The client subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Show the user that the API key belongs to, and its teams.
    Whoami(users::WhoamiArgs),
    /// Create and list users (organization admins).
    #[command(subcommand)]
    User(users::UserCommand),
    /// Create teams and manage their members.
    #[command(subcommand)]
    Team(teams::TeamCommand),
    /// Create and list projects.
    #[command(subcommand)]
    Project(projects::ProjectCommand),
    /// Set, list and delete team secrets.
    #[command(subcommand)]
    Secret(secrets::SecretCommand),
    /// Create, list and delete team integrations.
    #[command(subcommand)]
    Integration(integrations::IntegrationCommand),
    /// Create, list, change and delete automations.
    #[command(subcommand)]
    Automation(automations::AutomationCommand),
    /// List executions of an automation and show their delivery attempts.
    #[command(subcommand)]
    Execution(executions::ExecutionCommand),
}

/// Runs a client subcommand.
pub async fn run(command: ClientCommand, options: ClientOptions) -> anyhow::Result<()> {
    let client = ApiClient::new(&options)?;
    match command {
        ClientCommand::Whoami(args) => users::whoami(&client, args).await,
        ClientCommand::User(command) => users::run(&client, command).await,
        ClientCommand::Team(command) => teams::run(&client, command).await,
        ClientCommand::Project(command) => projects::run(&client, command).await,
        ClientCommand::Secret(command) => secrets::run(&client, command).await,
        ClientCommand::Integration(command) => integrations::run(&client, command).await,
        ClientCommand::Automation(command) => automations::run(&client, command).await,
        ClientCommand::Execution(command) => executions::run(&client, command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::integrations::{IntegrationCommand, WebhookCommand};
    use super::*;

    /// The client part of the top-level command line.
    #[derive(Parser, Debug)]
    struct ClientCli {
        #[command(subcommand)]
        command: ClientCommand,
        #[command(flatten)]
        options: ClientOptions,
    }

    #[test]
    fn command_definitions_are_valid() {
        ClientCli::command().debug_assert();
    }

    #[test]
    fn webhook_url_is_not_server_url() {
        let args = ["herald", "--url", "http://127.0.0.1:1", "integration", "webhook", "create", "--team", "ml"];
        let cli =
            ClientCli::parse_from(args.into_iter().chain(["--name", "ci", "--url", "https://hooks.example.com/"]));

        assert_eq!(cli.options.url, "http://127.0.0.1:1");
        let ClientCommand::Integration(IntegrationCommand::Webhook(WebhookCommand::Create(webhook))) = cli.command
        else {
            panic!("parsed as another command: {:?}", cli.command);
        };
        assert_eq!(webhook.url, "https://hooks.example.com/");
    }
}
