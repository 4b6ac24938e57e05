//! `restart-policy-honored`: an independent reference model of the configured failure handling, fed with the
//! checkpoint outcomes and failures in the trace, holds the engine's decisions to it, both ways:
//! - tolerance: more consecutive failed checkpoints (each id once, reset by a success) than tolerated ⇒ a failover,
//!   at once; a tolerance failover the model does not call for is a violation;
//! - restart strategy: each detected failure ⇒ a restart iff the strategy allows it (a restart asked through the
//!   API always is);
//! - platform policy (B1–B4): distinct failed ids within the trailing window reaching `max_failures` ⇒ the policy
//!   fires within a poll interval (plus round trips), and a restart action reaches the coordinator; it fires at no
//!   other time. The platform polls the coordinator: while either is down or cut off (crash, isolation, clog, slow),
//!   the bound waits, and runs from when both are reachable again.

use super::reachability::Reachability;
use super::{Checker, End, FailureClass, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, FailureCause, PolicySpec, RestartSpec};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub(crate) const NAME: &str = "restart-policy-honored";
/// The engine fails over in the same step that fails the checkpoint; this is only rounding.
const FAILOVER_SLACK_MS: u64 = 5;

/// The restart strategies, written from their definitions (not the engine's code).
struct StrategyModel {
    spec: RestartSpec,
    restarts: u32,
    failures_ms: Vec<u64>,
}

impl StrategyModel {
    fn allows(&mut self, now_ms: u64) -> bool {
        match self.spec {
            RestartSpec::None => false,
            RestartSpec::FixedDelay { attempts, .. } => {
                let ok = self.restarts < attempts;
                self.restarts += ok as u32;
                ok
            }
            RestartSpec::FailureRate { max_failures_per_interval: max, failure_rate_interval_ms: interval, .. } => {
                self.failures_ms.push(now_ms);
                let keep = max as usize + 1;
                let last = &self.failures_ms[self.failures_ms.len().saturating_sub(keep)..];
                let refused = last.len() == keep && last.iter().all(|t| now_ms - t <= interval);
                !refused
            }
        }
    }
}

pub struct RestartPolicyHonored {
    strategy: StrategyModel,
    /// A detected failure waiting for the engine's decision: (time, cause, the model's verdict).
    decision: Option<(u64, String, bool)>,
    tolerable: Option<u32>,
    consecutive: u32,
    counted: BTreeSet<u64>,
    failover_due: Option<u64>,
    policy: Option<PolicySpec>,
    window: BTreeMap<u64, u64>,
    predicted: VecDeque<(u64, Vec<u64>)>,
    policy_slack_ms: u64,
    restart_due: Option<u64>,
    /// Whether the platform and the coordinator can talk.
    net: Reachability,
    violations: Vec<Violation>,
}

impl RestartPolicyHonored {
    pub fn new(setup: &Setup) -> RestartPolicyHonored {
        let round_trip_ms = 2 * setup.latency_max_ms + 100;
        RestartPolicyHonored {
            strategy: StrategyModel { spec: setup.restart, restarts: 0, failures_ms: Vec::new() },
            decision: None,
            tolerable: setup.checkpoint.map(|c| c.tolerable_failures),
            consecutive: 0,
            counted: BTreeSet::new(),
            failover_due: None,
            policy: setup.policy,
            window: BTreeMap::new(),
            predicted: VecDeque::new(),
            policy_slack_ms: setup.policy.map_or(0, |p| p.poll_ms) + round_trip_ms,
            restart_due: None,
            net: Reachability::default(),
            violations: Vec::new(),
        }
    }

    /// When a policy step due at `t_ms` must be done by, counting from when the platform and the coordinator are
    /// both reachable; `None` while one of them is down or cut off (the bound has not started).
    fn policy_deadline_ms(&self, t_ms: u64) -> Option<u64> {
        let (platform, coordinator) = ("platform", "coordinator");
        if self.net.disrupted(platform) || self.net.disrupted(coordinator) {
            return None;
        }
        let since = self.net.reachable_since_ms(platform).max(self.net.reachable_since_ms(coordinator));
        Some(t_ms.max(since) + self.policy_slack_ms)
    }

    fn violation(&mut self, at_ms: u64, class: FailureClass, detail: String) {
        self.violations.push(Violation::new(NAME, at_ms, class, detail));
    }

