//! `restart-policy-honored`: an independent reference model of the configured failure handling, fed with the
//! checkpoint outcomes and failures in the trace, holds the engine's decisions to it, both ways:
//! - tolerance: more consecutive failed checkpoints (each id once, reset by a success, counted only for the reasons
//!   Flink counts: expired, declined, I/O error) than tolerated ⇒ a failover, at once, and the count starts over; a
//!   tolerance failover the model does not call for is a violation;
//! - restart strategy: each detected failure ⇒ a restart iff the strategy allows it (a restart asked through the
//!   API always is, and it is a resubmission, as StreamPark's RESTART cancels the job and starts a new one: the
//!   strategy and the consecutive failure count start afresh);
//! - platform policy (B1–B4): distinct failed ids within the trailing window reaching `max_failures` ⇒ the policy
//!   fires within a poll interval (plus round trips; on a lossy network, plus the polls that may be lost in a row,
//!   [`Setup::lost_in_a_row`]), and a restart action reaches the coordinator; it fires at no
//!   other time. The platform polls the coordinator: while either is down or cut off (crash, isolation, clog, slow),
//!   the bound waits, and runs from when both are reachable again. An alert action is read by the client through the
//!   platform's API (`alerted`) within a status poll (plus round trips) of the firing, or of the client and the
//!   platform becoming reachable; the client reads no alert that was not fired, and reads them in order;
//! - restart delay: a restart scheduled after `delay_ms` deploys nothing before that delay has passed (Flink's
//!   restart strategies wait out the backoff before they redeploy: `DefaultScheduler.restartTasksWithDelay`), so the
//!   first `attempt-deployed` after a `restart-scheduled` at `t` comes at `t + delay_ms` or later. A restart asked
//!   through the API is a resubmission and replaces a pending delay; a strategy's later decision can only push the
//!   earliest redeploy out.

use super::kinds::after_ms;
use super::reachability::Reachability;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::faults::FailReason;
use sluice_engine::{Event, EventKind, FailureCause, PolicyAction, PolicySpec, RestartSpec};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub(crate) const NAME: &str = "restart-policy-honored";
/// The engine fails over in the same step that fails the checkpoint; this is only rounding.
const FAILOVER_SLACK_MS: u64 = 5;

/// The restart strategies, written from their definitions (not the engine's code). Exponential-delay follows
/// Flink 1.19+ (FLIP-364; `ExponentialDelayRestartBackoffTimeStrategy` and its test in apache/flink): a failure at
/// or before the scheduled restart is merged into it; one `reset_backoff_threshold_ms` or more after it resets the
/// attempt count; the n-th attempt waits `initial × multiplier^n`, jittered by up to `± that × jitter_factor`,
/// clamped to `[initial, max]`; refused once the count exceeds `attempts_before_reset_backoff`.
#[derive(Debug)]
struct StrategyModel {
    spec: RestartSpec,
    restarts: u32,
    failures_ms: Vec<u64>,
    /// exponential-delay: attempts since the last reset, and when the scheduled restart is due.
    attempt: u32,
    next_restart_ms: Option<u64>,
}

/// A scheduled restart: when, and the delay it waits before it deploys.
#[derive(Clone, Copy, Debug)]
struct RedeployBound {
    scheduled_ms: u64,
    delay_ms: u64,
}

impl RedeployBound {
    fn not_before_ms(&self) -> u64 {
        self.scheduled_ms + self.delay_ms
    }
}

/// What the model says of one failure: restart or not, and the delay the restart may take (inclusive).
#[derive(Clone, Copy, Debug)]
struct Verdict {
    allowed: bool,
    delay_ms: (u64, u64),
    /// Whether the strategy decided (not so for a restart asked through the API).
    by_strategy: bool,
}

impl StrategyModel {
    fn new(spec: RestartSpec) -> StrategyModel {
        StrategyModel { spec, restarts: 0, failures_ms: Vec::new(), attempt: 0, next_restart_ms: None }
    }

