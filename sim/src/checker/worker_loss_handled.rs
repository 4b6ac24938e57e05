//! `worker-loss-handled`: a crashed worker is found lost, and no attempt is placed on it.
//!
//! The model (README, "How it works": a worker sends a heartbeat every 100 ms; the coordinator counts it lost after
//! 1 s without one, fails the attempt that runs on it over, and places attempts on the workers it heard from):
//! - a worker that crashed while it ran an execution of the current attempt (the job RUNNING or SCHEDULED, the attempt
//!   not failing already) and is not restarted makes the coordinator fail that attempt over within
//!   `bounds.down_noticed_ms` of the crash, unless the job leaves RUNNING/SCHEDULED first (a pause, a rescale);
//! - once that bound passed since its crash, or once the coordinator reported it lost, no attempt is placed on it
//!   until it restarts; and every placement names a worker of the cluster (`1..=workers`);
//! - the first attempt waits for the cluster: it starts once every worker has reported, or after the worker timeout
//!   with those heard from; so a first attempt deployed before `bounds.worker_timeout_ms` had every worker to place on and
//!   spreads its tasks over `min(tasks, workers)` of them (round-robin over the live workers); and it does not wait
//!   longer: with some worker up, it is deployed by `bounds.worker_timeout_ms` + `bounds.first_deploy_slack_ms` (+ 4 of the
//!   network's longest latencies: a heartbeat, the store's fence and its answer, with room), unless a fault
//!   other than a worker's crash (the store, the coordinator, a link, a pause) or a lossy network intervenes first;
//! - a batch job that settles (FAILING after failed checkpoints, its tasks running on: README, "Platform") stops
//!   settling when a worker that runs one of its executions is lost: the coordinator cancels the attempt
//!   (`cancel-requested`) within `bounds.down_noticed_ms` of the crash, unless the worker is restarted first.
//!
//! Crashes and restarts come from the trace's faults; executions, deployments and failovers from its events.

use super::executions::Executions;
use super::kinds::after_ms;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::net::NodeName;
use sluice_engine::{Event, EventKind, FailureCause, JobStatus, Mode, TaskId};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const NAME: &str = "worker-loss-handled";

#[derive(Debug)]
pub struct WorkerLossHandled {
    /// The time bounds, from the scenario's timings.
    bounds: super::bounds::Bounds,
    workers: u16,
    /// The current attempt, whether it is failing already, and the job status as the coordinator reports it.
    attempt: u32,
    failing: bool,
    status: JobStatus,
    /// Which executions run where (the shared execution model).
    executions: Executions,
    /// Crashed workers that ran the current attempt: by when the coordinator must fail it over.
    detect_by_ms: BTreeMap<u16, u64>,
    /// Crashed workers, not restarted since: from when the coordinator knows (at the latest).
    down_noticed_ms: BTreeMap<u16, u64>,
    /// A batch job settling: FAILING with its attempt's tasks running on, no cancellation asked since.
    batch: bool,
    settling: bool,
    /// Crashed workers that ran the settling attempt: by when the coordinator must cancel it.
    settle_by_ms: BTreeMap<u16, u64>,
    /// The first deploy is owed by then while nothing but worker crashes came before.
    first_deploy_owed: bool,
    first_deploy_by_ms: u64,
    violations: Vec<Violation>,
}

impl WorkerLossHandled {
    pub fn new(setup: &Setup) -> WorkerLossHandled {
        WorkerLossHandled {
            bounds: setup.bounds,
            workers: setup.workers,
            attempt: 0,
            failing: false,
            status: JobStatus::Created,
            executions: Executions::default(),
            detect_by_ms: BTreeMap::new(),
            down_noticed_ms: BTreeMap::new(),
            batch: setup.mode == Mode::Batch,
            settling: false,
            settle_by_ms: BTreeMap::new(),
            first_deploy_owed: setup.loss == 0.0,
            first_deploy_by_ms: setup.bounds.worker_timeout_ms
                + setup.bounds.first_deploy_slack_ms
                + 4 * setup.latency_max_ms,
            violations: Vec::new(),
        }
    }

