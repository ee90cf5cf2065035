//! Summaries of measured durations (pure).

use serde_json::{json, Value};
use std::time::Duration;

/// min / p50 / p99 / max of a sample, nearest-rank percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Smallest value.
    pub min: Duration,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 99th percentile (nearest rank; the max below 100 samples).
    pub p99: Duration,
    /// Largest value.
    pub max: Duration,
}

impl Summary {
    /// `None` for an empty sample.
    pub fn of(sample: &[Duration]) -> Option<Self> {
        if sample.is_empty() {
            return None;
        }
        let mut s = sample.to_vec();
        s.sort();
        Some(Self {
            n: s.len(),
            min: s[0],
            p50: percentile(&s, 50.0),
            p99: percentile(&s, 99.0),
            max: s[s.len() - 1],
        })
    }

    /// As JSON, milliseconds with microsecond precision.
    pub fn to_json(&self) -> Value {
        json!({
            "n": self.n,
            "min_ms": ms(self.min),
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }
}

/// Nearest-rank percentile of a sorted, non-empty sample.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds, rounded to microseconds.
pub fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of(&millis(&[5, 1, 4, 2, 3])).unwrap();
        assert_eq!(s.min, Duration::from_millis(1));
        assert_eq!(s.p50, Duration::from_millis(3));
        assert_eq!(s.p99, Duration::from_millis(5));
        assert_eq!(s.max, Duration::from_millis(5));
    }

    #[test]
    fn p99_of_a_hundred_skips_only_the_largest() {
        let s = Summary::of(&millis(&(1..=100).collect::<Vec<_>>())).unwrap();
        assert_eq!(s.p99, Duration::from_millis(99));
    }

    #[test]
    fn an_empty_sample_has_no_summary() {
        assert!(Summary::of(&[]).is_none());
    }
}
