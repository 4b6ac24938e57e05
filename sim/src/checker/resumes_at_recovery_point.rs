//! `resumes-at-recovery-point`: every attempt starts its sources at the job's recovery point, as it stands when the
//! attempt is deployed.
//!
//! The model is the documented one (README, "Failover"; Flink restores sources from the latest completed checkpoint, a
//! consumer without checkpoints resumes at its committed offsets), kept from the store's own events:
//! - with checkpoints: the source offsets of the newest checkpoint stored so far (`checkpoint-stored` with the highest
//!   epoch: a late duplicate of an older save never moves the recovery point back), or 0 everywhere before any;
//! - without: per partition, the first offset the store has not committed (`committed` events), so nothing
//!   uncommitted is skipped.
//!
//! Every attempt is deployed after its fence (older attempts can no longer commit or store a checkpoint), so the
//! recovery point the store had when it answered the fence is the one in the trace at `attempt-deployed`. An attempt
//! that starts elsewhere skips records (loss) or replays committed ones (duplicates): for example, a stale answer to an
//! older fence, overtaken by commits of the attempt in between, taken for the current one.

use super::commits_match_checkpoint::Committed;
use super::{Capped, Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind};

pub(crate) const NAME: &str = "resumes-at-recovery-point";

#[derive(Debug)]
pub struct ResumesAtRecoveryPoint {
    with_checkpoints: bool,
    /// The newest stored checkpoint: its epoch and source offsets.
    newest_stored: Option<(u64, Vec<u64>)>,
    /// Committed offsets per partition (their `prefix` is the first uncommitted offset).
    committed: Vec<Committed>,
    violations: Capped,
}

impl ResumesAtRecoveryPoint {
    pub fn new(setup: &Setup) -> ResumesAtRecoveryPoint {
        let partitions = setup.partitions as usize;
        ResumesAtRecoveryPoint {
            with_checkpoints: setup.checkpoint.is_some(),
            newest_stored: None,
            committed: (0..partitions).map(|_| Committed::default()).collect(),
            violations: Capped::new(NAME),
        }
    }

    fn on_committed(&mut self, partition: u32, offset: u64) {
        if self.with_checkpoints {
            return; // the recovery point is a checkpoint's, whatever was committed
        }
        if let Some(committed) = self.committed.get_mut(partition as usize) {
            committed.insert(offset);
        }
    }

    fn on_stored(&mut self, epoch: u64, offsets: &[u64]) {
        if self.newest_stored.as_ref().is_none_or(|(newest, _)| epoch > *newest) {
            self.newest_stored = Some((epoch, offsets.to_vec()));
        }
    }

    /// The recovery point now, and where it comes from.
    fn recovery_point(&self) -> (Vec<u64>, String) {
        match (&self.newest_stored, self.with_checkpoints) {
            (Some((epoch, offsets)), true) => (offsets.clone(), format!("checkpoint {epoch}, the newest stored")),
            (None, true) => (vec![0; self.committed.len()], "the start: no checkpoint was stored yet".into()),
            (_, false) => (self.committed.iter().map(|c| c.prefix).collect(), "the first uncommitted offsets".into()),
        }
    }

    fn on_deployed(&mut self, attempt: u32, start_offsets: &[u64], at_ms: u64) {
        let (expected, from) = self.recovery_point();
        if start_offsets != expected.as_slice() {
            let detail = format!(
                "attempt {attempt} started its sources at offsets {start_offsets:?}, but the recovery point is \
                 {expected:?} ({from})"
            );
            self.violations.report(at_ms, FailureClass::Safety, detail);
        }
    }
}

