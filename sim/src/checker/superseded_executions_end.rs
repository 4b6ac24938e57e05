//! `superseded-executions-end`: every execution of an attempt that a newer attempt, a pause or a terminal status
//! superseded ends within a bound, fenced or not. Fencing keeps a zombie from changing the ledger; it does not stop
//! it from holding a worker's resources, reading the source, or writing to the store forever.
//!
//! The model: an attempt is superseded when a newer one is deployed, when cancellation below it is requested, or when
//! the job becomes PAUSED or terminal. Each execution of it (from `execution-started` until `execution-ended` or a
//! crash of its node) must end by `max(superseded, its node reachable again) + its largest slow-cancel +
//! ``bounds.cancel_bound_ms`; a node that is cut off now owes nothing yet.
//!
//! And the coordinator's `cancel-unconfirmed` (it gave up waiting for some workers) names only workers that still
//! ran an execution of an attempt below the one it cancels for, at most `bounds.report_stale_ms` before (its view is a
//! heartbeat old), or, when the execution ended with its node's crash, at most `bounds.down_noticed_ms` before (a
//! dead worker sends no report: the coordinator holds its last one until the worker timeout), and names at least one.
//!
//! And an execution that ended is gone for good: none of its parts (a sink's per-partition forwarders) sends a batch,
//! reads an answer or has a batch acknowledged after the instant of its `execution-ended`, unless the execution is
//! started again on that node.
//! Within that instant a part may still run once: a cancellation (an abort) takes effect when the runtime next
//! schedules the part, which can be in the same simulated millisecond.
//!
//! And the coordinator goes on only once a cancellation took effect (README, "How it works": it waits for the workers
//! to confirm, bounded, then goes on and says so): when it deploys the next attempt, no execution below the
//! cancellation still runs, unless the coordinator named that execution's worker in `cancel-unconfirmed` (or that
//! worker or the coordinator was disrupted since shortly before the request, or the execution started too late for
//! the coordinator to have seen it).
//!
//! And the coordinator's wait for a cancellation is bounded (README, "How it works": the cancel bound, 10 s): once it
//! requested cancellation below an attempt, an execution below it that still runs on a reachable worker
//! `bounds.cancel_wait_ms` later (+ `bounds.give_up_slack_ms`) means the coordinator must have given up waiting and said so
//! (`cancel-unconfirmed`) by then, unless a newer cancellation replaced the wait, or the coordinator, the store or that
//! worker was disrupted meanwhile (its view of who holds what, or its fence, may then lag).

use super::kinds::after_ms;
use super::reachability::Reachability;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, JobStatus, TaskId};
use std::collections::BTreeMap;

pub(crate) const NAME: &str = "superseded-executions-end";

#[derive(Debug, Default)]
pub struct SupersededExecutionsEnd {
    /// The time bounds, from the scenario's timings.
    bounds: super::bounds::Bounds,
    /// (node, task, attempt) → started at; and when executions that are gone ended, and how long the coordinator's
    /// view may still show them (a report's age, or a dead worker's timeout).
    running: BTreeMap<(String, TaskId, u32), u64>,
    ended_ms: BTreeMap<(String, TaskId, u32), (u64, u64)>,
    /// Executions that ended and were not started again: (task, attempt) → node → ended at. Keyed so that the
    /// per-record forwarder events look it up without building a key.
    gone_ms: BTreeMap<(TaskId, u32), BTreeMap<String, u64>>,
    /// When each attempt was superseded.
    superseded_ms: BTreeMap<u32, u64>,
    /// Which nodes are cut off, and since when each is reachable again; the largest slow cancellation per node.
    net: Reachability,
    slow_ms: BTreeMap<String, u64>,
    /// The latest cancellation requested and not given up: (below attempt, requested at).
    cancel_wait: Option<(u32, u64)>,
    /// The latest cancellation requested (below attempt, requested at), and per worker the highest attempt below
    /// which the coordinator said that worker did not confirm it (`cancel-unconfirmed`).
    last_cancel: Option<(u32, u64)>,
    unconfirmed_below: BTreeMap<String, u32>,
    violations: Vec<Violation>,
}

impl SupersededExecutionsEnd {
    pub fn new(setup: &Setup) -> SupersededExecutionsEnd {
        SupersededExecutionsEnd { bounds: setup.bounds, ..Default::default() }
    }

