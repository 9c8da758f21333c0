//! Mongo-style filters, the subset that W&B's automations use.
//!
//! Operators: `$and $or $nor $not` combine filters; `$eq $ne $gt $gte $lt $lte $in $nin
//! $exists $regex $contains` test one field. A plain value is `$eq`. Several operators in
//! one object must all hold.
//!
//! When a field contains an array (tags, aliases), each element is tested on its own and the
//! condition is true if any element matches. `$ne` and `$nin` are true when no element matches.
//! `$regex` searches the string and is anchored only where the pattern says so. Invalid
//! patterns are rejected when the filter is parsed, so they never fail at event time.
//! Comparisons are case-sensitive.

use std::cmp::Ordering;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{ValidationError, quote_value};

/// A parsed filter together with the JSON it was parsed from, which is what it serializes to.
#[derive(Clone, Debug)]
pub struct Filter {
    source: Value,
    node: Node,
}

#[derive(Clone, Debug)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    Not(Box<Node>),
    Field { path: String, conditions: Vec<Condition> },
}

#[derive(Clone, Debug)]
enum Condition {
    Eq(Value),
    Ne(Value),
    Compare(Ordering, bool, Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Regex(Regex),
    Contains(String),
    Not(Vec<Condition>),
}

/// The fields a filter may name. `prefixes` admits any dotted path below them, such as
/// `config.lr` for the prefix `config`.
#[derive(Clone, Copy, Debug)]
pub struct FieldSet {
    /// Field names allowed as they are.
    pub names: &'static [&'static str],
    /// Field names whose nested paths are allowed.
    pub prefixes: &'static [&'static str],
}

impl FieldSet {
    fn admits(&self, path: &str) -> bool {
        if self.names.contains(&path) {
            return true;
        }
        self.prefixes
            .iter()
            .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')))
    }

    fn describe(&self) -> String {
        let mut names: Vec<String> = self.names.iter().map(|name| (*name).to_owned()).collect();
        names.extend(self.prefixes.iter().map(|prefix| format!("{prefix}.<key>")));
        names.join(", ")
    }
}

/// The run fields that a `run_filter` may test.
pub const RUN_FIELDS: FieldSet = FieldSet {
    names: &["name", "display_name", "state", "tags", "group", "job_type", "username", "notes"],
    prefixes: &["config"],
};

impl Filter {
    /// Parses and validates a filter. `field` is the dotted path used in error messages.
    pub fn parse(value: &Value, field: &str, fields: &FieldSet) -> Result<Self, ValidationError> {
        crate::document::check_nesting(value, field)?;
        let node = parse_filter(value, field, fields)?;
        Ok(Self { source: value.clone(), node })
    }

    /// Returns the JSON the filter was parsed from.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Returns true if and only if the filter accepts `document`.
    pub fn matches(&self, document: &Value) -> bool {
        node_matches(&self.node, document)
    }

    /// Returns true if and only if the filter accepts every document, like `{"$and": []}`.
    pub fn is_empty(&self) -> bool {
        match &self.node {
            Node::And(children) => children.is_empty(),
            _ => false,
        }
    }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Filter {
    /// Reads a stored run filter. The filter was validated when it was saved.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::parse(&value, "run_filter", &RUN_FIELDS).map_err(serde::de::Error::custom)
    }
}

fn parse_filter(value: &Value, field: &str, fields: &FieldSet) -> Result<Node, ValidationError> {
    let Value::Object(object) = value else {
        return Err(ValidationError::invalid(
            field,
            format!(
                "expected a filter object such as {{\"display_name\": {{\"$regex\": \"^exp-\"}}}}, got {}",
                quote_value(value)
            ),
        ));
    };

    let mut nodes = Vec::with_capacity(object.len());
    for (key, child) in object {
        let child_field = format!("{field}.{key}");
        let node = match key.as_str() {
            "$and" => Node::And(parse_filter_list(child, &child_field, fields)?),
            "$or" => Node::Or(parse_filter_list(child, &child_field, fields)?),
            "$nor" => Node::Nor(parse_filter_list(child, &child_field, fields)?),
            "$not" => Node::Not(Box::new(parse_filter(child, &child_field, fields)?)),
            operator if operator.starts_with('$') => {
                return Err(ValidationError::invalid(
                    child_field,
                    format!(
                        "unknown operator {operator:?} at filter level; use $and, $or, $nor or $not, or name a field"
                    ),
                ));
            }
            path => {
                if !fields.admits(path) {
                    return Err(ValidationError::new(
                        "unknown_field",
                        child_field,
                        format!("unknown field {path:?}; filters may test {}", fields.describe()),
                    ));
                }
                let conditions = parse_conditions(child, &child_field)?;
                Node::Field { path: path.to_owned(), conditions }
            }
        };
        nodes.push(node);
    }

    if nodes.len() == 1 {
        return Ok(nodes.pop().expect("one node"));
    }
    Ok(Node::And(nodes))
}

