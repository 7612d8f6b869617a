use veloflux_domain::{Email, PlatformRole, Role, TenantId, UserId};
use veloflux_store::{NewUser, PageRequest, Store, StoreError};

use crate::conformance;
use crate::tenants::new_tenant;

conformance!(
    creating_a_user_with_a_tenant_makes_them_its_owner,
    duplicate_emails_conflict_and_roll_back_the_tenant,
    tenant_users_lists_only_that_tenants_members,
    joining_a_missing_tenant_fails_without_creating_the_user,
    counts_platform_admins_and_records_logins,
);

pub(crate) fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        first_name: "Maria".into(),
        last_name: "Santos".into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        platform_role: None,
    }
}

async fn creating_a_user_with_a_tenant_makes_them_its_owner(store: Store) {
    let (user, tenant) = store
        .create_user_with_tenant(&new_user("maria@exemplo.com"), &new_tenant("Maria"))
        .await
        .unwrap();
    assert_eq!(user.email.as_str(), "maria@exemplo.com");
    assert_eq!(tenant.user_count, 1);
    assert_eq!(store.role_in(tenant.id, user.id).await.unwrap(), Some(Role::Owner));
    let memberships = store.memberships(user.id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].tenant_id, tenant.id);
    assert_eq!(store.user_by_email(&user.email).await.unwrap(), user);
    assert!(
        store
            .password_hash(user.id)
            .await
            .unwrap()
            .unwrap()
            .starts_with("$argon2id$")
    );
}

async fn duplicate_emails_conflict_and_roll_back_the_tenant(store: Store) {
    store
        .create_user_with_tenant(&new_user("a@exemplo.com"), &new_tenant("A"))
        .await
        .unwrap();
    let again = store
        .create_user_with_tenant(&new_user("A@Exemplo.com"), &new_tenant("B"))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })), "{again:?}");
    let tenants = store.list_tenants(&PageRequest::default()).await.unwrap();
    assert_eq!(tenants.items.len(), 1, "the second tenant was rolled back");
}

async fn tenant_users_lists_only_that_tenants_members(store: Store) {
    let (owner_a, tenant_a) = store
        .create_user_with_tenant(&new_user("a@x.com"), &new_tenant("A"))
        .await
        .unwrap();
    let (_owner_b, tenant_b) = store
        .create_user_with_tenant(&new_user("b@x.com"), &new_tenant("B"))
        .await
        .unwrap();
    let viewer = store
        .create_user_in_tenant(&new_user("v@x.com"), tenant_a.id, Role::Viewer)
        .await
        .unwrap();

    let page = store.tenant_users(tenant_a.id, &PageRequest::default()).await.unwrap();
    let listed: Vec<(UserId, Role)> = page.items.iter().map(|(u, r)| (u.id, *r)).collect();
    assert_eq!(listed, vec![(owner_a.id, Role::Owner), (viewer.id, Role::Viewer)]);

    let page = store.tenant_users(tenant_b.id, &PageRequest::default()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(store.role_in(tenant_b.id, viewer.id).await.unwrap(), None);
    assert_eq!(store.tenant(tenant_a.id).await.unwrap().user_count, 2);
}

async fn joining_a_missing_tenant_fails_without_creating_the_user(store: Store) {
    let result = store
        .create_user_in_tenant(&new_user("lost@x.com"), TenantId::new(), Role::Member)
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    let email = Email::parse("lost@x.com").unwrap();
    assert!(matches!(store.user_by_email(&email).await, Err(StoreError::NotFound)));
}

async fn counts_platform_admins_and_records_logins(store: Store) {
    assert_eq!(store.count_platform_admins().await.unwrap(), 0);
    let admin = store
        .create_user(&NewUser {
            platform_role: Some(PlatformRole::Admin),
            ..new_user("root@x.com")
        })
        .await
        .unwrap();
    assert_eq!(admin.platform_role, Some(PlatformRole::Admin));
    assert_eq!(store.count_platform_admins().await.unwrap(), 1);
    assert_eq!(admin.last_login_at, None);
    let at = store.touch_last_login(admin.id).await.unwrap();
    assert_eq!(store.user(admin.id).await.unwrap().last_login_at, Some(at));
}
