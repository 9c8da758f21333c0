//! Payload templates: JSON documents whose string values may contain `${variable}`.
//!
//! A template is validated when its automation is saved: it must be a JSON object or array,
//! at most [`MAX_TEMPLATE_BYTES`] long and with at most [`MAX_TEMPLATE_VARIABLES`] variable
//! references, and every variable must be a known one. The same checks run when a stored
//! template is read, so a template that would fail to read back is rejected when it is saved
//! instead. Tightening a limit therefore makes stored templates over it unreadable.
//! Rendering substitutes values into the string leaves of the parsed document and serializes
//! the result once, so substituted text is always JSON-escaped and the body always parses.
//! Object keys are never substituted. Variables that do not apply to the event render as
//! the empty string.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{ValidationError, quote_value};

/// Variables that every template may use. Whether a variable has a value depends on the
/// event; one that does not apply renders as "".
pub const KNOWN_VARIABLES: &[&str] = &[
    "event_type",
    "event_author",
    "entity_name",
    "project_name",
    "automation_name",
    "run_id",
    "run_name",
    "run_url",
    "run_status",
    "metric_name",
    "metric_value",
    "metric_values",
    "threshold",
    "step",
    "artifact_collection_name",
    "artifact_version",
    "artifact_version_string",
    "artifact_version_index",
    "alias",
    "tag",
];

/// Prefix of the variables that read one top-level key of an artifact's metadata.
pub const ARTIFACT_METADATA_PREFIX: &str = "artifact_metadata.";

/// Maximum size of a template, in bytes of compact JSON (64 KiB). Together with
/// [`MAX_TEMPLATE_VARIABLES`] it bounds the rendered body, because every body is stored,
/// sent and served with its execution.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Maximum number of `${variable}` references in one template, counted over all of its
/// strings. Each reference adds one JSON-escaped variable value to the rendered body.
pub const MAX_TEMPLATE_VARIABLES: usize = 100;

/// Maximum size of a rendered body (1 MiB). The template limits bound the template, not the
/// values substituted into it: `${metric_values}` of a 1,000-value window is about 25 KB, so
/// a template within its limits can still render several megabytes. An execution whose body
/// would be larger is recorded as failed instead of being stored and sent.
pub const MAX_RENDERED_BYTES: usize = 1 << 20;

/// A validated payload template.
#[derive(Clone, Debug, PartialEq)]
pub struct PayloadTemplate {
    document: Value,
}

/// The values of template variables for one execution.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVariables(pub BTreeMap<String, String>);

impl TemplateVariables {
    /// Sets a variable.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// Returns a variable's value, or "" when it does not apply.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }
}

impl PayloadTemplate {
    /// Parses a template given as JSON text, as W&B's `requestPayload` is.
    pub fn parse_text(text: &str, field: &str) -> Result<Self, ValidationError> {
        let document: Value = serde_json::from_str(text).map_err(|error| {
            ValidationError::new(
                "invalid_template",
                field,
                format!(
                    "invalid JSON at line {} column {}: {}; the payload template must be a JSON object or array",
                    error.line(),
                    error.column(),
                    strip_position(&error.to_string())
                ),
            )
        })?;
        if let Some(kind) = scalar_kind(&document) {
            return Err(ValidationError::new(
                "invalid_template",
                field,
                format!(
                    "the string {} contains a JSON {kind}; the payload template must be a JSON object or array, \
                     such as {{\"text\": \"${{run_name}}\"}}",
                    quote_value(&Value::from(text))
                ),
            ));
        }
        Self::from_document(document, field)
    }

    /// Validates a template given as a JSON document: an object or an array within the size
    /// limits, whose strings use only known variables.
    pub fn from_document(document: Value, field: &str) -> Result<Self, ValidationError> {
        if let Some(kind) = scalar_kind(&document) {
            return Err(ValidationError::new(
                "invalid_template",
                field,
                format!(
                    "got the JSON {kind} {}; the payload template must be a JSON object or array, or a string \
                     that contains one, such as {{\"text\": \"${{run_name}}\"}}",
                    quote_value(&document)
                ),
            ));
        }
        check_size(&document, field)?;
        crate::document::check_nesting(&document, field)?;
        let references = validate_value(&document, field)?;
        if references > MAX_TEMPLATE_VARIABLES {
            return Err(ValidationError::new(
                "invalid_template",
                field,
                format!(
                    "the payload template has {references} variable references; use at most \
                     {MAX_TEMPLATE_VARIABLES}"
                ),
            ));
        }
        Ok(Self { document })
    }

