//! Restart strategies with Flink's semantics, as `docs/bug-classes.md` states them; exponential-delay as Flink 1.19+
//! has it (FLIP-364, `ExponentialDelayRestartBackoffTimeStrategy`).

use crate::job::RestartSpec;
use std::collections::VecDeque;

/// Decides, failure by failure, whether the job restarts and after which delay.
#[derive(Clone, Debug)]
pub struct RestartTracker {
    spec: RestartSpec,
    restarts: u32,
    /// failure-rate: timestamps of the last `max_failures_per_interval + 1` failures.
    failures_ms: VecDeque<u64>,
    /// exponential-delay: restart attempts since the backoff last reset, and when the scheduled restart is due
    /// (`None` before the first failure).
    attempt: u32,
    next_restart_ms: Option<u64>,
}

/// A draw of the seeded runtime: uniform in `0..n` (`n > 0`).
pub type Draw<'a> = &'a mut dyn FnMut(u64) -> u64;

impl RestartTracker {
    pub fn new(spec: RestartSpec) -> RestartTracker {
        RestartTracker { spec, restarts: 0, failures_ms: VecDeque::new(), attempt: 0, next_restart_ms: None }
    }

    /// Records a failure at `now_ms`; `Ok(delay_ms)` to restart after that delay, `Err(why)` when refused. `draw`
    /// is asked only for exponential-delay's jitter.
    pub fn on_failure(&mut self, now_ms: u64, draw: Draw) -> Result<u64, String> {
        match self.spec {
            RestartSpec::None => Err("restart strategy is none".into()),
            RestartSpec::FixedDelay { attempts, delay_ms } => {
                if self.restarts < attempts {
                    self.restarts += 1;
                    Ok(delay_ms)
                } else {
                    Err(format!("fixed-delay: all {attempts} restart attempts used"))
                }
            }
            RestartSpec::FailureRate { max_failures_per_interval, failure_rate_interval_ms, delay_ms } => {
                let keep = max_failures_per_interval as usize + 1;
                self.failures_ms.push_back(now_ms);
                while self.failures_ms.len() > keep {
                    self.failures_ms.pop_front();
                }
                let within = self.failures_ms.iter().filter(|t| now_ms - **t <= failure_rate_interval_ms).count();
                if within > max_failures_per_interval as usize {
                    Err(format!(
                        "failure-rate: {within} failures within {failure_rate_interval_ms} ms \
                         (at most {max_failures_per_interval} allowed)"
                    ))
                } else {
                    self.restarts += 1;
                    Ok(delay_ms)
                }
            }
            RestartSpec::ExponentialDelay { .. } => self.exponential(now_ms, draw),
        }
    }

    /// FLIP-364: a failure at or before the scheduled restart is merged into it (same attempt, the rest of its
    /// delay); one at least `reset_backoff_threshold_ms` after it resets the attempt count; otherwise the next
    /// attempt. Refused once the attempt count exceeds `attempts_before_reset_backoff`.
    fn exponential(&mut self, now_ms: u64, draw: Draw) -> Result<u64, String> {
        let RestartSpec::ExponentialDelay { reset_backoff_threshold_ms, attempts_before_reset_backoff, .. } = self.spec
        else {
            unreachable!("only exponential-delay comes here")
        };
        let delay_ms = match self.next_restart_ms {
            Some(next) if now_ms <= next => next - now_ms,
            next => {
                if next.is_none_or(|next| now_ms - next >= reset_backoff_threshold_ms) {
                    self.attempt = 0;
                }
                let delay_ms = self.backoff_ms(draw);
                self.next_restart_ms = Some(now_ms + delay_ms);
                self.attempt += 1;
                delay_ms
            }
        };
        assert!(self.next_restart_ms.is_some_and(|next| next >= now_ms), "the scheduled restart lies ahead");
        match attempts_before_reset_backoff {
            Some(allowed) if self.attempt > allowed => Err(format!(
                "exponential-delay: restart attempt {} exceeds the {allowed} allowed before the backoff resets",
                self.attempt
            )),
            _ => {
                self.restarts += 1;
                Ok(delay_ms)
            }
        }
    }

