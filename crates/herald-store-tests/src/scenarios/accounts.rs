//! Bootstrap, settings, users, API keys, teams and memberships.

use std::sync::Arc;

use herald_core::model::{EntityKind, Role};
use herald_store::{Bootstrap, BootstrapOutcome, NewUser, Store};

use super::{expect_conflict, expect_not_found};
use crate::fixtures::{key_hash, user};

/// Checks that the first bootstrap creates the organization and its admin. Every later one
/// changes nothing, and the admin's key finds the admin.
pub async fn bootstrap_creates_admin_once(store: Arc<dyn Store>) {
    let first = Bootstrap { organization: "acme".into(), admin_name: "root".into(), admin_api_key_hash: key_hash(1) };
    let BootstrapOutcome::Created(admin) = store.bootstrap(first).await.unwrap() else {
        panic!("the first bootstrap did not create the admin");
    };
    assert_eq!(admin.name, "root");
    assert!(admin.is_org_admin);

    let second =
        Bootstrap { organization: "other".into(), admin_name: "root2".into(), admin_api_key_hash: key_hash(2) };
    assert_eq!(store.bootstrap(second).await.unwrap(), BootstrapOutcome::AlreadyInitialized);

    assert_eq!(store.setting("organization").await.unwrap().as_deref(), Some("acme"));
    let users = store.list_users().await.unwrap();
    assert_eq!(users, vec![admin.clone()], "the second bootstrap created a user");
    assert!(store.user_by_api_key(&key_hash(2)).await.unwrap().is_none(), "the second admin key was stored");

    assert_eq!(store.user_by_api_key(&key_hash(1)).await.unwrap(), Some(admin.clone()));
    assert_eq!(store.user_by_name("root").await.unwrap(), Some(admin.clone()));
    let entity = store.entity_by_name("root").await.unwrap().expect("the admin's personal entity");
    assert_eq!(entity.id, admin.entity_id);
    assert_eq!(entity.kind, EntityKind::User);
}

/// Checks that `insert_setting_if_absent` keeps the first value and returns it to later
/// callers.
pub async fn settings_keep_first_value(store: Arc<dyn Store>) {
    assert_eq!(store.setting("key_check").await.unwrap(), None);
    assert_eq!(store.insert_setting_if_absent("key_check", "first").await.unwrap(), "first");
    assert_eq!(store.insert_setting_if_absent("key_check", "second").await.unwrap(), "first");
    assert_eq!(store.setting("key_check").await.unwrap().as_deref(), Some("first"));
}

/// Checks that users and teams share one namespace of names, and a failed creation leaves no
/// trace.
pub async fn entity_names_shared_by_users_and_teams(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice", 10).await;

    let detail = expect_conflict(store.create_team("alice", alice.id).await, "already_exists");
    assert!(detail.contains("\"alice\""), "the conflict does not name the taken name: {detail}");
    assert_eq!(store.list_teams(None).await.unwrap(), vec![]);

    let team = store.create_team("ml", alice.id).await.unwrap();
    let taken = NewUser { name: "ml".into(), is_org_admin: false, api_key_hash: key_hash(11) };
    expect_conflict(store.create_user(taken).await, "already_exists");
    assert!(store.user_by_name("ml").await.unwrap().is_none());
    assert!(store.user_by_api_key(&key_hash(11)).await.unwrap().is_none(), "a failed user creation kept its key");
    assert_eq!(store.entity_by_name("ml").await.unwrap().map(|entity| entity.id), Some(team.id));

    // A key hash identifies one user, so reusing one is a conflict too.
    let same_key = NewUser { name: "bob".into(), is_org_admin: false, api_key_hash: key_hash(10) };
    expect_conflict(store.create_user(same_key).await, "already_exists");
    assert!(store.user_by_name("bob").await.unwrap().is_none(), "a user with a reused key was stored");
    assert!(store.entity_by_name("bob").await.unwrap().is_none(), "a failed user creation kept its entity");
    assert_eq!(store.list_users().await.unwrap(), vec![alice]);
}

/// Checks that the creator of a team is its admin, and teams list by name, optionally by
/// member.
pub async fn team_creator_is_admin(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice", 10).await;
    let bob = user(&*store, "bob", 11).await;
    let zeta = store.create_team("zeta", alice.id).await.unwrap();
    let beta = store.create_team("beta", bob.id).await.unwrap();
    assert_eq!(zeta.kind, EntityKind::Team);

    let members = store.list_members(zeta.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, alice.id);
    assert_eq!(members[0].user_name, "alice");
    assert_eq!(members[0].role, Role::Admin);

    let all: Vec<String> = store.list_teams(None).await.unwrap().into_iter().map(|team| team.name).collect();
    assert_eq!(all, ["beta", "zeta"], "teams are not listed by name, or users are listed as teams");
    assert_eq!(store.list_teams(Some(alice.id)).await.unwrap(), vec![zeta.clone()]);

    store.set_membership(beta.id, alice.id, Role::Viewer).await.unwrap();
    assert_eq!(store.list_teams(Some(alice.id)).await.unwrap(), vec![beta, zeta]);
}

/// Checks that no membership change may leave a team without an admin.
pub async fn last_admin_cannot_leave(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice", 10).await;
    let bob = user(&*store, "bob", 11).await;
    let team = store.create_team("ml", alice.id).await.unwrap();

    expect_conflict(store.remove_membership(team.id, alice.id).await, "last_admin");
    expect_conflict(store.set_membership(team.id, alice.id, Role::Member).await, "last_admin");
    assert_eq!(store.role_in(team.id, alice.id).await.unwrap(), Some(Role::Admin), "a refused change was stored");

    store.set_membership(team.id, bob.id, Role::Admin).await.unwrap();
    store.set_membership(team.id, alice.id, Role::Member).await.unwrap();
    expect_conflict(store.remove_membership(team.id, bob.id).await, "last_admin");
    store.remove_membership(team.id, alice.id).await.unwrap();

    let members = store.list_members(team.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].user_id, members[0].role), (bob.id, Role::Admin));

    expect_not_found(store.remove_membership(team.id, alice.id).await);
    expect_not_found(store.set_membership(alice.entity_id, bob.id, Role::Member).await);
}

/// Checks that a user is admin of their personal entity and has their membership role in a
/// team.
pub async fn role_in_personal_and_team(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice", 10).await;
    let bob = user(&*store, "bob", 11).await;
    let carol = user(&*store, "carol", 12).await;
    let team = store.create_team("ml", alice.id).await.unwrap();
    store.set_membership(team.id, bob.id, Role::Viewer).await.unwrap();

    assert_eq!(store.role_in(alice.entity_id, alice.id).await.unwrap(), Some(Role::Admin));
    assert_eq!(store.role_in(bob.entity_id, alice.id).await.unwrap(), None);
    assert_eq!(store.role_in(team.id, alice.id).await.unwrap(), Some(Role::Admin));
    assert_eq!(store.role_in(team.id, bob.id).await.unwrap(), Some(Role::Viewer));
    assert_eq!(store.role_in(team.id, carol.id).await.unwrap(), None);

    store.set_membership(team.id, bob.id, Role::Member).await.unwrap();
    assert_eq!(store.role_in(team.id, bob.id).await.unwrap(), Some(Role::Member));
    assert_eq!(store.list_members(team.id).await.unwrap().len(), 2, "changing a role added a membership");
}
