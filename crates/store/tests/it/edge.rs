use veloflux_domain::{Algorithm, BackendAddress, HealthCheck, PathPrefix, PoolName, PoolTimeouts, RouteHost, Weight};
use veloflux_store::{BackendSpec, NewCertificate, PoolSpec, RouteSpec, Store, StoreError};

use crate::conformance;
use crate::tenants::new_tenant;

conformance!(
    pools_backends_and_routes_round_trip,
    hosts_belong_to_one_tenant_and_used_pools_stay,
    certificates_are_tenant_scoped_and_respect_host_owners
);

fn pool(name: &str) -> PoolSpec {
    PoolSpec {
        name: PoolName::parse(name).unwrap(),
        algorithm: Algorithm::LeastConnections,
        sticky_sessions: true,
        health_check: HealthCheck::default(),
        timeouts: PoolTimeouts::default(),
    }
}

fn route(host: &str, prefix: &str, pool_id: &str) -> RouteSpec {
    RouteSpec {
        host: RouteHost::parse(host).unwrap(),
        path_prefix: PathPrefix::parse(prefix).unwrap(),
        pool_id: pool_id.into(),
        ssl_enabled: false,
    }
}

async fn pools_backends_and_routes_round_trip(store: Store) {
    let tenant = store.create_tenant(&new_tenant("T")).await.unwrap().id;
    let created = store.create_pool(tenant, &pool("web")).await.unwrap();
    assert_eq!(
        (created.algorithm, created.sticky_sessions),
        (Algorithm::LeastConnections, true)
    );
    assert_eq!(created.health_check, HealthCheck::default());
    assert!(matches!(
        store.create_pool(tenant, &pool("web")).await,
        Err(StoreError::Conflict { .. })
    ));
    let spec = BackendSpec {
        address: BackendAddress::parse("10.0.0.1:8080").unwrap(),
        weight: Weight::parse(150).unwrap(),
        region: Some("us-east-1".into()),
        health_check: None,
    };
    let backend = store.create_backend(tenant, &created.id, &spec).await.unwrap();
    assert_eq!(
        (backend.weight.get(), backend.region.as_deref()),
        (150, Some("us-east-1"))
    );
    assert!(matches!(
        store.create_backend(tenant, &created.id, &spec).await,
        Err(StoreError::Conflict { .. })
    ));
    let updated = store
        .update_backend(
            tenant,
            &backend.id,
            &BackendSpec {
                weight: Weight::parse(10).unwrap(),
                ..spec
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.weight.get(), 10);
    let r = store
        .create_route(tenant, &route("app.exemplo.com", "/api", &created.id))
        .await
        .unwrap();
    assert_eq!(r.path_prefix.as_str(), "/api");
    let rows = store.edge_rows().await.unwrap();
    assert_eq!((rows.pools.len(), rows.backends.len(), rows.routes.len()), (1, 1, 1));
    let renamed = store
        .update_pool(
            tenant,
            &created.id,
            &PoolSpec {
                algorithm: Algorithm::AdaptiveAi,
                timeouts: PoolTimeouts {
                    connect: Some(std::time::Duration::from_millis(1500)),
                    response: None,
                },
                ..pool("web2")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.algorithm),
        ("web2", Algorithm::AdaptiveAi)
    );
    assert_eq!(renamed.timeouts.connect, Some(std::time::Duration::from_millis(1500)));
    assert_eq!(renamed.timeouts.response, None);
    store.delete_backend(tenant, &backend.id).await.unwrap();
    assert!(matches!(
        store.backend(tenant, &backend.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn hosts_belong_to_one_tenant_and_used_pools_stay(store: Store) {
    let a = store.create_tenant(&new_tenant("A")).await.unwrap().id;
    let b = store.create_tenant(&new_tenant("B")).await.unwrap().id;
    let pa = store.create_pool(a, &pool("p")).await.unwrap();
    let pb = store.create_pool(b, &pool("p")).await.unwrap();
    let first = store
        .create_route(a, &route("shop.exemplo.com", "/", &pa.id))
        .await
        .unwrap();
    store
        .create_route(a, &route("shop.exemplo.com", "/v1", &pa.id))
        .await
        .unwrap();
    assert!(matches!(
        store.create_route(a, &route("shop.exemplo.com", "/", &pa.id)).await,
        Err(StoreError::Conflict { .. })
    ));
    let taken = store
        .create_route(b, &route("shop.exemplo.com", "/other", &pb.id))
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict { ref constraint }) if constraint == "route_hosts"),
        "{taken:?}"
    );
    assert!(matches!(
        store.delete_pool(a, &pa.id).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        matches!(store.route(b, &first.id).await, Err(StoreError::NotFound)),
        "routes are tenant-scoped"
    );

    for r in store.routes(a).await.unwrap() {
        store.delete_route(a, &r.id).await.unwrap();
    }
    store
        .create_route(b, &route("shop.exemplo.com", "/", &pb.id))
        .await
        .unwrap();
    store.delete_pool(a, &pa.id).await.unwrap();
    assert!(store.pools(a).await.unwrap().is_empty());
}

fn certificate(hosts: &[&str], fingerprint: &str) -> NewCertificate {
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    NewCertificate {
        hostnames: hosts.iter().map(|h| (*h).to_owned()).collect(),
        chain_pem: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n".into(),
        private_key_sealed: "sealed".into(),
        fingerprint_sha256: fingerprint.into(),
        subject: "CN=a".into(),
        issuer: "CN=ca".into(),
        not_before: at("2026-01-01T00:00:00Z"),
        not_after: at("2027-01-01T00:00:00Z"),
    }
}

async fn certificates_are_tenant_scoped_and_respect_host_owners(store: Store) {
    let a = store.create_tenant(&new_tenant("A")).await.unwrap().id;
    let b = store.create_tenant(&new_tenant("B")).await.unwrap().id;
    let pa = store.create_pool(a, &pool("p")).await.unwrap();
    store
        .create_route(a, &route("shop.exemplo.com", "/", &pa.id))
        .await
        .unwrap();

    let stored = store
        .create_certificate(a, &certificate(&["shop.exemplo.com", "*.exemplo.com"], "f1"))
        .await
        .unwrap();
    assert_eq!(stored.hostnames, ["shop.exemplo.com", "*.exemplo.com"]);
    assert_eq!(stored.not_after.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    assert_eq!(store.certificate(a, &stored.id).await.unwrap(), stored);
    assert!(matches!(
        store
            .create_certificate(a, &certificate(&["shop.exemplo.com"], "f1"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let taken = store
        .create_certificate(b, &certificate(&["shop.exemplo.com"], "f2"))
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict { ref constraint }) if constraint == "route_hosts"),
        "{taken:?}"
    );
    store
        .create_certificate(b, &certificate(&["other.exemplo.com"], "f1"))
        .await
        .unwrap();
    assert!(matches!(
        store.certificate(b, &stored.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_certificate(b, &stored.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.certificates(a).await.unwrap().len(), 1);
    assert_eq!(store.edge_rows().await.unwrap().certificates.len(), 2);
    store.delete_certificate(a, &stored.id).await.unwrap();
    assert!(store.certificates(a).await.unwrap().is_empty());
}