    fn supersede_below(&mut self, below: u32, at_ms: u64) {
        let attempts: Vec<u32> = self.running.keys().map(|(_, _, a)| *a).filter(|a| *a < below).collect();
        for a in attempts {
            self.superseded_ms.entry(a).or_insert(at_ms);
        }
    }

    fn deadline(&self, node: &str, attempt: u32) -> Option<u64> {
        let since = *self.superseded_ms.get(&attempt)?;
        if self.net.cut_off(node) {
            return None;
        }
        let reachable = self.net.reachable_since_ms(node);
        Some(since.max(reachable) + self.slow_ms.get(node).copied().unwrap_or(0) + self.bounds.cancel_bound_ms)
    }

    fn check(&mut self, now_ms: u64) {
        // Runs on every entry: nothing to look at while no attempt was superseded.
        let Some(&newest_superseded) = self.superseded_ms.keys().next_back() else { return };
        let late: Vec<((String, TaskId, u32), u64)> = self
            .running
            .keys()
            .filter(|k| k.2 <= newest_superseded)
            .filter_map(|k| self.deadline(&k.0, k.2).filter(|d| now_ms > *d).map(|d| (k.clone(), d)))
            .collect();
        for ((node, task, attempt), deadline) in late {
            self.running.remove(&(node.clone(), task, attempt));
            let since = self.superseded_ms[&attempt];
            let detail = format!(
                "{task} of attempt {attempt} still runs on {node} at {deadline} ms, although its attempt was \
                 superseded at {since} ms"
            );
            self.violations.push(Violation::new(NAME, deadline, FailureClass::Liveness, detail));
        }
    }

    /// The cancel bound passed: an execution below the cancellation that still runs on a worker nothing disrupted
    /// since shortly before the request means the coordinator waited on without giving up.
    /// When a cancel wait that began at `since_ms` must have ended: the coordinator's bound plus its slack.
    fn cancel_wait_deadline_ms(&self, since_ms: u64) -> u64 {
        since_ms + self.bounds.cancel_wait_ms + self.bounds.give_up_slack_ms
    }

    fn check_cancel_wait(&mut self, now_ms: u64) {
        let Some((below, since)) = self.cancel_wait else { return };
        let deadline = self.cancel_wait_deadline_ms(since);
        if now_ms <= deadline {
            return;
        }
        self.cancel_wait = None;
        let window_ms = now_ms - since.saturating_sub(self.bounds.report_stale_ms);
        let touched = |node: &str| self.net.touched_within(node, now_ms, window_ms);
        if touched("coordinator") || touched("store") {
            return;
        }
        let holding = self.running.keys().find(|(node, _, attempt)| *attempt < below && !touched(node));
        if let Some((node, task, attempt)) = holding {
            let cancel_wait_ms = self.bounds.cancel_wait_ms;
            let detail = format!(
                "cancellation below attempt {below} requested at {since} ms: {task} of attempt {attempt} still ran on \
                 {node} at {deadline} ms, and the coordinator neither saw it end nor gave up waiting \
                 (cancel-unconfirmed) within its {cancel_wait_ms} ms cancel bound"
            );
            self.violations.push(Violation::new(NAME, deadline, FailureClass::Liveness, detail));
        }
    }

    /// Attempt `attempt` is deployed: the coordinator goes on past a cancellation only once every execution below it
    /// is gone, or once it gave up waiting for that execution's worker and said so. Excused: an execution the
    /// coordinator may not have seen yet (started less than `bounds.report_stale_ms` before the cancellation), and any
    /// whose worker or the coordinator was disrupted since shortly before the cancellation (its view lags).
    fn on_deployed(&mut self, attempt: u32, at_ms: u64) {
        if let Some((below, since)) = self.last_cancel.filter(|(below, _)| *below <= attempt) {
            let window_ms = at_ms - since.saturating_sub(self.bounds.report_stale_ms).min(at_ms);
            let touched = |node: &str| self.net.touched_within(node, at_ms, window_ms);
            let beside = self.running.iter().find(|((node, _, a), started)| {
                *a < below
                    && **started + self.bounds.report_stale_ms <= since
                    && !touched(node)
                    && self.unconfirmed_below.get(node).is_none_or(|u| *u <= *a)
            });
            if let (Some(((node, task, a), _)), false) = (beside, touched("coordinator")) {
                let detail = format!(
                    "attempt {attempt} was deployed at {at_ms} ms while {task} of attempt {a} still ran on {node}, \
                     below the cancellation requested at {since} ms, and the coordinator never said it gave up \
                     waiting for {node} (cancel-unconfirmed)"
                );
                self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
            }
        }
        self.supersede_below(attempt, at_ms);
    }

