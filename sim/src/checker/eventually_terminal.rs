//! `eventually-terminal`: once the last fault has healed, a batch job reaches a terminal status within
//! `terminal_within_ms`, and before the run's time budget ends.

use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, Mode};

pub(crate) const NAME: &str = "eventually-terminal";

#[derive(Debug)]
pub struct EventuallyTerminal {
    batch: bool,
    liveness_start_ms: Option<u64>,
    bound_ms: u64,
    duration_ms: u64,
    terminal_at_ms: Option<u64>,
}

impl EventuallyTerminal {
    pub fn new(setup: &Setup) -> EventuallyTerminal {
        EventuallyTerminal {
            batch: setup.mode == Mode::Batch,
            liveness_start_ms: setup.liveness_start_ms,
            bound_ms: setup.terminal_within_ms,
            duration_ms: setup.duration_ms,
            terminal_at_ms: None,
        }
    }
}

impl Checker for EventuallyTerminal {
    fn on_entry(&mut self, entry: &TraceEntry) {
        if let TraceEvent::Engine(Event::StatusChanged { to, .. }) = &entry.event {
            if super::terminal(*to) && self.terminal_at_ms.is_none() {
                self.terminal_at_ms = Some(entry.at_ms());
            }
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::engine(&[EventKind::StatusChanged])
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        let Some(start) = self.liveness_start_ms.filter(|_| self.batch) else {
            return Vec::new();
        };
        let deadline = (start + self.bound_ms).min(self.duration_ms);
        match self.terminal_at_ms {
            Some(t) if t <= deadline => Vec::new(),
            Some(t) => vec![Violation::new(NAME, deadline, FailureClass::Liveness, format!(
                "the batch job became terminal at {t} ms, after its bound ({deadline} ms: faults healed at {start} ms + {} ms)",
                self.bound_ms
            ))],
            None if end.end_ms >= deadline => vec![Violation::new(NAME, deadline, FailureClass::Liveness, format!(
                "the batch job was not terminal by {deadline} ms (faults healed at {start} ms; bound {} ms; run ended at {} ms)",
                self.bound_ms, end.end_ms
            ))],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::JobStatus;

    #[test]
    fn passes_when_terminal_within_the_bound() {
        let trace = vec![status(500, JobStatus::Running, JobStatus::Finished)];
        assert!(run(&mut EventuallyTerminal::new(&setup(vec![1])), &trace, 20_000).is_empty());
    }

    #[test]
    fn fails_when_never_terminal_or_too_late() {
        let v = run(&mut EventuallyTerminal::new(&setup(vec![1])), &[], 20_000);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].at_ms, 10_000);
        let late = vec![status(15_000, JobStatus::Running, JobStatus::Failed)];
        assert_eq!(run(&mut EventuallyTerminal::new(&setup(vec![1])), &late, 20_000).len(), 1);
    }
}
