//! `checkpoint-schedule`: checkpoints are taken as `[job.checkpoint]` and the README say.
//!
//! The model, written from the README ("Checkpoints"), per attempt:
//! - no checkpoint without `[job.checkpoint]`; ids only grow; one checkpoint in flight at a time (a new attempt, or
//!   a pause, gives up the one in flight); none is triggered while pausing or paused;
//! - a periodic checkpoint comes no sooner than `interval_ms` after the attempt was deployed or the previous trigger;
//! - the final checkpoint only once every partition has sent its EOT in this attempt;
//! - a checkpoint completes only after every task of the attempt acknowledged it and checkpoint storage saved it,
//!   and its completion (or failure) is reported for the attempt that triggered it;
//! - it expires no sooner than `timeout_ms` after its trigger, and while the job runs it has an outcome (completed
//!   or failed) by then, give or take `bounds.outcome_slack_ms`.

use super::kinds::after_ms;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::faults::FailReason;
use sluice_engine::{CheckpointSpec, Event, EventKind, JobStatus, TaskId};
use std::collections::BTreeSet;

pub(crate) const NAME: &str = "checkpoint-schedule";

/// The checkpoint in flight.
#[derive(Debug)]
struct Pending {
    epoch: u64,
    /// The attempt that triggered it.
    attempt: u32,
    triggered_ms: u64,
    acked: BTreeSet<TaskId>,
    stored: bool,
    overdue_reported: bool,
}

#[derive(Debug)]
pub struct CheckpointSchedule {
    /// The time bounds, from the scenario's timings.
    bounds: super::bounds::Bounds,
    spec: Option<CheckpointSpec>,
    partitions: u32,
    status: JobStatus,
    attempt: u32,
    tasks: BTreeSet<TaskId>,
    last_trigger_ms: u64,
    last_epoch: u64,
    pending: Option<Pending>,
    /// Partitions whose EOT a source sent in the current attempt.
    ended: BTreeSet<u32>,
    violations: Vec<Violation>,
}

