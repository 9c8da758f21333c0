//! Validation errors for user input.
//!
//! A validation error names the field (a dotted path such as `event.threshold_filter.cmp_op`),
//! carries a stable machine-readable code, and has a human detail that quotes the rejected
//! value and explains how to fix it. The REST API returns these as its 4xx error bodies.

use std::fmt;

use serde::Serialize;

/// A rejected input value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ValidationError {
    /// Stable snake_case code, for example `invalid_value` or `unknown_variable`.
    pub code: &'static str,
    /// Dotted path of the rejected field, empty for the document as a whole.
    pub field: String,
    /// The problem, quoting the value, and how to fix it.
    pub detail: String,
}

impl ValidationError {
    /// Creates an error with the given code for `field`.
    pub fn new(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { code, field: field.into(), detail: detail.into() }
    }

    /// Creates an `invalid_value` error for `field`.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new("invalid_value", field, detail)
    }

    /// Creates a `missing_field` error for `field`.
    pub fn missing(field: impl Into<String>) -> Self {
        let field = field.into();
        let detail = format!("{field} is required");
        Self::new("missing_field", field, detail)
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() || self.detail.starts_with(&self.field) {
            f.write_str(&self.detail)
        } else {
            write!(f, "{}: {}", self.field, self.detail)
        }
    }
}

/// Quotes a JSON value for an error message, shortened to at most 80 characters.
pub fn quote_value(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        return text;
    }
    let mut short: String = text.chars().take(77).collect();
    short.push_str("...");
    short
}
