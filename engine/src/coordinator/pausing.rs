//! The coordinator's side of the lifecycle: pausing (sources to 0, drain check, PAUSED), resuming, and the
//! autoscaler (the decisions are the lifecycle controller's, in `lifecycle.rs`).

use super::{Coordinator, Phase, Then};
use crate::coverage::Point;
use crate::event::{Event, ReplicaCause};
use crate::job::VertexKind;
use crate::lifecycle::PauseStep;
use crate::net::{Ctrl, Deployment, ExecState, TaskControl};
use crate::status::JobStatus;
use std::sync::Arc;

impl Coordinator {
    /// One tick of a pause: sources to their pause replicas, then the drain check, then PAUSED.
    pub(super) async fn drive_pause(&mut self, deployments: &[Arc<Deployment>]) {
        let now = self.now_ms();
        let sources: Vec<&Arc<Deployment>> = deployments
            .iter()
            .filter(|d| self.spec.vertices[d.task.vertex as usize].kind == VertexKind::Source)
            .collect();
        if self.status.current() != JobStatus::Pausing {
            self.set_status(JobStatus::Pausing, "pause requested");
            if let Some(cc) = self.checkpoints.as_mut() {
                cc.abandon(); // a checkpoint in flight is given up; none is triggered while pausing
            }
            for (v, vertex) in self.spec.vertices.iter().enumerate().filter(|(_, x)| x.kind == VertexKind::Source) {
                let from = self.replicas[v];
                let to = self.lifecycle.paused_source_replicas(vertex.scale_min, vertex.scale_max);
                if to != from {
                    let cause = ReplicaCause::Pause;
                    self.tracer.emit(Event::ReplicasChanged { vertex: v as u16, from, to, cause });
                }
            }
        }
        // The source vertex's replicas while pausing: 0, unless the replica computation says otherwise.
        let source_vertex = &self.spec.vertices[0];
        let target = self.lifecycle.paused_source_replicas(source_vertex.scale_min, source_vertex.scale_max);
        let mut running: u16 = 0;
        for d in &sources {
            // A source not reported yet may be running (its worker's heartbeats may be late): only a report that it
            // stopped lets the pause count it out.
            if self.reported(d).is_none_or(|r| r.state == ExecState::Running) {
                running += 1;
                if target == 0 {
                    let control = Ctrl::ToTasks { attempt: self.attempt, control: TaskControl::Pause };
                    self.ctrl.send(d.worker_of(d.task), control).await;
                }
            }
        }
        let (mut quiet, mut pending, mut ack_pending) = (true, 0, 0);
        for d in deployments.iter().filter(|d| self.spec.vertices[d.task.vertex as usize].kind != VertexKind::Source) {
            match self.reported(d) {
                Some(r) if r.state == ExecState::Running => {
                    quiet &= r.checkpoints.inputs_quiet;
                    pending += r.checkpoints.pending;
                    ack_pending += r.checkpoints.ack_pending;
                }
                Some(r) if r.state == ExecState::Finished => self.tracer.reach(Point::PauseBesideFinishedExecution),
                _ => quiet = false,
            }
        }
        if running == 0 && !quiet && pending == 0 && ack_pending == 0 {
            self.tracer.reach(Point::DrainWaitsForMarker);
        }
        let (step, changed) = self.lifecycle.step(now, running, quiet, pending, ack_pending);
        if changed && running == 0 {
            let drained = matches!(step, PauseStep::Pause { drained: true });
            self.tracer.emit(Event::DrainChecked { sources_running: running, pending, ack_pending, drained });
        }
        if let PauseStep::Pause { drained } = step {
            let cause = if drained {
                "drained".to_string()
            } else {
                format!("grace period of {} ms passed before the buffers drained", self.lifecycle.grace_ms)
            };
            for (v, from) in self.replicas.clone().into_iter().enumerate() {
                let from = if v == 0 { running } else { from };
                if from != 0 {
                    let cause = ReplicaCause::Paused;
                    self.tracer.emit(Event::ReplicasChanged { vertex: v as u16, from, to: 0, cause });
                }
            }
            let below = self.next_attempt();
            self.tracer.emit(Event::CancelRequested { below_attempt: below });
            let deadline_ms = now + self.spec.timings.cancel_timeout_ms;
            self.phase = Phase::Canceling { below, deadline_ms, then: Then::Pause { drained, cause }, fenced: true };
        }
    }

