//! `status-matches-ledger`: the reported status always matches the records actually delivered.
//!
//! - FINISHED (job) at t ⇒ every partition's EOT was sent and read by the sink, and every record before it is in
//!   the ledger at t.
//! - A sink replica's SinkFinished at t ⇒ the same, for the partitions it owns, in its own attempt.
//! - FAILED at t with every partition ended and complete in the ledger ⇒ a task of the last attempt genuinely failed:
//!   one of its executions failed, a node or link fault came while it was the current attempt, or it failed over for
//!   a lost, restarted or refusing worker or a failed task (not for failed checkpoints, nor a restart asked through
//!   the API). Otherwise the job reports FAILED over a complete delivery (class A1). A fault during an earlier attempt
//!   does not excuse it: the attempt it hit was replaced.

use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, ExecOutcome, FailureCause, JobStatus, RecordId, TaskId};
use std::collections::BTreeSet;

pub(crate) const NAME: &str = "status-matches-ledger";

#[derive(Debug)]
pub struct StatusMatchesLedger {
    /// Committed offsets per partition (grown as commits come: a streaming partition has no known size).
    committed: Vec<Vec<bool>>,
    /// Records each partition holds at the start (`u64::MAX`: streaming).
    initial_records: Vec<u64>,
    committed_count: Vec<u64>,
    /// End offset of each partition, from the source's EOT.
    end_offset: Vec<Option<u64>>,
    /// (attempt, sink task, partition) whose EOT the sink read.
    sink_eots: BTreeSet<(u32, TaskId, u32)>,
    /// The latest attempt deployed.
    latest_attempt: u32,
    /// A task of the latest attempt genuinely failed (reset when an attempt is deployed).
    genuine_failure: bool,
    /// Records emitted and not (yet) seen committed; checked when the job says it drained on pause.
    uncommitted: BTreeSet<RecordId>,
    two_phase: bool,
    violations: Vec<Violation>,
}

impl StatusMatchesLedger {
    pub fn new(setup: &Setup) -> StatusMatchesLedger {
        let n = setup.partitions as usize;
        StatusMatchesLedger {
            committed: vec![Vec::new(); n],
            initial_records: setup.initial_records.clone(),
            committed_count: vec![0; n],
            end_offset: vec![None; n],
            sink_eots: BTreeSet::new(),
            latest_attempt: 0,
            genuine_failure: false,
            uncommitted: BTreeSet::new(),
            two_phase: setup.two_phase,
            violations: Vec::new(),
        }
    }

    /// Why partition `p` is not complete, if it is not.
    fn incomplete(&self, p: u32) -> Option<String> {
        let Some(end) = self.end_offset[p as usize] else {
            return Some(format!("partition {p} never sent its EOT"));
        };
        let have = self.committed[p as usize].iter().take(end as usize).filter(|c| **c).count() as u64;
        (have < end).then(|| format!("partition {p}: {have} of {end} records committed"))
    }

    fn on_finished(&mut self, at_ms: u64) {
        let partitions = self.end_offset.len() as u32;
        for p in 0..partitions {
            if let Some(why) = self.incomplete(p) {
                self.violations.push(Violation::new(
                    NAME,
                    at_ms,
                    FailureClass::Safety,
                    format!("job reported FINISHED but {why}"),
                ));
                return;
            }
            let read = self.sink_eots.iter().any(|(a, _, q)| *a == self.latest_attempt && *q == p);
            if !read {
                let detail = format!(
                    "job reported FINISHED but no sink of attempt {} read the EOT of partition {p}",
                    self.latest_attempt
                );
                self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
                return;
            }
        }
    }

    fn on_failed(&mut self, at_ms: u64) {
        let partitions = self.end_offset.len() as u32;
        let complete = (0..partitions).all(|p| self.incomplete(p).is_none());
        if complete && !self.genuine_failure {
            let total: u64 = self.committed_count.iter().sum();
            let detail = format!("job reported FAILED although all {total} records were delivered and no task failed");
            self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
        }
    }