    /// Returns the template document.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Renders the template into the body to send.
    pub fn render(&self, variables: &TemplateVariables) -> String {
        render_value(&self.document, variables).to_string()
    }
}

impl Serialize for PayloadTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.document.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PayloadTemplate {
    /// Reads a stored template with the checks it passed when it was saved.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let document = Value::deserialize(deserializer)?;
        Self::from_document(document, "request_payload").map_err(serde::de::Error::custom)
    }
}

/// One piece of a template string: literal text or a variable reference.
#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// Splits a template string into literal text and variables. A `$` that is not followed
/// by `{` is literal text.
fn segments(text: &str) -> Result<Vec<Segment<'_>>, (usize, String)> {
    let mut result = Vec::new();
    let mut rest = text;
    let mut offset = 0;

    while let Some(start) = rest.find("${") {
        if start > 0 {
            result.push(Segment::Text(&rest[..start]));
        }
        let after_open = &rest[start + 2..];
        let Some(end) = after_open.find('}') else {
            let position = text[..offset + start].chars().count() + 1;
            return Err((position, "unterminated variable; close it with '}'".to_owned()));
        };
        result.push(Segment::Variable(&after_open[..end]));
        let consumed = start + 2 + end + 1;
        rest = &rest[consumed..];
        offset += consumed;
    }
    if !rest.is_empty() {
        result.push(Segment::Text(rest));
    }
    Ok(result)
}

/// Returns true if and only if `name` is a variable that templates may use.
pub fn is_known_variable(name: &str) -> bool {
    if KNOWN_VARIABLES.contains(&name) {
        return true;
    }
    name.strip_prefix(ARTIFACT_METADATA_PREFIX).is_some_and(|key| !key.is_empty())
}

/// Names the type of a JSON value that cannot be a template, or returns `None` for an
/// object or an array.
fn scalar_kind(value: &Value) -> Option<&'static str> {
    match value {
        Value::Object(_) | Value::Array(_) => None,
        Value::String(_) => Some("string"),
        Value::Number(_) => Some("number"),
        Value::Bool(_) => Some("boolean"),
        Value::Null => Some("null"),
    }
}

/// Checks the size of the template as compact JSON, the form in which it is stored.
fn check_size(document: &Value, field: &str) -> Result<(), ValidationError> {
    let bytes = document.to_string().len();
    if bytes <= MAX_TEMPLATE_BYTES {
        return Ok(());
    }
    Err(ValidationError::new(
        "invalid_template",
        field,
        format!(
            "the payload template is {bytes} bytes of compact JSON; shorten it to at most \
             {MAX_TEMPLATE_BYTES} bytes"
        ),
    ))
}