    pub(super) fn emit_drained_flag(&self, changed: bool) {
        if changed {
            self.tracer.emit(Event::DrainedFlag { value: self.lifecycle.drained_on_pause });
        }
    }

    /// Reports PAUSED with `drained_on_pause = drained`; everything stays at 0 replicas until a resume.
    pub(super) fn enter_paused(&mut self, drained: bool, cause: &str) {
        let before = self.lifecycle.drained_on_pause;
        self.lifecycle.paused(drained);
        self.emit_drained_flag(before != drained);
        self.set_status(JobStatus::Paused, cause);
        self.phase = Phase::Paused;
    }

    /// Resume: `drained_on_pause` is cleared and a new attempt restores from where the job stopped.
    pub(super) fn resume(&mut self) {
        let changed = self.lifecycle.resumed();
        self.emit_drained_flag(changed);
        self.begin_attempt();
    }

    /// The autoscaler: from each vertex's backlog, the replicas within [scale.min, scale.max]. It never acts while a
    /// pause is desired. A change that holds for two periods rescales the job (a new attempt, fenced and restored).
    pub(super) async fn autoscale(&mut self, deployments: &[Arc<Deployment>]) {
        let now = self.now_ms();
        if !self.spec.autoscaled() || self.lifecycle.desired_paused || now < self.next_autoscale_ms {
            return;
        }
        self.next_autoscale_ms = now + self.spec.timings.autoscale_period_ms;
        let per_replica = (self.spec.timings.stream_window as u64 / 2).max(1);
        let mut wish = self.replicas.clone();
        let mut backlogs = vec![0u64; self.spec.vertices.len()];
        for d in deployments {
            if let Some(r) = self.reported(d) {
                backlogs[d.task.vertex as usize] += r.checkpoints.pending + r.checkpoints.ack_pending;
            }
        }
        self.tracer.emit(Event::AutoscaleSampled { backlogs: backlogs.clone() });
        for (v, vertex) in self.spec.vertices.iter().enumerate() {
            if vertex.kind == VertexKind::Source || vertex.scale_min == vertex.scale_max {
                continue; // sources have no backlog signal here: they run their current replicas
            }
            let desired = backlogs[v].div_ceil(per_replica).min(u16::MAX as u64) as u16;
            wish[v] = desired.max(1).clamp(vertex.scale_min, vertex.scale_max);
        }
        let held = match &self.autoscale_wish {
            Some((w, n)) if *w == wish => n + 1,
            _ => 1,
        };
        self.autoscale_wish = Some((wish.clone(), held));
        if wish == self.replicas || held < 2 {
            return;
        }
        for (v, (from, to)) in self.replicas.iter().zip(&wish).enumerate() {
            if from != to {
                let cause = ReplicaCause::Autoscaler { backlog: backlogs[v] };
                self.tracer.emit(Event::ReplicasChanged { vertex: v as u16, from: *from, to: *to, cause });
            }
        }
        if self.checkpoints.as_ref().is_some_and(|c| c.pending.is_some()) {
            self.tracer.reach(Point::RescaleWhileCheckpointPending);
        }
        self.replicas = wish;
        self.autoscale_wish = None;
        let below = self.next_attempt();
        self.tracer.emit(Event::CancelRequested { below_attempt: below });
        self.set_status(JobStatus::Restarting, "rescale");
        let deadline_ms = now + self.spec.timings.cancel_timeout_ms;
        self.phase = Phase::Canceling { below, deadline_ms, then: Then::Restart { delay_ms: 0 }, fenced: true };
    }
}