    /// The coordinator says these workers did not confirm the cancellation below `below`.
    fn on_unconfirmed(&mut self, below: u32, workers: &[u16], at_ms: u64) {
        for w in workers {
            let most = self.unconfirmed_below.entry(sluice_engine::net::NodeName::Worker(*w).label()).or_default();
            *most = (*most).max(below);
        }
        if self.cancel_wait.is_some_and(|(waiting, _)| waiting == below) {
            self.cancel_wait = None;
        }
        if workers.is_empty() {
            let detail = format!("cancel-unconfirmed below attempt {below} names no worker");
            self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
        }
        for w in workers {
            let node = sluice_engine::net::NodeName::Worker(*w).label();
            let ran = |(n, _, a): &(String, TaskId, u32)| *n == node && *a < below;
            let holds = self.running.keys().any(ran)
                || self.ended_ms.iter().any(|(k, (t, stale_ms))| ran(k) && at_ms <= t + stale_ms);
            if !holds {
                let report_stale_ms = self.bounds.report_stale_ms;
                let detail = format!(
                    "cancel-unconfirmed below attempt {below} names {node}, which ran nothing below it in the last \
                     {report_stale_ms} ms"
                );
                self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
            }
        }
    }

    /// An execution ended on a node, or its node went down; the coordinator may show it `stale_ms` longer.
    fn ended(&mut self, key: (String, TaskId, u32), at_ms: u64, stale_ms: u64) {
        self.gone_ms.entry((key.1, key.2)).or_default().insert(key.0.clone(), at_ms);
        self.ended_ms.insert(key, (at_ms, stale_ms));
    }

    /// A sink's forwarder acted (`what` the store): its execution must still run there.
    fn on_part_acted(&mut self, node: &str, task: TaskId, attempt: u32, partition: u32, what: &str, at_ms: u64) {
        let ended = self.gone_ms.get(&(task, attempt)).and_then(|nodes| nodes.get(node));
        if let Some(ended) = ended.filter(|ended| at_ms > **ended) {
            let detail = format!(
                "{task} of attempt {attempt} on {node}: the forwarder of partition {partition} {what} the store at \
                 {at_ms} ms, after its execution ended at {ended} ms: a part of it outlived it"
            );
            self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
        }
    }

    fn on_fault(&mut self, action: &Action, at_ms: u64) {
        self.net.apply(action, at_ms);
        match action {
            // A killed node's executions are gone.
            Action::Crash { node } | Action::Restart { node } => {
                let node = node.label();
                let gone: Vec<_> = self.running.keys().filter(|(n, _, _)| *n == node).cloned().collect();
                for key in gone {
                    self.running.remove(&key);
                    self.ended(key, at_ms, self.bounds.down_noticed_ms);
                }
            }
            Action::SlowCancel { worker, by_ms } => {
                // A cancellation already under way keeps the delay it began with: bound by the largest one yet.
                let slow = self.slow_ms.entry(sluice_engine::net::NodeName::Worker(*worker).label()).or_default();
                *slow = (*slow).max(*by_ms);
            }
            _ => {}
        }
    }
}

