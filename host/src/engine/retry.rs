//! Retry delays: exponential from `retry_interval`, capped, with jitter.

use std::time::Duration;

/// Delay before retry number `retry` (1-based): `base · 2^(retry-1)`, at most `cap`, then
/// scaled by a random factor in [0.8, 1.2] so retries of many sagas spread out.
pub fn backoff(base: Duration, cap: Duration, retry: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let capped = exp.min(cap.max(base));
    capped.mul_f64(rand::random_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        let d1 = backoff(base, cap, 1);
        let d3 = backoff(base, cap, 3);
        let d9 = backoff(base, cap, 9);
        assert!(d1 >= Duration::from_millis(80) && d1 <= Duration::from_millis(120));
        assert!(d3 >= Duration::from_millis(320) && d3 <= Duration::from_millis(480));
        assert!(d9 <= Duration::from_millis(1200));
    }
}
