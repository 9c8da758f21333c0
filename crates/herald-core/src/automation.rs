//! Automation documents: what users write, how it is validated, and how it is stored.
//!
//! The document mirrors W&B's names as nested JSON:
//!
//! ```json
//! {"name": "loss-low", "description": "optional",
//!  "scope": {"type": "PROJECT", "entity": "ml", "project": "demo"},
//!  "event": {"type": "RUN_METRIC",
//!            "run_filter": {"display_name": {"$regex": "^exp-"}},
//!            "threshold_filter": {"name": "loss", "agg_op": "AVERAGE", "window_size": 3,
//!                                 "cmp_op": "$lt", "threshold": 0.2}},
//!  "action": {"type": "GENERIC_WEBHOOK", "integration": "ci",
//!             "request_payload": {"text": "${run_name}: ${metric_name}=${metric_value}"}},
//!  "enabled": true, "cooldown_seconds": 0}
//! ```
//!
//! Parsing yields an [`AutomationDraft`], which names its project and integration. The API
//! resolves those names to ids and the store keeps an [`AutomationSpec`], so renaming or
//! replacing an integration never silently re-binds an automation to another object.

use serde_json::{Map, Value, json};

use crate::document::ObjectReader;
use crate::error::{ValidationError, quote_value};
use crate::filter::{Filter, RUN_FIELDS};
use crate::ids::IntegrationId;
use crate::metric::{Aggregation, Comparison, format_number};
use crate::names::validate_automation_name;
use crate::template::PayloadTemplate;

/// Cooldown applied when a document does not set one: 24 hours, as in W&B.
pub const DEFAULT_COOLDOWN_SECONDS: u64 = 86_400;
/// Maximum cooldown a document may set: 365 days.
pub const MAX_COOLDOWN_SECONDS: u64 = 365 * 86_400;
/// Largest metric window. Each (automation, run) pair keeps its window in the store.
pub const MAX_WINDOW_SIZE: usize = 1_000;
/// Maximum length of a description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;
/// Maximum length of a metric name (`threshold_filter.name`), in characters. Metric names are
/// W&B history keys, and 512 leaves room for long dotted names of nested dictionaries.
pub const MAX_METRIC_NAME_CHARS: usize = 512;

/// Fields of the output document that input documents may carry and that are ignored.
const READ_ONLY_FIELDS: &[&str] = &["id", "revision", "created_at", "updated_at", "created_by"];

/// A validated automation document, before its names are resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct AutomationDraft {
    /// Name, unique within the scope.
    pub name: String,
    /// Free text shown in lists.
    pub description: Option<String>,
    /// The project the automation watches.
    pub scope: ProjectScope,
    /// The event and its filters.
    pub event: EventSpec,
    /// The action, naming its integration.
    pub action: ActionDraft,
    /// Whether the automation fires.
    pub enabled: bool,
    /// Minimum time between two firings for the same run, in seconds.
    pub cooldown_seconds: u64,
}

/// A project scope, by names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectScope {
    /// The entity (user or team) that owns the project.
    pub entity: String,
    /// The project name.
    pub project: String,
}

/// An event type together with its filters.
#[derive(Clone, Debug, PartialEq)]
pub enum EventSpec {
    /// `RUN_METRIC`: a run's metric crosses a threshold.
    RunMetric(RunMetricEvent),
}

impl EventSpec {
    /// Returns W&B's name of the event type.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventSpec::RunMetric(_) => "RUN_METRIC",
        }
    }
}

/// The filters of a `RUN_METRIC` event.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetricEvent {
    /// Only runs that match may fire. `None` matches every run.
    pub run_filter: Option<Filter>,
    /// The threshold condition.
    pub threshold: ThresholdFilter,
}

/// `agg(last window_size values) <cmp> threshold`.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdFilter {
    /// The metric's key in the run history.
    pub metric: String,
    /// The aggregation that turns the window into one value.
    pub aggregation: Aggregation,
    /// How many logged values the window holds.
    pub window_size: usize,
    /// The comparison.
    pub comparison: Comparison,
    /// The threshold.
    pub threshold: f64,
}

/// An action whose integration is named.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionDraft {
    /// POST a JSON payload to a webhook integration.
    GenericWebhook {
        /// The integration's name in the scope's team.
        integration: String,
        /// The payload template; `None` sends the default payload.
        payload: Option<PayloadTemplate>,
    },
    /// Record the execution and do nothing else.
    NoOp,
}