fn parse_filter_list(value: &Value, field: &str, fields: &FieldSet) -> Result<Vec<Node>, ValidationError> {
    let Value::Array(items) = value else {
        return Err(ValidationError::invalid(
            field,
            format!("expected an array of filters, got {}", quote_value(value)),
        ));
    };
    items.iter().enumerate().map(|(index, item)| parse_filter(item, &format!("{field}[{index}]"), fields)).collect()
}

fn parse_conditions(value: &Value, field: &str) -> Result<Vec<Condition>, ValidationError> {
    let object = match value {
        Value::Object(object) if object.keys().any(|key| key.starts_with('$')) => object,
        _ => return Ok(vec![Condition::Eq(value.clone())]),
    };

    let options = match object.get("$options") {
        None => "",
        Some(Value::String(options)) => options.as_str(),
        Some(other) => {
            return Err(ValidationError::invalid(
                format!("{field}.$options"),
                format!("expected a string of regex flags such as \"i\", got {}", quote_value(other)),
            ));
        }
    };

    let mut conditions = Vec::with_capacity(object.len());
    for (operator, operand) in object {
        let operand_field = format!("{field}.{operator}");
        let condition = match operator.as_str() {
            "$options" => continue,
            "$eq" => Condition::Eq(operand.clone()),
            "$ne" => Condition::Ne(operand.clone()),
            "$gt" => Condition::Compare(Ordering::Greater, false, operand.clone()),
            "$gte" => Condition::Compare(Ordering::Greater, true, operand.clone()),
            "$lt" => Condition::Compare(Ordering::Less, false, operand.clone()),
            "$lte" => Condition::Compare(Ordering::Less, true, operand.clone()),
            "$in" => Condition::In(expect_array(operand, &operand_field)?),
            "$nin" => Condition::Nin(expect_array(operand, &operand_field)?),
            "$exists" => match operand {
                Value::Bool(exists) => Condition::Exists(*exists),
                other => {
                    return Err(ValidationError::invalid(
                        operand_field,
                        format!("expected true or false, got {}", quote_value(other)),
                    ));
                }
            },
            "$regex" => Condition::Regex(compile_regex(operand, options, &operand_field)?),
            "$contains" => match operand {
                Value::String(needle) => Condition::Contains(needle.clone()),
                other => {
                    return Err(ValidationError::invalid(
                        operand_field,
                        format!("expected a string, got {}", quote_value(other)),
                    ));
                }
            },
            "$not" => Condition::Not(parse_conditions(operand, &operand_field)?),
            unknown => {
                return Err(ValidationError::invalid(
                    operand_field,
                    format!(
                        "unknown operator {unknown:?}; use one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, \
                         $exists, $regex, $contains or $not"
                    ),
                ));
            }
        };
        conditions.push(condition);
    }
    Ok(conditions)
}

fn expect_array(value: &Value, field: &str) -> Result<Vec<Value>, ValidationError> {
    match value {
        Value::Array(items) => Ok(items.clone()),
        other => Err(ValidationError::invalid(field, format!("expected an array, got {}", quote_value(other)))),
    }
}

