//! REST API: authentication, the caller, users, teams, members and projects.

mod api_common;
mod support;

use api_common::{Api, expect};
use base64::Engine;
use reqwest::Method;
use serde_json::json;
use support::TestServer;

fn names(items: &[serde_json::Value], key: &str) -> Vec<String> {
    items.iter().map(|item| item[key].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let server = TestServer::start().await;
    let api = Api::new(&server.url, &server.admin_key);

    let anonymous = api.with_key(None).get("/viewer").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.code(), "unauthorized");

    let wrong = api.with_key(Some(&"f".repeat(40))).get("/teams").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.code(), "unauthorized");

    let short = api.with_key(Some("short")).get("/teams").await;
    assert_eq!(short.status, 401);
}

#[tokio::test]
async fn challenge_is_bearer_not_basic() {
    let server = TestServer::start().await;
    let response = reqwest::get(format!("{}/api/v1/viewer", server.url)).await.unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"herald\"");
}

#[tokio::test]
async fn basic_auth_with_user_api_is_accepted() {
    let server = TestServer::start().await;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("api:{}", server.admin_key));

    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/viewer", server.url))
        .header("authorization", format!("Basic {credentials}"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["name"], "admin");
}

#[tokio::test]
async fn viewer_shows_caller_and_teams() {
    let server = TestServer::start().await;
    let api = Api::new(&server.url, &server.admin_key);
    expect(api.post("/teams", json!({"name": "ml"})).await, 201);

    let viewer = expect(api.get("/viewer").await, 200).body;

    assert_eq!(viewer["name"], "admin");
    assert_eq!(viewer["entity"], "admin");
    assert_eq!(viewer["is_org_admin"], true);
    assert_eq!(viewer["teams"], json!([{"name": "ml", "role": "admin"}]));
    assert!(viewer["id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
}

#[tokio::test]
async fn org_admin_creates_users_with_keys() {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);

    let created = expect(admin.post("/users", json!({"name": "alice"})).await, 201).body;
    assert_eq!(created["user"]["name"], "alice");
    assert_eq!(created["user"]["is_org_admin"], false);
    let alice_key = created["api_key"].as_str().expect("an API key").to_owned();
    assert_eq!(alice_key.len(), 40);

    let alice = admin.with_key(Some(&alice_key));
    assert_eq!(expect(alice.get("/viewer").await, 200).body["name"], "alice");

    let users = expect(admin.get("/users").await, 200);
    assert_eq!(names(users.items(), "name"), ["admin", "alice"]);

    let duplicate = admin.post("/users", json!({"name": "alice"})).await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.code(), "already_exists");

    let invalid = admin.post("/users", json!({"name": "-bad name"})).await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.field(), "name");
    assert!(invalid.detail().contains("-bad name"), "{}", invalid.detail());
}

#[tokio::test]
async fn only_org_admins_manage_users() {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);
    let alice = admin.with_key(Some(&server.create_user("alice").await));

    let create = alice.post("/users", json!({"name": "mallory", "is_org_admin": true})).await;
    assert_eq!(create.status, 403);
    assert_eq!(create.code(), "forbidden");
    assert_eq!(alice.get("/users").await.status, 403);

    let users = expect(admin.get("/users").await, 200);
    assert_eq!(names(users.items(), "name"), ["admin", "alice"], "no user was created");
}

#[tokio::test]
async fn team_creator_becomes_admin() {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);
    let alice = admin.with_key(Some(&server.create_user("alice").await));

    let team = expect(alice.post("/teams", json!({"name": "vision"})).await, 201).body;
    assert_eq!(team["name"], "vision");
    assert!(team["created_at"].as_str().is_some_and(|time| time.ends_with('Z')));

    let detail = expect(alice.get("/teams/vision").await, 200).body;
    assert_eq!(
        detail["members"],
        json!([{"user_id": detail["members"][0]["user_id"], "user": "alice", "role": "admin"}])
    );

    let taken = alice.post("/teams", json!({"name": "alice"})).await;
    assert_eq!(taken.status, 409, "a team cannot take a user's name");
    let invalid = alice.post("/teams", json!({"name": "has space"})).await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.field(), "name");
}

