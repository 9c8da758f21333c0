//! Error responses that come from the server's routing and limits rather than from a
//! handler's own checks: unknown paths, wrong methods, bodies over `max_request_bytes` and
//! malformed paths. Each must have a JSON body with a stable code.

mod support;

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestServer;

/// The body limit of the servers in these tests: 1 MiB.
const LIMIT: usize = 1 << 20;

async fn server_with_limit() -> TestServer {
    TestServer::start_with(|settings| settings.max_request_bytes = LIMIT).await
}

/// Starts run `run1` in the admin's personal entity, project `demo`.
async fn start_run(server: &TestServer) {
    let config = json!({"lr": {"value": 0.1}}).to_string();
    let body = json!({
        "query": "mutation Upsert($name: String, $project: String, $config: JSONString) { \
                  upsertBucket(input: {name: $name, modelName: $project, config: $config}) { inserted } }",
        "variables": {"name": "run1", "project": "demo", "config": config},
    });
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

async fn history_line_count(server: &TestServer) -> i64 {
    let entity = server.store.entity_by_name("admin").await.unwrap().expect("entity");
    let project = server.store.project_by_name(entity.id, "demo").await.unwrap().expect("project");
    server.store.run_by_name(project.id, "run1").await.unwrap().expect("run").history_line_count
}

/// Returns a file_stream body of at least `size` bytes.
fn large_file_stream_body(size: usize) -> String {
    let line = json!({"_step": 0, "padding": "x".repeat(size)}).to_string();
    json!({"files": {"wandb-history.jsonl": {"offset": 0, "content": [line]}}}).to_string()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Checks that `response` is a JSON error with `code` and returns its body.
async fn json_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "{}", response.url());
    let content_type = response.headers().get("content-type").map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"), "{}", response.url());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{body}");
    body
}

fn assert_names_limit(detail: &str) {
    assert!(detail.contains("limit of 1 MiB"), "{detail}");
    assert!(detail.contains("max_request_mib"), "{detail}");
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let requests = [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::POST, "/graphql/extra"),
        (Method::POST, "/files/a/b/file_stream"),
        (Method::POST, "/sdk/otel/v1/metrics"),
        (Method::GET, "/api/v1/nope"),
    ];

    for (method, path) in requests {
        let response = client.request(method, format!("{}{path}", server.url)).send().await.unwrap();

        let body = json_error(response, StatusCode::NOT_FOUND, "not_found").await;
        assert!(body["detail"].as_str().unwrap().contains(path), "{body}");
    }
}

#[tokio::test]
async fn wrong_methods_are_json_405() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let requests = [
        (Method::GET, "/graphql", "POST"),
        (Method::PUT, "/files/e/p/r/file_stream", "POST"),
        (Method::POST, "/files/upload/token", "PUT"),
        (Method::POST, "/healthz", "GET"),
        (Method::DELETE, "/api/v1/openapi.json", "GET"),
    ];

    for (method, path, allowed) in requests {
        let response = client.request(method.clone(), format!("{}{path}", server.url)).send().await.unwrap();

        let allow = response.headers().get("allow").map(|value| value.to_str().unwrap().to_owned());
        assert!(allow.is_some_and(|allow| allow.contains(allowed)), "{method} {path}");
        let body = json_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
        assert!(body["detail"].as_str().unwrap().contains(method.as_str()), "{body}");
    }
}

#[tokio::test]
async fn large_file_stream_is_json_413() {
    let server = server_with_limit().await;
    start_run(&server).await;

    let response = reqwest::Client::new()
        .post(format!("{}/files/admin/demo/run1/file_stream", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .header("content-type", "application/json")
        .body(large_file_stream_body(LIMIT))
        .send()
        .await
        .unwrap();

    let body = json_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_names_limit(body["detail"].as_str().unwrap());
    assert_eq!(history_line_count(&server).await, 0);
}

#[tokio::test]
async fn gzip_bomb_file_stream_is_json_413() {
    let server = server_with_limit().await;
    start_run(&server).await;

    let response = reqwest::Client::new()
        .post(format!("{}/files/admin/demo/run1/file_stream", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(large_file_stream_body(2 * LIMIT).as_bytes()))
        .send()
        .await
        .unwrap();

    let body = json_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_names_limit(body["detail"].as_str().unwrap());
    assert_eq!(history_line_count(&server).await, 0);
}

#[tokio::test]
async fn large_graphql_body_is_413() {
    let server = server_with_limit().await;
    let body = json!({"query": "{ viewer { id } }", "variables": {"padding": "x".repeat(LIMIT)}});

    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .json(&body)
        .send()
        .await
        .unwrap();

    // `/graphql` returns every error in the GraphQL shape, whose message the SDK shows to the user.
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "payload_too_large", "{body}");
    assert_names_limit(body["errors"][0]["message"].as_str().unwrap());
    assert_eq!(body["data"], Value::Null);
}

#[tokio::test]
async fn large_upload_is_json_413() {
    let server = server_with_limit().await;
    start_run(&server).await;
    let body = json!({
        "query": "mutation Files($files: [String!]!) { createRunFiles(input: {entityName: \"admin\", \
                  projectName: \"demo\", runName: \"run1\", files: $files}) { files { uploadUrl } } }",
        "variables": {"files": ["big.bin"]},
    });
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .json(&body)
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    let upload_url = created["data"]["createRunFiles"]["files"][0]["uploadUrl"].as_str().expect("upload URL");

    let response = reqwest::Client::new().put(upload_url).body(vec![7u8; LIMIT + 1]).send().await.unwrap();

    let body = json_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_names_limit(body["detail"].as_str().unwrap());
    let entity = server.store.entity_by_name("admin").await.unwrap().expect("entity");
    let project = server.store.project_by_name(entity.id, "demo").await.unwrap().expect("project");
    let run = server.store.run_by_name(project.id, "run1").await.unwrap().expect("run");
    assert!(server.store.list_run_files(run.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_path_encoding_is_json_400() {
    let server = TestServer::start().await;

    let response = reqwest::Client::new()
        .post(format!("{}/files/admin/demo/%FF/file_stream", server.url))
        .basic_auth("api", Some(&server.admin_key))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    json_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    let response =
        reqwest::Client::new().put(format!("{}/files/upload/%FF", server.url)).body("x").send().await.unwrap();
    json_error(response, StatusCode::FORBIDDEN, "invalid_upload_url").await;
}