    /// Deadlines that have passed by `now_ms`.
    fn check_deadlines(&mut self, now_ms: u64) {
        if let Some(t) = self.failover_due.filter(|t| now_ms > t + FAILOVER_SLACK_MS) {
            self.failover_due = None;
            let detail = format!(
                "{} consecutive failed checkpoints (tolerable {}) at {t} ms, but no failover",
                self.consecutive,
                self.tolerable.unwrap_or(0)
            );
            self.violation(t, FailureClass::Liveness, detail);
        }
        while let Some((t, epochs)) = self.predicted.front().cloned() {
            let Some(deadline) = self.policy_deadline_ms(t).filter(|d| now_ms > *d) else { break };
            self.predicted.pop_front();
            let detail = format!(
                "the policy should have fired on failed checkpoints {epochs:?} (at {t} ms) within {} ms of the \
                 platform reaching the coordinator; it did not by {deadline} ms",
                self.policy_slack_ms
            );
            self.violation(deadline, FailureClass::Liveness, detail);
        }
        if let Some(deadline) = self.restart_due.and_then(|t| self.policy_deadline_ms(t)).filter(|d| now_ms > *d) {
            self.restart_due = None;
            self.violation(
                deadline,
                FailureClass::Liveness,
                "the policy fired a restart that never reached the coordinator".into(),
            );
        }
    }

    fn on_checkpoint_failed(&mut self, epoch: u64, at_ms: u64) {
        if !self.counted.insert(epoch) {
            return;
        }
        self.consecutive += 1;
        if self.tolerable.is_some_and(|t| self.consecutive > t) {
            // Flink's CheckpointFailureManager: over the tolerance, the count is cleared and the job fails over.
            self.failover_due = Some(at_ms);
            self.consecutive = 0;
        }
        if let Some(p) = self.policy {
            self.window.insert(epoch, at_ms);
            self.window.retain(|_, t| *t + p.window_ms > at_ms);
            if self.window.len() as u32 >= p.max_failures {
                self.predicted.push_back((at_ms, self.window.keys().copied().collect()));
                self.window.clear();
            }
        }
    }

