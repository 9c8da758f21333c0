//! REST API: automations, their validation and revisions, and executions after a real
//! evaluation.

mod api_common;
mod support;

use std::time::{Duration, Instant};

use api_common::{Api, ApiResponse, expect};
use herald_core::Timestamp;
use herald_core::automation::MAX_METRIC_NAME_CHARS;
use herald_core::template::{MAX_TEMPLATE_BYTES, MAX_TEMPLATE_VARIABLES};
use herald_store::{FileStreamBatch, HistoryLine, RunUpsert};
use serde_json::{Value, json};
use support::TestServer;

/// Starts a server with team `ml`, project `ml/demo` and webhook integration `ci`.
async fn server_with_project() -> (TestServer, Api) {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);
    expect(admin.post("/teams", json!({"name": "ml"})).await, 201);
    expect(admin.post("/projects", json!({"entity": "ml", "name": "demo"})).await, 201);
    let webhook = json!({"type": "webhook", "name": "ci", "url": "http://127.0.0.1:9/hook"});
    expect(admin.post("/teams/ml/integrations", webhook).await, 201);
    (server, admin)
}

fn document() -> Value {
    json!({
        "name": "loss-low",
        "description": "average loss is low",
        "scope": {"type": "PROJECT", "entity": "ml", "project": "demo"},
        "event": {
            "type": "RUN_METRIC",
            "run_filter": {"display_name": {"$regex": "^exp-"}},
            "threshold_filter": {"name": "loss", "agg_op": "AVERAGE", "window_size": 3, "cmp_op": "$lt", "threshold": 0.2}
        },
        "action": {"type": "GENERIC_WEBHOOK", "integration": "ci", "request_payload": {"text": "${run_name}: ${metric_value}"}},
        "cooldown_seconds": 0
    })
}

async fn create(api: &Api, document: Value) -> Value {
    expect(api.post("/automations", document).await, 201).body
}

async fn automation_count(api: &Api) -> usize {
    expect(api.get("/automations").await, 200).items().len()
}

#[tokio::test]
async fn create_returns_reusable_document() {
    let (_server, admin) = server_with_project().await;
    let input = document();

    let created = create(&admin, input.clone()).await;

    assert!(created["id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
    assert_eq!(created["name"], "loss-low");
    assert_eq!(created["description"], "average loss is low");
    assert_eq!(created["scope"], input["scope"]);
    assert_eq!(created["event"], input["event"]);
    assert_eq!(created["action"], input["action"]);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["cooldown_seconds"], 0);
    assert_eq!(created["revision"], 1);
    assert_eq!(created["created_at"], created["updated_at"]);

    let fetched = expect(admin.get(&format!("/automations/{}", created["id"].as_str().unwrap())).await, 200).body;
    assert_eq!(fetched, created);

    // The output, read-only fields included, is valid input.
    let mut again = created.clone();
    again["name"] = json!("loss-low-copy");
    let copy = create(&admin, again).await;
    assert_eq!(copy["event"], created["event"]);
    assert_ne!(copy["id"], created["id"]);
}

#[tokio::test]
async fn defaults_apply_to_absent_fields() {
    let (_server, admin) = server_with_project().await;
    let input = json!({
        "name": "minimal",
        "scope": {"type": "PROJECT", "entity": "ml", "project": "demo"},
        "event": {"type": "RUN_METRIC", "threshold_filter": {"name": "acc", "cmp_op": "$gte", "threshold": 0.9}},
        "action": {"type": "NO_OP"}
    });

    let created = create(&admin, input).await;

    assert_eq!(created["cooldown_seconds"], 86_400);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["description"], Value::Null);
    assert_eq!(created["event"]["threshold_filter"]["window_size"], 1);
    assert_eq!(created["action"], json!({"type": "NO_OP"}));
}