#[tokio::test]
async fn team_lists_depend_on_membership() {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);
    let alice = admin.with_key(Some(&server.create_user("alice").await));
    let bob = admin.with_key(Some(&server.create_user("bob").await));
    expect(alice.post("/teams", json!({"name": "vision"})).await, 201);
    expect(admin.post("/teams", json!({"name": "nlp"})).await, 201);

    assert_eq!(names(expect(alice.get("/teams").await, 200).items(), "name"), ["vision"]);
    assert!(expect(bob.get("/teams").await, 200).items().is_empty());
    assert_eq!(names(expect(admin.get("/teams").await, 200).items(), "name"), ["nlp", "vision"]);
}

#[tokio::test]
async fn members_are_managed_by_team_admins() {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);
    let alice = admin.with_key(Some(&server.create_user("alice").await));
    let bob = admin.with_key(Some(&server.create_user("bob").await));
    expect(alice.post("/teams", json!({"name": "vision"})).await, 201);

    let outsider = bob.get("/teams/vision").await;
    assert_eq!(outsider.status, 403);
    assert!(outsider.detail().contains("not a member"), "{}", outsider.detail());
    assert_eq!(bob.get("/teams/vision/members").await.status, 403);

    let added = expect(alice.put("/teams/vision/members/bob", json!({"role": "viewer"})).await, 200).body;
    assert_eq!(added["user"], "bob");
    assert_eq!(added["role"], "viewer");

    let members = expect(bob.get("/teams/vision/members").await, 200);
    assert_eq!(names(members.items(), "user"), ["alice", "bob"]);

    let viewer_edit = bob.put("/teams/vision/members/bob", json!({"role": "admin"})).await;
    assert_eq!(viewer_edit.status, 403, "a viewer cannot promote itself");

    let bad_role = alice.put("/teams/vision/members/bob", json!({"role": "owner"})).await;
    assert_eq!(bad_role.status, 422);
    assert_eq!(bad_role.field(), "role");

    let unknown_user = alice.put("/teams/vision/members/nobody", json!({"role": "member"})).await;
    assert_eq!(unknown_user.status, 404);

    let last_admin = alice.delete("/teams/vision/members/alice").await;
    assert_eq!(last_admin.status, 409);
    assert_eq!(last_admin.code(), "last_admin");

    expect(alice.delete("/teams/vision/members/bob").await, 204);
    let members = expect(alice.get("/teams/vision/members").await, 200);
    assert_eq!(names(members.items(), "user"), ["alice"]);
    assert_eq!(alice.delete("/teams/vision/members/bob").await.status, 404);
}

#[tokio::test]
async fn projects_need_membership() {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);
    let alice = admin.with_key(Some(&server.create_user("alice").await));
    let bob = admin.with_key(Some(&server.create_user("bob").await));
    expect(alice.post("/teams", json!({"name": "vision"})).await, 201);
    expect(alice.put("/teams/vision/members/bob", json!({"role": "viewer"})).await, 200);

    let project = expect(alice.post("/projects", json!({"entity": "vision", "name": "demo"})).await, 201).body;
    assert_eq!(project["entity"], "vision");
    assert_eq!(project["name"], "demo");
    expect(alice.post("/projects", json!({"entity": "alice", "name": "scratch"})).await, 201);

    let duplicate = alice.post("/projects", json!({"entity": "vision", "name": "demo"})).await;
    assert_eq!(duplicate.status, 409);
    let by_viewer = bob.post("/projects", json!({"entity": "vision", "name": "other"})).await;
    assert_eq!(by_viewer.status, 403, "viewers cannot create projects");
    let missing_entity = alice.post("/projects", json!({"entity": "nobody", "name": "x"})).await;
    assert_eq!(missing_entity.status, 422);
    assert_eq!(missing_entity.field(), "entity");
    let bad_name = alice.post("/projects", json!({"entity": "vision", "name": "a/b"})).await;
    assert_eq!(bad_name.status, 422);
    assert_eq!(bad_name.field(), "name");

    let alice_list = expect(alice.get("/projects").await, 200);
    assert_eq!(names(alice_list.items(), "name"), ["scratch", "demo"]);
    let bob_list = expect(bob.get("/projects").await, 200);
    assert_eq!(names(bob_list.items(), "name"), ["demo"], "bob reads the team's projects, not alice's own");
    let filtered = expect(alice.get("/projects?entity=vision").await, 200);
    assert_eq!(names(filtered.items(), "name"), ["demo"]);
    assert_eq!(bob.get("/projects?entity=alice").await.status, 403);

    assert_eq!(expect(bob.get("/projects/vision/demo").await, 200).body["name"], "demo");
    assert_eq!(bob.get("/projects/vision/missing").await.status, 404);
    assert_eq!(bob.get("/projects/alice/scratch").await.status, 403);
}