fn compile_regex(value: &Value, options: &str, field: &str) -> Result<Regex, ValidationError> {
    let Value::String(pattern) = value else {
        return Err(ValidationError::invalid(
            field,
            format!("expected a regular expression string, got {}", quote_value(value)),
        ));
    };
    if let Some(flag) = options.chars().find(|flag| !matches!(flag, 'i' | 'm' | 's' | 'x')) {
        return Err(ValidationError::invalid(field, format!("unknown regex option {flag:?}; use i, m, s or x")));
    }
    let pattern_with_flags = if options.is_empty() { pattern.clone() } else { format!("(?{options}){pattern}") };
    // The size limit keeps a hostile pattern from taking the evaluator's memory.
    regex::RegexBuilder::new(&pattern_with_flags).size_limit(1 << 20).build().map_err(|error| {
        ValidationError::new(
            "invalid_regex",
            field,
            format!("invalid regular expression {pattern:?}: {}", first_line(&error.to_string())),
        )
    })
}

fn first_line(text: &str) -> String {
    text.lines().filter(|line| !line.trim().is_empty()).collect::<Vec<_>>().join(" ")
}

fn node_matches(node: &Node, document: &Value) -> bool {
    match node {
        Node::And(children) => children.iter().all(|child| node_matches(child, document)),
        Node::Or(children) => children.iter().any(|child| node_matches(child, document)),
        Node::Nor(children) => !children.iter().any(|child| node_matches(child, document)),
        Node::Not(child) => !node_matches(child, document),
        Node::Field { path, conditions } => {
            let value = lookup(document, path);
            conditions.iter().all(|condition| condition_holds(condition, value))
        }
    }
}

fn lookup<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = document.get(path) {
        return Some(value);
    }
    let (head, rest) = path.split_once('.')?;
    lookup(document.get(head)?, rest)
}

fn condition_holds(condition: &Condition, value: Option<&Value>) -> bool {
    match condition {
        Condition::Exists(expected) => value.is_some_and(|value| !value.is_null()) == *expected,
        Condition::Ne(operand) => !any_element(value, |element| json_equal(element, operand)),
        Condition::Nin(operands) => {
            !any_element(value, |element| operands.iter().any(|operand| json_equal(element, operand)))
        }
        Condition::Not(conditions) => !conditions.iter().all(|inner| condition_holds(inner, value)),
        Condition::Eq(operand) => {
            value.is_some_and(|whole| json_equal(whole, operand))
                || any_element(value, |element| json_equal(element, operand))
        }
        Condition::In(operands) => {
            any_element(value, |element| operands.iter().any(|operand| json_equal(element, operand)))
        }
        Condition::Compare(ordering, or_equal, operand) => {
            any_element(value, |element| match compare(element, operand) {
                Some(Ordering::Equal) => *or_equal,
                Some(found) => found == *ordering,
                None => false,
            })
        }
        Condition::Regex(regex) => {
            any_element(value, |element| element.as_str().is_some_and(|text| regex.is_match(text)))
        }
        Condition::Contains(needle) => {
            any_element(value, |element| element.as_str().is_some_and(|text| text.contains(needle.as_str())))
        }
    }
}

/// Applies `test` to the value, or to each element when the value is an array.
fn any_element(value: Option<&Value>, test: impl Fn(&Value) -> bool) -> bool {
    match value {
        None => false,
        Some(Value::Array(elements)) => elements.iter().any(test),
        Some(scalar) => test(scalar),
    }
}

fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => left == right,
    }
}

fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Builds the document that run filters test, from a run's fields.
///
/// `config` is W&B's run config, `{key: {"value": v}}`; the document contains the bare values
/// under `config`, without the SDK's internal `_wandb` key.
pub fn run_document(fields: RunFields<'_>) -> Value {
    let mut config = Map::new();
    if let Some(Value::Object(entries)) = fields.config {
        for (key, entry) in entries {
            if key == "_wandb" {
                continue;
            }
            let value = entry.get("value").cloned().unwrap_or_else(|| entry.clone());
            config.insert(key.clone(), value);
        }
    }

    let mut document = Map::new();
    document.insert("name".into(), Value::from(fields.name));
    document.insert("display_name".into(), Value::from(fields.display_name));
    document.insert("state".into(), Value::from(fields.state));
    document.insert("tags".into(), Value::from(fields.tags.to_vec()));
    document.insert("username".into(), Value::from(fields.username));
    if let Some(group) = fields.group {
        document.insert("group".into(), Value::from(group));
    }
    if let Some(job_type) = fields.job_type {
        document.insert("job_type".into(), Value::from(job_type));
    }
    if let Some(notes) = fields.notes {
        document.insert("notes".into(), Value::from(notes));
    }
    document.insert("config".into(), Value::Object(config));
    Value::Object(document)
}

