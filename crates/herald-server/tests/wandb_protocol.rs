//! The W&B client protocol, driven over HTTP with the exact GraphQL documents that the
//! wandb 0.31.0 SDK sends (copied to `tests/fixtures/wandb-0.31.0-operations.json`), and
//! checked against the store.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::Compression;
use flate2::write::GzEncoder;
use herald_core::Timestamp;
use herald_core::model::{Role, RunState};
use herald_server::wandb::uploads::{UploadGrant, sign_upload_token};
use herald_store::{Entity, Project, Run};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::TestServer;

/// Returns the SDK's document for an operation.
fn document(operation: &str) -> &'static str {
    static DOCUMENTS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    let documents = DOCUMENTS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wandb-0.31.0-operations.json");
        let text = std::fs::read_to_string(path).expect("fixture file");
        serde_json::from_str(&text).expect("fixture JSON")
    });
    documents.get(operation).and_then(Value::as_str).unwrap_or_else(|| panic!("no document for {operation}"))
}

/// A client that sends what the SDK sends: HTTP Basic with user `api`.
struct SdkClient {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl SdkClient {
    fn new(server: &TestServer, key: &str) -> Self {
        Self { http: reqwest::Client::new(), url: server.url.clone(), key: key.to_owned() }
    }

    /// Sends an SDK document with variables and returns the status and JSON body.
    async fn graphql(&self, operation: &str, variables: Value) -> (StatusCode, Value) {
        let body = json!({ "query": document(operation), "variables": variables, "operationName": operation });
        let response = self
            .http
            .post(format!("{}/graphql", self.url))
            .basic_auth("api", Some(&self.key))
            .json(&body)
            .send()
            .await
            .expect("GraphQL request");
        (response.status(), response.json().await.expect("JSON body"))
    }

    /// Posts a file_stream body and returns the status and JSON body.
    async fn file_stream(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/files/{path}/file_stream", self.url))
            .basic_auth("api", Some(&self.key))
            .json(&body)
            .send()
            .await
            .expect("file_stream request");
        (response.status(), response.json().await.expect("JSON body"))
    }
}

/// Returns the variables the SDK sends to `UpsertBucket` when a run starts.
fn upsert_variables(entity: Option<&str>, project: &str, run: &str) -> Value {
    let config = json!({
        "lr": {"value": 0.01},
        "layers": {"value": 3},
        "_wandb": {"value": {"t": {"1": [1, 5], "4": "3.11.7", "5": "0.31.0"}, "cli_version": "0.31.0",
                             "python_version": "3.11.7", "m": []}},
    });
    json!({
        "id": null, "name": run, "project": project, "entity": entity, "groupName": "sweep-a",
        "description": null, "displayName": "bright-star-1", "notes": "first try", "commit": null,
        "config": config.to_string(), "host": "gpu-7", "debug": null, "program": "train.py",
        "repo": null, "jobType": "train", "state": null, "sweep": null, "tags": ["baseline", "e2e"],
        "summaryMetrics": null,
    })
}

/// Starts a server with the team `vision`, whose admin is the bootstrapped `admin`.
async fn server_with_team() -> (TestServer, Entity) {
    let server = TestServer::start().await;
    let admin = server.store.user_by_name("admin").await.unwrap().expect("admin");
    let team = server.store.create_team("vision", admin.id).await.unwrap();
    (server, team)
}

async fn stored_project(server: &TestServer, entity: &str, project: &str) -> Option<Project> {
    let entity = server.store.entity_by_name(entity).await.unwrap()?;
    server.store.project_by_name(entity.id, project).await.unwrap()
}

async fn stored_run(server: &TestServer, entity: &str, project: &str, run: &str) -> Run {
    let project = stored_project(server, entity, project).await.expect("project");
    server.store.run_by_name(project.id, run).await.unwrap().expect("run")
}

/// Starts run `run` in `vision/demo` with the admin key and returns the client.
async fn started_run(server: &TestServer, run: &str) -> SdkClient {
    let client = SdkClient::new(server, &server.admin_key);
    let (status, body) = client.graphql("UpsertBucket", upsert_variables(Some("vision"), "demo", run)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    client
}

fn history_chunk(offset: i64, lines: &[&str]) -> Value {
    json!({ "files": { "wandb-history.jsonl": { "offset": offset, "content": lines } } })
}

// Viewer, features and organization.

#[tokio::test]
async fn viewer_returns_caller_and_teams() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);

