//! `failures-explained`: every failover, and every failed checkpoint, has a cause that the scenario put there: an
//! injected fault, a platform restart, or a canary. A healthy cluster with nothing injected never fails over and
//! never fails a checkpoint; when the engine does, something in it is broken however well it recovers.
//!
//! The model is the typed fault actions in the trace:
//! - a worker lost (no heartbeat) ⇐ that worker or the coordinator was crashed, cut off or clogged within
//!   `bounds.lost_window_ms` (or still is), or the network loses enough datagrams for a worker timeout's worth of
//!   heartbeats in a row to go missing: `loss` to the power of `bounds.heartbeats_per_timeout` at least [`LOSSY`] (at
//!   the default timings, ten heartbeats: a loss of 0.1);
//! - a worker restarted ⇐ a `restart` of it (each explains one);
//! - a task failed ⇐ some node or link fault within `bounds.task_window_ms` (streams retry for seconds after a heal);
//! - a deploy refused, or the checkpoint coordinator failed ⇐ a canary;
//! - checkpoint tolerance exceeded ⇐ its last failed checkpoint was explained;
//! - a restart through the API ⇐ a platform policy fired a restart (each explains one);
//! - a checkpoint failed as declined, with an I/O error, or expired ⇐ an injected failure of that reason (each
//!   explains one); an expiry also ⇐ delayed acknowledgements, a node or link fault in force, or one on the data path
//!   (workers and store: streams retry for up to 10 s after a heal) within `bounds.checkpoint_window_ms` of the
//!   checkpoint's life, or one on the control path only (the coordinator's datagrams are re-sent every tick) within
//!   `bounds.control_window_ms`, or a checkpoint timeout shorter than the timings let a healthy checkpoint take
//!   (`bounds.checkpoint_need_ms`: a barrier crosses every vertex behind the records ahead of it, each sink flushing
//!   within `flush_ms`), or a network that loses enough datagrams for every heartbeat that could carry an
//!   acknowledgement within the checkpoint timeout to go missing (`loss` to the power of the timeout's heartbeats at
//!   least [`LOSSY`], as for a lost worker), or a buggify point that slowed the data or the acknowledgements (every one but
//!   `reconnect-early`) within the same window as a control-path fault; an I/O error also ⇐ a fault of the store.
//!
//! And a failover tells the user why (README, "How it works": status changes carry their cause): the status change
//! it makes in the same instant (RESTARTING or FAILING) has a cause that names what failed: the worker
//! (`worker-N`), the task (`v<vertex>#<replica>`, as the README names tasks) and its reason, the checkpoint numbers,
//! or the reason of the restart asked for.

use super::kinds::at_ms;
use super::reachability::Reachability;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::buggify::BuggifyPoint;
use sluice_engine::faults::FailReason;
use sluice_engine::net::NodeName;
use sluice_engine::{Event, EventKind, FailureCause, PolicyAction};
use std::collections::BTreeMap;

pub(crate) const NAME: &str = "failures-explained";
/// The chance that a worker timeout's worth of heartbeats in a row go missing at which that counts as an injected
/// fault.
pub const LOSSY: f64 = 1e-10;

#[derive(Debug)]
pub struct FailuresExplained {
    /// The time bounds, from the scenario's timings.
    bounds: super::bounds::Bounds,
    lossy: bool,
    /// The heartbeats of one checkpoint timeout can all go missing (see [`LOSSY`]).
    checkpoint_lossy: bool,
    /// The checkpoint timeout is shorter than the timings let a checkpoint take on a healthy cluster.
    timeout_too_short: bool,
    canary: bool,
    /// Which nodes are down or cut off, and when faults named them.
    net: Reachability,
    /// Restarts not yet used to explain a restarted worker, per node.
    restarts: BTreeMap<String, u32>,
    /// Injected checkpoint failures not yet used to explain one, per reason.
    injected: BTreeMap<FailReason, u32>,
    /// The last node or link fault on the data path (a worker or the store crashed, restarted, cut off, or a link
    /// between two of them clogged or unclogged).
    last_data_fault_ms: Option<u64>,
    delayed_acks: bool,
    /// The last buggify point that slowed the data or the acknowledgements.
    last_slowed_ms: Option<u64>,
    policy_restarts: u32,
    triggered_ms: BTreeMap<u64, u64>,
    last_checkpoint_failure_explained: bool,
    /// A failover detected at this instant whose status change is still to come: what its cause must name.
    failover_names: Option<(u64, Vec<String>)>,
    violations: Vec<Violation>,
}

