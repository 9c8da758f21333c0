//! The client subcommands of the `herald` binary, run as a child process against a Herald
//! server started in the test process (SQLite store in a temporary directory, evaluator
//! running, router on 127.0.0.1 with an ephemeral port).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::Timestamp;
use herald_dispatch::network::NetworkPolicy;
use herald_dispatch::sealing::SecretKey;
use herald_evaluator::service::ServiceSettings;
use herald_evaluator::{EvaluatorSettings, EventEvaluator};
use herald_server::auth::{api_key_hash, generate_api_key};
use herald_server::{AppState, ServerSettings};
use herald_store::{Bootstrap, FileStreamBatch, HistoryLine, RunUpsert, Store};
use herald_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A server in the test process. Dropping it stops the server.
struct Server {
    url: String,
    admin_key: String,
    state: AppState,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("herald.db"))).expect("SQLite store"));
        let admin_key = generate_api_key();
        let bootstrap = Bootstrap {
            organization: "herald".into(),
            admin_name: "admin".into(),
            admin_api_key_hash: api_key_hash(&admin_key),
        };
        store.bootstrap(bootstrap).await.expect("bootstrap");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let settings = ServerSettings {
            public_url: url.clone(),
            data_dir: dir.path().to_path_buf(),
            network: NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.0/8").expect("networks")),
            secret_key: SecretKey::generate(),
            max_request_bytes: 1 << 20,
        };
        let wake = Arc::new(Notify::new());
        let state = AppState::new(store.clone(), settings, wake.clone()).await.expect("state");
        let shutdown = CancellationToken::new();

        let evaluator = Arc::new(EventEvaluator::new(EvaluatorSettings { public_url: url.clone() }));
        let deliveries = Arc::new(Notify::new());
        let service = herald_evaluator::service::run(
            store.clone(),
            evaluator,
            ServiceSettings::default(),
            wake,
            deliveries,
            shutdown.clone(),
        );
        tokio::spawn(service);

        let router = herald_server::router(state.clone());
        let stop = shutdown.clone();
        tokio::spawn(
            async move { herald_server::serve(listener, router, async move { stop.cancelled().await }).await },
        );

        Self { url, admin_key, state, store, dir, shutdown }
    }

    /// Runs `herald ARGS` against this server as the admin.
    async fn herald(&self, args: &[&str]) -> Run {
        run(args, &[("HERALD_URL", Some(&self.url)), ("HERALD_API_KEY", Some(&self.admin_key))], None).await
    }

    /// Runs `herald ARGS` with `stdin` on standard input.
    async fn herald_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run(args, &[("HERALD_URL", Some(&self.url)), ("HERALD_API_KEY", Some(&self.admin_key))], Some(stdin)).await
    }

    /// Runs `herald ARGS` and asserts that it succeeded.
    async fn ok(&self, args: &[&str]) -> Run {
        let run = self.herald(args).await;
        assert!(run.success, "herald {args:?} failed: {}", run.stderr);
        run
    }

    /// Runs `herald ARGS --json` and parses what it prints.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let run = self.ok(&args).await;
        serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("herald {args:?} printed no JSON: {error}"))
    }

    /// Writes a file into the server's temporary directory and returns its path.
    fn write_file(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write file");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What a run of the binary printed and whether it succeeded.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the binary. Each `env` entry sets a variable, or removes it when `None`.
async fn run(args: &[&str], env: &[(&str, Option<&str>)], stdin: Option<&str>) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let mut child = command.spawn().expect("start herald");

    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or("").as_bytes()).await.expect("write stdin");
    drop(input);

    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("herald finished in time")
        .expect("herald output");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    let items = list["items"].as_array().expect("items");
    items.iter().map(|item| item[key].as_str().unwrap_or_default().to_owned()).collect()
}