/// An invalid document: its name, the change that makes it invalid, the field the error
/// must name, and the error code (empty when any code will do).
type InvalidCase = (&'static str, fn(&mut Value), &'static str, &'static str);

fn invalid_cases() -> Vec<InvalidCase> {
    vec![
        ("unknown event type", |doc| doc["event"]["type"] = json!("RUN_EXPLODED"), "event.type", "invalid_value"),
        (
            "bad cmp_op",
            |doc| doc["event"]["threshold_filter"]["cmp_op"] = json!("$eq"),
            "event.threshold_filter.cmp_op",
            "invalid_value",
        ),
        (
            "negative window",
            |doc| doc["event"]["threshold_filter"]["window_size"] = json!(-3),
            "event.threshold_filter.window_size",
            "invalid_value",
        ),
        (
            "invalid JSON in payload template",
            |doc| doc["action"]["request_payload"] = json!("{\"text\": "),
            "action.request_payload",
            "invalid_template",
        ),
        (
            "unknown template variable",
            |doc| doc["action"]["request_payload"] = json!({"text": "${no_such_variable}"}),
            "action.request_payload",
            "",
        ),
        ("missing integration", |doc| doc["action"]["integration"] = json!("nope"), "action.integration", "not_found"),
        ("invalid project name", |doc| doc["scope"]["project"] = json!("a/b"), "scope.project", "invalid_value"),
        ("missing entity", |doc| doc["scope"]["entity"] = json!("nobody"), "scope.entity", "not_found"),
        ("unknown field", |doc| doc["colour"] = json!("red"), "colour", "unknown_field"),
        (
            "invalid run filter regex",
            |doc| doc["event"]["run_filter"] = json!({"display_name": {"$regex": "("}}),
            "event.run_filter",
            "",
        ),
        (
            "deeply nested payload",
            |doc| doc["action"]["request_payload"] = nested(40),
            "action.request_payload",
            "invalid_value",
        ),
        (
            "deeply nested payload string",
            |doc| doc["action"]["request_payload"] = json!(nested(40).to_string()),
            "action.request_payload",
            "invalid_value",
        ),
        (
            "deeply nested run filter",
            |doc| doc["event"]["run_filter"] = json!({"$and": [nested_filter(40)]}),
            "event.run_filter",
            "invalid_value",
        ),
        ("negative cooldown", |doc| doc["cooldown_seconds"] = json!(-1), "cooldown_seconds", "invalid_value"),
        ("missing name", |doc| doc["name"] = Value::Null, "name", "missing_field"),
        ("dot project name", |doc| doc["scope"]["project"] = json!(".."), "scope.project", "invalid_value"),
        (
            "string payload holding a string",
            |doc| doc["action"]["request_payload"] = json!("\"text\""),
            "action.request_payload",
            "invalid_template",
        ),
        (
            "number payload",
            |doc| doc["action"]["request_payload"] = json!(5),
            "action.request_payload",
            "invalid_template",
        ),
        (
            "too many template variables",
            |doc| doc["action"]["request_payload"] = json!({"text": "${run_name}".repeat(MAX_TEMPLATE_VARIABLES + 1)}),
            "action.request_payload",
            "invalid_template",
        ),
        (
            "NUL in metric name",
            |doc| doc["event"]["threshold_filter"]["name"] = json!("lo\u{0}ss"),
            "event.threshold_filter.name",
            "invalid_value",
        ),
    ]
}

/// Returns an object with `depth` levels of nested arrays under its key.
fn nested(depth: usize) -> Value {
    let mut value = json!("${run_name}");
    for _ in 1..depth {
        value = json!([value]);
    }
    json!({"deep": value})
}

/// Returns a run filter of `depth` nested `$and` lists.
fn nested_filter(depth: usize) -> Value {
    let mut filter = json!({"display_name": "x"});
    for _ in 0..depth {
        filter = json!({"$and": [filter]});
    }
    filter
}

#[track_caller]
fn assert_rejected(case: &str, response: &ApiResponse, field: &str, code: &str) {
    assert_eq!(response.status, 422, "{case}: {}", response.body);
    assert!(response.field().starts_with(field), "{case}: field {:?}, expected {field:?}", response.field());
    if !code.is_empty() {
        assert_eq!(response.code(), code, "{case}: {}", response.body);
    }
    assert!(!response.detail().is_empty(), "{case}: a detail for people");
}

#[tokio::test]
async fn invalid_documents_store_nothing() {
    let (_server, admin) = server_with_project().await;

    for (case, change, field, code) in invalid_cases() {
        let mut doc = document();
        change(&mut doc);
        let response = admin.post("/automations", doc).await;
        assert_rejected(case, &response, field, code);
    }

    assert_eq!(automation_count(&admin).await, 0, "no automation was stored");
}

#[tokio::test]
async fn new_project_is_created_on_first_use() {
    let (_server, admin) = server_with_project().await;

    // A rejected document creates no project, even one that names a new project.
    let mut invalid = document();
    invalid["scope"]["project"] = json!("fresh");
    invalid["action"]["integration"] = json!("nope");
    assert_rejected(
        "missing integration",
        &admin.post("/automations", invalid).await,
        "action.integration",
        "not_found",
    );
    expect(admin.get("/projects/ml/fresh").await, 404);

    let mut valid = document();
    valid["scope"]["project"] = json!("fresh");
    let created = create(&admin, valid).await;
    assert_eq!(created["scope"]["project"], "fresh");
    expect(admin.get("/projects/ml/fresh").await, 200);
}

#[tokio::test]
async fn scalar_payloads_rejected_before_project_creation() {
    let (_server, admin) = server_with_project().await;

    // Each scalar, given directly or as a string of JSON text, names a project that does not
    // exist yet, which a rejected document must not create.
    let payloads = [json!("\"text\""), json!("5"), json!("true"), json!(5), json!(true)];
    for payload in payloads {
        let mut doc = document();
        doc["scope"]["project"] = json!("fresh");
        doc["action"]["request_payload"] = payload.clone();
        let response = admin.post("/automations", doc).await;
        assert_rejected(&payload.to_string(), &response, "action.request_payload", "invalid_template");
        assert_eq!(response.field(), "action.request_payload");
        assert!(response.detail().contains(&payload.to_string()), "{payload}: {}", response.detail());
    }
    expect(admin.get("/projects/ml/fresh").await, 404);
    assert_eq!(automation_count(&admin).await, 0);

    // An array is a template in both forms, and it reads back.
    for (name, payload) in [("array", json!(["${run_name}"])), ("array-text", json!("[\"${run_name}\"]"))] {
        let mut doc = document();
        doc["name"] = json!(name);
        doc["action"]["request_payload"] = payload;
        let created = create(&admin, doc).await;
        let fetched = expect(admin.get(&format!("/automations/{}", created["id"].as_str().unwrap())).await, 200);
        assert_eq!(fetched.body["action"]["request_payload"], json!(["${run_name}"]), "{name}");
    }
}

#[tokio::test]
async fn size_limits_name_count_and_limit() {
    let (_server, admin) = server_with_project().await;

    let mut many = document();
    let references = "${run_name}".repeat(MAX_TEMPLATE_VARIABLES + 1);
    many["action"]["request_payload"] = json!({"a": references});
    let response = admin.post("/automations", many).await;
    assert_rejected("many references", &response, "action.request_payload", "invalid_template");
    let expected = format!("{} variable references; use at most {MAX_TEMPLATE_VARIABLES}", MAX_TEMPLATE_VARIABLES + 1);
    assert!(response.detail().contains(&expected), "{}", response.detail());

    let mut large = document();
    large["action"]["request_payload"] = json!({"text": "x".repeat(MAX_TEMPLATE_BYTES)});
    let response = admin.post("/automations", large).await;
    assert_rejected("large template", &response, "action.request_payload", "invalid_template");
    let expected =
        format!("{} bytes of compact JSON; shorten it to at most {MAX_TEMPLATE_BYTES}", MAX_TEMPLATE_BYTES + 11);
    assert!(response.detail().contains(&expected), "{}", response.detail());

    let mut long_metric = document();
    long_metric["event"]["threshold_filter"]["name"] = json!("m".repeat(MAX_METRIC_NAME_CHARS + 1));
    let response = admin.post("/automations", long_metric).await;
    assert_rejected("long metric name", &response, "event.threshold_filter.name", "invalid_value");
    let expected = format!("{} characters; shorten it to at most {MAX_METRIC_NAME_CHARS}", MAX_METRIC_NAME_CHARS + 1);
    assert!(response.detail().contains(&expected), "{}", response.detail());

    let mut long_description = document();
    long_description["description"] = json!("d".repeat(4_001));
    let response = admin.post("/automations", long_description).await;
    assert_rejected("long description", &response, "description", "invalid_value");
    assert!(response.detail().contains("4001 characters; shorten it to at most 4000"), "{}", response.detail());

    assert_eq!(automation_count(&admin).await, 0);

    // Exactly at each limit is accepted.
    let mut at_limits = document();
    at_limits["event"]["threshold_filter"]["name"] = json!("m".repeat(MAX_METRIC_NAME_CHARS));
    at_limits["action"]["request_payload"] = json!({"a": "${run_name}".repeat(MAX_TEMPLATE_VARIABLES)});
    create(&admin, at_limits).await;
}

#[tokio::test]
async fn personal_scope_webhook_explains_teams() {
    let (_server, admin) = server_with_project().await;
    let mut personal = document();
    personal["scope"] = json!({"type": "PROJECT", "entity": "admin", "project": "own"});

    let response = admin.post("/automations", personal).await;

    assert_rejected("personal scope", &response, "action.integration", "not_found");
    assert!(response.detail().contains("integrations belong to teams"), "{}", response.detail());
    assert!(response.detail().contains("NO_OP"), "{}", response.detail());
    assert!(!response.detail().contains("--team admin"), "{}", response.detail());
    expect(admin.get("/projects/admin/own").await, 404);
}

#[tokio::test]
async fn invalid_update_keeps_revision() {
    let (_server, admin) = server_with_project().await;
    let created = create(&admin, document()).await;
    let path = format!("/automations/{}", created["id"].as_str().unwrap());

    for (case, change, field, code) in invalid_cases() {
        let mut doc = document();
        change(&mut doc);
        let response = admin.put(&path, doc).await;
        assert_rejected(case, &response, field, code);
    }

    let fetched = expect(admin.get(&path).await, 200).body;
    assert_eq!(fetched, created, "the automation is unchanged");
}

#[tokio::test]
async fn put_creates_revision_two() {
    let (_server, admin) = server_with_project().await;
    let created = create(&admin, document()).await;
    let path = format!("/automations/{}", created["id"].as_str().unwrap());

    let mut changed = created.clone();
    changed["event"]["threshold_filter"]["threshold"] = json!(0.1);
    changed["description"] = json!("tighter");
    let updated = expect(admin.put(&path, changed).await, 200).body;

    assert_eq!(updated["revision"], 2);
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["event"]["threshold_filter"]["threshold"], 0.1);
    assert_eq!(updated["description"], "tighter");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(expect(admin.get(&path).await, 200).body, updated);
}