impl Checker for SupersededExecutionsEnd {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.check(at_ms);
        self.check_cancel_wait(at_ms);
        let event = match &entry.event {
            TraceEvent::Fault(action) => return self.on_fault(action, at_ms),
            TraceEvent::Observed { .. } | TraceEvent::Alerted { .. } => return,
            TraceEvent::Engine(event) => event,
        };
        match event {
            Event::ExecutionStarted { task, attempt } => {
                self.running.insert((entry.node.to_string(), *task, *attempt), at_ms);
                if let Some(nodes) = self.gone_ms.get_mut(&(*task, *attempt)) {
                    nodes.remove(&*entry.node);
                }
            }
            Event::ExecutionEnded { task, attempt, .. } => {
                let key = (entry.node.to_string(), *task, *attempt);
                self.running.remove(&key);
                self.ended(key, at_ms, self.bounds.report_stale_ms);
            }
            Event::SinkBatchSent { attempt, task, partition, .. } => {
                self.on_part_acted(&entry.node, *task, *attempt, *partition, "sent a batch to", at_ms)
            }
            Event::SinkResponse { attempt, task, partition, .. } => {
                self.on_part_acted(&entry.node, *task, *attempt, *partition, "read an answer from", at_ms)
            }
            Event::SinkBatchAcked { attempt, task, partition, .. } => {
                self.on_part_acted(&entry.node, *task, *attempt, *partition, "had a batch acknowledged by", at_ms)
            }
            Event::CancelUnconfirmed { below_attempt, workers } => self.on_unconfirmed(*below_attempt, workers, at_ms),
            Event::AttemptDeployed { attempt, .. } => self.on_deployed(*attempt, at_ms),
            Event::CancelRequested { below_attempt } => {
                self.supersede_below(*below_attempt, at_ms);
                self.cancel_wait = Some((*below_attempt, at_ms));
                self.last_cancel = Some((*below_attempt, at_ms));
            }
            Event::StatusChanged { to, .. } if super::terminal(*to) || *to == JobStatus::Paused => {
                self.supersede_below(u32::MAX, at_ms);
            }
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::FAULT.and(Kinds::engine(&[
            EventKind::ExecutionStarted,
            EventKind::ExecutionEnded,
            EventKind::SinkBatchSent,
            EventKind::SinkResponse,
            EventKind::SinkBatchAcked,
            EventKind::CancelUnconfirmed,
            EventKind::AttemptDeployed,
            EventKind::CancelRequested,
            EventKind::StatusChanged,
        ]))
    }

    fn wake_at_us(&self) -> u64 {
        let cancel_wait = self.cancel_wait.map(|(_, since)| self.cancel_wait_deadline_ms(since));
        let superseded = self.superseded_ms.keys().next_back().and_then(|&newest| {
            self.running.keys().filter(|k| k.2 <= newest).filter_map(|k| self.deadline(&k.0, k.2)).min()
        });
        cancel_wait.into_iter().chain(superseded).min().map_or(u64::MAX, after_ms)
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check(end.end_ms);
        self.check_cancel_wait(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::ExecOutcome;

    fn started(ms: u64, node: &str, attempt: u32) -> TraceEntry {
        at(ms, node, Event::ExecutionStarted { task: sink(), attempt })
    }

    fn ended(ms: u64, node: &str, attempt: u32) -> TraceEntry {
        at(ms, node, Event::ExecutionEnded { task: sink(), attempt, outcome: ExecOutcome::Canceled("x".into()) })
    }

    fn deployed(ms: u64, attempt: u32) -> TraceEntry {
        at(ms, "coordinator", Event::AttemptDeployed { attempt, start_offsets: vec![], placement: vec![] })
    }

    fn check(trace: &[TraceEntry]) -> Vec<Violation> {
        run(&mut SupersededExecutionsEnd::new(&setup(vec![1])), trace, 20_000)
    }

    #[test]
    fn the_next_attempt_never_deploys_beside_a_live_superseded_execution_unless_given_up() {
        let cancel = at(3_000, "coordinator", Event::CancelRequested { below_attempt: 2 });
        let slow = fault(0, crate::fault::Action::SlowCancel { worker: 1, by_ms: 3_000 });
        let base = vec![slow.clone(), started(100, "worker-1", 1), cancel];
        let waited = [base.clone(), vec![ended(6_000, "worker-1", 1), deployed(6_400, 2)]].concat();
        assert!(check(&waited).is_empty(), "{:?}", check(&waited));
        let beside = [base.clone(), vec![deployed(3_400, 2), ended(6_000, "worker-1", 1)]].concat();
        let v = check(&beside);
        assert!(v.len() == 1 && v[0].detail.contains("never said it gave up waiting"), "{v:?}");
        let unconfirmed = at(3_300, "coordinator", Event::CancelUnconfirmed { below_attempt: 2, workers: vec![1] });
        let said_so = [base.clone(), vec![unconfirmed, deployed(3_400, 2), ended(4_000, "worker-1", 1)]].concat();
        assert!(check(&said_so).is_empty(), "{:?}", check(&said_so));
        let cut = fault(2_900, crate::fault::Action::Isolate { node: worker(1) });
        let excused = [vec![slow, started(100, "worker-1", 1), cut], beside[2..].to_vec()].concat();
        assert!(check(&excused).is_empty(), "an isolated worker's view lags: {:?}", check(&excused));
    }

    fn batch_sent(ms: u64, node: &str, attempt: u32) -> TraceEntry {
        let stream = "v1#0/p0".to_string();
        at(
            ms,
            node,
            Event::SinkBatchSent {
                attempt,
                task: sink(),
                partition: 0,
                stream: stream.into(),
                first_offset: 0,
                count: 1,
            },
        )
    }

    #[test]
    fn fails_when_a_part_of_an_ended_execution_still_writes() {
        let alive = vec![started(0, "worker-1", 1), batch_sent(100, "worker-1", 1), ended(200, "worker-1", 1)];
        assert!(check(&alive).is_empty());
        // In the instant of the end, an abort may not have reached the part yet.
        assert!(check(&[alive.clone(), vec![batch_sent(200, "worker-1", 1)]].concat()).is_empty());
        // Started again on the node after it ended: its batches are the new execution's.
        let again = [alive.clone(), vec![started(300, "worker-1", 1), batch_sent(400, "worker-1", 1)]].concat();
        assert!(check(&again).is_empty());
        let outlived = [alive, vec![batch_sent(250, "worker-1", 1)]].concat();
        let v = check(&outlived);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("sent a batch to the store at 250 ms"), "{}", v[0].detail);
        assert!(v[0].detail.contains("after its execution ended at 200 ms"), "{}", v[0].detail);
    }

    #[test]
    fn passes_when_the_old_execution_ends_in_time() {
        let trace = vec![started(0, "worker-1", 1), deployed(1_000, 2), ended(1_500, "worker-1", 1)];
        assert!(check(&trace).is_empty());
    }

    #[test]
    fn fails_on_a_fenced_zombie_that_keeps_running() {
        let trace = vec![
            started(0, "worker-1", 1),
            at(900, "store", Event::Fenced { attempt: 2, next_offsets: vec![] }),
            deployed(1_000, 2),
        ];
        let v = check(&trace);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at_ms, 1_000 + crate::checker::bounds::Bounds::default().cancel_bound_ms);
    }

