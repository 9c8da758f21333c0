//! One delivery attempt: load what the execution needs, send it, record the outcome and
//! decide what happens next.
//!
//! Secrets are opened here and nowhere else, at send time, and live only for the attempt.
//! Everything an attempt stores (response body, error text) passes through a
//! [`Redactor`] for the secrets it used first.
//!
//! Outcomes:
//! - 2xx: the execution succeeded.
//! - 410 Gone: failed at once, because the receiver reports that the endpoint no longer
//!   exists.
//! - A problem that no retry can fix (integration deleted, a secret that is missing or
//!   cannot be opened, an invalid URL or a rejected IP literal): failed at once.
//! - Anything else (3xx, other statuses, timeouts, connection errors, a host name that
//!   cannot be resolved or resolves only to rejected addresses, because DNS answers change):
//!   retried on the schedule, then failed.
//! - A store error while loading the integration or its secrets: nothing is recorded, and
//!   the execution is tried again when its claim lapses.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use herald_core::Timestamp;
use herald_core::ids::{ExecutionId, SecretId};
use herald_store::{Attempt, AttemptNext, AttemptRecord, ClaimedExecution, Integration, Store, StoreResult};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tracing::Instrument;

use crate::client::{self, MAX_STORED_RESPONSE_BYTES, ReceivedResponse, SendError};
use crate::network::NetworkPolicy;
use crate::redact::Redactor;
use crate::retry;
use crate::sealing::SecretKey;
use crate::settings::DispatchSettings;
use crate::signing::{self, SigningKey};

/// Shared state of the attempts in flight: store, HTTP client, secret key, network policy
/// and settings.
pub(crate) struct Deliverer {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) client: reqwest::Client,
    pub(crate) secret_key: SecretKey,
    pub(crate) network: NetworkPolicy,
    pub(crate) settings: DispatchSettings,
}

/// The reason an attempt did not deliver.
#[derive(Debug)]
struct Failure {
    /// A stable name for logs: one of [`SendError::class`], or `no_request`,
    /// `integration_deleted`, `secret`, `gone`, `redirect` or `http_status`.
    class: &'static str,
    /// The error text to store, already redacted.
    message: String,
    /// Whether a later attempt could succeed.
    retryable: bool,
}

impl Failure {
    fn permanent(class: &'static str, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), retryable: false }
    }
}

/// The result of one attempt: status, stored body, failure and requested retry delay.
#[derive(Debug, Default)]
struct Outcome {
    status_code: Option<u16>,
    response_body: Option<String>,
    failure: Option<Failure>,
    retry_after: Option<Duration>,
}

impl Outcome {
    fn failed(failure: Failure) -> Self {
        Self { failure: Some(failure), ..Self::default() }
    }
}

/// The secret values of one attempt.
struct OpenedSecrets {
    access_token: Option<(SecretId, Vec<u8>)>,
    signing_secret: Option<Vec<u8>>,
}

impl OpenedSecrets {
    fn redactor(&self) -> Redactor {
        let token = self.access_token.as_ref().map(|(_, value)| value.as_slice());
        Redactor::new(token.into_iter().chain(self.signing_secret.as_deref()))
    }
}

impl Deliverer {
    /// Makes one attempt at a claimed execution and records it. Returns when the next
    /// attempt is due, if a retry was recorded, so that the service can wake up for it.
    pub(crate) async fn deliver(self: Arc<Self>, claimed: ClaimedExecution) -> Option<Timestamp> {
        let attempt = claimed.attempt_count.saturating_add(1);
        let span = tracing::info_span!(
            "delivery_attempt",
            execution.id = %claimed.id,
            integration.id = claimed.integration_id.map(tracing::field::display),
            attempt,
        );
        self.attempt_and_record(claimed, attempt).instrument(span).await
    }