    let (status, body) = client.graphql("Viewer", json!({})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let viewer = &body["data"]["viewer"];
    assert_eq!(viewer["entity"], "admin");
    assert_eq!(viewer["username"], "admin");
    assert_eq!(viewer["email"], Value::Null);
    assert_eq!(viewer["teams"]["edges"], json!([{ "node": { "name": "vision" } }]));
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn default_entity_is_personal_entity() {
    let server = TestServer::start().await;
    let client = SdkClient::new(&server, &server.admin_key);

    let (status, body) = client.graphql("GetDefaultEntity", json!({})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["viewer"]["entity"], "admin");
    let admin = server.store.user_by_name("admin").await.unwrap().expect("admin");
    assert_eq!(body["data"]["viewer"]["id"], admin.id.to_string());
}

#[tokio::test]
async fn server_features_list_is_empty() {
    let server = TestServer::start().await;
    let client = SdkClient::new(&server, &server.admin_key);

    let (status, body) = client.graphql("ServerFeaturesQuery", json!({})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["serverInfo"]["features"], json!([]));
}

#[tokio::test]
async fn organization_of_entity_is_null() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);

    let (status, body) = client.graphql("OrganizationCoreWeaveOrganizationID", json!({"entityName": "vision"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["entity"], json!({ "organization": null }));

    let (status, body) = client.graphql("OrganizationCoreWeaveOrganizationID", json!({"entityName": "nobody"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["entity"], Value::Null);
}

// Authentication and request handling.

#[tokio::test]
async fn wrong_key_gets_401_and_stores_nothing() {
    let (server, _) = server_with_team().await;
    let wrong = SdkClient::new(&server, "0123456789abcdef0123456789abcdef01234567");

    let (status, body) = wrong.graphql("Viewer", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0]["extensions"]["code"], "unauthorized");
    assert_eq!(body["data"], Value::Null);

    let (status, _) = wrong.graphql("UpsertBucket", upsert_variables(Some("vision"), "demo", "run1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(stored_project(&server, "vision", "demo").await.is_none());
}

#[tokio::test]
async fn missing_authorization_gets_401() {
    let server = TestServer::start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .json(&json!({ "query": document("Viewer") }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"herald\"");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "unauthorized");
    assert_eq!(body["data"], Value::Null);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let (server, _) = server_with_team().await;
    started_run(&server, "run1").await;
    let upsert = json!({
        "query": document("UpsertBucket"),
        "variables": upsert_variables(Some("vision"), "other", "run2"),
        "operationName": "UpsertBucket",
    });
    let history = history_chunk(0, &[r#"{"loss":1}"#]);
    let requests = [
        (format!("{}/graphql", server.url), upsert.to_string()),
        (format!("{}/files/vision/demo/run1/file_stream", server.url), history.to_string()),
    ];

    for (url, body) in requests {
        for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
            let mut request = reqwest::Client::new().post(&url).basic_auth("api", Some(&server.admin_key));
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.body(body.clone()).send().await.unwrap();

            assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{url} {content_type:?}");
            let text = response.text().await.unwrap();
            assert!(text.contains("unsupported_media_type"), "{url} {content_type:?}: {text}");
        }
    }
    assert!(stored_project(&server, "vision", "other").await.is_none());
    assert_eq!(stored_run(&server, "vision", "demo", "run1").await.history_line_count, 0);
}

#[tokio::test]
async fn json_content_type_with_charset_is_accepted() {
    let server = TestServer::start().await;
    let body = json!({ "query": document("Viewer"), "operationName": "Viewer" });
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn graphql_variables_must_be_an_object() {
    let (server, _) = server_with_team().await;

    for variables in [json!([{"name": "run1"}]), json!("vision"), json!(3)] {
        let body =
            json!({ "query": document("UpsertBucket"), "variables": variables, "operationName": "UpsertBucket" });
        let response = reqwest::Client::new()
            .post(format!("{}/graphql", server.url))
            .basic_auth("api", Some(&server.admin_key))
            .json(&body)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{variables}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "invalid_graphql", "{variables}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("`variables` must be a JSON object"), "{message}");
    }
    assert!(server.store.list_projects(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn empty_operation_name_runs_the_document() {
    let server = TestServer::start().await;
    let body = json!({ "query": document("GetDefaultEntity"), "variables": {}, "operationName": "" });
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["entity"], "admin");
}

#[tokio::test]
async fn gzipped_graphql_body_is_accepted() {
    let server = TestServer::start().await;
    let body = json!({ "query": document("Viewer"), "operationName": "Viewer" });
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(body.to_string().as_bytes()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["username"], "admin");
}

#[tokio::test]
async fn unknown_field_is_400() {
    let server = TestServer::start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .json(&json!({ "query": "query { viewer { id shoeSize } }" }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["extensions"]["code"], "invalid_graphql");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("shoeSize"), "{body}");
}

#[tokio::test]
async fn deeply_nested_query_is_400_and_server_survives() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let query = format!("query {{ viewer(x: {}1{}) {{ id }} }}", "[".repeat(2_000), "]".repeat(2_000));

    let response = client
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "invalid_graphql");
    let health = client.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

// UpsertBucket.

#[tokio::test]
async fn upsert_bucket_creates_project_and_run() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);
    assert!(stored_project(&server, "vision", "demo").await.is_none());

    let (status, body) = client.graphql("UpsertBucket", upsert_variables(Some("vision"), "demo", "a1b2c3d4")).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let run = stored_run(&server, "vision", "demo", "a1b2c3d4").await;
    let bucket = &body["data"]["upsertBucket"]["bucket"];
    assert_eq!(body["data"]["upsertBucket"]["inserted"], true);
    assert_eq!(bucket["id"], run.id.to_string());
    assert_eq!(bucket["name"], "a1b2c3d4");
    assert_eq!(bucket["displayName"], "bright-star-1");
    assert_eq!(bucket["project"]["name"], "demo");
    assert_eq!(bucket["project"]["entity"]["name"], "vision");
    assert_eq!(bucket["historyLineCount"], 0);
    assert_eq!(bucket["sweepName"], Value::Null);

    let admin = server.store.user_by_name("admin").await.unwrap().expect("admin");
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.user_id, admin.id);
    assert_eq!(run.display_name, "bright-star-1");
    assert_eq!(run.tags, vec!["baseline".to_owned(), "e2e".to_owned()]);
    assert_eq!(run.notes.as_deref(), Some("first try"));
    assert_eq!(run.group.as_deref(), Some("sweep-a"));
    assert_eq!(run.job_type.as_deref(), Some("train"));
    assert_eq!(run.host.as_deref(), Some("gpu-7"));
    let config = run.config.expect("config");
    assert_eq!(config["lr"], json!({"value": 0.01}));
    assert_eq!(config["_wandb"]["value"]["cli_version"], "0.31.0");
}

#[tokio::test]
async fn upsert_bucket_without_entity_uses_personal_entity() {
    let server = TestServer::start().await;
    let client = SdkClient::new(&server, &server.admin_key);

    let (status, body) = client.graphql("UpsertBucket", upsert_variables(None, "mine", "run1")).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["upsertBucket"]["bucket"]["project"]["entity"]["name"], "admin");
    let run = stored_run(&server, "admin", "mine", "run1").await;
    assert_eq!(body["data"]["upsertBucket"]["bucket"]["id"], run.id.to_string());
}

#[tokio::test]
async fn upsert_bucket_updates_existing_run() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let first = stored_run(&server, "vision", "demo", "run1").await;

    let mut variables = upsert_variables(Some("vision"), "demo", "run1");
    variables["id"] = json!(first.id.to_string());
    variables["config"] = json!(r#"{"lr": {"value": 0.02}, "bad": {"value": NaN}}"#);
    variables["displayName"] = Value::Null;
    variables["tags"] = json!(["tuned"]);
    let (status, body) = client.graphql("UpsertBucket", variables).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["upsertBucket"]["inserted"], false);
    assert_eq!(body["data"]["upsertBucket"]["bucket"]["id"], first.id.to_string());
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.id, first.id);
    assert_eq!(run.display_name, "bright-star-1", "a null display name keeps the stored one");
    assert_eq!(run.tags, vec!["tuned".to_owned()]);
    assert_eq!(run.config, Some(json!({"lr": {"value": 0.02}, "bad": {"value": "NaN"}})));
}

#[tokio::test]
async fn upsert_bucket_unknown_entity_is_404() {
    let server = TestServer::start().await;
    let client = SdkClient::new(&server, &server.admin_key);

    let (status, body) = client.graphql("UpsertBucket", upsert_variables(Some("nosuchteam"), "demo", "run1")).await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["extensions"]["code"], "not_found");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("\"nosuchteam\""), "{message}");
    assert!(server.store.list_projects(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn upsert_bucket_by_non_member_is_403() {
    let (server, _) = server_with_team().await;
    let outsider = SdkClient::new(&server, &server.create_user("outsider").await);

    let (status, body) = outsider.graphql("UpsertBucket", upsert_variables(Some("vision"), "demo", "run1")).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["extensions"]["code"], "forbidden");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("\"vision\""), "{body}");
    assert!(stored_project(&server, "vision", "demo").await.is_none());
}

#[tokio::test]
async fn upsert_bucket_by_viewer_role_is_403() {
    let (server, team) = server_with_team().await;
    let key = server.create_user("watcher").await;
    let watcher = server.store.user_by_name("watcher").await.unwrap().expect("watcher");
    server.store.set_membership(team.id, watcher.id, Role::Viewer).await.unwrap();

    let client = SdkClient::new(&server, &key);
    let (status, body) = client.graphql("UpsertBucket", upsert_variables(Some("vision"), "demo", "run1")).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("viewer"), "{body}");
    assert!(stored_project(&server, "vision", "demo").await.is_none());
}

