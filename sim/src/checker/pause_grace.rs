//! `pause-drains` D4 (class D): a pause in progress ends, drained or not. README, "Lifecycle" (NumaFlow's
//! controller): once pausing, the job is PAUSED when its buffers drained *or* when `pause_grace_period_ms` passed,
//! drained or not. So from the instant the job reports PAUSING it reports PAUSED, or leaves PAUSING another way (a
//! failover, a resume, a terminal status), within the grace period + `bounds.paused_slack_ms` (the controller's tick, the
//! workers' confirmation that the executions stopped).
//!
//! The confirmation is the only part that waits on other nodes: the pause needs no fence (nothing is left to write),
//! only the workers' word, on the coordinator ↔ worker path. When that path is disrupted during the pause (a crash,
//! restart, isolation, heal, clog or slow of a worker or of the coordinator, or of a link between them; or one was
//! not settled when the pause began) or a worker announces a slow cancellation (`cancel-delayed`), the coordinator
//! may also wait out its documented cancel bound: + `bounds.cancel_wait_ms` + `bounds.give_up_slack_ms`. A fault of the store
//! or of a worker's link to it extends nothing: it may keep the buffers from draining, which is what the grace
//! period is for.
//!
//! Its own model: the job status from the trace, the scenario's grace period, and the faults by kind and subject.

use super::kinds::after_ms;
use super::{FailureClass, Kinds, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::net::NodeName;
use sluice_engine::{Event, EventKind, JobStatus};
use std::collections::{BTreeMap, BTreeSet};

/// D4's model.
#[derive(Debug)]
pub struct PauseGrace {
    grace_ms: u64,
    bounds: super::bounds::Bounds,
    /// The pause in progress: since when the job reports PAUSING, and whether its control path was disrupted.
    pausing: Option<(u64, bool)>,
    /// Control-path disruptions in force (a crashed node, an isolated node, a clogged or slowed link), and each slowed
    /// link's delay.
    in_force: BTreeSet<String>,
    slowed_ms: BTreeMap<String, u64>,
    /// Until when what a healed disruption delayed may still be arriving.
    settled_at_ms: u64,
}

impl PauseGrace {
    pub fn new(grace_ms: u64, bounds: super::bounds::Bounds) -> PauseGrace {
        PauseGrace {
            grace_ms,
            bounds,
            pausing: None,
            in_force: BTreeSet::new(),
            slowed_ms: BTreeMap::new(),
            settled_at_ms: 0,
        }
    }

    /// The deadline of the pause in progress.
    fn deadline_ms(&self) -> Option<u64> {
        let (since, disrupted) = self.pausing?;
        let wait_ms = if disrupted {
            self.bounds.cancel_wait_ms + self.bounds.give_up_slack_ms
        } else {
            self.bounds.paused_slack_ms
        };
        Some(since + self.grace_ms + wait_ms)
    }

    /// A violation if the pause in progress outlived its deadline before `now_ms`.
    pub fn check(&mut self, now_ms: u64) -> Option<Violation> {
        let deadline = self.deadline_ms().filter(|d| now_ms > *d)?;
        let (since, disrupted) = self.pausing.take().expect("a deadline belongs to a pause in progress");
        let why = if disrupted {
            "the grace period, the cancel bound and their slack (the coordinator ↔ worker path was disrupted)"
        } else {
            "the grace period and its slack"
        };
        let detail = format!(
            "PAUSING since {since} ms, still not PAUSED (drained or not) by {deadline} ms: a pause ends within {why}; \
             grace {} ms",
            self.grace_ms
        );
        Some(Violation::new(super::pause_drains::NAME, deadline, FailureClass::Liveness, detail))
    }

    /// The entries [`PauseGrace::on_entry`] reads.
    pub const KINDS: Kinds = Kinds::FAULT.and(Kinds::engine(&[EventKind::StatusChanged, EventKind::CancelDelayed]));

    /// When [`PauseGrace::check`] would report the pause in progress.
    pub fn wake_at_us(&self) -> u64 {
        self.deadline_ms().map_or(u64::MAX, after_ms)
    }

    pub fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        match &entry.event {
            TraceEvent::Fault(action) if on_control_path(action) => self.on_fault(action, at_ms),
            TraceEvent::Engine(Event::StatusChanged { from, to, .. }) => {
                if *to == JobStatus::Pausing && *from != JobStatus::Pausing {
                    let unsettled = !self.in_force.is_empty() || self.settled_at_ms > at_ms;
                    self.pausing = Some((at_ms, unsettled));
                } else if *to != JobStatus::Pausing {
                    self.pausing = None;
                }
            }
            TraceEvent::Engine(Event::CancelDelayed { .. }) => self.disrupted(),
            _ => {}
        }
    }

    fn disrupted(&mut self) {
        if let Some((_, disrupted)) = self.pausing.as_mut() {
            *disrupted = true;
        }
    }

    fn on_fault(&mut self, action: &Action, at_ms: u64) {
        self.disrupted();
        let key = |kind: &str, a: &NodeName, b: Option<&NodeName>| match b {
            Some(b) => format!("{kind} {}>{}", a.label(), b.label()),
            None => format!("{kind} {}", a.label()),
        };
        match action {
            Action::Crash { node } => {
                self.in_force.insert(key("down", node, None));
            }
            Action::Isolate { node } => {
                self.in_force.insert(key("cut", node, None));
            }
            Action::Clog { from, to } => {
                self.in_force.insert(key("cut", from, Some(to)));
            }
            Action::Slow { from, to, by_ms } => {
                self.in_force.insert(key("slow", from, Some(to)));
                self.slowed_ms.insert(key("slow", from, Some(to)), *by_ms);
            }
            Action::Restart { node } => self.healed(&key("down", node, None), at_ms),
            Action::Heal { node } => self.healed(&key("cut", node, None), at_ms),
            Action::Unclog { from, to } => self.healed(&key("cut", from, Some(to)), at_ms),
            Action::Unslow { from, to } => {
                let link = key("slow", from, Some(to));
                let late_ms = self.slowed_ms.remove(&link).unwrap_or(0);
                self.healed(&link, at_ms + late_ms);
            }
            _ => unreachable!("only node and link faults are on the control path: {action:?}"),
        }
    }

    fn healed(&mut self, disruption: &str, at_ms: u64) {
        self.in_force.remove(disruption);
        self.settled_at_ms = self.settled_at_ms.max(at_ms + self.bounds.settle_ms);
    }
}

