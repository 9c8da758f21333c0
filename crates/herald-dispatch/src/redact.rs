//! Removal of secret values from what an attempt stores.
//!
//! Receivers can echo the request, including `Authorization: Bearer <token>`, in their
//! response body or error page, and Herald stores the start of that body in the delivery
//! history. Before anything from an attempt is stored, every occurrence of each secret
//! value used for the attempt is replaced with [`REDACTED`], in these forms:
//!
//! - the raw bytes of the value;
//! - the value as the content of a JSON string, when the value is UTF-8. Each character may be
//!   literal, a `\uXXXX` escape with hex digits in either case, or a short escape such as `\"`
//!   or `\n`. Beyond U+FFFF the escape is a surrogate pair, as Python's `json.dumps` writes it;
//! - the value percent-encoded, with any mix of literal bytes, `%XX` in either case of hex
//!   digits and `+` for a space;
//! - the value inside base64-encoded data, in the standard or URL-safe alphabet, padded or
//!   not, such as base64 of `Bearer <token>`. The redactor replaces the run of base64
//!   characters that the value's bytes alone determine. It computes that run for each of the
//!   three positions the value can start at within a 3-byte group. The character on each side of the run mixes up to 4 bits of the
//!   value's first or last byte with bits of its neighbours, and it remains. Only values of at
//!   least 7 bytes get this form, because a shorter value determines fewer than 8 characters
//!   at some position, and so short a run would redact unrelated text;
//! - for a `whsec_` signing secret, also the base64 part after the prefix.
//!
//! Nothing else is recognised: base64 with line breaks inside the value's run, hex, HTML
//! entities, other escape syntaxes, two encodings applied one after the other (such as a JSON
//! string inside a JSON string), hashes and encryption of the value all pass unchanged.
//!
//! A stored body is cut to a maximum length. When the cut splits a secret in any of these
//! forms, the part of it before the cut is removed too, so no prefix of a form is stored.
//! When the cut splits a [`REDACTED`] marker, the body ends before the marker instead, so a
//! stored body never ends in a piece of one such as `[REDA`.

mod forms;

use std::borrow::Cow;

use self::forms::{Form, Match};
use crate::signing::WHSEC_PREFIX;

/// The text that replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// The encoded forms of the secrets to remove from the stored output of one attempt.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The forms of every non-empty secret.
    forms: Vec<Form>,
    /// For each byte value, whether some form can start with it, so that most positions of
    /// an input are passed over without trying every form.
    starts: Vec<bool>,
}

impl Redactor {
    /// Creates a redactor for the secret values of one attempt. Empty values are skipped,
    /// because there is nothing to replace.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut forms: Vec<Form> = Vec::new();
        for form in secrets.into_iter().filter(|secret| !secret.is_empty()).flat_map(forms_of) {
            // Forms repeat when two secrets are equal, or when a base64 run has no character
            // on which the two alphabets differ.
            if !forms.contains(&form) {
                forms.push(form);
            }
        }

