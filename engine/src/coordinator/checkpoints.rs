//! The coordinator's side of checkpointing: triggers, acknowledgements, saving, failures (the decisions are the
//! checkpoint coordinator's, in `checkpoint.rs`), and settling a batch job that failed checkpoints will not restart.

use super::{Coordinator, Decide, Phase, Then};
use crate::checkpoint::FailureVerdict;
use crate::coverage::Point;
use crate::event::Event;
use crate::faults::FailReason;
use crate::job::{Mode, TaskId, VertexKind};
use crate::net::{Ctrl, Deployment, ExecState, NodeName, TaskControl};
use std::collections::BTreeSet;
use std::sync::Arc;

impl Coordinator {
    /// Triggers, collects, expires and saves checkpoints while the attempt runs.
    pub(super) async fn drive_checkpoints(&mut self, deployments: &[Arc<Deployment>]) {
        let Some(mut cc) = self.checkpoints.take() else { return };
        let now = self.now_ms();
        let tasks: Vec<TaskId> = deployments.iter().map(|d| d.task).collect();
        let sources: Vec<&Arc<Deployment>> = deployments
            .iter()
            .filter(|d| self.spec.vertices[d.task.vertex as usize].kind == VertexKind::Source)
            .collect();
        // A streaming job with no source replica has not ended: it has not started.
        let sources_ended = !sources.is_empty()
            && sources
                .iter()
                .all(|d| self.reported(d).is_some_and(|r| r.checkpoints.input_ended || r.state == ExecState::Finished));
        if let Some((epoch, is_final)) = cc.due(now, sources_ended) {
            self.trigger_fault_clock_ms = crate::faults::fault_clock_ms();
            self.tracer.emit(Event::CheckpointTriggered { attempt: self.attempt, epoch, is_final });
        }
        let mut outcome = None;
        if let Some(p) = cc.pending.clone() {
            let mut unacked_workers = BTreeSet::new();
            for d in deployments {
                let report = self.reported(d).map(|r| &r.checkpoints);
                if let Some((_, reason, why)) = report.and_then(|r| r.declined.iter().find(|(e, _, _)| *e == p.epoch)) {
                    outcome = Some((p.epoch, *reason, why.clone()));
                    break;
                }
                match report.and_then(|r| r.acked.iter().find(|(e, _)| *e == p.epoch)) {
                    Some((_, snapshot)) => {
                        if let Some(saved) = cc.on_ack(d.task, p.epoch, snapshot, &tasks, self.spec.partitions) {
                            self.ctrl
                                .send(
                                    NodeName::Store,
                                    Ctrl::SaveCheckpoint { attempt: self.attempt, checkpoint: saved },
                                )
                                .await;
                        }
                    }
                    None => {
                        unacked_workers.insert(*d.placement.get(&d.task).expect("placed"));
                    }
                }
            }
            // Its trigger time on the clock injected faults are armed on (the run's), not on this node's.
            let triggered_ms = self.trigger_fault_clock_ms;
            let trigger = TaskControl::Trigger { epoch: p.epoch, is_final: p.is_final, triggered_ms };
            for w in unacked_workers {
                self.ctrl.send(NodeName::Worker(w), Ctrl::ToTasks { attempt: self.attempt, control: trigger }).await;
            }
            if let Some(saved) = cc.pending.as_ref().and_then(|p| p.saving.clone()) {
                // Saved or not, the store answers; until it does, ask again.
                self.ctrl
                    .send(NodeName::Store, Ctrl::SaveCheckpoint { attempt: self.attempt, checkpoint: saved })
                    .await;
            }
            if outcome.is_none() {
                if let Some(epoch) = cc.expired(now) {
                    if p.is_final && self.delivered_ends(deployments).is_some() {
                        self.tracer.reach(Point::FinalCheckpointExpiredAfterDelivery);
                    }
                    outcome = Some((
                        epoch,
                        FailReason::Expired,
                        format!("not acknowledged within {} ms", self.spec.checkpoint.map_or(0, |c| c.timeout_ms)),
                    ));
                }
            }
        }
        if let Some(epoch) = cc.final_completed {
            let control = TaskControl::Complete { epoch, is_final: true };
            let workers: BTreeSet<u16> =
                deployments.iter().map(|d| *d.placement.get(&d.task).expect("placed")).collect();
            for w in workers {
                self.ctrl.send(NodeName::Worker(w), Ctrl::ToTasks { attempt: self.attempt, control }).await;
            }
        }
        self.checkpoints = Some(cc);
        if let Some((epoch, reason, detail)) = outcome {
            self.checkpoint_failed(epoch, reason, &detail);
        }
    }

