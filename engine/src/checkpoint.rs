//! The checkpoint coordinator: triggers checkpoints, collects acknowledgements, expires and fails them, counts
//! consecutive failures against the tolerance, and keeps the statistics the API shows.
//!
//! A pure state machine: the job coordinator does the I/O (triggers, saves, notifications) and asks it what to do.

use crate::canary::{Canaries, Canary};
use crate::event::FailureCause;
use crate::faults::FailReason;
use crate::job::{CheckpointSpec, TaskId};
use crate::net::{CheckpointStats, SavedCheckpoint};
use std::collections::BTreeMap;

/// A checkpoint in flight.
#[derive(Clone, Debug)]
pub struct Pending {
    pub epoch: u64,
    pub is_final: bool,
    pub triggered_ms: u64,
    acks: BTreeMap<TaskId, Vec<(u32, u64)>>,
    /// Once every task acknowledged: the checkpoint being saved.
    pub saving: Option<SavedCheckpoint>,
}

/// What the job must do after a checkpoint failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureVerdict {
    /// Tolerated: go on (a failed final checkpoint is triggered again).
    Tolerated,
    /// More consecutive failures than tolerated: fail over (the restart strategy decides).
    Failover(FailureCause),
    /// Canary `batch-final-checkpoint-fails-job`: the checkpoint coordinator itself failed, and the job's end state
    /// follows it.
    CoordinatorFailed(FailureCause),
}

pub struct CheckpointCoordinator {
    spec: CheckpointSpec,
    batch: bool,
    canaries: Canaries,
    next_epoch: u64,
    /// The latest checkpoint triggered: ids only grow.
    last_epoch: u64,
    last_trigger_ms: u64,
    pub pending: Option<Pending>,
    consecutive_failures: u32,
    /// The completed final checkpoint (taken once every source ended, in either mode).
    pub final_completed: Option<u64>,
    pub stats: CheckpointStats,
}

impl CheckpointCoordinator {
    pub fn new(spec: CheckpointSpec, batch: bool, canaries: Canaries) -> CheckpointCoordinator {
        CheckpointCoordinator {
            spec,
            batch,
            canaries,
            next_epoch: 1,
            last_epoch: 0,
            last_trigger_ms: 0,
            pending: None,
            consecutive_failures: 0,
            final_completed: None,
            stats: CheckpointStats::default(),
        }
    }

    /// A new attempt starts at `now_ms`, restored from checkpoint `restored` (0: none). A checkpoint in flight is
    /// abandoned (not a failure: the attempt it belonged to is gone).
    pub fn restart(&mut self, now_ms: u64, restored: u64) {
        self.pending = None;
        self.final_completed = None;
        // Every saved checkpoint got its id from `next_epoch`, which only grows: the next id follows the restored one.
        assert!(self.next_epoch > restored, "checkpoint {} would not follow the restored {restored}", self.next_epoch);
        self.last_trigger_ms = now_ms;
    }

    /// The job was resubmitted (an API restart: a new job in Flink's terms): the consecutive failure count starts
    /// again from 0, as a new job's `CheckpointFailureManager` does.
    pub fn resubmitted(&mut self) {
        self.consecutive_failures = 0;
        assert_eq!(self.consecutive_failures, 0, "a resubmitted job counts no failed checkpoint yet");
    }

    /// Gives up the checkpoint in flight without counting it as failed (the job pauses), and triggers none until
    /// the next attempt.
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// Triggers a checkpoint if one is due: periodic, or the final one once every source's input ended.
    pub fn due(&mut self, now_ms: u64, inputs_ended: bool) -> Option<(u64, bool)> {
        if self.pending.is_some() || self.final_completed.is_some() {
            return None;
        }
        let is_final = inputs_ended;
        if !is_final && now_ms < self.last_trigger_ms + self.spec.interval_ms {
            return None;
        }
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        assert!(self.next_epoch > epoch && epoch > self.last_epoch, "checkpoint {epoch} after {}", self.last_epoch);
        self.last_epoch = epoch;
        assert!(now_ms >= self.last_trigger_ms, "checkpoint {epoch} triggered before the previous one");
        self.last_trigger_ms = now_ms;
        self.pending = Some(Pending { epoch, is_final, triggered_ms: now_ms, acks: BTreeMap::new(), saving: None });
        Some((epoch, is_final))
    }

    /// Records an acknowledgement; once `tasks` all acknowledged, returns the checkpoint to save.
    pub fn on_ack(
        &mut self,
        task: TaskId,
        epoch: u64,
        snapshot: &[(u32, u64)],
        tasks: &[TaskId],
        partitions: u32,
    ) -> Option<SavedCheckpoint> {
        let p = self.pending.as_mut().filter(|p| p.epoch == epoch && p.saving.is_none())?;
        p.acks.entry(task).or_insert_with(|| snapshot.to_vec());
        if !tasks.iter().all(|t| p.acks.contains_key(t)) {
            return None;
        }
        let mut offsets = vec![0; partitions as usize];
        for (partition, offset) in p.acks.values().flatten() {
            offsets[*partition as usize] = *offset;
        }
        let saved = SavedCheckpoint { epoch, offsets };
        p.saving = Some(saved.clone());
        Some(saved)
    }

    /// The store saved checkpoint `epoch`: it is complete.
    pub fn on_saved(&mut self, epoch: u64, now_ms: u64) -> Option<Pending> {
        let p = self.pending.take_if(|p| p.epoch == epoch && p.saving.is_some())?;
        self.consecutive_failures = 0;
        self.stats.latest_completed = Some((epoch, now_ms));
        if p.is_final {
            self.final_completed = Some(epoch);
        }
        Some(p)
    }