    async fn attempt_and_record(&self, claimed: ClaimedExecution, attempt: i64) -> Option<Timestamp> {
        let started_at = Timestamp::now();
        let clock = Instant::now();
        let outcome = match self.attempt(&claimed).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(
                    %error,
                    "store failed while preparing a delivery attempt; the execution is tried again when its claim lapses"
                );
                return None;
            }
        };
        let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);

        let next = self.next_step(&outcome, attempt);
        log_outcome(&outcome, next, duration_ms);

        let succeeded = outcome.failure.is_none();
        let record = AttemptRecord {
            execution_id: claimed.id,
            claim_token: claimed.claim_token,
            attempt: Attempt {
                number: attempt,
                started_at,
                duration_ms,
                status_code: outcome.status_code.map(i64::from),
                response_body: outcome.response_body,
                error: outcome.failure.map(|failure| failure.message),
                succeeded,
            },
            next,
        };
        if let Err(error) = self.store.record_attempt(record).await {
            tracing::error!(
                %error,
                "failed to record a delivery attempt; the execution is tried again when its claim lapses"
            );
            return None;
        }
        match next {
            AttemptNext::RetryAt(at) => Some(at),
            AttemptNext::Succeeded | AttemptNext::Failed => None,
        }
    }

    async fn attempt(&self, claimed: &ClaimedExecution) -> StoreResult<Outcome> {
        let (Some(integration_id), Some(body)) = (claimed.integration_id, claimed.request_body.as_deref()) else {
            return Ok(Outcome::failed(Failure::permanent(
                "no_request",
                "the execution has no integration or no request body, so there is nothing to send",
            )));
        };
        let Some(integration) = self.store.integration(integration_id).await? else {
            return Ok(Outcome::failed(Failure::permanent(
                "integration_deleted",
                format!("integration deleted: integration {integration_id} no longer exists"),
            )));
        };

        let secrets = match self.open_secrets(&integration).await? {
            Ok(secrets) => secrets,
            Err(failure) => return Ok(Outcome::failed(failure)),
        };
        let redactor = secrets.redactor();
        let headers = match request_headers(claimed.id, &secrets, body.as_bytes()) {
            Ok(headers) => headers,
            Err(failure) => return Ok(Outcome::failed(failure)),
        };

        let result = client::post(
            &self.client,
            &self.network,
            &integration.url,
            headers,
            body.as_bytes().to_vec(),
            self.settings.timeout,
        )
        .await;
        Ok(outcome_of(result, &redactor))
    }

    async fn open_secrets(&self, integration: &Integration) -> StoreResult<Result<OpenedSecrets, Failure>> {
        let mut secrets = OpenedSecrets { access_token: None, signing_secret: None };
        if let Some(id) = integration.access_token_secret_id {
            match self.open_secret(id, "access-token").await? {
                Ok(value) => secrets.access_token = Some((id, value)),
                Err(failure) => return Ok(Err(failure)),
            }
        }
        if let Some(id) = integration.signing_secret_id {
            match self.open_secret(id, "signing").await? {
                Ok(value) => secrets.signing_secret = Some(value),
                Err(failure) => return Ok(Err(failure)),
            }
        }
        Ok(Ok(secrets))
    }

    async fn open_secret(&self, id: SecretId, role: &str) -> StoreResult<Result<Vec<u8>, Failure>> {
        let Some(sealed) = self.store.sealed_secret(id).await? else {
            return Ok(Err(Failure::permanent(
                "secret",
                format!("the {role} secret {id} was not found; set the secret again or change the integration"),
            )));
        };
        Ok(self
            .secret_key
            .open(&sealed)
            .map_err(|error| Failure::permanent("secret", format!("the {role} secret {id} cannot be used: {error}"))))
    }

    fn next_step(&self, outcome: &Outcome, attempt: i64) -> AttemptNext {
        let Some(failure) = &outcome.failure else {
            return AttemptNext::Succeeded;
        };
        if !failure.retryable {
            return AttemptNext::Failed;
        }
        let delay = retry::next_delay(
            &self.settings.retry_schedule,
            attempt,
            outcome.retry_after,
            retry::random_jitter_factor(),
        );
        match delay {
            Some(delay) => AttemptNext::RetryAt(Timestamp::now().plus(delay)),
            None => AttemptNext::Failed,
        }
    }
}