impl CheckpointSchedule {
    pub fn new(setup: &Setup) -> CheckpointSchedule {
        CheckpointSchedule {
            bounds: setup.bounds,
            spec: setup.checkpoint,
            partitions: setup.partitions,
            status: JobStatus::Created,
            attempt: 0,
            tasks: BTreeSet::new(),
            last_trigger_ms: 0,
            last_epoch: 0,
            pending: None,
            ended: BTreeSet::new(),
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, at_ms: u64, class: FailureClass, detail: String) {
        self.violations.push(Violation::new(NAME, at_ms, class, detail));
    }

    /// When the pending checkpoint, while the job runs, is overdue: its timeout plus the outcome's slack after its
    /// trigger; `None` with no checkpoint pending, one already reported, or a job not RUNNING.
    fn overdue_deadline_ms(&self) -> Option<u64> {
        let (Some(spec), JobStatus::Running) = (self.spec, self.status) else { return None };
        let p = self.pending.as_ref().filter(|p| !p.overdue_reported)?;
        Some(p.triggered_ms + spec.timeout_ms + self.bounds.outcome_slack_ms)
    }

    fn check_overdue(&mut self, now_ms: u64) {
        let Some(deadline) = self.overdue_deadline_ms() else { return };
        let (Some(spec), Some(p)) = (self.spec, self.pending.as_mut()) else { return };
        if now_ms > deadline {
            p.overdue_reported = true;
            let detail = format!(
                "checkpoint {} triggered at {} ms had neither completed nor failed {} ms later (timeout {} ms)",
                p.epoch,
                p.triggered_ms,
                now_ms - p.triggered_ms,
                spec.timeout_ms
            );
            self.violation(deadline, FailureClass::Liveness, detail);
        }
    }

    fn on_triggered(&mut self, epoch: u64, is_final: bool, at_ms: u64) {
        let Some(spec) = self.spec else {
            return self.violation(at_ms, FailureClass::Safety, format!("checkpoint {epoch} without [job.checkpoint]"));
        };
        let mut problems = Vec::new();
        if epoch <= self.last_epoch {
            problems.push(format!("checkpoint {epoch} triggered after checkpoint {}", self.last_epoch));
        }
        if let Some(p) = &self.pending {
            problems.push(format!("checkpoint {epoch} triggered while checkpoint {} is in flight", p.epoch));
        }
        if matches!(self.status, JobStatus::Pausing | JobStatus::Paused) {
            problems.push(format!("checkpoint {epoch} triggered while the job is {}", self.status));
        }
        if !is_final && at_ms + 1 < self.last_trigger_ms + spec.interval_ms {
            problems.push(format!(
                "checkpoint {epoch} triggered {} ms after the previous trigger or the deploy, interval {} ms",
                at_ms - self.last_trigger_ms,
                spec.interval_ms
            ));
        }
        if is_final && self.ended.len() < self.partitions as usize {
            problems.push(format!(
                "final checkpoint {epoch} triggered with {} of {} partitions ended",
                self.ended.len(),
                self.partitions
            ));
        }
        for detail in problems {
            self.violation(at_ms, FailureClass::Safety, detail);
        }
        self.last_epoch = self.last_epoch.max(epoch);
        self.last_trigger_ms = at_ms;
        self.pending = Some(Pending {
            epoch,
            attempt: self.attempt,
            triggered_ms: at_ms,
            acked: BTreeSet::new(),
            stored: false,
            overdue_reported: false,
        });
    }

    fn on_completed(&mut self, epoch: u64, attempt: u32, at_ms: u64) {
        let Some(p) = self.pending.take().filter(|p| p.epoch == epoch) else {
            let detail = format!("checkpoint {epoch} completed, but it is not the checkpoint in flight");
            return self.violation(at_ms, FailureClass::Safety, detail);
        };
        if p.attempt != attempt {
            let detail = format!(
                "checkpoint {epoch}, triggered by attempt {}, was reported completed for attempt {attempt}",
                p.attempt
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
        let missing: Vec<String> = self.tasks.difference(&p.acked).map(|t| t.to_string()).collect();
        if !missing.is_empty() {
            let detail = format!("checkpoint {epoch} completed without the acknowledgement of {}", missing.join(", "));
            self.violation(at_ms, FailureClass::Safety, detail);
        }
        if !p.stored {
            let detail = format!("checkpoint {epoch} completed, but checkpoint storage never saved it");
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }

    fn on_failed(&mut self, epoch: u64, reason: FailReason, at_ms: u64) {
        let Some(p) = self.pending.take().filter(|p| p.epoch == epoch) else {
            let detail = format!("checkpoint {epoch} failed, but it is not the checkpoint in flight");
            return self.violation(at_ms, FailureClass::Safety, detail);
        };
        let timeout_ms = self.spec.map_or(0, |s| s.timeout_ms);
        if reason == FailReason::Expired && at_ms < p.triggered_ms + timeout_ms {
            let detail = format!(
                "checkpoint {epoch} expired {} ms after its trigger, before its timeout of {timeout_ms} ms",
                at_ms - p.triggered_ms
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }
}

impl Checker for CheckpointSchedule {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.check_overdue(at_ms);
        let TraceEvent::Engine(event) = &entry.event else { return };
        match event {
            Event::AttemptDeployed { attempt, placement, .. } => {
                self.attempt = *attempt;
                self.tasks = placement.iter().map(|(t, _)| *t).collect();
                self.last_trigger_ms = at_ms;
                self.pending = None; // given up with the attempt it belonged to
                self.ended.clear();
            }
            Event::StatusChanged { to, .. } => {
                self.status = *to;
                if *to == JobStatus::Pausing {
                    self.pending = None; // given up by the pause
                }
            }
            Event::SourceEot { attempt, partition, .. } if *attempt == self.attempt => {
                self.ended.insert(*partition);
            }
            Event::CheckpointTriggered { attempt, epoch, is_final } if *attempt == self.attempt => {
                self.on_triggered(*epoch, *is_final, at_ms)
            }
            Event::CheckpointAcked { attempt, task, epoch } if *attempt == self.attempt => {
                if let Some(p) = self.pending.as_mut().filter(|p| p.epoch == *epoch) {
                    p.acked.insert(*task);
                }
            }
            Event::CheckpointStored { epoch, .. } => {
                if let Some(p) = self.pending.as_mut().filter(|p| p.epoch == *epoch) {
                    p.stored = true;
                }
            }
            Event::CheckpointCompleted { epoch, attempt, .. } => self.on_completed(*epoch, *attempt, at_ms),
            Event::CheckpointFailed { epoch, reason, .. } => self.on_failed(*epoch, *reason, at_ms),
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::engine(&[
            EventKind::AttemptDeployed,
            EventKind::StatusChanged,
            EventKind::SourceEot,
            EventKind::CheckpointTriggered,
            EventKind::CheckpointAcked,
            EventKind::CheckpointStored,
            EventKind::CheckpointCompleted,
            EventKind::CheckpointFailed,
        ])
    }

    fn wake_at_us(&self) -> u64 {
        self.overdue_deadline_ms().map_or(u64::MAX, after_ms)
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_overdue(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn spec() -> Setup {
        let mut s = setup(vec![10]);
        s.checkpoint = Some(CheckpointSpec { interval_ms: 1_000, timeout_ms: 500, tolerable_failures: 5 });
        s
    }

    fn task(v: u16) -> TaskId {
        TaskId { vertex: v, replica: 0 }
    }

    fn deployed(ms: u64) -> TraceEntry {
        let placement = vec![(task(0), 1), (task(1), 1)];
        at(ms, "coordinator", Event::AttemptDeployed { attempt: 1, start_offsets: vec![0], placement })
    }

    fn triggered(ms: u64, epoch: u64) -> TraceEntry {
        at(ms, "coordinator", Event::CheckpointTriggered { attempt: 1, epoch, is_final: false })
    }

    fn acked(ms: u64, v: u16, epoch: u64) -> TraceEntry {
        at(ms, "worker-1", Event::CheckpointAcked { attempt: 1, task: task(v), epoch })
    }

    fn stored(ms: u64, epoch: u64) -> TraceEntry {
        at(ms, "store", Event::CheckpointStored { attempt: 1, epoch, offsets: vec![0] })
    }

    fn completed(ms: u64, epoch: u64) -> TraceEntry {
        at(ms, "coordinator", Event::CheckpointCompleted { attempt: 1, epoch, is_final: false })
    }

    fn expired(ms: u64, epoch: u64) -> TraceEntry {
        let (reason, detail) = (FailReason::Expired, String::new());
        at(ms, "coordinator", Event::CheckpointFailed { attempt: 1, epoch, reason, detail, consecutive: 1 })
    }

    fn check(trace: &[TraceEntry]) -> Vec<Violation> {
        run(&mut CheckpointSchedule::new(&spec()), trace, 3_000)
    }

    #[test]
    fn passes_on_checkpoints_at_their_interval_acknowledged_and_saved() {
        let running = status(50, JobStatus::Scheduled, JobStatus::Running);
        let trace = vec![
            deployed(0),
            running,
            triggered(1_000, 1),
            acked(1_100, 0, 1),
            acked(1_120, 1, 1),
            stored(1_150, 1),
            completed(1_160, 1),
            triggered(2_000, 2),
            expired(2_501, 2),
        ];
        assert!(check(&trace).is_empty(), "{:?}", check(&trace));
    }

    #[test]
    fn fails_on_early_triggers_missing_acks_early_expiry_and_a_stuck_checkpoint() {
        let early = vec![deployed(0), triggered(400, 1)];
        assert!(check(&early).iter().any(|v| v.detail.contains("interval 1000 ms")));
        let unacked = vec![deployed(0), triggered(1_000, 1), acked(1_100, 0, 1), stored(1_150, 1), completed(1_160, 1)];
        assert!(check(&unacked).iter().any(|v| v.detail.contains("acknowledgement of v1#0")));
        let hasty = vec![deployed(0), triggered(1_000, 1), expired(1_200, 1)];
        assert!(check(&hasty).iter().any(|v| v.detail.contains("before its timeout")));
        let running = status(50, JobStatus::Scheduled, JobStatus::Running);
        let stuck = vec![deployed(0), running, triggered(1_000, 1)];
        let v = check(&stuck);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].class, FailureClass::Liveness);
        let two = vec![deployed(0), triggered(1_000, 1), triggered(2_000, 2)];
        assert!(check(&two).iter().any(|v| v.detail.contains("in flight")));
        let final_early = vec![
            deployed(0),
            at(900, "coordinator", Event::CheckpointTriggered { attempt: 1, epoch: 1, is_final: true }),
        ];
        assert!(check(&final_early).iter().any(|v| v.detail.contains("0 of 1 partitions ended")));
    }

    #[test]
    fn a_completion_reported_for_another_attempt_than_the_trigger_is_flagged() {
        let saved = vec![deployed(0), triggered(1_000, 1), acked(1_100, 0, 1), acked(1_120, 1, 1), stored(1_150, 1)];
        let for_attempt_2 =
            at(1_160, "coordinator", Event::CheckpointCompleted { attempt: 2, epoch: 1, is_final: false });
        let v = check(&[saved.clone(), vec![for_attempt_2]].concat());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("triggered by attempt 1, was reported completed for attempt 2"),
            "{}",
            v[0].detail
        );
        assert!(check(&[saved, vec![completed(1_160, 1)]].concat()).is_empty());
    }
}