/// An action whose integration is resolved to an id, as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionSpec {
    /// POST a JSON payload to a webhook integration.
    GenericWebhook {
        /// The integration.
        integration_id: IntegrationId,
        /// The payload template; `None` sends the default payload.
        payload: Option<PayloadTemplate>,
    },
    /// Record the execution and do nothing else.
    NoOp,
}

impl ActionSpec {
    /// Returns W&B's name of the action type.
    pub fn action_type(&self) -> &'static str {
        match self {
            ActionSpec::GenericWebhook { .. } => "GENERIC_WEBHOOK",
            ActionSpec::NoOp => "NO_OP",
        }
    }

    /// Returns the integration the action sends to, if any.
    pub fn integration_id(&self) -> Option<IntegrationId> {
        match self {
            ActionSpec::GenericWebhook { integration_id, .. } => Some(*integration_id),
            ActionSpec::NoOp => None,
        }
    }
}

/// The part of an automation that each revision stores: everything except scope and the
/// enabled flag, which live on the automation itself.
#[derive(Clone, Debug, PartialEq)]
pub struct AutomationSpec {
    /// Name, unique within the scope.
    pub name: String,
    /// Free text shown in lists.
    pub description: Option<String>,
    /// The event and its filters.
    pub event: EventSpec,
    /// The action.
    pub action: ActionSpec,
    /// Minimum time between two firings for the same run, in seconds.
    pub cooldown_seconds: u64,
}

impl AutomationDraft {
    /// Parses and validates an automation document.
    pub fn parse(document: &Value) -> Result<Self, ValidationError> {
        let root = ObjectReader::new(document, "")?;
        root.reject_unknown(
            &["name", "description", "scope", "event", "action", "enabled", "cooldown_seconds"],
            READ_ONLY_FIELDS,
        )?;

        let name = root.required_string("name")?;
        validate_automation_name("name", name)?;
        let description = parse_description(&root)?;
        let scope = parse_scope(&root.required_object("scope")?)?;
        let event = parse_event(&root.required_object("event")?)?;
        let action = parse_action(&root.required_object("action")?)?;
        let enabled = root.optional_bool("enabled")?.unwrap_or(true);
        let cooldown_seconds = root
            .optional_integer("cooldown_seconds", 0, MAX_COOLDOWN_SECONDS as i64)?
            .map_or(DEFAULT_COOLDOWN_SECONDS, |seconds| seconds as u64);

        Ok(Self { name: name.to_owned(), description, scope, event, action, enabled, cooldown_seconds })
    }
}

fn parse_description(root: &ObjectReader<'_>) -> Result<Option<String>, ValidationError> {
    let Some(description) = root.optional_string("description")? else {
        return Ok(None);
    };
    if description.contains('\0') {
        return Err(ValidationError::invalid("description", "description contains a NUL character; remove it"));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ValidationError::invalid(
            "description",
            format!(
                "description has {} characters; shorten it to at most {MAX_DESCRIPTION_CHARS}",
                description.chars().count()
            ),
        ));
    }
    Ok(Some(description.to_owned()))
}

fn parse_scope(scope: &ObjectReader<'_>) -> Result<ProjectScope, ValidationError> {
    scope.reject_unknown(&["type", "entity", "project"], &["id"])?;
    let scope_type = scope.required_string("type")?;
    if scope_type != "PROJECT" {
        return Err(ValidationError::invalid(
            scope.path_of("type"),
            format!("unsupported scope type {scope_type:?}; use \"PROJECT\""),
        ));
    }
    let entity = scope.required_string("entity")?;
    let project = scope.required_string("project")?;
    Ok(ProjectScope { entity: entity.to_owned(), project: project.to_owned() })
}

fn parse_event(event: &ObjectReader<'_>) -> Result<EventSpec, ValidationError> {
    let event_type = event.required_string("type")?;
    match event_type {
        "RUN_METRIC" => {
            event.reject_unknown(&["type", "run_filter", "threshold_filter"], &[])?;
            let run_filter = parse_run_filter(event)?;
            let threshold = parse_threshold(&event.required_object("threshold_filter")?)?;
            Ok(EventSpec::RunMetric(RunMetricEvent { run_filter, threshold }))
        }
        other => Err(ValidationError::invalid(
            event.path_of("type"),
            format!("unknown event type {other:?}; use \"RUN_METRIC\""),
        )),
    }
}

