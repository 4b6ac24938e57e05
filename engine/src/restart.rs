//! Restart strategies with Flink's semantics, as `docs/bug-classes.md` states them.

use crate::job::RestartSpec;
use std::collections::VecDeque;

/// Decides, failure by failure, whether the job restarts and after which delay.
#[derive(Clone, Debug)]
pub struct RestartTracker {
    spec: RestartSpec,
    restarts: u32,
    /// failure-rate: timestamps of the last `max_failures_per_interval + 1` failures.
    failures_ms: VecDeque<u64>,
}

impl RestartTracker {
    pub fn new(spec: RestartSpec) -> RestartTracker {
        RestartTracker { spec, restarts: 0, failures_ms: VecDeque::new() }
    }

    /// Records a failure at `now_ms`; `Ok(delay_ms)` to restart after that delay, `Err(why)` when refused.
    pub fn on_failure(&mut self, now_ms: u64) -> Result<u64, String> {
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
        }
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_refuses_the_first_failure() {
        assert!(RestartTracker::new(RestartSpec::None).on_failure(0).is_err());
    }

    #[test]
    fn fixed_delay_runs_out() {
        let mut t = RestartTracker::new(RestartSpec::FixedDelay { attempts: 2, delay_ms: 7 });
        assert_eq!(t.on_failure(0), Ok(7));
        assert_eq!(t.on_failure(1), Ok(7));
        assert!(t.on_failure(2).is_err());
        assert_eq!(t.restarts(), 2);
    }

    #[test]
    fn failure_rate_counts_only_the_interval() {
        let spec =
            RestartSpec::FailureRate { max_failures_per_interval: 1, failure_rate_interval_ms: 100, delay_ms: 5 };
        let mut t = RestartTracker::new(spec);
        assert_eq!(t.on_failure(0), Ok(5));
        assert_eq!(t.on_failure(150), Ok(5), "the first failure fell out of the interval");
        assert!(t.on_failure(200).is_err(), "two failures within 100 ms");
    }
}
