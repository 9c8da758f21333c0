//! JSON as the wandb SDK writes it.
//!
//! The SDK writes the non-standard numbers `NaN`, `Infinity` and `-Infinity` as bare tokens
//! in history and summary lines, and Python's `json` module writes them in run configs.
//! Standard JSON has no such tokens, so this module rewrites them into the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"` before parsing. Herald stores the strings, and metric
//! evaluation reads them back as non-finite values.
//!
//! A token is rewritten only where JSON expects a value (at the start, after `:`, after `[`,
//! or after `,` inside a list) and only when a delimiter or the end of the text follows it.
//! So `{NaN: 1}` stays invalid, and `NaNx` is left for serde_json to reject.

use serde_json::Value;

/// The non-finite tokens, longest first so that `-Infinity` is not read as `-` and `Infinity`.
const NON_FINITE_TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

/// A document that [`parse_lenient`] rejected, with the position in the text as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line} column {column}")]
pub struct LenientJsonError {
    /// serde_json's message, without its position.
    pub message: String,
    /// The 1-based line where parsing stopped, or 0 when serde_json gave no position.
    pub line: usize,
    /// The 1-based column, in characters, of the character where parsing stopped. It is 0
    /// when parsing stopped before the line's first character, as for an empty text.
    pub column: usize,
}

/// Parses one JSON document that may contain bare `NaN`, `Infinity` or `-Infinity` tokens.
///
/// Documents without such tokens take the fast path through `serde_json` alone. Error
/// positions always refer to `text`, also when the tokens were rewritten before parsing.
pub fn parse_lenient(text: &str) -> Result<Value, LenientJsonError> {
    let first_error = match serde_json::from_str(text) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let Some(rewrite) = quote_non_finite_tokens(text) else {
        return Err(locate_error(&first_error, text, text, &[]));
    };
    serde_json::from_str(&rewrite.text).map_err(|error| locate_error(&error, &rewrite.text, text, &rewrite.inserted))
}

/// A text with its non-finite tokens quoted.
struct Rewrite {
    /// The rewritten text.
    text: String,
    /// The byte offsets in `text` of the inserted quotes, in increasing order.
    inserted: Vec<usize>,
}

/// Returns `text` with every non-finite token in value position quoted, or `None` when there
/// is no such token.
///
/// The scan compares bytes, because the tokens and every byte that JSON's structure depends
/// on are ASCII, and slices `text` only at ASCII bytes, which are always character
/// boundaries.
fn quote_non_finite_tokens(text: &str) -> Option<Rewrite> {
    let bytes = text.as_bytes();
    let mut output = String::with_capacity(text.len() + 16);
    let mut inserted = Vec::new();
    let mut containers: Vec<u8> = Vec::new();
    let mut expects_value = true;
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

        if expects_value && let Some(token) = token_at(bytes, index) {
            output.push_str(&text[copied_up_to..index]);
            inserted.push(output.len());
            output.push('"');
            output.push_str(&text[index..index + token.len()]);
            inserted.push(output.len());
            output.push('"');
            index += token.len();
            copied_up_to = index;
            expects_value = false;
            continue;
        }

        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                in_string = true;
                expects_value = false;
            }
            b'{' | b'[' => {
                containers.push(byte);
                expects_value = byte == b'[';
            }
            b'}' | b']' => {
                containers.pop();
                expects_value = false;
            }
            b':' => expects_value = true,
            // A comma inside an object is followed by a key, not a value.
            b',' => expects_value = containers.last() != Some(&b'{'),
            _ => expects_value = false,
        }
        index += 1;
    }

    if inserted.is_empty() {
        return None;
    }
    output.push_str(&text[copied_up_to..]);
    Some(Rewrite { text: output, inserted })
}

/// Returns the non-finite token that starts at `index` and ends at a delimiter or at the end
/// of the text.
fn token_at(bytes: &[u8], index: usize) -> Option<&'static [u8]> {
    let rest = &bytes[index..];
    NON_FINITE_TOKENS.into_iter().find(|token| {
        rest.starts_with(token)
            && rest
                .get(token.len())
                .is_none_or(|next| matches!(next, b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}'))
    })
}