/// Reads `run_filter`, given as an object or, as the W&B SDK sends it, as a JSON string.
fn parse_run_filter(event: &ObjectReader<'_>) -> Result<Option<Filter>, ValidationError> {
    let field = event.path_of("run_filter");
    let parsed;
    let value = match event.optional("run_filter") {
        None => return Ok(None),
        Some(Value::String(text)) => {
            parsed = serde_json::from_str::<Value>(text).map_err(|error| {
                ValidationError::invalid(&field, format!("run_filter is a string but not valid JSON: {error}"))
            })?;
            &parsed
        }
        Some(value) => value,
    };
    let filter = Filter::parse(value, &field, &RUN_FIELDS)?;
    Ok((!filter.is_empty()).then_some(filter))
}

fn parse_threshold(filter: &ObjectReader<'_>) -> Result<ThresholdFilter, ValidationError> {
    filter.reject_unknown(&["name", "agg_op", "window_size", "cmp_op", "threshold"], &[])?;

    let metric = parse_metric_name(filter)?;

    let aggregation = match filter.optional_string("agg_op")? {
        None => Aggregation::Latest,
        Some("MIN") => Aggregation::Min,
        Some("MAX") => Aggregation::Max,
        Some("AVERAGE") => Aggregation::Average,
        Some(other) => {
            return Err(ValidationError::invalid(
                filter.path_of("agg_op"),
                format!("unknown aggregation {other:?}; use null (latest value), \"MIN\", \"MAX\" or \"AVERAGE\""),
            ));
        }
    };

    let window_size = filter.optional_integer("window_size", 1, MAX_WINDOW_SIZE as i64)?.unwrap_or(1) as usize;

    let cmp_text = filter.required_string("cmp_op")?;
    let comparison = Comparison::parse(cmp_text).ok_or_else(|| {
        ValidationError::invalid(
            filter.path_of("cmp_op"),
            format!("unknown comparison {cmp_text:?}; use \"$gt\", \"$gte\", \"$lt\" or \"$lte\""),
        )
    })?;

    let threshold = filter.required_number("threshold")?;
    Ok(ThresholdFilter { metric: metric.to_owned(), aggregation, window_size, comparison, threshold })
}

/// Reads `threshold_filter.name`: not blank, at most [`MAX_METRIC_NAME_CHARS`] characters
/// and free of control characters, which no logged key needs.
fn parse_metric_name<'a>(filter: &ObjectReader<'a>) -> Result<&'a str, ValidationError> {
    let metric = filter.required_string("name")?;
    let field = filter.path_of("name");
    if metric.trim().is_empty() {
        return Err(ValidationError::invalid(
            field,
            "metric name is empty; name a key that the run logs, such as \"loss\"",
        ));
    }
    let length = metric.chars().count();
    if length > MAX_METRIC_NAME_CHARS {
        return Err(ValidationError::invalid(
            field,
            format!("metric name has {length} characters; shorten it to at most {MAX_METRIC_NAME_CHARS}"),
        ));
    }
    if metric.chars().any(char::is_control) {
        return Err(ValidationError::invalid(
            field,
            format!("metric name {} contains a control character; remove it", quote_value(&Value::from(metric))),
        ));
    }
    Ok(metric)
}

fn parse_action(action: &ObjectReader<'_>) -> Result<ActionDraft, ValidationError> {
    let action_type = action.required_string("type")?;
    match action_type {
        "GENERIC_WEBHOOK" => {
            action.reject_unknown(&["type", "integration", "request_payload"], &[])?;
            let integration = action.required_string("integration")?;
            let payload = parse_payload(action)?;
            Ok(ActionDraft::GenericWebhook { integration: integration.to_owned(), payload })
        }
        "NO_OP" => {
            action.reject_unknown(&["type"], &[])?;
            Ok(ActionDraft::NoOp)
        }
        other => Err(ValidationError::invalid(
            action.path_of("type"),
            format!("unknown action type {other:?}; use \"GENERIC_WEBHOOK\" or \"NO_OP\""),
        )),
    }
}

/// Reads `request_payload`, given as a JSON object or array, or as a string that contains
/// one. [`PayloadTemplate`] rejects every other value.
fn parse_payload(action: &ObjectReader<'_>) -> Result<Option<PayloadTemplate>, ValidationError> {
    let field = action.path_of("request_payload");
    match action.optional("request_payload") {
        None => Ok(None),
        Some(Value::String(text)) => PayloadTemplate::parse_text(text, &field).map(Some),
        Some(document) => PayloadTemplate::from_document(document.clone(), &field).map(Some),
    }
}

