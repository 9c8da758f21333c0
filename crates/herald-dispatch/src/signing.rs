//! Signatures on outgoing deliveries, and their verification.
//!
//! A delivery whose integration has a signing secret carries two kinds of signature over the
//! exact body bytes that are sent:
//!
//! - `X-Wandb-Signature`: base64 of HMAC-SHA256 over the body, as W&B documents for its
//!   generic webhooks.
//! - The Standard Webhooks headers: `webhook-id` (the execution id, the same on every
//!   attempt, so receivers can drop duplicates), `webhook-timestamp` (Unix seconds of this
//!   attempt) and `webhook-signature` (`v1,` followed by base64 of HMAC-SHA256 over
//!   `"{id}.{timestamp}.{body}"`).
//!
//! Both use the same HMAC key, derived from the secret by one rule: a secret that starts
//! with `whsec_` is in Standard Webhooks form, and the key is the base64 decoding of the rest
//! (padded or not). Any other secret is used as it is: the key is the secret's bytes. The
//! rule lets a receiver reuse a Standard Webhooks library with a `whsec_` secret, while a
//! plain secret works as in W&B's documented example.
//!
//! [`verify`] and [`verify_wandb_signature`] compare in constant time. Receivers in Rust can
//! use them, and the tests use them to check every attempt.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header with W&B's body signature.
pub const X_WANDB_SIGNATURE: &str = "x-wandb-signature";
/// Standard Webhooks header with the delivery id, the same on every attempt.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks header with the Unix time of the attempt, in seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks header with the signatures, separated by spaces.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Prefix of a secret in Standard Webhooks form.
pub const WHSEC_PREFIX: &str = "whsec_";

/// Maximum distance in seconds between `webhook-timestamp` and the verifier's clock.
/// Standard Webhooks' reference libraries use 5 minutes, which bounds how long a captured
/// request can be replayed.
pub const TIMESTAMP_TOLERANCE_SECONDS: i64 = 300;

/// The HMAC key derived from a signing secret. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

/// Signature headers of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// Value of `X-Wandb-Signature`.
    pub x_wandb_signature: String,
    /// Value of `webhook-id`.
    pub webhook_id: String,
    /// Value of `webhook-timestamp`.
    pub webhook_timestamp: String,
    /// Value of `webhook-signature`.
    pub webhook_signature: String,
}

/// A secret that cannot be used as a key, or a signature that does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A `whsec_` secret whose remainder is not base64.
    #[error(
        "the signing secret starts with \"whsec_\" but the rest is not valid base64; store the secret exactly as \
         generated (\"whsec_\" followed by the base64 of 24 to 64 random bytes), or use a secret without that prefix"
    )]
    InvalidWhsecSecret,
    /// `webhook-timestamp` is not a whole number of seconds.
    #[error("invalid webhook-timestamp {0:?}: expected Unix time in whole seconds")]
    InvalidTimestamp(String),
    /// `webhook-timestamp` is too far from the verifier's clock.
    #[error(
        "webhook-timestamp {timestamp} is more than {TIMESTAMP_TOLERANCE_SECONDS} seconds away from the current time \
         {now}; the request is stale or a clock is wrong"
    )]
    TimestampOutOfTolerance {
        /// The timestamp in the request.
        timestamp: i64,
        /// The verifier's time.
        now: i64,
    },
    /// The signature header has no entry in a known form.
    #[error("invalid signature header {0:?}: expected base64, or for webhook-signature \"v1,<base64>\" entries")]
    Malformed(String),
    /// No signature in the header matches the body.
    #[error("no signature matches the request; the body, id, timestamp or secret differ from what was signed")]
    Mismatch,
}