/// Builds the headers of one attempt. `webhook-id` and `webhook-timestamp` go on every
/// attempt, so that receivers can drop duplicates even without a signing secret. The
/// signature headers are added only when the integration has a signing secret.
fn request_headers(id: ExecutionId, secrets: &OpenedSecrets, body: &[u8]) -> Result<HeaderMap, Failure> {
    let id = id.to_string();
    let timestamp = Timestamp::now().unix_seconds();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HeaderName::from_static(signing::WEBHOOK_ID), text_header(&id));
    headers.insert(HeaderName::from_static(signing::WEBHOOK_TIMESTAMP), text_header(&timestamp.to_string()));

    if let Some((secret_id, token)) = &secrets.access_token {
        let mut value = HeaderValue::from_bytes(&[b"Bearer ".as_slice(), token].concat()).map_err(|_| {
            Failure::permanent(
                "secret",
                format!(
                    "the access-token secret {secret_id} contains characters that an HTTP header cannot carry, such \
                     as line breaks; store the token without them"
                ),
            )
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }

    if let Some(secret) = &secrets.signing_secret {
        let key = SigningKey::from_secret(secret).map_err(|error| Failure::permanent("secret", error.to_string()))?;
        let signatures = signing::sign(&key, &id, timestamp, body);
        headers.insert(HeaderName::from_static(signing::X_WANDB_SIGNATURE), text_header(&signatures.x_wandb_signature));
        headers.insert(HeaderName::from_static(signing::WEBHOOK_SIGNATURE), text_header(&signatures.webhook_signature));
    }
    Ok(headers)
}

/// Makes a header value from text that is known to be valid: an id, digits or base64.
fn text_header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Turns the result of sending into an outcome, redacting what will be stored.
fn outcome_of(result: Result<ReceivedResponse, SendError>, redactor: &Redactor) -> Outcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            // A URL that is invalid or names a rejected address stays so until someone
            // changes the integration or the allowed networks, so retrying cannot help.
            let retryable = !matches!(error, SendError::Guard(_));
            let failure =
                Failure { class: error.class(), message: redactor.redact_text(&error.to_string()), retryable };
            return Outcome::failed(failure);
        }
    };

    let status = response.status;
    let body = redactor.redact_response_body(&response.body, response.body_truncated, MAX_STORED_RESPONSE_BYTES);
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            response.retry_after.as_deref().and_then(|value| retry::parse_retry_after(value, SystemTime::now()))
        }
        _ => None,
    };
    let failure = failure_for_status(status, response.location.as_deref(), redactor);
    Outcome { status_code: Some(status.as_u16()), response_body: Some(body), failure, retry_after }
}

fn failure_for_status(status: StatusCode, location: Option<&str>, redactor: &Redactor) -> Option<Failure> {
    if status.is_success() {
        return None;
    }
    if status == StatusCode::GONE {
        return Some(Failure::permanent(
            "gone",
            "the receiver responded 410 Gone, which means the endpoint no longer exists; no further attempts are made",
        ));
    }
    let message = if status.is_redirection() {
        let location = location.map_or_else(|| "no Location header".to_owned(), |location| format!("{location:?}"));
        format!(
            "the receiver responded {status} with a redirect to {location}, which is not followed; point the \
             integration at the final URL"
        )
    } else {
        format!("the receiver responded {status}")
    };
    let class = if status.is_redirection() { "redirect" } else { "http_status" };
    Some(Failure { class, message: redactor.redact_text(&message), retryable: true })
}

fn log_outcome(outcome: &Outcome, next: AttemptNext, duration_ms: i64) {
    match (&outcome.failure, next) {
        (None, _) => tracing::debug!(status = outcome.status_code, duration_ms, "delivered"),
        (Some(failure), next) => {
            tracing::info!(
                error.class = failure.class,
                error = %failure.message,
                status = outcome.status_code,
                duration_ms,
                "delivery attempt failed"
            );
            match next {
                AttemptNext::RetryAt(at) => {
                    let retry_in_ms = at.millis().saturating_sub(Timestamp::now().millis());
                    tracing::debug!(retry_in_ms, retry_at = %at, "retry scheduled");
                }
                AttemptNext::Failed => tracing::info!("execution failed; no further attempts are made"),
                AttemptNext::Succeeded => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::network::GuardError;

    #[test]
    fn send_errors_have_class_and_retry() {
        let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let cases = [
            (SendError::Guard(GuardError::InvalidUrl { url: "x".into(), reason: "y".into() }), "invalid_url", false),
            (
                SendError::Guard(GuardError::AddressNotAllowed { address, suggestion: "z".into() }),
                "network_policy",
                false,
            ),
            (SendError::Rejected("hooks.test resolves only to rejected addresses".into()), "network_policy", true),
            (SendError::Dns("failed to resolve hooks.test: no such host".into()), "dns", true),
            (SendError::Timeout(Duration::from_secs(1)), "timeout", true),
            (SendError::Connect("connection refused".into()), "connect", true),
            (SendError::Request("connection reset".into()), "request", true),
        ];
        for (error, class, retryable) in cases {
            let message = error.to_string();
            let failure = outcome_of(Err(error), &Redactor::default()).failure.expect("a failure");
            assert_eq!(failure.class, class, "{message}");
            assert_eq!(failure.retryable, retryable, "{message}");
            assert_eq!(failure.message, message);
        }
    }
}
