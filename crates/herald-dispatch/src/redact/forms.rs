//! The encoded forms of a secret that the redactor recognises, and how each one is matched.
//!
//! A form is either a fixed byte string ([`Form::Literal`]) or a sequence of units, one per
//! character or byte of the secret, where each unit may be written in several ways
//! ([`Form::Sequence`]). Sequences match any mix of those ways, such as a JSON string that
//! escapes only some characters, without listing every combination.
//!
//! The ways of writing one unit differ in their first or second byte, so at most one of them
//! matches at a given position. Matching therefore needs no backtracking, and its cost at one
//! position is linear in the length of the form.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Minimum length, in characters, of the base64 runs that are redacted. A run of 8 base64
/// characters carries 48 bits, so random text matches it with a probability of about 2^-48 per
/// position. Shorter runs would redact unrelated text of the response.
pub(super) const MIN_BASE64_RUN: usize = 8;

/// One way a secret can appear in a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// These exact bytes.
    Literal(Vec<u8>),
    /// One unit per character or byte of the secret, each written in one of its ways.
    Sequence(Vec<Unit>),
}

/// The ways of writing one character or byte of a secret.
pub(super) type Unit = Vec<Spelling>;

/// One way of writing a character or byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Spelling {
    /// The bytes, with hex digits in lower case.
    bytes: Vec<u8>,
    /// Whether the input may write the hex digits in either case, as in `\u00E9` or `%2F`.
    any_hex_case: bool,
}

/// How much of an input a form matches at the input's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Match {
    /// The whole form, in this many bytes.
    Full(usize),
    /// The input ends inside the form, after a non-empty start of it.
    Partial,
    /// The input does not start with the form.
    None,
}

/// How much of an input one unit matches.
enum Step {
    Matched(usize),
    EndOfInput,
    Mismatch,
}

impl Form {
    /// Matches the form against the start of `input`.
    pub(super) fn match_at(&self, input: &[u8]) -> Match {
        match self {
            Form::Literal(bytes) => match_literal(bytes, input),
            Form::Sequence(units) => match_sequence(units, input),
        }
    }

    /// Returns the number of bytes of the longest input that the form matches.
    pub(super) fn max_len(&self) -> usize {
        match self {
            Form::Literal(bytes) => bytes.len(),
            Form::Sequence(units) => {
                units.iter().map(|unit| unit.iter().map(|spelling| spelling.bytes.len()).max().unwrap_or(0)).sum()
            }
        }
    }

    /// Returns the bytes that an input matching the form can start with.
    pub(super) fn first_bytes(&self) -> Vec<u8> {
        match self {
            Form::Literal(bytes) => bytes.first().copied().into_iter().collect(),
            Form::Sequence(units) => {
                let first_unit = units.first().map(Vec::as_slice).unwrap_or_default();
                first_unit.iter().filter_map(|spelling| spelling.bytes.first().copied()).collect()
            }
        }
    }
}

fn match_literal(pattern: &[u8], input: &[u8]) -> Match {
    if input.len() >= pattern.len() {
        return if input.starts_with(pattern) { Match::Full(pattern.len()) } else { Match::None };
    }
    if !input.is_empty() && pattern.starts_with(input) { Match::Partial } else { Match::None }
}

fn match_sequence(units: &[Unit], input: &[u8]) -> Match {
    if input.is_empty() {
        return Match::None;
    }
    let mut position = 0;
    for unit in units {
        match match_unit(unit, &input[position..]) {
            Step::Matched(length) => position += length,
            Step::EndOfInput => return Match::Partial,
            Step::Mismatch => return Match::None,
        }
    }
    Match::Full(position)
}

fn match_unit(unit: &[Spelling], input: &[u8]) -> Step {
    if input.is_empty() {
        return Step::EndOfInput;
    }
    let mut input_ends_inside = false;
    for spelling in unit {
        match spelling.match_at(input) {
            Step::Matched(length) => return Step::Matched(length),
            Step::EndOfInput => input_ends_inside = true,
            Step::Mismatch => {}
        }
    }
    if input_ends_inside { Step::EndOfInput } else { Step::Mismatch }
}

impl Spelling {
    fn exact(bytes: impl Into<Vec<u8>>) -> Self {
        Self { bytes: bytes.into(), any_hex_case: false }
    }

    fn escape(text: String) -> Self {
        Self { bytes: text.into_bytes(), any_hex_case: true }
    }

    fn match_at(&self, input: &[u8]) -> Step {
        let compared = self.bytes.len().min(input.len());
        let equal = |(expected, actual): (&u8, &u8)| {
            expected == actual
                || (self.any_hex_case && expected.is_ascii_hexdigit() && *expected == actual.to_ascii_lowercase())
        };
        if !self.bytes.iter().zip(&input[..compared]).all(equal) {
            return Step::Mismatch;
        }
        if compared < self.bytes.len() { Step::EndOfInput } else { Step::Matched(compared) }
    }
}

/// Returns the secret as the characters of a JSON string: each character literal or as a
/// `\uXXXX` escape (a surrogate pair beyond U+FFFF), and `"`, `\`, `/` and the control
/// characters with a short escape also in that form. `"` and `\` are never literal, because
/// a JSON string cannot contain them unescaped and a literal `\` would compete with escapes.
pub(super) fn json_string(secret: &str) -> Form {
    let units = secret.chars().map(json_spellings).collect();
    Form::Sequence(units)
}