/// Whether the fault touches the coordinator ↔ worker path: a worker or the coordinator itself, or a link between
/// the two. The store, the client and the platform are not on it.
fn on_control_path(action: &Action) -> bool {
    let worker = |n: &NodeName| matches!(n, NodeName::Worker(_));
    let coordinator = |n: &NodeName| matches!(n, NodeName::Coordinator);
    match action {
        Action::Crash { node } | Action::Restart { node } | Action::Isolate { node } | Action::Heal { node } => {
            worker(node) || coordinator(node)
        }
        Action::Clog { from, to }
        | Action::Unclog { from, to }
        | Action::Slow { from, to, .. }
        | Action::Unslow { from, to } => (worker(from) && coordinator(to)) || (coordinator(from) && worker(to)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::pause_drains::PauseDrains;
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::net::NodeName;

    fn pausing(ms: u64) -> TraceEntry {
        status(ms, JobStatus::Running, JobStatus::Pausing)
    }

    fn paused(ms: u64) -> TraceEntry {
        status(ms, JobStatus::Pausing, JobStatus::Paused)
    }

    fn d4(trace: &[TraceEntry], end_ms: u64) -> Vec<Violation> {
        let mut setup = setup(vec![1]);
        setup.pause_grace_period_ms = 2_000;
        let v = run(&mut PauseDrains::new(&setup), trace, end_ms);
        v.into_iter().filter(|v| v.detail.contains("still not PAUSED")).collect()
    }

    #[test]
    fn a_pause_ends_within_its_grace_drained_or_not() {
        assert!(d4(&[pausing(1_000), paused(3_900)], 20_000).is_empty(), "PAUSED undrained after the grace");
        let v = d4(&[pausing(1_000), paused(4_100)], 20_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at_ms, 4_000, "grace 2 s + 1 s from PAUSING");
        let v = d4(&[pausing(1_000)], 20_000);
        assert_eq!(v.len(), 1, "never PAUSED: {v:?}");
        assert!(d4(&[pausing(1_000)], 3_900).is_empty(), "the run ended before the deadline");
    }

    #[test]
    fn leaving_pausing_another_way_ends_the_rule() {
        let failover = status(2_500, JobStatus::Pausing, JobStatus::Restarting);
        let back = status(9_000, JobStatus::Restarting, JobStatus::Pausing);
        assert!(d4(&[pausing(1_000), failover.clone()], 20_000).is_empty());
        let v = d4(&[pausing(1_000), failover, back], 20_000);
        assert_eq!(v.iter().map(|v| v.at_ms).collect::<Vec<_>>(), vec![12_000], "a new pause, a new clock");
    }

    #[test]
    fn a_disrupted_control_path_allows_the_cancel_bound_and_a_store_fault_does_not() {
        let bounds = crate::checker::bounds::Bounds::default();
        let late = bounds.cancel_wait_ms + bounds.give_up_slack_ms + 3_000;
        let clog = |from, to| fault(1_500, Action::Clog { from, to });
        let to_store = clog(worker(1), NodeName::Store);
        let v = d4(&[pausing(1_000), to_store, paused(late)], 30_000);
        assert_eq!(v.len(), 1, "the store's link only keeps the buffers from draining: {v:?}");
        let to_worker = clog(NodeName::Coordinator, worker(1));
        assert!(d4(&[pausing(1_000), to_worker.clone(), paused(late)], 30_000).is_empty());
        assert_eq!(d4(&[pausing(1_000), to_worker, paused(late + 1)], 30_000).len(), 1, "and no longer");
        let task = sluice_engine::TaskId { vertex: 0, replica: 0 };
        let slow_cancel = at(3_000, "worker-1", Event::CancelDelayed { task, attempt: 1, by_ms: 20_000 });
        assert!(d4(&[pausing(1_000), slow_cancel, paused(late)], 30_000).is_empty());
    }

    #[test]
    fn a_disruption_not_settled_when_the_pause_begins_counts_and_an_old_one_does_not() {
        let late = 5_000;
        let isolated = fault(100, Action::Isolate { node: worker(1) });
        let healed = |ms| fault(ms, Action::Heal { node: worker(1) });
        assert!(d4(&[isolated.clone(), pausing(1_000), paused(late)], 30_000).is_empty(), "still cut off");
        assert!(d4(&[isolated.clone(), healed(500), pausing(1_000), paused(late)], 30_000).is_empty(), "just healed");
        let v = d4(&[isolated, healed(500), pausing(3_000), paused(late + 2_000)], 30_000);
        assert_eq!(v.len(), 1, "healed long before: {v:?}");
        let slow = fault(100, Action::Slow { from: worker(1), to: NodeName::Coordinator, by_ms: 4_000 });
        let unslow = fault(500, Action::Unslow { from: worker(1), to: NodeName::Coordinator });
        assert!(d4(&[slow, unslow, pausing(3_000), paused(late + 2_000)], 30_000).is_empty(), "datagrams still late");
    }
}
