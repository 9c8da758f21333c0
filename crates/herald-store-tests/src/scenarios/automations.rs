//! Automations and their revisions.

use std::sync::Arc;

use herald_core::ids::AutomationId;
use herald_store::{AutomationFilter, NewAutomation, Store};

use super::{expect_conflict, expect_not_found};
use crate::fixtures::{automation, ids, threshold_spec, user, world};

/// Checks that an automation starts at revision 1. Each update stores a new revision with its
/// spec, and enabling or disabling keeps the revision.
pub async fn automations_create_and_revise(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let created = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    assert_eq!(created.revision, 1);
    assert!(created.enabled);
    assert_eq!(created.project_id, world.project.id);
    assert_eq!(created.created_by, world.admin.id);
    assert_eq!(created.spec, threshold_spec("loss-low", Some(world.integration.id)));

    let editor = user(&*store, "editor", 20).await;
    let mut spec = threshold_spec("loss-low", None);
    spec.description = Some("now a no-op".into());
    spec.cooldown_seconds = 60;
    let updated = store.update_automation(created.id, world.project.id, spec.clone(), false, editor.id).await.unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.spec, spec);
    assert!(!updated.enabled);
    assert_eq!(updated.created_by, world.admin.id, "an update changed who created the automation");
    assert_eq!(store.automation(created.id).await.unwrap(), Some(updated.clone()));

    let enabled = store.set_automation_enabled(created.id, true).await.unwrap();
    assert!(enabled.enabled);
    assert_eq!(enabled.revision, 2, "enabling created a revision");
    assert_eq!(enabled.spec, spec);

    // An update may move the automation to another project.
    let other = store.create_project(world.team.id, "other").await.unwrap();
    let moved = store.update_automation(created.id, other.id, spec, true, editor.id).await.unwrap();
    assert_eq!((moved.project_id, moved.revision), (other.id, 3));

    expect_not_found(store.set_automation_enabled(AutomationId::new(), true).await);
    let missing = store.update_automation(AutomationId::new(), other.id, threshold_spec("x", None), true, editor.id);
    expect_not_found(missing.await);
}

/// Checks that names are unique among a project's live automations. Deleting an automation
/// hides it and frees its name.
pub async fn automations_names_unique_per_project(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let first = automation(&*store, &world, threshold_spec("loss-low", None)).await;

    let duplicate = NewAutomation {
        project_id: world.project.id,
        spec: threshold_spec("loss-low", None),
        enabled: true,
        created_by: world.admin.id,
    };
    let detail = expect_conflict(store.create_automation(duplicate.clone()).await, "already_exists");
    assert!(detail.contains("\"loss-low\""), "the conflict does not name the automation: {detail}");

    let other = store.create_project(world.team.id, "other").await.unwrap();
    let elsewhere = store.create_automation(NewAutomation { project_id: other.id, ..duplicate.clone() }).await.unwrap();
    assert_eq!(elsewhere.project_id, other.id);

    // Renaming another automation to a taken name conflicts and stores no revision.
    let second = automation(&*store, &world, threshold_spec("acc-high", None)).await;
    let rename =
        store.update_automation(second.id, world.project.id, threshold_spec("loss-low", None), true, world.admin.id);
    expect_conflict(rename.await, "already_exists");
    let unchanged = store.automation(second.id).await.unwrap().unwrap();
    assert_eq!((unchanged.revision, unchanged.spec.name.as_str()), (1, "acc-high"));

    store.delete_automation(first.id).await.unwrap();
    assert_eq!(store.automation(first.id).await.unwrap(), None);
    let filter = AutomationFilter { project_id: Some(world.project.id), ..AutomationFilter::default() };
    assert_eq!(ids(&store.list_automations(filter).await.unwrap()), [second.id]);
    expect_not_found(store.delete_automation(first.id).await);
    expect_not_found(store.set_automation_enabled(first.id, true).await);

    let reused = store.create_automation(duplicate).await.unwrap();
    assert_ne!(reused.id, first.id);
    assert_eq!(reused.revision, 1);
}

/// Checks that listings filter by project, entity and name, and sort by entity, project and
/// name.
pub async fn automations_list_filters(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let other = store.create_project(world.team.id, "another").await.unwrap();
    let personal = store.create_project(world.admin.entity_id, "mine").await.unwrap();
    let create = |project, name: &str| {
        let new = NewAutomation {
            project_id: project,
            spec: threshold_spec(name, None),
            enabled: true,
            created_by: world.admin.id,
        };
        let store = store.clone();
        async move { store.create_automation(new).await.unwrap() }
    };
    let demo_b = create(world.project.id, "b").await;
    let demo_a = create(world.project.id, "a").await;
    let another_b = create(other.id, "b").await;
    let mine_a = create(personal.id, "a").await;

    let all = store.list_automations(AutomationFilter::default()).await.unwrap();
    assert_eq!(ids(&all), [mine_a.id, another_b.id, demo_a.id, demo_b.id], "not sorted by entity, project, name");

    let by_project = AutomationFilter { project_id: Some(world.project.id), ..AutomationFilter::default() };
    assert_eq!(ids(&store.list_automations(by_project).await.unwrap()), [demo_a.id, demo_b.id]);

    let by_entity = AutomationFilter { entity_id: Some(world.team.id), ..AutomationFilter::default() };
    assert_eq!(ids(&store.list_automations(by_entity).await.unwrap()), [another_b.id, demo_a.id, demo_b.id]);

    let by_name = AutomationFilter { name: Some("b".into()), ..AutomationFilter::default() };
    assert_eq!(ids(&store.list_automations(by_name).await.unwrap()), [another_b.id, demo_b.id]);

    let combined =
        AutomationFilter { project_id: Some(other.id), entity_id: Some(world.team.id), name: Some("b".into()) };
    assert_eq!(ids(&store.list_automations(combined).await.unwrap()), [another_b.id]);

    let nothing =
        AutomationFilter { entity_id: Some(world.admin.entity_id), name: Some("b".into()), ..Default::default() };
    assert!(store.list_automations(nothing).await.unwrap().is_empty());
}

/// Checks that an automation's project is found while it lives, follows a move to another
/// project, and stays found once the automation is deleted, because its executions stay
/// readable. An id that no automation ever had has no project.
pub async fn automation_project_survives_delete(store: Arc<dyn Store>) {
    let world = world(&*store).await;
    let created = automation(&*store, &world, threshold_spec("loss-low", Some(world.integration.id))).await;
    assert_eq!(store.automation_project(created.id).await.unwrap(), Some(world.project.id));

    let other = store.create_project(world.team.id, "other").await.unwrap();
    let spec = threshold_spec("loss-low", None);
    store.update_automation(created.id, other.id, spec, true, world.admin.id).await.unwrap();
    assert_eq!(store.automation_project(created.id).await.unwrap(), Some(other.id), "the move was not followed");

    store.delete_automation(created.id).await.unwrap();
    assert_eq!(store.automation(created.id).await.unwrap(), None);
    assert_eq!(store.automation_project(created.id).await.unwrap(), Some(other.id), "deleting lost the project");

    assert_eq!(store.automation_project(AutomationId::new()).await.unwrap(), None);
}
