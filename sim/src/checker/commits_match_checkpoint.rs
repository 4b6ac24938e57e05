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
//! And a fence aborts what it cuts off (README: "older attempts' writes are refused and their staged transactions
//! aborted"): with two-phase commit, when the store fences attempt `N` (`fenced`), the records it had acknowledged to
//! attempts below `N` as staged and not committed since are aborted, and the store's `transactions-aborted` below `N`
//! that follows counts at least those (a lost acknowledgement only makes it more); an abort of nothing is not reported.
//!
//! Judged from the trace alone; the ledger at the end agrees with the `committed` events (`exactly-once` asserts it).

use super::{Capped, Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, RecordId, StoreResponse};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const NAME: &str = "commits-match-checkpoint";

/// The committed offsets of one partition: every offset below `prefix` (the first uncommitted), and those in
/// `above`. Shared with `resumes-at-recovery-point`.
#[derive(Debug, Default)]
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

#[derive(Debug)]
pub struct CommitsMatchCheckpoint {
    two_phase: bool,
    committed: Vec<Committed>,
    /// Records committed on the store since its last `checkpoint-stored`.
    since_stored: Vec<RecordId>,
    /// Two-phase: records the store acknowledged to each attempt as staged, not committed since; the attempt the
    /// store fences below, and how many staged records the abort that follows its last fence must count.
    staged: BTreeMap<u32, BTreeSet<RecordId>>,
    fenced_below: u32,
    abort_owed: Option<(u32, u64)>,
    violations: Capped,
}

impl CommitsMatchCheckpoint {
    pub fn new(setup: &Setup) -> CommitsMatchCheckpoint {
        CommitsMatchCheckpoint {
            two_phase: setup.two_phase,
            committed: (0..setup.partitions).map(|_| Committed::default()).collect(),
            since_stored: Vec::new(),
            staged: BTreeMap::new(),
            fenced_below: 0,
            abort_owed: None,
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

    /// Two-phase: the store fenced `attempt`: what older attempts had staged is owed to the abort that follows.
    fn on_fenced(&mut self, attempt: u32, at_ms: u64) {
        self.check_abort_owed(at_ms);
        let cut_off: u64 = self.staged.range(..attempt).map(|(_, ids)| ids.len() as u64).sum();
        self.staged = self.staged.split_off(&attempt);
        self.fenced_below = self.fenced_below.max(attempt);
        if cut_off > 0 {
            self.abort_owed = Some((attempt, cut_off));
        }
    }

    fn on_aborted(&mut self, below: u32, records: u64, at_ms: u64) {
        if records == 0 {
            let detail = format!("transactions-aborted below attempt {below} counts 0 records: an abort of nothing");
            self.report(at_ms, detail);
        }
        match self.abort_owed.take() {
            Some((attempt, owed)) if attempt == below && records < owed => {
                let detail = format!(
                    "the fence of attempt {below} aborted {records} staged records, but the store had acknowledged \
                     {owed} records to older attempts as staged and not committed them"
                );
                self.report(at_ms, detail);
            }
            Some((attempt, owed)) if attempt != below => self.abort_owed = Some((attempt, owed)),
            _ => {}
        }
        self.check_abort_owed(at_ms);
    }

    /// The store moved on (another fence, or the end) without reporting the abort it owed.
    fn check_abort_owed(&mut self, at_ms: u64) {
        if let Some((attempt, owed)) = self.abort_owed.take() {
            let detail = format!(
                "the fence of attempt {attempt} reported no transactions-aborted, but {owed} records staged by older \
                 attempts were acknowledged and never committed"
            );
            self.report(at_ms, detail);
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
            Event::Committed { id, attempt } => {
                if let Some(committed) = self.committed.get_mut(id.partition as usize) {
                    committed.insert(id.offset);
                    if self.two_phase {
                        self.since_stored.push(*id);
                        self.staged.entry(*attempt).or_default().remove(id);
                    }
                }
            }
            // Acknowledged as staged (unless a save committed it before the acknowledgement arrived).
            Event::SinkResponse { attempt, response: StoreResponse::Ack(id), .. }
                if self.two_phase
                    && *attempt >= self.fenced_below
                    && !self.committed.get(id.partition as usize).is_some_and(|c| c.contains(id.offset)) =>
            {
                self.staged.entry(*attempt).or_default().insert(*id);
            }
            Event::Fenced { attempt, .. } if self.two_phase => self.on_fenced(*attempt, entry.at_ms()),
            Event::TransactionsAborted { below_attempt, records } => {
                self.on_aborted(*below_attempt, *records, entry.at_ms())
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

    fn kinds(&self) -> Kinds {
        Kinds::engine(&[
            EventKind::Committed,
            EventKind::SinkResponse,
            EventKind::Fenced,
            EventKind::TransactionsAborted,
            EventKind::CheckpointStored,
        ])
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_abort_owed(end.end_ms);
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

    #[test]
    fn a_fence_aborts_at_least_what_older_attempts_staged_and_never_reports_an_empty_abort() {
        let fenced = |ms| at(ms, "store", Event::Fenced { attempt: 2, next_offsets: vec![0, 0] });
        let aborted = |ms, records| at(ms, "store", Event::TransactionsAborted { below_attempt: 2, records });
        // Attempt 1 staged 0:5, 0:6 and 1:0; a checkpoint committed 0:5 (whose ack came after the commit: 0:7).
        let staged = vec![
            acked(10, 0, 5),
            acked(11, 0, 6),
            acked(12, 1, 0),
            commit(20, 0, 5),
            commit(21, 0, 7),
            acked(22, 0, 7),
        ];
        let check = |tail: Vec<TraceEntry>| {
            run(&mut CommitsMatchCheckpoint::new(&two_phase()), &[staged.clone(), tail].concat(), 100)
        };
        assert!(check(vec![fenced(30), aborted(30, 2)]).is_empty(), "0:6 and 1:0");
        assert!(check(vec![fenced(30), aborted(30, 3)]).is_empty(), "a lost acknowledgement staged one more");
        let v = check(vec![fenced(30), aborted(30, 1)]);
        assert!(v.len() == 1 && v[0].detail.contains("aborted 1 staged records, but the store had acknowledged 2"));
        let v = check(vec![fenced(30)]);
        assert!(v.len() == 1 && v[0].detail.contains("reported no transactions-aborted"), "{v:?}");
        let v = run(&mut CommitsMatchCheckpoint::new(&two_phase()), &[fenced(30), aborted(30, 0)], 100);
        assert!(v.len() == 1 && v[0].detail.contains("an abort of nothing"), "{v:?}");
        let late_ack = vec![fenced(30), aborted(30, 2), acked(31, 1, 1), fenced(40)];
        assert!(check(late_ack).is_empty(), "an acknowledgement to a fenced attempt is not staged any more");
    }
}
