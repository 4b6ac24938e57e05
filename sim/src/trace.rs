//! The trace: the ordered list of what happened in a run, and its stable hash.
//!
//! `trace_hash` is the XXH3-128 (a specified, stable hash; not a cryptographic one) of the canonical serialization: the
//! line `sluice-trace v{TRACE_FORMAT_VERSION}`, then each entry in postcard's binary encoding (postcard 1.x's
//! documented, stable wire format: fields in declaration order, integers as varints, strings length-prefixed; the
//! internally tagged enums (the trace event, the engine event, the fault action) carry their tag names, the other
//! enums their variant's index, so reordering a variant changes the format; no maps), one after the other; printed as 32 hex digits. A change to the format bumps the
//! version, so hashes of different formats never compare equal. (Up to v4 an entry was a line of compact JSON; the
//! binary form spares the hash the JSON escaping and number formatting of every entry.)

use crate::fault::Action;
use serde::Serialize;
use sluice_engine::{Event, JobStatus, Point, Reached, Recorder};
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh3::Xxh3;

/// Version of the canonical trace serialization.
pub const TRACE_FORMAT_VERSION: u32 = 5;

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

/// One entry: simulated time (µs since the run started), node, event. The node's name is shared (a recorder keeps one
/// copy of each name), so recording an entry allocates no string.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceEntry {
    pub at_us: u64,
    pub node: Arc<str>,
    pub event: TraceEvent,
}

impl TraceEntry {
    pub fn at_ms(&self) -> u64 {
        self.at_us / 1000
    }
}

/// How much of a run's trace stays in memory. Checkers and the hash see every entry as it is recorded either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKeep {
    /// Every entry (`--trace`, replay, shrink, tests).
    All,
    /// The most recent entries only, at most this many: a run's memory does not grow with its length.
    Recent(usize),
}

/// What `run` without `--trace` keeps: the last entries before the end (or before a panic). `explore` keeps one (it
/// reads no trace: the checkers judged the run as it went, and a failure is replayed from its file).
pub const RECENT_ENTRIES: usize = 2_000;

/// Something that consumes the trace as it is recorded (the checkers).
pub trait TraceObserver: Send {
    fn on_entry(&mut self, entry: &TraceEntry);
}

/// Collects entries; attaches simulated time. Lives outside the runtime so it survives node crashes. Each entry is
/// hashed and handed to the observer as it comes, then kept or (beyond a `Recent` window) dropped.
pub struct TraceRecorder {
    state: Mutex<Recording>,
}

struct Recording {
    keep: TraceKeep,
    kept: VecDeque<TraceEntry>,
    dropped: u64,
    hasher: TraceHasher,
    observer: Option<Box<dyn TraceObserver>>,
    /// Coverage points reached: on the side, not in the trace or its hash.
    reached: Reached,
    /// The node names seen, each kept once.
    names: Names,
}

/// The node names a recorder has seen (the store, the coordinator, the workers...), each shared by every entry of
/// its node.
#[derive(Default)]
struct Names(BTreeSet<Arc<str>>);

impl Names {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(name);
        self.0.insert(new.clone());
        new
    }
}

impl Recording {
    fn new(keep: TraceKeep, observer: Option<Box<dyn TraceObserver>>) -> Recording {
        assert!(keep != TraceKeep::Recent(0), "keep at least one recent entry");
        Recording {
            keep,
            kept: VecDeque::new(),
            dropped: 0,
            hasher: TraceHasher::new(),
            observer,
            reached: Reached::default(),
            names: Names::default(),
        }
    }
}

/// What a recorder holds once the run is over.
pub struct Recorded {
    /// The kept entries, oldest first: all of them, or the most recent ones.
    pub entries: Vec<TraceEntry>,
    /// Entries recorded before `entries` and not kept.
    pub dropped: u64,
    /// `trace_hash` of every entry recorded, kept or not.
    pub hash: String,
    /// The coverage points the run reached.
    pub reached: Reached,
}

impl Default for TraceRecorder {
    fn default() -> Self {
        TraceRecorder::new(TraceKeep::All, None)
    }
}

impl TraceRecorder {
    pub fn new(keep: TraceKeep, observer: Option<Box<dyn TraceObserver>>) -> TraceRecorder {
        TraceRecorder { state: Mutex::new(Recording::new(keep, observer)) }
    }

    /// Records an entry at the current simulated time.
    pub fn push(&self, node: &str, event: TraceEvent) {
        let node = self.state.lock().expect("trace lock").names.get(node);
        self.push_as(node, event);
    }

    /// Records an entry of a node whose name the caller shares (an engine node's tracer: no lookup per entry).
    fn push_as(&self, node: Arc<str>, event: TraceEvent) {
        let at_us = madsim::time::TimeHandle::try_current().map(|t| t.elapsed().as_micros() as u64).unwrap_or(0);
        let mut state = self.state.lock().expect("trace lock");
        let state = &mut *state;
        debug_assert!(state.kept.back().is_none_or(|e| e.at_us <= at_us), "trace goes back in time");
        let entry = TraceEntry { at_us, node, event };
        state.hasher.add(&entry);
        if let Some(observer) = state.observer.as_mut() {
            observer.on_entry(&entry);
        }
        if let TraceKeep::Recent(limit) = state.keep {
            if state.kept.len() == limit {
                state.kept.pop_front();
                state.dropped += 1;
            }
        }
        state.kept.push_back(entry);
    }