#[tokio::test]
async fn dot_segment_project_names_rejected() {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);

    for name in [".", ".."] {
        let rejected = admin.post("/projects", json!({"entity": "admin", "name": name})).await;
        assert_eq!(rejected.status, 422, "{name}: {}", rejected.body);
        assert_eq!(rejected.code(), "invalid_value", "{name}");
        assert_eq!(rejected.field(), "name", "{name}");
        assert!(rejected.detail().contains(&format!("invalid project name {name:?}")), "{name}: {}", rejected.detail());
    }
    expect(admin.post("/projects", json!({"entity": "admin", "name": "..."})).await, 201);
    expect(admin.get("/projects/admin/...").await, 200);

    assert_eq!(names(expect(admin.get("/projects").await, 200).items(), "name"), ["..."]);
}

#[tokio::test]
async fn malformed_bodies_change_nothing() {
    let server = TestServer::start().await;
    let api = Api::new(&server.url, &server.admin_key);

    let not_json = api.send_raw(Method::POST, "/teams", "application/json", "{\"name\": ").await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.code(), "invalid_request");
    assert!(not_json.detail().contains("line 1"), "serde's message: {}", not_json.detail());

    let not_object = api.send_raw(Method::POST, "/teams", "application/json", "[1]").await;
    assert_eq!(not_object.status, 422);

    let unknown = api.post("/teams", json!({"name": "ok", "colour": "red"})).await;
    assert_eq!(unknown.status, 422);
    assert_eq!(unknown.code(), "unknown_field");
    assert_eq!(unknown.field(), "colour");

    let wrong_type = api.post("/teams", json!({"name": 7})).await;
    assert_eq!(wrong_type.status, 422);
    assert_eq!(wrong_type.field(), "name");

    let form = api.send_raw(Method::POST, "/teams", "text/plain", "{\"name\": \"ok\"}").await;
    assert_eq!(form.status, 415);
    assert_eq!(form.code(), "unsupported_media_type");

    assert!(expect(api.get("/teams").await, 200).items().is_empty(), "no team was created");
}

#[tokio::test]
async fn unknown_routes_and_ids_are_404() {
    let server = TestServer::start().await;
    let api = Api::new(&server.url, &server.admin_key);

    let route = api.get("/no-such-thing").await;
    assert_eq!(route.status, 404);
    assert_eq!(route.code(), "not_found");

    let automation = api.get("/automations/not-a-uuid").await;
    assert_eq!(automation.status, 404);
    assert_eq!(automation.code(), "not_found");
    let execution = api.get("/executions/12345").await;
    assert_eq!(execution.status, 404);
    let missing = api.get("/automations/0190c9a4-6a5e-7cc0-8f5e-7f3a2b1c0d9e").await;
    assert_eq!(missing.status, 404);

    let method = api.send(Method::PATCH, "/teams", None).await;
    assert_eq!(method.status, 405);
    assert_eq!(method.code(), "method_not_allowed");
}
