//! Output of the client subcommands: tables for people, JSON for programs.

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under a header as a borderless table, or `no <what> found` without rows.
pub fn print_table(what: &str, header: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        println!("no {what} found");
        return;
    }
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    for row in rows {
        table.add_row(row);
    }
    print_trimmed(&table);
}

/// Prints `(field, value)` pairs as a two-column table.
pub fn print_fields(fields: Vec<(&str, String)>) {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    for (field, value) in fields {
        table.add_row(vec![field.to_owned(), value]);
    }
    print_trimmed(&table);
}

/// Prints a table without the padding that the last column leaves at the end of each line.
fn print_trimmed(table: &Table) {
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// Returns the items of a list body.
pub fn items(body: &Value) -> &[Value] {
    body["items"].as_array().map_or(&[], Vec::as_slice)
}

/// Returns a field as display text: strings without quotes, null as `-`, other values as
/// JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
