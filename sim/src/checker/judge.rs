//! The judge of a run: every checker, fed entry by entry while the run records them, and the count of distinct
//! records produced. Nothing here needs the whole trace, so a run's memory does not grow with its trace.

use super::{all, Checker, End, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent, TraceObserver};
use sluice_engine::Event;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Every checker of one run, in the order `all` lists them.
pub struct Judge {
    checkers: Vec<Box<dyn Checker>>,
    produced: DistinctIds,
}

impl Judge {
    pub fn new(setup: &Setup) -> Judge {
        Judge { checkers: all(setup), produced: DistinctIds::new() }
    }

    /// Distinct records the sources emitted so far.
    pub fn produced(&self) -> u64 {
        self.produced.count
    }

    /// Every checker's verdict; violations sorted by time, then name.
    pub fn finish(&mut self, end: &End) -> Vec<Violation> {
        let mut out: Vec<Violation> = self.checkers.iter_mut().flat_map(|c| c.finish(end)).collect();
        out.sort_by(|a, b| (a.at_ms, &a.invariant).cmp(&(b.at_ms, &b.invariant)));
        out
    }

    pub fn on_entry(&mut self, entry: &TraceEntry) {
        if let TraceEvent::Engine(Event::Emitted { id, .. }) = &entry.event {
            self.produced.add(id.partition, id.offset);
        }
        for c in self.checkers.iter_mut() {
            c.on_entry(entry);
        }
    }
}

/// A judge shared between the recorder (which feeds it) and the runner (which asks for the verdict).
#[derive(Clone)]
pub struct SharedJudge(pub Arc<Mutex<Judge>>);

impl TraceObserver for SharedJudge {
    fn on_entry(&mut self, entry: &TraceEntry) {
        self.0.lock().expect("judge lock").on_entry(entry);
    }
}

/// Distinct (partition, offset) pairs, each with a tag (the attempt that committed it, say), as runs of consecutive
/// offsets with one tag: a source emits its offsets in order and rewinds only after a failover, so the runs stay few
/// however many records there are. Every event of a record passes through a few of these, so the common case (an id
/// at or after its partition's last run) takes no search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdRuns<T> {
    /// Per partition, in partition order, its runs.
    partitions: Vec<(u32, Runs<T>)>,
    count: u64,
}

/// One partition's runs: start of each run → (its end, exclusive; its tag). Runs never overlap; touching runs have
/// different tags.
type Runs<T> = BTreeMap<u64, (u64, T)>;

/// Distinct ids with no tag.
pub type DistinctIds = IdRuns<()>;

impl<T: Copy + Eq> IdRuns<T> {
    pub fn new() -> IdRuns<T> {
        IdRuns { partitions: Vec::new(), count: 0 }
    }

    fn runs_of(&self, partition: u32) -> Option<&Runs<T>> {
        let i = self.partitions.binary_search_by_key(&partition, |(p, _)| *p).ok()?;
        Some(&self.partitions[i].1)
    }

    fn runs_of_mut(&mut self, partition: u32) -> &mut Runs<T> {
        let i = match self.partitions.binary_search_by_key(&partition, |(p, _)| *p) {
            Ok(i) => i,
            Err(i) => {
                self.partitions.insert(i, (partition, BTreeMap::new()));
                i
            }
        };
        &mut self.partitions[i].1
    }

    /// The run holding `offset` or the last one before it: (start, end, tag).
    fn run_at_or_before(runs: &Runs<T>, offset: u64) -> Option<(u64, u64, T)> {
        match runs.last_key_value() {
            Some((&start, &(end, tag))) if start <= offset => Some((start, end, tag)),
            _ => runs.range(..=offset).next_back().map(|(&start, &(end, tag))| (start, end, tag)),
        }
    }

    /// The tag of an id, if it is in.
    pub fn get(&self, partition: u32, offset: u64) -> Option<T> {
        let (_, end, tag) = Self::run_at_or_before(self.runs_of(partition)?, offset)?;
        (offset < end).then_some(tag)
    }

    pub fn contains(&self, partition: u32, offset: u64) -> bool {
        self.get(partition, offset).is_some()
    }

