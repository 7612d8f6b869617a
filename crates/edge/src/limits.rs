//! Per-tenant edge limits: a rate (GCRA, one second of burst) and a ceiling on requests in
//! flight, both in atomics shared across snapshots.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::config::TenantLimits;

/// A tenant's counters.
#[derive(Debug)]
pub struct TenantLimiter {
    rate: AtomicU32,
    ceiling: AtomicU32,
    in_flight: AtomicU32,
    /// GCRA's theoretical arrival time, in nanoseconds since `epoch`.
    tat: AtomicU64,
    epoch: Instant,
}

/// Why a request was refused, with what the client should be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The limit that was hit.
    pub limit: u32,
    /// Seconds to wait.
    pub retry_after: u64,
}

/// A request counted as in flight until dropped.
#[derive(Debug)]
pub struct Slot(Arc<TenantLimiter>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

const SECOND: u64 = 1_000_000_000;

impl TenantLimiter {
    /// Counters for `limits`.
    pub fn new(limits: TenantLimits) -> TenantLimiter {
        TenantLimiter {
            rate: AtomicU32::new(limits.requests_per_second.max(1)),
            ceiling: AtomicU32::new(limits.concurrent_requests.max(1)),
            in_flight: AtomicU32::new(0),
            tat: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Applies new limits (a plan change) without resetting the counters.
    pub fn update(&self, limits: TenantLimits) {
        self.rate.store(limits.requests_per_second.max(1), Ordering::Relaxed);
        self.ceiling.store(limits.concurrent_requests.max(1), Ordering::Relaxed);
    }

    /// The sustained rate.
    pub fn rate(&self) -> u32 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Admits one request or says why not.
    pub fn admit(self: &Arc<Self>) -> Result<Slot, Refusal> {
        let ceiling = self.ceiling.load(Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= ceiling {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal {
                limit: ceiling,
                retry_after: 1,
            });
        }
        let slot = Slot(Arc::clone(self));
        let rate = u64::from(self.rate());
        let interval = SECOND / rate;
        let tolerance = SECOND.saturating_sub(interval);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > tolerance {
                let wait = start - now - tolerance;
                return Err(Refusal {
                    limit: self.rate(),
                    retry_after: wait.div_ceil(SECOND).max(1),
                });
            }
            match self
                .tat
                .compare_exchange_weak(tat, start + interval, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(slot),
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_passes_then_the_rate_holds() {
        let limiter = Arc::new(TenantLimiter::new(TenantLimits {
            requests_per_second: 10,
            concurrent_requests: 1000,
        }));
        let admitted = (0..30).filter(|_| limiter.admit().is_ok()).count();
        assert!((10..=11).contains(&admitted), "{admitted}");
        let refusal = limiter.admit().unwrap_err();
        assert_eq!((refusal.limit, refusal.retry_after), (10, 1));
    }

    #[test]
    fn requests_in_flight_are_capped_and_released() {
        let limiter = Arc::new(TenantLimiter::new(TenantLimits {
            requests_per_second: 1000,
            concurrent_requests: 2,
        }));
        let first = limiter.admit().unwrap();
        let _second = limiter.admit().unwrap();
        assert_eq!(limiter.admit().unwrap_err().limit, 2);
        drop(first);
        assert!(limiter.admit().is_ok());
    }
}