impl EventSpec {
    /// Writes the event as it appears in automation documents.
    pub fn to_document(&self) -> Value {
        match self {
            EventSpec::RunMetric(event) => {
                let mut object = Map::new();
                object.insert("type".into(), Value::from("RUN_METRIC"));
                if let Some(filter) = &event.run_filter {
                    object.insert("run_filter".into(), filter.source().clone());
                }
                object.insert("threshold_filter".into(), event.threshold.to_document());
                Value::Object(object)
            }
        }
    }

    /// Reads an event as stored by [`EventSpec::to_document`].
    pub fn from_document(document: &Value) -> Result<Self, ValidationError> {
        parse_event(&ObjectReader::new(document, "event")?)
    }
}

impl ThresholdFilter {
    /// Writes the filter with W&B's field names.
    pub fn to_document(&self) -> Value {
        json!({
            "name": self.metric,
            "agg_op": self.aggregation.wandb_name(),
            "window_size": self.window_size,
            "cmp_op": self.comparison.as_str(),
            "threshold": self.threshold,
        })
    }

    /// Describes the condition for people, for example `AVERAGE(loss, 3) $lt 0.2`.
    pub fn describe(&self) -> String {
        let aggregation = self.aggregation.wandb_name().unwrap_or("LATEST");
        format!(
            "{aggregation}({}, {}) {} {}",
            self.metric,
            self.window_size,
            self.comparison.as_str(),
            format_number(self.threshold)
        )
    }
}

impl ActionSpec {
    /// Writes the action as the store keeps it, naming the integration by id.
    pub fn to_stored(&self) -> Value {
        match self {
            ActionSpec::GenericWebhook { integration_id, payload } => {
                let mut object = Map::new();
                object.insert("type".into(), Value::from("GENERIC_WEBHOOK"));
                object.insert("integration_id".into(), Value::from(integration_id.to_string()));
                if let Some(payload) = payload {
                    object.insert("request_payload".into(), payload.document().clone());
                }
                Value::Object(object)
            }
            ActionSpec::NoOp => json!({"type": "NO_OP"}),
        }
    }

    /// Reads an action written by [`ActionSpec::to_stored`].
    pub fn from_stored(stored: &Value) -> Result<Self, ValidationError> {
        let action = ObjectReader::new(stored, "action")?;
        match action.required_string("type")? {
            "GENERIC_WEBHOOK" => {
                let id_text = action.required_string("integration_id")?;
                let integration_id = id_text.parse().map_err(|_| {
                    ValidationError::invalid(action.path_of("integration_id"), format!("invalid id {id_text:?}"))
                })?;
                let payload = parse_payload(&action)?;
                Ok(ActionSpec::GenericWebhook { integration_id, payload })
            }
            "NO_OP" => Ok(ActionSpec::NoOp),
            other => {
                Err(ValidationError::invalid(action.path_of("type"), format!("unknown stored action type {other:?}")))
            }
        }
    }

    /// Writes the action as it appears in automation documents, with the integration's
    /// current name.
    pub fn to_document(&self, integration_name: Option<&str>) -> Value {
        match self {
            ActionSpec::GenericWebhook { payload, .. } => {
                let mut object = Map::new();
                object.insert("type".into(), Value::from("GENERIC_WEBHOOK"));
                object.insert("integration".into(), Value::from(integration_name.unwrap_or_default()));
                if let Some(payload) = payload {
                    object.insert("request_payload".into(), payload.document().clone());
                }
                Value::Object(object)
            }
            ActionSpec::NoOp => json!({"type": "NO_OP"}),
        }
    }
}