    /// The first attempt's deadline passed with some worker up and no deploy.
    fn check_first_deploy(&mut self, now_ms: u64) {
        let deadline = self.first_deploy_by_ms;
        if !self.first_deploy_owed || now_ms <= deadline {
            return;
        }
        self.first_deploy_owed = false;
        let up = self.workers as usize - self.down_noticed_ms.len();
        if self.attempt == 0 && up > 0 {
            let worker_timeout_ms = self.bounds.worker_timeout_ms;
            let detail = format!(
                "no attempt was deployed by {deadline} ms although {up} of {} workers were up: the first attempt waits \
                 at most the {worker_timeout_ms} ms worker timeout for the rest",
                self.workers
            );
            self.violations.push(Violation::new(NAME, deadline, FailureClass::Liveness, detail));
        }
    }

    fn on_fault(&mut self, action: &Action, at_ms: u64) {
        // A fault that may hold up the start (anything but a worker's crash; a worker restarted before the deadline
        // may be the only one up, late): the bound is off.
        if !matches!(action, Action::Crash { node: NodeName::Worker(_) }) {
            self.first_deploy_owed = false;
        }
        match action {
            Action::Crash { node: NodeName::Worker(w) } => {
                self.down_noticed_ms.entry(*w).or_insert(at_ms + self.bounds.down_noticed_ms);
                let live = matches!(self.status, JobStatus::Running | JobStatus::Scheduled) && !self.failing;
                let node = NodeName::Worker(*w).label();
                let runs_attempt = || self.executions.live().any(|(k, _)| k.node == node && k.attempt == self.attempt);
                if live && runs_attempt() {
                    self.detect_by_ms.entry(*w).or_insert(at_ms + self.bounds.down_noticed_ms);
                }
                if self.settling && runs_attempt() {
                    self.settle_by_ms.entry(*w).or_insert(at_ms + self.bounds.down_noticed_ms);
                }
            }
            Action::Restart { node: NodeName::Worker(w) } => {
                self.down_noticed_ms.remove(w);
                self.detect_by_ms.remove(w);
                self.settle_by_ms.remove(w);
            }
            _ => {}
        }
    }

    /// A crashed worker whose loss should have ended the settling by now.
    fn check_settling(&mut self, now_ms: u64) {
        let Some((w, by)) = self.settle_by_ms.iter().find(|(_, by)| now_ms > **by).map(|(w, by)| (*w, *by)) else {
            return;
        };
        self.settle_by_ms.clear(); // found once: the settling it owed is over
        let down_noticed_ms = self.bounds.down_noticed_ms;
        let detail = format!(
            "worker-{w} crashed while it ran attempt {} of the settling batch job, but the coordinator did not stop \
             settling (cancel the attempt) by {by} ms ({down_noticed_ms} ms after the crash)",
            self.attempt
        );
        self.violations.push(Violation::new(NAME, by, FailureClass::Liveness, detail));
    }

    /// A crashed worker whose loss the coordinator should have acted on by now.
    fn check_detection(&mut self, now_ms: u64) {
        if self.detect_by_ms.is_empty() {
            return; // the per-entry path: nothing owed
        }
        let late: Vec<(u16, u64)> =
            self.detect_by_ms.iter().filter(|(_, by)| now_ms > **by).map(|(w, by)| (*w, *by)).collect();
        for (w, by) in late {
            self.detect_by_ms.remove(&w);
            let down_noticed_ms = self.bounds.down_noticed_ms;
            let detail = format!(
                "worker-{w} crashed while it ran attempt {} and was not restarted, but the coordinator did not fail \
                 the attempt over by {by} ms ({down_noticed_ms} ms after the crash)",
                self.attempt
            );
            self.violations.push(Violation::new(NAME, by, FailureClass::Liveness, detail));
        }
    }