    /// Adds an id with its tag; returns the tag it already had (and changes nothing) if it was in.
    pub fn insert(&mut self, partition: u32, offset: u64, tag: T) -> Option<T> {
        let runs = self.runs_of_mut(partition);
        let before = Self::run_at_or_before(runs, offset);
        if let Some((_, end, t)) = before {
            if offset < end {
                return Some(t);
            }
        }
        // Join the run that ends at `offset` and the one that starts just after it, when their tags are this one.
        let extends = before.filter(|&(_, end, t)| end == offset && t == tag).map(|(start, _, _)| start);
        let joins = runs.get(&(offset + 1)).filter(|&&(_, t)| t == tag).map(|&(end, _)| end);
        if joins.is_some() {
            runs.remove(&(offset + 1));
        }
        let end = joins.unwrap_or(offset + 1);
        match extends {
            // The common case: a source emits its offsets in order, so the id extends a run in place.
            Some(start) => runs.get_mut(&start).expect("the run just read").0 = end,
            None => assert!(runs.insert(offset, (end, tag)).is_none(), "no run starts at an id not in"),
        }
        self.count += 1;
        None
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Every id in order, with its tag, as runs: (partition, start, end exclusive, tag).
    pub fn runs(&self) -> impl Iterator<Item = (u32, u64, u64, T)> + '_ {
        self.partitions.iter().flat_map(|(p, runs)| runs.iter().map(move |(s, (e, t))| (*p, *s, *e, *t)))
    }

    pub fn clear(&mut self) {
        self.partitions.clear();
        self.count = 0;
    }
}

impl DistinctIds {
    /// Adds an id; returns whether it was new.
    pub fn add(&mut self, partition: u32, offset: u64) -> bool {
        self.insert(partition, offset, ()).is_none()
    }

    /// How many distinct ids these are.
    pub fn count_of(ids: impl IntoIterator<Item = (u32, u64)>) -> u64 {
        let mut distinct = DistinctIds::new();
        for (partition, offset) in ids {
            distinct.add(partition, offset);
        }
        distinct.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Map;

    /// The runs hold what a map of every id to its tag holds, in any order, with rewinds, gaps and other tags.
    #[test]
    fn id_runs_hold_what_a_map_holds() {
        let mut ids: IdRuns<u32> = IdRuns::new();
        let mut map = Map::new();
        let offsets = [0u64, 1, 2, 5, 6, 1, 2, 3, 4, 4, 9, 7, 8, 8, 10, 0, 11, 12, 3];
        for (i, &o) in offsets.iter().enumerate() {
            let (p, tag) = ((i % 2) as u32, (i / 7) as u32);
            let had = map.get(&(p, o)).copied();
            if had.is_none() {
                map.insert((p, o), tag);
            }
            assert_eq!(ids.insert(p, o, tag), had, "offset {o} of partition {p}");
            assert_eq!(ids.count(), map.len() as u64);
        }
        let listed: Map<(u32, u64), u32> =
            ids.runs().flat_map(|(p, s, e, t)| (s..e).map(move |o| ((p, o), t))).collect();
        assert_eq!(listed, map);
        for ((p, s, e, t), (q, s2, _, t2)) in ids.runs().zip(ids.runs().skip(1)) {
            assert!(p != q || e < s2 || (e == s2 && t != t2), "runs overlap or touch with one tag: {s}..{e} {t}");
        }
        assert_eq!(DistinctIds::count_of([(0, 1), (0, 1), (1, 1), (0, 2)]), 3);
    }

    proptest::proptest! {
        /// Any order of inserts, partitions and tags: what a map holds, as runs that neither overlap nor touch with
        /// one tag, and lookups that agree with the map.
        #[test]
        fn id_runs_agree_with_a_map(ops in proptest::collection::vec((0u32..3, 0u64..40, 0u32..3), 0..200)) {
            let mut ids: IdRuns<u32> = IdRuns::new();
            let mut map = Map::new();
            for (p, o, tag) in ops {
                let had = map.get(&(p, o)).copied();
                if had.is_none() {
                    map.insert((p, o), tag);
                }
                proptest::prop_assert_eq!(ids.insert(p, o, tag), had);
            }
            proptest::prop_assert_eq!(ids.count(), map.len() as u64);
            for p in 0..3 {
                for o in 0..41 {
                    proptest::prop_assert_eq!(ids.get(p, o), map.get(&(p, o)).copied());
                }
            }
            let listed: Map<(u32, u64), u32> =
                ids.runs().flat_map(|(p, s, e, t)| (s..e).map(move |o| ((p, o), t))).collect();
            proptest::prop_assert_eq!(&listed, &map);
            for ((p, _, e, t), (q, s2, _, t2)) in ids.runs().zip(ids.runs().skip(1)) {
                proptest::prop_assert!(p < q || e < s2 || (e == s2 && t != t2));
            }
        }
    }
}
