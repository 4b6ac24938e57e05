//! `commits-match-checkpoint`: records are committed when the delivery mode says. With two-phase commit
//! (exactly-once delivery and checkpoints), a stored checkpoint commits exactly the records that came before its
//! barrier; without it, a write is committed when the store acknowledges it.
//!
//! The model is Flink's `TwoPhaseCommitSinkFunction` contract, in the source's offsets: the sink pre-commits at the
//! barrier of checkpoint n what it received before that barrier, and commits it once n is complete. So when
//! checkpoint storage reports checkpoint n stored with the source's next offsets `O` (`checkpoint-stored`):
//! - every record the store committed with it (the `committed` events just before, on the store) lies before the
//!   barrier: `offset < O[p]`. A record after the barrier committed with n is lost to the checkpoint: a restore
//!   from n replays it and commits it again.
//! - every record before the barrier is committed by then (with n or an earlier checkpoint): `offset < O[p]` is in
//!   the ledger. A record before the barrier that is not committed was staged in a later transaction, or dropped.
//!
//! Without two-phase commit (README: only an exactly-once sink with checkpoints stages its writes) the store commits a
//! write as it takes it: every `ack` a sink receives (`sink-response`) is for a record the store committed before.
//!
//! Judged from the trace alone; the ledger at the end agrees with the `committed` events (`exactly-once` asserts it).

use super::{Capped, Checker, End, FailureClass, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, RecordId, StoreResponse};
use std::collections::BTreeSet;

pub(crate) const NAME: &str = "commits-match-checkpoint";

/// The committed offsets of one partition: every offset below `prefix` (the first uncommitted), and those in
/// `above`. Shared with `resumes-at-recovery-point`.
#[derive(Default)]
pub(super) struct Committed {
    pub(super) prefix: u64,
    above: BTreeSet<u64>,
}

impl Committed {
    fn contains(&self, offset: u64) -> bool {
        offset < self.prefix || self.above.contains(&offset)
    }

    pub(super) fn insert(&mut self, offset: u64) {
        if offset >= self.prefix {
            self.above.insert(offset);
        }
        while self.above.remove(&self.prefix) {
            self.prefix += 1;
        }
        assert!(self.above.first().is_none_or(|first| *first > self.prefix), "the prefix absorbs what follows it");
    }
}

pub struct CommitsMatchCheckpoint {
    two_phase: bool,
    committed: Vec<Committed>,
    /// Records committed on the store since its last `checkpoint-stored`.
    since_stored: Vec<RecordId>,
    violations: Capped,
}

impl CommitsMatchCheckpoint {
    pub fn new(setup: &Setup) -> CommitsMatchCheckpoint {
        CommitsMatchCheckpoint {
            two_phase: setup.two_phase,
            committed: (0..setup.partitions).map(|_| Committed::default()).collect(),
            since_stored: Vec::new(),
            violations: Capped::new(NAME),
        }
    }

    fn report(&mut self, at_ms: u64, detail: String) {
        self.violations.report(at_ms, FailureClass::Safety, detail);
    }

    fn on_stored(&mut self, epoch: u64, offsets: &[u64], at_ms: u64) {
        let partitions = self.committed.len();
        if offsets.len() != partitions {
            let detail =
                format!("checkpoint {epoch} stored {} source offsets for {partitions} partitions", offsets.len());
            self.report(at_ms, detail);
            return;
        }
        for id in std::mem::take(&mut self.since_stored) {
            let barrier = offsets[id.partition as usize];
            if id.offset >= barrier {
                let detail = format!(
                    "record {}:{} committed with checkpoint {epoch}, but it follows that checkpoint's barrier (the \
                     source's next offset there: {barrier})",
                    id.partition, id.offset
                );
                self.report(at_ms, detail);
            }
        }
        for (partition, barrier) in offsets.iter().enumerate() {
            let prefix = self.committed[partition].prefix;
            if prefix < *barrier {
                let detail = format!(
                    "checkpoint {epoch} stored, but record {partition}:{prefix}, before its barrier (next offset \
                     {barrier}), is not committed"
                );
                self.report(at_ms, detail);
            }
        }
    }

