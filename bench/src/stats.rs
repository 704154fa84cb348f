//! Summaries of latency samples: nearest-rank percentiles, so p99 of 200 samples is a sample
//! that was actually observed rather than an interpolation.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
    pub max: Duration,
}

/// Nearest-rank percentile `p` (0 < p <= 100) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `None` for no samples: a benchmark that measured nothing must not print zeros.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let total: Duration = sorted.iter().sum();
    Some(Summary {
        count: sorted.len(),
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        mean: total / sorted.len() as u32,
        max: sorted[sorted.len() - 1],
    })
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={:<4} p50={:>8.3} ms  p99={:>8.3} ms  mean={:>8.3} ms  max={:>8.3} ms",
            self.count,
            ms(self.p50),
            ms(self.p99),
            ms(self.mean),
            ms(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&u| Duration::from_micros(u)).collect()
    }

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let samples: Vec<u64> = (1..=100).rev().collect();
        let s = summarize(&micros(&samples)).unwrap();
        assert_eq!(s.p50, Duration::from_micros(50));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(s.count, 100);
    }

    #[test]
    fn p99_of_few_samples_is_the_maximum() {
        let s = summarize(&micros(&[5, 1, 3])).unwrap();
        assert_eq!(s.p50, Duration::from_micros(3));
        assert_eq!(s.p99, Duration::from_micros(5));
        assert_eq!(s.mean, Duration::from_micros(3));
    }

    #[test]
    fn single_sample() {
        let s = summarize(&micros(&[7])).unwrap();
        assert_eq!(
            (s.p50, s.p99),
            (Duration::from_micros(7), Duration::from_micros(7))
        );
    }
}