fn json_spellings(character: char) -> Unit {
    let mut spellings = Vec::with_capacity(3);
    if character != '"' && character != '\\' {
        spellings.push(Spelling::exact(character.to_string()));
    }
    if let Some(short) = json_short_escape(character) {
        spellings.push(Spelling::exact(short));
    }
    let mut units = [0u16; 2];
    let escape: String = character.encode_utf16(&mut units).iter().map(|unit| format!("\\u{unit:04x}")).collect();
    spellings.push(Spelling::escape(escape));
    spellings
}

fn json_short_escape(character: char) -> Option<&'static str> {
    Some(match character {
        '"' => "\\\"",
        '\\' => "\\\\",
        '/' => "\\/",
        '\u{8}' => "\\b",
        '\u{c}' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ => return None,
    })
}

/// Returns the secret in percent-encoding: each byte literal, as `%XX` or, for a space, as
/// `+`. `%` is never literal, because it would compete with escapes.
pub(super) fn percent_encoded(secret: &[u8]) -> Form {
    let units = secret.iter().map(|&byte| percent_spellings(byte)).collect();
    Form::Sequence(units)
}

fn percent_spellings(byte: u8) -> Unit {
    let mut spellings = Vec::with_capacity(3);
    if byte != b'%' {
        spellings.push(Spelling::exact([byte]));
    }
    if byte == b' ' {
        spellings.push(Spelling::exact(*b"+"));
    }
    spellings.push(Spelling::escape(format!("%{byte:02x}")));
    spellings
}

/// Returns the runs of base64 characters that the secret's bytes alone determine, in the
/// standard and the URL-safe alphabet, for each of the three positions the secret can start
/// at within a 3-byte group. Such a run appears wherever the secret sits inside base64-encoded
/// data, padded or not. Returns nothing when some run would be shorter than
/// [`MIN_BASE64_RUN`], which is the case for secrets shorter than 7 bytes.
pub(super) fn base64_runs(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut runs = Vec::with_capacity(6);
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            let mut aligned = vec![0u8; offset];
            aligned.extend_from_slice(secret);
            let encoded = engine.encode(&aligned);
            let (start, end) = determined_characters(offset, secret.len());
            runs.push(encoded.as_bytes()[start..end].to_vec());
        }
    }
    if runs.iter().any(|run| run.len() < MIN_BASE64_RUN) {
        return Vec::new();
    }
    runs
}

/// Returns the range of base64 characters whose 6 bits all come from `len` secret bytes that
/// follow `offset` other bytes. Character `i` covers bits `6i..6i + 6` of the data, and the
/// secret covers bits `8 * offset..8 * (offset + len)`.
fn determined_characters(offset: usize, len: usize) -> (usize, usize) {
    let first_bit = 8 * offset;
    let end_bit = 8 * (offset + len);
    (first_bit.div_ceil(6), end_bit / 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_matches_mixed_escapes() {
        let form = json_string("é/\"𝄞x");
        let input = br#"\u00E9\/\"\ud834\uDD1Ex tail"#;
        assert_eq!(form.match_at(input), Match::Full(input.len() - 5));
        assert_eq!(form.match_at("é/\\\"𝄞x".as_bytes()), Match::Full(10));
        assert_eq!(form.match_at(br#"\u00e9\/\"\ud834"#), Match::Partial);
        assert_eq!(form.match_at(br#"\u00e"#), Match::Partial);
        assert_eq!(form.match_at(br#"\u00e8"#), Match::None);
        assert_eq!(form.match_at(br#"\U00e9"#), Match::None, "only the hex digits may change case");
        assert_eq!(form.match_at("é/\"".as_bytes()), Match::None, "a JSON string escapes its quotes");
    }

    #[test]
    fn percent_encoded_matches_both_hex_cases_and_plus() {
        let form = percent_encoded("a b/é".as_bytes());
        assert_eq!(form.match_at(b"a+b%2f%C3%a9"), Match::Full(12));
        assert_eq!(form.match_at(b"a%20b/\xc3\xa9"), Match::Full(8));
        assert_eq!(form.match_at(b"a+b%2"), Match::Partial);
        assert_eq!(form.match_at(b"a-b"), Match::None);
    }

    #[test]
    fn percent_sign_is_only_matched_escaped() {
        let form = percent_encoded(b"%41");
        assert_eq!(form.match_at(b"%2541"), Match::Full(5));
        assert_eq!(form.match_at(b"%41"), Match::None);
    }

    #[test]
    fn base64_runs_need_seven_bytes() {
        assert!(base64_runs(b"123456").is_empty());
        let runs = base64_runs(b"1234567");
        assert_eq!(runs.len(), 6);
        assert!(runs.iter().all(|run| run.len() >= MIN_BASE64_RUN), "{runs:?}");
    }

    #[test]
    fn base64_run_of_bearer_token_is_found() {
        // "Bearer " is 7 bytes, so the token starts at position 1 of its 3-byte group.
        let runs = base64_runs(b"tokSECRET_HEAD_1");
        let echoed = "QmVhcmVyIHRva1NFQ1JFVF9IRUFEXzE=";
        let found: Vec<_> = runs.iter().filter(|run| echoed.contains(std::str::from_utf8(run).unwrap())).collect();
        // The run has no character on which the standard and URL-safe alphabets differ.
        assert_eq!(found, [b"Rva1NFQ1JFVF9IRUFEXz"; 2]);
    }

    #[test]
    fn max_len_counts_longest_spellings() {
        assert_eq!(json_string("a𝄞").max_len(), 6 + 12);
        assert_eq!(percent_encoded(b"a ").max_len(), 6);
        assert_eq!(Form::Literal(b"abc".to_vec()).max_len(), 3);
    }
}