/// Whether a network losing `loss` of its datagrams loses `heartbeats` heartbeats in a row with a chance of at least
/// [`LOSSY`] (compared in logarithms, with room for rounding: at 0.1 and ten heartbeats it is exactly the limit).
fn lossy(loss: f64, heartbeats: u64) -> bool {
    loss > 0.0 && heartbeats as f64 * loss.ln() >= LOSSY.ln() - 1e-9
}

impl FailuresExplained {
    pub fn new(setup: &Setup) -> FailuresExplained {
        FailuresExplained {
            bounds: setup.bounds,
            lossy: lossy(setup.loss, setup.bounds.heartbeats_per_timeout),
            checkpoint_lossy: setup
                .checkpoint
                .is_some_and(|c| lossy(setup.loss, (c.timeout_ms / setup.bounds.heartbeat_ms.max(1)).max(1))),
            timeout_too_short: setup
                .checkpoint
                .is_some_and(|c| c.timeout_ms < setup.bounds.checkpoint_need_ms(setup.scales.len())),
            canary: !setup.canaries.is_empty(),
            net: Reachability::default(),
            restarts: BTreeMap::new(),
            injected: BTreeMap::new(),
            last_data_fault_ms: None,
            delayed_acks: false,
            last_slowed_ms: None,
            policy_restarts: 0,
            triggered_ms: BTreeMap::new(),
            failover_names: None,
            last_checkpoint_failure_explained: false,
            violations: Vec::new(),
        }
    }

    fn on_fault(&mut self, action: &Action, at_ms: u64) {
        self.net.apply(action, at_ms);
        let data = |n: &NodeName| matches!(n, NodeName::Worker(_) | NodeName::Store);
        let on_data_path = match action {
            Action::Clog { from, to } | Action::Unclog { from, to } => data(from) && data(to),
            _ => action.nodes().iter().any(data),
        };
        if on_data_path {
            self.last_data_fault_ms = Some(at_ms);
        }
        match action {
            Action::Restart { node } => *self.restarts.entry(node.label()).or_default() += 1,
            Action::FailCheckpoints { reason, count } => *self.injected.entry(*reason).or_default() += count,
            Action::DelayAcks { .. } => self.delayed_acks = true,
            _ => {}
        }
    }

    /// Whether `node` is down or cut off now, or a fault named it within `window_ms` before `now_ms`.
    fn touched(&self, node: &str, now_ms: u64, window_ms: u64) -> bool {
        self.net.touched_within(node, now_ms, window_ms)
    }

    /// Whether any node is down or cut off now, or a fault disrupted one within `window_ms` before `now_ms`.
    fn disturbed(&self, now_ms: u64, window_ms: u64) -> bool {
        self.net.disturbed_since(now_ms.saturating_sub(window_ms))
    }

    fn failover_explained(&mut self, cause: &FailureCause, at_ms: u64) -> bool {
        let coordinator = NodeName::Coordinator.label();
        match cause {
            FailureCause::WorkerLost { worker } => {
                let w = NodeName::Worker(*worker).label();
                self.lossy
                    || self.touched(&w, at_ms, self.bounds.lost_window_ms)
                    || self.touched(&coordinator, at_ms, self.bounds.lost_window_ms)
            }
            FailureCause::WorkerRestarted { worker } => {
                let left = self.restarts.entry(NodeName::Worker(*worker).label()).or_default();
                let explained = *left > 0;
                *left = left.saturating_sub(1);
                explained
            }
            FailureCause::TaskFailed { .. } => self.disturbed(at_ms, self.bounds.task_window_ms),
            FailureCause::DeployRefused { .. } | FailureCause::CheckpointCoordinatorFailed { .. } => false,
            FailureCause::CheckpointTolerance { .. } => self.last_checkpoint_failure_explained,
            FailureCause::RestartRequested { .. } => {
                let explained = self.policy_restarts > 0;
                self.policy_restarts = self.policy_restarts.saturating_sub(1);
                explained
            }
        }
    }

    fn checkpoint_failure_explained(&mut self, epoch: u64, reason: FailReason, at_ms: u64) -> bool {
        let triggered = self.triggered_ms.get(&epoch).copied().unwrap_or(at_ms);
        let age = at_ms - triggered.min(at_ms);
        let data_fault = self.last_data_fault_ms.is_some_and(|t| at_ms <= t + age + self.bounds.checkpoint_window_ms);
        let other = match reason {
            FailReason::Expired => {
                let slowed = self.last_slowed_ms.is_some_and(|t| at_ms <= t + age + self.bounds.control_window_ms);
                self.timeout_too_short
                    || self.checkpoint_lossy
                    || slowed
                    || self.delayed_acks
                    || data_fault
                    || self.disturbed(at_ms, age + self.bounds.control_window_ms)
            }
            FailReason::IoError => {
                self.touched(&NodeName::Store.label(), at_ms, age + self.bounds.checkpoint_window_ms)
            }
            FailReason::Declined | FailReason::Subsumed | FailReason::TaskNotReady => false,
        };
        if other {
            return true;
        }
        let left = self.injected.entry(reason).or_default();
        let explained = *left > 0;
        *left = left.saturating_sub(1);
        explained
    }
}