    fn on_engine(&mut self, event: &Event, node: &str, at_ms: u64) {
        match event {
            Event::AttemptDeployed { attempt, placement, .. } => {
                self.on_deployed(*attempt, placement, at_ms);
                (self.attempt, self.failing) = (*attempt, false);
                self.detect_by_ms.clear();
            }
            Event::FailureDetected { attempt, cause } if *attempt == self.attempt => {
                // The coordinator says it lost a crashed worker: from now it knows.
                if let FailureCause::WorkerLost { worker } = cause {
                    if let Some(noticed) = self.down_noticed_ms.get_mut(worker) {
                        *noticed = (*noticed).min(at_ms);
                    }
                }
                self.failing = true;
                self.detect_by_ms.clear();
            }
            Event::CancelRequested { .. } => {
                self.settling = false;
                self.settle_by_ms.clear();
            }
            Event::StatusChanged { to, .. } if node == "coordinator" => {
                self.status = *to;
                self.settling = self.batch && *to == JobStatus::Failing;
                if !self.settling {
                    self.settle_by_ms.clear();
                }
                if !matches!(to, JobStatus::Running | JobStatus::Scheduled) {
                    self.detect_by_ms.clear(); // no longer running: nothing more is owed for its workers
                }
            }
            _ => {}
        }
    }