    #[test]
    fn cancel_unconfirmed_names_only_workers_that_held_something() {
        let unconfirmed =
            |ms, workers: Vec<u16>| at(ms, "coordinator", Event::CancelUnconfirmed { below_attempt: 2, workers });
        let base = vec![started(0, "worker-1", 1), deployed(100, 2)];
        assert!(check(&[base.clone(), vec![unconfirmed(500, vec![1])]].concat())
            .iter()
            .all(|v| !v.detail.contains("names")));
        let v = check(&[base.clone(), vec![unconfirmed(500, vec![2])]].concat());
        assert!(v.iter().any(|v| v.detail.contains("names worker-2")), "{v:?}");
        let v = check(&[base.clone(), vec![unconfirmed(500, vec![])]].concat());
        assert!(v.iter().any(|v| v.detail.contains("names no worker")), "{v:?}");
        // An execution that ended normally leaves the coordinator's view with the next report; one that died with its
        // worker stays in it until the worker timeout.
        let b = crate::checker::bounds::Bounds::default();
        let late = 200 + b.report_stale_ms + 100;
        assert!(late < 200 + b.down_noticed_ms, "the test needs a report's age below the worker timeout");
        let ended_normally = [base.clone(), vec![ended(200, "worker-1", 1), unconfirmed(late, vec![1])]].concat();
        assert!(check(&ended_normally).iter().any(|v| v.detail.contains("names worker-1")));
        let crashed = fault(200, Action::Crash { node: worker(1) });
        let died = [base.clone(), vec![crashed.clone(), unconfirmed(late, vec![1])]].concat();
        assert!(check(&died).iter().all(|v| !v.detail.contains("names")), "{:?}", check(&died));
        let long_after = [base, vec![crashed, unconfirmed(200 + b.down_noticed_ms + 100, vec![1])]].concat();
        assert!(check(&long_after).iter().any(|v| v.detail.contains("names worker-1")));
    }

    #[test]
    fn a_cut_off_node_owes_nothing_until_it_is_healed() {
        let base = vec![started(0, "worker-1", 1), fault(500, Action::Isolate { node: worker(1) }), deployed(1_000, 2)];
        assert!(check(&base).is_empty());
        let healed = [base.clone(), vec![fault(8_000, Action::Heal { node: worker(1) })]].concat();
        let v = check(&healed);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].at_ms, 8_000 + crate::checker::bounds::Bounds::default().cancel_bound_ms);
        let ends = [healed, vec![ended(9_000, "worker-1", 1)]].concat();
        assert!(check(&ends).is_empty());
    }
}
