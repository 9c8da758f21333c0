//! `herald automation create|list|get|update|enable|disable|delete`.
//!
//! Automations are named by id or by name. A name is looked up with the API's `name`
//! filter. A name is unique only inside a project, so `--project` narrows the lookup when
//! several projects use it. Automation names cannot be shaped like a UUID, so a UUID is
//! always an id.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail, format_err};
use clap::{Args, Subcommand};
use herald_core::ids::AutomationId;
use serde_json::Value;

use super::http::ApiClient;
use super::output::{items, print_fields, print_json, print_table, text};

/// `herald automation` subcommands.
#[derive(Subcommand, Debug)]
pub enum AutomationCommand {
    /// Create an automation from a JSON or YAML document.
    Create {
        /// The document file (`.json`, `.yaml` or `.yml`), or `-` for standard input.
        #[arg(short = 'f', long = "file")]
        file: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the automations you can read.
    List {
        /// Only automations of this project, written ENTITY/PROJECT.
        #[arg(long)]
        project: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an automation. With `--json`, print a document that `update -f` accepts.
    Get {
        #[command(flatten)]
        target: Target,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace an automation's document, which creates a new revision.
    Update {
        #[command(flatten)]
        target: Target,
        /// The document file (`.json`, `.yaml` or `.yml`), or `-` for standard input.
        #[arg(short = 'f', long = "file")]
        file: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Enable an automation.
    Enable {
        #[command(flatten)]
        target: Target,
    },
    /// Disable an automation, which stops firing until enabled again.
    Disable {
        #[command(flatten)]
        target: Target,
    },
    /// Delete an automation. Its executions stay in the history: `herald execution list
    /// --automation ID` lists them by the automation's id, because its name no longer resolves.
    Delete {
        #[command(flatten)]
        target: Target,
    },
}

/// An automation named by id or by name.
#[derive(Args, Debug)]
pub struct Target {
    /// The automation's id or name.
    #[arg(value_name = "NAME_OR_ID")]
    name_or_id: String,
    /// The project to look the name up in, written ENTITY/PROJECT.
    #[arg(long)]
    project: Option<String>,
}

/// Runs a `herald automation` subcommand.
pub async fn run(client: &ApiClient, command: AutomationCommand) -> anyhow::Result<()> {
    match command {
        AutomationCommand::Create { file, json } => {
            let document = read_document(&file)?;
            let automation = client.post(&["automations"], Some(&document)).await?;
            if json {
                return print_json(&automation);
            }
            println!("created {}", describe(&automation));
        }
        AutomationCommand::List { project, json } => {
            let query: Vec<(&str, &str)> = project.as_deref().map(|project| ("project", project)).into_iter().collect();
            let automations = client.get(&["automations"], &query).await?;
            if json {
                return print_json(&automations);
            }
            print_list(&automations);
        }
        AutomationCommand::Get { target, json } => {
            let id = resolve(client, &target.name_or_id, target.project.as_deref()).await?;
            let automation = client.get(&["automations", &id], &[]).await?;
            if json {
                return print_json(&automation);
            }
            print_details(&automation);
        }
        AutomationCommand::Update { target, file, json } => {
            let document = read_document(&file)?;
            let id = resolve(client, &target.name_or_id, target.project.as_deref()).await?;
            let automation = client.put(&["automations", &id], &document).await?;
            if json {
                return print_json(&automation);
            }
            println!("updated {} to revision {}", describe(&automation), text(&automation["revision"]));
        }
        AutomationCommand::Enable { target } => {
            let id = resolve(client, &target.name_or_id, target.project.as_deref()).await?;
            let automation = client.post(&["automations", &id, "enable"], None).await?;
            println!("enabled {}", describe(&automation));
        }
        AutomationCommand::Disable { target } => {
            let id = resolve(client, &target.name_or_id, target.project.as_deref()).await?;
            let automation = client.post(&["automations", &id, "disable"], None).await?;
            println!("disabled {}", describe(&automation));
        }
        AutomationCommand::Delete { target } => {
            let id = resolve(client, &target.name_or_id, target.project.as_deref()).await?;
            client.delete(&["automations", &id]).await?;
            println!("deleted automation {id}; list its executions with `herald execution list --automation {id}`");
        }
    }
    Ok(())
}

/// Returns the id of the automation named `name_or_id`, looking a name up with the API.
pub async fn resolve(client: &ApiClient, name_or_id: &str, project: Option<&str>) -> anyhow::Result<String> {
    if name_or_id.parse::<AutomationId>().is_ok() {
        return Ok(name_or_id.to_owned());
    }

    let mut query = vec![("name", name_or_id)];
    if let Some(project) = project {
        query.push(("project", project));
    }
    let found = client.get(&["automations"], &query).await?;
    let found = items(&found);

    match found {
        [] => {
            let place = project.map(|project| format!(" in project {project}")).unwrap_or_default();
            bail!("no automation named {name_or_id:?}{place}; list them with `herald automation list`")
        }
        [automation] => automation["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format_err!("the API returned an automation without an id")),
        several => {
            let projects: Vec<String> = several.iter().map(project_of).collect();
            bail!(
                "{} automations are named {name_or_id:?}, in projects {}; choose one with --project ENTITY/PROJECT \
                 or pass its id",
                several.len(),
                projects.join(", ")
            )
        }
    }
}

/// Reads an automation document from a file or, for `-`, from standard input. `.json`
/// files are JSON and `.yaml`/`.yml` files are YAML. Anything else is tried as JSON, then
/// as YAML.
fn read_document(file: &str) -> anyhow::Result<Value> {
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("failed to read the document from standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("failed to read {file}"))?
    };
    let source = if file == "-" { "standard input" } else { file };
    if text.trim().is_empty() {
        bail!("{source} is empty; give an automation document in JSON or YAML (see docs/automations.md)");
    }

    let extension = Path::new(file).extension().and_then(|extension| extension.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => serde_json::from_str(&text).with_context(|| format!("{source} is not valid JSON")),
        Some("yaml" | "yml") => {
            let yaml = serde_yaml::from_str(&text).with_context(|| format!("{source} is not valid YAML"))?;
            yaml_to_json(yaml).with_context(|| format!("{source} cannot be sent as JSON"))
        }
        _ => {
            let json_error = match serde_json::from_str(&text) {
                Ok(document) => return Ok(document),
                Err(error) => error,
            };
            let yaml = serde_yaml::from_str(&text)
                .map_err(|yaml_error| format_err!("{source} is neither JSON ({json_error}) nor YAML ({yaml_error})"))?;
            yaml_to_json(yaml).with_context(|| format!("{source} cannot be sent as JSON"))
        }
    }
}

/// Converts a YAML document to JSON. YAML's `.nan`, `.inf` and `-.inf` have no JSON form, and
/// serde would turn them into `null` silently, so they are rejected with their path instead.
fn yaml_to_json(yaml: serde_yaml::Value) -> anyhow::Result<Value> {
    if let Some((path, value)) = find_non_finite(&yaml, "") {
        let place = if path.is_empty() { "the document".to_owned() } else { path };
        bail!("{place}: {value} is not a finite number; JSON has no NaN or infinity, so write a finite number");
    }
    serde_yaml::from_value(yaml).context("the document is not a JSON-compatible YAML document")
}

/// Finds the first float that is NaN or infinite, and returns its dotted path and its YAML
/// spelling.
fn find_non_finite(value: &serde_yaml::Value, path: &str) -> Option<(String, &'static str)> {
    match value {
        serde_yaml::Value::Number(number) => {
            let float = number.as_f64()?;
            match float {
                f if f.is_nan() => Some((path.to_owned(), ".nan")),
                f if f == f64::INFINITY => Some((path.to_owned(), ".inf")),
                f if f == f64::NEG_INFINITY => Some((path.to_owned(), "-.inf")),
                _ => None,
            }
        }
        serde_yaml::Value::Sequence(items) => {
            items.iter().enumerate().find_map(|(index, item)| find_non_finite(item, &format!("{path}[{index}]")))
        }
        serde_yaml::Value::Mapping(mapping) => mapping.iter().find_map(|(key, item)| {
            let key = match key {
                serde_yaml::Value::String(text) => text.clone(),
                other => serde_yaml::to_string(other).map(|text| text.trim_end().to_owned()).unwrap_or_default(),
            };
            let child = if path.is_empty() { key } else { format!("{path}.{key}") };
            find_non_finite(item, &child)
        }),
        serde_yaml::Value::Tagged(tagged) => find_non_finite(&tagged.value, path),
        serde_yaml::Value::Null | serde_yaml::Value::Bool(_) | serde_yaml::Value::String(_) => None,
    }
}

fn project_of(automation: &Value) -> String {
    format!("{}/{}", text(&automation["scope"]["entity"]), text(&automation["scope"]["project"]))
}

/// Describes an automation in one line, for messages.
fn describe(automation: &Value) -> String {
    format!("automation {} ({}) in {}", text(&automation["name"]), text(&automation["id"]), project_of(automation))
}

/// Summarizes the event, such as `RUN_METRIC AVERAGE(loss, 3) $lt 0.2`.
fn event_summary(event: &Value) -> String {
    let kind = text(&event["type"]);
    let threshold = &event["threshold_filter"];
    if threshold.is_null() {
        return kind;
    }
    let aggregation = threshold["agg_op"].as_str().unwrap_or("LATEST");
    format!(
        "{kind} {aggregation}({}, {}) {} {}",
        text(&threshold["name"]),
        text(&threshold["window_size"]),
        text(&threshold["cmp_op"]),
        text(&threshold["threshold"])
    )
}

/// Summarizes the action, such as `GENERIC_WEBHOOK ci`.
fn action_summary(action: &Value) -> String {
    match action["integration"].as_str() {
        Some(integration) => format!("{} {integration}", text(&action["type"])),
        None => text(&action["type"]),
    }
}

fn print_list(automations: &Value) {
    let rows = items(automations)
        .iter()
        .map(|automation| {
            vec![
                text(&automation["name"]),
                project_of(automation),
                event_summary(&automation["event"]),
                action_summary(&automation["action"]),
                text(&automation["enabled"]),
                text(&automation["revision"]),
                text(&automation["id"]),
            ]
        })
        .collect();
    print_table("automations", &["NAME", "PROJECT", "EVENT", "ACTION", "ENABLED", "REVISION", "ID"], rows);
}

fn print_details(automation: &Value) {
    print_fields(vec![
        ("name", text(&automation["name"])),
        ("id", text(&automation["id"])),
        ("project", project_of(automation)),
        ("description", text(&automation["description"])),
        ("event", event_summary(&automation["event"])),
        ("run filter", text(&automation["event"]["run_filter"])),
        ("action", action_summary(&automation["action"])),
        ("payload", text(&automation["action"]["request_payload"])),
        ("enabled", text(&automation["enabled"])),
        ("cooldown", format!("{} s", text(&automation["cooldown_seconds"]))),
        ("revision", text(&automation["revision"])),
        ("created", text(&automation["created_at"])),
        ("updated", text(&automation["updated_at"])),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_non_finite_numbers_name_the_path() {
        let cases = [
            ("threshold: .nan", "event.threshold_filter.threshold: .nan is not a finite number"),
            ("threshold: .inf", "event.threshold_filter.threshold: .inf is not a finite number"),
            ("threshold: -.Inf", "event.threshold_filter.threshold: -.inf is not a finite number"),
        ];
        for (line, expected) in cases {
            let text = format!("event:\n  threshold_filter:\n    {line}\n");
            let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            let error = yaml_to_json(yaml).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{line}: {error}");
        }

        let listed: serde_yaml::Value = serde_yaml::from_str("values: [1, .NaN]").unwrap();
        let error = yaml_to_json(listed).unwrap_err().to_string();
        assert!(error.starts_with("values[1]: .nan is not a finite number"), "{error}");
    }

    #[test]
    fn yaml_finite_numbers_convert_unchanged() {
        let yaml: serde_yaml::Value = serde_yaml::from_str("a: 0.2\nb: -3\nc: [1e-7, nan]").unwrap();
        let json = yaml_to_json(yaml).unwrap();
        assert_eq!(json, serde_json::json!({"a": 0.2, "b": -3, "c": [1e-7, "nan"]}));
    }

    #[test]
    fn event_summary_names_the_condition() {
        let event = serde_json::json!({"type": "RUN_METRIC", "threshold_filter":
            {"name": "loss", "agg_op": "AVERAGE", "window_size": 3, "cmp_op": "$lt", "threshold": 0.2}});
        assert_eq!(event_summary(&event), "RUN_METRIC AVERAGE(loss, 3) $lt 0.2");
        let latest = serde_json::json!({"type": "RUN_METRIC", "threshold_filter":
            {"name": "acc", "agg_op": null, "window_size": 1, "cmp_op": "$gte", "threshold": 0.9}});
        assert_eq!(event_summary(&latest), "RUN_METRIC LATEST(acc, 1) $gte 0.9");
    }
}
