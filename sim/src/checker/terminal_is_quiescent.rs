//! `terminal-is-quiescent` (A2): once a terminal status is reported at t, from t + `quiescent_within_ms` on no worker
//! holds a live (unfenced) execution of the job, and the ledger no longer changes: checked at that instant, and at
//! every execution that starts (unfenced) or record that commits after it.

use super::executions::Executions;
use super::kinds::after_ms;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, JobStatus};

pub(crate) const NAME: &str = "terminal-is-quiescent";

#[derive(Debug)]
pub struct TerminalIsQuiescent {
    bound_ms: u64,
    executions: Executions,
    terminal: Option<(u64, JobStatus)>,
    checked: bool,
    late_start_reported: bool,
    late_commits: u64,
    first_late_ms: u64,
    violations: Vec<Violation>,
}

impl TerminalIsQuiescent {
    pub fn new(setup: &Setup) -> TerminalIsQuiescent {
        TerminalIsQuiescent {
            bound_ms: setup.quiescent_within_ms,
            executions: Executions::default(),
            terminal: None,
            checked: false,
            late_start_reported: false,
            late_commits: 0,
            first_late_ms: 0,
            violations: Vec::new(),
        }
    }

    fn check_live(&mut self) {
        let Some((t, status)) = self.terminal else { return };
        self.checked = true;
        let at_ms = t + self.bound_ms;
        let live: Vec<String> = self
            .executions
            .live()
            .map(|(k, since)| format!("{} on {} (attempt {}, since {since} ms)", k.task, k.node, k.attempt))
            .collect();
        if !live.is_empty() {
            let detail = format!(
                "{status} at {t} ms, but {} ms later still live and unfenced: {}",
                self.bound_ms,
                live.join(", ")
            );
            self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
        }
    }
}

impl Checker for TerminalIsQuiescent {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let now = entry.at_ms();
        if let Some((t, _)) = self.terminal {
            if !self.checked && now > t + self.bound_ms {
                self.check_live();
            }
        }
        let started = self.executions.apply(entry);
        if let (Some(key), Some((t, status)), true) = (started, self.terminal, self.checked) {
            if self.executions.live().any(|(k, _)| *k == key) && !self.late_start_reported {
                self.late_start_reported = true;
                let detail = format!(
                    "{status} at {t} ms, but {} started on {} (attempt {}) at {now} ms, live and unfenced",
                    key.task, key.node, key.attempt
                );
                self.violations.push(Violation::new(NAME, now, FailureClass::Safety, detail));
            }
        }
        match &entry.event {
            TraceEvent::Engine(Event::StatusChanged { to, .. }) if super::terminal(*to) && self.terminal.is_none() => {
                self.terminal = Some((now, *to));
            }
            TraceEvent::Engine(Event::Committed { .. }) => {
                if let Some((t, _)) = self.terminal.filter(|(t, _)| now > t + self.bound_ms) {
                    let _ = t;
                    if self.late_commits == 0 {
                        self.first_late_ms = now;
                    }
                    self.late_commits += 1;
                }
            }
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Executions::KINDS.and(Kinds::engine(&[EventKind::StatusChanged, EventKind::Committed]))
    }

    fn wake_at_us(&self) -> u64 {
        self.terminal.filter(|_| !self.checked).map_or(u64::MAX, |(t, _)| after_ms(t + self.bound_ms))
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        if let Some((t, _)) = self.terminal {
            if !self.checked && end.end_ms >= t + self.bound_ms {
                self.check_live();
            }
            if self.late_commits > 0 {
                let detail = format!(
                    "{} record(s) committed more than {} ms after the terminal status at {t} ms (first at {} ms)",
                    self.late_commits, self.bound_ms, self.first_late_ms
                );
                self.violations.push(Violation::new(NAME, self.first_late_ms, FailureClass::Safety, detail));
            }
        }
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::{ExecOutcome, TaskId};

    fn started(ms: u64, node: &str, attempt: u32) -> TraceEntry {
        at(ms, node, Event::ExecutionStarted { task: TaskId { vertex: 0, replica: 0 }, attempt })
    }

    #[test]
    fn passes_when_executions_end_or_are_fenced_before_the_bound() {
        let trace = vec![
            started(0, "worker-1", 1),
            started(0, "worker-2", 1),
            status(100, JobStatus::Failing, JobStatus::Failed),
            at(
                500,
                "worker-1",
                Event::ExecutionEnded {
                    task: TaskId { vertex: 0, replica: 0 },
                    attempt: 1,
                    outcome: ExecOutcome::Finished,
                },
            ),
            at(600, "store", Event::Fenced { attempt: 2, next_offsets: vec![] }),
            commit(700, 0, 0),
        ];
        assert!(run(&mut TerminalIsQuiescent::new(&setup(vec![1])), &trace, 5_000).is_empty());
    }

    #[test]
    fn fails_on_a_live_execution_or_a_late_commit_after_failed() {
        let trace =
            vec![started(0, "worker-1", 1), status(100, JobStatus::Failing, JobStatus::Failed), commit(3_000, 0, 0)];
        let v = run(&mut TerminalIsQuiescent::new(&setup(vec![1])), &trace, 5_000);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("still live"));
        assert!(v[1].detail.contains("committed more than"));
        let crashed = vec![
            started(0, "worker-1", 1),
            fault(50, crate::fault::Action::Crash { node: worker(1) }),
            status(100, JobStatus::Failing, JobStatus::Failed),
        ];
        assert!(run(&mut TerminalIsQuiescent::new(&setup(vec![1])), &crashed, 5_000).is_empty(), "a crash ends them");
        let restarted = vec![status(100, JobStatus::Running, JobStatus::Finished), started(4_000, "worker-2", 1)];
        let v = run(&mut TerminalIsQuiescent::new(&setup(vec![1])), &restarted, 5_000);
        assert_eq!(v.len(), 1, "an execution started long after FINISHED: {v:?}");
    }
}