    fn on_sink_finished(&mut self, at_ms: u64, attempt: u32, task: TaskId, partitions: &[u32]) {
        for &p in partitions {
            let why = if !self.sink_eots.contains(&(attempt, task, p)) {
                let have = self.committed_count[p as usize];
                Some(format!("partition {p} had not delivered its EOT to it ({have} records committed)"))
            } else {
                self.incomplete(p)
            };
            if let Some(why) = why {
                let detail = format!("sink {task} (attempt {attempt}) reported finished but {why}");
                self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
                return;
            }
        }
    }
}

impl Checker for StatusMatchesLedger {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        let event = match &entry.event {
            TraceEvent::Engine(e) => e,
            TraceEvent::Fault(action) => {
                self.genuine_failure |= action.is_disruptive();
                return;
            }
            TraceEvent::Observed { .. } | TraceEvent::Alerted { .. } => return,
        };
        match event {
            Event::FailureDetected { cause, .. } => {
                self.genuine_failure |= matches!(
                    cause,
                    FailureCause::WorkerLost { .. }
                        | FailureCause::WorkerRestarted { .. }
                        | FailureCause::TaskFailed { .. }
                        | FailureCause::DeployRefused { .. }
                );
            }
            Event::Emitted { id, .. } => {
                let committed = self.committed.get(id.partition as usize).and_then(|v| v.get(id.offset as usize));
                if committed != Some(&true) {
                    self.uncommitted.insert(*id);
                }
            }
            // PAUSED with drained_on_pause = true means nothing is in flight: every emitted record is in the ledger
            // (with two-phase commit, staged records wait for the next checkpoint and are replayed if aborted).
            Event::DrainedFlag { value: true } if !self.two_phase && !self.uncommitted.is_empty() => {
                let first = self.uncommitted.iter().next().expect("not empty");
                let detail = format!(
                    "drained_on_pause set while {} emitted record(s) are not committed (first {}:{})",
                    self.uncommitted.len(),
                    first.partition,
                    first.offset
                );
                self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
            }
            Event::Committed { id, .. } => {
                self.uncommitted.remove(id);
                let p = id.partition as usize;
                let produced = self.initial_records.get(p).is_some_and(|n| id.offset < *n);
                if produced {
                    let slots = &mut self.committed[p];
                    if slots.len() <= id.offset as usize {
                        slots.resize(id.offset as usize + 1, false);
                    }
                    if !slots[id.offset as usize] {
                        slots[id.offset as usize] = true;
                        self.committed_count[p] += 1;
                    }
                }
            }
            Event::SourceEot { partition, end_offset, .. } => {
                let slot = &mut self.end_offset[*partition as usize];
                *slot = Some(slot.map_or(*end_offset, |e| e.min(*end_offset)));
            }
            Event::AttemptDeployed { attempt, .. } => {
                self.latest_attempt = *attempt;
                self.genuine_failure = false;
                // An older attempt's undelivered records are not in flight any more: they are replayed.
                self.uncommitted.clear();
            }
            Event::SinkEotReceived { attempt, task, partition } => {
                self.sink_eots.insert((*attempt, *task, *partition));
            }
            Event::SinkFinished { attempt, task, partitions } => {
                self.on_sink_finished(at_ms, *attempt, *task, partitions)
            }
            Event::ExecutionEnded { attempt, outcome: ExecOutcome::Failed(_), .. }
                if *attempt >= self.latest_attempt =>
            {
                self.genuine_failure = true
            }
            Event::StatusChanged { to: JobStatus::Finished, .. } => self.on_finished(at_ms),
            Event::StatusChanged { to: JobStatus::Failed, .. } => self.on_failed(at_ms),
            _ => {}
        }
    }

    /// Judged on the `committed` events; `exactly-once` checks that the store's ledger holds exactly those.
    fn kinds(&self) -> Kinds {
        Kinds::FAULT.and(Kinds::engine(&[
            EventKind::FailureDetected,
            EventKind::Emitted,
            EventKind::DrainedFlag,
            EventKind::Committed,
            EventKind::SourceEot,
            EventKind::AttemptDeployed,
            EventKind::SinkEotReceived,
            EventKind::SinkFinished,
            EventKind::ExecutionEnded,
            EventKind::StatusChanged,
        ]))
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, _end: &End) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn eot(ms: u64, p: u32, end: u64) -> TraceEntry {
        at(
            ms,
            "worker-1",
            Event::SourceEot { attempt: 1, task: TaskId { vertex: 0, replica: 0 }, partition: p, end_offset: end },
        )
    }

    fn sink_eot(ms: u64, p: u32) -> TraceEntry {
        at(ms, "worker-1", Event::SinkEotReceived { attempt: 1, task: sink(), partition: p })
    }

    fn deployed() -> TraceEntry {
        at(0, "coordinator", Event::AttemptDeployed { attempt: 1, start_offsets: vec![0, 0], placement: vec![] })
    }

    #[test]
    fn passes_when_finished_after_everything_is_committed() {
        let setup = setup(vec![2, 1]);
        let trace = vec![
            deployed(),
            commit(1, 0, 0),
            commit(2, 0, 1),
            commit(3, 1, 0),
            eot(4, 0, 2),
            eot(4, 1, 1),
            sink_eot(5, 0),
            sink_eot(5, 1),
            at(6, "worker-1", Event::SinkFinished { attempt: 1, task: sink(), partitions: vec![0, 1] }),
            status(7, JobStatus::Running, JobStatus::Finished),
        ];
        assert!(run(&mut StatusMatchesLedger::new(&setup), &trace, 10).is_empty());
    }

    #[test]
    fn fails_when_finished_with_a_missing_record() {
        let setup = setup(vec![2]);
        let trace = vec![
            deployed(),
            commit(1, 0, 0),
            eot(2, 0, 2),
            sink_eot(3, 0),
            status(4, JobStatus::Running, JobStatus::Finished),
        ];
        let v = run(&mut StatusMatchesLedger::new(&setup), &trace, 10);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, NAME);
        assert!(v[0].detail.contains("1 of 2"), "{}", v[0].detail);
    }

    #[test]
    fn fails_when_a_sink_finishes_before_a_partition_eot() {
        let setup = setup(vec![1, 3]);
        let trace = vec![
            deployed(),
            commit(1, 0, 0),
            eot(2, 0, 1),
            sink_eot(3, 0),
            at(4, "worker-1", Event::SinkFinished { attempt: 1, task: sink(), partitions: vec![0, 1] }),
        ];
        let v = run(&mut StatusMatchesLedger::new(&setup), &trace, 10);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("partition 1 had not delivered its EOT"), "{}", v[0].detail);
    }

    #[test]
    fn failed_over_a_complete_delivery_is_a_violation_unless_something_failed() {
        let setup = setup(vec![1]);
        let base = vec![deployed(), commit(1, 0, 0), eot(2, 0, 1), status(3, JobStatus::Running, JobStatus::Failed)];
        let v = run(&mut StatusMatchesLedger::new(&setup), &base, 10);
        assert_eq!(v.len(), 1, "FAILED over a complete delivery");
        let mut with_crash = base.clone();
        with_crash.insert(1, fault(0, crate::fault::Action::Crash { node: worker(1) }));
        assert!(run(&mut StatusMatchesLedger::new(&setup), &with_crash, 10).is_empty());
        // A crash that hit an earlier attempt does not excuse the last one's FAILED.
        let mut earlier = with_crash.clone();
        earlier.insert(
            2,
            at(0, "coordinator", Event::AttemptDeployed { attempt: 2, start_offsets: vec![0], placement: vec![] }),
        );
        assert_eq!(run(&mut StatusMatchesLedger::new(&setup), &earlier, 10).len(), 1);
        let lost = FailureCause::WorkerLost { worker: 1 };
        let mut detected = earlier.clone();
        detected.insert(3, at(1, "coordinator", Event::FailureDetected { attempt: 2, cause: lost }));
        assert!(run(&mut StatusMatchesLedger::new(&setup), &detected, 10).is_empty(), "the last attempt lost a worker");
        let tolerance = FailureCause::CheckpointTolerance { consecutive: 1, tolerable: 0 };
        let mut checkpoints = earlier.clone();
        checkpoints.insert(3, at(1, "coordinator", Event::FailureDetected { attempt: 2, cause: tolerance }));
        assert_eq!(run(&mut StatusMatchesLedger::new(&setup), &checkpoints, 10).len(), 1, "failed checkpoints are not");
    }
}