const AUTOMATION_JSON: &str = r#"{
  "name": "loss-low",
  "scope": {"type": "PROJECT", "entity": "ml", "project": "demo"},
  "event": {"type": "RUN_METRIC",
            "threshold_filter": {"name": "loss", "agg_op": "AVERAGE", "window_size": 3, "cmp_op": "$lt", "threshold": 0.2}},
  "action": {"type": "GENERIC_WEBHOOK", "integration": "ci", "request_payload": {"text": "${run_name}"}},
  "cooldown_seconds": 0
}"#;

const AUTOMATION_YAML: &str = r#"
name: loss-high
scope: {type: PROJECT, entity: ml, project: demo}
event:
  type: RUN_METRIC
  threshold_filter: {name: loss, window_size: 1, cmp_op: $gt, threshold: 5}
action:
  type: NO_OP
"#;

/// Creates team `ml`, project `ml/demo` and webhook integration `ci` with the CLI.
async fn setup_team(server: &Server) {
    server.ok(&["team", "create", "ml"]).await;
    server.ok(&["project", "create", "ml/demo"]).await;
    server
        .ok(&["integration", "webhook", "create", "--team", "ml", "--name", "ci", "--url", "http://127.0.0.1:9/hook"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_create_and_list() {
    let server = Server::start().await;

    let created = server.ok(&["team", "create", "ml"]).await;
    assert!(created.stdout.contains("created team ml"), "{}", created.stdout);

    let listed = server.json(&["team", "list"]).await;
    assert_eq!(names(&listed, "name"), ["ml"]);
    let table = server.ok(&["team", "list"]).await;
    assert!(table.stdout.contains("NAME"), "{}", table.stdout);
    assert!(table.stdout.contains("ml"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_members() {
    let server = Server::start().await;
    server.ok(&["team", "create", "ml"]).await;

    let created = server.ok(&["user", "create", "alice"]).await;
    let key = created.stdout.split_whitespace().last().expect("the key").to_owned();
    assert_eq!(key.len(), 40, "{}", created.stdout);
    let whoami =
        run(&["whoami", "--json"], &[("HERALD_URL", Some(&server.url)), ("HERALD_API_KEY", Some(&key))], None).await;
    assert!(whoami.success, "{}", whoami.stderr);
    assert_eq!(serde_json::from_str::<Value>(&whoami.stdout).unwrap()["name"], "alice");

    let admin = server.json(&["user", "create", "root2", "--org-admin"]).await;
    assert_eq!(admin["user"]["is_org_admin"], true);
    assert_eq!(names(&server.json(&["user", "list"]).await, "name"), ["admin", "alice", "root2"]);

    server.ok(&["team", "add-member", "ml", "alice", "--role", "viewer"]).await;
    let team = server.json(&["team", "get", "ml"]).await;
    assert_eq!(
        team["members"][1],
        json!({"user_id": team["members"][1]["user_id"], "user": "alice", "role": "viewer"})
    );
    server.ok(&["team", "remove-member", "ml", "alice"]).await;
    assert_eq!(server.json(&["team", "get", "ml"]).await["members"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_create_takes_entity_slash_name() {
    let server = Server::start().await;
    server.ok(&["team", "create", "ml"]).await;

    let created = server.ok(&["project", "create", "ml/demo"]).await;
    assert!(created.stdout.contains("created project ml/demo"), "{}", created.stdout);
    let listed = server.json(&["project", "list"]).await;
    assert_eq!(listed["items"][0]["entity"], "ml");
    assert_eq!(listed["items"][0]["name"], "demo");

    let malformed = server.herald(&["project", "create", "demo"]).await;
    assert!(!malformed.success);
    assert!(malformed.stderr.contains("ENTITY/PROJECT"), "{}", malformed.stderr);
    let duplicate = server.herald(&["project", "create", "ml/demo"]).await;
    assert!(!duplicate.success);
    assert!(duplicate.stderr.contains("already exists"), "{}", duplicate.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_set_reads_stdin_silently() {
    let server = Server::start().await;
    server.ok(&["team", "create", "ml"]).await;
    let value = "tok-8f3a2b1c0d9e";

    let set = server.herald_with_stdin(&["secret", "set", "--team", "ml", "TOKEN"], &format!("{value}\n")).await;
    assert!(set.success, "{}", set.stderr);
    assert!(!set.stdout.contains(value), "the value is never printed");
    assert!(!set.stderr.contains(value), "the value is never printed");

    let team = server.store.entity_by_name("ml").await.unwrap().unwrap();
    let meta = server.store.secret_by_name(team.id, "TOKEN").await.unwrap().expect("the secret");
    let sealed = server.store.sealed_secret(meta.id).await.unwrap().unwrap();
    assert_eq!(server.state.settings.secret_key.open(&sealed).unwrap(), value.as_bytes(), "newline stripped");

    let listed = server.json(&["secret", "list", "--team", "ml"]).await;
    assert_eq!(names(&listed, "name"), ["TOKEN"]);
    assert!(!listed.to_string().contains(value));

    for empty in ["", "\n", "\r\n"] {
        let rejected = server.herald_with_stdin(&["secret", "set", "--team", "ml", "OTHER"], empty).await;
        assert!(!rejected.success, "{empty:?}");
        assert!(rejected.stderr.contains("empty"), "{}", rejected.stderr);
    }
    assert_eq!(names(&server.json(&["secret", "list", "--team", "ml"]).await, "name"), ["TOKEN"]);

    server.ok(&["secret", "delete", "--team", "ml", "TOKEN"]).await;
    assert!(server.json(&["secret", "list", "--team", "ml"]).await["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_webhook_create_with_secrets() {
    let server = Server::start().await;
    server.ok(&["team", "create", "ml"]).await;
    for name in ["TOKEN", "SIGNING"] {
        let set = server.herald_with_stdin(&["secret", "set", "--team", "ml", name], "value").await;
        assert!(set.success, "{}", set.stderr);
    }

    let args = [
        "integration",
        "webhook",
        "create",
        "--team",
        "ml",
        "--name",
        "ci",
        "--url",
        "http://127.0.0.1:9/hook",
        "--access-token-secret",
        "TOKEN",
        "--signing-secret",
        "SIGNING",
    ];
    let created = server.ok(&args).await;
    assert!(created.stdout.contains("created webhook integration ci"), "{}", created.stdout);

    let listed = server.json(&["integration", "list", "--team", "ml"]).await;
    let integration = &listed["items"][0];
    assert_eq!(integration["name"], "ci");
    assert_eq!(integration["url"], "http://127.0.0.1:9/hook");
    assert_eq!(integration["access_token_secret"], "TOKEN");
    assert_eq!(integration["signing_secret"], "SIGNING");
    assert_eq!(server.json(&["integration", "get", "--team", "ml", "ci"]).await, *integration);

    // The server's URL as a flag goes before the subcommand, whose own --url is the webhook's.
    let flag_args =
        ["--url", &server.url, "integration", "webhook", "create", "--team", "ml", "--name", "ci2", "--url"];
    let env = [("HERALD_URL", None), ("HERALD_API_KEY", Some(server.admin_key.as_str()))];
    let flagged = run(&[&flag_args[..], &["https://hooks.example.com/herald"]].concat(), &env, None).await;
    assert!(flagged.success, "{}", flagged.stderr);
    let second = server.json(&["integration", "get", "--team", "ml", "ci2"]).await;
    assert_eq!(second["url"], "https://hooks.example.com/herald");

    let in_use = server.herald(&["secret", "delete", "--team", "ml", "TOKEN"]).await;
    assert!(!in_use.success);
    assert!(in_use.stderr.contains("in_use"), "{}", in_use.stderr);
    server.ok(&["integration", "delete", "--team", "ml", "ci"]).await;
    server.ok(&["secret", "delete", "--team", "ml", "TOKEN"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automation_create_reads_json_yaml_and_stdin() {
    let server = Server::start().await;
    setup_team(&server).await;

    let json_file = server.write_file("loss-low.json", AUTOMATION_JSON);
    let created = server.ok(&["automation", "create", "-f", &json_file]).await;
    assert!(created.stdout.contains("created automation loss-low"), "{}", created.stdout);

    let yaml_file = server.write_file("loss-high.yaml", AUTOMATION_YAML);
    server.ok(&["automation", "create", "-f", &yaml_file]).await;

    // Without a known extension, JSON is tried first and YAML second.
    let renamed = AUTOMATION_YAML.replace("loss-high", "loss-huge");
    let untyped = server.write_file("loss-huge.txt", &renamed);
    server.ok(&["automation", "create", "-f", &untyped]).await;

    let from_stdin = AUTOMATION_JSON.replace("loss-low", "loss-piped");
    let piped = server.herald_with_stdin(&["automation", "create", "-f", "-"], &from_stdin).await;
    assert!(piped.success, "{}", piped.stderr);

    let listed = server.json(&["automation", "list", "--project", "ml/demo"]).await;
    assert_eq!(names(&listed, "name"), ["loss-high", "loss-huge", "loss-low", "loss-piped"]);
    let high = &listed["items"][0];
    assert_eq!(high["event"]["threshold_filter"]["cmp_op"], "$gt");
    assert_eq!(high["action"]["type"], "NO_OP");

    let table = server.ok(&["automation", "list"]).await;
    assert!(table.stdout.contains("RUN_METRIC AVERAGE(loss, 3) $lt 0.2"), "{}", table.stdout);
    assert!(table.stdout.contains("GENERIC_WEBHOOK ci"), "{}", table.stdout);

    let broken = server.write_file("broken.json", "{\"name\": ");
    let rejected = server.herald(&["automation", "create", "-f", &broken]).await;
    assert!(!rejected.success);
    assert!(rejected.stderr.contains("not valid JSON"), "{}", rejected.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automation_names_resolve_within_projects() {
    let server = Server::start().await;
    setup_team(&server).await;
    server.ok(&["project", "create", "ml/other"]).await;
    let demo = server.write_file("demo.json", AUTOMATION_JSON);
    let other = server.write_file("other.json", &AUTOMATION_JSON.replace("\"demo\"", "\"other\""));
    let first = server.json(&["automation", "create", "-f", &demo]).await;
    server.ok(&["automation", "create", "-f", &other]).await;

    let ambiguous = server.herald(&["automation", "get", "loss-low"]).await;
    assert!(!ambiguous.success);
    assert!(ambiguous.stderr.contains("2 automations are named \"loss-low\""), "{}", ambiguous.stderr);
    assert!(ambiguous.stderr.contains("ml/demo, ml/other"), "{}", ambiguous.stderr);
    assert!(ambiguous.stderr.contains("--project"), "{}", ambiguous.stderr);

    let by_project = server.json(&["automation", "get", "loss-low", "--project", "ml/demo"]).await;
    assert_eq!(by_project["id"], first["id"]);
    let by_id = server.json(&["automation", "get", first["id"].as_str().unwrap()]).await;
    assert_eq!(by_id, by_project);

    server.ok(&["automation", "disable", "loss-low", "--project", "ml/demo"]).await;
    assert_eq!(server.json(&["automation", "get", "loss-low", "--project", "ml/demo"]).await["enabled"], false);
    server.ok(&["automation", "enable", "loss-low", "--project", "ml/demo"]).await;
    assert_eq!(server.json(&["automation", "get", "loss-low", "--project", "ml/demo"]).await["enabled"], true);

    let edited = server.write_file("edited.json", &AUTOMATION_JSON.replace("0.2", "0.1"));
    let updated = server.json(&["automation", "update", "loss-low", "--project", "ml/demo", "-f", &edited]).await;
    assert_eq!(updated["revision"], 2);
    assert_eq!(updated["event"]["threshold_filter"]["threshold"], 0.1);

    server.ok(&["automation", "delete", "loss-low", "--project", "ml/demo"]).await;
    let missing = server.herald(&["automation", "get", "loss-low", "--project", "ml/demo"]).await;
    assert!(!missing.success);
    assert!(missing.stderr.contains("no automation named \"loss-low\" in project ml/demo"), "{}", missing.stderr);
    assert_eq!(names(&server.json(&["automation", "list"]).await, "name"), ["loss-low"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_list_after_evaluation() {
    let server = Server::start().await;
    setup_team(&server).await;
    let noop = AUTOMATION_YAML.replace("$gt, threshold: 5", "$lt, threshold: 0.2");
    let file = server.write_file("dip.yml", &noop);
    server.ok(&["automation", "create", "-f", &file]).await;

    write_history(&server, &[0.5, 0.1]).await;
    let executions = wait_for_executions(&server, "loss-high").await;

    let execution = &executions["items"][0];
    assert_eq!(execution["state"], "succeeded");
    assert_eq!(execution["action_type"], "NO_OP");
    assert_eq!(execution["automation_name"], "loss-high");

    let table = server.ok(&["execution", "list", "--automation", "loss-high"]).await;
    assert!(table.stdout.contains("succeeded"), "{}", table.stdout);
    assert!(table.stdout.contains("RUN_METRIC"), "{}", table.stdout);

    let id = execution["id"].as_str().unwrap();
    let detail = server.json(&["execution", "get", id]).await;
    assert_eq!(detail["id"], id);
    assert_eq!(detail["attempts"], json!([]));
    let shown = server.ok(&["execution", "get", id]).await;
    assert!(shown.stdout.contains("no attempts found"), "{}", shown.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_automation_executions_listed_by_id() {
    let server = Server::start().await;
    setup_team(&server).await;
    let noop = AUTOMATION_YAML.replace("$gt, threshold: 5", "$lt, threshold: 0.2");
    let file = server.write_file("dip.yml", &noop);
    let automation = server.json(&["automation", "create", "-f", &file]).await;
    let id = automation["id"].as_str().unwrap().to_owned();
    write_history(&server, &[0.5, 0.1]).await;
    let before = wait_for_executions(&server, "loss-high").await;

    let deleted = server.ok(&["automation", "delete", "loss-high"]).await;
    assert!(deleted.stdout.contains(&format!("herald execution list --automation {id}")), "{}", deleted.stdout);

    let by_id = server.json(&["execution", "list", "--automation", &id]).await;
    assert_eq!(by_id["items"], before["items"]);
    let execution_id = before["items"][0]["id"].as_str().unwrap();
    assert_eq!(server.json(&["execution", "get", execution_id]).await["automation_id"], automation["id"]);

    let by_name = server.herald(&["execution", "list", "--automation", "loss-high"]).await;
    assert!(!by_name.success, "a deleted automation's name still resolved");
    assert!(by_name.stderr.contains("no automation named \"loss-high\""), "{}", by_name.stderr);

    let help = server.ok(&["execution", "list", "--help"]).await;
    assert!(help.stdout.contains("name no longer resolves"), "{}", help.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_non_finite_threshold_rejected() {
    let server = Server::start().await;
    setup_team(&server).await;

    for (written, reported) in [(".nan", ".nan"), (".inf", ".inf"), ("-.inf", "-.inf"), (".NaN", ".nan")] {
        let document = AUTOMATION_YAML.replace("threshold: 5", &format!("threshold: {written}"));
        let file = server.write_file("non-finite.yaml", &document);
        let rejected = server.herald(&["automation", "create", "-f", &file]).await;
        assert!(!rejected.success, "{written} was accepted");
        let expected = format!("event.threshold_filter.threshold: {reported} is not a finite number");
        assert!(rejected.stderr.contains(&expected), "{written}: {}", rejected.stderr);
        assert!(!rejected.stderr.contains("is required"), "{written}: {}", rejected.stderr);
    }

    // Standard input has no extension, so it is read as YAML after JSON fails.
    let piped = AUTOMATION_YAML.replace("threshold: 5", "threshold: .nan");
    let rejected = server.herald_with_stdin(&["automation", "create", "-f", "-"], &piped).await;
    assert!(!rejected.success);
    assert!(rejected.stderr.contains("threshold: .nan is not a finite number"), "{}", rejected.stderr);

    assert!(server.json(&["automation", "list"]).await["items"].as_array().unwrap().is_empty());
}

async fn write_history(server: &Server, losses: &[f64]) {
    let store = &server.store;
    let admin = store.user_by_name("admin").await.unwrap().expect("admin");
    let team = store.entity_by_name("ml").await.unwrap().expect("team");
    let project = store.project_by_name(team.id, "demo").await.unwrap().expect("project");
    let upsert = RunUpsert { name: "exp-1".into(), user_id: Some(admin.id), ..RunUpsert::default() };
    let (run, _) = store.upsert_run(project.id, upsert).await.unwrap();

    let history = losses
        .iter()
        .enumerate()
        .map(|(line, loss)| HistoryLine {
            line: line as i64,
            step: line as i64,
            data: json!({"_step": line, "loss": loss}).to_string(),
        })
        .collect();
    let batch = FileStreamBatch { history, summary: None, exit_code: None, received_at: Timestamp::now() };
    store.apply_file_stream(run.id, batch).await.unwrap();
    server.state.wake_evaluator();
}

async fn wait_for_executions(server: &Server, automation: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = server.json(&["execution", "list", "--automation", automation]).await;
        if page["items"].as_array().is_some_and(|items| !items.is_empty()) {
            return page;
        }
        assert!(Instant::now() < deadline, "no execution was recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_print_the_detail() {
    let server = Server::start().await;
    setup_team(&server).await;

    let bad_team = server.herald(&["team", "create", "bad name"]).await;
    assert!(!bad_team.success);
    assert!(bad_team.stderr.contains("invalid name \"bad name\""), "{}", bad_team.stderr);
    assert!(bad_team.stderr.contains("422"), "{}", bad_team.stderr);

    let invalid = AUTOMATION_JSON.replace("RUN_METRIC", "RUN_EXPLODED");
    let file = server.write_file("invalid.json", &invalid);
    let rejected = server.herald(&["automation", "create", "-f", &file]).await;
    assert!(!rejected.success);
    assert!(rejected.stderr.contains("event.type"), "{}", rejected.stderr);
    assert!(rejected.stderr.contains("RUN_EXPLODED"), "{}", rejected.stderr);

    let no_integration = server.write_file("nohook.json", &AUTOMATION_JSON.replace("\"ci\"", "\"nohook\""));
    let missing = server.herald(&["automation", "create", "-f", &no_integration]).await;
    assert!(!missing.success);
    assert!(missing.stderr.contains("integration \"nohook\" not found"), "{}", missing.stderr);
    assert!(server.json(&["automation", "list"]).await["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failure_names_the_url() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);

    let failed =
        run(&["team", "list"], &[("HERALD_URL", Some(&url)), ("HERALD_API_KEY", Some(&"k".repeat(40)))], None).await;

    assert!(!failed.success);
    assert!(failed.stderr.contains(&url), "{}", failed.stderr);
    assert!(failed.stderr.contains("HERALD_URL"), "{}", failed.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_key_is_explained() {
    let server = Server::start().await;

    let missing = run(&["team", "list"], &[("HERALD_URL", Some(&server.url)), ("HERALD_API_KEY", None)], None).await;
    assert!(!missing.success);
    assert!(missing.stderr.contains("set HERALD_API_KEY"), "{}", missing.stderr);

    let wrong_key = "w".repeat(40);
    let wrong =
        run(&["team", "list"], &[("HERALD_URL", Some(&server.url)), ("HERALD_API_KEY", Some(&wrong_key))], None).await;
    assert!(!wrong.success);
    assert!(wrong.stderr.contains("invalid API key"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("HERALD_API_KEY"), "{}", wrong.stderr);

    let flag = run(
        &["--api-key", &server.admin_key, "team", "list"],
        &[("HERALD_URL", Some(&server.url)), ("HERALD_API_KEY", None)],
        None,
    )
    .await;
    assert!(flag.success, "--api-key works too: {}", flag.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_automation_input_is_named() {
    let server = Server::start().await;

    let empty = server.herald_with_stdin(&["automation", "create", "-f", "-"], "\n").await;

    assert!(!empty.success);
    assert!(empty.stderr.contains("standard input is empty"), "{}", empty.stderr);
}
