//! `single-live-execution` (A3): at most one live execution per task-group location at any instant. An execution of
//! an attempt the store has fenced no longer counts: fencing is how a new attempt may start while an old one dies.

use super::executions::Executions;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::TraceEntry;

pub(crate) const NAME: &str = "single-live-execution";

#[derive(Debug, Default)]
pub struct SingleLiveExecution {
    executions: Executions,
    violations: Vec<Violation>,
}

impl SingleLiveExecution {
    pub fn new(_setup: &Setup) -> SingleLiveExecution {
        SingleLiveExecution::default()
    }
}

impl Checker for SingleLiveExecution {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let Some(started) = self.executions.apply(entry) else { return };
        if !self.executions.live().any(|(k, _)| *k == started) {
            return; // it started fenced: it counts for nothing (a late deploy of a superseded attempt)
        }
        let others: Vec<String> = self
            .executions
            .live()
            .filter(|(k, _)| k.task == started.task && **k != started)
            .map(|(k, since)| format!("{} attempt {} (since {since} ms)", k.node, k.attempt))
            .collect();
        if !others.is_empty() {
            let detail = format!(
                "{} started on {} (attempt {}) while live and unfenced on {}",
                started.task,
                started.node,
                started.attempt,
                others.join(", ")
            );
            self.violations.push(Violation::new(NAME, entry.at_ms(), FailureClass::Safety, detail));
        }
    }

    fn kinds(&self) -> Kinds {
        Executions::KINDS
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, _end: &End) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::{Event, TaskId};

    fn started(ms: u64, node: &str, attempt: u32) -> TraceEntry {
        at(ms, node, Event::ExecutionStarted { task: TaskId { vertex: 1, replica: 0 }, attempt })
    }

    #[test]
    fn passes_when_the_old_attempt_is_fenced_first() {
        let trace = vec![
            started(0, "worker-1", 1),
            at(10, "store", Event::Fenced { attempt: 2, next_offsets: vec![] }),
            started(20, "worker-2", 2),
        ];
        assert!(run(&mut SingleLiveExecution::new(&setup(vec![1])), &trace, 100).is_empty());
    }

    #[test]
    fn passes_when_a_fenced_attempt_starts_late_beside_the_live_one() {
        let trace = vec![
            at(10, "store", Event::Fenced { attempt: 3, next_offsets: vec![] }),
            started(20, "worker-1", 3),
            started(30, "worker-2", 2),
        ];
        assert!(run(&mut SingleLiveExecution::new(&setup(vec![1])), &trace, 100).is_empty());
    }

    #[test]
    fn fails_on_two_unfenced_executions_of_one_location() {
        let trace = vec![started(0, "worker-1", 1), started(20, "worker-2", 1)];
        let v = run(&mut SingleLiveExecution::new(&setup(vec![1])), &trace, 100);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("worker-1 attempt 1"), "{}", v[0].detail);
    }
}