    fn on_failure_detected(&mut self, cause: &FailureCause, at_ms: u64) {
        let tolerance = matches!(cause, FailureCause::CheckpointTolerance { .. });
        if self.failover_due.take().is_none() && tolerance {
            let detail = format!(
                "failover at {at_ms} ms for checkpoint tolerance, but the model counts {} consecutive failures \
                 (tolerable {})",
                self.consecutive,
                self.tolerable.unwrap_or(0)
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
        let allowed = matches!(cause, FailureCause::RestartRequested { .. }) || self.strategy.allows(at_ms);
        self.decision = Some((at_ms, cause.to_string(), allowed));
    }

    fn on_decision(&mut self, restarted: bool, at_ms: u64) {
        let Some((t, cause, allowed)) = self.decision.take() else { return };
        if restarted != allowed {
            let what = if restarted {
                "restarted although the strategy refuses"
            } else {
                "refused a restart the strategy allows"
            };
            let detail = format!("the job {what} ({:?}; failure at {t} ms: {cause})", self.strategy.spec);
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }

    fn on_policy_fired(&mut self, action: &str, epochs: &[u64], at_ms: u64) {
        match self.predicted.front() {
            Some((t, _)) if *t <= at_ms => {
                self.predicted.pop_front();
            }
            _ => {
                let detail = format!(
                    "the policy fired ({action}) on {epochs:?} at {at_ms} ms, but the model does not call for it"
                );
                self.violation(at_ms, FailureClass::Safety, detail);
            }
        }
        if action == "restart" {
            self.restart_due = Some(at_ms);
        }
    }
}

impl Checker for RestartPolicyHonored {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.check_deadlines(at_ms);
        let event = match &entry.event {
            TraceEvent::Engine(event) => event,
            TraceEvent::Fault(action) => return self.net.apply(action, at_ms),
            TraceEvent::Observed { .. } => return,
        };
        match event {
            Event::CheckpointCompleted { .. } => self.consecutive = 0,
            Event::CheckpointFailed { epoch, .. } => self.on_checkpoint_failed(*epoch, at_ms),
            Event::FailureDetected { cause, .. } => self.on_failure_detected(cause, at_ms),
            Event::RestartScheduled { .. } => self.on_decision(true, at_ms),
            Event::RestartRefused { .. } => self.on_decision(false, at_ms),
            Event::PolicyFired { action, epochs } => self.on_policy_fired(action, epochs, at_ms),
            Event::RestartRequested { .. } => self.restart_due = None,
            _ => {}
        }
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_deadlines(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::{CheckpointSpec, PolicyAction};

    fn failed(ms: u64, epoch: u64) -> TraceEntry {
        let reason = sluice_engine::faults::FailReason::IoError;
        at(
            ms,
            "coordinator",
            Event::CheckpointFailed { attempt: 1, epoch, reason, detail: String::new(), consecutive: 0 },
        )
    }

    fn policy_setup() -> Setup {
        let mut s = setup(vec![1]);
        s.checkpoint = Some(CheckpointSpec { interval_ms: 10_000, timeout_ms: 1_000, tolerable_failures: 99 });
        s.policy =
            Some(PolicySpec { window_ms: 300_000, max_failures: 2, action: PolicyAction::Restart, poll_ms: 5_000 });
        s
    }

    fn fired(ms: u64, epochs: Vec<u64>) -> TraceEntry {
        at(ms, "platform", Event::PolicyFired { action: "restart".into(), epochs })
    }

    fn requested(ms: u64) -> TraceEntry {
        at(ms, "coordinator", Event::RestartRequested { cause: "policy".into() })
    }

    #[test]
    fn passes_when_the_policy_fires_once_in_time() {
        let trace =
            vec![failed(10_000, 1), failed(20_000, 2), fired(24_000, vec![1, 2]), requested(24_010), failed(30_000, 3)];
        assert!(run(&mut RestartPolicyHonored::new(&policy_setup()), &trace, 60_000).is_empty());
    }

    #[test]
    fn the_bound_waits_while_the_platform_is_cut_off_and_runs_from_its_heal() {
        use crate::fault::Action;
        use sluice_engine::net::NodeName;
        let cut = vec![
            fault(5_000, Action::Isolate { node: NodeName::Platform }),
            failed(10_000, 1),
            failed(20_000, 2),
            fault(40_000, Action::Heal { node: NodeName::Platform }),
        ];
        let late = [cut.clone(), vec![fired(41_000, vec![1, 2]), requested(41_010)]].concat();
        let v = run(&mut RestartPolicyHonored::new(&policy_setup()), &late, 60_000);
        assert!(v.is_empty(), "fired once the platform was back: {v:?}");
        let v = run(&mut RestartPolicyHonored::new(&policy_setup()), &cut, 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("it did not by 45120 ms"), "{}", v[0].detail);
    }

    #[test]
    fn fails_on_a_missing_firing_and_on_an_uncalled_one() {
        let missing = vec![failed(10_000, 1), failed(20_000, 2)];
        let v = run(&mut RestartPolicyHonored::new(&policy_setup()), &missing, 60_000);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].class, FailureClass::Liveness);
        let uncalled = vec![failed(10_000, 1), fired(15_000, vec![1, 1]), requested(15_010)];
        let v = run(&mut RestartPolicyHonored::new(&policy_setup()), &uncalled, 60_000);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("does not call for it"), "{}", v[0].detail);
    }

    #[test]
    fn judges_tolerance_and_strategy() {
        let mut s = setup(vec![1]);
        s.checkpoint = Some(CheckpointSpec { interval_ms: 1_000, timeout_ms: 500, tolerable_failures: 0 });
        s.restart = RestartSpec::FixedDelay { attempts: 1, delay_ms: 10 };
        let detected = |ms, cause: FailureCause| at(ms, "coordinator", Event::FailureDetected { attempt: 1, cause });
        let tolerance = FailureCause::CheckpointTolerance { consecutive: 1, tolerable: 0 };
        let crash = || FailureCause::WorkerLost { worker: 1 };
        let scheduled = |ms| at(ms, "coordinator", Event::RestartScheduled { attempt: 1, delay_ms: 10 });
        let refused = |ms| at(ms, "coordinator", Event::RestartRefused { attempt: 1, cause: "x".into() });
        let good = vec![
            failed(1_000, 1),
            detected(1_000, tolerance),
            scheduled(1_000),
            detected(5_000, crash()),
            refused(5_000),
        ];
        assert!(run(&mut RestartPolicyHonored::new(&s), &good, 10_000).is_empty());
        let no_failover = vec![failed(1_000, 1), scheduled(2_000)];
        assert_eq!(run(&mut RestartPolicyHonored::new(&s), &no_failover, 10_000).len(), 1);
        let refused_wrongly = vec![detected(500, crash()), refused(500)];
        let v = run(&mut RestartPolicyHonored::new(&s), &refused_wrongly, 10_000);
        assert!(v[0].detail.contains("refused a restart the strategy allows"), "{v:?}");
    }
}
