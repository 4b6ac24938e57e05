//! `expected-status`: the scenario's `[expect]`: the final status read through the API is `status`, and the
//! coordinator first reported it within `within_ms`.

use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, JobStatus};

pub(crate) const NAME: &str = "expected-status";

#[derive(Debug)]
pub struct ExpectedStatus {
    expect: Option<JobStatus>,
    within_ms: Option<u64>,
    first_reported_ms: Option<u64>,
}

impl ExpectedStatus {
    pub fn new(setup: &Setup) -> ExpectedStatus {
        ExpectedStatus { expect: setup.expect_status, within_ms: setup.expect_within_ms, first_reported_ms: None }
    }
}

impl Checker for ExpectedStatus {
    fn on_entry(&mut self, entry: &TraceEntry) {
        if let TraceEvent::Engine(Event::StatusChanged { to, .. }) = &entry.event {
            if Some(*to) == self.expect && self.first_reported_ms.is_none() {
                self.first_reported_ms = Some(entry.at_ms());
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
        let Some(expect) = self.expect else {
            return Vec::new();
        };
        let shown = end.final_status.map_or("nothing".to_string(), |s| s.to_string());
        if end.final_status != Some(expect) {
            let detail = format!("expected final status {expect}, the API showed {shown}");
            return vec![Violation::new(NAME, end.end_ms, FailureClass::Safety, detail)];
        }
        match (self.within_ms, self.first_reported_ms) {
            (Some(within), Some(t)) if t > within => vec![Violation::new(
                NAME,
                within,
                FailureClass::Liveness,
                format!("{expect} reported at {t} ms, expected within {within} ms"),
            )],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn expecting(status: JobStatus, within: Option<u64>) -> ExpectedStatus {
        let mut s = setup(vec![1]);
        s.expect_status = Some(status);
        s.expect_within_ms = within;
        ExpectedStatus::new(&s)
    }

    fn finish(c: &mut ExpectedStatus, trace: &[TraceEntry], final_status: JobStatus) -> Vec<Violation> {
        for e in trace {
            c.on_entry(e);
        }
        c.finish(&End { end_ms: 9_000, final_status: Some(final_status), ledger: None })
    }

    #[test]
    fn passes_on_the_expected_status_in_time() {
        let trace = vec![status(100, JobStatus::Running, JobStatus::Finished)];
        assert!(finish(&mut expecting(JobStatus::Finished, Some(1_000)), &trace, JobStatus::Finished).is_empty());
    }

    #[test]
    fn fails_on_another_status_or_too_late() {
        let trace = vec![status(2_000, JobStatus::Running, JobStatus::Failed)];
        assert_eq!(finish(&mut expecting(JobStatus::Finished, None), &trace, JobStatus::Failed).len(), 1);
        let v = finish(&mut expecting(JobStatus::Failed, Some(1_000)), &trace, JobStatus::Failed);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].class, FailureClass::Liveness);
    }
}