    fn on_failure(&mut self, now_ms: u64) -> Verdict {
        let exact =
            |allowed: bool, delay_ms: u64| Verdict { allowed, delay_ms: (delay_ms, delay_ms), by_strategy: true };
        match self.spec {
            RestartSpec::None => exact(false, 0),
            RestartSpec::FixedDelay { attempts, delay_ms } => {
                let ok = self.restarts < attempts;
                self.restarts += ok as u32;
                exact(ok, delay_ms)
            }
            RestartSpec::FailureRate {
                max_failures_per_interval: max,
                failure_rate_interval_ms: interval,
                delay_ms,
                ..
            } => {
                self.failures_ms.push(now_ms);
                let keep = max as usize + 1;
                let last = &self.failures_ms[self.failures_ms.len().saturating_sub(keep)..];
                let refused = last.len() == keep && last.iter().all(|t| now_ms - t <= interval);
                exact(!refused, delay_ms)
            }
            RestartSpec::ExponentialDelay {
                initial_backoff_ms: initial,
                max_backoff_ms: max,
                backoff_multiplier_milli: multiplier,
                reset_backoff_threshold_ms: threshold,
                jitter_factor_milli: jitter,
                attempts_before_reset_backoff: limit,
            } => {
                let delay_ms = match self.next_restart_ms {
                    Some(next) if now_ms <= next => (next - now_ms, next - now_ms),
                    next => {
                        if next.is_none_or(|next| now_ms >= next + threshold) {
                            self.attempt = 0;
                        }
                        let power = i32::try_from(self.attempt).unwrap_or(i32::MAX);
                        let base = (initial as f64 * (f64::from(multiplier) / 1000.0).powi(power)).min(1e15);
                        let spread = (base * f64::from(jitter) / 1000.0).floor();
                        let clamp = |v: f64| (v.floor().min(max as f64) as u64).max(initial);
                        self.attempt += 1;
                        // The power is computed another way than the engine's: allow a millisecond of rounding.
                        (clamp(base - spread).saturating_sub(1).max(initial), (clamp(base + spread) + 1).min(max))
                    }
                };
                let allowed = limit.is_none_or(|limit| self.attempt <= limit);
                if !allowed {
                    self.next_restart_ms = Some(now_ms + delay_ms.0); // the job fails: nothing follows
                }
                Verdict { allowed, delay_ms, by_strategy: true }
            }
        }
    }

    /// The engine scheduled the restart of a failure at `failed_ms` after `delay_ms`.
    fn on_scheduled(&mut self, failed_ms: u64, delay_ms: u64) {
        self.next_restart_ms = Some(failed_ms + delay_ms);
    }
}

#[derive(Debug)]
pub struct RestartPolicyHonored {
    strategy: StrategyModel,
    /// A detected failure waiting for the engine's decision: (time, cause, the model's verdict).
    decision: Option<(u64, String, Verdict)>,
    tolerable: Option<u32>,
    consecutive: u32,
    counted: BTreeSet<u64>,
    failover_due: Option<u64>,
    policy: Option<PolicySpec>,
    window: BTreeMap<u64, u64>,
    predicted: VecDeque<(u64, Vec<u64>)>,
    policy_slack_ms: u64,
    /// Alerts fired and not yet read by the client through the platform's API: (fired at, failed checkpoints).
    alerts_due: VecDeque<(u64, Vec<u64>)>,
    /// How long the client may take to read an alert once it and the platform are reachable.
    alert_slack_ms: u64,
    restart_due: Option<u64>,
    /// The earliest time (ms) the next attempt may be deployed at: the pending restart's schedule plus its delay.
    redeploy_not_before: Option<RedeployBound>,
    /// Whether the platform and the coordinator can talk.
    net: Reachability,
    violations: Vec<Violation>,
}

