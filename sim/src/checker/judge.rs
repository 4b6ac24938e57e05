//! The judge of a run: every checker, fed entry by entry while the run records them, and the count of distinct
//! records produced. Nothing here needs the whole trace, so a run's memory does not grow with its trace.
//!
//! A checker reads only the entries of its [`Kinds`] and those at or after its next deadline ([`Checker::wake_at_us`]);
//! see [`super::kinds`].

use super::{all, Checker, End, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent, TraceObserver};
use sluice_engine::Event;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One checker, what it reads, and when it next needs to look at its deadlines.
#[derive(Debug)]
struct Seat {
    checker: Box<dyn Checker>,
    kinds: Kinds,
    wake_at_us: u64,
}

/// Every checker of one run, in the order `all` lists them.
#[derive(Debug)]
pub struct Judge {
    seats: Vec<Seat>,
    /// Per kind of entry (its index in [`Kinds`]), the seats that read it, in order.
    readers: Vec<Vec<usize>>,
    /// No seat's `wake_at_us` is earlier: before it, an entry goes to its kind's readers only.
    next_wake_us: u64,
    produced: DistinctIds,
}

impl Judge {
    pub fn new(setup: &Setup) -> Judge {
        Judge::seated(all(setup), true)
    }

    /// Every checker reads every entry, whatever it says it reads (what the dispatch by kind must agree with).
    pub fn every_entry(setup: &Setup) -> Judge {
        Judge::seated(all(setup), false)
    }

    fn seated(checkers: Vec<Box<dyn Checker>>, dispatch: bool) -> Judge {
        let seats = checkers
            .into_iter()
            .map(|checker| {
                let (kinds, wake_at_us) =
                    if dispatch { (checker.kinds(), checker.wake_at_us()) } else { (Kinds::ALL, 0) };
                Seat { checker, kinds, wake_at_us }
            })
            .collect::<Vec<_>>();
        let readers = (0..Kinds::INDICES)
            .map(|kind| (0..seats.len()).filter(|&i| seats[i].kinds.has_index(kind)).collect())
            .collect();
        let next_wake_us = seats.iter().map(|s| s.wake_at_us).min().unwrap_or(u64::MAX);
        Judge { seats, readers, next_wake_us, produced: DistinctIds::new() }
    }

    /// Distinct records the sources emitted so far.
    pub fn produced(&self) -> u64 {
        self.produced.count
    }

    /// Every checker's verdict; violations sorted by time, then name.
    pub fn finish(&mut self, end: &End) -> Vec<Violation> {
        let mut out: Vec<Violation> = self.seats.iter_mut().flat_map(|s| s.checker.finish(end)).collect();
        out.sort_by(|a, b| (a.at_ms, &a.invariant).cmp(&(b.at_ms, &b.invariant)));
        out
    }

    pub fn on_entry(&mut self, entry: &TraceEntry) {
        self.produced.add_if_emitted(entry);
        let kind = Kinds::index_of(entry);
        if entry.at_us >= self.next_wake_us {
            // A deadline may be due: every seat is offered the entry.
            let of_kind = Kinds::of(entry);
            for seat in self.seats.iter_mut() {
                offer(seat.checker.as_mut(), seat.kinds, &mut seat.wake_at_us, entry, of_kind);
            }
            self.next_wake_us = self.seats.iter().map(|s| s.wake_at_us).min().unwrap_or(u64::MAX);
            return;
        }
        // No deadline is due: the entry's readers are the seats that read it. A reader's deadline may move; the
        // minimum stays a lower bound of every seat's.
        for &i in &self.readers[kind] {
            let seat = &mut self.seats[i];
            assert!(seat.kinds.has_index(kind) && entry.at_us < seat.wake_at_us);
            seat.checker.on_entry(entry);
            if seat.kinds != Kinds::ALL {
                seat.wake_at_us = seat.checker.wake_at_us();
                self.next_wake_us = self.next_wake_us.min(seat.wake_at_us);
            }
        }
    }
}

