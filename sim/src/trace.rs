//! The trace: the ordered list of what happened in a run, and its stable hash.
//!
//! `trace_hash` is the XXH3-128 (a specified, stable hash; not a cryptographic one) of the canonical serialization: the
//! line `sluice-trace v{TRACE_FORMAT_VERSION}`, then one compact JSON object per entry (fields in declaration order, no
//! maps), each followed by `\n`; printed as 32 hex digits. A change to the format bumps the version, so hashes of
//! different formats never compare equal.

use crate::fault::Action;
use serde::Serialize;
use sluice_engine::{Event, JobStatus, Recorder};
use std::sync::Mutex;

/// Version of the canonical trace serialization.
pub const TRACE_FORMAT_VERSION: u32 = 4;

/// What a trace entry records.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "source")]
pub enum TraceEvent {
    /// Emitted by the engine.
    Engine(Event),
    /// A fault action the sim applied (typed: `{"source":"fault","action":"crash","node":"worker-1"}`).
    Fault(Action),
    /// The status the client read through the coordinator's API, with its `drained_on_pause`.
    Observed { status: JobStatus, drained_on_pause: bool },
    /// An alert the client read through the platform's API (alert `id`, raised on these failed checkpoints).
    Alerted { id: u64, epochs: Vec<u64> },
}

/// One entry: simulated time (µs since the run started), node, event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceEntry {
    pub at_us: u64,
    pub node: String,
    pub event: TraceEvent,
}

impl TraceEntry {
    pub fn at_ms(&self) -> u64 {
        self.at_us / 1000
    }
}

/// Collects entries; attaches simulated time. Lives outside the runtime so it survives node crashes.
#[derive(Default)]
pub struct TraceRecorder {
    entries: Mutex<Vec<TraceEntry>>,
}

impl TraceRecorder {
    /// Records an entry at the current simulated time.
    pub fn push(&self, node: &str, event: TraceEvent) {
        let at_us = madsim::time::TimeHandle::try_current().map(|t| t.elapsed().as_micros() as u64).unwrap_or(0);
        let mut entries = self.entries.lock().expect("trace lock");
        debug_assert!(entries.last().is_none_or(|e| e.at_us <= at_us), "trace goes back in time");
        entries.push(TraceEntry { at_us, node: node.to_string(), event });
    }

    /// Takes the recorded entries.
    pub fn take(&self) -> Vec<TraceEntry> {
        std::mem::take(&mut self.entries.lock().expect("trace lock"))
    }
}

impl Recorder for TraceRecorder {
    fn record(&self, node: &str, event: Event) {
        self.push(node, TraceEvent::Engine(event));
    }
}

/// The stable hash of a trace.
pub fn trace_hash(entries: &[TraceEntry]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(format!("sluice-trace v{TRACE_FORMAT_VERSION}\n").as_bytes());
    let mut line = Vec::with_capacity(256);
    for e in entries {
        line.clear();
        serde_json::to_writer(&mut line, e).expect("trace entries serialize");
        line.push(b'\n');
        h.update(&line);
    }
    format!("{:032x}", h.digest128())
}

/// One readable line per entry, for people and for snapshots.
pub fn render(entries: &[TraceEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let what = match &e.event {
            TraceEvent::Engine(ev) => serde_json::to_string(ev).expect("events serialize"),
            TraceEvent::Fault(action) => format!("FAULT {}", action.describe()),
            TraceEvent::Observed { status, drained_on_pause: false } => format!("client reads {status}"),
            TraceEvent::Observed { status, drained_on_pause: true } => {
                format!("client reads {status} (drained on pause)")
            }
            TraceEvent::Alerted { id, epochs } => format!("client reads alert {id} (checkpoints {epochs:?})"),
        };
        out.push_str(&format!("{:>9.3} ms {:<12} {what}\n", e.at_us as f64 / 1000.0, e.node));
    }
    out
}

/// Whether an engine event belongs in a summary: control-plane decisions, not per-record or per-checkpoint traffic.
fn summarized(event: &Event) -> bool {
    matches!(
        event,
        Event::StatusChanged { .. }
            | Event::AttemptDeployed { .. }
            | Event::FailureDetected { .. }
            | Event::RestartScheduled { .. }
            | Event::RestartRefused { .. }
            | Event::SinkFinished { .. }
            | Event::Fenced { .. }
            | Event::TransactionsAborted { .. }
            | Event::CheckpointFailed { .. }
            | Event::Restored { .. }
            | Event::CancelRequested { .. }
            | Event::CancelUnconfirmed { .. }
            | Event::RestartRequested { .. }
            | Event::PauseRequested
            | Event::ResumeRequested
            | Event::ReplicasChanged { .. }
            | Event::DrainChecked { .. }
            | Event::DrainedFlag { .. }
            | Event::PolicyFired { .. }
    )
}

/// A readable summary of a run for review and snapshots: faults, what the client read, the engine's control-plane
/// decisions (statuses, attempts, failures, restarts, fences, pauses, rescales, failed checkpoints), then counts of
/// the data-plane events left out. A behaviour change shows up as a changed line, not as a changed hash.
pub fn summary(entries: &[TraceEntry]) -> String {
    let mut out = String::new();
    let (mut emitted, mut committed, mut rejected, mut completed, mut triggered) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for e in entries {
        let what = match &e.event {
            TraceEvent::Engine(ev) => {
                match ev {
                    Event::Emitted { .. } => emitted += 1,
                    Event::Committed { .. } => committed += 1,
                    Event::WriteRejected { .. } => rejected += 1,
                    Event::CheckpointCompleted { .. } => completed += 1,
                    Event::CheckpointTriggered { .. } => triggered += 1,
                    _ => {}
                }
                if !summarized(ev) {
                    continue;
                }
                serde_json::to_string(ev).expect("events serialize")
            }
            TraceEvent::Fault(action) => format!("FAULT {}", action.describe()),
            TraceEvent::Observed { status, drained_on_pause: false } => format!("client reads {status}"),
            TraceEvent::Observed { status, drained_on_pause: true } => {
                format!("client reads {status} (drained on pause)")
            }
            TraceEvent::Alerted { id, epochs } => format!("client reads alert {id} (checkpoints {epochs:?})"),
        };
        out.push_str(&format!("{:>9} ms {:<12} {what}\n", e.at_ms(), e.node));
    }
    out.push_str(&format!(
        "emitted {emitted}  committed {committed}  writes rejected {rejected}  checkpoints triggered {triggered}, \
         completed {completed}\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = vec![TraceEntry { at_us: 5, node: "sim".into(), event: TraceEvent::Fault(Action::Pause) }];
        let mut b = a.clone();
        assert_eq!(trace_hash(&a), trace_hash(&b));
        b[0].at_us = 6;
        assert_ne!(trace_hash(&a), trace_hash(&b));
        assert_eq!(trace_hash(&a).len(), 32);
        assert!(render(&a).contains("FAULT pause"));
        assert!(summary(&a).starts_with("        0 ms sim          FAULT pause\n"), "{}", summary(&a));
        let line = serde_json::to_string(&a[0]).unwrap();
        assert_eq!(line, r#"{"at_us":5,"node":"sim","event":{"source":"fault","action":"pause"}}"#);
    }
}
