//! End to end, as a new user would do it: the real `herald serve`, the CLI, the unmodified
//! wandb 0.31.0 SDK, and a webhook receiver on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::time::Duration;

use herald_core::model::RunState;
use herald_store::Store;
use serde_json::{Value, json};
use support::{ADMIN_KEY, Herald, Receiver, run_scenario, scenario_result};

/// The losses of the quickstart. The average of 3 first drops below 0.2 at the fifth value:
/// (0.3 + 0.1 + 0.05) / 3.
const LOSSES: &str = "[1.0, 0.5, 0.3, 0.1, 0.05, 0.02, 0.01]";

/// The bearer token the receiver expects.
const TOKEN: &str = "receiver-token-7f3a";

/// Sets up team `ml`, the secret, the webhook integration `ci` and the automation `loss-low`
/// with the CLI, exactly as the README's quickstart does.
fn quickstart_setup(herald: &Herald, receiver: &Receiver, work: &std::path::Path) {
    herald.cli_ok(&["team", "create", "ml"]);
    let output =
        herald.cli_with_input(&["secret", "set", "--team", "ml", "RECEIVER_TOKEN"], Some(&format!("{TOKEN}\n")));
    assert!(output.status.success(), "secret set: {}", String::from_utf8_lossy(&output.stderr));
    herald.cli_ok(&[
        "integration",
        "webhook",
        "create",
        "--team",
        "ml",
        "--name",
        "ci",
        "--url",
        &receiver.url,
        "--access-token-secret",
        "RECEIVER_TOKEN",
    ]);

    let automation = json!({
        "name": "loss-low",
        "description": "optional",
        "scope": {"type": "PROJECT", "entity": "ml", "project": "demo"},
        "event": {"type": "RUN_METRIC",
                  "threshold_filter": {"name": "loss", "agg_op": "AVERAGE", "window_size": 3,
                                       "cmp_op": "$lt", "threshold": 0.2}},
        "action": {"type": "GENERIC_WEBHOOK", "integration": "ci",
                   "request_payload": {"text": "${run_name}: ${metric_name}=${metric_value}"}},
        "enabled": true,
        "cooldown_seconds": 0
    });
    let file = work.join("automation.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&automation).unwrap()).unwrap();
    herald.cli_ok(&["automation", "create", "-f", file.to_str().unwrap()]);
}

/// Runs the quickstart's script and checks what the receiver got, the execution history and
/// the stored run. `store` reads the server's store directly.
async fn check_quickstart(herald: &Herald, receiver: &Receiver, work: &std::path::Path, store: Arc<dyn Store>) {
    let output =
        run_scenario(&herald.url, ADMIN_KEY, "log_metrics.py", &["ml", "demo", LOSSES, "--name", "exp-1"], work);
    let result = scenario_result(&output);
    let run_id = result["run_id"].as_str().expect("run id").to_owned();

    // Exactly one POST, even after the run went on below the threshold.
    let received = receiver.wait_for(1, Duration::from_secs(20));
    assert_eq!(received.len(), 1, "expected one delivery; server log:\n{}", herald.log());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.requests.lock().unwrap().len(), 1, "a second delivery arrived");

    let request = &received[0];
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["authorization"], format!("Bearer {TOKEN}").as_str());
    let body: Value = serde_json::from_slice(&request.body).expect("the body is JSON");
    let expected_value = (0.3_f64 + 0.1 + 0.05) / 3.0;
    assert_eq!(body, json!({"text": format!("exp-1: loss={expected_value:?}")}));

    // The execution is listed as succeeded.
    let listed: Value =
        serde_json::from_str(&herald.cli_ok(&["execution", "list", "--automation", "loss-low", "--json"]))
            .expect("execution list --json prints JSON");
    let executions = listed.as_array().or_else(|| listed["items"].as_array()).expect("a list of executions").clone();
    assert_eq!(executions.len(), 1, "{listed}");
    assert_eq!(executions[0]["state"], "succeeded", "{listed}");
    assert_eq!(executions[0]["last_status_code"], 200, "{listed}");

    // The run is FINISHED in the store, with all seven history rows.
    let entity = store.entity_by_name("ml").await.unwrap().expect("entity ml");
    let project = store.project_by_name(entity.id, "demo").await.unwrap().expect("project ml/demo");
    let run = store.run_by_name(project.id, &run_id).await.unwrap().expect("the run");
    assert_eq!(run.state, RunState::Finished);
    assert_eq!(run.display_name, "exp-1");
    let history = store.history(run.id, 0, 100).await.unwrap();
    assert_eq!(history.len(), 7);
}

