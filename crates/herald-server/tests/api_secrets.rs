//! REST API: team secrets and webhook integrations.

mod api_common;
mod support;

use api_common::{Api, expect};
use herald_dispatch::network::NetworkPolicy;
use serde_json::json;
use support::TestServer;

const SECRET_VALUE: &str = "tok-8f3a2b1c0d9e-do-not-show";

/// Starts a server with a team `ml` whose admin is the org admin, and a member and a
/// viewer besides.
async fn server_with_team() -> (TestServer, Api, Api, Api) {
    let server = TestServer::start().await;
    let admin = Api::new(&server.url, &server.admin_key);
    let member = admin.with_key(Some(&server.create_user("mia").await));
    let viewer = admin.with_key(Some(&server.create_user("vic").await));
    expect(admin.post("/teams", json!({"name": "ml"})).await, 201);
    expect(admin.put("/teams/ml/members/mia", json!({"role": "member"})).await, 200);
    expect(admin.put("/teams/ml/members/vic", json!({"role": "viewer"})).await, 200);
    (server, admin, member, viewer)
}

#[tokio::test]
async fn secret_put_creates_then_updates() {
    let (server, admin, _, _) = server_with_team().await;

    let created = expect(admin.put("/teams/ml/secrets/TOKEN", json!({"value": SECRET_VALUE})).await, 201).body;
    assert_eq!(created["name"], "TOKEN");
    let updated = expect(admin.put("/teams/ml/secrets/TOKEN", json!({"value": "second"})).await, 200).body;
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(updated.as_object().map(|object| object.len()), Some(3), "only name and times: {updated}");

    let team = server.store.entity_by_name("ml").await.unwrap().unwrap();
    let meta = server.store.secret_by_name(team.id, "TOKEN").await.unwrap().unwrap();
    let sealed = server.store.sealed_secret(meta.id).await.unwrap().unwrap();
    assert!(!sealed.windows(6).any(|window| window == b"second"), "the store holds the value sealed");
    assert_eq!(server.state.settings.secret_key.open(&sealed).unwrap(), b"second");
}

#[tokio::test]
async fn secret_values_never_appear_in_responses() {
    let (_server, admin, member, viewer) = server_with_team().await;

    expect(admin.put("/teams/ml/secrets/TOKEN", json!({"value": SECRET_VALUE})).await, 201);
    expect(admin.put("/teams/ml/secrets/TOKEN", json!({"value": SECRET_VALUE})).await, 200);
    let listed = expect(viewer.get("/teams/ml/secrets").await, 200);
    assert_eq!(listed.items().len(), 1);
    assert_eq!(listed.items()[0]["name"], "TOKEN");

    // Rejected requests that carry the value must not echo it either.
    assert_eq!(member.put("/teams/ml/secrets/TOKEN", json!({"value": SECRET_VALUE})).await.status, 403);
    assert_eq!(admin.put("/teams/ml/secrets/9bad", json!({"value": SECRET_VALUE})).await.status, 422);
    let extra = admin.put("/teams/ml/secrets/TOKEN", json!({"value": SECRET_VALUE, "note": SECRET_VALUE})).await;
    assert_eq!(extra.status, 422);
    assert_eq!(admin.put("/teams/nope/secrets/TOKEN", json!({"value": SECRET_VALUE})).await.status, 404);
    let webhook =
        json!({"type": "webhook", "name": "ci", "url": "http://127.0.0.1:9/hook", "access_token_secret": "TOKEN"});
    expect(admin.post("/teams/ml/integrations", webhook).await, 201);
    expect(viewer.get("/teams/ml/integrations/ci").await, 200);
    assert_eq!(admin.delete("/teams/ml/secrets/TOKEN").await.status, 409);

    let transcript = admin.transcript();
    assert!(transcript.len() >= 9);
    for body in transcript {
        assert!(!body.contains(SECRET_VALUE), "a response contains the secret: {body}");
    }
}