        let mut starts = vec![false; 256];
        for byte in forms.iter().flat_map(Form::first_bytes) {
            starts[usize::from(byte)] = true;
        }
        Self { forms, starts }
    }

    /// Returns the length of the longest input that one form can match, in bytes.
    pub fn longest_pattern_len(&self) -> usize {
        self.forms.iter().map(Form::max_len).max().unwrap_or(0)
    }

    /// Replaces every occurrence of a secret in `input`. Where forms of several secrets
    /// match at one position, the longest match is replaced, so that a secret containing
    /// another is replaced as a whole.
    pub fn redact_bytes<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        let mut output: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut position = 0;
        while position < input.len() {
            match self.longest_match(&input[position..]) {
                Some(length) => {
                    let output = output.get_or_insert_with(|| Vec::with_capacity(input.len()));
                    output.extend_from_slice(&input[copied..position]);
                    output.extend_from_slice(REDACTED.as_bytes());
                    position += length;
                    copied = position;
                }
                None => position += 1,
            }
        }
        match output {
            None => Cow::Borrowed(input),
            Some(mut output) => {
                output.extend_from_slice(&input[copied..]);
                Cow::Owned(output)
            }
        }
    }

    /// Replaces every occurrence of a secret in `text`, such as an error message.
    pub fn redact_text(&self, text: &str) -> String {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => text.to_owned(),
            Cow::Owned(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Redacts the start of a response body and cuts it to at most `max_len` bytes of text.
    ///
    /// `body` is what was read, and `more_follows` is true when the response went on
    /// beyond it. The result is decoded as UTF-8, with invalid sequences replaced by U+FFFD. When
    /// the text is cut, a character split by the cut is dropped, and so is any tail that is
    /// the start of a secret's form. A cut through a [`REDACTED`] marker moves to the start of
    /// the marker. That also applies to the same text sent by the receiver, which then loses
    /// at most 9 more bytes.
    pub fn redact_response_body(&self, body: &[u8], more_follows: bool, max_len: usize) -> String {
        let redacted = self.redact_bytes(body);
        let mut bytes: &[u8] = &redacted;
        let cut = more_follows || bytes.len() > max_len;
        if bytes.len() > max_len {
            bytes = &bytes[..end_outside_marker(bytes, max_len)];
        }
        if cut {
            bytes = self.without_secret_prefix_at_end(bytes);
            bytes = without_split_character_at_end(bytes);
        }

        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if text.len() > max_len {
            // Replacement characters take three bytes where the invalid byte took one.
            let mut end = max_len;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end_outside_marker(text.as_bytes(), end));
        }
        text
    }

    /// Returns the length of the longest form that `rest` starts with.
    fn longest_match(&self, rest: &[u8]) -> Option<usize> {
        if !self.may_start_with(*rest.first()?) {
            return None;
        }
        self.forms
            .iter()
            .filter_map(|form| match form.match_at(rest) {
                Match::Full(length) => Some(length),
                Match::Partial | Match::None => None,
            })
            .max()
    }

    fn may_start_with(&self, byte: u8) -> bool {
        self.starts.get(usize::from(byte)).copied().unwrap_or(false)
    }

    /// Removes the longest tail of `bytes` that is the start of some form.
    fn without_secret_prefix_at_end<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let window = self.longest_pattern_len().min(bytes.len());
        let is_form_start = |start: usize| {
            self.may_start_with(bytes[start])
                && self.forms.iter().any(|form| form.match_at(&bytes[start..]) == Match::Partial)
        };
        match (bytes.len() - window..bytes.len()).find(|&start| is_form_start(start)) {
            Some(start) => &bytes[..start],
            None => bytes,
        }
    }
}

/// Returns the forms of one non-empty secret.
fn forms_of(secret: &[u8]) -> Vec<Form> {
    let mut forms = vec![Form::Literal(secret.to_vec())];
    if let Ok(text) = std::str::from_utf8(secret) {
        forms.push(forms::json_string(text));
    }
    forms.push(forms::percent_encoded(secret));
    forms.extend(forms::base64_runs(secret).into_iter().map(Form::Literal));
    if let Some(encoded) = secret.strip_prefix(WHSEC_PREFIX.as_bytes())
        && !encoded.is_empty()
    {
        forms.push(Form::Literal(encoded.to_vec()));
    }
    forms
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor {{ forms: {} }}", self.forms.len())
    }
}

/// Returns where to cut `bytes` so that the result is at most `end` bytes long and splits no
/// [`REDACTED`] marker: `end` itself, or the start of a marker that straddles it. Since the
/// marker is ASCII, its start is a UTF-8 character boundary.
fn end_outside_marker(bytes: &[u8], end: usize) -> usize {
    let marker = REDACTED.as_bytes();
    let first_straddling = end.saturating_sub(marker.len() - 1);
    (first_straddling..end).find(|&start| bytes[start..].starts_with(marker)).unwrap_or(end)
}