    /// `initial × multiplier^attempt`, plus a jitter drawn in `±floor(that × jitter_factor)`, clamped to
    /// `[initial, max]`. The power is repeated multiplication in `f64` (exact IEEE operations: the same on every run).
    fn backoff_ms(&self, draw: Draw) -> u64 {
        let RestartSpec::ExponentialDelay {
            initial_backoff_ms: initial,
            max_backoff_ms: max,
            backoff_multiplier_milli,
            jitter_factor_milli,
            ..
        } = self.spec
        else {
            unreachable!("only exponential-delay comes here")
        };
        // Far above any max (at most a day): the clamp decides from there, with no overflow.
        const CEILING_MS: f64 = (1u64 << 50) as f64;
        let multiplier = f64::from(backoff_multiplier_milli) / 1000.0;
        let mut backoff = initial as f64;
        for _ in 0..self.attempt {
            if backoff >= CEILING_MS {
                break;
            }
            backoff *= multiplier;
        }
        let backoff = backoff.min(CEILING_MS) as u64;
        let offset = (backoff as f64 * f64::from(jitter_factor_milli) / 1000.0) as u64;
        let jittered = if offset == 0 { backoff } else { backoff - offset + draw(2 * offset + 1) };
        let delay_ms = jittered.min(max).max(initial);
        assert!((initial..=max).contains(&delay_ms), "backoff {delay_ms} ms outside [{initial}, {max}]");
        delay_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_draw(_: u64) -> u64 {
        panic!("no jitter was configured")
    }

    #[test]
    fn none_refuses_the_first_failure() {
        assert!(RestartTracker::new(RestartSpec::None).on_failure(0, &mut no_draw).is_err());
    }

    #[test]
    fn fixed_delay_runs_out() {
        let mut t = RestartTracker::new(RestartSpec::FixedDelay { attempts: 2, delay_ms: 7 });
        assert_eq!(t.on_failure(0, &mut no_draw), Ok(7));
        assert_eq!(t.on_failure(1, &mut no_draw), Ok(7));
        assert!(t.on_failure(2, &mut no_draw).is_err(), "the third failure finds both restarts used");
    }

    #[test]
    fn failure_rate_counts_only_the_interval() {
        let spec =
            RestartSpec::FailureRate { max_failures_per_interval: 1, failure_rate_interval_ms: 100, delay_ms: 5 };
        let mut t = RestartTracker::new(spec);
        assert_eq!(t.on_failure(0, &mut no_draw), Ok(5));
        assert_eq!(t.on_failure(150, &mut no_draw), Ok(5), "the first failure fell out of the interval");
        assert!(t.on_failure(200, &mut no_draw).is_err(), "two failures within 100 ms");
    }

    fn exponential(attempts: Option<u32>, jitter_factor_milli: u32) -> RestartTracker {
        RestartTracker::new(RestartSpec::ExponentialDelay {
            initial_backoff_ms: 1,
            max_backoff_ms: 20,
            backoff_multiplier_milli: 2_000,
            reset_backoff_threshold_ms: 8,
            jitter_factor_milli,
            attempts_before_reset_backoff: attempts,
        })
    }

    // Flink's ExponentialDelayRestartBackoffTimeStrategyTest, in its shape: backoffs 1, 2, 4, 8, 16, then the max.
    #[test]
    fn exponential_delay_doubles_up_to_the_max() {
        let mut t = exponential(None, 0);
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let delay = t.on_failure(now, &mut no_draw).expect("unlimited");
            delays.push(delay);
            now += delay + 1; // fails again just after each restart, within the reset threshold
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 20, 20]);
    }

    // Flink's testBackoffMultiplier: initial 4, multiplier 2.3: 4, 9 (9.2), 21 (21.16).
    #[test]
    fn exponential_delay_floors_a_fractional_multiplier_like_flink() {
        let mut t = RestartTracker::new(RestartSpec::ExponentialDelay {
            initial_backoff_ms: 4,
            max_backoff_ms: 300,
            backoff_multiplier_milli: 2_300,
            reset_backoff_threshold_ms: u64::from(u32::MAX),
            jitter_factor_milli: 0,
            attempts_before_reset_backoff: Some(10),
        });
        let delays: Vec<u64> = (0..3).map(|i| t.on_failure(i * 301, &mut no_draw).expect("allowed")).collect();
        assert_eq!(delays, vec![4, 9, 21]);
    }

    #[test]
    fn exponential_delay_merges_failures_before_the_restart_and_resets_after_the_threshold() {
        let mut t = exponential(Some(2), 0);
        assert_eq!(t.on_failure(100, &mut no_draw), Ok(1));
        assert_eq!(t.on_failure(101, &mut no_draw), Ok(0), "merged into the restart due at 101");
        assert_eq!(t.on_failure(102, &mut no_draw), Ok(2), "the second attempt");
        assert!(t.on_failure(105, &mut no_draw).is_err(), "a third attempt exceeds the 2 allowed");
        // The refused attempt was scheduled at 105 + 4; 8 ms after that the backoff resets.
        assert_eq!(t.on_failure(117, &mut no_draw), Ok(1), "reset: the first attempt again");
    }

    #[test]
    fn exponential_delay_jitter_stays_within_its_share_and_the_bounds() {
        let mut t = exponential(None, 500);
        assert_eq!(t.on_failure(0, &mut |n| n - 1), Ok(1), "a 1 ms backoff has no room for jitter");
        let (mut low, mut high) = (t.clone(), t.clone());
        assert_eq!(low.on_failure(2, &mut |_| 0), Ok(1), "2 - 1, clamped to the initial backoff");
        assert_eq!(high.on_failure(2, &mut |n| n - 1), Ok(3), "2 + 1");
    }
}