#[tokio::test]
async fn invalid_secret_values_are_422() {
    let (_server, admin, _, _) = server_with_team().await;

    let empty = admin.put("/teams/ml/secrets/TOKEN", json!({"value": ""})).await;
    assert_eq!(empty.status, 422);
    assert_eq!(empty.field(), "value");

    let number = admin.put("/teams/ml/secrets/TOKEN", json!({"value": 123456789})).await;
    assert_eq!(number.status, 422);
    assert_eq!(number.field(), "value");
    assert!(!number.detail().contains("123456789"), "the value is not quoted: {}", number.detail());

    let crlf = admin.put("/teams/ml/secrets/TOKEN", json!({"value": "tok-crlf\r\n"})).await;
    assert_eq!(crlf.status, 422);
    assert_eq!(crlf.field(), "value");
    assert!(!crlf.detail().contains("tok-crlf"), "the value is not quoted: {}", crlf.detail());

    let missing = admin.put("/teams/ml/secrets/TOKEN", json!({})).await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.code(), "missing_field");

    let bad_name = admin.put("/teams/ml/secrets/has-dash", json!({"value": "x"})).await;
    assert_eq!(bad_name.status, 422);
    assert_eq!(bad_name.field(), "name");

    assert!(expect(admin.get("/teams/ml/secrets").await, 200).items().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn secrets_need_team_admin() {
    let (server, admin, member, _) = server_with_team().await;
    let outsider = admin.with_key(Some(&server.create_user("olga").await));
    expect(admin.put("/teams/ml/secrets/TOKEN", json!({"value": "v"})).await, 201);

    let by_member = member.put("/teams/ml/secrets/OTHER", json!({"value": "v"})).await;
    assert_eq!(by_member.status, 403);
    assert!(by_member.detail().contains("admin"), "{}", by_member.detail());
    assert_eq!(member.delete("/teams/ml/secrets/TOKEN").await.status, 403);
    assert_eq!(outsider.get("/teams/ml/secrets").await.status, 403);

    expect(admin.delete("/teams/ml/secrets/TOKEN").await, 204);
    assert!(expect(member.get("/teams/ml/secrets").await, 200).items().is_empty());
    assert_eq!(admin.delete("/teams/ml/secrets/TOKEN").await.status, 404);
}

#[tokio::test]
async fn integration_names_its_secrets() {
    let (_server, admin, _, viewer) = server_with_team().await;
    expect(admin.put("/teams/ml/secrets/TOKEN", json!({"value": "a"})).await, 201);
    expect(admin.put("/teams/ml/secrets/SIGNING", json!({"value": "b"})).await, 201);

    let body = json!({"type": "webhook", "name": "ci hook", "url": "http://127.0.0.1:9/hook",
                      "access_token_secret": "TOKEN", "signing_secret": "SIGNING"});
    let created = expect(admin.post("/teams/ml/integrations", body.clone()).await, 201).body;
    assert_eq!(created["type"], "webhook");
    assert_eq!(created["team"], "ml");
    assert_eq!(created["name"], "ci hook");
    assert_eq!(created["url"], "http://127.0.0.1:9/hook");
    assert_eq!(created["access_token_secret"], "TOKEN");
    assert_eq!(created["signing_secret"], "SIGNING");

    assert_eq!(admin.post("/teams/ml/integrations", body).await.status, 409);
    let fetched = expect(viewer.get("/teams/ml/integrations/ci%20hook").await, 200).body;
    assert_eq!(fetched, created);
    let listed = expect(viewer.get("/teams/ml/integrations").await, 200);
    assert_eq!(listed.items(), &vec![created]);
    assert_eq!(viewer.get("/teams/ml/integrations/none").await.status, 404);
    assert_eq!(admin.delete("/teams/ml/secrets/SIGNING").await.code(), "in_use");

    assert_eq!(viewer.delete("/teams/ml/integrations/ci%20hook").await.status, 403);
    expect(admin.delete("/teams/ml/integrations/ci%20hook").await, 204);
    assert!(expect(admin.get("/teams/ml/integrations").await, 200).items().is_empty());
    expect(admin.delete("/teams/ml/secrets/SIGNING").await, 204);
}

#[tokio::test]
async fn integration_with_missing_secret_is_422() {
    let (_server, admin, _, _) = server_with_team().await;

    for field in ["access_token_secret", "signing_secret"] {
        let mut body = json!({"type": "webhook", "name": "ci", "url": "http://127.0.0.1:9/hook"});
        body[field] = json!("NOPE");
        let response = admin.post("/teams/ml/integrations", body).await;
        assert_eq!(response.status, 422, "{field}");
        assert_eq!(response.field(), field);
        assert!(response.detail().contains("NOPE"), "{}", response.detail());
    }

    let wrong_type = admin
        .post("/teams/ml/integrations", json!({"type": "slack", "name": "ci", "url": "http://127.0.0.1:9/"}))
        .await;
    assert_eq!(wrong_type.status, 422);
    assert_eq!(wrong_type.field(), "type");

    assert!(expect(admin.get("/teams/ml/integrations").await, 200).items().is_empty());
}

#[tokio::test]
async fn integration_url_passes_network_guard() {
    let server = TestServer::start_with(|settings| settings.network = NetworkPolicy::default()).await;
    let admin = Api::new(&server.url, &server.admin_key);
    expect(admin.post("/teams", json!({"name": "ml"})).await, 201);

    for url in ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://2130706433/", "http://localhost/"] {
        let response = admin.post("/teams/ml/integrations", json!({"type": "webhook", "name": "ci", "url": url})).await;
        assert_eq!(response.status, 422, "{url}");
        assert_eq!(response.field(), "url");
        assert!(response.detail().contains("HERALD_DELIVERY_ALLOWED_NETWORKS"), "{}", response.detail());
    }

    let scheme = admin
        .post("/teams/ml/integrations", json!({"type": "webhook", "name": "ci", "url": "ftp://example.com/"}))
        .await;
    assert_eq!(scheme.status, 422);
    assert_eq!(scheme.field(), "url");

    let credentials = json!({"type": "webhook", "name": "ci", "url": "https://user:hunter2pass@example.com/"});
    let with_password = admin.post("/teams/ml/integrations", credentials).await;
    assert_eq!(with_password.status, 422);
    assert!(!with_password.detail().contains("hunter2pass"), "{}", with_password.detail());

    assert!(expect(admin.get("/teams/ml/integrations").await, 200).items().is_empty());
    let public = json!({"type": "webhook", "name": "ci", "url": "https://hooks.example.com/herald"});
    expect(admin.post("/teams/ml/integrations", public).await, 201);
}
