//! `autoscaler-follows-rule`: the autoscaler decides as the README says, from the backlogs it sampled.
//!
//! The model (README, "Autoscaler"): the autoscaler samples every vertex's backlog once per
//! `bounds.autoscale_period_ms`, never while a pause is desired; for each map or sink whose `scale.min < scale.max` it
//! wishes `ceil(backlog / ``bounds.records_per_replica``)` replicas (at least one) clamped into `[min, max]`, every other
//! vertex keeps its replicas; a wish that differs from the replicas and is the same in two samples in a row rescales
//! exactly the vertices it changes, at once, and the count starts over. No other rescale happens, replicas stay
//! within their bounds, and a job whose vertices all have `min = max` is never sampled. The backlog is the engine's
//! sample (what it saw); the decision is judged here.
//!
//! And the autoscaler must act: a job with some `scale.min < scale.max` that the coordinator reports RUNNING, with no
//! pause desired, is sampled at the latest `bounds.sample_slack_ms` after the later of entering RUNNING, the resume, and the
//! last sample plus the period.

use super::kinds::after_ms;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, JobStatus, ReplicaCause, VertexKind};
use std::collections::BTreeMap;

pub(crate) const NAME: &str = "autoscaler-follows-rule";
/// The coordinator's clock is read in whole ms.
const CLOCK_GRAIN_MS: u64 = 1;

/// A vertex as the scenario scales it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub kind: VertexKind,
    pub min: u16,
    pub max: u16,
    /// Replicas at the start.
    pub replicas: u16,
}

#[derive(Debug)]
pub struct AutoscalerFollowsRule {
    /// The time bounds, from the scenario's timings.
    bounds: super::bounds::Bounds,
    scales: Vec<Scale>,
    /// Some vertex has `scale.min < scale.max` (fixed by the scenario).
    may_scale: bool,
    replicas: Vec<u16>,
    pause_desired: bool,
    last_sample_ms: Option<u64>,
    /// Since when the coordinator reports RUNNING (`None`: another status), and the last resume request.
    running_since_ms: Option<u64>,
    resumed_ms: u64,
    /// A missed sample is reported once per RUNNING stretch.
    missed_flagged: bool,
    /// The last wish and how many samples in a row it held.
    wish: Option<(Vec<u16>, u32)>,
    /// A rescale due at this instant: (when, the replicas it sets); the changes seen so far, per vertex.
    due: Option<(u64, Vec<u16>)>,
    seen: BTreeMap<u16, u16>,
    violations: Vec<Violation>,
}

