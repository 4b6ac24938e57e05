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

use super::{Checker, End, FailureClass, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, JobStatus, ReplicaCause, VertexKind};

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

#[derive(Default)]
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
    violations: Vec<Violation>,
}

impl StatusTransitions {
    pub fn new(setup: &Setup) -> StatusTransitions {
        let source = setup.scales.iter().find(|s| s.kind == VertexKind::Source);
        StatusTransitions { source_replicas: source.map_or(0, |s| s.replicas), ..StatusTransitions::default() }
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
                if *cause == ReplicaCause::Pause {
                    self.on_pause_scale(*vertex, *from, *to, entry.at_ms());
                }
                self.rescaled = true;
            }
            _ => {}
        }
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
}