impl Checker for FailuresExplained {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        if self.failover_names.as_ref().is_some_and(|(t, _)| *t != at_ms) {
            self.failover_names = None; // no status change came with it (the status did not change)
        }
        let event = match &entry.event {
            TraceEvent::Fault(action) => return self.on_fault(action, at_ms),
            TraceEvent::Observed { .. } | TraceEvent::Alerted { .. } => return,
            TraceEvent::Engine(event) => event,
        };
        match event {
            Event::CheckpointTriggered { epoch, .. } => {
                self.triggered_ms.insert(*epoch, at_ms);
            }
            Event::PolicyFired { action: PolicyAction::Restart, .. } => self.policy_restarts += 1,
            // Buggify's rare paths that slow the checkpoint's path (a late store answer, a smaller batch, a late
            // acknowledgement or look) are mild injected faults: they may make a checkpoint in flight expire.
            Event::Buggified { point } if *point != BuggifyPoint::ReconnectEarly => self.last_slowed_ms = Some(at_ms),
            Event::CheckpointFailed { epoch, reason, detail, .. } => {
                let explained = self.checkpoint_failure_explained(*epoch, *reason, at_ms) || self.canary;
                self.last_checkpoint_failure_explained = explained;
                if !explained {
                    let detail = format!(
                        "checkpoint {epoch} failed ({}: {detail}) with no injected fault to explain it",
                        reason
                    );
                    self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
                }
            }
            Event::StatusChanged { cause, .. } => self.check_status_cause(cause, at_ms),
            Event::FailureDetected { attempt, cause } if !self.failover_explained(cause, at_ms) && !self.canary => {
                self.failover_names = Some((at_ms, names_of(cause)));
                self.unexplained(*attempt, cause, at_ms);
            }
            Event::FailureDetected { cause, .. } => self.failover_names = Some((at_ms, names_of(cause))),
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::FAULT.and(Kinds::engine(&[
            EventKind::CheckpointTriggered,
            EventKind::PolicyFired,
            EventKind::Buggified,
            EventKind::CheckpointFailed,
            EventKind::StatusChanged,
            EventKind::FailureDetected,
        ]))
    }

    /// The names a failover owes its status change are forgotten at the first entry of a later millisecond.
    fn wake_at_us(&self) -> u64 {
        self.failover_names.as_ref().map_or(u64::MAX, |(t, _)| at_ms(t + 1))
    }

    fn finish(&mut self, _end: &End) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }
}

/// What a failover's status cause must name, in the README's words for workers and tasks.
fn names_of(cause: &FailureCause) -> Vec<String> {
    let task_name = |t: &sluice_engine::TaskId| format!("v{}#{}", t.vertex, t.replica);
    match cause {
        FailureCause::WorkerLost { worker } | FailureCause::WorkerRestarted { worker } => {
            vec![format!("worker-{worker}")]
        }
        FailureCause::TaskFailed { task, why } | FailureCause::DeployRefused { task, why } => {
            vec![task_name(task), why.clone()]
        }
        FailureCause::CheckpointTolerance { consecutive, tolerable } => {
            vec![consecutive.to_string(), tolerable.to_string()]
        }
        FailureCause::CheckpointCoordinatorFailed { epoch } => vec![epoch.to_string()],
        FailureCause::RestartRequested { why } => vec![why.clone()],
    }
}

impl FailuresExplained {
    fn check_status_cause(&mut self, cause: &str, at_ms: u64) {
        let Some((_, names)) = self.failover_names.take() else { return };
        let missing: Vec<&str> = names.iter().map(String::as_str).filter(|n| !cause.contains(n)).collect();
        if !missing.is_empty() {
            let missing = missing.join(", ");
            let detail =
                format!("a failover's status change gives the cause \"{cause}\", which does not name {missing}");
            self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
        }
    }

