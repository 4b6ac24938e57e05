//! A small model of executions shared by the execution checkers: which executions are live, from the trace.
//!
//! An execution is live from its `execution-started` until its `execution-ended`, a crash of its node, or the store
//! fencing its attempt (a fenced execution can no longer change the ledger).

use super::Kinds;
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, TaskId};
use std::collections::BTreeMap;

/// One execution: where, what, which attempt.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExecutionKey {
    pub node: String,
    pub task: TaskId,
    pub attempt: u32,
}

#[derive(Debug, Default)]
pub struct Executions {
    /// Started and not ended (nor crashed), with their start time.
    running: BTreeMap<ExecutionKey, u64>,
    /// Writes of attempts below this are refused by the store.
    fenced_below: u32,
}

impl Executions {
    /// The entries [`Executions::apply`] reads.
    pub const KINDS: Kinds =
        Kinds::engine(&[EventKind::ExecutionStarted, EventKind::ExecutionEnded, EventKind::Fenced]).and(Kinds::FAULT);

    /// Applies an entry; returns the execution it started, if it started one.
    pub fn apply(&mut self, entry: &TraceEntry) -> Option<ExecutionKey> {
        match &entry.event {
            TraceEvent::Engine(Event::ExecutionStarted { task, attempt }) => {
                let key = ExecutionKey { node: entry.node.to_string(), task: *task, attempt: *attempt };
                self.running.insert(key.clone(), entry.at_ms());
                return Some(key);
            }
            TraceEvent::Engine(Event::ExecutionEnded { task, attempt, .. }) => {
                self.running.remove(&ExecutionKey { node: entry.node.to_string(), task: *task, attempt: *attempt });
            }
            TraceEvent::Engine(Event::Fenced { attempt, .. }) => self.fenced_below = self.fenced_below.max(*attempt),
            // A crash (or a restart, which crashes a live node first) ends everything on the node.
            TraceEvent::Fault(Action::Crash { node } | Action::Restart { node }) => {
                let node = node.label();
                self.running.retain(|k, _| k.node != node);
            }
            _ => {}
        }
        None
    }

    /// Live executions: running and not fenced, with their start time.
    pub fn live(&self) -> impl Iterator<Item = (&ExecutionKey, u64)> {
        self.running.iter().filter(|(k, _)| k.attempt >= self.fenced_below).map(|(k, t)| (k, *t))
    }
}