/// Checks every string of `value` and returns how many variable references they contain.
fn validate_value(value: &Value, field: &str) -> Result<usize, ValidationError> {
    match value {
        Value::String(text) => validate_string(text, field),
        Value::Array(items) => {
            let mut references = 0;
            for (index, item) in items.iter().enumerate() {
                references += validate_value(item, &format!("{field}[{index}]"))?;
            }
            Ok(references)
        }
        Value::Object(object) => {
            let mut references = 0;
            for (key, item) in object {
                references += validate_value(item, &format!("{field}.{key}"))?;
            }
            Ok(references)
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(0),
    }
}

/// Checks that a template string uses only known variables and returns how many it uses.
fn validate_string(text: &str, field: &str) -> Result<usize, ValidationError> {
    let pieces = segments(text).map_err(|(position, message)| {
        ValidationError::new(
            "invalid_template",
            field,
            format!("{message}, at character {position} of {}", quote_value(&Value::from(text))),
        )
    })?;

    let mut position = 1;
    let mut references = 0;
    for piece in pieces {
        match piece {
            Segment::Text(literal) => position += literal.chars().count(),
            Segment::Variable(name) => {
                if !is_known_variable(name) {
                    return Err(ValidationError::new(
                        "unknown_variable",
                        field,
                        format!(
                            "unknown variable ${{{name}}} at character {position} of {}; known variables: {}, \
                             and artifact_metadata.<KEY>",
                            quote_value(&Value::from(text)),
                            KNOWN_VARIABLES.join(", ")
                        ),
                    ));
                }
                position += name.chars().count() + 3;
                references += 1;
            }
        }
    }
    Ok(references)
}

fn render_value(value: &Value, variables: &TemplateVariables) -> Value {
    match value {
        Value::String(text) => Value::String(render_string(text, variables)),
        Value::Array(items) => Value::Array(items.iter().map(|item| render_value(item, variables)).collect()),
        Value::Object(object) => {
            let rendered = object.iter().map(|(key, item)| (key.clone(), render_value(item, variables)));
            Value::Object(rendered.collect())
        }
        other => other.clone(),
    }
}

fn render_string(text: &str, variables: &TemplateVariables) -> String {
    // Templates are validated when saved, so a string that no longer splits cleanly can only
    // come from a stored document edited by hand; it is sent as it is.
    let Ok(pieces) = segments(text) else {
        return text.to_owned();
    };
    let mut rendered = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Segment::Text(literal) => rendered.push_str(literal),
            Segment::Variable(name) => rendered.push_str(variables.get(name)),
        }
    }
    rendered
}