#[tokio::test]
async fn upsert_bucket_invalid_names_are_rejected() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);
    let cases = [
        ("bad/project", "run1", "modelName"),
        ("demo", "run/1", "name"),
        ("demo", "run1", "config"),
        ("demo", "run1", "displayName"),
    ];

    for (project, run, field) in cases {
        let mut variables = upsert_variables(Some("vision"), project, run);
        if field == "config" {
            variables["config"] = json!("[1, 2]");
        }
        if field == "displayName" {
            variables["displayName"] = json!("exp\u{0}1");
        }
        let (status, body) = client.graphql("UpsertBucket", variables).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "invalid_value", "{field}");
        assert!(body["errors"][0]["message"].as_str().unwrap().starts_with(field), "{body}");
    }
    assert!(server.store.list_projects(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn upsert_bucket_dot_run_ids_are_rejected() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);

    for run in [".", ".."] {
        let (status, body) = client.graphql("UpsertBucket", upsert_variables(Some("vision"), "demo", run)).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{run}: {body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().starts_with("name"), "{body}");
    }
    assert!(server.store.list_projects(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn upsert_bucket_dot_projects_are_rejected() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);

    for project in [".", ".."] {
        let (status, body) = client.graphql("UpsertBucket", upsert_variables(Some("vision"), project, "run1")).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{project}: {body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().starts_with("modelName"), "{body}");
    }
    assert!(server.store.list_projects(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn upsert_bucket_text_limits_are_enforced() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);
    let long = |length: usize| "é".repeat(length);
    let too_many_tags: Vec<String> = (0..1_001).map(|index| format!("t{index}")).collect();
    let cases = [
        ("displayName", json!(long(1_025)), "displayName"),
        ("notes", json!(long(65_537)), "notes"),
        ("description", json!(long(65_537)), "description"),
        ("groupName", json!(long(257)), "groupName"),
        ("jobType", json!(long(257)), "jobType"),
        ("host", json!(long(257)), "host"),
        ("tags", json!(too_many_tags), "tags"),
        ("tags", json!(["ok", long(257)]), "tags[1]"),
    ];

    for (variable, value, field) in cases {
        let mut variables = upsert_variables(Some("vision"), "demo", "run1");
        variables[variable] = value;
        let (status, body) = client.graphql("UpsertBucket", variables).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{field} has ")), "{message}");
    }
    assert!(server.store.list_projects(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn upsert_bucket_text_at_limits_is_stored() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);
    let long = |length: usize| "é".repeat(length);
    let tags: Vec<String> = (0..1_000).map(|index| format!("{index:0>256}")).collect();
    let mut variables = upsert_variables(Some("vision"), "demo", "run1");
    variables["displayName"] = json!(long(1_024));
    variables["notes"] = json!(long(65_536));
    variables["groupName"] = json!(long(256));
    variables["jobType"] = json!(long(256));
    variables["host"] = json!(long(256));
    variables["tags"] = json!(tags);

    let (status, body) = client.graphql("UpsertBucket", variables).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.display_name.chars().count(), 1_024);
    assert_eq!(run.notes.unwrap().chars().count(), 65_536);
    assert_eq!(run.host.unwrap().chars().count(), 256);
    assert_eq!(run.tags, tags);
}

#[tokio::test]
async fn upsert_bucket_multi_byte_config_is_422() {
    let (server, _) = server_with_team().await;
    let client = SdkClient::new(&server, &server.admin_key);

    for config in ["{é}", "{\"lr\": é}", "{\"lr\":\u{a0}NaN}"] {
        let mut variables = upsert_variables(Some("vision"), "demo", "run1");
        variables["config"] = json!(config);
        let (status, body) = client.graphql("UpsertBucket", variables).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{config}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("config: the run config is not valid JSON"), "{message}");
    }
    assert!(server.store.list_projects(None).await.unwrap().is_empty());
}

// RunResumeStatus.

#[tokio::test]
async fn resume_status_of_new_run_is_null_bucket() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;

    let variables = json!({"project": "demo", "entity": "vision", "name": "other"});
    let (status, body) = client.graphql("RunResumeStatus", variables).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["model"]["name"], "demo");
    assert_eq!(body["data"]["model"]["entity"]["name"], "vision");
    assert_eq!(body["data"]["model"]["bucket"], Value::Null);

    let variables = json!({"project": "nothing-here", "entity": "vision", "name": "run1"});
    let (status, body) = client.graphql("RunResumeStatus", variables).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["model"], Value::Null);
}