/// Drops an incomplete UTF-8 sequence at the end, which a cut leaves behind. Invalid bytes
/// elsewhere are left for lossy decoding.
fn without_split_character_at_end(bytes: &[u8]) -> &[u8] {
    let tail_start = bytes.len().saturating_sub(3);
    for start in (tail_start..bytes.len()).rev() {
        let lead = bytes[start];
        if lead & 0b1100_0000 == 0b1000_0000 {
            continue;
        }
        let needed = match lead {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        return if bytes.len() - start < needed { &bytes[..start] } else { bytes };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        Redactor::new(secrets.iter().map(|secret| secret.as_bytes()))
    }

    #[test]
    fn every_occurrence_is_replaced() {
        let redactor = redactor(&["tok-123", "sign-456"]);
        let text = "Authorization: Bearer tok-123; again tok-123 and sign-456.";
        assert_eq!(redactor.redact_text(text), "Authorization: Bearer [REDACTED]; again [REDACTED] and [REDACTED].");
    }

    #[test]
    fn json_escaped_secret_is_replaced() {
        let redactor = redactor(&["a\"b\\c"]);
        let echoed = r#"{"authorization":"Bearer a\"b\\c"}"#;
        assert_eq!(redactor.redact_text(echoed), r#"{"authorization":"Bearer [REDACTED]"}"#);
    }

    #[test]
    fn base64_of_bearer_token_is_replaced() {
        let redactor = redactor(&["tokSECRET_HEAD_1"]);
        assert_eq!(redactor.redact_text("QmVhcmVyIHRva1NFQ1JFVF9IRUFEXzE="), "QmVhcmVyIH[REDACTED]E=");
        // The same data without padding, and at the other two positions within a 3-byte group.
        assert_eq!(redactor.redact_text("QmVhcmVyIHRva1NFQ1JFVF9IRUFEXzE"), "QmVhcmVyIH[REDACTED]E");
        assert_eq!(redactor.redact_text("dG9rU0VDUkVUX0hFQURfMQ=="), "[REDACTED]Q==");
        assert_eq!(redactor.redact_text("IHRva1NFQ1JFVF9IRUFEXzE="), "IH[REDACTED]E=");
    }

    #[test]
    fn both_base64_alphabets_are_replaced() {
        let redactor = redactor(&["tok>>>???secret"]);
        assert_eq!(redactor.redact_text("QmVhcmVyIHRvaz4+Pj8/P3NlY3JldA=="), "QmVhcmVyIH[REDACTED]A==");
        assert_eq!(redactor.redact_text("QmVhcmVyIHRvaz4-Pj8_P3NlY3JldA"), "QmVhcmVyIH[REDACTED]A");
    }

    #[test]
    fn base64_of_non_ascii_token_is_replaced() {
        let redactor = redactor(&["tök-✓-𝄞-sécret"]);
        assert_eq!(redactor.redact_text("QmVhcmVyIHTDtmst4pyTLfCdhJ4tc8OpY3JldA=="), "QmVhcmVyIH[REDACTED]A==");
    }

    #[test]
    fn short_secret_has_no_base64_form() {
        // Six bytes determine only 7 characters at some positions, too few to redact safely.
        let redactor = redactor(&["abcdef"]);
        assert_eq!(redactor.redact_text("YWJjZGVm"), "YWJjZGVm");
        assert_eq!(redactor.redact_text("abcdef"), "[REDACTED]");
    }

    #[test]
    fn python_json_escapes_are_replaced() {
        let redactor = redactor(&["tök-✓-𝄞-sécret"]);
        // json.dumps({"authorization": "Bearer " + token}) in Python 3.
        let echoed = r#"{"authorization": "Bearer t\u00f6k-\u2713-\ud834\udd1e-s\u00e9cret"}"#;
        assert_eq!(redactor.redact_text(echoed), r#"{"authorization": "Bearer [REDACTED]"}"#);
        let upper = r#"Bearer t\u00F6k-\u2713-\uD834\uDD1E-s\u00E9cret"#;
        assert_eq!(redactor.redact_text(upper), "Bearer [REDACTED]");
        let every_character =
            r#"\u0074\u00f6\u006b\u002d\u2713\u002d\ud834\udd1e\u002d\u0073\u00e9\u0063\u0072\u0065\u0074"#;
        assert_eq!(redactor.redact_text(every_character), "[REDACTED]");
    }

    #[test]
    fn percent_encoded_secret_is_replaced() {
        let redactor = redactor(&["tök sécret/1"]);
        for encoded in ["t%C3%B6k+s%C3%A9cret%2F1", "t%c3%b6k%20s%c3%a9cret/1", "t%C3%b6k s%C3%A9cret%2f1"] {
            let text = format!("/elsewhere?auth=Bearer+{encoded}&x=1");
            assert_eq!(redactor.redact_text(&text), "/elsewhere?auth=Bearer+[REDACTED]&x=1", "{encoded}");
        }
    }

    #[test]
    fn cut_removes_split_escape() {
        let redactor = redactor(&["sécret-value"]);
        assert_eq!(redactor.redact_response_body(br#"{"a": "s\u00e9cr"#, true, 100), r#"{"a": ""#);
        assert_eq!(redactor.redact_response_body(br#"{"a": "s\u00"#, true, 100), r#"{"a": ""#);
        assert_eq!(redactor.redact_response_body(b"auth=s%C3%A9c", true, 100), "auth=");
        assert_eq!(redactor.redact_response_body(b"auth=s%C", true, 100), "auth=");
    }

    #[test]
    fn whsec_payload_is_replaced() {
        let redactor = redactor(&["whsec_c2VjcmV0"]);
        assert_eq!(redactor.redact_text("key c2VjcmV0 or whsec_c2VjcmV0"), "key [REDACTED] or [REDACTED]");
    }

    #[test]
    fn longer_secret_wins_over_contained_one() {
        let redactor = redactor(&["abc", "xxabcxx"]);
        assert_eq!(redactor.redact_text("1 xxabcxx 2 abc"), "1 [REDACTED] 2 [REDACTED]");
    }

    #[test]
    fn empty_secret_changes_nothing() {
        let redactor = redactor(&[""]);
        assert_eq!(redactor.redact_text("unchanged"), "unchanged");
        assert_eq!(redactor.longest_pattern_len(), 0);
    }

    #[test]
    fn cut_removes_split_secret() {
        let redactor = redactor(&["SECRETVALUE"]);
        let body = b"0123456789SECRET";
        assert_eq!(redactor.redact_response_body(body, true, 100), "0123456789");
        // A secret wholly inside the read bytes is replaced before the cut, and a cut through
        // the replacement moves to its start.
        let body = b"0123456789SECRETVALUE and more";
        assert_eq!(redactor.redact_response_body(body, false, 14), "0123456789");
    }

    #[test]
    fn cut_at_stored_limit_keeps_marker_whole() {
        let redactor = redactor(&["tok-0123456789"]);
        let limit = crate::client::MAX_STORED_RESPONSE_BYTES;
        // The token starts at `start`, so that the limit falls before, inside and after its
        // marker.
        for start in limit - 12..=limit {
            let before = format!("{}Bearer ", "a".repeat(start - 7));
            let body = format!("{before}tok-0123456789 and more");
            let stored = redactor.redact_response_body(body.as_bytes(), true, limit);
            let redacted = format!("{before}{REDACTED} and more");
            assert!(redacted.starts_with(&stored), "token at {start}: {:?}", &stored[before.len() - 7..]);
            if start + REDACTED.len() <= limit {
                assert!(stored.starts_with(&format!("{before}{REDACTED}")), "token at {start}: the marker was cut");
            } else {
                assert_eq!(stored, before, "token at {start}");
            }
        }
    }

    #[test]
    fn lossy_decoding_keeps_marker_whole() {
        // Four invalid bytes become four U+FFFD of 3 bytes each, which pushes the marker
        // across the limit only after decoding.
        let redactor = redactor(&["SECRETVALUE"]);
        let body = [&[0xff; 4][..], b"SECRETVALUE tail"].concat();
        assert_eq!(redactor.redact_response_body(&body, false, 16), "\u{fffd}".repeat(4));
        assert_eq!(redactor.redact_response_body(&body, false, 22), format!("{}{REDACTED}", "\u{fffd}".repeat(4)));
    }

    #[test]
    fn cut_drops_split_character() {
        let redactor = Redactor::default();
        let body = "abc✓".as_bytes();
        assert_eq!(redactor.redact_response_body(&body[..5], true, 100), "abc");
        assert_eq!(redactor.redact_response_body(body, false, 5), "abc");
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily_within_limit() {
        let redactor = Redactor::default();
        let body = [0xff; 10];
        let text = redactor.redact_response_body(&body, false, 10);
        assert!(text.len() <= 10, "{text:?}");
        assert!(text.chars().all(|c| c == '\u{fffd}'));
    }

    #[test]
    fn debug_shows_no_secret() {
        assert_eq!(format!("{:?}", redactor(&["tok"])), "Redactor { forms: 3 }");
    }

    proptest! {
        #[test]
        fn stored_body_never_ends_in_split_marker(
            secret in "[a-zA-Z0-9]{4,24}",
            before in "[ -Z\\\\-~]{0,64}",
            max_len in 0usize..120,
        ) {
            let redactor = redactor(&[&secret]);
            let body = format!("{before}{secret}{before}");
            let stored = redactor.redact_response_body(body.as_bytes(), false, max_len);
            let without_whole_markers = stored.replace(REDACTED, "");
            prop_assert!(!without_whole_markers.contains('['), "stored {:?} splits a marker", stored);
        }

        #[test]
        fn stored_body_never_contains_secret(
            secret in "[a-zA-Z0-9]{4,24}",
            before in "[ -~]{0,64}",
            after in "[ -~]{0,64}",
            max_len in 0usize..160,
        ) {
            let redactor = redactor(&[&secret]);
            let body = format!("{before}{secret}{after}{secret}");
            let stored = redactor.redact_response_body(body.as_bytes(), false, max_len);
            prop_assert!(stored.len() <= max_len);
            prop_assert!(!stored.contains(&secret));
        }

        // The text before the secret has no `%` or `\`, because with the secret's first
        // characters they can form an escape of the secret, which is then rightly redacted
        // together with them.
        #[test]
        fn cut_inside_secret_keeps_no_part_of_it(
            secret in "[a-zA-Z0-9]{4,24}",
            before in "[ -~&&[^%\\\\]]{0,64}",
            cut in 0usize..88,
        ) {
            let redactor = redactor(&[&secret]);
            let body = format!("{before}{secret}");
            let max_len = cut.min(body.len() - 1);
            let stored = redactor.redact_response_body(body.as_bytes(), false, max_len);
            let redacted = format!("{before}{REDACTED}");
            prop_assert!(redacted.starts_with(&stored), "stored {:?} is not a prefix of {:?}", stored, redacted);
        }
    }
}
