//! A pool's backends and the algorithms that choose among them. Every choice reads atomics
//! only: no lock on the request path.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use veloflux_domain::{Algorithm, HealthCheck};

use crate::backend::BackendState;

/// The longest smooth weighted round-robin cycle kept; longer ones are scaled down.
const MAX_CYCLE: u32 = 10_000;
/// Share of adaptive picks that go to a random backend, so that none starves.
const PROBE_ONE_IN: u64 = 20;

/// A pool as the edge runs it.
#[derive(Debug)]
pub struct PoolRuntime {
    /// Pool id.
    pub id: String,
    /// Owner tenant.
    pub tenant_id: String,
    /// Pool name.
    pub name: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// The pool's health check.
    pub health_check: HealthCheck,
    /// The pool's own upstream timeouts.
    pub timeouts: veloflux_domain::PoolTimeouts,
    /// Backends, in configuration order.
    pub backends: Vec<Arc<BackendState>>,
    /// The health check that applies to each backend (its own, or the pool's).
    pub checks: Vec<HealthCheck>,
    /// Sticky sessions: the cookie that pins a client, and each backend's opaque token.
    pub sticky: Option<Sticky>,
    weights: Vec<u32>,
    cursor: AtomicUsize,
    cycle: Vec<u16>,
    /// Retry budget in tenths of a retry: each request adds two, each retry takes ten, so
    /// retries stay under a fifth of the traffic (plus a small reserve) and cannot multiply
    /// the load on a struggling pool.
    retry_budget: std::sync::atomic::AtomicI64,
}

/// Tenths of a retry a request earns, a retry costs, and the most the budget holds.
const RETRY_EARNED: i64 = 2;
const RETRY_COST: i64 = 10;
const RETRY_RESERVE: i64 = 100;

impl PoolRuntime {
    /// A pool over `backends` with their `weights`.
    pub fn new(
        id: String,
        tenant_id: String,
        name: String,
        algorithm: Algorithm,
        health_check: HealthCheck,
        backends: Vec<(Arc<BackendState>, u32, HealthCheck)>,
    ) -> PoolRuntime {
        let weights: Vec<u32> = backends.iter().map(|(_, w, _)| (*w).max(1)).collect();
        let checks = backends.iter().map(|(_, _, c)| c.clone()).collect();
        let sticky = None;
        let cycle = smooth_cycle(&weights);
        PoolRuntime {
            id,
            tenant_id,
            name,
            algorithm,
            health_check,
            timeouts: veloflux_domain::PoolTimeouts::default(),
            backends: backends.into_iter().map(|(b, _, _)| b).collect(),
            checks,
            sticky,
            weights,
            cursor: AtomicUsize::new(0),
            cycle,
            retry_budget: std::sync::atomic::AtomicI64::new(RETRY_RESERVE),
        }
    }

    /// Counts a request toward the retry budget.
    pub fn earn_retry(&self) {
        // A full budget (the steady state) is only read, so workers do not contend for it.
        if self.retry_budget.load(Ordering::Relaxed) > RETRY_RESERVE * 10 {
            return;
        }
        self.retry_budget.fetch_add(RETRY_EARNED, Ordering::Relaxed);
    }

    /// Whether picking a backend reads requests in flight (so they must be counted).
    pub fn counts_in_flight(&self) -> bool {
        matches!(self.algorithm, Algorithm::LeastConnections | Algorithm::AdaptiveAi)
    }

    /// Takes one retry from the budget, if there is one.
    pub fn spend_retry(&self) -> bool {
        if self.retry_budget.fetch_sub(RETRY_COST, Ordering::Relaxed) >= RETRY_COST {
            true
        } else {
            self.retry_budget.fetch_add(RETRY_COST, Ordering::Relaxed);
            false
        }
    }