    /// Auto-commit: a record the store acknowledged must be committed.
    fn on_acked(&mut self, attempt: u32, id: RecordId, at_ms: u64) {
        let committed = self.committed.get(id.partition as usize).is_some_and(|c| c.contains(id.offset));
        if !committed {
            let detail = format!(
                "the store acknowledged record {}:{} to attempt {attempt} without committing it, although the job \
                 commits on write (no two-phase commit)",
                id.partition, id.offset
            );
            self.report(at_ms, detail);
        }
    }
}

impl Checker for CommitsMatchCheckpoint {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let TraceEvent::Engine(event) = &entry.event else { return };
        match event {
            Event::Committed { id, .. } => {
                if let Some(committed) = self.committed.get_mut(id.partition as usize) {
                    committed.insert(id.offset);
                    if self.two_phase {
                        self.since_stored.push(*id);
                    }
                }
            }
            Event::CheckpointStored { epoch, offsets, .. } if self.two_phase => {
                self.on_stored(*epoch, offsets, entry.at_ms());
            }
            Event::SinkResponse { attempt, response: StoreResponse::Ack(id), .. } if !self.two_phase => {
                self.on_acked(*attempt, *id, entry.at_ms());
            }
            _ => {}
        }
    }

    fn finish(&mut self, _end: &End) -> Vec<Violation> {
        self.violations.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn stored(ms: u64, epoch: u64, offsets: Vec<u64>) -> TraceEntry {
        at(ms, "store", Event::CheckpointStored { attempt: 1, epoch, offsets })
    }

    fn two_phase() -> Setup {
        let mut s = setup(vec![u64::MAX, u64::MAX]);
        s.two_phase = true;
        s
    }

    #[test]
    fn a_checkpoint_commits_what_precedes_its_barrier() {
        let trace = vec![commit(10, 0, 0), commit(10, 0, 1), commit(10, 1, 0), stored(10, 1, vec![2, 1])];
        assert!(run(&mut CommitsMatchCheckpoint::new(&two_phase()), &trace, 100).is_empty());
        let again = [trace.clone(), vec![stored(20, 1, vec![2, 1]), commit(30, 1, 1), stored(30, 2, vec![2, 2])]];
        assert!(run(&mut CommitsMatchCheckpoint::new(&two_phase()), &again.concat(), 100).is_empty());
    }

    #[test]
    fn a_record_after_the_barrier_committed_with_it_is_flagged() {
        let trace = vec![commit(10, 0, 0), commit(10, 0, 1), stored(10, 1, vec![1, 0])];
        let v = run(&mut CommitsMatchCheckpoint::new(&two_phase()), &trace, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("record 0:1 committed with checkpoint 1"), "{}", v[0].detail);
    }

    #[test]
    fn a_record_before_the_barrier_left_uncommitted_is_flagged() {
        let trace = vec![commit(10, 0, 0), commit(10, 0, 2), stored(10, 1, vec![3, 0])];
        let v = run(&mut CommitsMatchCheckpoint::new(&two_phase()), &trace, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("record 0:1, before its barrier"), "{}", v[0].detail);
    }

    fn acked(ms: u64, p: u32, o: u64) -> TraceEntry {
        let response = StoreResponse::Ack(RecordId { partition: p, offset: o });
        at(ms, "worker-1", Event::SinkResponse { attempt: 1, task: sink(), partition: p, stream: "s".into(), response })
    }

    #[test]
    fn auto_commit_checkpoints_are_not_judged_and_acked_writes_are_committed() {
        let trace = vec![commit(10, 0, 5), stored(10, 1, vec![0, 0]), acked(12, 0, 5)];
        assert!(run(&mut CommitsMatchCheckpoint::new(&setup(vec![9, 9])), &trace, 100).is_empty());
    }

    #[test]
    fn auto_commit_an_acked_write_that_is_not_committed_is_flagged() {
        let trace = vec![commit(10, 0, 5), acked(12, 0, 5), acked(12, 0, 6)];
        let v = run(&mut CommitsMatchCheckpoint::new(&setup(vec![9, 9])), &trace, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("record 0:6 to attempt 1 without committing it"), "{}", v[0].detail);
        // With two-phase commit an acknowledgement means staged, not committed.
        assert!(run(&mut CommitsMatchCheckpoint::new(&two_phase()), &trace, 100).is_empty());
    }
}
