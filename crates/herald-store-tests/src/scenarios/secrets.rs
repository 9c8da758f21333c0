//! Team secrets and webhook integrations, and the references between them and automations.

use std::sync::Arc;

use herald_core::ids::{IntegrationId, SecretId};
use herald_store::{NewIntegration, PutOutcome, Store};

use super::{expect_conflict, expect_not_found};
use crate::fixtures::{automation, threshold_spec, world};

/// Checks that a secret is created, then replaced. Listings never carry the value, and only
/// `sealed_secret` returns the stored bytes.
pub async fn secrets_put_list_and_read(store: Arc<dyn Store>) {
    let world = world(&*store).await;

    let (created, outcome) = store.put_secret(world.team.id, "TOKEN", b"sealed-1".to_vec()).await.unwrap();
    assert_eq!(outcome, PutOutcome::Created);
    assert_eq!((created.entity_id, created.name.as_str()), (world.team.id, "TOKEN"));

    let (updated, outcome) = store.put_secret(world.team.id, "TOKEN", b"sealed-2".to_vec()).await.unwrap();
    assert_eq!(outcome, PutOutcome::Updated);
    assert_eq!(updated.id, created.id, "replacing a value created a new secret");
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.sealed_secret(created.id).await.unwrap(), Some(b"sealed-2".to_vec()));

    store.put_secret(world.team.id, "A_KEY", vec![0, 255, 1]).await.unwrap();
    let names: Vec<String> = store.list_secrets(world.team.id).await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["A_KEY", "TOKEN"]);
    assert!(store.list_secrets(world.admin.entity_id).await.unwrap().is_empty(), "a secret leaked into another entity");

    assert_eq!(store.secret_by_name(world.team.id, "TOKEN").await.unwrap(), Some(updated.clone()));
    assert_eq!(store.secret(created.id).await.unwrap(), Some(updated));
    assert_eq!(store.secret(SecretId::new()).await.unwrap(), None);
    assert_eq!(store.sealed_secret(SecretId::new()).await.unwrap(), None);
}

/// Checks that a secret that an integration uses cannot be deleted until the integration is
/// gone.
pub async fn secrets_delete_in_use_conflict(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let (token, _) = store.put_secret(world.team.id, "TOKEN", b"sealed".to_vec()).await.unwrap();
    let (signing, _) = store.put_secret(world.team.id, "SIGNING", b"sealed".to_vec()).await.unwrap();
    let signed = store
        .create_integration(NewIntegration {
            entity_id: world.team.id,
            name: "signed".into(),
            url: "http://127.0.0.1:9/signed".into(),
            access_token_secret_id: Some(token.id),
            signing_secret_id: Some(signing.id),
        })
        .await
        .unwrap();
    assert_eq!(signed.access_token_secret_id, Some(token.id));
    assert_eq!(signed.signing_secret_id, Some(signing.id));

    for name in ["TOKEN", "SIGNING"] {
        let detail = expect_conflict(store.delete_secret(world.team.id, name).await, "in_use");
        assert!(detail.contains("signed"), "the conflict does not name the integration: {detail}");
    }
    assert!(store.sealed_secret(token.id).await.unwrap().is_some(), "a refused delete removed the secret");
    expect_not_found(store.delete_secret(world.team.id, "MISSING").await);

    store.delete_integration(signed.id).await.unwrap();
    store.delete_secret(world.team.id, "TOKEN").await.unwrap();
    assert_eq!(store.sealed_secret(token.id).await.unwrap(), None);
    assert_eq!(store.secret_by_name(world.team.id, "TOKEN").await.unwrap(), None);
    expect_not_found(store.delete_secret(world.team.id, "TOKEN").await);
}

/// Checks that integration names are unique in a team, and integrations are found by name and
/// id.
pub async fn integrations_create_and_find(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let new = |name: &str| NewIntegration {
        entity_id: world.team.id,
        name: name.into(),
        url: format!("http://127.0.0.1:9/{name}"),
        access_token_secret_id: None,
        signing_secret_id: None,
    };

    let detail = expect_conflict(store.create_integration(new("hook")).await, "already_exists");
    assert!(detail.contains("\"hook\""), "the conflict does not name the integration: {detail}");
    let alerts = store.create_integration(new("alerts")).await.unwrap();
    assert_eq!(alerts.url, "http://127.0.0.1:9/alerts");

    assert_eq!(store.integration(alerts.id).await.unwrap(), Some(alerts.clone()));
    assert_eq!(store.integration_by_name(world.team.id, "alerts").await.unwrap(), Some(alerts.clone()));
    assert_eq!(store.integration_by_name(world.admin.entity_id, "alerts").await.unwrap(), None);
    assert_eq!(store.integration(IntegrationId::new()).await.unwrap(), None);

    let listed = store.list_integrations(world.team.id).await.unwrap();
    assert_eq!(listed, vec![alerts, world.integration]);
}

/// Checks that an integration that a live automation uses cannot be deleted. Once the
/// automation is deleted, it can.
pub async fn integrations_delete_in_use_until_automation_deleted(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let watcher = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;

    let detail = expect_conflict(store.delete_integration(world.integration.id).await, "in_use");
    assert!(detail.contains("loss-low"), "the conflict does not name the automation: {detail}");
    assert!(store.integration(world.integration.id).await.unwrap().is_some());

    store.delete_automation(watcher.id).await.unwrap();
    store.delete_integration(world.integration.id).await.unwrap();
    assert_eq!(store.integration(world.integration.id).await.unwrap(), None);
    expect_not_found(store.delete_integration(world.integration.id).await);
}