impl AutoscalerFollowsRule {
    pub fn new(setup: &Setup) -> AutoscalerFollowsRule {
        AutoscalerFollowsRule {
            bounds: setup.bounds,
            scales: setup.scales.clone(),
            may_scale: setup.scales.iter().any(|s| s.min < s.max),
            replicas: setup.scales.iter().map(|s| s.replicas).collect(),
            pause_desired: false,
            last_sample_ms: None,
            running_since_ms: None,
            resumed_ms: 0,
            missed_flagged: false,
            wish: None,
            due: None,
            seen: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, at_ms: u64, detail: String) {
        self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
    }

    /// By when the next sample is due, if one is: the job is RUNNING, no pause is desired, and something may scale.
    fn sample_due_ms(&self) -> Option<u64> {
        let since = self.running_since_ms?;
        if self.pause_desired || !self.may_scale {
            return None;
        }
        let after_last = self.last_sample_ms.map_or(0, |t| t + self.bounds.autoscale_period_ms);
        Some(since.max(self.resumed_ms).max(after_last) + self.bounds.sample_slack_ms)
    }

    /// A sample that was due and did not come (once per RUNNING stretch).
    fn check_missed(&mut self, now_ms: u64) {
        if self.missed_flagged {
            return;
        }
        let Some(due) = self.sample_due_ms().filter(|due| now_ms > *due) else { return };
        self.missed_flagged = true;
        let last = self.last_sample_ms.map_or("never".to_string(), |t| format!("last at {t} ms"));
        let autoscale_period_ms = self.bounds.autoscale_period_ms;
        let detail = format!(
            "the job is RUNNING and some vertex may scale, but the autoscaler did not sample by {due} ms ({last}, \
             period {autoscale_period_ms} ms)"
        );
        self.violation(due, detail);
    }

    /// Once time moved past a due rescale: every change it called for must have been made.
    fn settle_due(&mut self, now_ms: u64) {
        let Some((t, wish)) = self.due.take_if(|(t, _)| now_ms > *t) else { return };
        let changed: BTreeMap<u16, u16> = std::mem::take(&mut self.seen);
        let expected: BTreeMap<u16, u16> =
            (0..wish.len()).filter(|v| wish[*v] != self.replicas[*v]).map(|v| (v as u16, wish[v])).collect();
        if changed != expected {
            let detail = format!(
                "the wish {wish:?} held two samples from replicas {:?}: expected changes {expected:?}, made {changed:?}",
                self.replicas
            );
            self.violation(t, detail);
        }
        self.replicas = wish;
    }

    fn on_sample(&mut self, backlogs: &[u64], at_ms: u64) {
        if !self.may_scale {
            self.violation(at_ms, "the autoscaler sampled a job whose replicas are all fixed (min = max)".into());
        }
        if self.pause_desired {
            self.violation(at_ms, "the autoscaler sampled while a pause is desired".into());
        }
        // The coordinator reads its clock in whole ms: a period may look 1 ms short on the run's clock.
        if let Some(last) =
            self.last_sample_ms.filter(|last| at_ms + CLOCK_GRAIN_MS < last + self.bounds.autoscale_period_ms)
        {
            let autoscale_period_ms = self.bounds.autoscale_period_ms;
            let detail = format!(
                "the autoscaler sampled {} ms after its last sample, period {autoscale_period_ms} ms",
                at_ms - last
            );
            self.violation(at_ms, detail);
        }
        self.last_sample_ms = Some(at_ms);
        let wish: Vec<u16> = self
            .scales
            .iter()
            .zip(&self.replicas)
            .zip(backlogs.iter().chain(std::iter::repeat(&0)))
            .map(|((s, current), backlog)| {
                if s.kind == VertexKind::Source || s.min >= s.max {
                    return *current;
                }
                let wanted = backlog.div_ceil(self.bounds.records_per_replica).clamp(1, u16::MAX as u64) as u16;
                wanted.clamp(s.min, s.max)
            })
            .collect();
        let held = match &self.wish {
            Some((w, n)) if *w == wish => n + 1,
            _ => 1,
        };
        if wish != self.replicas && held >= 2 {
            self.due = Some((at_ms, wish));
            self.wish = None;
        } else {
            self.wish = Some((wish, held));
        }
    }

    fn on_rescale(&mut self, vertex: u16, from: u16, to: u16, at_ms: u64) {
        let v = vertex as usize;
        let Some(scale) = self.scales.get(v).copied() else { return };
        if !(scale.min..=scale.max).contains(&to) {
            self.violation(at_ms, format!("vertex {vertex} rescaled to {to}, outside [{}, {}]", scale.min, scale.max));
        }
        match &self.due {
            Some((t, _)) if *t == at_ms => {
                if from != self.replicas[v] {
                    let detail = format!("vertex {vertex} rescaled from {from}, but it runs {}", self.replicas[v]);
                    self.violation(at_ms, detail);
                }
                self.seen.insert(vertex, to);
            }
            _ => self.violation(at_ms, format!("vertex {vertex} rescaled {from} → {to}, but no wish held two samples")),
        }
    }
}

impl Checker for AutoscalerFollowsRule {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.settle_due(at_ms);
        self.check_missed(at_ms);
        let TraceEvent::Engine(event) = &entry.event else { return };
        match event {
            Event::PauseRequested => self.pause_desired = true,
            Event::ResumeRequested => (self.pause_desired, self.resumed_ms) = (false, at_ms),
            Event::StatusChanged { to, .. } if &*entry.node == "coordinator" => {
                let running = *to == JobStatus::Running;
                if running != self.running_since_ms.is_some() {
                    self.running_since_ms = running.then_some(at_ms);
                    self.missed_flagged = false;
                }
            }
            Event::AutoscaleSampled { backlogs } => self.on_sample(backlogs, at_ms),
            Event::ReplicasChanged { vertex, from, to, cause: ReplicaCause::Autoscaler { .. } } => {
                self.on_rescale(*vertex, *from, *to, at_ms)
            }
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::engine(&[
            EventKind::PauseRequested,
            EventKind::ResumeRequested,
            EventKind::StatusChanged,
            EventKind::AutoscaleSampled,
            EventKind::ReplicasChanged,
        ])
    }

