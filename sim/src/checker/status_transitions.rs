//! `status-transitions`: the job status moves only along the documented lifecycle (README, "How it works"), and every
//! move has its reason in the trace.
//!
//! The model, written from the README's description of attempts, failover, settling and pausing:
//! - CREATED → SCHEDULED (deploy) or PAUSED (paused before the first deploy);
//! - SCHEDULED, RUNNING → RUNNING, RESTARTING, FAILING, FINISHED, PAUSING;
//! - PAUSING → PAUSED, RESTARTING (resumed before it completed), FAILING, FINISHED;
//! - PAUSED → SCHEDULED (resumed: a new attempt); RESTARTING → SCHEDULED, or PAUSED (paused during a failover);
//! - FAILING → FAILED, or FINISHED (a settled batch job); terminal statuses are never left.
//!
//! And the reasons: PAUSING and PAUSED only while a pause is desired (taken after the last resume); RESTARTING only
//! after a scheduled restart, a rescale or a resume since the previous status; FAILING only after a refused restart.
//!
//! And the pause's first step (README, "Lifecycle": PAUSING; the source vertex is scaled to 0): entering PAUSING, the
//! coordinator scales the source vertex from its replicas to 0 (`replicas-changed`, cause `pause`) before the status
//! moves on, unless the source has no replica; a `pause` rescale happens only then, and always changes something.
//!
//! And its last step (README, "Lifecycle": PAUSED scales every vertex to 0): a pause that completes (PAUSING →
//! PAUSED) has first scaled every map and sink vertex from its replicas (as configured, or as the autoscaler last
//! set them) to 0 (`replicas-changed`, cause `paused`); a `paused` rescale happens only on the way to PAUSED.

use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, JobStatus, ReplicaCause, VertexKind};
use std::collections::BTreeSet;

pub(crate) const NAME: &str = "status-transitions";

/// Whether the lifecycle allows `from` → `to`.
fn legal(from: JobStatus, to: JobStatus) -> bool {
    use JobStatus::*;
    matches!(
        (from, to),
        (Created, Scheduled | Paused)
            | (Scheduled | Running, Running | Restarting | Failing | Finished | Pausing)
            | (Pausing, Paused | Restarting | Failing | Finished)
            | (Paused, Scheduled)
            | (Restarting, Scheduled | Paused)
            | (Failing, Failed | Finished)
    )
}

#[derive(Debug, Default)]
pub struct StatusTransitions {
    status: Option<JobStatus>,
    pause_desired: bool,
    /// Since the previous status change: a restart was scheduled, replicas changed, a resume was taken, a restart
    /// was refused.
    restart_scheduled: bool,
    rescaled: bool,
    resumed: bool,
    refused: bool,
    /// The source vertex's replicas (the autoscaler scales maps and sinks only), and since when the pause's scaling
    /// of the source to 0 is owed.
    source_replicas: u16,
    pause_scale_owed_since: Option<u64>,
    /// Every vertex's replicas (the autoscaler's latest, or as configured), and which vertices took their
    /// `paused` rescale to 0 since PAUSING was entered.
    replicas: Vec<(VertexKind, u16)>,
    paused_to_zero: BTreeSet<u16>,
    violations: Vec<Violation>,
}

impl StatusTransitions {
    pub fn new(setup: &Setup) -> StatusTransitions {
        let source = setup.scales.iter().find(|s| s.kind == VertexKind::Source);
        let replicas = setup.scales.iter().map(|s| (s.kind, s.replicas)).collect();
        StatusTransitions {
            source_replicas: source.map_or(0, |s| s.replicas),
            replicas,
            ..StatusTransitions::default()
        }
    }

