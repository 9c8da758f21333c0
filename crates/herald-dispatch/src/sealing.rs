//! Sealing of secret values at rest.
//!
//! Secret values are encrypted with XChaCha20-Poly1305 under the server's secret key before
//! they reach the store, and opened only by the dispatcher at send time. The 24-byte random
//! nonce makes nonce reuse negligible at any number of secrets, which a 12-byte random nonce
//! would not. A sealed value is `version (1 byte) || nonce (24 bytes) || ciphertext`.
//!
//! The key is 32 random bytes, written as base64. The store keeps a check value derived from
//! the key, so that a server started with a different key refuses to start instead of
//! failing every delivery later.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The format version written as the first byte of a sealed value.
const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// The server's secret key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

/// A key or a sealed value that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key text is not base64 of 32 bytes.
    #[error(
        "invalid secret key: expected the base64 encoding of 32 bytes, such as the output of `openssl rand -base64 32`"
    )]
    InvalidKey,
    /// The sealed value is damaged or was sealed under another key.
    #[error("cannot open a sealed secret: it is damaged or was sealed with another secret key")]
    CannotOpen,
}

impl SecretKey {
    /// Generates a new random key.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self(key.into())
    }

    /// Reads a key from its base64 text, ignoring surrounding whitespace.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| SealError::InvalidKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::InvalidKey)?;
        Ok(Self(key))
    }

    /// Writes the key as base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Encrypts a value.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext =
            cipher.encrypt(&nonce, plaintext).expect("XChaCha20-Poly1305 encryption cannot fail for in-memory data");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts a value sealed by [`SecretKey::seal`] under the same key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEALED_VERSION {
            return Err(SealError::CannotOpen);
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher.decrypt(nonce, &sealed[1 + NONCE_LEN..]).map_err(|_| SealError::CannotOpen)
    }

    /// Returns a value that identifies the key without revealing it: the hex HMAC-SHA256
    /// of a fixed label under the key.
    pub fn check_value(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"herald secret key check v1");
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_with_same_key() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"token-123");
        assert_ne!(&sealed[1 + NONCE_LEN..], b"token-123");
        assert_eq!(key.open(&sealed).unwrap(), b"token-123");
    }

    #[test]
    fn other_key_cannot_open() {
        let sealed = SecretKey::generate().seal(b"token");
        assert_eq!(SecretKey::generate().open(&sealed), Err(SealError::CannotOpen));
    }

    #[test]
    fn damaged_value_cannot_open() {
        let key = SecretKey::generate();
        let mut sealed = key.seal(b"token");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(key.open(&sealed), Err(SealError::CannotOpen));
        assert_eq!(key.open(&[1, 2, 3]), Err(SealError::CannotOpen));
    }

    #[test]
    fn base64_round_trip_and_check_value() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&format!(" {}\n", key.to_base64())).unwrap();
        assert_eq!(again.check_value(), key.check_value());
        assert_ne!(SecretKey::generate().check_value(), key.check_value());
        assert_eq!(SecretKey::from_base64("c2hvcnQ=").unwrap_err(), SealError::InvalidKey);
    }

    #[test]
    fn debug_hides_the_key() {
        let key = SecretKey::generate();
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }
}