    /// Takes what was recorded; the recorder starts over empty (no observer).
    pub fn finish(&self) -> Recorded {
        // A checker that panicked inside `push` poisoned the lock; what was recorded is still whole up to it.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let keep = state.keep;
        let done = std::mem::replace(&mut *state, Recording::new(keep, None));
        let hash = done.hasher.digest();
        Recorded { entries: done.kept.into(), dropped: done.dropped, hash, reached: done.reached }
    }
}

impl Recorder for TraceRecorder {
    fn record(&self, node: &Arc<str>, event: Event) {
        self.push_as(node.clone(), TraceEvent::Engine(event));
    }

    fn reach(&self, point: Point) {
        self.state.lock().expect("trace lock").reached.insert(point);
    }
}

/// `trace_hash` computed entry by entry: the header line, then each entry in postcard's encoding.
struct TraceHasher {
    hasher: Xxh3,
    /// The current entry's encoding, reused so that hashing an entry allocates nothing.
    line: Vec<u8>,
}

impl TraceHasher {
    fn new() -> TraceHasher {
        let mut hasher = Xxh3::new();
        hasher.update(format!("sluice-trace v{TRACE_FORMAT_VERSION}\n").as_bytes());
        TraceHasher { hasher, line: Vec::with_capacity(256) }
    }

    fn add(&mut self, entry: &TraceEntry) {
        self.line.clear();
        let line = postcard::to_extend(entry, std::mem::take(&mut self.line)).expect("trace entries serialize");
        self.line = line;
        self.hasher.update(&self.line);
    }

    fn digest(&self) -> String {
        format!("{:032x}", self.hasher.digest128())
    }
}

/// The stable hash of a trace (the same as a recorder computes as it goes).
pub fn trace_hash(entries: &[TraceEntry]) -> String {
    let mut h = TraceHasher::new();
    entries.iter().for_each(|e| h.add(e));
    h.digest()
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

/// The trace as JSON lines: one entry per line, `{"at_us":…,"node":…,"event":{"source":"engine","event":…}}`, in
/// order (for `jq`; the fields are those of [`TraceEntry`], the event's as in the readable trace).
pub fn render_json_lines(entries: &[TraceEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&serde_json::to_string(e).expect("trace entries serialize"));
        out.push('\n');
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
    fn reached_points_are_kept_beside_the_trace_not_in_it() {
        let plain = TraceRecorder::default();
        let reaching = TraceRecorder::default();
        for r in [&plain, &reaching] {
            r.push("sim", TraceEvent::Fault(Action::Pause));
        }
        reaching.reach(Point::PauseWhileRestarting);
        let (plain, reaching) = (plain.finish(), reaching.finish());
        assert_eq!(plain.hash, reaching.hash);
        assert_eq!(plain.entries, reaching.entries);
        assert_eq!(plain.reached.iter().count(), 0);
        assert_eq!(reaching.reached.iter().collect::<Vec<_>>(), vec![Point::PauseWhileRestarting]);
    }

    #[test]
    fn the_canonical_form_is_pinned() {
        // A change of this hash is a change of the trace format (or of postcard's wire format): bump
        // TRACE_FORMAT_VERSION and pin the new value.
        let trace = vec![
            TraceEntry { at_us: 5, node: "sim".into(), event: TraceEvent::Fault(Action::Pause) },
            TraceEntry {
                at_us: 1_500,
                node: "client".into(),
                event: TraceEvent::Observed { status: JobStatus::Running, drained_on_pause: false },
            },
            TraceEntry { at_us: 2_000, node: "coordinator".into(), event: TraceEvent::Engine(Event::PauseRequested) },
        ];
        assert_eq!(trace_hash(&trace), "efb167e52f409501cbfa70e6106bea8d");
    }

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

    /// A recorder that keeps only recent entries hashes all of them, as `trace_hash` of the whole trace does.
    #[test]
    fn a_recent_window_keeps_the_last_entries_and_hashes_them_all() {
        let actions = [Action::Pause, Action::Resume, Action::Pause];
        let all = TraceRecorder::new(TraceKeep::All, None);
        let recent = TraceRecorder::new(TraceKeep::Recent(2), None);
        for a in &actions {
            all.push("sim", TraceEvent::Fault(a.clone()));
            recent.push("sim", TraceEvent::Fault(a.clone()));
        }
        let (all, recent) = (all.finish(), recent.finish());
        assert_eq!((all.entries.len(), all.dropped), (3, 0));
        assert_eq!((recent.entries.len(), recent.dropped), (2, 1));
        assert_eq!(recent.entries[..], all.entries[1..]);
        assert_eq!(all.hash, trace_hash(&all.entries));
        assert_eq!(recent.hash, all.hash);
        assert_ne!(recent.hash, trace_hash(&recent.entries));
    }
}