#[test]
fn quickstart_fires_one_webhook_on_sqlite() {
    let work = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let herald = Herald::start(&work.path().join("data"), &[], &[]);
    quickstart_setup(&herald, &receiver, work.path());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let options = herald_store_sqlite::SqliteOptions::new(work.path().join("data/herald.db"));
        let store: Arc<dyn Store> = Arc::new(herald_store_sqlite::SqliteStore::open(options).unwrap());
        check_quickstart(&herald, &receiver, work.path(), store).await;
    });
}

#[test]
fn quickstart_fires_one_webhook_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(herald_store_tests::postgres::TestDatabase::create());

    let work = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let herald = Herald::start(&work.path().join("data"), &["--database-url", database.url()], &[]);
    quickstart_setup(&herald, &receiver, work.path());

    runtime.block_on(async {
        let store: Arc<dyn Store> =
            Arc::new(herald_store_postgres::PostgresStore::connect(database.url(), 2).await.unwrap());
        check_quickstart(&herald, &receiver, work.path(), store).await;
    });
    drop(herald);
    runtime.block_on(database.drop_database());
}

#[test]
fn wrong_api_key_fails_init_and_stores_nothing() {
    let work = tempfile::tempdir().unwrap();
    let herald = Herald::start(&work.path().join("data"), &[], &[]);
    herald.cli_ok(&["team", "create", "ml"]);

    let wrong_key = "0000000000000000000000000000000000000000";
    let output = run_scenario(&herald.url, wrong_key, "log_metrics.py", &["ml", "demo", "[1.0]"], work.path());
    assert!(!output.status.success(), "wandb.init succeeded with a wrong key");
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(
        stderr.contains("invalid api key") || stderr.contains("unauthorized"),
        "the SDK did not report an authorization error:\n{stderr}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let options = herald_store_sqlite::SqliteOptions::new(work.path().join("data/herald.db"));
        let store = herald_store_sqlite::SqliteStore::open(options).unwrap();
        let entity = store.entity_by_name("ml").await.unwrap().expect("entity ml");
        assert!(store.project_by_name(entity.id, "demo").await.unwrap().is_none(), "a project was created");
        assert!(store.list_projects(None).await.unwrap().is_empty());
    });
}

/// Reads the SDK's own log of a run and returns its ERROR lines. The SDK prints "Synced" and
/// exits 0 even when uploads failed, so this is where silent failures show.
fn sdk_errors(run_dir: &str) -> Vec<String> {
    let log = std::path::Path::new(run_dir).parent().expect("run directory").join("logs/debug-internal.log");
    let text = std::fs::read_to_string(&log).unwrap_or_else(|error| panic!("no SDK log at {}: {error}", log.display()));
    text.lines().filter(|line| line.contains("\"level\":\"ERROR\"")).map(str::to_owned).collect()
}

/// Opens the SQLite store of a running server.
fn open_sqlite(data_dir: &std::path::Path) -> herald_store_sqlite::SqliteStore {
    herald_store_sqlite::SqliteStore::open(herald_store_sqlite::SqliteOptions::new(data_dir.join("herald.db"))).unwrap()
}