impl SigningKey {
    /// Derives the key from a secret by the rule in the module documentation.
    pub fn from_secret(secret: &[u8]) -> Result<Self, SignatureError> {
        let Some(encoded) = secret.strip_prefix(WHSEC_PREFIX.as_bytes()) else {
            return Ok(Self(secret.to_vec()));
        };
        let key = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| SignatureError::InvalidWhsecSecret)?;
        Ok(Self(key))
    }

    /// Uses `key` as the HMAC key directly.
    pub fn from_key_bytes(key: &[u8]) -> Self {
        Self(key.to_vec())
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC-SHA256 accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// Computes the value of `X-Wandb-Signature`: base64 of HMAC-SHA256 over `body`.
pub fn wandb_signature(key: &SigningKey, body: &[u8]) -> String {
    STANDARD.encode(key.mac(&[body]))
}

/// Computes one `webhook-signature` entry: `v1,` followed by base64 of HMAC-SHA256 over
/// `"{id}.{timestamp}.{body}"`.
pub fn webhook_signature(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = key.mac(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// Computes every signature header of one attempt.
pub fn sign(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> SignatureHeaders {
    SignatureHeaders {
        x_wandb_signature: wandb_signature(key, body),
        webhook_id: id.to_owned(),
        webhook_timestamp: timestamp.to_string(),
        webhook_signature: webhook_signature(key, id, timestamp, body),
    }
}

/// Checks an `X-Wandb-Signature` value against `body`, in constant time.
pub fn verify_wandb_signature(key: &SigningKey, body: &[u8], header: &str) -> Result<(), SignatureError> {
    let candidate = STANDARD.decode(header.trim()).map_err(|_| SignatureError::Malformed(header.to_owned()))?;
    let expected = key.mac(&[body]);
    if bool::from(expected.as_slice().ct_eq(&candidate)) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// Checks the Standard Webhooks headers of a request, as a receiver does.
///
/// `timestamp` and `signature` are the raw values of `webhook-timestamp` and
/// `webhook-signature`, and `now` is the receiver's Unix time in seconds. The timestamp must
/// be within [`TIMESTAMP_TOLERANCE_SECONDS`] of `now`. The request verifies when any `v1`
/// entry of the space-separated signature list matches. Entries of other versions are
/// skipped, so a receiver keeps working when a sender adds a new scheme.
pub fn verify(
    key: &SigningKey,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let seconds: i64 = timestamp.trim().parse().map_err(|_| SignatureError::InvalidTimestamp(timestamp.to_owned()))?;
    if seconds.abs_diff(now) > TIMESTAMP_TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::TimestampOutOfTolerance { timestamp: seconds, now });
    }

    let timestamp_text = seconds.to_string();
    let expected = key.mac(&[id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body]);
    let mut saw_v1 = false;
    for entry in signature.split(' ').filter(|entry| !entry.is_empty()) {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        saw_v1 = true;
        let Ok(candidate) = STANDARD.decode(encoded) else {
            continue;
        };
        if bool::from(expected.as_slice().ct_eq(&candidate)) {
            return Ok(());
        }
    }

    if saw_v1 { Err(SignatureError::Mismatch) } else { Err(SignatureError::Malformed(signature.to_owned())) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_764_882_000;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The test vector that Standard Webhooks libraries publish for the specification.
        let key = SigningKey::from_secret(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = webhook_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn plain_secret_is_used_as_bytes() {
        let key = SigningKey::from_secret(b"my-secret").unwrap();
        let same = SigningKey::from_key_bytes(b"my-secret");
        assert_eq!(wandb_signature(&key, b"{}"), wandb_signature(&same, b"{}"));
    }

    #[test]
    fn whsec_secret_accepts_unpadded_base64() {
        let padded = SigningKey::from_secret(b"whsec_AAEC").unwrap();
        let unpadded = SigningKey::from_secret(b"whsec_AAECAw").unwrap();
        assert_eq!(wandb_signature(&padded, b"x"), wandb_signature(&SigningKey::from_key_bytes(&[0, 1, 2]), b"x"));
        assert_eq!(wandb_signature(&unpadded, b"x"), wandb_signature(&SigningKey::from_key_bytes(&[0, 1, 2, 3]), b"x"));
    }

    #[test]
    fn whsec_secret_with_invalid_base64_is_rejected() {
        assert_eq!(SigningKey::from_secret(b"whsec_not base64!").unwrap_err(), SignatureError::InvalidWhsecSecret);
    }

    #[test]
    fn stale_timestamp_is_rejected() {
        let key = SigningKey::from_key_bytes(b"k");
        let old = NOW - TIMESTAMP_TOLERANCE_SECONDS - 1;
        let signature = webhook_signature(&key, "id", old, b"{}");
        let error = verify(&key, "id", &old.to_string(), b"{}", &signature, NOW).unwrap_err();
        assert_eq!(error, SignatureError::TimestampOutOfTolerance { timestamp: old, now: NOW });
    }

    #[test]
    fn signature_list_accepts_any_matching_entry() {
        let key = SigningKey::from_key_bytes(b"new");
        let old = webhook_signature(&SigningKey::from_key_bytes(b"old"), "id", NOW, b"{}");
        let new = webhook_signature(&key, "id", NOW, b"{}");
        let header = format!("v1a,ignored {old} {new}");
        assert_eq!(verify(&key, "id", &NOW.to_string(), b"{}", &header, NOW), Ok(()));
    }

    #[test]
    fn header_without_v1_entry_is_malformed() {
        let key = SigningKey::from_key_bytes(b"k");
        let error = verify(&key, "id", &NOW.to_string(), b"{}", "v2,abc", NOW).unwrap_err();
        assert_eq!(error, SignatureError::Malformed("v2,abc".into()));
        assert!(matches!(verify(&key, "id", "soon", b"{}", "v1,abc", NOW), Err(SignatureError::InvalidTimestamp(_))));
    }

    #[test]
    fn debug_hides_the_signing_key() {
        assert_eq!(format!("{:?}", SigningKey::from_key_bytes(b"secret")), "SigningKey(..)");
    }

    proptest! {
        #[test]
        fn signed_attempt_verifies(
            key in proptest::collection::vec(any::<u8>(), 0..80),
            id in "[a-zA-Z0-9_-]{1,40}",
            offset in -TIMESTAMP_TOLERANCE_SECONDS..=TIMESTAMP_TOLERANCE_SECONDS,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let key = SigningKey::from_key_bytes(&key);
            let timestamp = NOW + offset;
            let headers = sign(&key, &id, timestamp, &body);
            prop_assert_eq!(&headers.webhook_id, &id);
            prop_assert_eq!(
                verify(&key, &id, &headers.webhook_timestamp, &body, &headers.webhook_signature, NOW),
                Ok(())
            );
            prop_assert_eq!(verify_wandb_signature(&key, &body, &headers.x_wandb_signature), Ok(()));
        }

        #[test]
        fn changed_body_does_not_verify(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let key = SigningKey::from_key_bytes(b"key");
            let headers = sign(&key, "id", NOW, &body);
            let mut changed = body.clone();
            changed[index.index(body.len())] ^= flip;
            prop_assert_eq!(
                verify(&key, "id", &headers.webhook_timestamp, &changed, &headers.webhook_signature, NOW),
                Err(SignatureError::Mismatch)
            );
            prop_assert_eq!(
                verify_wandb_signature(&key, &changed, &headers.x_wandb_signature),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn whsec_secret_round_trips(raw in proptest::collection::vec(any::<u8>(), 24..=64), body in ".{0,64}") {
            let secret = format!("{WHSEC_PREFIX}{}", STANDARD.encode(&raw));
            let from_secret = SigningKey::from_secret(secret.as_bytes()).unwrap();
            let from_raw = SigningKey::from_key_bytes(&raw);
            prop_assert_eq!(
                webhook_signature(&from_secret, "id", NOW, body.as_bytes()),
                webhook_signature(&from_raw, "id", NOW, body.as_bytes())
            );
        }

        #[test]
        fn other_key_does_not_verify(a in proptest::collection::vec(any::<u8>(), 1..40), b in proptest::collection::vec(any::<u8>(), 1..40)) {
            prop_assume!(a != b);
            let headers = sign(&SigningKey::from_key_bytes(&a), "id", NOW, b"{}");
            let other = SigningKey::from_key_bytes(&b);
            prop_assert_eq!(
                verify(&other, "id", &headers.webhook_timestamp, b"{}", &headers.webhook_signature, NOW),
                Err(SignatureError::Mismatch)
            );
        }
    }
}
