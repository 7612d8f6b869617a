use chrono::{Duration, Utc};
use veloflux_domain::{TenantId, UserId};
use veloflux_store::{NewRefreshToken, OidcConfigRow, OidcLoginRow, RefreshUse, SigningKeyRow, Store, UsageEvent};

use crate::conformance;
use crate::tenants::new_tenant;
use crate::users::new_user;

conformance!(
    refresh_tokens_are_single_use_and_replays_are_reported,
    magic_links_work_once_before_expiry,
    login_throttle_counts_and_locks,
    signing_keys_rotate_and_retired_keys_age_out,
    oidc_rows_round_trip_and_logins_are_taken_once,
    usage_is_summed_per_tenant,
);

async fn owner(store: &Store) -> (UserId, TenantId) {
    let (user, tenant) = store
        .create_user_with_tenant(&new_user("o@x.com"), &new_tenant("T"))
        .await
        .unwrap();
    (user.id, tenant.id)
}

async fn refresh_tokens_are_single_use_and_replays_are_reported(store: Store) {
    let (user, tenant) = owner(&store).await;
    let token = |hash: &str, family: &str, expires| NewRefreshToken {
        token_hash: hash.into(),
        family_id: family.into(),
        user_id: user,
        tenant_id: tenant,
        expires_at: expires,
    };
    let later = Utc::now() + Duration::hours(1);
    store.insert_refresh_token(&token("h1", "f1", later)).await.unwrap();
    assert!(
        matches!(store.use_refresh_token("h1").await.unwrap(), RefreshUse::Fresh(row) if row.family_id == "f1" && row.user_id == user)
    );
    assert!(matches!(store.use_refresh_token("h1").await.unwrap(), RefreshUse::Reused(row) if row.family_id == "f1"));
    assert_eq!(store.use_refresh_token("nope").await.unwrap(), RefreshUse::Unknown);
    store
        .insert_refresh_token(&token("h2", "f2", Utc::now() - Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(store.use_refresh_token("h2").await.unwrap(), RefreshUse::Expired);

    store.insert_refresh_token(&token("h3", "f1", later)).await.unwrap();
    assert!(!store.is_refresh_family_revoked("f1").await.unwrap());
    assert_eq!(store.revoke_refresh_family("f1").await.unwrap(), 2);
    assert!(store.is_refresh_family_revoked("f1").await.unwrap());
    assert!(matches!(
        store.use_refresh_token("h3").await.unwrap(),
        RefreshUse::Reused(_)
    ));
    assert_eq!(store.refresh_token("h3").await.unwrap(), None);
}

async fn magic_links_work_once_before_expiry(store: Store) {
    let (user, _) = owner(&store).await;
    store
        .insert_magic_link("m1", user, Utc::now() + Duration::minutes(15))
        .await
        .unwrap();
    assert_eq!(store.use_magic_link("m1").await.unwrap(), Some(user));
    assert_eq!(store.use_magic_link("m1").await.unwrap(), None);
    store
        .insert_magic_link("m2", user, Utc::now() - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(store.use_magic_link("m2").await.unwrap(), None);
}

async fn login_throttle_counts_and_locks(store: Store) {
    assert_eq!(store.login_throttle("email:a").await.unwrap(), None);
    assert_eq!(store.record_login_failure("email:a").await.unwrap(), 1);
    assert_eq!(store.record_login_failure("email:a").await.unwrap(), 2);
    let until = Utc::now() + Duration::minutes(15);
    store.lock_login("email:a", until).await.unwrap();
    let throttle = store.login_throttle("email:a").await.unwrap().unwrap();
    assert_eq!(throttle.failures, 2);
    assert!(throttle.locked_until.unwrap() > Utc::now());
    store.clear_login_throttle("email:a").await.unwrap();
    assert_eq!(store.login_throttle("email:a").await.unwrap(), None);
}

async fn signing_keys_rotate_and_retired_keys_age_out(store: Store) {
    let key = |kid: &str| SigningKeyRow {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        private_key: "v1.sealed".into(),
        public_key: "pub".into(),
        created_at: Utc::now(),
        retired_at: None,
    };
    store.insert_signing_key(&key("k1")).await.unwrap();
    store.insert_signing_key(&key("k2")).await.unwrap();
    assert_eq!(store.retire_signing_keys_except("k2").await.unwrap(), 1);
    let keys = store.signing_keys(Utc::now() - Duration::hours(1)).await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["k2", "k1"]);
    assert!(keys[0].retired_at.is_none() && keys[1].retired_at.is_some());
    let keys = store.signing_keys(Utc::now() + Duration::seconds(1)).await.unwrap();
    assert_eq!(keys.len(), 1, "a key retired before the cut-off no longer verifies");
}

async fn oidc_rows_round_trip_and_logins_are_taken_once(store: Store) {
    let (user, tenant) = owner(&store).await;
    let config = OidcConfigRow {
        tenant_id: tenant,
        provider_url: "https://idp.example.com".into(),
        client_id: "cid".into(),
        client_secret: "v1.sealed".into(),
        redirect_uri: "https://app.example.com/cb".into(),
        scopes: vec!["openid".into(), "email".into()],
        updated_at: chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
    };
    store.put_tenant_oidc(&config).await.unwrap();
    store
        .put_tenant_oidc(&OidcConfigRow {
            client_id: "cid2".into(),
            ..config.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.tenant_oidc(tenant).await.unwrap(),
        Some(OidcConfigRow {
            client_id: "cid2".into(),
            ..config
        })
    );
    assert_eq!(store.tenant_oidc(TenantId::new()).await.unwrap(), None);

    let login = OidcLoginRow {
        tenant_id: tenant,
        nonce: "n".into(),
        code_verifier: "v".into(),
        expires_at: Utc::now() + Duration::minutes(10),
    };
    store.insert_oidc_login("state-1", &login).await.unwrap();
    assert_eq!(
        store.take_oidc_login("state-1").await.unwrap().map(|l| l.nonce),
        Some("n".into())
    );
    assert_eq!(store.take_oidc_login("state-1").await.unwrap(), None);

    assert_eq!(store.user_by_identity("https://idp", "sub").await.unwrap(), None);
    store.link_identity("https://idp", "sub", user, tenant).await.unwrap();
    store.link_identity("https://idp", "sub", user, tenant).await.unwrap();
    assert_eq!(store.user_by_identity("https://idp", "sub").await.unwrap(), Some(user));
}

async fn usage_is_summed_per_tenant(store: Store) {
    let (_, tenant) = owner(&store).await;
    let other = store.create_tenant(&new_tenant("Other")).await.unwrap().id;
    let since = Utc::now() - Duration::days(1);
    assert_eq!(store.tenant_usage(tenant, since).await.unwrap().requests, 0);
    let event = |tenant, requests| UsageEvent {
        tenant_id: tenant,
        route_id: Some("r1".into()),
        period_start: Utc::now(),
        period_end: Utc::now(),
        requests,
        bytes_in: requests * 10,
        bytes_out: requests * 100,
        status_classes: [requests, 0, 0, 0],
    };
    store
        .record_usage(&[event(tenant, 5), event(tenant, 7), event(other, 100)])
        .await
        .unwrap();
    let totals = store.tenant_usage(tenant, since).await.unwrap();
    assert_eq!((totals.requests, totals.bytes_in, totals.bytes_out), (12, 120, 1200));
    assert_eq!(
        store
            .tenant_usage(tenant, Utc::now() + Duration::days(1))
            .await
            .unwrap()
            .requests,
        0
    );
}