    pub(super) async fn on_checkpoint_saved(&mut self, epoch: u64, result: Result<(), String>) {
        let now = self.now_ms();
        let attempt = self.attempt;
        let Some(cc) = self.checkpoints.as_mut() else { return };
        match result {
            Ok(()) => {
                if let Some(p) = cc.on_saved(epoch, now) {
                    self.tracer.emit(Event::CheckpointCompleted { attempt, epoch, is_final: p.is_final });
                }
            }
            Err(why) => {
                if cc.pending.as_ref().is_some_and(|p| p.epoch == epoch) {
                    self.checkpoint_failed(epoch, FailReason::IoError, &why);
                }
            }
        }
    }

    pub(super) fn checkpoint_failed(&mut self, epoch: u64, reason: FailReason, detail: &str) {
        let now = self.now_ms();
        let attempt = self.attempt;
        let Some(cc) = self.checkpoints.as_mut() else { return };
        let Some((consecutive, verdict)) = cc.on_failed(epoch, reason, detail, now) else { return };
        self.tracer.emit(Event::CheckpointFailed { attempt, epoch, reason, detail: detail.to_string(), consecutive });
        match verdict {
            FailureVerdict::Tolerated => {}
            FailureVerdict::Failover(cause) => self.fail_attempt(cause, Decide::Checkpoints),
            FailureVerdict::CoordinatorFailed(cause) => self.fail_attempt(cause, Decide::Fail),
        }
    }

    /// While settling: once the sinks report everything delivered, cancel and fence, and let the store's committed
    /// offsets decide between FINISHED and FAILED; a failed task, a lost worker or the deadline mean FAILED.
    pub(super) fn watch_settling(&mut self) {
        let Phase::Settling { deployments, cause, deadline_ms } = &self.phase else { return };
        let (deployments, cause, deadline_ms) = (deployments.clone(), cause.clone(), *deadline_ms);
        let now = self.now_ms();
        let alive = self.alive_workers();
        let broken = deployments.iter().any(|d| {
            !alive.contains(d.placement.get(&d.task).expect("placed"))
                || self.reported(d).is_some_and(|r| matches!(r.state, ExecState::Failed(_) | ExecState::Refused(_)))
        });
        let then = match self.delivered_ends(&deployments) {
            _ if broken => Then::Fail { cause },
            Some(ends) => Then::Settle { cause, ends, committed: None },
            None if now >= deadline_ms => {
                let why = "the delivery did not complete while settling";
                Then::Fail { cause: format!("{cause}; {why}") }
            }
            None => return,
        };
        let below = self.next_attempt();
        self.tracer.emit(Event::CancelRequested { below_attempt: below });
        let deadline_ms = now + self.spec.timings.cancel_timeout_ms;
        self.phase = Phase::Canceling { below, deadline_ms, then, fenced: false };
    }

    /// The end offset of every source partition, if the batch attempt delivered everything it will: every partition
    /// sent its EOT, and every sink read all of its EOTs and has nothing unacknowledged (as last reported). Whether
    /// that is also committed, the store says when it is fenced.
    fn delivered_ends(&self, deployments: &[Arc<Deployment>]) -> Option<Vec<u64>> {
        if self.spec.mode != Mode::Batch {
            return None;
        }
        let mut ends: Vec<Option<u64>> = vec![None; self.spec.partitions as usize];
        for d in deployments {
            let report = &self.reported(d)?.checkpoints;
            match self.spec.vertices[d.task.vertex as usize].kind {
                VertexKind::Source => {
                    for (partition, end) in &report.ended_at {
                        let slot = &mut ends[*partition as usize];
                        *slot = Some(slot.map_or(*end, |e| e.min(*end)));
                    }
                }
                VertexKind::Sink if !(report.input_ended && report.pending == 0 && report.ack_pending == 0) => {
                    return None;
                }
                _ => {}
            }
        }
        ends.into_iter().collect()
    }
}
