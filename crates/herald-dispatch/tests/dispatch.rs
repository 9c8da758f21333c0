//! End-to-end tests of the dispatcher: executions recorded by the real evaluator in a real
//! SQLite store, delivered by the real service to real HTTP receivers on 127.0.0.1.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::Timestamp;
use herald_core::model::ExecutionState;
use herald_dispatch::network::NetworkPolicy;
use herald_dispatch::sealing::SecretKey;
use herald_dispatch::signing::{self, SigningKey};
use herald_store::{Attempt, AttemptNext, AttemptRecord, Store};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use support::receiver::{Received, Receiver, Reply};
use support::{Fixture, Service, fast_settings, loopback};

const WAIT: Duration = Duration::from_secs(5);

fn now_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn seconds_at(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Computes base64 HMAC-SHA256 without the crate's signing code.
fn independent_hmac(key: &[u8], message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks both signatures of a request with the crate's verifier and by recomputing them.
fn assert_signed(request: &Received, key_bytes: &[u8], secret: &str) {
    let id = request.header("webhook-id");
    let timestamp = request.header("webhook-timestamp");
    let signature = request.header("webhook-signature");
    let wandb_signature = request.header("x-wandb-signature");

    let key = SigningKey::from_secret(secret.as_bytes()).unwrap();
    assert_eq!(signing::verify(&key, id, timestamp, &request.body, signature, now_seconds()), Ok(()));
    assert_eq!(signing::verify_wandb_signature(&key, &request.body, wandb_signature), Ok(()));

    let mut signed_content = format!("{id}.{timestamp}.").into_bytes();
    signed_content.extend_from_slice(&request.body);
    assert_eq!(signature, format!("v1,{}", independent_hmac(key_bytes, &signed_content)));
    assert_eq!(wandb_signature, independent_hmac(key_bytes, &request.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_exact_body_with_token_and_signatures() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let key_bytes: Vec<u8> = (0u8..32).collect();
    let secret = format!("whsec_{}", STANDARD.encode(&key_bytes));
    let integration = fixture.integration(&receiver.url, Some("tok-abc.123"), Some(&secret)).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[]), loopback());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    service.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/hook");
    assert_eq!(request.body.as_ref(), execution.request_body.as_deref().unwrap().as_bytes());
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("user-agent"), format!("Herald/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(request.header("authorization"), "Bearer tok-abc.123");
    assert_eq!(request.header("webhook-id"), fired.execution.to_string());
    assert_signed(request, &key_bytes, &secret);

    let attempts = fixture.attempts(fired.execution).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(200));
    assert_eq!(attempts[0].response_body.as_deref(), Some("ok"));
    assert_eq!(attempts[0].error, None);
    assert!(attempts[0].succeeded);
    assert_eq!(execution.attempt_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_signing_secret_keys_with_its_bytes() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(204)).await;
    let integration = fixture.integration(&receiver.url, None, Some("plain secret")).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[]), loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    service.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_signed(&received[0], b"plain secret", "plain secret");
    assert!(received[0].headers.get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_delivery_still_carries_id_and_timestamp() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[]), loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    service.stop().await;

    let request = &receiver.received()[0];
    assert_eq!(request.header("webhook-id"), fired.execution.to_string());
    let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
    assert!((timestamp - seconds_at(request.at)).abs() <= 1, "timestamp {timestamp} is not the attempt's time");
    assert!(request.headers.get("webhook-signature").is_none());
    assert!(request.headers.get("x-wandb-signature").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_id_and_renew_timestamp() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    receiver.script([Reply::Status(500)]);
    let integration = fixture.integration(&receiver.url, None, Some("retry-secret")).await;
    let fired = fixture.fire(&integration).await;
    // The jittered delay is at least 1.2 s, so the two attempts fall in different seconds.
    let service = Service::start(&fixture, fast_settings(&[1500]), loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    service.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let id = fired.execution.to_string();
    for request in &received {
        assert_eq!(request.header("webhook-id"), id);
        let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
        assert!((timestamp - seconds_at(request.at)).abs() <= 1, "timestamp {timestamp} is not the attempt's time");
        assert_signed(request, b"retry-secret", "retry-secret");
    }
    let first: i64 = received[0].header("webhook-timestamp").parse().unwrap();
    let second: i64 = received[1].header("webhook-timestamp").parse().unwrap();
    assert!(second > first, "the retry reused timestamp {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_schedule_then_fail() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(500)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let schedule = [100, 200, 300];
    let service = Service::start(&fixture, fast_settings(&schedule), loopback());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 4, "one attempt plus one per schedule entry");
    for (pair, scheduled_ms) in received.windows(2).zip(schedule) {
        let gap = pair[1].at.duration_since(pair[0].at).unwrap();
        let earliest = Duration::from_millis(scheduled_ms * 8 / 10);
        assert!(gap >= earliest, "retry after {gap:?}, scheduled {scheduled_ms} ms less 20%");
    }

    let attempts: Vec<Attempt> = fixture.attempts(fired.execution).await;
    assert_eq!(attempts.iter().map(|attempt| attempt.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
    for attempt in &attempts {
        assert_eq!(attempt.status_code, Some(500));
        assert!(!attempt.succeeded);
        let error = attempt.error.as_deref().unwrap();
        assert!(error.contains("500 Internal Server Error"), "{error}");
    }
    assert_eq!(execution.attempt_count, 4);
    assert_eq!(execution.last_status_code, Some(500));
    assert_eq!(execution.next_attempt_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_clamp() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    receiver.script([Reply::RetryAfter { status: 429, value: "2".into() }]);
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[400]), loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    service.stop().await;

    // The scheduled delay is 320-480 ms after jitter. Retry-After requests 2 s, which is
    // clamped to twice the jittered delay: 640-960 ms.
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at.duration_since(received[0].at).unwrap();
    assert!(gap >= Duration::from_millis(620), "Retry-After was ignored: retried after {gap:?}");
    assert!(gap < Duration::from_millis(1500), "Retry-After was not clamped: retried after {gap:?}");
    let attempts = fixture.attempts(fired.execution).await;
    assert_eq!(attempts[0].status_code, Some(429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_is_not_followed() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    receiver.script([Reply::Redirect("/elsewhere".into())]);
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[]), loopback());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 1, "the redirect was followed");
    assert_eq!(received[0].path, "/hook");
    assert_eq!(execution.last_status_code, Some(301));
    let error = execution.last_error.unwrap();
    assert!(error.contains("\"/elsewhere\""), "{error}");
    assert!(error.contains("not followed"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_secrets_are_redacted() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Echo(302)).await;
    let token = "tok-echo-7f3a9c";
    let integration = fixture.integration(&receiver.url, Some(token), Some("sign-echo-55e1")).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[]), loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    assert_eq!(receiver.received()[0].header("authorization"), format!("Bearer {token}"));
    let attempts = fixture.attempts(fired.execution).await;
    let body = attempts[0].response_body.as_deref().unwrap();
    let error = attempts[0].error.as_deref().unwrap();
    assert!(body.contains("Bearer [REDACTED]"), "{body}");
    assert!(error.contains("Bearer [REDACTED]"), "{error}");
    for stored in [body, error] {
        assert!(!stored.contains(token), "the token was stored: {stored}");
        assert!(!stored.contains("sign-echo-55e1"), "the signing secret was stored: {stored}");
    }
    let execution = fixture.execution(fired.execution).await;
    assert!(!execution.last_error.unwrap().contains(token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_echoes_of_token_are_redacted() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::EchoEncoded(400)).await;
    // A token outside ASCII and beyond U+FFFF, which Python's json.dumps writes as \u escapes
    // and surrogate pairs.
    let token = "tök-SECRET-✓-𝄞";
    let integration = fixture.integration(&receiver.url, Some(token), None).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[]), loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    let sent = receiver.received()[0].headers.get("authorization").unwrap().as_bytes().to_vec();
    assert_eq!(sent, format!("Bearer {token}").into_bytes());
    let attempts = fixture.attempts(fired.execution).await;
    assert_eq!(attempts[0].status_code, Some(400));
    // "Bearer " fills two base64 groups and one byte of the third, so the token starts at
    // character 10, whose bits all come from the token, and ends at the end of the data.
    let expected = "base64=QmVhcmVyIH[REDACTED]\n\
                    base64url=QmVhcmVyIH[REDACTED]\n\
                    json=\"Bearer [REDACTED]\"\n\
                    form=Bearer+[REDACTED]\n";
    assert_eq!(attempts[0].response_body.as_deref(), Some(expected));
}

/// A log destination that keeps everything written to it.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The single-threaded runtime keeps every task of the service on this thread, where the
// capturing subscriber is installed.
#[tokio::test(flavor = "current_thread")]
async fn logs_hold_no_secret_values() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Echo(500)).await;
    receiver.script([Reply::Echo(302)]);
    let integration = fixture.integration(&receiver.url, Some("tok-log-91c2"), Some("sign-log-4d7e")).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[20]), loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("delivery attempt failed"), "the logs were not captured: {text}");
    assert!(text.contains(&fired.execution.to_string()), "the attempt span has no execution id");
    assert!(!text.contains("tok-log-91c2"), "a log line contains the access token");
    assert!(!text.contains("sign-log-4d7e"), "a log line contains the signing secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_receiver_times_out() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Hang).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let mut settings = fast_settings(&[]);
    settings.timeout = Duration::from_millis(300);
    let service = Service::start(&fixture, settings, loopback());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    assert_eq!(receiver.count(), 1);
    let attempts = fixture.attempts(fired.execution).await;
    assert_eq!(attempts[0].status_code, None);
    assert!((250..2000).contains(&attempts[0].duration_ms), "attempt took {} ms", attempts[0].duration_ms);
    let error = execution.last_error.unwrap();
    assert!(error.contains("timed out after 300ms"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_rejected_without_allowed_networks() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[50, 50]), NetworkPolicy::default());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    assert_eq!(receiver.count(), 0, "a request reached the receiver");
    let attempts = fixture.attempts(fired.execution).await;
    assert_eq!(attempts.len(), 1, "a rejected address is not retried");
    assert_eq!(attempts[0].status_code, None);
    let error = execution.last_error.unwrap();
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(error.contains("HERALD_DELIVERY_ALLOWED_NETWORKS"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_name_resolves_through_guard() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let url = format!("http://localhost:{}/hook", receiver.address.port());
    let integration = fixture.integration(&url, None, None).await;
    let fired = fixture.fire(&integration).await;
    // Only 127.0.0.1 is allowed, so the resolver must drop ::1 if localhost has it.
    let policy = NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.1/32").unwrap());
    let service = Service::start(&fixture, fast_settings(&[]), policy);

    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    service.stop().await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_endpoint_does_not_delay_healthy_one() {
    let fixture = Fixture::new().await;
    let dead = Receiver::start(Reply::Hang).await;
    let healthy = Receiver::start(Reply::Status(200)).await;
    let dead_integration = fixture.integration(&dead.url, None, None).await;
    let healthy_integration = fixture.integration(&healthy.url, None, None).await;
    let stuck = fixture.fire(&dead_integration).await;
    let fine = fixture.fire(&healthy_integration).await;
    let mut settings = fast_settings(&[]);
    settings.timeout = Duration::from_secs(3);
    settings.batch_size = 1;
    let service = Service::start(&fixture, settings, loopback());

    fixture.wait_for_state(fine.execution, ExecutionState::Succeeded, Duration::from_secs(1)).await;
    assert_eq!(dead.count(), 1, "the dead endpoint's attempt did not start first");
    let stuck_execution = fixture.execution(stuck.execution).await;
    assert_eq!(stuck_execution.state, ExecutionState::Delivering);
    assert!(fixture.attempts(stuck.execution).await.is_empty());

    fixture.wait_for_state(stuck.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_pending_retry() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    receiver.script([Reply::Status(503)]);
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;

    let first = Service::start(&fixture, fast_settings(&[400]), loopback());
    fixture.wait_for_attempts(fired.execution, 1, WAIT).await;
    first.stop().await;
    let pending = fixture.execution(fired.execution).await;
    assert_eq!(pending.state, ExecutionState::Pending);
    assert!(pending.next_attempt_at.is_some());
    assert_eq!(receiver.count(), 1);

    let second = Service::start(&fixture, fast_settings(&[400]), loopback());
    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    second.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("webhook-id"), received[1].header("webhook-id"));
    let statuses: Vec<_> = fixture.attempts(fired.execution).await.iter().map(|attempt| attempt.status_code).collect();
    assert_eq!(statuses, [Some(503), Some(200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapsed_lease_is_reclaimed() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;

    // A dispatcher claims the execution and crashes before recording an attempt.
    let lease = Duration::from_millis(300);
    let claimed_at = SystemTime::now();
    let crashed = fixture.store.claim_due_executions(Timestamp::now(), 10, lease, &[]).await.unwrap();
    assert_eq!(crashed.len(), 1);
    assert_eq!(fixture.execution(fired.execution).await.state, ExecutionState::Delivering);

    let service = Service::start(&fixture, fast_settings(&[]), loopback());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(receiver.count(), 0, "the execution was delivered while another dispatcher held it");
    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, WAIT).await;
    service.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].at.duration_since(claimed_at).unwrap() >= lease);
    assert_eq!(fixture.attempts(fired.execution).await.len(), 1);

    // The crashed dispatcher's late record does not overwrite the outcome.
    let late = AttemptRecord {
        execution_id: fired.execution,
        claim_token: crashed[0].claim_token.clone(),
        attempt: Attempt {
            number: 1,
            started_at: Timestamp::now(),
            duration_ms: 1,
            status_code: Some(500),
            response_body: None,
            error: Some("late".into()),
            succeeded: false,
        },
        next: AttemptNext::Failed,
    };
    fixture.store.record_attempt(late).await.unwrap();
    assert_eq!(fixture.execution(fired.execution).await.state, ExecutionState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_attempt_in_flight() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Delay(Duration::from_millis(400))).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[]), loopback());

    while receiver.count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.stop().await;

    let execution = fixture.execution(fired.execution).await;
    assert_eq!(execution.state, ExecutionState::Succeeded);
    assert_eq!(fixture.attempts(fired.execution).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_receiver_fails_at_once() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(410)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let service = Service::start(&fixture, fast_settings(&[50, 50]), loopback());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    assert_eq!(receiver.count(), 1);
    assert_eq!(execution.attempt_count, 1);
    assert!(execution.last_error.unwrap().contains("410 Gone"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_integration_fails_execution() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    fixture.store.delete_automation(fired.automation).await.unwrap();
    fixture.store.delete_integration(integration.id).await.unwrap();
    let service = Service::start(&fixture, fast_settings(&[50]), loopback());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    assert_eq!(receiver.count(), 0);
    assert_eq!(execution.attempt_count, 1);
    assert!(execution.last_error.unwrap().contains("integration deleted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_sealed_with_other_key_fails_clearly() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let foreign = fixture.sealed_secret("foreign", SecretKey::generate().seal(b"tok-foreign")).await;
    let broken = fixture
        .store
        .create_integration(herald_store::NewIntegration {
            entity_id: fixture.team.id,
            name: "broken".into(),
            url: integration.url.clone(),
            access_token_secret_id: Some(foreign),
            signing_secret_id: None,
        })
        .await
        .unwrap();
    let fired = fixture.fire(&broken).await;
    let service = Service::start(&fixture, fast_settings(&[50]), loopback());

    let execution = fixture.wait_for_state(fired.execution, ExecutionState::Failed, WAIT).await;
    service.stop().await;

    assert_eq!(receiver.count(), 0);
    assert_eq!(execution.attempt_count, 1);
    let error = execution.last_error.unwrap();
    assert!(error.contains(&format!("access-token secret {foreign}")), "{error}");
    assert!(error.contains("sealed with another secret key"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_starts_delivery_before_poll() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    let integration = fixture.integration(&receiver.url, None, None).await;
    let mut settings = fast_settings(&[]);
    settings.poll_interval = Duration::from_secs(10);
    let service = Service::start(&fixture, settings, loopback());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let fired = fixture.fire(&integration).await;
    service.wake.notify_one();
    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, Duration::from_secs(2)).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_retry_does_not_wait_for_poll() {
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Reply::Status(200)).await;
    receiver.script([Reply::Status(500)]);
    let integration = fixture.integration(&receiver.url, None, None).await;
    let fired = fixture.fire(&integration).await;
    let mut settings = fast_settings(&[100]);
    settings.poll_interval = Duration::from_secs(10);
    let service = Service::start(&fixture, settings, loopback());

    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, Duration::from_secs(2)).await;
    service.stop().await;

    let received = receiver.received();
    let gap = received[1].at.duration_since(received[0].at).unwrap();
    assert!(gap < Duration::from_millis(500), "the retry waited {gap:?}");
}

/// Polls until `receiver` has seen `count` requests, and fails the test after `within`.
async fn wait_for_requests(receiver: &Receiver, count: usize, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while receiver.count() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} requests after {within:?}, expected {count}",
            receiver.count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Returns how many of `ids` are in each state, as (pending, delivering).
async fn pending_and_delivering(fixture: &Fixture, ids: &[herald_core::ids::ExecutionId]) -> (usize, usize) {
    let mut counts = (0, 0);
    for id in ids {
        match fixture.execution(*id).await.state {
            ExecutionState::Pending => counts.0 += 1,
            ExecutionState::Delivering => counts.1 += 1,
            other => panic!("execution {id} is {other}"),
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_integration_leaves_slots_to_others() {
    let fixture = Fixture::new().await;
    let hanging = Receiver::start(Reply::Hang).await;
    let fast = Receiver::start(Reply::Status(200)).await;
    let hanging_integration = fixture.integration(&hanging.url, None, None).await;
    let fast_integration = fixture.integration(&fast.url, None, None).await;
    let mut backlog = Vec::new();
    for _ in 0..20 {
        backlog.push(fixture.fire(&hanging_integration).await.execution);
    }
    let mut settings = fast_settings(&[]);
    settings.per_integration_concurrency = 2;
    settings.timeout = Duration::from_secs(5);
    settings.lease = Duration::from_secs(15);
    settings.shutdown_grace = Duration::from_millis(200);
    let service = Service::start(&fixture, settings, loopback());
    wait_for_requests(&hanging, 2, WAIT).await;

    let fired = fixture.fire(&fast_integration).await;
    service.wake.notify_one();
    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, Duration::from_secs(1)).await;

    assert_eq!(hanging.count(), 2, "the hanging receiver got more attempts than its cap");
    assert_eq!(
        pending_and_delivering(&fixture, &backlog).await,
        (18, 2),
        "executions beyond the cap were claimed instead of staying due"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_integration_resumes_without_poll() {
    let fixture = Fixture::new().await;
    let slow = Receiver::start(Reply::Delay(Duration::from_millis(200))).await;
    let integration = fixture.integration(&slow.url, None, None).await;
    let mut backlog = Vec::new();
    for _ in 0..4 {
        backlog.push(fixture.fire(&integration).await.execution);
    }
    let mut settings = fast_settings(&[]);
    settings.per_integration_concurrency = 1;
    settings.poll_interval = Duration::from_secs(10);
    let service = Service::start(&fixture, settings, loopback());

    // Four attempts of 200 ms one after another, with no poll in between.
    for id in &backlog {
        fixture.wait_for_state(*id, ExecutionState::Succeeded, Duration::from_secs(3)).await;
    }
    service.stop().await;

    let received = slow.received();
    assert_eq!(received.len(), 4);
    for pair in received.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at).unwrap();
        assert!(gap >= Duration::from_millis(190), "two attempts overlapped, {gap:?} apart");
        assert!(gap < Duration::from_millis(700), "the next attempt waited {gap:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_beside_capped_backlog_is_on_time() {
    let fixture = Fixture::new().await;
    let hanging = Receiver::start(Reply::Hang).await;
    let flaky = Receiver::start(Reply::Status(200)).await;
    flaky.script([Reply::Status(500)]);
    let hanging_integration = fixture.integration(&hanging.url, None, None).await;
    let flaky_integration = fixture.integration(&flaky.url, None, None).await;
    for _ in 0..3 {
        fixture.fire(&hanging_integration).await;
    }
    let mut settings = fast_settings(&[300]);
    settings.per_integration_concurrency = 1;
    settings.poll_interval = Duration::from_secs(10);
    settings.timeout = Duration::from_secs(5);
    settings.lease = Duration::from_secs(15);
    settings.shutdown_grace = Duration::from_millis(200);
    let service = Service::start(&fixture, settings, loopback());
    wait_for_requests(&hanging, 1, WAIT).await;

    let fired = fixture.fire(&flaky_integration).await;
    service.wake.notify_one();
    fixture.wait_for_state(fired.execution, ExecutionState::Succeeded, Duration::from_secs(2)).await;
    service.stop().await;

    let received = flaky.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at.duration_since(received[0].at).unwrap();
    assert!(gap < Duration::from_millis(800), "the retry waited {gap:?} for a poll");
    assert_eq!(hanging.count(), 1, "the hanging receiver got more attempts than its cap");
}