/// Removes serde_json's trailing " at line L column C", which the caller reports itself.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(index) => &message[..index],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn variables(pairs: &[(&str, &str)]) -> TemplateVariables {
        let mut variables = TemplateVariables::default();
        for (name, value) in pairs {
            variables.set(name, *value);
        }
        variables
    }

    #[track_caller]
    fn check_render(template: Value, pairs: &[(&str, &str)], expected: Value) {
        let template = PayloadTemplate::from_document(template, "request_payload").unwrap();
        let body = template.render(&variables(pairs));
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn variables_are_substituted_in_strings() {
        check_render(
            json!({"text": "${run_name}: ${metric_name}=${metric_value}", "n": 1}),
            &[("run_name", "exp-1"), ("metric_name", "loss"), ("metric_value", "0.15")],
            json!({"text": "exp-1: loss=0.15", "n": 1}),
        );
    }

    #[test]
    fn variables_that_do_not_apply_render_empty() {
        check_render(json!({"alias": "[${alias}]"}), &[], json!({"alias": "[]"}));
    }

    #[test]
    fn keys_and_non_strings_are_left_alone() {
        check_render(
            json!({"${run_name}": [true, null, 2.5, "${run_name}"]}),
            &[("run_name", "r")],
            json!({"${run_name}": [true, null, 2.5, "r"]}),
        );
    }

    #[test]
    fn dollar_without_brace_is_literal() {
        check_render(json!({"price": "$5 and $ {x}"}), &[], json!({"price": "$5 and $ {x}"}));
    }

    #[test]
    fn unknown_variable_names_position() {
        let error = PayloadTemplate::parse_text(r#"{"a": {"b": "ok ${nope}"}}"#, "action.request_payload").unwrap_err();
        assert_eq!(error.code, "unknown_variable");
        assert_eq!(error.field, "action.request_payload.a.b");
        assert!(error.detail.contains("${nope} at character 4"), "{}", error.detail);
    }

    #[test]
    fn unterminated_variable_is_rejected() {
        let error = PayloadTemplate::from_document(json!({"a": "x ${run_name"}), "p").unwrap_err();
        assert_eq!(error.code, "invalid_template");
        assert!(error.detail.contains("character 3"), "{}", error.detail);
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let error = PayloadTemplate::parse_text("{\"a\": \n  1,}", "action.request_payload").unwrap_err();
        assert_eq!(error.code, "invalid_template");
        assert!(error.detail.starts_with("invalid JSON at line 2 column 5"), "{}", error.detail);
    }

    #[test]
    fn scalar_templates_are_rejected_in_both_forms() {
        for text in ["\"text\"", "5", "true", "null"] {
            let error = PayloadTemplate::parse_text(text, "action.request_payload").unwrap_err();
            assert_eq!(error.code, "invalid_template", "{text}");
            assert_eq!(error.field, "action.request_payload", "{text}");
            assert!(error.detail.contains(&quote_value(&Value::from(text))), "{text}: {}", error.detail);
            assert!(error.detail.contains("object or array"), "{text}: {}", error.detail);
        }
        for document in [json!("text"), json!(5), json!(true), Value::Null] {
            let error = PayloadTemplate::from_document(document.clone(), "action.request_payload").unwrap_err();
            assert_eq!(error.code, "invalid_template", "{document}");
            assert_eq!(error.field, "action.request_payload", "{document}");
            assert!(error.detail.contains(&document.to_string()), "{document}: {}", error.detail);
        }
    }

    #[test]
    fn arrays_are_templates_in_both_forms() {
        let parsed = PayloadTemplate::parse_text("[\"${run_name}\", 1]", "p").unwrap();
        assert_eq!(parsed.document(), &json!(["${run_name}", 1]));
        let rendered = parsed.render(&variables(&[("run_name", "r")]));
        assert_eq!(serde_json::from_str::<Value>(&rendered).unwrap(), json!(["r", 1]));
        assert!(PayloadTemplate::from_document(json!([]), "p").is_ok());
    }

    #[test]
    fn stored_scalar_template_is_not_readable() {
        let stored = serde_json::from_value::<PayloadTemplate>(json!(5));
        assert!(stored.is_err(), "a scalar was read back as a template");
    }

    #[test]
    fn variable_references_are_capped() {
        let at_limit = vec!["${run_name}"; MAX_TEMPLATE_VARIABLES].concat();
        assert!(PayloadTemplate::from_document(json!({"text": at_limit}), "p").is_ok());

        // References count over every string of the document, not per string.
        let spread: Vec<Value> = (0..=MAX_TEMPLATE_VARIABLES).map(|_| json!({"v": "${run_id}"})).collect();
        let error = PayloadTemplate::from_document(Value::Array(spread), "action.request_payload").unwrap_err();
        assert_eq!(error.code, "invalid_template");
        assert_eq!(error.field, "action.request_payload");
        let expected =
            format!("has {} variable references; use at most {MAX_TEMPLATE_VARIABLES}", MAX_TEMPLATE_VARIABLES + 1);
        assert!(error.detail.contains(&expected), "{}", error.detail);
    }

    #[test]
    fn template_size_is_capped() {
        // {"t":"..."} adds 8 bytes around the text.
        let at_limit = json!({"t": "x".repeat(MAX_TEMPLATE_BYTES - 8)});
        assert_eq!(at_limit.to_string().len(), MAX_TEMPLATE_BYTES);
        assert!(PayloadTemplate::from_document(at_limit, "p").is_ok());

        let over = format!("{{\"t\": \"{}\"}}", "x".repeat(MAX_TEMPLATE_BYTES));
        let error = PayloadTemplate::parse_text(&over, "action.request_payload").unwrap_err();
        assert_eq!(error.code, "invalid_template");
        assert_eq!(error.field, "action.request_payload");
        let expected =
            format!("is {} bytes of compact JSON; shorten it to at most {MAX_TEMPLATE_BYTES}", MAX_TEMPLATE_BYTES + 8);
        assert!(error.detail.contains(&expected), "{}", error.detail);
    }

    #[test]
    fn artifact_metadata_keys_are_known() {
        assert!(is_known_variable("artifact_metadata.accuracy"));
        assert!(!is_known_variable("artifact_metadata."));
    }

    proptest! {
        #[test]
        fn substituted_values_decode_to_the_original(value in "\\PC*|[\"\\\\\n\t\u{0}-\u{1f}\u{1F600}]*") {
            let template = PayloadTemplate::from_document(json!({"v": "${run_name}", "w": "<${run_name}>"}), "p").unwrap();
            let body = template.render(&variables(&[("run_name", &value)]));
            let parsed: Value = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(parsed["v"].as_str().unwrap(), value.as_str());
            prop_assert_eq!(parsed["w"].as_str().unwrap(), format!("<{value}>"));
        }
    }
}