    fn wake_at_us(&self) -> u64 {
        let missed = self.sample_due_ms().filter(|_| !self.missed_flagged);
        let settle = self.due.as_ref().map(|(t, _)| *t);
        missed.into_iter().chain(settle).min().map_or(u64::MAX, after_ms)
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_missed(end.end_ms);
        self.settle_due(end.end_ms.max(self.due.as_ref().map_or(0, |(t, _)| t + 1)));
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn scaled() -> Setup {
        let mut s = setup(vec![1]);
        let fixed = Scale { kind: VertexKind::Source, min: 1, max: 1, replicas: 1 };
        s.scales = vec![fixed, Scale { kind: VertexKind::Sink, min: 1, max: 3, replicas: 1 }];
        s
    }

    fn sample(ms: u64, backlog: u64) -> TraceEntry {
        at(ms, "coordinator", Event::AutoscaleSampled { backlogs: vec![0, backlog] })
    }

    fn rescale(ms: u64, from: u16, to: u16) -> TraceEntry {
        let cause = ReplicaCause::Autoscaler { backlog: 0 };
        at(ms, "coordinator", Event::ReplicasChanged { vertex: 1, from, to, cause })
    }

    fn check(trace: &[TraceEntry]) -> Vec<Violation> {
        run(&mut AutoscalerFollowsRule::new(&scaled()), trace, 60_000)
    }

    #[test]
    fn passes_when_a_wish_held_twice_rescales_at_once() {
        let trace = vec![sample(2_000, 40), sample(4_000, 40), rescale(4_000, 1, 3), sample(8_000, 0)];
        assert!(check(&trace).is_empty(), "{:?}", check(&trace));
    }

    #[test]
    fn fails_on_a_hasty_a_missing_and_an_uncalled_rescale() {
        let hasty = vec![sample(2_000, 40), rescale(2_000, 1, 3)];
        assert!(check(&hasty).iter().any(|v| v.detail.contains("no wish held")), "{:?}", check(&hasty));
        let missing = vec![sample(2_000, 40), sample(4_000, 40), sample(6_000, 40)];
        assert!(check(&missing).iter().any(|v| v.detail.contains("expected changes")), "{:?}", check(&missing));
        let wrong = vec![sample(2_000, 20), sample(4_000, 20), rescale(4_000, 1, 3)];
        assert!(check(&wrong).iter().any(|v| v.detail.contains("expected changes")), "ceil(20 / 16) is 2");
        let rushed = vec![sample(2_000, 0), sample(2_500, 0)];
        assert!(check(&rushed).iter().any(|v| v.detail.contains("period")));
        let paused = vec![at(1_000, "coordinator", Event::PauseRequested), sample(2_000, 0)];
        assert!(check(&paused).iter().any(|v| v.detail.contains("pause")));
        let mut fixed = scaled();
        fixed.scales[1].max = 1;
        let v = run(&mut AutoscalerFollowsRule::new(&fixed), &[sample(2_000, 0)], 10_000);
        assert!(v.iter().any(|v| v.detail.contains("all fixed")), "{v:?}");
    }

    #[test]
    fn fails_when_a_running_job_is_not_sampled_and_passes_when_it_is() {
        let running = status(1_000, JobStatus::Created, JobStatus::Running);
        let never = vec![running.clone()];
        let v = check(&never);
        assert!(v.iter().any(|v| v.detail.contains("did not sample by 2000 ms")), "{v:?}");
        let stopped = vec![running.clone(), sample(1_000, 0), sample(3_000, 0)];
        let v = run(&mut AutoscalerFollowsRule::new(&scaled()), &stopped, 7_000);
        assert!(v.iter().any(|v| v.detail.contains("by 6000 ms")), "{v:?}");
        let sampled = vec![running.clone(), sample(1_000, 0), sample(3_000, 0), sample(5_050, 0), sample(7_050, 0)];
        let v = run(&mut AutoscalerFollowsRule::new(&scaled()), &sampled, 9_000);
        assert!(v.is_empty(), "{v:?}");
        let paused = vec![running.clone(), sample(1_000, 0), at(1_500, "client", Event::PauseRequested)];
        assert!(check(&paused).is_empty(), "no sample is due while a pause is desired");
        let failed = vec![running, sample(1_000, 0), status(2_000, JobStatus::Running, JobStatus::Restarting)];
        assert!(check(&failed).is_empty(), "no sample is due outside RUNNING");
    }
}
