//! Property tests of the redactor's encoded forms: for random secrets in random surroundings,
//! no base64, JSON-escaped or percent-encoded form of a secret survives redaction, and a cut
//! through such a form keeps no part of it.
//!
//! The encoders here are written from the encodings' definitions, independently of the
//! redactor's matchers.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use herald_dispatch::redact::{REDACTED, Redactor};
use proptest::prelude::*;
use proptest::sample::Index;

/// A length limit that no test body reaches, so that only `more_follows` cuts.
const NO_LIMIT: usize = 100_000;

fn redactor(secret: &[u8]) -> Redactor {
    Redactor::new([secret])
}

/// Replaces each marker with a NUL byte, so that a test cannot mistake text that the marker
/// happens to form with its neighbours for a surviving secret. The secrets in these tests
/// contain no NUL byte.
fn without_markers(stored: &[u8]) -> Vec<u8> {
    let marker = REDACTED.as_bytes();
    let mut output = Vec::with_capacity(stored.len());
    let mut position = 0;
    while position < stored.len() {
        if stored[position..].starts_with(marker) {
            output.push(0);
            position += marker.len();
        } else {
            output.push(stored[position]);
            position += 1;
        }
    }
    output
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Encodes one character inside a JSON string in one of the ways JSON allows, chosen by
/// `style`: literal, `\u` with lower-case or upper-case hex digits, or a short escape. `"`
/// and `\` are never literal, because JSON does not allow that.
fn json_character(character: char, style: u8) -> String {
    let short = match character {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '/' => Some("\\/"),
        '\u{8}' => Some("\\b"),
        '\u{c}' => Some("\\f"),
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        _ => None,
    };
    let mut buffer = [0u16; 2];
    let units = character.encode_utf16(&mut buffer);
    let lower: String = units.iter().map(|unit| format!("\\u{unit:04x}")).collect();
    let upper: String = units.iter().map(|unit| format!("\\u{unit:04X}")).collect();
    match style % 4 {
        0 if character != '"' && character != '\\' => character.to_string(),
        1 => lower,
        2 => upper,
        _ => short.map_or(lower, str::to_owned),
    }
}

fn json_mixed(secret: &str, styles: &[u8]) -> String {
    secret.chars().zip(styles.iter().cycle()).map(|(character, style)| json_character(character, *style)).collect()
}

/// Encodes a string as Python 3's `json.dumps` does by default (`ensure_ascii=True`): short
/// escapes for `"`, `\` and five control characters, and `\u` with lower-case hex digits for
/// everything outside printable ASCII, with surrogate pairs beyond U+FFFF.
fn python_json(secret: &str) -> String {
    secret
        .chars()
        .map(|character| match character {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => json_character(character, 3),
            ' '..='~' => character.to_string(),
            _ => json_character(character, 1),
        })
        .collect()
}

/// Percent-encodes one byte in one of the ways that URL encoders use, chosen by `style`:
/// literal, `%xx`, `%XX`, or `+` for a space. `%` is never literal.
fn percent_byte(byte: u8, style: u8) -> Vec<u8> {
    match style % 4 {
        0 if byte != b'%' => vec![byte],
        1 => format!("%{byte:02x}").into_bytes(),
        3 if byte == b' ' => b"+".to_vec(),
        _ => format!("%{byte:02X}").into_bytes(),
    }
}

fn percent_mixed(secret: &[u8], styles: &[u8]) -> Vec<u8> {
    secret.iter().zip(styles.iter().cycle()).flat_map(|(byte, style)| percent_byte(*byte, *style)).collect()
}

fn base64_engine(choice: u8) -> &'static base64::engine::GeneralPurpose {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD][usize::from(choice % 4)]
}

/// Returns the range of the characters of base64 output whose 6 bits all come from the
/// `len` bytes at `start` of the input: character `i` covers input bits `6i` to `6i + 5`.
fn base64_run_range(start: usize, len: usize) -> std::ops::Range<usize> {
    let covered_by_secret = |character: &usize| {
        let first_bit = 6 * character;
        let last_bit = first_bit + 5;
        first_bit / 8 >= start && last_bit / 8 < start + len
    };
    let characters: Vec<usize> = (0..(start + len) * 8 / 6 + 1).filter(covered_by_secret).collect();
    match (characters.first(), characters.last()) {
        (Some(first), Some(last)) => *first..*last + 1,
        _ => 0..0,
    }
}

fn secret_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>().prop_filter("no NUL", |character| *character != '\0'), 1..16)
        .prop_map(|characters| characters.into_iter().collect())
}