#[test]
fn non_finite_values_resume_and_failure_are_stored() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let herald = Herald::start(&data_dir, &[], &[]);
    herald.cli_ok(&["team", "create", "vision"]);
    let sdk_dir = work.path().join("sdk");
    std::fs::create_dir_all(&sdk_dir).unwrap();
    let dir = sdk_dir.to_str().unwrap();

    let common = ["--entity", "vision", "--project", "e2e", "--id", "run00042", "--dir", dir];
    let first = run_scenario(
        &herald.url,
        ADMIN_KEY,
        "log_run.py",
        &[&common[..], &["--values", "0.9,nan,inf,-inf,0.3"]].concat(),
        work.path(),
    );
    let first = scenario_result(&first);
    assert!(sdk_errors(first["dir"].as_str().unwrap()).is_empty(), "the SDK logged errors");

    let resumed = [&common[..], &["--resume", "allow", "--values", "0.2,0.1", "--exit-code", "1"]].concat();
    let resumed = scenario_result(&run_scenario(&herald.url, ADMIN_KEY, "log_run.py", &resumed, work.path()));
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["starting_step"], 5);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = open_sqlite(&data_dir);
        let entity = store.entity_by_name("vision").await.unwrap().unwrap();
        let project = store.project_by_name(entity.id, "e2e").await.unwrap().unwrap();
        let run = store.run_by_name(project.id, "run00042").await.unwrap().unwrap();
        assert_eq!(run.state, RunState::Failed);
        assert_eq!(run.exit_code, Some(1));
        assert_eq!(run.tags, vec!["e2e".to_owned(), "herald".to_owned()]);
        assert_eq!(run.config.as_ref().unwrap()["lr"]["value"], 0.01);

        let history = store.history(run.id, 0, 100).await.unwrap();
        let losses: Vec<Value> =
            history.iter().map(|row| serde_json::from_str::<Value>(&row.data).unwrap()["loss"].clone()).collect();
        assert_eq!(
            losses,
            vec![json!(0.9), json!("NaN"), json!("Infinity"), json!("-Infinity"), json!(0.3), json!(0.2), json!(0.1)]
        );
        let steps: Vec<i64> = history.iter().map(|row| row.step).collect();
        assert_eq!(steps, (0..7).collect::<Vec<_>>());
        assert_eq!(run.summary.as_ref().unwrap()["best_loss"], 0.1);

        let files: Vec<String> =
            store.list_run_files(run.id).await.unwrap().into_iter().map(|file| file.name).collect();
        assert!(files.contains(&"config.yaml".to_owned()), "{files:?}");
    });
}

#[test]
fn init_fails_fast_for_unknown_entity_and_non_member() {
    let work = tempfile::tempdir().unwrap();
    let herald = Herald::start(&work.path().join("data"), &[], &[]);
    herald.cli_ok(&["team", "create", "vision"]);
    let created: Value =
        serde_json::from_str(&herald.cli_ok(&["user", "create", "outsider", "--json"])).expect("user JSON");
    let outsider_key = created["api_key"].as_str().expect("the new user's key").to_owned();

    let cases = [
        (ADMIN_KEY, "nosuchteam", "\"nosuchteam\" not found"),
        (outsider_key.as_str(), "vision", "not a member of \"vision\""),
    ];
    for (key, entity, expected) in cases {
        let started = std::time::Instant::now();
        let output =
            run_scenario(&herald.url, key, "log_run.py", &["--entity", entity, "--project", "e2e"], work.path());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().find(|line| line.contains("init_error"));
        let result: Value =
            serde_json::from_str(line.unwrap_or_else(|| panic!("wandb.init did not fail for {entity}: {stdout}")))
                .unwrap();
        let message = result["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "the SDK did not show Herald's message for {entity}: {message}");
        assert!(started.elapsed() < Duration::from_secs(30), "wandb.init took {:?} to fail", started.elapsed());
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = open_sqlite(&work.path().join("data"));
        assert!(store.list_projects(None).await.unwrap().is_empty(), "a project was created");
    });
}