impl RestartPolicyHonored {
    pub fn new(setup: &Setup) -> RestartPolicyHonored {
        let round_trip_ms = 2 * setup.latency_max_ms + 100;
        // A poll lost on a lossy network is made up at the next poll.
        let polls = 1 + u64::from(setup.lost_in_a_row());
        RestartPolicyHonored {
            strategy: StrategyModel::new(setup.restart),
            decision: None,
            tolerable: setup.checkpoint.map(|c| c.tolerable_failures),
            consecutive: 0,
            counted: BTreeSet::new(),
            failover_due: None,
            policy: setup.policy,
            window: BTreeMap::new(),
            predicted: VecDeque::new(),
            policy_slack_ms: polls * setup.policy.map_or(0, |p| p.poll_ms) + round_trip_ms,
            alerts_due: VecDeque::new(),
            alert_slack_ms: polls * crate::world::STATUS_POLL_MS + round_trip_ms,
            restart_due: None,
            redeploy_not_before: None,
            net: Reachability::default(),
            violations: Vec::new(),
        }
    }

    /// When a policy step due at `t_ms` must be done by, counting from when the platform and the coordinator are
    /// both reachable; `None` while one of them is down or cut off (the bound has not started).
    fn policy_deadline_ms(&self, t_ms: u64) -> Option<u64> {
        self.deadline_between(("platform", "coordinator"), t_ms, self.policy_slack_ms)
    }

