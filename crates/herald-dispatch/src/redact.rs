//! Removal of secret values from what an attempt stores.
//!
//! Receivers can echo the request, including `Authorization: Bearer <token>`, in their
//! response body or error page, and Herald stores the start of that body in the delivery
//! history. Before anything from an attempt is stored, every occurrence of each secret
//! value used for the attempt is replaced with [`REDACTED`]. The replaced forms are the raw
//! value, its JSON-escaped form (for receivers that echo headers as JSON) and, for a
//! `whsec_` signing secret, the base64 part after the prefix.
//!
//! Other encodings of a secret, such as base64 of the whole value, percent-encoding or
//! `\u` escapes of non-ASCII characters, are not recognised.
//!
//! A stored body is cut to a maximum length. When the cut splits a secret, the part of it
//! before the cut is removed too, so no prefix of a secret is stored.

use std::borrow::Cow;

use crate::signing::WHSEC_PREFIX;

/// The text that replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// The byte patterns to remove from the stored output of one attempt.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Non-empty patterns, longest first, so that a secret containing another is replaced
    /// as a whole.
    patterns: Vec<Vec<u8>>,
}

impl Redactor {
    /// Creates a redactor for the secret values of one attempt. Empty values are skipped,
    /// because there is nothing to replace.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut patterns = Vec::new();
        for secret in secrets {
            patterns.push(secret.to_vec());
            if let Ok(text) = std::str::from_utf8(secret)
                && let Ok(quoted) = serde_json::to_string(text)
            {
                let escaped = &quoted[1..quoted.len() - 1];
                patterns.push(escaped.as_bytes().to_vec());
            }
            if let Some(encoded) = secret.strip_prefix(WHSEC_PREFIX.as_bytes()) {
                patterns.push(encoded.to_vec());
            }
        }
        patterns.retain(|pattern| !pattern.is_empty());
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Self { patterns }
    }

    /// Returns the length of the longest pattern, in bytes.
    pub fn longest_pattern_len(&self) -> usize {
        self.patterns.first().map_or(0, Vec::len)
    }

    /// Replaces every occurrence of a secret in `input`.
    pub fn redact_bytes<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        if self.patterns.is_empty() || !self.patterns.iter().any(|pattern| contains(input, pattern)) {
            return Cow::Borrowed(input);
        }

        let mut output = Vec::with_capacity(input.len());
        let mut position = 0;
        while position < input.len() {
            let rest = &input[position..];
            match self.patterns.iter().find(|pattern| rest.starts_with(pattern)) {
                Some(pattern) => {
                    output.extend_from_slice(REDACTED.as_bytes());
                    position += pattern.len();
                }
                None => {
                    output.push(input[position]);
                    position += 1;
                }
            }
        }
        Cow::Owned(output)
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
    /// the start of a secret.
    pub fn redact_response_body(&self, body: &[u8], more_follows: bool, max_len: usize) -> String {
        let redacted = self.redact_bytes(body);
        let mut bytes: &[u8] = &redacted;
        let cut = more_follows || bytes.len() > max_len;
        if bytes.len() > max_len {
            bytes = &bytes[..max_len];
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
            text.truncate(end);
        }
        text
    }

    /// Removes the longest tail of `bytes` that is the start of some secret.
    fn without_secret_prefix_at_end<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let mut strip = 0;
        for pattern in &self.patterns {
            let longest = (pattern.len() - 1).min(bytes.len());
            if let Some(length) = (strip + 1..=longest).rev().find(|&length| bytes.ends_with(&pattern[..length])) {
                strip = length;
            }
        }
        &bytes[..bytes.len() - strip]
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor {{ patterns: {} }}", self.patterns.len())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
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
        // A secret wholly inside the read bytes is replaced before the cut, which may then
        // split the replacement but never the secret.
        let body = b"0123456789SECRETVALUE and more";
        assert_eq!(redactor.redact_response_body(body, false, 14), "0123456789[RED");
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
        assert_eq!(format!("{:?}", redactor(&["tok"])), "Redactor { patterns: 1 }");
    }

    proptest! {
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

        #[test]
        fn cut_inside_secret_keeps_no_part_of_it(
            secret in "[a-zA-Z0-9]{4,24}",
            before in "[ -~]{0,64}",
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