    /// A `paused` rescale: only of a vertex still at its replicas, to 0, while PAUSING (the source's says how many of
    /// its replicas still ran, so at most its replicas).
    fn on_paused_scale(&mut self, vertex: u16, from: u16, to: u16, at_ms: u64) {
        let Some(&(kind, replicas)) = self.replicas.get(vertex as usize) else {
            return self.safety(at_ms, format!("a pause rescaled vertex {vertex}, which the job does not have"));
        };
        let from_ok = if kind == VertexKind::Source { from <= replicas } else { from == replicas };
        let pausing = self.status == Some(JobStatus::Pausing);
        let once = to != 0 || self.paused_to_zero.insert(vertex);
        if !pausing || to != 0 || !from_ok || !once {
            let detail = format!(
                "the completed pause rescaled vertex {vertex} from {from} to {to}{}; it scales each vertex from \
                 its replicas ({replicas}) to 0, once, on the way from PAUSING to PAUSED",
                if pausing { "" } else { " while not PAUSING" }
            );
            self.safety(at_ms, detail);
        }
    }

    /// PAUSING → PAUSED: every map and sink vertex with replicas was scaled to 0.
    fn check_paused_scale(&mut self, at_ms: u64) {
        let missing: Vec<String> = (self.replicas.iter().enumerate())
            .filter(|(v, (kind, n))| {
                *kind != VertexKind::Source && *n > 0 && !self.paused_to_zero.contains(&(*v as u16))
            })
            .map(|(v, (_, n))| format!("vertex {v} ({n} replicas)"))
            .collect();
        if !missing.is_empty() {
            let detail = format!(
                "PAUSING → PAUSED without scaling {} to 0 (replicas-changed, cause paused)",
                missing.join(", ")
            );
            self.safety(at_ms, detail);
        }
    }

    fn safety(&mut self, at_ms: u64, detail: String) {
        self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
    }

    /// The source was not scaled to 0 while PAUSING was entered (checked when the status moves on, or at the end).
    fn check_pause_scale(&mut self, at_ms: u64) {
        if let Some(since) = self.pause_scale_owed_since.take() {
            let detail = format!(
                "PAUSING was entered at {since} ms, but the source vertex was not scaled from its replicas ({}) to \
                 0 (replicas-changed, cause pause) before the status moved on",
                self.source_replicas
            );
            self.safety(at_ms, detail);
        }
    }

    fn on_pause_scale(&mut self, vertex: u16, from: u16, to: u16, at_ms: u64) {
        let owed = self.pause_scale_owed_since.take().is_some();
        let expected = (0, self.source_replicas, 0);
        if !owed || (vertex, from, to) != expected {
            let detail = format!(
                "a pause rescaled vertex {vertex} from {from} to {to}{}; entering PAUSING scales the source (vertex \
                 0) from its replicas ({}) to 0, once",
                if owed { "" } else { " outside entering PAUSING" },
                self.source_replicas
            );
            self.safety(at_ms, detail);
        }
    }

    fn on_status(&mut self, from: JobStatus, to: JobStatus, at_ms: u64) {
        let known = self.status.unwrap_or(JobStatus::Created);
        let mut problems = Vec::new();
        if from != known {
            problems.push(format!("status changed from {from}, but it was {known}"));
        }
        if !legal(from, to) {
            problems.push(format!("{from} → {to} is not a transition of the lifecycle"));
        }
        let reason = match to {
            JobStatus::Pausing | JobStatus::Paused if !self.pause_desired => Some("no pause is desired"),
            JobStatus::Restarting if !(self.restart_scheduled || self.rescaled || self.resumed) => {
                Some("no restart was scheduled, nothing was rescaled and nothing resumed")
            }
            JobStatus::Failing if !self.refused => Some("no restart was refused"),
            _ => None,
        };
        if let Some(why) = reason {
            problems.push(format!("{from} → {to}, but {why}"));
        }
        for detail in problems {
            self.safety(at_ms, detail);
        }
        self.check_pause_scale(at_ms);
        if (from, to) == (JobStatus::Pausing, JobStatus::Paused) {
            self.check_paused_scale(at_ms);
        }
        if to == JobStatus::Pausing || from == JobStatus::Pausing {
            self.paused_to_zero.clear();
        }
        if to == JobStatus::Pausing && self.source_replicas > 0 {
            self.pause_scale_owed_since = Some(at_ms);
        }
        self.status = Some(to);
        (self.restart_scheduled, self.rescaled, self.resumed, self.refused) = (false, false, false, false);
    }
}

