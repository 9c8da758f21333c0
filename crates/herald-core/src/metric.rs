//! Metric values, windows, aggregations and comparisons.
//!
//! A window counts the logged values of one metric in one run, in step order. Every row
//! that has the metric's key contributes one entry. Only finite numbers take part in an
//! aggregation: `NaN`, `±Infinity`, `null`, the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"`, and values that are not numbers at all (strings, objects, booleans) fill a
//! slot of the window but are skipped. A window without a finite value has no data.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Reads the value of `metric` from a history row.
///
/// The exact key wins. A dotted name such as `train.loss` also finds a nested object
/// `{"train": {"loss": ...}}`, which is how the SDK writes nested dictionaries.
/// Returns `None` when the row did not log the metric, `Some(None)` when it logged a value
/// that is not a finite number, and `Some(Some(x))` for a finite number.
pub fn metric_in_row(row: &serde_json::Map<String, Value>, metric: &str) -> Option<Option<f64>> {
    if let Some(value) = row.get(metric) {
        return Some(finite_number(value));
    }
    let (head, rest) = metric.split_once('.')?;
    match row.get(head) {
        Some(Value::Object(nested)) => metric_in_row(nested, rest),
        _ => None,
    }
}

/// Returns the value as a finite `f64`, or `None` for anything else.
pub fn finite_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64().filter(|x| x.is_finite()),
        _ => None,
    }
}

/// How the values of a window become one number. W&B calls this `agg_op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Aggregation {
    /// The most recent finite value in the window (W&B's `agg_op: null`).
    Latest,
    /// The smallest finite value.
    Min,
    /// The largest finite value.
    Max,
    /// The arithmetic mean of the finite values.
    Average,
}

impl Aggregation {
    /// Aggregates the window, oldest entry first. Returns `None` when no entry is finite.
    pub fn apply(self, window: &[Option<f64>]) -> Option<f64> {
        let finite = window.iter().filter_map(|entry| *entry);
        match self {
            Aggregation::Latest => window.iter().rev().find_map(|entry| *entry),
            Aggregation::Min => finite.reduce(f64::min),
            Aggregation::Max => finite.reduce(f64::max),
            Aggregation::Average => {
                let values: Vec<f64> = finite.collect();
                if values.is_empty() {
                    return None;
                }
                let count = values.len() as f64;
                let sum: f64 = values.iter().sum();
                if sum.is_finite() {
                    return Some(sum / count);
                }
                // The sum of values near f64::MAX overflows although their mean does not.
                // Dividing each value first cannot overflow; it is used only then, because
                // it rounds differently from the plain mean that people compute by hand.
                Some(values.iter().map(|x| x / count).sum())
            }
        }
    }

    /// Returns W&B's wire name, `None` for [`Aggregation::Latest`].
    pub fn wandb_name(self) -> Option<&'static str> {
        match self {
            Aggregation::Latest => None,
            Aggregation::Min => Some("MIN"),
            Aggregation::Max => Some("MAX"),
            Aggregation::Average => Some("AVERAGE"),
        }
    }
}

/// A comparison operator, spelled as in W&B's filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// Greater than.
    #[serde(rename = "$gt")]
    Gt,
    /// Greater than or equal to.
    #[serde(rename = "$gte")]
    Gte,
    /// Less than.
    #[serde(rename = "$lt")]
    Lt,
    /// Less than or equal to.
    #[serde(rename = "$lte")]
    Lte,
}

impl Comparison {
    /// All operators, in the order that error messages list them.
    pub const ALL: [Comparison; 4] = [Comparison::Gt, Comparison::Gte, Comparison::Lt, Comparison::Lte];

    /// Returns the wire name, for example `$gt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => "$gt",
            Comparison::Gte => "$gte",
            Comparison::Lt => "$lt",
            Comparison::Lte => "$lte",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == text)
    }

    /// Returns true if and only if `value <op> threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Gte => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Lte => value <= threshold,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats a number the way JSON writes it: the shortest text that reads back to the same
/// `f64`, with `.0` on whole numbers. Non-finite values are written as `NaN`, `Infinity` or
/// `-Infinity`.
pub fn format_number(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    match serde_json::Number::from_f64(value) {
        Some(number) => number.to_string(),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregations_skip_non_finite_entries() {
        let window = [Some(1.0), None, Some(3.0), None];
        assert_eq!(Aggregation::Latest.apply(&window), Some(3.0));
        assert_eq!(Aggregation::Min.apply(&window), Some(1.0));
        assert_eq!(Aggregation::Max.apply(&window), Some(3.0));
        assert_eq!(Aggregation::Average.apply(&window), Some(2.0));
    }

    #[test]
    fn average_of_huge_values_does_not_overflow() {
        let mean = Aggregation::Average.apply(&[Some(1e308), Some(1e308), Some(-1e308)]).unwrap();
        assert!((mean - 1e308 / 3.0).abs() < 1e293, "{mean}");
        assert_eq!(Aggregation::Average.apply(&[Some(1.5e308), Some(1.5e308)]), Some(1.5e308));
    }

    #[test]
    fn average_of_small_windows_is_exact() {
        assert_eq!(Aggregation::Average.apply(&[Some(0.3), Some(0.1), Some(0.05)]), Some((0.3 + 0.1 + 0.05) / 3.0));
    }

    #[test]
    fn window_without_finite_values_has_no_data() {
        let window = [None, None];
        for aggregation in [Aggregation::Latest, Aggregation::Min, Aggregation::Max, Aggregation::Average] {
            assert_eq!(aggregation.apply(&window), None);
        }
    }

    #[test]
    fn metric_lookup_reads_kinds_of_values() {
        let row = json!({"loss": 0.5, "nan": "NaN", "null": null, "text": "0.5", "nested": {"acc": 1}});
        let row = row.as_object().unwrap();
        assert_eq!(metric_in_row(row, "loss"), Some(Some(0.5)));
        assert_eq!(metric_in_row(row, "nan"), Some(None));
        assert_eq!(metric_in_row(row, "null"), Some(None));
        assert_eq!(metric_in_row(row, "text"), Some(None));
        assert_eq!(metric_in_row(row, "nested.acc"), Some(Some(1.0)));
        assert_eq!(metric_in_row(row, "missing"), None);
    }

    #[test]
    fn comparisons_at_the_boundary() {
        assert!(!Comparison::Gt.holds(1.0, 1.0));
        assert!(Comparison::Gte.holds(1.0, 1.0));
        assert!(!Comparison::Lt.holds(1.0, 1.0));
        assert!(Comparison::Lte.holds(1.0, 1.0));
    }

    #[test]
    fn numbers_format_like_json() {
        assert_eq!(format_number(1.0), "1.0");
        assert_eq!(format_number(0.15000000000000002), "0.15000000000000002");
        assert_eq!(format_number(1e-7), "1e-7");
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(format_number(f64::NEG_INFINITY), "-Infinity");
    }
}
