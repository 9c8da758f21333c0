//! The `herald` binary: `herald serve` runs the server, `herald config default` prints the
//! default configuration, and the other subcommands are clients of the REST API.

mod client;
mod config;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Herald: automations for machine-learning experiments.
#[derive(Parser, Debug)]
#[command(name = "herald", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    #[command(flatten)]
    client: client::ClientOptions,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the Herald server.
    Serve(serve::ServeArgs),
    /// Print the default configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herald: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Config(command) => config::run(command),
            Command::Client(command) => client::run(command, cli.client).await,
        }
    });

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error:#}");
            ExitCode::FAILURE
        }
    }
}