    /// The pool with its own upstream timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: veloflux_domain::PoolTimeouts) -> PoolRuntime {
        self.timeouts = timeouts;
        self
    }

    /// Turns on sticky sessions, signing backend tokens with `key`.
    #[must_use]
    pub fn with_sticky_sessions(mut self, key: &[u8]) -> PoolRuntime {
        let cookie = format!(
            "vf_sticky_{}",
            &veloflux_secrets::hmac_sha256_hex(key, self.id.as_bytes())[..12]
        );
        let tokens = self
            .backends
            .iter()
            .map(|b| {
                veloflux_secrets::hmac_sha256_hex(key, format!("{}/{}", self.id, b.id).as_bytes())[..32].to_owned()
            })
            .collect();
        self.sticky = Some(Sticky { cookie, tokens });
        self
    }

    /// The backend a sticky cookie names, if it is available.
    pub fn pinned(&self, cookie_header: Option<&str>) -> Option<Arc<BackendState>> {
        let sticky = self.sticky.as_ref()?;
        let value = cookie_header?
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == sticky.cookie)
            .map(|(_, value)| value.trim())?;
        let index = sticky.tokens.iter().position(|t| t == value)?;
        let backend = &self.backends[index];
        backend.available().then(|| Arc::clone(backend))
    }

    /// The `Set-Cookie` value that pins a client to `backend`.
    pub fn pin_cookie(&self, backend: &BackendState) -> Option<String> {
        let sticky = self.sticky.as_ref()?;
        let index = self.backends.iter().position(|b| b.id == backend.id)?;
        Some(format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax",
            sticky.cookie, sticky.tokens[index]
        ))
    }

    /// Chooses a backend for a request from `client`, skipping unavailable ones and `avoid`
    /// (a backend that just failed this request). `None` when none is available.
    pub fn pick(&self, client: IpAddr, avoid: Option<&str>) -> Option<Arc<BackendState>> {
        let usable = |i: usize| {
            let backend = &self.backends[i];
            backend.available() && avoid != Some(backend.id.as_str())
        };
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let index = match self.algorithm {
            Algorithm::RoundRobin => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
            }
            Algorithm::WeightedRoundRobin => {
                let len = self.cycle.len();
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..len)
                    .map(|k| usize::from(self.cycle[(start + k) % len]))
                    .find(|&i| usable(i))
            }
            Algorithm::LeastConnections => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| usable(i))
                    .min_by(|&a, &b| self.load(a).total_cmp(&self.load(b)))
            }
            Algorithm::AdaptiveAi => self.pick_adaptive(&usable),
            Algorithm::IpHash => (0..n)
                .filter(|&i| usable(i))
                .min_by(|&a, &b| self.rendezvous(client, a).total_cmp(&self.rendezvous(client, b))),
        }?;
        Some(Arc::clone(&self.backends[index]))
    }

    /// Requests in flight relative to weight.
    fn load(&self, i: usize) -> f64 {
        f64::from(self.backends[i].in_flight() + 1) / f64::from(self.weights[i])
    }

    /// Power of two random choices over latency x (in flight + 1) / weight, with a small
    /// share of purely random picks so that a backend with a bad estimate is probed again.
    fn pick_adaptive(&self, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.backends.len()).filter(|&i| usable(i)).collect();
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            len => {
                let roll = random();
                let len64 = len as u64;
                let first = candidates[usize::try_from(roll % len64).unwrap_or(0)];
                if roll.is_multiple_of(PROBE_ONE_IN) {
                    return Some(first);
                }
                let offset = 1 + (roll >> 32) % (len64 - 1);
                let second = candidates[usize::try_from((roll % len64 + offset) % len64).unwrap_or(0)];
                let cost = |i: usize| {
                    let backend = &self.backends[i];
                    (backend.latency_us() + 1.0) * f64::from(backend.in_flight() + 1) / f64::from(self.weights[i])
                };
                Some(if cost(second) < cost(first) { second } else { first })
            }
        }
    }

    /// Weighted rendezvous hashing: the backend with the lowest score wins, and adding a
    /// backend moves only the clients that now score lowest on it.
    fn rendezvous(&self, client: IpAddr, i: usize) -> f64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        client.hash(&mut hasher);
        self.backends[i].id.hash(&mut hasher);
        let bits = hasher.finish() >> 11;
        #[allow(clippy::cast_precision_loss, reason = "53-bit value, exact in f64")]
        let unit = (bits as f64 + 1.0) / ((1u64 << 53) as f64 + 1.0);
        -unit.ln() / f64::from(self.weights[i])
    }
}

/// Sticky-session settings of a pool: the cookie name and, per backend, an opaque token
/// (an HMAC of the backend id), so the cookie reveals nothing and cannot be forged.
#[derive(Debug)]
pub struct Sticky {
    /// Cookie name.
    pub cookie: String,
    /// Token per backend, in backend order.
    pub tokens: Vec<String>,
}

/// The smooth weighted round-robin order (nginx's algorithm): each backend appears in
/// proportion to its weight, spread as evenly as the weights allow.
fn smooth_cycle(weights: &[u32]) -> Vec<u16> {
    if weights.is_empty() {
        return Vec::new();
    }
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let mut scaled: Vec<u32> = weights.iter().map(|w| w / divisor).collect();
    let total: u32 = scaled.iter().sum();
    if total > MAX_CYCLE {
        scaled = scaled
            .iter()
            .map(|w| (u64::from(*w) * u64::from(MAX_CYCLE) / u64::from(total)).max(1) as u32)
            .collect();
    }
    let total: i64 = scaled.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; scaled.len()];
    let mut cycle = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&scaled) {
            *c += i64::from(*w);
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        current[best] -= total;
        cycle.push(u16::try_from(best).unwrap_or(0));
    }
    cycle
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let local = 0u8;
        (seed as u64) ^ ((&local as *const u8 as usize) as u64).rotate_left(32) | 1
    });
}

