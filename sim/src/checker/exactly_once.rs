//! `exactly-once`: every record in the ledger was produced by the source, and with exactly-once delivery none is
//! committed twice (at-least-once may duplicate, never invent); and the store's ledger at the end holds exactly the
//! commits its `committed` events announced, record by record.

use super::{Capped, Checker, DistinctIds, End, FailureClass, IdRuns, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::store::Commit;
use sluice_engine::{Delivery, Event, EventKind, RecordId};
use std::collections::BTreeMap;

pub(crate) const NAME: &str = "exactly-once";

#[derive(Debug)]
pub struct ExactlyOnce {
    delivery: Delivery,
    initial_records: Vec<u64>,
    /// Records committed, with the attempt that committed each first (runs of offsets: memory stays small).
    committed: IdRuns<u32>,
    /// Commits of a record beyond its first, per record.
    again: BTreeMap<RecordId, usize>,
    traced_commits: usize,
    violations: Capped,
}

impl ExactlyOnce {
    pub fn new(setup: &Setup) -> ExactlyOnce {
        ExactlyOnce {
            delivery: setup.delivery,
            initial_records: setup.initial_records.clone(),
            committed: IdRuns::new(),
            again: BTreeMap::new(),
            traced_commits: 0,
            violations: Capped::new(NAME),
        }
    }

    fn report(&mut self, at_ms: u64, detail: String) {
        self.violations.report(at_ms, FailureClass::Safety, detail);
    }

    /// The store's own ledger holds exactly the commits its `committed` events announced: as many, and each produced
    /// record as many times.
    fn check_ledger(&mut self, ledger: &[Commit], end_ms: u64) {
        if ledger.len() != self.traced_commits {
            let detail = format!(
                "the store's ledger holds {} commits at the end, its committed events announced {}",
                ledger.len(),
                self.traced_commits
            );
            return self.report(end_ms, detail);
        }
        let mut held = DistinctIds::new();
        let mut held_again: BTreeMap<RecordId, usize> = BTreeMap::new();
        for c in ledger.iter().filter(|c| self.produced(c.id)) {
            if !held.add(c.id.partition, c.id.offset) {
                *held_again.entry(c.id).or_default() += 1;
            }
        }
        // The common case, decided without a look at each record: the same records, the same repeats.
        if merged_runs(held.runs()) == merged_runs(self.committed.runs()) && held_again == self.again {
            return;
        }
        let times = |first: bool, again: Option<&usize>| usize::from(first) + again.copied().unwrap_or(0);
        // The first record, in id order, held and announced a different number of times.
        let differs = |id: RecordId| {
            let h = times(held.contains(id.partition, id.offset), held_again.get(&id));
            let a = times(self.committed.contains(id.partition, id.offset), self.again.get(&id));
            (h != a).then_some((id, h, a))
        };
        let candidates = (held.runs().map(|(p, s, e, _)| (p, s, e)))
            .chain(self.committed.runs().map(|(p, s, e, _)| (p, s, e)))
            .flat_map(|(p, s, e)| (s..e).map(move |o| RecordId { partition: p, offset: o }))
            .chain(held_again.keys().chain(self.again.keys()).copied());
        if let Some((id, h, a)) = candidates.filter_map(differs).min_by_key(|(id, _, _)| *id) {
            let detail = format!(
                "the store's ledger holds record {}:{} {h} times at the end, its committed events announced it {a} times",
                id.partition, id.offset
            );
            self.report(end_ms, detail);
        }
    }

    fn produced(&self, id: RecordId) -> bool {
        self.initial_records.get(id.partition as usize).is_some_and(|n| id.offset < *n)
    }
}

/// Runs of ids whatever their tags: (partition, start, end exclusive), touching runs joined.
fn merged_runs<T>(runs: impl Iterator<Item = (u32, u64, u64, T)>) -> Vec<(u32, u64, u64)> {
    let mut merged: Vec<(u32, u64, u64)> = Vec::new();
    for (p, start, end, _) in runs {
        match merged.last_mut() {
            Some(last) if last.0 == p && last.2 == start => last.2 = end,
            _ => merged.push((p, start, end)),
        }
    }
    merged
}

impl Checker for ExactlyOnce {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let TraceEvent::Engine(Event::Committed { attempt, id }) = &entry.event else {
            return;
        };
        self.traced_commits += 1;
        if !self.produced(*id) {
            self.report(
                entry.at_ms(),
                format!("record {}:{} committed but the source never held it", id.partition, id.offset),
            );
            return;
        }
        let Some(first) = self.committed.insert(id.partition, id.offset, *attempt) else { return };
        let again = self.again.entry(*id).or_default();
        *again += 1;
        if *again == 1 && self.delivery == Delivery::ExactlyOnce {
            let detail =
                format!("record {}:{} committed twice (attempts {first} and {attempt})", id.partition, id.offset);
            self.report(entry.at_ms(), detail);
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::engine(&[EventKind::Committed])
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        if let Some(ledger) = end.ledger {
            self.check_ledger(ledger, end.end_ms);
        }
        self.violations.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    #[test]
    fn passes_on_single_commits() {
        let trace = vec![commit(1, 0, 0), commit(2, 0, 1)];
        assert!(run(&mut ExactlyOnce::new(&setup(vec![2])), &trace, 10).is_empty());
    }

    #[test]
    fn fails_on_a_duplicate_and_on_an_invented_record() {
        let trace = vec![commit(1, 0, 0), commit(2, 0, 0), commit(3, 0, 9)];
        let v = run(&mut ExactlyOnce::new(&setup(vec![2])), &trace, 10);
        assert_eq!(v.len(), 2);
        assert!(v[0].detail.contains("committed twice"));
        assert!(v[1].detail.contains("never held"));
    }

    #[test]
    fn fails_when_the_store_ledger_disagrees_with_its_committed_events() {
        let trace = vec![commit(1, 0, 0), commit(2, 0, 1)];
        let agreeing = run_with_ledger(&mut ExactlyOnce::new(&setup(vec![2])), &trace, &ledger_of(&[(0, 0), (0, 1)]));
        assert!(agreeing.is_empty(), "{agreeing:?}");
        let v = run_with_ledger(&mut ExactlyOnce::new(&setup(vec![2])), &trace, &[]);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("holds 0 commits"), "{}", v[0].detail);
        // As many commits, but another record.
        let v = run_with_ledger(&mut ExactlyOnce::new(&setup(vec![2])), &trace, &ledger_of(&[(0, 0), (0, 0)]));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("holds record 0:0 2 times at the end, its committed events announced it 1 times"));
    }

    #[test]
    fn at_least_once_tolerates_duplicates() {
        let mut s = setup(vec![2]);
        s.delivery = Delivery::AtLeastOnce;
        let trace = vec![commit(1, 0, 0), commit(2, 0, 0)];
        assert!(run(&mut ExactlyOnce::new(&s), &trace, 10).is_empty());
    }
}