/// The run fields that [`run_document`] reads.
#[derive(Clone, Copy, Debug)]
pub struct RunFields<'a> {
    /// W&B's run id.
    pub name: &'a str,
    /// The run's display name.
    pub display_name: &'a str,
    /// The run state, upper-case, such as `RUNNING`.
    pub state: &'a str,
    /// Run tags.
    pub tags: &'a [String],
    /// Name of the user who logged the run.
    pub username: &'a str,
    /// Run group.
    pub group: Option<&'a str>,
    /// Job type.
    pub job_type: Option<&'a str>,
    /// Run notes.
    pub notes: Option<&'a str>,
    /// The run config as the SDK sends it.
    pub config: Option<&'a Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> Value {
        let config = json!({"lr": {"value": 0.01}, "_wandb": {"value": {"t": 1}}});
        run_document(RunFields {
            name: "abc123",
            display_name: "exp-7",
            state: "RUNNING",
            tags: &["baseline".to_owned(), "gpu".to_owned()],
            username: "admin",
            group: None,
            job_type: Some("train"),
            notes: None,
            config: Some(&config),
        })
    }

    #[track_caller]
    fn check(filter: Value, expected: bool) {
        let parsed = Filter::parse(&filter, "run_filter", &RUN_FIELDS).unwrap();
        assert_eq!(parsed.matches(&run()), expected, "filter {filter}");
    }

    #[test]
    fn regex_searches_unless_anchored() {
        check(json!({"display_name": {"$regex": "^exp-"}}), true);
        check(json!({"display_name": {"$regex": "p-7"}}), true);
        check(json!({"display_name": {"$regex": "^p-7"}}), false);
        check(json!({"display_name": {"$regex": "EXP", "$options": "i"}}), true);
    }

    #[test]
    fn names_compare_case_sensitively() {
        check(json!({"display_name": "exp-7"}), true);
        check(json!({"display_name": "EXP-7"}), false);
    }

    #[test]
    fn each_tag_is_tested_on_its_own() {
        check(json!({"tags": "gpu"}), true);
        check(json!({"tags": {"$regex": "^baseline gpu$"}}), false);
        check(json!({"tags": {"$in": ["cpu", "gpu"]}}), true);
        check(json!({"tags": {"$nin": ["gpu"]}}), false);
        check(json!({"tags": {"$ne": "tpu"}}), true);
    }

    #[test]
    fn logical_operators_combine() {
        check(json!({"$and": []}), true);
        check(json!({"$or": [{"display_name": "x"}, {"job_type": "train"}]}), true);
        check(json!({"$nor": [{"display_name": "x"}, {"job_type": "train"}]}), false);
        check(json!({"$not": {"display_name": "x"}}), true);
        check(json!({"display_name": {"$not": {"$contains": "exp"}}}), false);
    }

    #[test]
    fn config_values_are_unwrapped() {
        check(json!({"config.lr": {"$lt": 0.1}}), true);
        check(json!({"config.lr": {"$gte": 0.1}}), false);
        check(json!({"config._wandb": {"$exists": true}}), false);
        check(json!({"group": {"$exists": false}}), true);
    }

    #[test]
    fn invalid_regex_is_rejected_when_parsed() {
        let error =
            Filter::parse(&json!({"display_name": {"$regex": "("}}), "event.run_filter", &RUN_FIELDS).unwrap_err();
        assert_eq!(error.code, "invalid_regex");
        assert_eq!(error.field, "event.run_filter.display_name.$regex");
    }

    #[test]
    fn unknown_fields_and_operators_are_rejected() {
        let error = Filter::parse(&json!({"colour": "red"}), "run_filter", &RUN_FIELDS).unwrap_err();
        assert_eq!(error.code, "unknown_field");
        let error = Filter::parse(&json!({"display_name": {"$like": "x"}}), "run_filter", &RUN_FIELDS).unwrap_err();
        assert_eq!(error.field, "run_filter.display_name.$like");
    }
}