/// A fast per-thread pseudo-random number (xorshift64*); not for secrets.
fn random() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::backend::Health;

    fn pool(algorithm: Algorithm, weights: &[u32]) -> PoolRuntime {
        let backends = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    Arc::new(BackendState::new(
                        format!("b{i}"),
                        format!("10.0.0.{i}:80"),
                        Health::Healthy,
                    )),
                    *w,
                    HealthCheck::default(),
                )
            })
            .collect();
        PoolRuntime::new(
            "p".into(),
            "t".into(),
            "pool".into(),
            algorithm,
            HealthCheck::default(),
            backends,
        )
    }

    fn shares(pool: &PoolRuntime, picks: usize) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for i in 0..picks {
            let client = IpAddr::from([10, 1, (i / 256 % 256) as u8, (i % 256) as u8]);
            *counts.entry(pool.pick(client, None).unwrap().id.clone()).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves() {
        assert_eq!(smooth_cycle(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_cycle(&[100, 100]), vec![0, 1]);
        let pool = pool(Algorithm::WeightedRoundRobin, &[100, 150, 50]);
        let counts = shares(&pool, 6000);
        assert_eq!((counts["b0"], counts["b1"], counts["b2"]), (2000, 3000, 1000));
    }

    #[test]
    fn round_robin_and_least_connections_skip_unavailable_backends() {
        let rr = pool(Algorithm::RoundRobin, &[1, 1, 1]);
        rr.backends[1].set_health(Health::Unhealthy);
        let counts = shares(&rr, 100);
        assert_eq!(counts.get("b1"), None);
        assert_eq!(counts["b0"] + counts["b2"], 100);

        let lc = pool(Algorithm::LeastConnections, &[1, 1]);
        let _busy: Vec<_> = (0..5).map(|_| lc.backends[0].begin()).collect();
        for _ in 0..10 {
            assert_eq!(lc.pick(IpAddr::from([1, 1, 1, 1]), None).unwrap().id, "b1");
        }
    }

    #[test]
    fn ip_hash_keeps_clients_and_moves_few_when_a_backend_is_added() {
        let three = pool(Algorithm::IpHash, &[1, 1, 1]);
        let client = IpAddr::from([192, 168, 0, 7]);
        let first = three.pick(client, None).unwrap().id.clone();
        assert!((0..20).all(|_| three.pick(client, None).unwrap().id == first));

        let four = pool(Algorithm::IpHash, &[1, 1, 1, 1]);
        let moved = (0..2000u32)
            .filter(|i| {
                let ip = IpAddr::from(i.to_be_bytes());
                let before = three.pick(ip, None).unwrap().id.clone();
                let after = four.pick(ip, None).unwrap().id.clone();
                before != after
            })
            .count();
        assert!(moved > 300 && moved < 700, "about a quarter should move, moved {moved}");
    }

    #[test]
    fn adaptive_prefers_fast_backends_but_probes_the_rest() {
        let pool = pool(Algorithm::AdaptiveAi, &[1, 1, 1]);
        pool.backends[0].observe(std::time::Duration::from_millis(200));
        pool.backends[1].observe(std::time::Duration::from_millis(2));
        pool.backends[2].observe(std::time::Duration::from_millis(2));
        let counts = shares(&pool, 3000);
        let slow = counts.get("b0").copied().unwrap_or(0);
        assert!(slow > 0, "the slow backend is still probed");
        assert!(slow < 300, "but gets far less than a third: {slow}");
    }

    #[test]
    fn the_retry_budget_allows_a_fifth_of_the_traffic() {
        let pool = pool(Algorithm::RoundRobin, &[1]);
        let reserve = (0..100).take_while(|_| pool.spend_retry()).count();
        assert_eq!(reserve, 10, "a small reserve for a quiet pool");
        for _ in 0..100 {
            pool.earn_retry();
        }
        assert_eq!((0..100).take_while(|_| pool.spend_retry()).count(), 20);
    }

    #[test]
    fn avoid_skips_the_backend_that_just_failed() {
        let pool = pool(Algorithm::RoundRobin, &[1, 1]);
        for _ in 0..10 {
            assert_eq!(pool.pick(IpAddr::from([1, 1, 1, 1]), Some("b0")).unwrap().id, "b1");
        }
    }
}
