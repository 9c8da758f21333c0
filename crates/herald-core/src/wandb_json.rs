//! JSON as the wandb SDK writes it.
//!
//! The SDK writes the non-standard numbers `NaN`, `Infinity` and `-Infinity` as bare tokens
//! in history and summary lines. Standard JSON has no such tokens, so this module rewrites
//! them into the strings `"NaN"`, `"Infinity"` and `"-Infinity"` before parsing. Herald stores
//! the strings, and metric evaluation reads them back as non-finite values.

use serde_json::Value;

/// Parses one JSON document that may contain bare `NaN`, `Infinity` or `-Infinity` tokens.
///
/// Lines without such tokens take the fast path through `serde_json` alone.
pub fn parse_lenient(text: &str) -> Result<Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(first_error) => {
            let Some(rewritten) = quote_non_finite_tokens(text) else {
                return Err(first_error);
            };
            serde_json::from_str(&rewritten)
        }
    }
}

/// Returns `text` with every bare non-finite token outside strings quoted, or `None` when
/// there is no such token.
fn quote_non_finite_tokens(text: &str) -> Option<String> {
    const TOKENS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];

    let bytes = text.as_bytes();
    let mut output = String::with_capacity(text.len() + 16);
    let mut changed = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut copied_up_to = 0;
    let mut index = 0;

    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            index += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            index += 1;
            continue;
        }

        let token = TOKENS.iter().find(|token| text[index..].starts_with(**token));
        match token {
            Some(token) => {
                output.push_str(&text[copied_up_to..index]);
                output.push('"');
                output.push_str(token);
                output.push('"');
                index += token.len();
                copied_up_to = index;
                changed = true;
            }
            None => index += 1,
        }
    }

    if !changed {
        return None;
    }
    output.push_str(&text[copied_up_to..]);
    Some(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn bare_tokens_become_strings() {
        let value = parse_lenient(r#"{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1}"#).unwrap();
        assert_eq!(value, json!({"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": 1}));
    }

    #[test]
    fn tokens_inside_strings_are_kept() {
        let value = parse_lenient(r#"{"note": "NaN \" Infinity", "x": NaN}"#).unwrap();
        assert_eq!(value, json!({"note": "NaN \" Infinity", "x": "NaN"}));
    }

    #[test]
    fn tokens_inside_arrays_are_quoted() {
        let value = parse_lenient("[NaN,-Infinity,2.5]").unwrap();
        assert_eq!(value, json!(["NaN", "-Infinity", 2.5]));
    }

    #[test]
    fn invalid_json_is_still_an_error() {
        assert!(parse_lenient("{\"a\": nope}").is_err());
        assert!(parse_lenient("{\"a\": NaN").is_err());
    }

    proptest! {
        #[test]
        fn standard_json_parses_unchanged(key in "[a-zA-Z ]{0,8}", text in ".*", number in -1e9f64..1e9) {
            let value = json!({key: [text, number]});
            let parsed = parse_lenient(&value.to_string()).unwrap();
            prop_assert_eq!(parsed, value);
        }
    }
}
