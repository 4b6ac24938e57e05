//! Which entries a checker reads. Most checkers act on a few kinds of event and ignore the rest, yet before this each
//! of them was handed every entry, and most looked at their deadlines on each: with twenty checkers that was the
//! larger part of judging a run. A checker now says what it reads ([`Checker::kinds`]) and when a deadline of its own
//! can next pass ([`Checker::wake_at_us`]); the judge hands it an entry only when the entry is of one of its kinds or
//! comes at or after that time. Both are conservative by contract: a checker may read more than it needs, never less,
//! and `tests/judge_dispatch.rs` checks over every shipped scenario and canary that the verdicts are exactly those of
//! a judge that hands every checker every entry.
//!
//! [`Checker::kinds`]: super::Checker::kinds
//! [`Checker::wake_at_us`]: super::Checker::wake_at_us

use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::EventKind;
use strum::EnumCount;

/// The bit of each harness entry, after the engine's kinds.
const FAULT_BIT: u32 = EventKind::COUNT as u32;
const OBSERVED_BIT: u32 = FAULT_BIT + 1;
const ALERTED_BIT: u32 = FAULT_BIT + 2;
const _: () = assert!(ALERTED_BIT < 64, "one bit per kind of entry fits a u64");

/// A set of kinds of trace entry: every kind of engine event, a fault the sim applied, a status the client read, an
/// alert the client read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(u64);

impl Kinds {
    /// Every entry, whatever its kind.
    pub const ALL: Kinds = Kinds(u64::MAX);
    /// No entry (a checker with nothing to watch in this run still hears its deadlines).
    pub const NONE: Kinds = Kinds(0);
    /// Faults the sim applied (`TraceEvent::Fault`).
    pub const FAULT: Kinds = Kinds(1 << FAULT_BIT);
    /// Statuses the client read (`TraceEvent::Observed`).
    pub const OBSERVED: Kinds = Kinds(1 << OBSERVED_BIT);
    /// Alerts the client read (`TraceEvent::Alerted`).
    pub const ALERTED: Kinds = Kinds(1 << ALERTED_BIT);

    /// The engine's events of these kinds.
    pub const fn engine(kinds: &[EventKind]) -> Kinds {
        let mut bits = 0u64;
        let mut i = 0;
        while i < kinds.len() {
            bits |= 1 << kinds[i] as u32;
            i += 1;
        }
        Kinds(bits)
    }

    /// Both sets.
    pub const fn and(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    /// How many kinds a set can hold: a kind's index is below this.
    pub const INDICES: usize = 64;

    /// The set of `entry`'s own kind.
    pub fn of(entry: &TraceEntry) -> Kinds {
        Kinds(1 << Kinds::index_of(entry))
    }

    /// The index of `entry`'s kind.
    pub fn index_of(entry: &TraceEntry) -> usize {
        let bit = match &entry.event {
            TraceEvent::Engine(e) => EventKind::from(e) as u32,
            TraceEvent::Fault(_) => FAULT_BIT,
            TraceEvent::Observed { .. } => OBSERVED_BIT,
            TraceEvent::Alerted { .. } => ALERTED_BIT,
        };
        bit as usize
    }

    /// Whether the kind of this index is in the set.
    pub fn has_index(self, index: usize) -> bool {
        index < Kinds::INDICES && self.0 & (1 << index) != 0
    }

    /// Whether `entry` is of one of these kinds.
    pub fn has(self, entry: &TraceEntry) -> bool {
        self.meets(Kinds::of(entry))
    }

    /// Whether the two sets share a kind.
    pub fn meets(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }
}

/// The first simulated microsecond at which a millisecond clock reads more than `ms`: a check `now_ms > ms`, with
/// `now_ms = at_us / 1000`, first holds there.
pub fn after_ms(ms: u64) -> u64 {
    ms.saturating_add(1).saturating_mul(1000)
}

/// The first simulated microsecond at which a millisecond clock reads `ms` or more (a check `now_ms >= ms`).
pub fn at_ms(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::{Event, JobStatus};
    use std::sync::Arc;
    use strum::VariantArray;

    fn entry(event: TraceEvent) -> TraceEntry {
        TraceEntry { at_us: 0, node: Arc::from("n"), event }
    }

    #[test]
    fn a_set_holds_exactly_its_kinds() {
        let changed = entry(TraceEvent::Engine(Event::StatusChanged {
            from: JobStatus::Created,
            to: JobStatus::Running,
            cause: String::new(),
        }));
        let observed = entry(TraceEvent::Observed { status: JobStatus::Running, drained_on_pause: false });
        let status = Kinds::engine(&[EventKind::StatusChanged]);
        assert!(status.has(&changed) && !status.has(&observed));
        assert!(Kinds::OBSERVED.has(&observed) && !Kinds::OBSERVED.has(&changed));
        assert!(status.and(Kinds::OBSERVED).has(&observed) && status.and(Kinds::OBSERVED).has(&changed));
        assert!(Kinds::ALL.has(&changed) && !Kinds::NONE.has(&changed) && !Kinds::NONE.has(&observed));
        // Every engine kind has a bit of its own, and none is a harness entry's.
        let all = Kinds::engine(EventKind::VARIANTS);
        assert_eq!(all.0.count_ones() as usize, EventKind::COUNT);
        assert_eq!(all.0 & (Kinds::FAULT.0 | Kinds::OBSERVED.0 | Kinds::ALERTED.0), 0);
    }

    #[test]
    fn millisecond_deadlines_in_microseconds() {
        assert_eq!(after_ms(5), 6_000, "5 ms is not past 5 ms; 6.000 ms is");
        assert_eq!(at_ms(5), 5_000);
        assert_eq!(after_ms(u64::MAX), u64::MAX);
    }
}