#[tokio::test]
async fn put_moves_automation_between_projects() {
    let (_server, admin) = server_with_project().await;
    expect(admin.post("/projects", json!({"entity": "ml", "name": "other"})).await, 201);
    let created = create(&admin, document()).await;
    let path = format!("/automations/{}", created["id"].as_str().unwrap());

    let mut moved = document();
    moved["scope"]["project"] = json!("other");
    let updated = expect(admin.put(&path, moved).await, 200).body;

    assert_eq!(updated["scope"]["project"], "other");
    let in_demo = expect(admin.get("/automations?project=ml/demo").await, 200);
    assert!(in_demo.items().is_empty());
    let in_other = expect(admin.get("/automations?project=ml/other").await, 200);
    assert_eq!(in_other.items().len(), 1);
}

#[tokio::test]
async fn enable_and_disable_keep_revision() {
    let (_server, admin) = server_with_project().await;
    let created = create(&admin, document()).await;
    let id = created["id"].as_str().unwrap();

    let disabled = expect(admin.post_empty(&format!("/automations/{id}/disable")).await, 200).body;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["revision"], 1);
    assert_eq!(expect(admin.get(&format!("/automations/{id}")).await, 200).body["enabled"], false);

    let enabled = expect(admin.post_empty(&format!("/automations/{id}/enable")).await, 200).body;
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["revision"], 1);

    let mut off = document();
    off["name"] = json!("second");
    off["enabled"] = json!(false);
    let created_disabled = create(&admin, off).await;
    assert_eq!(created_disabled["enabled"], false);
}