    /// Expires the checkpoint in flight if its time is up.
    pub fn expired(&self, now_ms: u64) -> Option<u64> {
        self.pending.as_ref().filter(|p| now_ms > p.triggered_ms + self.spec.timeout_ms).map(|p| p.epoch)
    }

    /// Checkpoint `epoch` failed; each id counts once, and only for a reason the tolerance counts.
    pub fn on_failed(
        &mut self,
        epoch: u64,
        reason: FailReason,
        detail: &str,
        now_ms: u64,
    ) -> Option<(u32, FailureVerdict)> {
        self.pending.take_if(|p| p.epoch == epoch)?;
        let before = self.consecutive_failures;
        if counts_toward_tolerance(reason) {
            self.consecutive_failures += 1;
        }
        assert!(self.consecutive_failures <= before + 1, "a failed checkpoint counts at most once");
        let failed = (epoch, now_ms, format!("{reason}: {detail}"));
        crate::history::push_bounded(&mut self.stats.recent_failed, failed, CheckpointStats::KEEP);
        let n = self.consecutive_failures;
        let verdict = if self.batch && self.canaries.has(Canary::BatchFinalCheckpointFailsJob) {
            FailureVerdict::CoordinatorFailed(FailureCause::CheckpointCoordinatorFailed { epoch })
        } else if n > self.spec.tolerable_failures {
            // Flink's CheckpointFailureManager: over the tolerance, the count is cleared and the job fails over.
            self.consecutive_failures = 0;
            let tolerable = self.spec.tolerable_failures;
            FailureVerdict::Failover(FailureCause::CheckpointTolerance { consecutive: n, tolerable })
        } else {
            FailureVerdict::Tolerated
        };
        Some((n, verdict))
    }
}

/// Whether a failure of this reason counts toward the tolerable consecutive failures. Flink's
/// `CheckpointFailureManager.checkFailureCounter` counts I/O errors, declines and expiries; a checkpoint a newer one
/// subsumed or a task that was not ready ignores (neither counts nor resets the count).
fn counts_toward_tolerance(reason: FailReason) -> bool {
    match reason {
        FailReason::Expired | FailReason::Declined | FailReason::IoError => true,
        FailReason::Subsumed | FailReason::TaskNotReady => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tolerable: u32) -> CheckpointSpec {
        CheckpointSpec { interval_ms: 100, timeout_ms: 50, tolerable_failures: tolerable }
    }

    #[test]
    fn completes_after_every_ack_and_counts_failures_consecutively() {
        let t = |r| TaskId { vertex: 0, replica: r };
        let mut c = CheckpointCoordinator::new(spec(1), false, Canaries::NONE);
        assert_eq!(c.due(50, false), None);
        assert_eq!(c.due(100, false), Some((1, false)));
        assert_eq!(c.on_ack(t(0), 1, &[(0, 7)], &[t(0), t(1)], 2), None);
        let saved = c.on_ack(t(1), 1, &[(1, 9)], &[t(0), t(1)], 2).unwrap();
        assert_eq!(saved.offsets, vec![7, 9]);
        assert!(c.on_saved(1, 120).is_some());
        assert_eq!(c.due(200, false), Some((2, false)));
        assert_eq!(c.expired(251), Some(2));
        assert_eq!(c.on_failed(2, FailReason::Expired, "x", 251).unwrap(), (1, FailureVerdict::Tolerated));
        assert!(c.on_failed(2, FailReason::Expired, "x", 252).is_none(), "an id counts once");
        assert_eq!(c.due(300, false), Some((3, false)));
        assert!(matches!(c.on_failed(3, FailReason::Declined, "x", 310).unwrap().1, FailureVerdict::Failover(_)));
        assert_eq!(c.stats.recent_failed.len(), 2);
    }

    #[test]
    fn reasons_flink_ignores_neither_count_nor_reset() {
        let mut c = CheckpointCoordinator::new(spec(1), false, Canaries::NONE);
        assert_eq!(c.due(100, false), Some((1, false)));
        assert_eq!(c.on_failed(1, FailReason::Expired, "x", 160).unwrap(), (1, FailureVerdict::Tolerated));
        assert_eq!(c.due(200, false), Some((2, false)));
        assert_eq!(c.on_failed(2, FailReason::Subsumed, "x", 210).unwrap(), (1, FailureVerdict::Tolerated));
        assert_eq!(c.due(300, false), Some((3, false)));
        assert_eq!(c.on_failed(3, FailReason::TaskNotReady, "x", 310).unwrap(), (1, FailureVerdict::Tolerated));
        assert_eq!(c.stats.recent_failed.len(), 3, "an ignored failure is still a failed checkpoint");
        assert_eq!(c.due(400, false), Some((4, false)));
        assert!(matches!(c.on_failed(4, FailReason::Declined, "x", 410).unwrap().1, FailureVerdict::Failover(_)));
    }

    #[test]
    fn batch_final_checkpoint_follows_the_inputs_and_the_canary_fails_the_coordinator() {
        let mut c =
            CheckpointCoordinator::new(spec(5), true, Canaries::NONE.with(Canary::BatchFinalCheckpointFailsJob));
        assert_eq!(c.due(10, true), Some((1, true)), "final checkpoint right when the inputs end");
        let (_, verdict) = c.on_failed(1, FailReason::Expired, "x", 70).unwrap();
        assert!(matches!(verdict, FailureVerdict::CoordinatorFailed(_)));
    }
}