fn non_ascii_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::char::range('\u{80}', char::MAX), 1..8)
        .prop_map(|characters| characters.into_iter().collect())
}

proptest! {
    #[test]
    fn json_escaped_secret_never_survives(
        secret in secret_text(),
        styles in proptest::collection::vec(any::<u8>(), 1..16),
        before in "[ -~]{0,32}",
        after in "[ -~]{0,32}",
    ) {
        let redactor = redactor(secret.as_bytes());
        for encoded in [python_json(&secret), json_mixed(&secret, &styles)] {
            let body = format!("{before}{encoded}{after}");
            let stored = redactor.redact_response_body(body.as_bytes(), false, NO_LIMIT);
            prop_assert!(
                !contains(&without_markers(stored.as_bytes()), encoded.as_bytes()),
                "{:?} survives in {:?}", encoded, stored
            );
        }
    }

    #[test]
    fn percent_encoded_secret_never_survives(
        secret in proptest::collection::vec(1u8..=255, 1..24),
        styles in proptest::collection::vec(any::<u8>(), 1..24),
        before in proptest::collection::vec(any::<u8>(), 0..32),
        after in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let redactor = redactor(&secret);
        let encoded = percent_mixed(&secret, &styles);
        let body = [before.as_slice(), &encoded, &after].concat();
        let stored = redactor.redact_bytes(&body);
        prop_assert!(
            !contains(&without_markers(&stored), &encoded),
            "{:?} survives in {:?}", String::from_utf8_lossy(&encoded), String::from_utf8_lossy(&stored)
        );
    }

    #[test]
    fn base64_of_secret_never_survives(
        secret in proptest::collection::vec(any::<u8>(), 7..40),
        prefix in proptest::collection::vec(any::<u8>(), 0..6),
        suffix in proptest::collection::vec(any::<u8>(), 0..6),
        engine in any::<u8>(),
        before in "[ -~]{0,32}",
        after in "[ -~]{0,32}",
    ) {
        let redactor = redactor(&secret);
        let data = [prefix.as_slice(), &secret, &suffix].concat();
        let encoded = base64_engine(engine).encode(&data);
        let run = &encoded[base64_run_range(prefix.len(), secret.len())];
        prop_assert!(run.len() >= 8, "run {:?} of {:?}", run, encoded);

        let body = format!("{before}{encoded}{after}");
        let stored = redactor.redact_response_body(body.as_bytes(), false, NO_LIMIT);
        prop_assert!(
            !contains(&without_markers(stored.as_bytes()), run.as_bytes()),
            "{:?} survives in {:?}", run, stored
        );
    }

    #[test]
    fn cut_through_escaped_secret_keeps_none(
        secret in non_ascii_text(),
        styles in proptest::collection::vec(any::<u8>(), 1..8),
        percent in any::<bool>(),
        cut in any::<Index>(),
        before in "[a-z ]{0,32}",
    ) {
        let redactor = redactor(secret.as_bytes());
        let encoded = if percent {
            percent_mixed(secret.as_bytes(), &styles)
        } else {
            json_mixed(&secret, &styles).into_bytes()
        };
        // The body breaks off inside the encoded secret, as when the read limit is reached.
        let kept_len = 1 + cut.index(encoded.len() - 1);
        let body = [before.as_bytes(), &encoded[..kept_len]].concat();
        let stored = redactor.redact_response_body(&body, true, NO_LIMIT);
        prop_assert_eq!(stored, before);
    }

    #[test]
    fn cut_through_base64_run_keeps_none(
        secret in proptest::collection::vec(any::<u8>(), 7..24),
        prefix in proptest::collection::vec(any::<u8>(), 0..6),
        engine in any::<u8>(),
        cut in any::<Index>(),
        before in "[ -~]{0,16}",
    ) {
        let redactor = redactor(&secret);
        let data = [prefix.as_slice(), &secret].concat();
        let encoded = base64_engine(engine).encode(&data);
        let run = base64_run_range(prefix.len(), secret.len());
        let kept_len = run.start + 1 + cut.index(run.len() - 1);
        let body = format!("{before}{}", &encoded[..kept_len]);
        let stored = redactor.redact_response_body(body.as_bytes(), true, NO_LIMIT);
        prop_assert!(body.starts_with(&stored), "{:?} is not a prefix of {:?}", stored, body);
        prop_assert!(
            stored.len() <= before.len() + run.start,
            "{:?} keeps part of the run {:?}", stored, &encoded[run]
        );
    }
}