#[tokio::test]
async fn duplicate_name_in_project_is_409() {
    let (_server, admin) = server_with_project().await;
    create(&admin, document()).await;

    let duplicate = admin.post("/automations", document()).await;

    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.code(), "already_exists");
    assert_eq!(automation_count(&admin).await, 1);
}

#[tokio::test]
async fn delete_frees_the_integration() {
    let (_server, admin) = server_with_project().await;
    let created = create(&admin, document()).await;
    let path = format!("/automations/{}", created["id"].as_str().unwrap());

    let in_use = admin.delete("/teams/ml/integrations/ci").await;
    assert_eq!(in_use.status, 409);
    assert_eq!(in_use.code(), "in_use");
    assert!(in_use.detail().contains("loss-low"), "{}", in_use.detail());

    expect(admin.delete(&path).await, 204);
    assert_eq!(admin.get(&path).await.status, 404);
    assert_eq!(admin.delete(&path).await.status, 404);
    assert_eq!(automation_count(&admin).await, 0);
    expect(admin.delete("/teams/ml/integrations/ci").await, 204);
}

#[tokio::test]
async fn list_filters_by_project_entity_and_name() {
    let (_server, admin) = server_with_project().await;
    expect(admin.post("/projects", json!({"entity": "ml", "name": "other"})).await, 201);
    expect(admin.post("/projects", json!({"entity": "admin", "name": "own"})).await, 201);
    create(&admin, document()).await;
    let mut other = document();
    other["scope"]["project"] = json!("other");
    create(&admin, other).await;
    let mut own = document();
    own["name"] = json!("own-noop");
    own["scope"] = json!({"type": "PROJECT", "entity": "admin", "project": "own"});
    own["action"] = json!({"type": "NO_OP"});
    create(&admin, own).await;

    let scopes = |response: ApiResponse| -> Vec<String> {
        response
            .items()
            .iter()
            .map(|item| {
                format!("{}/{}:{}", item["scope"]["entity"], item["scope"]["project"], item["name"]).replace('"', "")
            })
            .collect()
    };
    assert_eq!(
        scopes(expect(admin.get("/automations").await, 200)),
        ["admin/own:own-noop", "ml/demo:loss-low", "ml/other:loss-low"]
    );
    assert_eq!(scopes(expect(admin.get("/automations?project=ml/other").await, 200)), ["ml/other:loss-low"]);
    assert_eq!(scopes(expect(admin.get("/automations?entity=ml").await, 200)).len(), 2);
    assert_eq!(scopes(expect(admin.get("/automations?name=own-noop").await, 200)), ["admin/own:own-noop"]);
    assert_eq!(expect(admin.get("/automations?name=loss-low").await, 200).items().len(), 2);

    let malformed = admin.get("/automations?project=no-slash").await;
    assert_eq!(malformed.status, 422);
    assert_eq!(malformed.field(), "project");
    assert_eq!(admin.get("/automations?project=ml/none").await.status, 404);
    assert_eq!(admin.get("/automations?colour=red").await.status, 400);
}