impl AutomationSpec {
    /// Writes the revision as the store keeps it.
    pub fn to_stored(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "event": self.event.to_document(),
            "action": self.action.to_stored(),
            "cooldown_seconds": self.cooldown_seconds,
        })
    }

    /// Reads a revision written by [`AutomationSpec::to_stored`].
    pub fn from_stored(stored: &Value) -> Result<Self, ValidationError> {
        let root = ObjectReader::new(stored, "")?;
        let name = root.required_string("name")?.to_owned();
        let description = root.optional_string("description")?.map(str::to_owned);
        let event = EventSpec::from_document(root.required("event")?)?;
        let action = ActionSpec::from_stored(root.required("action")?)?;
        let cooldown_seconds = root
            .optional_integer("cooldown_seconds", 0, i64::MAX)?
            .map_or(DEFAULT_COOLDOWN_SECONDS, |seconds| seconds as u64);
        Ok(Self { name, description, event, action, cooldown_seconds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({
            "name": "loss-low",
            "description": "optional",
            "scope": {"type": "PROJECT", "entity": "ml", "project": "demo"},
            "event": {"type": "RUN_METRIC",
                      "run_filter": {"display_name": {"$regex": "^exp-"}},
                      "threshold_filter": {"name": "loss", "agg_op": "AVERAGE", "window_size": 3,
                                           "cmp_op": "$lt", "threshold": 0.2}},
            "action": {"type": "GENERIC_WEBHOOK", "integration": "ci",
                       "request_payload": {"text": "${run_name}: ${metric_name}=${metric_value}"}},
            "enabled": true,
            "cooldown_seconds": 0
        })
    }

    #[track_caller]
    fn check_rejected(edit: impl FnOnce(&mut Value), code: &str, field: &str) {
        let mut doc = document();
        edit(&mut doc);
        let error = AutomationDraft::parse(&doc).unwrap_err();
        assert_eq!((error.code, error.field.as_str()), (code, field), "{}", error.detail);
    }

    #[test]
    fn example_document_parses() {
        let draft = AutomationDraft::parse(&document()).unwrap();
        assert_eq!(draft.name, "loss-low");
        assert_eq!(draft.scope, ProjectScope { entity: "ml".into(), project: "demo".into() });
        assert_eq!(draft.cooldown_seconds, 0);
        let EventSpec::RunMetric(event) = &draft.event;
        assert_eq!(event.threshold.window_size, 3);
        assert_eq!(event.threshold.aggregation, Aggregation::Average);
        assert!(event.run_filter.is_some());
        assert!(matches!(&draft.action, ActionDraft::GenericWebhook { integration, .. } if integration == "ci"));
    }

    #[test]
    fn defaults_apply() {
        let mut doc = document();
        let object = doc.as_object_mut().unwrap();
        object.remove("cooldown_seconds");
        object.remove("enabled");
        object["event"].as_object_mut().unwrap().remove("run_filter");
        let draft = AutomationDraft::parse(&doc).unwrap();
        assert_eq!(draft.cooldown_seconds, DEFAULT_COOLDOWN_SECONDS);
        assert!(draft.enabled);
        let EventSpec::RunMetric(event) = &draft.event;
        assert!(event.run_filter.is_none());
    }

    #[test]
    fn invalid_documents_name_the_field() {
        check_rejected(|doc| doc["event"]["type"] = json!("RUN_EXPLODED"), "invalid_value", "event.type");
        check_rejected(
            |doc| doc["event"]["threshold_filter"]["cmp_op"] = json!("$eq"),
            "invalid_value",
            "event.threshold_filter.cmp_op",
        );
        check_rejected(
            |doc| doc["event"]["threshold_filter"]["window_size"] = json!(-3),
            "invalid_value",
            "event.threshold_filter.window_size",
        );
        check_rejected(
            |doc| doc["action"]["request_payload"] = json!("{\"text\": "),
            "invalid_template",
            "action.request_payload",
        );
        check_rejected(
            |doc| doc["action"]["request_payload"] = json!({"t": "${who}"}),
            "unknown_variable",
            "action.request_payload.t",
        );
        check_rejected(
            |doc| doc["action"].as_object_mut().unwrap().remove("integration").map(drop).unwrap_or(()),
            "missing_field",
            "action.integration",
        );
        check_rejected(|doc| doc["surprise"] = json!(1), "unknown_field", "surprise");
        check_rejected(
            |doc| doc["event"]["threshold_filter"]["threshold"] = json!("low"),
            "invalid_value",
            "event.threshold_filter.threshold",
        );
        check_rejected(|doc| doc["cooldown_seconds"] = json!(-1), "invalid_value", "cooldown_seconds");
    }

    #[test]
    fn scalar_payloads_are_rejected_in_both_forms() {
        let scalars = [json!("\"text\""), json!("5"), json!("true"), json!(5), json!(true), json!(false)];
        for payload in scalars {
            let mut doc = document();
            doc["action"]["request_payload"] = payload.clone();
            let error = AutomationDraft::parse(&doc).unwrap_err();
            assert_eq!((error.code, error.field.as_str()), ("invalid_template", "action.request_payload"), "{payload}");
            assert!(error.detail.contains(&payload.to_string()), "{payload}: {}", error.detail);
        }
    }

    #[test]
    fn array_payloads_are_accepted_in_both_forms() {
        for payload in [json!(["${run_name}"]), json!("[\"${run_name}\"]")] {
            let mut doc = document();
            doc["action"]["request_payload"] = payload.clone();
            let ActionDraft::GenericWebhook { payload: Some(template), .. } =
                AutomationDraft::parse(&doc).unwrap().action
            else {
                panic!("{payload}: a webhook action with a template");
            };
            assert_eq!(template.document(), &json!(["${run_name}"]), "{payload}");
        }
    }

    #[test]
    fn metric_name_length_is_capped() {
        let mut doc = document();
        doc["event"]["threshold_filter"]["name"] = json!("m".repeat(MAX_METRIC_NAME_CHARS));
        assert!(AutomationDraft::parse(&doc).is_ok());

        doc["event"]["threshold_filter"]["name"] = json!("m".repeat(MAX_METRIC_NAME_CHARS + 1));
        let error = AutomationDraft::parse(&doc).unwrap_err();
        assert_eq!((error.code, error.field.as_str()), ("invalid_value", "event.threshold_filter.name"));
        let expected =
            format!("has {} characters; shorten it to at most {MAX_METRIC_NAME_CHARS}", MAX_METRIC_NAME_CHARS + 1);
        assert!(error.detail.contains(&expected), "{}", error.detail);
    }

    #[test]
    fn metric_name_control_characters_rejected() {
        for name in ["lo\0ss", "loss\n", "\u{7f}loss"] {
            let mut doc = document();
            doc["event"]["threshold_filter"]["name"] = json!(name);
            let error = AutomationDraft::parse(&doc).unwrap_err();
            assert_eq!(
                (error.code, error.field.as_str()),
                ("invalid_value", "event.threshold_filter.name"),
                "{name:?}"
            );
            assert!(error.detail.contains("control character"), "{name:?}: {}", error.detail);
        }
    }

    #[test]
    fn description_length_is_capped() {
        let mut doc = document();
        doc["description"] = json!("d".repeat(MAX_DESCRIPTION_CHARS));
        assert!(AutomationDraft::parse(&doc).is_ok());

        doc["description"] = json!("d".repeat(MAX_DESCRIPTION_CHARS + 1));
        let error = AutomationDraft::parse(&doc).unwrap_err();
        assert_eq!((error.code, error.field.as_str()), ("invalid_value", "description"));
        let expected =
            format!("has {} characters; shorten it to at most {MAX_DESCRIPTION_CHARS}", MAX_DESCRIPTION_CHARS + 1);
        assert!(error.detail.contains(&expected), "{}", error.detail);
    }

    #[test]
    fn no_op_actions_have_no_other_fields() {
        let mut doc = document();
        doc["action"] = json!({"type": "NO_OP"});
        assert_eq!(AutomationDraft::parse(&doc).unwrap().action, ActionDraft::NoOp);
        check_rejected(
            |doc| doc["action"] = json!({"type": "NO_OP", "integration": "ci"}),
            "unknown_field",
            "action.integration",
        );
    }

    #[test]
    fn wandb_style_string_filter_and_payload_are_accepted() {
        let mut doc = document();
        doc["event"]["run_filter"] = json!("{\"$and\": []}");
        doc["action"]["request_payload"] = json!("{\"run\": \"${run_name}\"}");
        let draft = AutomationDraft::parse(&doc).unwrap();
        let EventSpec::RunMetric(event) = &draft.event;
        assert!(event.run_filter.is_none(), "an empty $and matches every run");
    }

    #[test]
    fn output_fields_are_ignored_on_input() {
        let mut doc = document();
        doc["id"] = json!("0190c9a4-6a5e-7cc0-8f5e-7f3a2b1c0d9e");
        doc["revision"] = json!(3);
        assert!(AutomationDraft::parse(&doc).is_ok());
    }

    #[test]
    fn stored_spec_round_trips() {
        let draft = AutomationDraft::parse(&document()).unwrap();
        let ActionDraft::GenericWebhook { payload, .. } = draft.action else { panic!("webhook action") };
        let spec = AutomationSpec {
            name: draft.name,
            description: draft.description,
            event: draft.event,
            action: ActionSpec::GenericWebhook { integration_id: IntegrationId::new(), payload },
            cooldown_seconds: draft.cooldown_seconds,
        };
        assert_eq!(AutomationSpec::from_stored(&spec.to_stored()).unwrap(), spec);
    }
}
