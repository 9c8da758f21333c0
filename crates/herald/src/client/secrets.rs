//! `herald secret set|list|delete`.
//!
//! `set` reads the value from standard input, so it never appears in the command line,
//! the shell history or the process list, and it is never printed. On a terminal, the
//! typed characters are not echoed either.

use std::io::{self, IsTerminal, Read};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::http::ApiClient;
use super::output::{items, print_json, print_table, text};

/// `herald secret` subcommands.
#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Set a secret's value, read from standard input without its trailing newline.
    Set {
        /// The team that owns the secret.
        #[arg(long)]
        team: String,
        /// The secret name: letters, digits or '_', not starting with a digit.
        name: String,
    },
    /// List a team's secrets, without values.
    List {
        /// The team.
        #[arg(long)]
        team: String,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret that no integration uses.
    Delete {
        /// The team that owns the secret.
        #[arg(long)]
        team: String,
        /// The secret name.
        name: String,
    },
}

/// Runs a `herald secret` subcommand.
pub async fn run(client: &ApiClient, command: SecretCommand) -> anyhow::Result<()> {
    match command {
        SecretCommand::Set { team, name } => {
            let value = read_value(&name)?;
            let secret = client.put(&["teams", &team, "secrets", &name], &json!({"value": value})).await?;
            println!("set secret {} of team {team}", text(&secret["name"]));
        }
        SecretCommand::List { team, json } => {
            let secrets = client.get(&["teams", &team, "secrets"], &[]).await?;
            if json {
                return print_json(&secrets);
            }
            let rows = items(&secrets)
                .iter()
                .map(|secret| vec![text(&secret["name"]), text(&secret["created_at"]), text(&secret["updated_at"])])
                .collect();
            print_table("secrets", &["NAME", "CREATED", "UPDATED"], rows);
        }
        SecretCommand::Delete { team, name } => {
            client.delete(&["teams", &team, "secrets", &name]).await?;
            println!("deleted secret {name} of team {team}");
        }
    }
    Ok(())
}

/// Reads the secret value from standard input and strips one trailing newline, which
/// `echo` and terminals add but tokens never contain.
fn read_value(name: &str) -> anyhow::Result<String> {
    let stdin = io::stdin();
    let mut value = if stdin.is_terminal() {
        eprint!("value of secret {name} (hidden; press Enter to finish): ");
        let line = read_hidden_line(&stdin);
        eprintln!();
        line.context("failed to read the secret value from the terminal")?
    } else {
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).context("failed to read the secret value from standard input")?;
        text
    };

    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!(
            "the secret value is empty; pass it on standard input, for example \
             `printf '%s' \"$TOKEN\" | herald secret set --team TEAM {name}`"
        );
    }
    Ok(value)
}

/// Reads one line from the terminal with echo turned off, and turns echo back on even
/// when reading fails.
#[cfg(unix)]
fn read_hidden_line(stdin: &io::Stdin) -> io::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};

    /// Restores the terminal settings when dropped.
    struct RestoreEcho<'a> {
        stdin: &'a io::Stdin,
        original: rustix::termios::Termios,
    }

    impl Drop for RestoreEcho<'_> {
        fn drop(&mut self) {
            // Nothing more can be done if the terminal rejects the settings. The shell's `reset`
            // command restores echo.
            let _ = tcsetattr(self.stdin, OptionalActions::Now, &self.original);
        }
    }

    let original = tcgetattr(stdin)?;
    let mut hidden = original.clone();
    hidden.local_modes.remove(LocalModes::ECHO);
    tcsetattr(stdin, OptionalActions::Now, &hidden)?;
    let _restore = RestoreEcho { stdin, original };

    let mut line = String::new();
    stdin.read_line(&mut line)?;
    Ok(line)
}

/// Reads one line from the terminal. Without termios the typed characters are echoed.
#[cfg(not(unix))]
fn read_hidden_line(stdin: &io::Stdin) -> io::Result<String> {
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    Ok(line)
}