    /// `slack_ms` after `t_ms` or after both nodes became reachable, whichever is later; `None` while one is not.
    fn deadline_between(&self, (a, b): (&str, &str), t_ms: u64, slack_ms: u64) -> Option<u64> {
        if self.net.disrupted(a) || self.net.disrupted(b) {
            return None;
        }
        let since = self.net.reachable_since_ms(a).max(self.net.reachable_since_ms(b));
        Some(t_ms.max(since) + slack_ms)
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
        // Runs on every trace entry: only a missed deadline takes the entry (and its checkpoints) out.
        while let Some(&(t, _)) = self.predicted.front() {
            let Some(deadline) = self.policy_deadline_ms(t).filter(|d| now_ms > *d) else { break };
            let (_, epochs) = self.predicted.pop_front().expect("peeked");
            let detail = format!(
                "the policy should have fired on failed checkpoints {epochs:?} (at {t} ms) within {} ms of the \
                 platform reaching the coordinator; it did not by {deadline} ms",
                self.policy_slack_ms
            );
            self.violation(deadline, FailureClass::Liveness, detail);
        }
        while let Some(&(t, _)) = self.alerts_due.front() {
            let due = self.deadline_between(("platform", "client"), t, self.alert_slack_ms);
            let Some(deadline) = due.filter(|d| now_ms > *d) else { break };
            let (_, epochs) = self.alerts_due.pop_front().expect("peeked");
            let detail = format!(
                "the policy raised an alert on failed checkpoints {epochs:?} at {t} ms, but the platform's API did \
                 not show it to the client by {deadline} ms"
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

    fn on_checkpoint_failed(&mut self, epoch: u64, reason: FailReason, at_ms: u64) {
        if !self.counted.insert(epoch) {
            return;
        }
        // Flink's CheckpointFailureManager.checkFailureCounter: only CHECKPOINT_EXPIRED, CHECKPOINT_DECLINED,
        // IO_EXCEPTION (and CHECKPOINT_ASYNC_EXCEPTION) count; a decline because a newer checkpoint subsumed this one
        // (CHECKPOINT_DECLINED_SUBSUMED) or because the task was not ready (CHECKPOINT_DECLINED_TASK_NOT_READY) is
        // ignored: the count neither grows nor resets. The platform's policy reads every failed checkpoint.
        let counted = match reason {
            FailReason::Expired | FailReason::Declined | FailReason::IoError => true,
            FailReason::Subsumed | FailReason::TaskNotReady => false,
        };
        self.consecutive += u32::from(counted);
        if counted && self.tolerable.is_some_and(|t| self.consecutive > t) {
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
        let verdict = match cause {
            // A restart asked through the API is obeyed at once; the strategy is not asked. It is StreamPark's
            // RESTART, a resubmission (cancel, then start): the new job has a fresh restart strategy and a fresh
            // checkpoint failure counter.
            FailureCause::RestartRequested { .. } => {
                self.strategy = StrategyModel::new(self.strategy.spec);
                self.consecutive = 0;
                Verdict { allowed: true, delay_ms: (0, 0), by_strategy: false }
            }
            _ => self.strategy.on_failure(at_ms),
        };
        self.decision = Some((at_ms, cause.to_string(), verdict));
    }

    /// The engine's decision on the pending failure: a restart after `delay_ms`, or (`None`) a refusal.
    fn on_decision(&mut self, delay_ms: Option<u64>, at_ms: u64) {
        let by_strategy = self.decision.as_ref().is_none_or(|(_, _, v)| v.by_strategy);
        if let Some(delay) = delay_ms {
            self.on_restart_scheduled(at_ms, delay, by_strategy);
        }
        let Some((t, cause, verdict)) = self.decision.take() else { return };
        let restarted = delay_ms.is_some();
        if let Some(delay) = delay_ms {
            let (low, high) = verdict.delay_ms;
            if verdict.allowed && !(low..=high).contains(&delay) {
                let detail = format!(
                    "the restart after the failure at {t} ms waits {delay} ms, but {} calls for {low}..={high} ms \
                     ({cause})",
                    strategy_text(&self.strategy.spec)
                );
                self.violation(at_ms, FailureClass::Safety, detail);
            }
            if verdict.by_strategy {
                self.strategy.on_scheduled(t, delay);
            }
        }
        if restarted != verdict.allowed {
            let what = if restarted {
                "restarted although the strategy refuses"
            } else {
                "refused a restart the strategy allows"
            };
            let detail = format!("the job {what} ({}; failure at {t} ms: {cause})", strategy_text(&self.strategy.spec));
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }

    /// A restart scheduled at `at_ms` after `delay_ms`: nothing is deployed before then. A strategy's restart can only
    /// push a pending bound out (a failure merged into a scheduled restart); a resubmission through the API starts
    /// afresh.
    fn on_restart_scheduled(&mut self, at_ms: u64, delay_ms: u64, by_strategy: bool) {
        let scheduled = RedeployBound { scheduled_ms: at_ms, delay_ms };
        self.redeploy_not_before = match self.redeploy_not_before {
            Some(pending) if by_strategy && pending.not_before_ms() > scheduled.not_before_ms() => Some(pending),
            _ => Some(scheduled),
        };
    }

    /// An attempt was deployed: the first one after a scheduled restart must have waited out its delay.
    fn on_attempt_deployed(&mut self, attempt: u32, at_ms: u64) {
        let Some(bound) = self.redeploy_not_before.take() else { return };
        if at_ms < bound.not_before_ms() {
            let detail = format!(
                "attempt {attempt} was deployed at {at_ms} ms, {} ms after the restart scheduled at {} ms, which \
                 waits {} ms ({})",
                at_ms - bound.scheduled_ms,
                bound.scheduled_ms,
                bound.delay_ms,
                strategy_text(&self.strategy.spec)
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }

    /// The client read an alert through the platform's API: the oldest alert fired and not yet read, the same one.
    fn on_alert_read(&mut self, id: u64, epochs: &[u64], at_ms: u64) {
        match self.alerts_due.pop_front() {
            Some((_, fired)) if fired == epochs => {}
            Some((t, fired)) => {
                let detail = format!(
                    "the client read alert {id} on checkpoints {epochs:?}, but the next alert fired (at {t} ms) was on \
                     {fired:?}"
                );
                self.violation(at_ms, FailureClass::Safety, detail);
            }
            None => {
                let detail = format!(
                    "the client read alert {id} on checkpoints {epochs:?}, but no alert fired that it has not read"
                );
                self.violation(at_ms, FailureClass::Safety, detail);
            }
        }
    }

    fn on_policy_fired(&mut self, action: PolicyAction, epochs: &[u64], at_ms: u64) {
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
        match action {
            PolicyAction::Restart => self.restart_due = Some(at_ms),
            PolicyAction::Alert => self.alerts_due.push_back((at_ms, epochs.to_vec())),
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
            TraceEvent::Alerted { id, epochs } => return self.on_alert_read(*id, epochs, at_ms),
            TraceEvent::Observed { .. } => return,
        };
        match event {
            Event::CheckpointCompleted { .. } => self.consecutive = 0,
            Event::CheckpointFailed { epoch, reason, .. } => self.on_checkpoint_failed(*epoch, *reason, at_ms),
            Event::FailureDetected { cause, .. } => self.on_failure_detected(cause, at_ms),
            Event::RestartScheduled { delay_ms, .. } => self.on_decision(Some(*delay_ms), at_ms),
            Event::RestartRefused { .. } => self.on_decision(None, at_ms),
            Event::PolicyFired { action, epochs } => self.on_policy_fired(*action, epochs, at_ms),
            Event::RestartRequested { .. } => self.restart_due = None,
            Event::AttemptDeployed { attempt, .. } => self.on_attempt_deployed(*attempt, at_ms),
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::FAULT.and(Kinds::ALERTED).and(Kinds::engine(&[
            EventKind::CheckpointCompleted,
            EventKind::CheckpointFailed,
            EventKind::FailureDetected,
            EventKind::RestartScheduled,
            EventKind::RestartRefused,
            EventKind::PolicyFired,
            EventKind::RestartRequested,
            EventKind::AttemptDeployed,
        ]))
    }

    fn wake_at_us(&self) -> u64 {
        let failover = self.failover_due.map(|t| t + FAILOVER_SLACK_MS);
        let policy = self.predicted.front().and_then(|(t, _)| self.policy_deadline_ms(*t));
        let alert = self
            .alerts_due
            .front()
            .and_then(|(t, _)| self.deadline_between(("platform", "client"), *t, self.alert_slack_ms));
        let restart = self.restart_due.and_then(|t| self.policy_deadline_ms(t));
        [failover, policy, alert, restart].into_iter().flatten().min().map_or(u64::MAX, after_ms)
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_deadlines(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

/// A restart strategy as users write it: its TOML keys, as JSON (`{"strategy":"fixed-delay","attempts":6,…}`).
fn strategy_text(spec: &RestartSpec) -> String {
    serde_json::to_string(spec).expect("a restart strategy serializes")
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::CheckpointSpec;

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
        at(ms, "platform", Event::PolicyFired { action: PolicyAction::Restart, epochs })
    }

    fn detected(ms: u64, cause: FailureCause) -> TraceEntry {
        at(ms, "coordinator", Event::FailureDetected { attempt: 1, cause })
    }

    fn crash() -> FailureCause {
        FailureCause::WorkerLost { worker: 1 }
    }

    fn scheduled(ms: u64, delay_ms: u64) -> TraceEntry {
        at(ms, "coordinator", Event::RestartScheduled { attempt: 1, delay_ms })
    }

    fn refused(ms: u64) -> TraceEntry {
        at(ms, "coordinator", Event::RestartRefused { attempt: 1, cause: "x".into() })
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
    fn an_alert_is_read_by_the_client_once_in_order_and_in_time() {
        let mut s = policy_setup();
        s.policy = s.policy.map(|p| PolicySpec { action: PolicyAction::Alert, ..p });
        let alert =
            |ms: u64, epochs: Vec<u64>| at(ms, "platform", Event::PolicyFired { action: PolicyAction::Alert, epochs });
        let read = |ms: u64, id: u64, epochs: Vec<u64>| TraceEntry {
            at_us: ms * 1000,
            node: "client".into(),
            event: TraceEvent::Alerted { id, epochs },
        };
        let fired = vec![failed(10_000, 1), failed(20_000, 2), alert(24_000, vec![1, 2])];
        let good = [fired.clone(), vec![read(24_100, 1, vec![1, 2])]].concat();
        assert!(run(&mut RestartPolicyHonored::new(&s), &good, 60_000).is_empty());
        let v = run(&mut RestartPolicyHonored::new(&s), &fired, 60_000);
        assert!(v.len() == 1 && v[0].detail.contains("did not show it to the client"), "{v:?}");
        let twice = [good.clone(), vec![read(24_200, 2, vec![1, 2])]].concat();
        let v = run(&mut RestartPolicyHonored::new(&s), &twice, 60_000);
        assert!(v.len() == 1 && v[0].detail.contains("no alert fired that it has not read"), "{v:?}");
        let wrong = [fired, vec![read(24_100, 1, vec![2])]].concat();
        let v = run(&mut RestartPolicyHonored::new(&s), &wrong, 60_000);
        assert!(v.len() == 1 && v[0].detail.contains("the next alert fired"), "{v:?}");
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
        let tolerance = FailureCause::CheckpointTolerance { consecutive: 1, tolerable: 0 };
        let good = vec![
            failed(1_000, 1),
            detected(1_000, tolerance),
            scheduled(1_000, 10),
            detected(5_000, crash()),
            refused(5_000),
        ];
        assert!(run(&mut RestartPolicyHonored::new(&s), &good, 10_000).is_empty());
        let no_failover = vec![failed(1_000, 1), scheduled(2_000, 10)];
        assert_eq!(run(&mut RestartPolicyHonored::new(&s), &no_failover, 10_000).len(), 1);
        let refused_wrongly = vec![detected(500, crash()), refused(500)];
        let v = run(&mut RestartPolicyHonored::new(&s), &refused_wrongly, 10_000);
        assert!(v[0].detail.contains("refused a restart the strategy allows"), "{v:?}");
    }

    /// Ports of apache/flink CheckpointFailureManagerTest (testContinuousFailure, testBreakContinuousFailure), with
    /// a checkpoint subsumed or a task not ready for the ignored JOB_FAILOVER_REGION.
    #[test]
    fn tolerance_ignores_what_flink_ignores() {
        let mut s = setup(vec![1]);
        s.checkpoint = Some(CheckpointSpec { interval_ms: 1_000, timeout_ms: 500, tolerable_failures: 2 });
        s.restart = RestartSpec::FixedDelay { attempts: 9, delay_ms: 10 };
        let with = |ms: u64, epoch: u64, reason: FailReason| {
            let detail = String::new();
            at(ms, "coordinator", Event::CheckpointFailed { attempt: 1, epoch, reason, detail, consecutive: 0 })
        };
        let tolerance = FailureCause::CheckpointTolerance { consecutive: 3, tolerable: 2 };
        let continuous = vec![
            with(1_000, 1, FailReason::Declined),
            with(2_000, 2, FailReason::Declined),
            with(3_000, 3, FailReason::Subsumed),
            with(4_000, 4, FailReason::Declined),
            detected(4_000, tolerance.clone()),
            scheduled(4_000, 10),
        ];
        let v = run(&mut RestartPolicyHonored::new(&s), &continuous, 10_000);
        assert!(v.is_empty(), "the third counted failure fails over: {v:?}");
        let v = run(&mut RestartPolicyHonored::new(&s), &continuous[..4], 10_000);
        assert!(v.len() == 1 && v[0].detail.contains("no failover"), "{v:?}");
        let counted_ignored = [continuous[..3].to_vec(), vec![detected(3_000, tolerance), scheduled(3_000, 10)]];
        let v = run(&mut RestartPolicyHonored::new(&s), &counted_ignored.concat(), 10_000);
        assert!(v.len() == 1 && v[0].detail.contains("the model counts 2"), "{v:?}");
        let broken = vec![
            with(1_000, 1, FailReason::IoError),
            with(2_000, 2, FailReason::Declined),
            with(3_000, 3, FailReason::TaskNotReady),
            at(4_000, "coordinator", Event::CheckpointCompleted { attempt: 1, epoch: 4, is_final: false }),
            with(5_000, 5, FailReason::Expired),
        ];
        assert!(run(&mut RestartPolicyHonored::new(&s), &broken, 10_000).is_empty(), "a success resets the count");
    }

    #[test]
    fn an_api_restart_is_a_resubmission_with_a_fresh_strategy_and_failure_count() {
        let mut s = setup(vec![1]);
        s.checkpoint = Some(CheckpointSpec { interval_ms: 1_000, timeout_ms: 500, tolerable_failures: 1 });
        s.restart = RestartSpec::FixedDelay { attempts: 1, delay_ms: 10 };
        let api = || FailureCause::RestartRequested { why: "policy".into() };
        let base = vec![
            detected(1_000, crash()),
            scheduled(1_000, 10),
            failed(2_000, 1),
            detected(3_000, api()),
            scheduled(3_000, 0),
            failed(4_000, 2),
        ];
        // The resubmitted job restarts its first crash, and one failed checkpoint since is within the tolerance.
        let restarted = [base.clone(), vec![detected(5_000, crash()), scheduled(5_000, 10)]].concat();
        let v = run(&mut RestartPolicyHonored::new(&s), &restarted, 10_000);
        assert!(v.is_empty(), "{v:?}");
        let v = run(
            &mut RestartPolicyHonored::new(&s),
            &[base, vec![detected(5_000, crash()), refused(5_000)]].concat(),
            10_000,
        );
        assert!(v.len() == 1 && v[0].detail.contains("refused a restart the strategy allows"), "{v:?}");
    }

    /// Flink's restart strategies wait out their delay before they redeploy (`restartTasksWithDelay`).
    #[test]
    fn a_restart_deploys_nothing_before_its_delay_has_passed() {
        let mut s = setup(vec![1]);
        s.restart = RestartSpec::FixedDelay { attempts: 3, delay_ms: 500 };
        let deployed = |ms: u64, attempt: u32| {
            at(ms, "coordinator", Event::AttemptDeployed { attempt, start_offsets: vec![0], placement: vec![] })
        };
        let base = vec![deployed(10, 1), detected(1_000, crash()), scheduled(1_000, 500)];
        let waited = [base.clone(), vec![deployed(1_500, 2)]].concat();
        assert!(run(&mut RestartPolicyHonored::new(&s), &waited, 10_000).is_empty());
        let early = [base.clone(), vec![deployed(1_499, 2)]].concat();
        let v = run(&mut RestartPolicyHonored::new(&s), &early, 10_000);
        assert!(v.len() == 1 && v[0].detail.contains("499 ms after the restart scheduled at 1000 ms"), "{v:?}");
        // Only the first deploy after the schedule is bound; a later failure's restart is bound by its own delay.
        let again = [waited, vec![detected(2_000, crash()), scheduled(2_000, 500), deployed(2_100, 3)]].concat();
        let v = run(&mut RestartPolicyHonored::new(&s), &again, 10_000);
        assert!(v.len() == 1 && v[0].detail.contains("attempt 3 was deployed at 2100 ms"), "{v:?}");
        // A resubmission through the API replaces the pending delay: it deploys at once.
        let api = FailureCause::RestartRequested { why: "policy".into() };
        let resubmitted = [base, vec![detected(1_100, api), scheduled(1_100, 0), deployed(1_200, 2)]].concat();
        assert!(run(&mut RestartPolicyHonored::new(&s), &resubmitted, 10_000).is_empty());
    }

    fn exponential(
        initial: u64,
        max: u64,
        multiplier_milli: u32,
        threshold: u64,
        jitter: u32,
        limit: Option<u32>,
    ) -> StrategyModel {
        StrategyModel::new(RestartSpec::ExponentialDelay {
            initial_backoff_ms: initial,
            max_backoff_ms: max,
            backoff_multiplier_milli: multiplier_milli,
            reset_backoff_threshold_ms: threshold,
            jitter_factor_milli: jitter,
            attempts_before_reset_backoff: limit,
        })
    }

    /// One failure at `now`: the model must allow `delay` (within its 1 ms of rounding room, no wider) and the
    /// restart is scheduled after it; returns whether the model allows a restart at all.
    fn fail(m: &mut StrategyModel, now: u64, delay: u64) -> bool {
        let v = m.on_failure(now);
        let (low, high) = v.delay_ms;
        assert!((low..=high).contains(&delay) && high - low <= 2, "{delay} ms at {now}: {v:?}");
        if v.allowed {
            m.on_scheduled(now, delay);
        }
        v.allowed
    }

    // Ports of apache/flink ExponentialDelayRestartBackoffTimeStrategyTest (Flink 1.19+, FLIP-364), jitter 0.
    #[test]
    fn exponential_model_agrees_with_flinks_backoff_multiplier_and_reset_tests() {
        // testBackoffMultiplier: initial 4, multiplier 2.3, max 300: 4, 9, 21.
        let mut m = exponential(4, 300, 2_300, u32::MAX as u64, 0, Some(10));
        for (i, delay) in [4, 9, 21].into_iter().enumerate() {
            assert!(fail(&mut m, i as u64 * 301, delay));
        }
        // testResetBackoff: initial 1, max 5, multiplier 2, threshold 8.
        let mut m = exponential(1, 5, 2_000, 8, 0, None);
        assert!(fail(&mut m, 0, 1));
        assert!(fail(&mut m, 8, 2), "8 + 1 - 1 after the first: increased");
        assert!(fail(&mut m, 8 + 8 + 2, 1), "threshold + backoff later: reset");
        assert_eq!(m.on_failure(21).delay_ms, (1, 3), "2 ms, the second attempt since the reset");
    }

    #[test]
    fn exponential_model_merges_failures_and_refuses_past_the_attempts() {
        // testMergeMultipleExceptionsIntoOneAttempt: initial 2, multiplier 2, max 6, threshold 80, 3 attempts.
        let mut m = exponential(2, 6, 2_000, 80, 0, Some(3));
        let mut now = 0;
        for expected in [2, 4, 6] {
            assert!(fail(&mut m, now, expected), "a new attempt at {now}");
            for advance in 0..expected {
                let v = m.on_failure(now + advance);
                assert!(v.allowed && v.delay_ms == (expected - advance, expected - advance), "merged: {v:?}");
            }
            now += expected + 1;
        }
        assert!(!m.on_failure(now).allowed, "the fourth attempt exceeds 3");
    }

    #[test]
    fn exponential_model_allows_exactly_flinks_jitter_range() {
        // testJitter: initial 2, max 7, multiplier 2, jitter 0.25: after 2 failures 3..=5 (± 1 ms of rounding room).
        let mut m = exponential(2, 7, 2_000, u32::MAX as u64, 250, None);
        fail(&mut m, 8, 2);
        let v = m.on_failure(8 + 2 + 8);
        assert_eq!(v.delay_ms, (2, 6), "Flink's 3..=5, widened by the model's 1 ms");
    }

    #[test]
    fn a_restart_delay_off_the_strategy_is_flagged() {
        let mut s = setup(vec![1]);
        s.restart = RestartSpec::FixedDelay { attempts: 3, delay_ms: 10 };
        let lost = detected(1_000, crash());
        assert!(run(&mut RestartPolicyHonored::new(&s), &[lost.clone(), scheduled(1_000, 10)], 5_000).is_empty());
        let v = run(&mut RestartPolicyHonored::new(&s), &[lost, scheduled(1_000, 11)], 5_000);
        assert!(v.len() == 1 && v[0].detail.contains("waits 11 ms, but"), "{v:?}");
    }
}
