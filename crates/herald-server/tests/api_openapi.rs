//! The OpenAPI document: it parses, documents every served route and nothing else, and
//! every reference in it resolves.

mod support;

use std::collections::BTreeSet;

use herald_server::api::openapi::{compare_with_document, document};
use herald_server::api::{ServedRoute, Verb, served_routes};
use serde_json::Value;
use support::TestServer;

async fn fetch_document(server: &TestServer) -> Value {
    let response = reqwest::get(format!("{}/api/v1/openapi.json", server.url)).await.unwrap();
    assert_eq!(response.status(), 200, "the document needs no API key");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("the document is JSON")
}

fn documented(document: &Value) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options", "trace"] {
            if item.get(method).is_some() {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn document_is_openapi_3_1() {
    let server = TestServer::start().await;
    let document = fetch_document(&server).await;

    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "Herald REST API");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    let schemas = document["components"]["schemas"].as_object().expect("schemas");
    for name in ["ErrorBody", "AutomationIn", "AutomationOut", "ExecutionOut", "IntegrationOut", "SecretIn", "TeamOut"]
    {
        assert!(schemas.contains_key(name), "schema {name} is missing");
    }
    assert_eq!(document["components"]["schemas"]["ErrorBody"]["required"], serde_json::json!(["code", "detail"]));
}

#[tokio::test]
async fn document_lists_every_served_route() {
    let server = TestServer::start().await;
    let document = fetch_document(&server).await;

    let served: BTreeSet<String> = served_routes().iter().map(ToString::to_string).collect();

    assert_eq!(documented(&document), served);
    assert!(served.contains("POST /api/v1/automations/{id}/enable"));
    assert!(served.len() >= 29, "{served:?}");
}

#[test]
fn undocumented_route_would_be_caught() {
    let mut served = served_routes();
    assert_eq!(compare_with_document(&served, document()), Vec::<String>::new());

    served.push(ServedRoute { verb: Verb::Post, path: "/automations/{id}/archive" });
    served.retain(|route| route.path != "/viewer");

    assert_eq!(
        compare_with_document(&served, document()),
        [
            "POST /api/v1/automations/{id}/archive is served but not documented",
            "GET /api/v1/viewer is documented but not served",
        ]
    );
}

#[tokio::test]
async fn router_serves_each_recorded_route() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();

    for route in served_routes() {
        let path = route
            .path
            .replace("{id}", "0190c9a4-6a5e-7cc0-8f5e-7f3a2b1c0d9e")
            .replace("{team}", "ml")
            .replace("{entity}", "ml")
            .replace("{project}", "demo")
            .replace("{user}", "bob")
            .replace("{name}", "x");
        let method = reqwest::Method::from_bytes(route.verb.as_str().as_bytes()).unwrap();
        let response = client.request(method, format!("{}/api/v1{path}", server.url)).send().await.unwrap();

        // Without a key, every route but the document responds with 401, which proves the router
        // reached the handler's extractors instead of the fallback's 404 or 405.
        let expected = if route.path == "/openapi.json" { 200 } else { 401 };
        assert_eq!(response.status(), expected, "{route}");
    }
}

#[tokio::test]
async fn every_reference_resolves() {
    let server = TestServer::start().await;
    let document = fetch_document(&server).await;

    let mut references = Vec::new();
    collect_references(&document, &mut references);

    assert!(references.len() > 30, "the document uses shared schemas and responses");
    for reference in references {
        let pointer = reference.strip_prefix('#').expect("a local reference");
        assert!(document.pointer(pointer).is_some(), "{reference} does not resolve");
    }
}

#[tokio::test]
async fn shared_error_responses_are_documented() {
    let server = TestServer::start().await;
    let document = fetch_document(&server).await;

    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            assert!(responses.get("500").is_some(), "{method} {path} documents no 500");
            let public = path == "/api/v1/openapi.json";
            assert_eq!(responses.get("401").is_some(), !public, "{method} {path}");
            let has_body = operation.get("requestBody").is_some();
            assert_eq!(responses.get("415").is_some(), has_body, "{method} {path}");
            assert_eq!(responses.get("413").is_some(), has_body, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn operation_ids_are_unique() {
    let server = TestServer::start().await;
    let document = fetch_document(&server).await;

    let mut seen = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
        }
    }
}

fn collect_references(value: &Value, references: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                references.push(reference.clone());
            }
            object.values().for_each(|child| collect_references(child, references));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_references(child, references)),
        _ => {}
    }
}
