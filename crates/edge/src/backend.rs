//! The live state of one backend, shared by every snapshot that contains it: health,
//! requests in flight, a latency estimate and passive ejection.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the edge knows about a backend's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not checked yet: receives no traffic until its first check passes.
    Unknown,
    /// Receives traffic.
    Healthy,
    /// Failing its checks.
    Unhealthy,
}

impl Health {
    /// `unknown`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }

    fn from_u8(raw: u8) -> Health {
        match raw {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Health::Unknown => 0,
            Health::Healthy => 1,
            Health::Unhealthy => 2,
        }
    }
}

/// Live state of a backend.
#[derive(Debug)]
pub struct BackendState {
    /// Backend id.
    pub id: String,
    /// `host:port`.
    pub authority: String,
    health: AtomicU8,
    in_flight: AtomicU32,
    /// Latency estimate in microseconds (peak EWMA).
    latency_us: AtomicU64,
    /// Time of the last latency sample, in microseconds since `epoch`.
    sampled_at_us: AtomicU64,
    /// Passive ejection: until when (microseconds since `epoch`), and how many in a row.
    ejected_until_us: AtomicU64,
    ejections: AtomicU32,
    consecutive_failures: AtomicU32,
    epoch: Instant,
}

/// Decay time constant of the latency estimate.
const DECAY: Duration = Duration::from_secs(10);
/// Consecutive passive failures (connect errors, 5xx, timeouts) that eject a backend.
const EJECT_AFTER: u32 = 3;
/// First ejection; each further one in a row doubles it, up to `MAX_EJECTION`.
const BASE_EJECTION: Duration = Duration::from_secs(5);
const MAX_EJECTION: Duration = Duration::from_secs(300);

impl BackendState {
    /// A backend in `initial` health.
    pub fn new(id: String, authority: String, initial: Health) -> BackendState {
        BackendState {
            id,
            authority,
            health: AtomicU8::new(initial.to_u8()),
            in_flight: AtomicU32::new(0),
            latency_us: AtomicU64::new(0),
            sampled_at_us: AtomicU64::new(0),
            ejected_until_us: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The checked health.
    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Acquire))
    }

    /// Sets the checked health; returns the previous one.
    pub fn set_health(&self, health: Health) -> Health {
        Health::from_u8(self.health.swap(health.to_u8(), Ordering::AcqRel))
    }

    /// Whether the backend may receive traffic now: healthy and not ejected.
    pub fn available(&self) -> bool {
        // Never ejected (the common case) needs no clock read.
        let until = self.ejected_until_us.load(Ordering::Acquire);
        self.health() == Health::Healthy && (until == 0 || until <= self.now_us())
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped, whatever way the request ends.
    pub fn begin(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(std::sync::Arc::clone(self))
    }

    /// The latency estimate in microseconds, decayed toward zero with time so that a slow
    /// spell is forgotten and the backend gets probed again.
    pub fn latency_us(&self) -> f64 {
        self.latency_at(self.now_us())
    }

    fn latency_at(&self, now_us: u64) -> f64 {
        let latency = f64::from_bits(self.latency_us.load(Ordering::Relaxed));
        let age = now_us.saturating_sub(self.sampled_at_us.load(Ordering::Relaxed));
        #[allow(clippy::cast_precision_loss, reason = "microsecond ages are far below 2^52")]
        let decay = (-(age as f64) / DECAY.as_micros() as f64).exp();
        latency * decay
    }

    /// Feeds a response time into the peak EWMA: a slower sample takes over at once, a
    /// faster one pulls the estimate down gradually.
    pub fn observe(&self, elapsed: Duration) {
        #[allow(clippy::cast_precision_loss, reason = "microsecond latencies are far below 2^52")]
        let sample = elapsed.as_micros() as f64;
        let now = self.now_us();
        let current = self.latency_at(now);
        let next = if sample > current {
            sample
        } else {
            current * 0.8 + sample * 0.2
        };
        self.latency_us.store(next.to_bits(), Ordering::Relaxed);
        self.sampled_at_us.store(now, Ordering::Relaxed);
    }

    /// A request succeeded: the failure streak ends.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        // The ejection streak ends with a success after the cool-down.
        if self.ejections.load(Ordering::Relaxed) != 0 && self.ejected_until_us.load(Ordering::Relaxed) <= self.now_us()
        {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed (connect error, timeout, 5xx). Enough in a row eject the backend for
    /// a cool-down that doubles on repeat; a connect error ejects at once. Returns whether
    /// this failure ejected it.
    pub fn record_failure(&self, connect_error: bool) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if !connect_error && failures < EJECT_AFTER {
            return false;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let streak = self.ejections.fetch_add(1, Ordering::Relaxed).min(6);
        let cool_down = (BASE_EJECTION * 2u32.pow(streak)).min(MAX_EJECTION);
        let until = self.now_us() + u64::try_from(cool_down.as_micros()).unwrap_or(u64::MAX);
        self.ejected_until_us.store(until, Ordering::Release);
        true
    }

    /// Ends an ejection (a health check passed).
    pub fn clear_ejection(&self) {
        self.ejected_until_us.store(0, Ordering::Release);
    }
}

/// A request in flight on a backend; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<BackendState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn in_flight_counts_end_however_the_request_ends() {
        let backend = Arc::new(BackendState::new("b".into(), "127.0.0.1:1".into(), Health::Healthy));
        let first = backend.begin();
        {
            let _second = backend.begin();
            assert_eq!(backend.in_flight(), 2);
        }
        assert_eq!(backend.in_flight(), 1);
        drop(first);
        assert_eq!(backend.in_flight(), 0);
    }

    #[test]
    fn connect_errors_eject_and_repeat_ejections_grow() {
        let backend = BackendState::new("b".into(), "x:1".into(), Health::Healthy);
        assert!(backend.available());
        assert!(!backend.record_failure(false));
        assert!(!backend.record_failure(false));
        assert!(backend.record_failure(false), "the third 5xx in a row ejects");
        assert!(!backend.available());
        backend.clear_ejection();
        assert!(backend.available());
        assert!(backend.record_failure(true), "a connect error ejects at once");
        let until = backend.ejected_until_us.load(Ordering::Relaxed) - backend.now_us();
        assert!(
            until > 9_000_000,
            "the second ejection lasts about 10 s, not 5: {until}"
        );
    }

    #[test]
    fn latency_is_a_peak_ewma() {
        let backend = BackendState::new("b".into(), "x:1".into(), Health::Healthy);
        backend.observe(Duration::from_millis(100));
        assert!((backend.latency_us() - 100_000.0).abs() < 1_000.0);
        backend.observe(Duration::from_millis(10));
        let after = backend.latency_us();
        assert!(after < 100_000.0 && after > 70_000.0, "{after}");
        backend.observe(Duration::from_millis(500));
        assert!(backend.latency_us() > 490_000.0);
    }
}
