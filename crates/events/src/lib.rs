//! Events: the one envelope `{"id", "event", "timestamp", "tenant_id", "data"}` used on the
//! bus, in webhooks and in live feeds, and the in-process bus that carries them.
//!
//! Publishers (the edge's health checks, the configuration API, ...) publish [`Event`]s;
//! consumers (webhook delivery, WebSocket feeds, snapshot rebuilds on other nodes) subscribe.
//! Publishing never blocks: a consumer that falls behind the bus's buffer loses the oldest
//! events and is told how many ([`tokio::sync::broadcast::error::RecvError::Lagged`]).

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

/// Events kept for a slow consumer before the oldest are dropped for it.
const BUFFER: usize = 4096;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Unique id, `evt_` and a UUIDv7 (time-ordered).
    pub id: String,
    /// Name, e.g. `backend.health_changed`.
    pub event: String,
    /// When it happened, RFC 3339 UTC.
    pub timestamp: String,
    /// The tenant it concerns; `None` for platform events.
    pub tenant_id: Option<String>,
    /// What happened.
    pub data: Value,
}

impl Event {
    /// A new event named `event`, now.
    pub fn new(event: &str, tenant_id: Option<String>, data: Value) -> Event {
        Event {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            event: event.to_owned(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            tenant_id,
            data,
        }
    }
}

/// The in-process event bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> EventBus {
        EventBus {
            sender: broadcast::channel(BUFFER).0,
        }
    }

    /// Publishes `event` to every current subscriber, and logs it (target
    /// `veloflux::events`) so that the event stream can be followed in the log.
    pub fn publish(&self, event: Event) {
        tracing::info!(
            target: "veloflux::events",
            event_id = %event.id,
            event = %event.event,
            tenant_id = event.tenant_id.as_deref().unwrap_or("-"),
            data = %event.data,
            "event published"
        );
        let _ = self.sender.send(Arc::new(event));
    }

    /// Events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[tokio::test]
    async fn subscribers_receive_what_is_published_after_they_subscribe() {
        let bus = EventBus::new();
        bus.publish(Event::new("pool.created", None, Value::Null));
        let mut receiver = bus.subscribe();
        bus.publish(Event::new(
            "pool.deleted",
            Some("t1".into()),
            serde_json::json!({"name": "web"}),
        ));
        let event = receiver.recv().await.unwrap();
        assert_eq!(event.event, "pool.deleted");
        assert_eq!(event.tenant_id.as_deref(), Some("t1"));
        assert!(event.id.starts_with("evt_") && event.id.len() == 36);
        let json = serde_json::to_value(&*event).unwrap();
        for key in ["id", "event", "timestamp", "tenant_id", "data"] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
        assert!(receiver.try_recv().is_err(), "nothing else was published");
    }
}
