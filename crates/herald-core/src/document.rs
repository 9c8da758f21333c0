//! A reader for JSON objects that reports the dotted path of every rejected field.
//!
//! `serde`'s derived deserializers stop at the first problem with a message that lacks the
//! field's path and a hint. User documents (automations, API bodies) are read through this
//! reader instead, so every error names the field, quotes the value and says what to write.

use serde_json::{Map, Value};

use crate::error::{ValidationError, quote_value};

/// A JSON object being read, with its path in the document.
pub struct ObjectReader<'a> {
    object: &'a Map<String, Value>,
    path: String,
}

impl<'a> ObjectReader<'a> {
    /// Starts reading `value`, which must be an object. `path` is its dotted path, empty for
    /// the document root.
    pub fn new(value: &'a Value, path: &str) -> Result<Self, ValidationError> {
        match value {
            Value::Object(object) => Ok(Self { object, path: path.to_owned() }),
            other => {
                let what = if path.is_empty() { "the document" } else { path };
                Err(ValidationError::invalid(path, format!("{what} must be a JSON object, got {}", quote_value(other))))
            }
        }
    }

    /// Returns the dotted path of `key` inside this object.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// Returns the value of `key`, treating `null` as absent.
    pub fn optional(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|value| !value.is_null())
    }

    /// Returns the value of `key`, or a `missing_field` error.
    pub fn required(&self, key: &str) -> Result<&'a Value, ValidationError> {
        self.optional(key).ok_or_else(|| ValidationError::missing(self.path_of(key)))
    }

    /// Returns true if and only if the object has `key`, even with a `null` value.
    pub fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    /// Reads a required string.
    pub fn required_string(&self, key: &str) -> Result<&'a str, ValidationError> {
        let value = self.required(key)?;
        value.as_str().ok_or_else(|| self.wrong_type(key, "a string", value))
    }

    /// Reads an optional string.
    pub fn optional_string(&self, key: &str) -> Result<Option<&'a str>, ValidationError> {
        match self.optional(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// Reads an optional boolean.
    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>, ValidationError> {
        match self.optional(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// Reads an optional integer and checks that it lies in `min..=max`.
    pub fn optional_integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ValidationError> {
        let Some(value) = self.optional(key) else {
            return Ok(None);
        };
        let in_range = value.as_i64().filter(|number| (min..=max).contains(number));
        match in_range {
            Some(number) => Ok(Some(number)),
            None => Err(ValidationError::invalid(
                self.path_of(key),
                format!("invalid value {}; use a whole number from {min} to {max}", quote_value(value)),
            )),
        }
    }

    /// Reads a required finite number.
    pub fn required_number(&self, key: &str) -> Result<f64, ValidationError> {
        let value = self.required(key)?;
        value.as_f64().filter(|number| number.is_finite()).ok_or_else(|| self.wrong_type(key, "a finite number", value))
    }

    /// Reads a nested object.
    pub fn required_object(&self, key: &str) -> Result<ObjectReader<'a>, ValidationError> {
        let value = self.required(key)?;
        ObjectReader::new(value, &self.path_of(key))
    }

    /// Rejects keys outside `allowed` and outside `ignored`. Ignored keys are read-only
    /// fields of the API's output, accepted so that a document read back can be sent again.
    pub fn reject_unknown(&self, allowed: &[&str], ignored: &[&str]) -> Result<(), ValidationError> {
        for key in self.object.keys() {
            if allowed.contains(&key.as_str()) || ignored.contains(&key.as_str()) {
                continue;
            }
            return Err(ValidationError::new(
                "unknown_field",
                self.path_of(key),
                format!("unknown field {key:?}; expected one of {}", allowed.join(", ")),
            ));
        }
        Ok(())
    }

    /// Builds the error for a value of the wrong type.
    pub fn wrong_type(&self, key: &str, expected: &str, value: &Value) -> ValidationError {
        ValidationError::invalid(self.path_of(key), format!("expected {expected}, got {}", quote_value(value)))
    }
}

/// The deepest nesting that a user document may have inside a stored automation: a payload
/// template or a run filter. Stored revisions wrap them two levels deeper, and readers of
/// JSON, such as `serde_json` with its limit of 128, refuse documents nested deeper than
/// they allow, so an unchecked template could be saved and then never read back.
pub const MAX_NESTING: usize = 32;

/// Returns how deeply objects and arrays nest in `value`: 0 for a scalar, 1 for a flat object.
/// It walks with an explicit stack, so no input can exhaust the call stack.
pub fn nesting_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(object) => Box::new(object.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// Fails when `value` nests deeper than [`MAX_NESTING`].
pub fn check_nesting(value: &Value, field: &str) -> Result<(), ValidationError> {
    let depth = nesting_depth(value);
    if depth <= MAX_NESTING {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!("{field} nests objects and arrays {depth} levels deep; use at most {MAX_NESTING}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_objects_and_arrays() {
        assert_eq!(nesting_depth(&json!(1)), 0);
        assert_eq!(nesting_depth(&json!({"a": 1})), 1);
        assert_eq!(nesting_depth(&json!({"a": [1, {"b": []}]})), 4);
    }

    #[test]
    fn deep_documents_are_rejected() {
        let mut deep = json!(1);
        for _ in 0..MAX_NESTING {
            deep = json!([deep]);
        }
        assert!(check_nesting(&deep, "x").is_ok());
        let error = check_nesting(&json!([deep]), "x").unwrap_err();
        assert_eq!(error.field, "x");
        assert!(error.detail.contains("33 levels"), "{}", error.detail);
    }
}
