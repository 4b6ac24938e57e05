//! `placement-on-live-workers`: an attempt is placed only on workers of the cluster that are up.
//!
//! The model (README, "How it works": the coordinator places an attempt's tasks on the workers whose heartbeats it
//! heard within the worker timeout): a worker that crashed (and has not restarted since) stops its heartbeats, so
//! once [`DOWN_NOTICED_MS`] passed since its crash, or once the coordinator itself reported it lost, no attempt may be
//! placed on it; and every placement names a worker of the cluster (`1..=workers`). Crashes and restarts come from the
//! trace's faults.

use super::{Checker, End, FailureClass, Setup, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::net::NodeName;
use sluice_engine::{Event, FailureCause, TaskId};
use std::collections::BTreeMap;

pub(crate) const NAME: &str = "placement-on-live-workers";
/// The worker timeout (1 s) after the last heartbeat (every 100 ms), a coordinator tick and room for latency.
pub const DOWN_NOTICED_MS: u64 = 1_500;

pub struct PlacementOnLiveWorkers {
    workers: u16,
    /// Crashed workers, not restarted since: when the crash must be known to the coordinator at the latest.
    down_noticed_ms: BTreeMap<u16, u64>,
    violations: Vec<Violation>,
}

impl PlacementOnLiveWorkers {
    pub fn new(setup: &Setup) -> PlacementOnLiveWorkers {
        PlacementOnLiveWorkers { workers: setup.workers, down_noticed_ms: BTreeMap::new(), violations: Vec::new() }
    }

    fn on_fault(&mut self, action: &Action, at_ms: u64) {
        match action {
            Action::Crash { node: NodeName::Worker(w) } => {
                self.down_noticed_ms.entry(*w).or_insert(at_ms + DOWN_NOTICED_MS);
            }
            Action::Restart { node: NodeName::Worker(w) } => {
                self.down_noticed_ms.remove(w);
            }
            _ => {}
        }
    }

    fn on_deployed(&mut self, attempt: u32, placement: &[(TaskId, u16)], at_ms: u64) {
        for (task, w) in placement {
            if !(1..=self.workers).contains(w) {
                let detail = format!("attempt {attempt} placed {task} on worker-{w}, not a worker of the cluster");
                self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
                continue;
            }
            if let Some(noticed) = self.down_noticed_ms.get(w).filter(|noticed| at_ms >= **noticed) {
                let detail = format!(
                    "attempt {attempt} placed {task} on worker-{w}, which crashed and is known down since {noticed} ms"
                );
                self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
            }
        }
    }
}

impl Checker for PlacementOnLiveWorkers {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        match &entry.event {
            TraceEvent::Fault(action) => self.on_fault(action, at_ms),
            TraceEvent::Engine(Event::AttemptDeployed { attempt, placement, .. }) => {
                self.on_deployed(*attempt, placement, at_ms)
            }
            // The coordinator says it lost a crashed worker: from now it knows.
            TraceEvent::Engine(Event::FailureDetected { cause: FailureCause::WorkerLost { worker }, .. }) => {
                if let Some(noticed) = self.down_noticed_ms.get_mut(worker) {
                    *noticed = (*noticed).min(at_ms);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, _end: &End) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn deployed(ms: u64, attempt: u32, worker: u16) -> TraceEntry {
        let placement = vec![(sink(), worker)];
        at(ms, "coordinator", Event::AttemptDeployed { attempt, start_offsets: vec![0], placement })
    }

    fn fault(ms: u64, action: Action) -> TraceEntry {
        TraceEntry { at_us: ms * 1000, node: "sim".into(), event: TraceEvent::Fault(action) }
    }

    fn check(trace: &[TraceEntry]) -> Vec<Violation> {
        let mut s = setup(vec![1]);
        s.workers = 2;
        run(&mut PlacementOnLiveWorkers::new(&s), trace, 60_000)
    }

    #[test]
    fn passes_on_live_workers_a_restarted_one_and_a_crash_not_yet_noticed() {
        let trace = vec![
            deployed(100, 1, 1),
            fault(1_000, Action::Crash { node: NodeName::Worker(1) }),
            deployed(1_200, 2, 1),
            deployed(3_000, 3, 2),
            fault(4_000, Action::Restart { node: NodeName::Worker(1) }),
            deployed(4_500, 4, 1),
        ];
        assert!(check(&trace).is_empty(), "{:?}", check(&trace));
    }

    #[test]
    fn fails_on_a_worker_down_for_long_and_on_one_outside_the_cluster() {
        let down = vec![fault(1_000, Action::Crash { node: NodeName::Worker(1) }), deployed(3_000, 2, 1)];
        let v = check(&down);
        assert!(v.len() == 1 && v[0].detail.contains("known down since 2500 ms"), "{v:?}");
        let lost = at(
            1_100,
            "coordinator",
            Event::FailureDetected { attempt: 1, cause: FailureCause::WorkerLost { worker: 1 } },
        );
        let noticed = vec![fault(1_000, Action::Crash { node: NodeName::Worker(1) }), lost, deployed(1_200, 2, 1)];
        let v = check(&noticed);
        assert!(v.len() == 1 && v[0].detail.contains("known down since 1100 ms"), "{v:?}");
        let v = check(&[deployed(100, 1, 3)]);
        assert!(v.len() == 1 && v[0].detail.contains("not a worker of the cluster"), "{v:?}");
    }
}