#[tokio::test]
async fn permissions_follow_team_roles() {
    let (server, admin) = server_with_project().await;
    let viewer = admin.with_key(Some(&server.create_user("vic").await));
    let member = admin.with_key(Some(&server.create_user("mia").await));
    let outsider = admin.with_key(Some(&server.create_user("olga").await));
    expect(admin.put("/teams/ml/members/vic", json!({"role": "viewer"})).await, 200);
    expect(admin.put("/teams/ml/members/mia", json!({"role": "member"})).await, 200);

    assert_eq!(viewer.post("/automations", document()).await.status, 403);
    let created = create(&member, document()).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/automations/{id}");

    assert_eq!(expect(viewer.get(&path).await, 200).body, created);
    assert_eq!(viewer.put(&path, document()).await.status, 403);
    assert_eq!(viewer.post_empty(&format!("{path}/disable")).await.status, 403);
    assert_eq!(viewer.delete(&path).await.status, 403);
    assert_eq!(viewer.get(&format!("{path}/executions")).await.status, 200);

    assert_eq!(outsider.get(&path).await.status, 403);
    assert_eq!(outsider.get(&format!("{path}/executions")).await.status, 403);
    assert!(expect(outsider.get("/automations").await, 200).items().is_empty());
    assert_eq!(outsider.get("/automations?entity=ml").await.status, 403);
    assert_eq!(outsider.post("/automations", document()).await.status, 403);

    expect(member.post_empty(&format!("{path}/disable")).await, 200);
    expect(member.delete(&path).await, 204);
}