#[tokio::test]
async fn resume_status_of_started_run() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let mut body =
        history_chunk(0, &[r#"{"_step":0,"loss":1.5}"#, r#"{"_step":1,"loss":NaN}"#, r#"{"_step":2,"loss":0.5}"#]);
    body["files"]["wandb-summary.json"] = json!({"offset": 0, "content": [r#"{"loss":0.5,"_step":2}"#]});
    assert_eq!(client.file_stream("vision/demo/run1", body).await.0, StatusCode::OK);

    let variables = json!({"project": "demo", "entity": "vision", "name": "run1"});
    let (status, body) = client.graphql("RunResumeStatus", variables).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let run = stored_run(&server, "vision", "demo", "run1").await;
    let bucket = &body["data"]["model"]["bucket"];
    assert_eq!(bucket["id"], run.id.to_string());
    assert_eq!(bucket["historyLineCount"], 3);
    assert_eq!(bucket["eventsLineCount"], 0);
    assert_eq!(bucket["logLineCount"], 0);
    assert_eq!(bucket["eventsTail"], "[]");
    assert_eq!(bucket["tags"], json!(["baseline", "e2e"]));
    assert_eq!(bucket["notes"], "first try");

    let tail: Vec<String> = serde_json::from_str(bucket["historyTail"].as_str().unwrap()).unwrap();
    assert_eq!(tail.len(), 3);
    let last: Value = serde_json::from_str(&tail[2]).unwrap();
    assert_eq!(last["_step"], 2);
    let summary: Value = serde_json::from_str(bucket["summaryMetrics"].as_str().unwrap()).unwrap();
    assert_eq!(summary, json!({"loss": 0.5, "_step": 2}));
    let config: Value = serde_json::from_str(bucket["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["lr"], json!({"value": 0.01}));
    let wandb_config: Value = serde_json::from_str(bucket["wandbConfig"].as_str().unwrap()).unwrap();
    assert_eq!(wandb_config, json!({"t": {"1": [1, 5], "4": "3.11.7", "5": "0.31.0"}}));
}

#[tokio::test]
async fn resume_status_hides_other_entities() {
    let (server, _) = server_with_team().await;
    started_run(&server, "run1").await;
    let outsider = SdkClient::new(&server, &server.create_user("outsider").await);

    let variables = json!({"project": "demo", "entity": "vision", "name": "run1"});
    let (status, body) = outsider.graphql("RunResumeStatus", variables).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["model"], Value::Null);
}

// file_stream.

#[tokio::test]
async fn file_stream_stores_history_by_line_index() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let lines = [r#"{"_step":0,"loss":NaN}"#, r#"{"_step":1,"loss":Infinity}"#, r#"{"loss":-Infinity,"acc":0.5}"#];

    let (status, body) = client.file_stream("vision/demo/run1", history_chunk(0, &lines)).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.history_line_count, 3);
    let rows = server.store.history(run.id, 0, 10).await.unwrap();
    let rows: Vec<(i64, i64, &str)> = rows.iter().map(|row| (row.line, row.step, row.data.as_str())).collect();
    assert_eq!(
        rows,
        vec![
            (0, 0, r#"{"_step":0,"loss":"NaN"}"#),
            (1, 1, r#"{"_step":1,"loss":"Infinity"}"#),
            (2, 2, r#"{"loss":"-Infinity","acc":0.5}"#),
        ]
    );
}

#[tokio::test]
async fn file_stream_resend_upserts_by_index() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let first = [r#"{"_step":0,"loss":3}"#, r#"{"_step":1,"loss":2}"#];
    assert_eq!(client.file_stream("vision/demo/run1", history_chunk(0, &first)).await.0, StatusCode::OK);

    let resent = [r#"{"_step":1,"loss":1.5}"#, r#"{"_step":2,"loss":1}"#];
    let (status, _) = client.file_stream("vision/demo/run1", history_chunk(1, &resent)).await;

    assert_eq!(status, StatusCode::OK);
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.history_line_count, 3);
    let rows = server.store.history(run.id, 0, 10).await.unwrap();
    let data: Vec<&str> = rows.iter().map(|row| row.data.as_str()).collect();
    assert_eq!(data, vec![r#"{"_step":0,"loss":3}"#, r#"{"_step":1,"loss":1.5}"#, r#"{"_step":2,"loss":1}"#]);
}

#[tokio::test]
async fn file_stream_replaces_summary() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let summary = |text: &str| json!({"files": {"wandb-summary.json": {"offset": 0, "content": [text]}}});

    client.file_stream("vision/demo/run1", summary(r#"{"loss":2,"acc":0.1}"#)).await;
    let (status, _) = client.file_stream("vision/demo/run1", summary(r#"{"loss":NaN}"#)).await;

    assert_eq!(status, StatusCode::OK);
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.summary, Some(json!({"loss": "NaN"})));
}

#[tokio::test]
async fn file_stream_exit_code_ends_run() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "ok").await;
    started_run(&server, "bad").await;
    started_run(&server, "plain").await;

    client.file_stream("vision/demo/ok", json!({"complete": true, "exitcode": 0})).await;
    client.file_stream("vision/demo/bad", json!({"complete": true, "exitcode": 1})).await;
    client.file_stream("vision/demo/plain", json!({"complete": true})).await;

    let ok = stored_run(&server, "vision", "demo", "ok").await;
    assert_eq!((ok.state, ok.exit_code), (RunState::Finished, Some(0)));
    let bad = stored_run(&server, "vision", "demo", "bad").await;
    assert_eq!((bad.state, bad.exit_code), (RunState::Failed, Some(1)));
    let plain = stored_run(&server, "vision", "demo", "plain").await;
    assert_eq!((plain.state, plain.exit_code), (RunState::Finished, Some(0)));
}

#[tokio::test]
async fn file_stream_heartbeat_moves_heartbeat() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let before = stored_run(&server, "vision", "demo", "run1").await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let (status, body) = client.file_stream("vision/demo/run1", json!({})).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({}));
    let after = stored_run(&server, "vision", "demo", "run1").await;
    assert!(after.heartbeat_at > before.heartbeat_at, "{:?} -> {:?}", before.heartbeat_at, after.heartbeat_at);
    assert_eq!(after.state, RunState::Running);
    assert_eq!(after.history_line_count, 0);
}

#[tokio::test]
async fn file_stream_bad_line_stores_nothing() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let mut body = history_chunk(4, &[r#"{"_step":4,"loss":1}"#, r#"{"_step":5,"loss":}"#]);
    body["files"]["wandb-summary.json"] = json!({"offset": 0, "content": [r#"{"loss":1}"#]});
    body["complete"] = json!(true);

    let (status, body) = client.file_stream("vision/demo/run1", body).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_line");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("wandb-history.jsonl line 5"), "{detail}");
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.history_line_count, 0);
    assert!(server.store.history(run.id, 0, 10).await.unwrap().is_empty());
    assert_eq!(run.summary, None);
    assert_eq!(run.state, RunState::Running);
}

#[tokio::test]
async fn file_stream_multi_byte_line_is_400() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let lines = ["{\"a\": é}", "{\"a\": NaN,\u{a0}\"b\": 1}", "{\"a\":\u{a0}NaN}", "[NaN, 日本]"];

    for line in lines {
        let (status, body) = client.file_stream("vision/demo/run1", history_chunk(0, &[r#"{"a":1}"#, line])).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{line}: {body}");
        assert_eq!(body["code"], "invalid_line", "{line}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("wandb-history.jsonl line 1 is not valid JSON"), "{detail}");
    }
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.history_line_count, 0);
}

#[tokio::test]
async fn file_stream_error_position_is_in_line() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;

    let (status, body) = client.file_stream("vision/demo/run1", history_chunk(0, &[r#"{"a":NaN,"b":nope}"#])).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("(expected ident at line 1 column 15)"), "{detail}");
}

#[tokio::test]
async fn file_stream_invalid_step_stores_nothing() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let steps = ["1.5", "\"2\"", "-1", "9223372036854775808", "null"];

    for step in steps {
        let line = format!(r#"{{"_step":{step},"loss":1}}"#);
        let mut body = history_chunk(3, &[r#"{"_step":3,"loss":2}"#, &line]);
        body["files"]["wandb-summary.json"] = json!({"offset": 0, "content": [r#"{"loss":1}"#]});

        let (status, body) = client.file_stream("vision/demo/run1", body).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{step}: {body}");
        assert_eq!(body["code"], "invalid_line", "{step}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with(&format!("wandb-history.jsonl line 4 has _step {step};")), "{detail}");
    }
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.history_line_count, 0);
    assert!(server.store.history(run.id, 0, 10).await.unwrap().is_empty());
    assert_eq!(run.summary, None);
}

#[tokio::test]
async fn file_stream_without_step_uses_line_index() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let lines = [r#"{"loss":1}"#, r#"{"_step":9223372036854775807,"loss":2}"#];

    let (status, body) = client.file_stream("vision/demo/run1", history_chunk(5, &lines)).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let run = stored_run(&server, "vision", "demo", "run1").await;
    let rows = server.store.history(run.id, 0, 10).await.unwrap();
    let steps: Vec<(i64, i64)> = rows.iter().map(|row| (row.line, row.step)).collect();
    assert_eq!(steps, vec![(5, 5), (6, i64::MAX)]);
}

#[tokio::test]
async fn file_stream_non_object_line_is_400() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;

    let (status, body) = client.file_stream("vision/demo/run1", history_chunk(0, &["[1,2]"])).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_line");
    assert!(body["detail"].as_str().unwrap().contains("line 0 is not a JSON object"), "{body}");
}

#[tokio::test]
async fn file_stream_gzipped_body_is_accepted() {
    let (server, _) = server_with_team().await;
    started_run(&server, "run1").await;
    let body = history_chunk(0, &[r#"{"_step":0,"loss":0.25}"#]);

    let response = reqwest::Client::new()
        .post(format!("{}/files/vision/demo/run1/file_stream", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(body.to_string().as_bytes()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.history_line_count, 1);
}

#[tokio::test]
async fn file_stream_unknown_run_is_404() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;

    for path in ["vision/demo/nope", "vision/other/run1", "nosuchteam/demo/run1"] {
        let (status, body) = client.file_stream(path, json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn file_stream_for_entity_named_upload() {
    // `/files/upload/{token}` shares its first segments with file_stream paths.
    let server = TestServer::start().await;
    let admin = server.store.user_by_name("admin").await.unwrap().expect("admin");
    server.store.create_team("upload", admin.id).await.unwrap();
    let client = SdkClient::new(&server, &server.admin_key);
    let (status, body) = client.graphql("UpsertBucket", upsert_variables(Some("upload"), "demo", "run1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = client.file_stream("upload/demo/run1", history_chunk(0, &[r#"{"loss":1}"#])).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored_run(&server, "upload", "demo", "run1").await.history_line_count, 1);
}

#[tokio::test]
async fn file_stream_checks_key_and_membership() {
    let (server, _) = server_with_team().await;
    started_run(&server, "run1").await;
    let body = history_chunk(0, &[r#"{"loss":1}"#]);

    let wrong = SdkClient::new(&server, "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(wrong.file_stream("vision/demo/run1", body.clone()).await.0, StatusCode::UNAUTHORIZED);
    let outsider = SdkClient::new(&server, &server.create_user("outsider").await);
    assert_eq!(outsider.file_stream("vision/demo/run1", body).await.0, StatusCode::FORBIDDEN);

    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert_eq!(run.history_line_count, 0);
}

// CreateRunFiles and uploads.

#[tokio::test]
async fn run_file_upload_is_stored_with_digest() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let variables =
        json!({"entity": "vision", "project": "demo", "run": "run1", "files": ["config.yaml", "media/a.txt"]});

    let (status, body) = client.graphql("CreateRunFiles", variables).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let run = stored_run(&server, "vision", "demo", "run1").await;
    let payload = &body["data"]["createRunFiles"];
    assert_eq!(payload["runID"], run.id.to_string());
    assert_eq!(payload["uploadHeaders"], json!([]));
    assert_eq!(payload["files"][0]["name"], "config.yaml");
    let upload_url = payload["files"][0]["uploadUrl"].as_str().unwrap();
    assert!(upload_url.starts_with(&format!("{}/files/upload/", server.url)), "{upload_url}");

    let content = b"lr:\n  value: 0.01\n";
    let response = reqwest::Client::new().put(upload_url).body(&content[..]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let files = server.store.list_run_files(run.id).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "config.yaml");
    assert_eq!(files[0].digest, hex::encode(Sha256::digest(content)));
    assert_eq!(files[0].size, content.len() as i64);
    let blob = server.state.blobs.path(&files[0].digest).expect("stored blob");
    assert_eq!(std::fs::read(blob).unwrap(), content);
}

#[tokio::test]
async fn altered_upload_token_is_rejected() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;
    let variables = json!({"entity": "vision", "project": "demo", "run": "run1", "files": ["config.yaml"]});
    let (_, body) = client.graphql("CreateRunFiles", variables).await;
    let upload_url = body["data"]["createRunFiles"]["files"][0]["uploadUrl"].as_str().unwrap().to_owned();

    // Rename the file inside the signed payload and keep the old signature.
    let (prefix, token) = upload_url.rsplit_once('/').unwrap();
    let (payload, signature) = token.split_once('.').unwrap();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let altered = URL_SAFE_NO_PAD.encode(payload.replace("config.yaml", "evil.yaml"));
    let forged_url = format!("{prefix}/{altered}.{signature}");

    let response = reqwest::Client::new().put(forged_url).body("x").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_upload_url");

    let response = reqwest::Client::new().put(format!("{prefix}/not-a-token")).body("x").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let run = stored_run(&server, "vision", "demo", "run1").await;
    assert!(server.store.list_run_files(run.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_upload_token_is_rejected() {
    let (server, _) = server_with_team().await;
    started_run(&server, "run1").await;
    let run = stored_run(&server, "vision", "demo", "run1").await;
    let grant = UploadGrant {
        run_id: run.id,
        file_name: "config.yaml".into(),
        expires_at: Timestamp(Timestamp::now().millis() - 1_000),
    };
    let token = sign_upload_token(&server.state.upload_key, &grant);

    let response =
        reqwest::Client::new().put(format!("{}/files/upload/{token}", server.url)).body("x").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "upload_url_expired");
    assert!(server.store.list_run_files(run.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn create_run_files_rejects_bad_names() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;

    for name in ["../escape", "/etc/passwd", "a/../../b"] {
        let variables = json!({"entity": "vision", "project": "demo", "run": "run1", "files": ["ok.txt", name]});
        let (status, body) = client.graphql("CreateRunFiles", variables).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(name), "{body}");
    }
}

#[tokio::test]
async fn create_run_files_for_unknown_run_is_404() {
    let (server, _) = server_with_team().await;
    let client = started_run(&server, "run1").await;

    let variables = json!({"entity": "vision", "project": "demo", "run": "nope", "files": ["config.yaml"]});
    let (status, body) = client.graphql("CreateRunFiles", variables).await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["data"], Value::Null);
}

// Helpers.

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}