    fn unexplained(&mut self, attempt: u32, cause: &FailureCause, at_ms: u64) {
        let detail = format!(
            "attempt {attempt} failed over (cause: {cause}) with no injected fault, platform restart or canary to explain it"
        );
        self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn detected(ms: u64, cause: FailureCause) -> TraceEntry {
        at(ms, "coordinator", Event::FailureDetected { attempt: 1, cause })
    }

    fn failed(ms: u64, epoch: u64, reason: FailReason) -> TraceEntry {
        let detail = String::new();
        at(ms, "coordinator", Event::CheckpointFailed { attempt: 1, epoch, reason, detail, consecutive: 1 })
    }

    fn check(trace: &[TraceEntry]) -> Vec<Violation> {
        run(&mut FailuresExplained::new(&setup(vec![1])), trace, 100_000)
    }

    #[test]
    fn a_network_is_lossy_when_a_timeouts_worth_of_heartbeats_can_go_missing() {
        assert!(lossy(0.1, 10) && !lossy(0.09, 10), "the default timings: ten heartbeats, a loss of 0.1");
        assert!(lossy(0.02, 5) && !lossy(0.02, 8), "fewer heartbeats per timeout: less loss suffices");
        assert!(!lossy(0.0, 1));
    }

    #[test]
    fn an_expiry_is_explained_by_a_timeout_shorter_than_the_timings_need() {
        let expired = [
            at(1_000, "coordinator", Event::CheckpointTriggered { attempt: 1, epoch: 1, is_final: false }),
            failed(1_800, 1, FailReason::Expired),
        ];
        let mut s = setup(vec![1]);
        s.scales =
            vec![crate::checker::Scale { kind: sluice_engine::VertexKind::Source, min: 1, max: 1, replicas: 1 }; 3];
        s.checkpoint =
            Some(sluice_engine::CheckpointSpec { interval_ms: 1_000, timeout_ms: 800, tolerable_failures: 0 });
        assert_eq!(run(&mut FailuresExplained::new(&s), &expired, 10_000).len(), 1, "default timings: 300 ms needed");
        let slow =
            sluice_engine::Timings { flush_ms: 326, tick_ms: 119, ..crate::scenario::timings::default_timings() };
        s.bounds = crate::checker::bounds::Bounds::of(&slow);
        assert!(run(&mut FailuresExplained::new(&s), &expired, 10_000).is_empty(), "3 × 326 + 219 ms needed");
    }

    #[test]
    fn an_expiry_is_explained_by_a_loss_that_can_drop_every_heartbeat_of_the_timeout() {
        let expired = [
            at(1_000, "coordinator", Event::CheckpointTriggered { attempt: 1, epoch: 1, is_final: false }),
            failed(2_000, 1, FailReason::Expired),
        ];
        let mut s = setup(vec![1]);
        s.checkpoint =
            Some(sluice_engine::CheckpointSpec { interval_ms: 2_000, timeout_ms: 1_000, tolerable_failures: 0 });
        let timings = sluice_engine::Timings { heartbeat_ms: 241, ..crate::scenario::timings::default_timings() };
        s.bounds = crate::checker::bounds::Bounds::of(&timings);
        s.loss = 0.0186; // four heartbeats per timeout: 0.0186⁴ ≈ 1.2e-7, above LOSSY
        assert!(run(&mut FailuresExplained::new(&s), &expired, 10_000).is_empty(), "heartbeats lost by the network");
        s.loss = 0.003; // 0.003⁴ ≈ 8e-11, below it
        assert_eq!(run(&mut FailuresExplained::new(&s), &expired, 10_000).len(), 1, "too little loss to explain it");
        s.loss = 0.0;
        assert_eq!(run(&mut FailuresExplained::new(&s), &expired, 10_000).len(), 1, "a healthy network");
    }

    #[test]
    fn failovers_need_a_cause() {
        let lost = detected(2_000, FailureCause::WorkerLost { worker: 1 });
        assert_eq!(check(std::slice::from_ref(&lost)).len(), 1, "a worker lost out of nothing");
        assert!(check(&[fault(1_000, Action::Isolate { node: worker(1) }), lost.clone()]).is_empty());
        assert_eq!(check(&[fault(1_000, Action::Isolate { node: worker(2) }), lost.clone()]).len(), 1, "not that one");
        let mut lossy = setup(vec![1]);
        lossy.loss = 0.2;
        assert!(run(&mut FailuresExplained::new(&lossy), &[lost], 10_000).is_empty(), "heartbeats lost by the network");
        let task = FailureCause::TaskFailed { task: sink(), why: "broke".into() };
        assert_eq!(check(&[detected(5_000, task.clone())]).len(), 1);
        assert!(check(&[fault(1_000, Action::Clog { from: worker(1), to: NodeName::Store }), detected(5_000, task)])
            .is_empty());
        let restarted = detected(3_000, FailureCause::WorkerRestarted { worker: 1 });
        assert!(check(&[fault(2_000, Action::Restart { node: worker(1) }), restarted.clone()]).is_empty());
        assert_eq!(check(&[fault(2_000, Action::Restart { node: worker(1) }), restarted.clone(), restarted]).len(), 1);
        let mut canary = setup(vec![1]);
        canary.canaries = vec![sluice_engine::Canary::RedeployWithoutFencing];
        let refused = detected(1_000, FailureCause::DeployRefused { task: sink(), why: "exists".into() });
        assert_eq!(check(std::slice::from_ref(&refused)).len(), 1);
        assert!(run(&mut FailuresExplained::new(&canary), &[refused], 10_000).is_empty());
    }

    #[test]
    fn failed_checkpoints_and_tolerance_need_a_cause() {
        let tolerance = detected(1_100, FailureCause::CheckpointTolerance { consecutive: 1, tolerable: 0 });
        let v = check(&[failed(1_000, 1, FailReason::Declined), tolerance.clone()]);
        assert_eq!(v.len(), 2, "{v:?}");
        let armed = fault(500, Action::FailCheckpoints { reason: FailReason::Declined, count: 1 });
        assert!(check(&[armed.clone(), failed(1_000, 1, FailReason::Declined), tolerance]).is_empty());
        let v = check(&[armed, failed(1_000, 1, FailReason::Declined), failed(2_000, 2, FailReason::Declined)]);
        assert_eq!(v.len(), 1, "one injected failure explains one: {v:?}");
        assert_eq!(check(&[failed(1_000, 1, FailReason::Expired)]).len(), 1);
        let control = Action::Clog { from: NodeName::Coordinator, to: worker(2) };
        let unclog = Action::Unclog { from: NodeName::Coordinator, to: worker(2) };
        let trigger =
            |ms, epoch| at(ms, "coordinator", Event::CheckpointTriggered { attempt: 1, epoch, is_final: false });
        let control_only = [fault(1_000, control), fault(2_000, unclog)];
        let late = [control_only.to_vec(), vec![trigger(4_000, 1), failed(4_500, 1, FailReason::Expired)]].concat();
        assert_eq!(check(&late).len(), 1, "2.5 s after a control-path heal an expiry needs another cause");
        let data = [fault(1_000, Action::Isolate { node: worker(2) }), fault(2_000, Action::Heal { node: worker(2) })];
        let late = [data.to_vec(), vec![trigger(4_000, 1), failed(4_500, 1, FailReason::Expired)]].concat();
        assert!(check(&late).is_empty(), "streams of a healed worker retry for seconds");
        let delayed = fault(0, Action::DelayAcks { checkpoint: sluice_engine::faults::AckTarget::Final, by_ms: 9 });
        assert!(check(&[delayed, failed(1_000, 1, FailReason::Expired)]).is_empty());
        let policy = at(10, "platform", Event::PolicyFired { action: PolicyAction::Restart, epochs: vec![] });
        let requested = detected(20, FailureCause::RestartRequested { why: "policy".into() });
        assert!(check(&[policy, requested.clone()]).is_empty());
        assert_eq!(check(&[requested]).len(), 1);
    }

    #[test]
    fn a_failovers_status_change_names_what_failed() {
        let task = sluice_engine::TaskId { vertex: 1, replica: 0 };
        let cause = FailureCause::TaskFailed { task, why: "stream of partition 0 broke".into() };
        let crash = fault(1_000, Action::Crash { node: worker(1) });
        let restarting = |ms, text: &str| {
            let cause = text.to_string();
            at(
                ms,
                "coordinator",
                Event::StatusChanged {
                    from: sluice_engine::JobStatus::Running,
                    to: sluice_engine::JobStatus::Restarting,
                    cause,
                },
            )
        };
        let named = restarting(1_500, "v1#0 failed: stream of partition 0 broke");
        assert!(check(&[crash.clone(), detected(1_500, cause.clone()), named]).is_empty());
        let unnamed = restarting(1_500, " failed: stream of partition 0 broke");
        let v = check(&[crash.clone(), detected(1_500, cause.clone()), unnamed]);
        assert!(v.len() == 1 && v[0].detail.contains("v1#0"), "{v:?}");
        let later = restarting(2_000, "something else");
        assert!(check(&[crash, detected(1_500, cause), later]).is_empty(), "only the change made in that instant");
    }
}
