//! Rules for the names of entities, projects, secrets, integrations and automations.
//!
//! Names compare case-sensitively everywhere, the same way uniqueness is enforced.

use crate::error::ValidationError;

/// Maximum length of an entity (user or team) name.
pub const MAX_ENTITY_NAME: usize = 64;
/// Maximum length of a project name.
pub const MAX_PROJECT_NAME: usize = 128;
/// Maximum length of a secret name.
pub const MAX_SECRET_NAME: usize = 64;
/// Maximum length of an integration name, as in W&B.
pub const MAX_INTEGRATION_NAME: usize = 64;
/// Maximum length of an automation name, as in W&B.
pub const MAX_AUTOMATION_NAME: usize = 255;

/// Checks a user or team name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`,
/// starting with a letter or digit.
pub fn validate_entity_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_ENTITY_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!(
            "invalid name {name:?}; use 1 to {MAX_ENTITY_NAME} letters, digits, '-', '_' or '.', \
             starting with a letter or digit"
        ),
    ))
}

/// Checks a project name: 1 to 128 characters without `/ \ # ? % :`, control characters or
/// surrounding spaces, and neither `.` nor `..`, because the name appears in URL paths, where
/// clients and proxies resolve those two as dot-segments, and in `entity/project` pairs.
pub fn validate_project_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_PROJECT_NAME
        && name.trim() == name
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c) || matches!(c, '/' | '\\' | '#' | '?' | '%' | ':'));
    if valid {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!(
            "invalid project name {name:?}; use 1 to {MAX_PROJECT_NAME} characters without \
             '/', '\\', '#', '?', '%', ':', control or invisible formatting characters or surrounding \
             spaces, other than \".\" and \"..\""
        ),
    ))
}

/// Checks a secret name: 1 to 64 ASCII letters, digits or `_`, not starting with a digit.
pub fn validate_secret_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SECRET_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!(
            "invalid secret name {name:?}; use 1 to {MAX_SECRET_NAME} letters, digits or '_', \
             not starting with a digit"
        ),
    ))
}

/// Checks an integration name with W&B's rule: words of letters, digits, `_` or `-`,
/// separated by single spaces, at most 64 characters.
pub fn validate_integration_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_INTEGRATION_NAME
        && name.split(' ').all(|word| !word.is_empty() && word.chars().all(is_word_char));
    if valid {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!(
            "invalid integration name {name:?}; use at most {MAX_INTEGRATION_NAME} characters: \
             words of letters, digits, '_' or '-' separated by single spaces"
        ),
    ))
}

/// Checks an automation name: 1 to 255 characters, no control characters, no surrounding
/// spaces, and not shaped like a UUID, so that the CLI can tell a name from an id.
pub fn validate_automation_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_AUTOMATION_NAME
        && name.trim() == name
        && !name.chars().any(|c| c.is_control() || is_invisible_format(c))
        && uuid::Uuid::parse_str(name).is_err();
    if valid {
        return Ok(());
    }
    Err(ValidationError::invalid(
        field,
        format!(
            "invalid automation name {name:?}; use 1 to {MAX_AUTOMATION_NAME} characters \
             without control characters or surrounding spaces, not shaped like a UUID"
        ),
    ))
}

/// Returns true if and only if `c` is an invisible formatting character: zero-width spaces and
/// joiners, bidirectional controls, the soft hyphen and the byte order mark. Names with them
/// look the same as names without them, so `prod` and `prod` followed by a zero-width space
/// would be two projects that people cannot tell apart.
//
// NOTE: names are not Unicode-normalized, so "café" written with a combining accent and with a
// precomposed é are still two different names.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}' | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names() {
        assert!(validate_entity_name("name", "ml").is_ok());
        assert!(validate_entity_name("name", "team-1.a_b").is_ok());
        assert!(validate_entity_name("name", "").is_err());
        assert!(validate_entity_name("name", "-ml").is_err());
        assert!(validate_entity_name("name", "m l").is_err());
        assert!(validate_entity_name("name", &"a".repeat(65)).is_err());
    }

    #[test]
    fn project_names() {
        assert!(validate_project_name("name", "demo project").is_ok());
        assert!(validate_project_name("name", "a/b").is_err());
        assert!(validate_project_name("name", " demo").is_err());
    }

    #[test]
    fn project_names_reject_dot_segments() {
        for name in [".", ".."] {
            let error = validate_project_name("name", name).unwrap_err();
            assert_eq!((error.code, error.field.as_str()), ("invalid_value", "name"), "{name}");
            assert!(error.detail.starts_with(&format!("invalid project name {name:?}")), "{name}: {}", error.detail);
        }
        for name in ["...", ".hidden", "v1.0", "a..b"] {
            assert!(validate_project_name("name", name).is_ok(), "{name}");
        }
    }

    #[test]
    fn integration_names_follow_wandb() {
        assert!(validate_integration_name("name", "ci").is_ok());
        assert!(validate_integration_name("name", "my hook-2").is_ok());
        assert!(validate_integration_name("name", "two  spaces").is_err());
        assert!(validate_integration_name("name", "slash/no").is_err());
    }

    #[test]
    fn invisible_characters_are_rejected() {
        assert!(validate_project_name("name", "prod\u{200B}").is_err());
        assert!(validate_project_name("name", "\u{202E}dorp").is_err());
        assert!(validate_automation_name("name", "loss\u{FEFF}").is_err());
        assert!(validate_project_name("name", "café").is_ok());
    }

    #[test]
    fn automation_names_reject_uuids() {
        assert!(validate_automation_name("name", "loss-low").is_ok());
        let uuid = "0190c9a4-6a5e-7cc0-8f5e-7f3a2b1c0d9e";
        assert!(validate_automation_name("name", uuid).is_err());
    }
}
