//! API keys, authentication and permission checks.
//!
//! Every API accepts an API key as HTTP Basic with user `api` (what the wandb SDK sends) or
//! as `Authorization: Bearer <key>`. Keys are at least 40 characters and are stored only as
//! their SHA-256 hash; a high-entropy key needs no slow hash, and a fast one keeps the
//! per-request lookup cheap.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::model::Role;
use herald_store::{Entity, User};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The shortest API key Herald accepts.
pub const MIN_API_KEY_LEN: usize = 40;

/// Returns the SHA-256 of an API key, which is what the store keeps.
pub fn api_key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Generates a new API key: 40 lowercase hexadecimal characters (160 random bits), which
/// the wandb SDK's key check accepts.
pub fn generate_api_key() -> String {
    let bytes: [u8; 20] = rand::thread_rng().r#gen();
    hex::encode(bytes)
}

/// Checks the form of an API key chosen by an operator.
pub fn validate_api_key(key: &str) -> Result<(), String> {
    let valid = key.len() >= MIN_API_KEY_LEN && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        return Ok(());
    }
    Err(format!(
        "an API key must be at least {MIN_API_KEY_LEN} characters of letters, digits, '_' or '-'; \
         generate one with `openssl rand -hex 20`"
    ))
}

/// Reads the API key from an `Authorization` header value.
pub fn key_from_authorization(value: &str) -> Option<String> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(credentials).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, password) = text.split_once(':')?;
        return Some(password.to_owned());
    }
    None
}

/// The authenticated user of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user whose key authenticated the request.
    pub user: User,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|value| value.to_str().ok());
        let Some(key) = header.and_then(key_from_authorization) else {
            return Err(ApiError::unauthorized(
                "missing API key; send it as `Authorization: Bearer <key>` or as HTTP Basic with user `api`",
            ));
        };
        authenticate(state, &key).await
    }
}

/// Finds the user that owns `key`.
pub async fn authenticate(state: &AppState, key: &str) -> ApiResult<Caller> {
    if key.len() < MIN_API_KEY_LEN {
        return Err(ApiError::unauthorized("invalid API key"));
    }
    match state.store.user_by_api_key(&api_key_hash(key)).await? {
        Some(user) => Ok(Caller { user }),
        None => {
            tracing::warn!("request with an unknown API key");
            Err(ApiError::unauthorized("invalid API key"))
        }
    }
}

impl Caller {
    /// Returns the caller's role in `entity`. Organization admins are admins everywhere.
    pub async fn role_in(&self, state: &AppState, entity: &Entity) -> ApiResult<Option<Role>> {
        if self.user.is_org_admin {
            return Ok(Some(Role::Admin));
        }
        Ok(state.store.role_in(entity.id, self.user.id).await?)
    }

    /// Fails with 403 unless the caller has at least `needed` in `entity`.
    pub async fn require(&self, state: &AppState, entity: &Entity, needed: Role) -> ApiResult<Role> {
        match self.role_in(state, entity).await? {
            Some(role) if role >= needed => Ok(role),
            Some(role) => Err(ApiError::forbidden(format!(
                "your role in {:?} is {role}, but this needs {needed}; ask a team admin to change your role",
                entity.name
            ))),
            None => Err(ApiError::forbidden(format!(
                "you are not a member of {:?}; ask a team admin to add you",
                entity.name
            ))),
        }
    }

    /// Fails with 403 unless the caller is an organization admin.
    pub fn require_org_admin(&self) -> ApiResult<()> {
        if self.user.is_org_admin {
            return Ok(());
        }
        Err(ApiError::forbidden("only organization admins may do this"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_basic_and_bearer() {
        let basic = format!("Basic {}", STANDARD.encode("api:abc"));
        assert_eq!(key_from_authorization(&basic).as_deref(), Some("abc"));
        assert_eq!(key_from_authorization("Bearer xyz").as_deref(), Some("xyz"));
        assert_eq!(key_from_authorization("bearer  xyz ").as_deref(), Some("xyz"));
        assert_eq!(key_from_authorization("Digest x"), None);
        assert_eq!(key_from_authorization("Basic !!!"), None);
    }

    #[test]
    fn generated_keys_are_valid() {
        let key = generate_api_key();
        assert_eq!(key.len(), 40);
        assert!(validate_api_key(&key).is_ok());
        assert!(validate_api_key("short").is_err());
        assert!(validate_api_key(&"x".repeat(39)).is_err());
        assert!(validate_api_key(&format!("{}!", "x".repeat(40))).is_err());
    }
}
