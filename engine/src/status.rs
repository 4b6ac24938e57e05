//! The job status state machine, as a user reads it through the coordinator's API.

use serde::{Deserialize, Serialize};

/// A job's reported status.
/// Its upper-case name (scenarios, JSON, text) comes from `Display` / `FromStr` / `IntoStaticStr`; `VARIANTS` lists
/// every status in declaration order.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Created,
    Scheduled,
    Running,
    Restarting,
    Failing,
    Failed,
    Canceling,
    Canceled,
    Finished,
    Pausing,
    Paused,
}

impl JobStatus {
    /// Terminal statuses are never left.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Canceled | JobStatus::Finished)
    }
}

/// One recorded status change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub at_ms: u64,
    pub from: JobStatus,
    pub to: JobStatus,
    pub cause: String,
}

/// The job status and when it last changed (the changes themselves are events in the trace). Leaving a terminal
/// status, or a change dated before the last one, is a bug, so it is an assertion failure.
#[derive(Clone, Debug)]
pub struct StatusMachine {
    current: JobStatus,
    changed_at_ms: u64,
}

impl Default for StatusMachine {
    fn default() -> Self {
        StatusMachine { current: JobStatus::Created, changed_at_ms: 0 }
    }
}

impl StatusMachine {
    pub fn current(&self) -> JobStatus {
        self.current
    }

    /// Moves to `to`; returns the change, or `None` when `to` is the current status.
    pub fn transition(&mut self, to: JobStatus, at_ms: u64, cause: &str) -> Option<StatusChange> {
        if to == self.current {
            return None;
        }
        assert!(!self.current.is_terminal(), "job status left terminal {} for {} (cause: {cause})", self.current, to);
        assert!(
            self.changed_at_ms <= at_ms,
            "status changes go back in time: {at_ms} ms after {} ms",
            self.changed_at_ms
        );
        let change = StatusChange { at_ms, from: self.current, to, cause: cause.to_string() };
        (self.current, self.changed_at_ms) = (to, at_ms);
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_changes_and_ignores_repeats() {
        let mut m = StatusMachine::default();
        assert!(m.transition(JobStatus::Scheduled, 1, "deploy").is_some());
        assert!(m.transition(JobStatus::Scheduled, 2, "deploy again").is_none());
        assert!(m.transition(JobStatus::Finished, 3, "done").is_some());
        assert_eq!(m.current(), JobStatus::Finished);
        for s in <JobStatus as strum::VariantArray>::VARIANTS {
            assert_eq!(s.to_string().parse::<JobStatus>(), Ok(*s));
        }
        assert_eq!(JobStatus::Running.to_string(), "RUNNING");
    }

    #[test]
    #[should_panic(expected = "left terminal")]
    fn leaving_a_terminal_status_is_a_bug() {
        let mut m = StatusMachine::default();
        m.transition(JobStatus::Failed, 1, "boom");
        m.transition(JobStatus::Running, 2, "zombie");
    }

    #[test]
    #[should_panic(expected = "go back in time")]
    fn a_change_dated_before_the_last_is_a_bug() {
        let mut m = StatusMachine::default();
        m.transition(JobStatus::Scheduled, 10, "deploy");
        m.transition(JobStatus::Running, 9, "earlier");
    }
}
