//! The edge's configuration API: pools (`/api/pools`, by name), backends (`/api/backends`),
//! routes (`/api/routes`) and TLS certificates (`/api/certificates`), scoped to the caller's tenant, with the seeds' payloads and
//! error codes. Every change is applied to the running edge before the answer is sent.
//!
//! This crate talks to the edge only through [`EdgeControl`], so it does not depend on the
//! data plane; it must not depend on other feature crates.

mod backends;
mod certificates;
mod pools;
mod routes;
mod views;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use veloflux_api::{ApiError, ErrorCode};
use veloflux_domain::TenantId;
use veloflux_events::{Event, EventBus};
use veloflux_secrets::SecretKey;
use veloflux_store::{Store, StoreError};

/// What the configuration API needs from the running edge.
pub trait EdgeControl: Send + Sync + 'static {
    /// Rebuilds the edge's configuration from the store and swaps it in.
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + '_>>;
    /// The live health of a backend: `healthy`, `unhealthy` or `unknown`.
    fn backend_status(&self, backend_id: &str) -> &'static str;
}

/// What the routes need.
#[derive(Clone)]
pub struct RoutingState {
    store: Store,
    edge: Arc<dyn EdgeControl>,
    secret: Arc<SecretKey>,
    events: EventBus,
}

impl std::fmt::Debug for RoutingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingState").finish_non_exhaustive()
    }
}

impl RoutingState {
    /// State over `store`, applying changes through `edge`; `secret` seals private keys and
    /// changes are published on `events`.
    pub fn new(store: Store, edge: Arc<dyn EdgeControl>, secret: Arc<SecretKey>, events: EventBus) -> RoutingState {
        RoutingState {
            store,
            edge,
            secret,
            events,
        }
    }

    /// Publishes `event` for `tenant` with `data` (a view of what changed under `key`).
    fn publish(&self, tenant: TenantId, event: &str, key: &str, data: &impl serde::Serialize) {
        let data = serde_json::to_value(data).unwrap_or(serde_json::Value::Null);
        self.events.publish(Event::new(
            event,
            Some(tenant.to_string()),
            serde_json::json!({ key: data }),
        ));
    }

    /// Applies the stored configuration to the edge. A failure is an internal error: the
    /// change is stored and will be applied by the next successful reload.
    async fn apply(&self) -> Result<(), ApiError> {
        self.edge.reload().await.map_err(|err| {
            tracing::error!(error = %err, "the change is stored but could not be applied to the edge");
            ApiError::internal(err)
        })
    }
}

/// The configuration routes of the control-plane listener.
pub fn router(state: RoutingState) -> OpenApiRouter {
    OpenApiRouter::new()
        .merge(pools::routes())
        .merge(backends::routes())
        .merge(routes::routes())
        .merge(certificates::routes())
        .with_state(state)
}

fn pool_not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::PoolNotFound, format!("pool \"{name}\" not found"))
}

fn store_error(err: StoreError) -> ApiError {
    err.into()
}