/// Converts serde_json's error on `parsed` into an error positioned in `original`.
///
/// serde_json counts columns in bytes of `parsed`. The position is turned into a byte offset,
/// moved back over the quotes inserted before it, and counted again in characters of
/// `original`. The inserted quotes never contain a newline, so the line stays the same.
fn locate_error(error: &serde_json::Error, parsed: &str, original: &str, inserted: &[usize]) -> LenientJsonError {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    if error.line() == 0 {
        return LenientJsonError { message, line: 0, column: 0 };
    }

    let parsed_offset = byte_offset(parsed.as_bytes(), error.line(), error.column());
    let original_offset = parsed_offset - inserted.partition_point(|&quote| quote < parsed_offset);
    let (line, column) = line_and_column(original.as_bytes(), original_offset);
    LenientJsonError { message, line, column }
}

/// Returns the byte offset of serde_json's (1-based line, byte column) position in `bytes`.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        let mut newlines = bytes.iter().enumerate().filter(|(_, byte)| **byte == b'\n');
        newlines.nth(line - 2).map_or(bytes.len(), |(position, _)| position + 1)
    };
    line_start.saturating_add(column).min(bytes.len())
}

/// Returns the 1-based line of `offset` in `bytes` and the number of characters that start
/// on that line before `offset`. An offset inside a multi-byte character counts that
/// character, so the column names the character where parsing stopped.
fn line_and_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line_start = before.iter().rposition(|byte| *byte == b'\n').map_or(0, |position| position + 1);
    let line = 1 + before.iter().filter(|byte| **byte == b'\n').count();
    let is_char_start = |byte: &&u8| (**byte & 0xC0) != 0x80;
    let column = before[line_start..].iter().filter(is_char_start).count();
    (line, column)
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
        let value = parse_lenient("[ NaN ,\n\tInfinity\r\n]").unwrap();
        assert_eq!(value, json!(["NaN", "Infinity"]));
    }

    #[test]
    fn top_level_token_is_quoted() {
        assert_eq!(parse_lenient("NaN").unwrap(), json!("NaN"));
        assert_eq!(parse_lenient("  -Infinity ").unwrap(), json!("-Infinity"));
    }

    #[test]
    fn invalid_json_is_still_an_error() {
        assert!(parse_lenient("{\"a\": nope}").is_err());
        assert!(parse_lenient("{\"a\": NaN").is_err());
    }

    #[test]
    fn tokens_in_key_position_stay_invalid() {
        for text in ["{NaN:1}", "{ Infinity : 1}", r#"{"a":1,NaN:2}"#, r#"{"a":NaN,-Infinity:2}"#] {
            assert!(parse_lenient(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn tokens_without_delimiter_stay_invalid() {
        for text in [r#"{"a":NaNx}"#, r#"{"a":Infinity1}"#, "[-Infinityy]", "[NaN\"x\"]", r#"{"a":NaN:1}"#] {
            assert!(parse_lenient(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn multi_byte_characters_do_not_panic() {
        let texts = [
            "{\"a\": é}",
            "{é}",
            "{\"a\":\u{a0}NaN, \"b\": 1}",
            "{\"a\": NaN,\u{a0}\"b\": 1}",
            "{\"a\": NaN, \"b\": 1}\u{a0}",
            "[NaN, 日本]",
            "\u{1F600}NaN",
        ];
        for text in texts {
            assert!(parse_lenient(text).is_err(), "{text:?}");
        }
        assert_eq!(parse_lenient("{\"é\": NaN}").unwrap(), json!({"é": "NaN"}));
    }

    #[test]
    fn error_position_refers_to_original_text() {
        // serde_json stops after the `o` of `nope`, which is column 15 of the original text
        // and column 17 of the rewritten `{"a":"NaN","b":nope}`.
        let error = parse_lenient(r#"{"a":NaN,"b":nope}"#).unwrap_err();
        let same_layout = serde_json::from_str::<Value>(r#"{"a":123,"b":nope}"#).unwrap_err();
        assert_eq!((error.line, error.column), (same_layout.line(), same_layout.column()));
        assert_eq!((error.line, error.column), (1, 15));
        assert_eq!(error.to_string(), "expected ident at line 1 column 15");
    }

    #[test]
    fn error_position_counts_lines_and_characters() {
        let error = parse_lenient("{\"a\": NaN,\n \"é\": Infinity, \"b\": x}").unwrap_err();
        assert_eq!((error.line, error.column), (2, 22));

        let error = parse_lenient("{\"é\": 1, \"b\": x}").unwrap_err();
        assert_eq!((error.line, error.column), (1, 15));

        let error = parse_lenient("").unwrap_err();
        assert_eq!((error.line, error.column), (1, 0));
    }

    /// Leaves and containers of a document that may hold bare non-finite tokens.
    #[derive(Clone, Debug)]
    enum Lenient {
        Token(&'static str),
        Plain(Value),
        List(Vec<Lenient>),
        Object(Vec<(String, Lenient)>),
    }

    impl Lenient {
        /// Writes the document as the SDK would, with `separator` after every `,` and `:`.
        fn render(&self, separator: &str) -> String {
            match self {
                Lenient::Token(token) => (*token).to_owned(),
                Lenient::Plain(value) => value.to_string(),
                Lenient::List(items) => {
                    let items: Vec<String> = items.iter().map(|item| item.render(separator)).collect();
                    format!("[{separator}{}{separator}]", items.join(&format!(",{separator}")))
                }
                Lenient::Object(entries) => {
                    let entries: Vec<String> = entries
                        .iter()
                        .map(|(key, value)| format!("{}:{separator}{}", json!(key), value.render(separator)))
                        .collect();
                    format!("{{{separator}{}{separator}}}", entries.join(&format!(",{separator}")))
                }
            }
        }

        /// Returns the value that parsing the rendered document gives.
        fn expected(&self) -> Value {
            match self {
                Lenient::Token(token) => Value::String((*token).to_owned()),
                Lenient::Plain(value) => value.clone(),
                Lenient::List(items) => Value::Array(items.iter().map(Lenient::expected).collect()),
                Lenient::Object(entries) => {
                    Value::Object(entries.iter().map(|(key, value)| (key.clone(), value.expected())).collect())
                }
            }
        }
    }

    fn plain_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "(NaN|Infinity|-Infinity|é|\\\\|\"|[ -~]){0,6}".prop_map(Value::String),
        ]
    }

    fn lenient_document() -> impl Strategy<Value = Lenient> {
        let leaf = prop_oneof![
            plain_leaf().prop_map(Lenient::Plain),
            prop_oneof![Just("NaN"), Just("Infinity"), Just("-Infinity")].prop_map(Lenient::Token),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Lenient::List),
                prop::collection::btree_map("[a-zé ]{0,5}", inner, 0..6)
                    .prop_map(|entries| Lenient::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn standard_document() -> impl Strategy<Value = Value> {
        plain_leaf().prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zé ]{0,5}", inner, 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// Text built from JSON's structural characters, the tokens and multi-byte characters,
    /// which reaches the scanner far more often than arbitrary text.
    fn json_like_text() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            Just("NaN"),
            Just("Infinity"),
            Just("-Infinity"),
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(":"),
            Just(","),
            Just("\""),
            Just("\\"),
            Just(" "),
            Just("\n"),
            Just("\u{a0}"),
            Just("é"),
            Just("\u{1F600}"),
            Just("1"),
            Just("\"a\""),
            Just("x"),
        ];
        prop::collection::vec(pieces, 0..40).prop_map(|pieces| pieces.concat())
    }

    /// Checks that an error's position lies inside `text`.
    fn check_position(text: &str, error: &LenientJsonError) -> Result<(), TestCaseError> {
        let lines: Vec<&str> = text.split('\n').collect();
        prop_assert!(error.line >= 1 && error.line <= lines.len(), "line {} of {text:?}", error.line);
        let line_length = lines[error.line - 1].chars().count();
        prop_assert!(error.column <= line_length, "column {} of {text:?}", error.column);
        Ok(())
    }

    proptest! {
        #[test]
        fn standard_json_parses_unchanged(key in "[a-zA-Z ]{0,8}", text in ".*", number in -1e9f64..1e9) {
            let value = json!({key: [text, number]});
            let parsed = parse_lenient(&value.to_string()).unwrap();
            prop_assert_eq!(parsed, value);
        }

        #[test]
        fn valid_json_round_trips(value in standard_document()) {
            prop_assert_eq!(parse_lenient(&value.to_string()).unwrap(), value.clone());
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            prop_assert_eq!(parse_lenient(&pretty).unwrap(), value);
        }

        #[test]
        fn value_position_tokens_become_strings(document in lenient_document(), separator in "[ \t\n]{0,2}") {
            let text = document.render(&separator);
            prop_assert_eq!(parse_lenient(&text).unwrap(), document.expected(), "{}", text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".*") {
            if let Err(error) = parse_lenient(&text) {
                check_position(&text, &error)?;
            }
        }

        #[test]
        fn json_like_text_never_panics(text in json_like_text()) {
            if let Err(error) = parse_lenient(&text) {
                check_position(&text, &error)?;
            }
        }
    }
}
