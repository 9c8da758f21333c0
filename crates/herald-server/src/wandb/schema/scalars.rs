//! The custom scalars of W&B's schema.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use herald_core::Timestamp;

/// `JSONString`: a string that contains a JSON document, such as a run config or summary.
///
/// The Go side of the SDK always sends a string. A JSON object or list is also accepted and
/// kept as its JSON text, because a client that builds variables from dictionaries may send
/// the document itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonString(pub String);

#[Scalar(name = "JSONString")]
impl ScalarType for JsonString {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(text) => Ok(JsonString(text)),
            Value::Object(_) | Value::List(_) => {
                let json = value.into_json().map_err(InputValueError::custom)?;
                Ok(JsonString(json.to_string()))
            }
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

impl JsonString {
    /// Serializes a JSON value into its text.
    pub fn from_json(value: &serde_json::Value) -> Self {
        JsonString(value.to_string())
    }
}

/// `Int64`: a 64-bit integer. W&B sends it as a JSON number or as a decimal string, because
/// JavaScript clients cannot hold every 64-bit integer in a number. Herald returns a
/// number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int64(pub i64);

#[Scalar(name = "Int64")]
impl ScalarType for Int64 {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(number) => number.as_i64().map(Int64).ok_or_else(|| InputValueError::expected_type(value)),
            Value::String(text) => text.parse().map(Int64).map_err(|_| InputValueError::expected_type(value)),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// `DateTime`: a point in time as an RFC 3339 string in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime(pub Timestamp);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => {
                Timestamp::parse_rfc3339(text).map(DateTime).ok_or_else(|| InputValueError::expected_type(value))
            }
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_accepts_text_and_objects() {
        let text = JsonString::parse(Value::String("{\"a\":1}".into())).unwrap();
        assert_eq!(text.0, "{\"a\":1}");
        let object = Value::from_json(serde_json::json!({"a": 1})).unwrap();
        assert_eq!(JsonString::parse(object).unwrap().0, "{\"a\":1}");
        assert!(JsonString::parse(Value::Number(1.into())).is_err());
    }

    #[test]
    fn int64_accepts_numbers_and_strings() {
        assert_eq!(Int64::parse(Value::Number(7.into())).unwrap(), Int64(7));
        assert_eq!(Int64::parse(Value::String("9007199254740993".into())).unwrap(), Int64(9_007_199_254_740_993));
        assert!(Int64::parse(Value::String("x".into())).is_err());
    }

    #[test]
    fn date_time_round_trips() {
        let time = DateTime(Timestamp(1_764_882_000_123));
        assert_eq!(DateTime::parse(time.to_value()).unwrap(), time);
    }
}