    fn on_deployed(&mut self, attempt: u32, placement: &[(TaskId, u16)], at_ms: u64) {
        let first = self.attempt == 0;
        let used: BTreeSet<u16> = placement.iter().map(|(_, w)| *w).collect();
        let owed = placement.len().min(usize::from(self.workers));
        if first && at_ms < self.bounds.worker_timeout_ms && used.len() < owed {
            let worker_timeout_ms = self.bounds.worker_timeout_ms;
            let detail = format!(
                "the first attempt ({attempt}) was deployed at {at_ms} ms, before the {worker_timeout_ms} ms worker \
                 timeout (so after all {} workers reported), but spreads its {} tasks over {} of them: {used:?}",
                self.workers,
                placement.len(),
                used.len()
            );
            self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
        }
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

impl Checker for WorkerLossHandled {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.check_detection(at_ms);
        self.check_settling(at_ms);
        self.check_first_deploy(at_ms);
        match &entry.event {
            TraceEvent::Fault(action) => self.on_fault(action, at_ms),
            TraceEvent::Engine(event) => self.on_engine(event, &entry.node, at_ms),
            TraceEvent::Observed { .. } | TraceEvent::Alerted { .. } => {}
        }
        // After the judgement: a crash is judged against the executions as they were just before it.
        self.executions.apply(entry);
    }

    fn kinds(&self) -> Kinds {
        let own = [
            EventKind::AttemptDeployed,
            EventKind::FailureDetected,
            EventKind::CancelRequested,
            EventKind::StatusChanged,
        ];
        Kinds::engine(&own).and(Kinds::FAULT).and(Executions::KINDS)
    }

    fn wake_at_us(&self) -> u64 {
        let first_deploy = if self.first_deploy_owed { self.first_deploy_by_ms } else { u64::MAX };
        let owed = self.detect_by_ms.values().chain(self.settle_by_ms.values());
        owed.copied().chain([first_deploy]).min().map_or(u64::MAX, after_ms)
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_detection(end.end_ms);
        self.check_settling(end.end_ms);
        self.check_first_deploy(end.end_ms);
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

    fn check(trace: &[TraceEntry]) -> Vec<Violation> {
        let mut s = setup(vec![1]);
        s.workers = 2;
        run(&mut WorkerLossHandled::new(&s), trace, 60_000)
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
        let crash = fault(1_000, Action::Crash { node: NodeName::Worker(1) });
        let down = vec![deployed(100, 1, 2), crash, deployed(3_000, 2, 1)];
        let v = check(&down);
        assert!(v.len() == 1 && v[0].detail.contains("known down since 2500 ms"), "{v:?}");
        let lost = at(
            1_100,
            "coordinator",
            Event::FailureDetected { attempt: 1, cause: FailureCause::WorkerLost { worker: 1 } },
        );
        let crash = fault(1_000, Action::Crash { node: NodeName::Worker(1) });
        let noticed = vec![deployed(100, 1, 2), crash, lost, deployed(1_200, 2, 1)];
        let v = check(&noticed);
        assert!(v.len() == 1 && v[0].detail.contains("known down since 1100 ms"), "{v:?}");
        let v = check(&[deployed(100, 1, 3)]);
        assert!(v.len() == 1 && v[0].detail.contains("not a worker of the cluster"), "{v:?}");
    }

    fn started(ms: u64, worker: u16, attempt: u32) -> TraceEntry {
        at(ms, &format!("worker-{worker}"), Event::ExecutionStarted { task: sink(), attempt })
    }

    fn lost(ms: u64, attempt: u32, worker: u16) -> TraceEntry {
        at(ms, "coordinator", Event::FailureDetected { attempt, cause: FailureCause::WorkerLost { worker } })
    }

    #[test]
    fn a_crashed_worker_of_the_running_attempt_must_be_found_lost_in_time() {
        let running = status(300, JobStatus::Scheduled, JobStatus::Running);
        let base = vec![deployed(100, 1, 1), started(200, 1, 1), running];
        let crash = fault(1_000, Action::Crash { node: NodeName::Worker(1) });
        let mut found = base.clone();
        found.extend([crash.clone(), lost(2_100, 1, 1)]);
        assert!(check(&found).is_empty(), "{:?}", check(&found));
        let mut back = base.clone();
        back.extend([crash.clone(), fault(1_400, Action::Restart { node: NodeName::Worker(1) })]);
        assert!(check(&back).is_empty(), "a restart before the timeout is found as a restart: {:?}", check(&back));
        let mut pausing = base.clone();
        pausing.extend([crash.clone(), status(1_200, JobStatus::Running, JobStatus::Pausing)]);
        assert!(check(&pausing).is_empty(), "{:?}", check(&pausing));
        let mut ignored = base.clone();
        ignored.push(crash);
        let v = check(&ignored);
        assert!(v.len() == 1 && v[0].detail.contains("did not fail the attempt over by 2500 ms"), "{v:?}");
        let idle = vec![deployed(100, 1, 2), status(300, JobStatus::Scheduled, JobStatus::Running)];
        let idle = [idle, vec![fault(1_000, Action::Crash { node: NodeName::Worker(1) })]].concat();
        assert!(check(&idle).is_empty(), "a worker that runs nothing of the attempt owes no failover");
    }

    #[test]
    fn the_loss_bound_follows_the_scenarios_timings() {
        let running = status(300, JobStatus::Scheduled, JobStatus::Running);
        let crash = fault(1_000, Action::Crash { node: NodeName::Worker(1) });
        let found_late = vec![deployed(100, 1, 1), started(200, 1, 1), running, crash, lost(3_500, 1, 1)];
        assert_eq!(check(&found_late).len(), 1, "at the default timings a loss is found by 2500 ms");
        let mut slow = setup(vec![1]);
        slow.workers = 2;
        let timings = sluice_engine::Timings {
            heartbeat_ms: 250,
            worker_timeout_ms: 2_000,
            ..crate::scenario::timings::default_timings()
        };
        slow.bounds = crate::checker::bounds::Bounds::of(&timings);
        let v = run(&mut WorkerLossHandled::new(&slow), &found_late, 60_000);
        assert!(v.is_empty(), "a 2 s worker timeout finds it by 3650 ms: {v:?}");
    }

    #[test]
    fn the_first_attempt_deployed_before_the_worker_timeout_uses_every_worker() {
        let two = |ms: u64, attempt: u32, workers: [u16; 2]| {
            let placement = vec![(TaskId { vertex: 0, replica: 0 }, workers[0]), (sink(), workers[1])];
            at(ms, "coordinator", Event::AttemptDeployed { attempt, start_offsets: vec![0], placement })
        };
        assert!(check(&[two(100, 1, [1, 2])]).is_empty());
        assert!(check(&[two(1_000, 1, [1, 1])]).is_empty(), "after the timeout: with the workers heard from");
        assert!(check(&[two(100, 1, [1, 2]), two(300, 2, [2, 2])]).is_empty(), "a later attempt is not judged so");
        let v = check(&[two(100, 1, [1, 1])]);
        assert!(v.len() == 1 && v[0].detail.contains("spreads its 2 tasks over 1 of them: {1}"), "{v:?}");
    }

    #[test]
    fn the_first_attempt_is_deployed_by_the_worker_timeout_if_some_worker_is_up() {
        let down_at_start = fault(0, Action::Crash { node: NodeName::Worker(2) });
        let v = check(std::slice::from_ref(&down_at_start));
        // 1 s worker timeout + 0.5 s + 4 × the test network's 10 ms latency.
        assert!(v.len() == 1 && v[0].detail.contains("no attempt was deployed by 1540 ms although 1 of 2"), "{v:?}");
        assert!(check(&[down_at_start.clone(), deployed(1_500, 1, 1)]).is_empty());
        let late = check(&[down_at_start.clone(), deployed(1_600, 1, 1)]);
        assert!(late.len() == 1 && late[0].at_ms == 1_540, "{late:?}");
        let both = [down_at_start.clone(), fault(0, Action::Crash { node: NodeName::Worker(1) })];
        assert!(check(&both).is_empty(), "with no worker up nothing can be deployed");
        let store = fault(200, Action::Crash { node: NodeName::Store });
        assert!(check(&[down_at_start, store]).is_empty(), "a store down may hold the start up: the bound is off");
    }

    #[test]
    fn a_worker_lost_while_a_batch_job_settles_ends_the_settling() {
        let mut s = setup(vec![1]);
        (s.workers, s.mode) = (2, Mode::Batch);
        let check = |trace: &[TraceEntry]| run(&mut WorkerLossHandled::new(&s), trace, 60_000);
        let failing = status(1_000, JobStatus::Running, JobStatus::Failing);
        let crash = fault(2_000, Action::Crash { node: NodeName::Worker(1) });
        let canceled = at(2_200, "coordinator", Event::CancelRequested { below_attempt: 2 });
        let base = vec![deployed(100, 1, 1), started(200, 1, 1), status(300, JobStatus::Scheduled, JobStatus::Running)];
        let settles = [base.clone(), vec![failing.clone(), crash.clone()]].concat();
        let v = check(&settles);
        assert!(v.len() == 1 && v[0].detail.contains("did not stop settling (cancel the attempt) by 3500 ms"), "{v:?}");
        assert!(check(&[settles.clone(), vec![canceled.clone()]].concat()).is_empty());
        let back = fault(2_500, Action::Restart { node: NodeName::Worker(1) });
        assert!(check(&[settles, vec![back]].concat()).is_empty(), "a worker back in time is no loss");
        let canceled_first =
            [base.clone(), vec![failing, at(1_000, "coordinator", Event::CancelRequested { below_attempt: 2 })]];
        assert!(check(&[canceled_first.concat(), vec![crash.clone()]].concat()).is_empty(), "not settling: canceling");
        s.mode = Mode::Streaming;
        let streaming = [base, vec![status(1_000, JobStatus::Running, JobStatus::Failing), crash]].concat();
        assert!(run(&mut WorkerLossHandled::new(&s), &streaming, 60_000).is_empty(), "only a batch job settles");
    }
}