impl Checker for ResumesAtRecoveryPoint {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let TraceEvent::Engine(event) = &entry.event else { return };
        match event {
            Event::Committed { id, .. } => self.on_committed(id.partition, id.offset),
            Event::CheckpointStored { epoch, offsets, .. } => self.on_stored(*epoch, offsets),
            Event::AttemptDeployed { attempt, start_offsets, .. } => {
                self.on_deployed(*attempt, start_offsets, entry.at_ms())
            }
            _ => {}
        }
    }

    /// Commits count only where no checkpoint is the recovery point.
    fn kinds(&self) -> Kinds {
        let commits = if self.with_checkpoints { Kinds::NONE } else { Kinds::engine(&[EventKind::Committed]) };
        commits.and(Kinds::engine(&[EventKind::CheckpointStored, EventKind::AttemptDeployed]))
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, _end: &End) -> Vec<Violation> {
        self.violations.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::CheckpointSpec;

    fn deployed(ms: u64, attempt: u32, start_offsets: Vec<u64>) -> TraceEntry {
        at(ms, "coordinator", Event::AttemptDeployed { attempt, start_offsets, placement: vec![] })
    }

    fn stored(ms: u64, epoch: u64, offsets: Vec<u64>) -> TraceEntry {
        at(ms, "store", Event::CheckpointStored { attempt: 1, epoch, offsets })
    }

    fn with_checkpoints() -> Setup {
        let mut s = setup(vec![10, 10]);
        s.checkpoint = Some(CheckpointSpec { interval_ms: 100, timeout_ms: 1_000, tolerable_failures: 0 });
        s
    }

    #[test]
    fn without_checkpoints_an_attempt_resumes_at_the_first_uncommitted_offsets() {
        let trace = vec![
            deployed(0, 1, vec![0, 0]),
            commit(10, 0, 0),
            commit(10, 0, 1),
            commit(10, 0, 3),
            commit(10, 1, 0),
            deployed(20, 2, vec![2, 1]),
        ];
        assert!(run(&mut ResumesAtRecoveryPoint::new(&setup(vec![10, 10])), &trace, 100).is_empty());
    }

    #[test]
    fn without_checkpoints_an_attempt_that_skips_or_replays_is_flagged() {
        let skips = vec![commit(10, 0, 0), commit(10, 0, 3), deployed(20, 2, vec![4, 0])];
        let v = run(&mut ResumesAtRecoveryPoint::new(&setup(vec![10, 10])), &skips, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("started its sources at offsets [4, 0], but the recovery point is [1, 0]"));
        let replays = vec![commit(10, 0, 0), deployed(20, 2, vec![0, 0])];
        assert_eq!(run(&mut ResumesAtRecoveryPoint::new(&setup(vec![10, 10])), &replays, 100).len(), 1);
    }

    #[test]
    fn with_checkpoints_an_attempt_restores_the_newest_stored_checkpoint() {
        let trace = vec![
            deployed(0, 1, vec![0, 0]),
            commit(5, 0, 0),
            stored(10, 1, vec![3, 2]),
            stored(20, 2, vec![5, 4]),
            // A late duplicate of an older save does not move the recovery point back.
            stored(30, 1, vec![3, 2]),
            deployed(40, 2, vec![5, 4]),
        ];
        assert!(run(&mut ResumesAtRecoveryPoint::new(&with_checkpoints()), &trace, 100).is_empty());
    }

    #[test]
    fn with_checkpoints_an_attempt_restoring_an_older_checkpoint_is_flagged() {
        let trace = vec![stored(10, 1, vec![3, 2]), stored(20, 2, vec![5, 4]), deployed(40, 2, vec![3, 2])];
        let v = run(&mut ResumesAtRecoveryPoint::new(&with_checkpoints()), &trace, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("(checkpoint 2, the newest stored)"), "{}", v[0].detail);
        // Before any checkpoint is stored, committed records do not move the recovery point: it is the start.
        let early = vec![commit(5, 0, 0), deployed(10, 2, vec![1, 0])];
        let v = run(&mut ResumesAtRecoveryPoint::new(&with_checkpoints()), &early, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("no checkpoint was stored yet"), "{}", v[0].detail);
    }
}