/// Two judges of one run, for tests of the dispatch by kind: one dispatching, one handing every checker every entry.
/// The two copies of each checker must hold the same state (compared by their `Debug` form, every `COMPARE_EVERY`
/// entries): an entry the dispatching judge skipped changed nothing. At the end their verdicts must be equal. A
/// checker that reads less than it needs shows here soon after the first entry it misses, not only when a verdict
/// happens to differ.
pub struct JudgePair {
    dispatched: Judge,
    every_entry: Judge,
    entries: u64,
    first_difference: Option<String>,
}

impl JudgePair {
    pub fn new(setup: &Setup) -> JudgePair {
        JudgePair {
            dispatched: Judge::new(setup),
            every_entry: Judge::every_entry(setup),
            entries: 0,
            first_difference: None,
        }
    }

    pub fn on_entry(&mut self, entry: &TraceEntry) {
        self.entries += 1;
        self.every_entry.on_entry(entry);
        self.dispatched.on_entry(entry);
        // Comparing after every entry costs more than the test can afford. A skipped entry that changed a checker
        // leaves its copies apart for as long as the field it changed is not set again, which is most often until
        // the end of the run: one look in `COMPARE_EVERY` entries finds it.
        if self.first_difference.is_some() || !self.entries.is_multiple_of(COMPARE_EVERY) {
            return;
        }
        for (seat, every) in self.dispatched.seats.iter().zip(&self.every_entry.seats) {
            let (skipped, reading) = (format!("{:?}", seat.checker), format!("{:?}", every.checker));
            if skipped != reading {
                let name = skipped.split([' ', '{']).next().unwrap_or_default();
                self.first_difference = Some(format!(
                    "{name} skipped entry {} ({entry:?}), or one before it, and it changes the checker: {}",
                    self.entries,
                    first_difference(&skipped, &reading)
                ));
                break;
            }
        }
    }

    /// The verdict, when both judges agreed throughout; else where they first differed.
    pub fn finish(&mut self, end: &End) -> Result<Vec<Violation>, String> {
        let (dispatched, every_entry) = (self.dispatched.finish(end), self.every_entry.finish(end));
        if let Some(difference) = self.first_difference.take() {
            return Err(difference);
        }
        if dispatched != every_entry {
            return Err(format!(
                "verdict if dispatched: {dispatched:?}; verdict if every entry is read: {every_entry:?}"
            ));
        }
        Ok(dispatched)
    }
}

/// Where two `Debug` forms part, with some context.
fn first_difference(skipped: &str, reading: &str) -> String {
    let at = skipped.bytes().zip(reading.bytes()).take_while(|(a, b)| a == b).count();
    let around = |s: &str| {
        let (mut from, mut to) = (at.saturating_sub(80), (at + 80).min(s.len()));
        while !s.is_char_boundary(from) {
            from -= 1;
        }
        while !s.is_char_boundary(to) {
            to += 1;
        }
        s[from..to].to_string()
    };
    format!("state if skipped: …{}…; state if read: …{}…", around(skipped), around(reading))
}

/// A [`JudgePair`] compares its checkers' states at every this many entries.
const COMPARE_EVERY: u64 = 32;

/// A pair of judges the recorder feeds.
#[derive(Clone)]
pub struct SharedJudgePair(pub Arc<Mutex<JudgePair>>);

impl TraceObserver for SharedJudgePair {
    fn on_entry(&mut self, entry: &TraceEntry) {
        self.0.lock().expect("judge pair lock").on_entry(entry);
    }
}

/// Hands `entry` (of kind `kind`) to `checker` if it reads it: an entry of its `kinds`, or one at or after
/// `wake_at_us` (which it then moves to the checker's next deadline).
pub(crate) fn offer(checker: &mut dyn Checker, kinds: Kinds, wake_at_us: &mut u64, entry: &TraceEntry, kind: Kinds) {
    debug_assert_eq!(kind, Kinds::of(entry));
    if entry.at_us >= *wake_at_us || kinds.meets(kind) {
        checker.on_entry(entry);
        if kinds != Kinds::ALL {
            *wake_at_us = checker.wake_at_us();
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
    /// Adds the record an `emitted` entry is about.
    fn add_if_emitted(&mut self, entry: &TraceEntry) {
        if let TraceEvent::Engine(Event::Emitted { id, .. }) = &entry.event {
            self.add(id.partition, id.offset);
        }
    }

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
