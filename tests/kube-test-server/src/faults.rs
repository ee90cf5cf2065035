//! Fault injection: delay or fail a seeded, deterministic share of requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What to inject. Ratios are in `0.0..=1.0`; the n-th API request is hit
/// when `hash(seed, n)` falls under the ratio, so a run is reproducible for
/// a given request order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    /// Seed for the decisions.
    pub seed: u64,
    /// Share of requests answered with `fail_code`.
    pub fail_ratio: f64,
    /// Status code for failed requests: 429, 500 or 503 (500 otherwise).
    pub fail_code: u16,
    /// Share of requests delayed by `delay_ms` before being served.
    pub delay_ratio: f64,
    /// Delay in milliseconds.
    pub delay_ms: u64,
    /// Whether watch requests are subject to faults too.
    pub include_watches: bool,
    /// Hit only watch requests (implies `include_watches`): keeps watches
    /// down while other requests go through.
    pub only_watches: bool,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Sleep this long first.
    pub delay: Option<Duration>,
    /// Then fail with this code.
    pub fail: Option<u16>,
}

/// Shared fault state.
#[derive(Debug, Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    counter: AtomicU64,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    /// Replaces the configuration and restarts the request count.
    pub fn set(&self, config: FaultConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
        self.counter.store(0, Ordering::SeqCst);
    }

    /// The current configuration.
    pub fn get(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Decides for the next request.
    pub fn decide(&self, is_watch: bool) -> Decision {
        let c = self.get();
        let spared = if c.only_watches {
            !is_watch
        } else {
            is_watch && !c.include_watches
        };
        if (c.fail_ratio <= 0.0 && c.delay_ratio <= 0.0) || spared {
            return Decision::default();
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let a = splitmix64(c.seed ^ splitmix64(n));
        let b = splitmix64(a);
        Decision {
            delay: (unit(b) < c.delay_ratio).then(|| Duration::from_millis(c.delay_ms)),
            fail: (unit(a) < c.fail_ratio).then_some(match c.fail_code {
                429 | 503 => c.fail_code,
                _ => 500,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Vec<bool> {
        let f = Faults::default();
        f.set(FaultConfig {
            seed,
            fail_ratio: 0.3,
            ..Default::default()
        });
        (0..200).map(|_| f.decide(false).fail.is_some()).collect()
    }

    #[test]
    fn the_same_seed_fails_the_same_requests() {
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|h| **h).count();
        assert!((30..90).contains(&hits), "{hits}");
    }

    #[test]
    fn watches_are_spared_unless_asked() {
        let f = Faults::default();
        f.set(FaultConfig {
            fail_ratio: 1.0,
            ..Default::default()
        });
        assert_eq!(f.decide(true), Decision::default());
        assert_eq!(f.decide(false).fail, Some(500));
    }
}
