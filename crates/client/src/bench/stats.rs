//! Latency statistics on an HDR histogram, one per task, merged at the end.
//!
//! Values are recorded in nanoseconds and reported in microseconds, so
//! loopback round trips of a few tens of microseconds keep three significant
//! digits. Each connection task owns its histogram (no lock on the hot path)
//! and the run merges them once, as quinn's perf tool does.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency the histogram can hold: larger values are clamped to
/// it (and still counted), so one pathological stall cannot drop a sample.
pub const MAX_RECORDED_LATENCY: Duration = Duration::from_secs(60);

/// Significant decimal digits kept for every value: 0.1 % resolution.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies of one task, or of a whole run once merged.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram covering 1 ns to [`MAX_RECORDED_LATENCY`].
    pub fn new() -> Self {
        let high = u64::try_from(MAX_RECORDED_LATENCY.as_nanos()).unwrap_or(u64::MAX);
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 *
        // low, 3 digits): a failure is a programming error the tests catch,
        // never an input error.
        let histogram = Histogram::new_with_bounds(1, high, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        LatencyHistogram { histogram }
    }

    /// Records one latency; values beyond the range are clamped, never lost.
    pub fn record(&mut self, latency: Duration) {
        self.record_n(latency, 1);
    }

    /// Records `count` equal latencies at once: the replies of one batch,
    /// scheduled together and read together, cost one histogram update.
    pub fn record_n(&mut self, latency: Duration, count: u64) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record_n(nanos, count);
    }

    /// Adds every value of `other` to this histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both histograms have the same bounds, and auto-resize is off, so
        // the addition cannot fail; keep the values counted if it ever did.
        if self.histogram.add(&other.histogram).is_err() {
            for value in other.histogram.iter_recorded() {
                self.histogram
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The value at `quantile` (0.0 to 1.0); zero when empty.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.histogram.value_at_quantile(quantile))
    }

    /// The largest value recorded; zero when empty.
    pub fn max(&self) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.histogram.max())
    }

    /// The summary reported: percentiles in microseconds.
    pub fn summary(&self) -> LatencySummary {
        let us = |d: Duration| d.as_nanos() as f64 / 1_000.0;
        LatencySummary {
            count: self.count(),
            mean_us: if self.histogram.is_empty() {
                0.0
            } else {
                self.histogram.mean() / 1_000.0
            },
            p50_us: us(self.quantile(0.50)),
            p90_us: us(self.quantile(0.90)),
            p99_us: us(self.quantile(0.99)),
            p999_us: us(self.quantile(0.999)),
            max_us: us(self.max()),
        }
    }
}

/// Latency percentiles of a run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest value.
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Within the histogram's 0.1 % resolution.
    fn assert_close(actual: Duration, expected: Duration) {
        let (a, e) = (actual.as_nanos() as f64, expected.as_nanos() as f64);
        assert!(
            (a - e).abs() <= e * 0.001 + 1.0,
            "{actual:?} is not within 0.1 % of {expected:?}"
        );
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_microseconds() {
        let mut histogram = LatencyHistogram::new();
        for n in 1..=1000 {
            histogram.record(micros(n));
        }
        assert_eq!(histogram.count(), 1000);
        assert_close(histogram.quantile(0.5), micros(500));
        assert_close(histogram.quantile(0.9), micros(900));
        assert_close(histogram.quantile(0.99), micros(990));
        assert_close(histogram.quantile(0.999), micros(999));
        assert_close(histogram.max(), micros(1000));
        let summary = histogram.summary();
        assert!((summary.p99_us - 990.0).abs() < 1.0, "{summary:?}");
        assert!((summary.mean_us - 500.5).abs() < 1.0, "{summary:?}");
    }

    #[test]
    fn merging_keeps_every_value_of_both_sides() {
        let mut fast = LatencyHistogram::new();
        let mut slow = LatencyHistogram::new();
        for _ in 0..99 {
            fast.record(micros(10));
        }
        slow.record(micros(5000));
        fast.merge(&slow);
        assert_eq!(fast.count(), 100);
        assert_close(fast.quantile(0.5), micros(10));
        assert_close(fast.max(), micros(5000));
        // The one slow value is the top 1 %: p99 is still fast, p99.9 is not.
        assert_close(fast.quantile(0.99), micros(10));
        assert_close(fast.quantile(0.999), micros(5000));
    }

    #[test]
    fn values_beyond_the_range_are_clamped_not_dropped() {
        let mut histogram = LatencyHistogram::new();
        histogram.record(Duration::from_secs(3600));
        histogram.record(Duration::ZERO);
        assert_eq!(histogram.count(), 2);
        assert_close(histogram.max(), MAX_RECORDED_LATENCY);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let summary = LatencyHistogram::new().summary();
        assert_eq!(summary.count, 0);
        assert_eq!(summary.p99_us, 0.0);
        assert_eq!(summary.max_us, 0.0);
    }
}
