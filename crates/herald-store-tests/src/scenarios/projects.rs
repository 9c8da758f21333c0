//! Projects.

use std::sync::Arc;

use herald_store::Store;

use super::expect_conflict;
use crate::fixtures::user;

/// Checks that a project name is unique inside its entity. `ensure_project` returns the
/// existing one and creates a missing one.
pub async fn projects_create_conflict_and_ensure(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice", 10).await;
    let team = store.create_team("ml", alice.id).await.unwrap();

    let demo = store.create_project(team.id, "demo").await.unwrap();
    assert_eq!((demo.entity_id, demo.entity_name.as_str(), demo.name.as_str()), (team.id, "ml", "demo"));
    let detail = expect_conflict(store.create_project(team.id, "demo").await, "already_exists");
    assert!(detail.contains("\"demo\""), "the conflict does not name the project: {detail}");

    assert_eq!(store.ensure_project(team.id, "demo").await.unwrap(), demo);
    let other = store.ensure_project(team.id, "other").await.unwrap();
    assert_ne!(other.id, demo.id);
    assert_eq!(store.ensure_project(team.id, "other").await.unwrap(), other);

    // The same name in another entity is another project.
    let personal = store.create_project(alice.entity_id, "demo").await.unwrap();
    assert_ne!(personal.id, demo.id);

    assert_eq!(store.project_by_name(team.id, "demo").await.unwrap(), Some(demo.clone()));
    assert_eq!(store.project(demo.id).await.unwrap(), Some(demo));
    assert_eq!(store.project_by_name(team.id, "missing").await.unwrap(), None);
    assert_eq!(store.list_projects(Some(team.id)).await.unwrap().len(), 2);
}

/// Checks that projects list by entity name, then project name, and may be limited to one
/// entity.
pub async fn projects_list_by_entity_then_name(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice", 10).await;
    let zeta = store.create_team("zeta", alice.id).await.unwrap();
    let beta = store.create_team("beta", alice.id).await.unwrap();
    for (entity, name) in [(zeta.id, "b"), (beta.id, "z"), (zeta.id, "a"), (beta.id, "Y"), (alice.entity_id, "m")] {
        store.create_project(entity, name).await.unwrap();
    }

    let listed: Vec<(String, String)> = store
        .list_projects(None)
        .await
        .unwrap()
        .into_iter()
        .map(|project| (project.entity_name, project.name))
        .collect();
    let expected = [("alice", "m"), ("beta", "Y"), ("beta", "z"), ("zeta", "a"), ("zeta", "b")];
    let expected: Vec<(String, String)> = expected.iter().map(|(e, p)| ((*e).into(), (*p).into())).collect();
    assert_eq!(listed, expected, "projects are not sorted by entity and name, byte-wise");

    let zeta_names: Vec<String> =
        store.list_projects(Some(zeta.id)).await.unwrap().into_iter().map(|project| project.name).collect();
    assert_eq!(zeta_names, ["a", "b"]);
}