impl Checker for StatusTransitions {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let TraceEvent::Engine(event) = &entry.event else { return };
        match event {
            Event::StatusChanged { from, to, .. } => self.on_status(*from, *to, entry.at_ms()),
            Event::PauseRequested => self.pause_desired = true,
            Event::ResumeRequested => {
                self.pause_desired = false;
                self.resumed = true;
            }
            Event::RestartScheduled { .. } => self.restart_scheduled = true,
            Event::RestartRefused { .. } => self.refused = true,
            Event::ReplicasChanged { vertex, from, to, cause } => {
                match cause {
                    ReplicaCause::Pause => self.on_pause_scale(*vertex, *from, *to, entry.at_ms()),
                    ReplicaCause::Paused => self.on_paused_scale(*vertex, *from, *to, entry.at_ms()),
                    ReplicaCause::Autoscaler { .. } => {
                        if let Some(r) = self.replicas.get_mut(*vertex as usize) {
                            r.1 = *to;
                        }
                    }
                }
                self.rescaled = true;
            }
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::engine(&[
            EventKind::StatusChanged,
            EventKind::PauseRequested,
            EventKind::ResumeRequested,
            EventKind::RestartScheduled,
            EventKind::RestartRefused,
            EventKind::ReplicasChanged,
        ])
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_pause_scale(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use JobStatus::*;

    fn check(trace: &[TraceEntry]) -> Vec<Violation> {
        run(&mut StatusTransitions::new(&setup(vec![1])), trace, 10_000)
    }

    #[test]
    fn passes_along_the_lifecycle_with_reasons() {
        let scheduled = at(5, "coordinator", Event::RestartScheduled { attempt: 1, delay_ms: 0 });
        let trace = vec![
            status(1, Created, Scheduled),
            status(2, Scheduled, Running),
            scheduled,
            status(6, Running, Restarting),
            status(7, Restarting, Scheduled),
            at(8, "coordinator", Event::PauseRequested),
            status(9, Scheduled, Pausing),
            status(10, Pausing, Paused),
            at(11, "coordinator", Event::ResumeRequested),
            status(12, Paused, Scheduled),
            status(13, Scheduled, Running),
            at(14, "coordinator", Event::RestartRefused { attempt: 2, cause: "none".into() }),
            status(15, Running, Failing),
            status(16, Failing, Finished),
        ];
        assert!(check(&trace).is_empty(), "{:?}", check(&trace));
    }

    #[test]
    fn fails_on_a_skipped_pausing_a_pause_nobody_asked_for_and_a_failing_without_refusal() {
        let skip = vec![status(1, Created, Scheduled), status(2, Scheduled, Running), status(3, Running, Paused)];
        let v = check(&skip);
        assert!(v.iter().any(|v| v.detail.contains("not a transition")), "{v:?}");
        assert!(v.iter().any(|v| v.detail.contains("no pause is desired")), "{v:?}");
        let failing = vec![status(1, Created, Scheduled), status(2, Scheduled, Failing)];
        assert_eq!(check(&failing).len(), 1);
        let restart = vec![status(1, Created, Scheduled), status(2, Scheduled, Restarting)];
        assert_eq!(check(&restart).len(), 1);
        let left = vec![status(1, Created, Scheduled), status(2, Scheduled, Finished), status(3, Finished, Running)];
        assert_eq!(check(&left).len(), 1, "a terminal status is never left");
    }

    #[test]
    fn entering_pausing_scales_the_source_to_zero_once() {
        let mut s = setup(vec![1]);
        s.scales = vec![super::super::Scale { kind: VertexKind::Source, min: 2, max: 2, replicas: 2 }];
        let pause_scale = |ms: u64, from: u16, to: u16| {
            at(ms, "coordinator", Event::ReplicasChanged { vertex: 0, from, to, cause: ReplicaCause::Pause })
        };
        let base = vec![
            status(1, Created, Scheduled),
            status(2, Scheduled, Running),
            at(3, "coordinator", Event::PauseRequested),
            status(4, Running, Pausing),
        ];
        let check = |tail: Vec<TraceEntry>| run(&mut StatusTransitions::new(&s), &[base.clone(), tail].concat(), 100);
        assert!(check(vec![pause_scale(4, 2, 0), status(9, Pausing, Paused)]).is_empty());
        let v = check(vec![status(9, Pausing, Paused)]);
        assert!(v.len() == 1 && v[0].detail.contains("not scaled from its replicas (2) to 0"), "{v:?}");
        assert_eq!(check(vec![]).len(), 1, "owed at the end of the run");
        let v = check(vec![pause_scale(4, 2, 1), status(9, Pausing, Paused)]);
        assert!(v.len() == 1 && v[0].detail.contains("from 2 to 1"), "{v:?}");
        let v = check(vec![pause_scale(4, 2, 0), pause_scale(5, 0, 0)]);
        assert!(v.len() == 1 && v[0].detail.contains("outside entering PAUSING"), "{v:?}");
        let mut none = s.clone();
        none.scales[0].replicas = 0;
        let trace = [base.clone(), vec![status(9, Pausing, Paused)]].concat();
        assert!(run(&mut StatusTransitions::new(&none), &trace, 100).is_empty(), "a source with no replica");
    }

    #[test]
    fn a_completed_pause_scales_every_map_and_sink_to_zero() {
        let mut s = setup(vec![1]);
        let scale = |kind, replicas| super::super::Scale { kind, min: 1, max: 4, replicas };
        s.scales = vec![scale(VertexKind::Source, 0), scale(VertexKind::Map, 2), scale(VertexKind::Sink, 1)];
        let rescale = |ms: u64, vertex: u16, from: u16, to: u16, cause| {
            at(ms, "coordinator", Event::ReplicasChanged { vertex, from, to, cause })
        };
        let autoscaled = rescale(3, 1, 2, 3, ReplicaCause::Autoscaler { backlog: 9 });
        let base = vec![
            status(1, Created, Scheduled),
            status(2, Scheduled, Running),
            autoscaled,
            status(4, Running, Restarting),
            status(5, Restarting, Scheduled),
            status(6, Scheduled, Running),
            at(7, "coordinator", Event::PauseRequested),
            status(8, Running, Pausing),
        ];
        let check = |tail: Vec<TraceEntry>| run(&mut StatusTransitions::new(&s), &[base.clone(), tail].concat(), 100);
        let paused = |v, from| rescale(9, v, from, 0, ReplicaCause::Paused);
        let both = vec![paused(1, 3), paused(2, 1), status(10, Pausing, Paused)];
        assert!(check(both).is_empty(), "the map from the autoscaler's 3, the sink from its 1");
        let v = check(vec![paused(2, 1), status(10, Pausing, Paused)]);
        assert!(v.len() == 1 && v[0].detail.contains("without scaling vertex 1 (3 replicas) to 0"), "{v:?}");
        let v = check(vec![paused(1, 2), paused(2, 1), status(10, Pausing, Paused)]);
        assert!(v.len() == 1 && v[0].detail.contains("rescaled vertex 1 from 2 to 0"), "{v:?}");
        let resumed = vec![at(9, "coordinator", Event::ResumeRequested), status(10, Pausing, Restarting), paused(1, 3)];
        let v = check(resumed);
        assert!(v.len() == 1 && v[0].detail.contains("while not PAUSING"), "{v:?}");
    }
}