#[tokio::test]
async fn executions_listed_after_evaluation() {
    let (server, admin) = server_with_project().await;
    let mut noop = document();
    noop["name"] = json!("loss-dip");
    noop["event"] = json!({"type": "RUN_METRIC",
                           "threshold_filter": {"name": "loss", "window_size": 1, "cmp_op": "$lt", "threshold": 0.2}});
    noop["action"] = json!({"type": "NO_OP"});
    let automation = create(&admin, noop).await;
    let id = automation["id"].as_str().unwrap().to_owned();

    // Three dips below the threshold are three crossings; the cooldown is zero.
    let losses = [0.5, 0.1, 0.5, 0.1, 0.5, 0.1];
    write_history(&server, &losses).await;

    let executions = wait_for_executions(&admin, &id, 3).await;
    let first = &executions[2];
    assert_eq!(first["automation_id"], automation["id"]);
    assert_eq!(first["automation_name"], "loss-dip");
    assert_eq!(first["revision"], 1);
    assert_eq!(first["event_type"], "RUN_METRIC");
    assert_eq!(first["action_type"], "NO_OP");
    assert_eq!(first["state"], "succeeded");
    assert_eq!(first["integration"], Value::Null);
    assert_eq!(first["attempt_count"], 0);
    assert!(first["event_data"].is_object());
    assert!(first.get("request_body").is_none(), "lists leave the body to the detail: {first}");
    let ids: Vec<&str> = executions.iter().map(|execution| execution["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");

    let detail = expect(admin.get(&format!("/executions/{}", ids[0])).await, 200).body;
    assert_eq!(detail["id"], ids[0]);
    assert_eq!(detail["attempts"], json!([]));
    assert_eq!(detail["request_body"], Value::Null, "a NO_OP sends no body");
    assert_eq!(detail["state"], "succeeded");

    let page_one = expect(admin.get(&format!("/automations/{id}/executions?limit=2")).await, 200);
    assert_eq!(page_one.items().len(), 2);
    let next = page_one.body["next_before"].as_str().expect("a next page").to_owned();
    assert_eq!(next, ids[1]);
    let page_two = expect(admin.get(&format!("/automations/{id}/executions?limit=2&before={next}")).await, 200);
    assert_eq!(page_two.items().len(), 1);
    assert_eq!(page_two.items()[0]["id"], ids[2]);
    assert_eq!(page_two.body["next_before"], Value::Null);

    for (query, field) in
        [("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("before=xyz", "before")]
    {
        let response = admin.get(&format!("/automations/{id}/executions?{query}")).await;
        assert_eq!(response.status, 422, "{query}");
        assert_eq!(response.field(), field, "{query}");
    }
}

#[tokio::test]
async fn deleted_automation_executions_stay_readable() {
    let (server, admin) = server_with_project().await;
    let viewer = admin.with_key(Some(&server.create_user("vic").await));
    let outsider = admin.with_key(Some(&server.create_user("olga").await));
    expect(admin.put("/teams/ml/members/vic", json!({"role": "viewer"})).await, 200);
    let mut noop = document();
    noop["event"] = json!({"type": "RUN_METRIC",
                           "threshold_filter": {"name": "loss", "window_size": 1, "cmp_op": "$lt", "threshold": 0.2}});
    noop["action"] = json!({"type": "NO_OP"});
    let automation = create(&admin, noop).await;
    let id = automation["id"].as_str().unwrap().to_owned();
    write_history(&server, &[0.5, 0.1]).await;
    let before = wait_for_executions(&admin, &id, 1).await;

    expect(admin.delete(&format!("/automations/{id}")).await, 204);

    // A viewer of the team is no organization admin, and still reads the history by the id.
    let listed = expect(viewer.get(&format!("/automations/{id}/executions")).await, 200);
    assert_eq!(listed.items(), &before);
    let execution_id = before[0]["id"].as_str().unwrap();
    let detail = expect(viewer.get(&format!("/executions/{execution_id}")).await, 200).body;
    assert_eq!(detail["id"], execution_id);
    assert_eq!(detail["automation_id"], automation["id"]);
    assert_eq!(detail["automation_name"], "loss-low");

    assert_eq!(outsider.get(&format!("/automations/{id}/executions")).await.status, 403);
    assert_eq!(outsider.get(&format!("/executions/{execution_id}")).await.status, 403);
    let unknown = herald_core::ids::AutomationId::new();
    assert_eq!(admin.get(&format!("/automations/{unknown}/executions")).await.status, 404);
    assert_eq!(viewer.get(&format!("/automations/{id}")).await.status, 404, "the automation itself is gone");
}

/// Creates run `exp-1` in `ml/demo` and writes one history line per loss value, the way
/// the file_stream endpoint does.
async fn write_history(server: &TestServer, losses: &[f64]) {
    let store = &server.store;
    let admin = store.user_by_name("admin").await.unwrap().expect("the admin user");
    let team = store.entity_by_name("ml").await.unwrap().expect("team ml");
    let project = store.project_by_name(team.id, "demo").await.unwrap().expect("project demo");
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
    let outcome = store.apply_file_stream(run.id, batch).await.unwrap();
    assert!(outcome.events_recorded > 0);
    server.state.wake_evaluator();
}

async fn wait_for_executions(api: &Api, automation: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = expect(api.get(&format!("/automations/{automation}/executions")).await, 200);
        if response.items().len() >= count {
            return response.items().clone();
        }
        assert!(Instant::now() < deadline, "expected {count} executions, got {}", response.items().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
