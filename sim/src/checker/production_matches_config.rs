//! `production-matches-config`: what the source put into the job is what the scenario configured.
//!
//! The model is the scenario as written (`records`, `skew`, `rate_per_sec`, split by [`super::config::shares`]) and
//! the `end-partition` faults in the trace; nothing of the engine's own computation. For every source execution (a
//! node, a task, an attempt) and partition:
//! - offsets are emitted one after another from where its attempt starts (`attempt-deployed`), no gap, no repeat,
//!   and none after its EOT;
//! - batch: no offset at or beyond the partition's configured records; its EOT comes at exactly that many records,
//!   unless an `end-partition` cut it first: then at what had been read when the fault came (what had been emitted,
//!   plus at most the one record an emitter reads before it emits it);
//! - streaming: a partition configured with 0 records per second emits nothing, and one never ends without an
//!   `end-partition`;
//! - an execution never emits faster than its partition's configured rate (a little slack for integer pacing);
//! - the execution sends one EOT per partition; injected duplicates (`eot-duplicated`) repeat its end offset.

use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, Mode, RecordId, TaskId};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) const NAME: &str = "production-matches-config";
/// Records an emitter may be ahead of its configured rate (the first record goes out at once).
const RATE_BURST: u64 = 2;
/// Violations reported per run at most (the first says what went wrong; the rest repeat it).
const REPORT_AT_MOST: usize = 5;

/// One source execution's emission of one partition.

#[derive(Clone, Copy, Debug)]
struct Emitter {
    next_offset: u64,
    emitted: u64,
    first_us: u64,
    eot: Option<u64>,
}

#[derive(Debug)]
pub struct ProductionMatchesConfig {
    batch: bool,
    initial_records: Vec<u64>,
    rates_per_sec: Vec<u64>,
    /// Start offsets of each attempt, as deployed.
    starts: BTreeMap<u32, Vec<u64>>,
    /// By node, then (attempt, partition): within an attempt one replica owns a partition. Two levels, so that an
    /// emitted record looks its emitter up by the entry's node name without allocating a key.
    emitters: BTreeMap<Arc<str>, BTreeMap<(u32, u32), Emitter>>,
    /// Highest offset + 1 emitted so far, per partition, by any execution.
    emitted_upto: Vec<u64>,
    /// Where an `end-partition` sealed each partition: (at least, at most).
    cut: Vec<Option<(u64, u64)>>,
    violations: Vec<Violation>,
}

impl ProductionMatchesConfig {
    pub fn new(setup: &Setup) -> ProductionMatchesConfig {
        let n = setup.partitions as usize;
        ProductionMatchesConfig {
            batch: setup.mode == Mode::Batch,
            initial_records: setup.initial_records.clone(),
            rates_per_sec: setup.rates_per_sec.clone(),
            starts: BTreeMap::new(),
            emitters: BTreeMap::new(),
            emitted_upto: vec![0; n],
            cut: vec![None; n],
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, at_ms: u64, detail: String) {
        if self.violations.len() < REPORT_AT_MOST {
            self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
        }
    }

    fn emitter(&mut self, node: &Arc<str>, attempt: u32, partition: u32, at_us: u64) -> &mut Emitter {
        let start = self.starts.get(&attempt).and_then(|s| s.get(partition as usize)).copied().unwrap_or(0);
        let of_node = self.emitters.entry(node.clone()).or_default();
        of_node.entry((attempt, partition)).or_insert(Emitter {
            next_offset: start,
            emitted: 0,
            first_us: at_us,
            eot: None,
        })
    }

    fn on_emitted(&mut self, entry: &TraceEntry, attempt: u32, id: RecordId) {
        let (at_ms, p) = (entry.at_ms(), id.partition as usize);
        if self.batch && id.offset >= self.initial_records[p] {
            let n = self.initial_records[p];
            self.violation(at_ms, format!("record {}:{} emitted, but the partition holds {n} records", p, id.offset));
        }
        if !self.batch && self.rates_per_sec[p] == 0 {
            self.violation(
                at_ms,
                format!("record {p}:{} emitted, but partition {p} is configured with no data", id.offset),
            );
        }
        self.emitted_upto[p] = self.emitted_upto[p].max(id.offset + 1);
        let rate = self.rates_per_sec[p];
        let emitter = self.emitter(&entry.node, attempt, id.partition, entry.at_us);
        let e = *emitter;
        emitter.next_offset = id.offset + 1;
        emitter.emitted += 1;
        let mut problems = Vec::new();
        if let Some(end) = e.eot {
            problems.push(format!("record {p}:{} emitted after the partition's EOT at {end}", id.offset));
        }
        if id.offset != e.next_offset {
            problems.push(format!(
                "{} emitted record {p}:{} where {} comes next (attempt {attempt})",
                entry.node, id.offset, e.next_offset
            ));
        }
        let allowed = RATE_BURST + (entry.at_us - e.first_us) * rate * 101 / 100 / 1_000_000;
        if rate > 0 && e.emitted + 1 > allowed {
            problems.push(format!(
                "{} emitted {} records of partition {p} in {} ms, above the configured {rate} per second",
                entry.node,
                e.emitted + 1,
                (entry.at_us - e.first_us) / 1000
            ));
        }
        for detail in problems {
            self.violation(at_ms, detail);
        }
    }

    fn on_eot(&mut self, entry: &TraceEntry, attempt: u32, task: TaskId, partition: u32, end_offset: u64) {
        let (at_ms, p) = (entry.at_ms(), partition as usize);
        let e = self.emitter(&entry.node, attempt, partition, entry.at_us);
        let (previous, next) = (e.eot, e.next_offset);
        e.eot = Some(end_offset);
        if let Some(first) = previous {
            self.violation(at_ms, format!("{task} sent a second EOT of partition {p} (first at offset {first})"));
        }
        if end_offset != next {
            self.violation(
                at_ms,
                format!("EOT of partition {p} at offset {end_offset}, but {next} records precede it"),
            );
        }
        let expected = match self.cut[p] {
            Some((lo, hi)) => (lo.min(self.initial_records[p]), hi.min(self.initial_records[p])),
            None if self.batch => (self.initial_records[p], self.initial_records[p]),
            None => {
                let detail = format!("streaming partition {p} sent an EOT (at {end_offset}) with no end-partition");
                return self.violation(at_ms, detail);
            }
        };
        if !(expected.0..=expected.1).contains(&end_offset) {
            let what = if self.cut[p].is_some() { "after its end-partition" } else { "as configured" };
            let detail = format!(
                "EOT of partition {p} at offset {end_offset}, but it holds {}..={} records {what}",
                expected.0, expected.1
            );
            self.violation(at_ms, detail);
        }
    }
}

impl Checker for ProductionMatchesConfig {
    fn on_entry(&mut self, entry: &TraceEntry) {
        match &entry.event {
            TraceEvent::Fault(Action::EndPartition { partition }) => {
                let p = *partition as usize;
                // The external source keeps what was read: what was emitted, plus one record read and not yet sent.
                if self.cut[p].is_none() {
                    self.cut[p] = Some((self.emitted_upto[p], self.emitted_upto[p] + 1));
                }
            }
            // A killed node's executions are gone: one started there again (a deploy re-sent to the restarted node)
            // emits from its attempt's start.
            TraceEvent::Fault(Action::Crash { node } | Action::Restart { node }) => {
                let node = node.label();
                self.emitters.remove(node.as_str());
            }
            TraceEvent::Engine(Event::AttemptDeployed { attempt, start_offsets, .. }) => {
                self.starts.insert(*attempt, start_offsets.clone());
            }
            TraceEvent::Engine(Event::Emitted { attempt, id }) => self.on_emitted(entry, *attempt, *id),
            TraceEvent::Engine(Event::SourceEot { attempt, task, partition, end_offset }) => {
                self.on_eot(entry, *attempt, *task, *partition, *end_offset)
            }
            TraceEvent::Engine(Event::EotDuplicated { attempt, task, partition, end_offset, .. }) => {
                let eot =
                    self.emitters.get(&*entry.node).and_then(|e| e.get(&(*attempt, *partition))).and_then(|e| e.eot);
                if eot != Some(*end_offset) {
                    let eot = eot.map_or("not sent".to_string(), |at| format!("at {at}"));
                    let detail = format!(
                        "{task} duplicated the EOT of partition {partition} at {end_offset}, but its EOT was {eot}"
                    );
                    self.violation(entry.at_ms(), detail);
                }
            }
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::FAULT.and(Kinds::engine(&[
            EventKind::AttemptDeployed,
            EventKind::Emitted,
            EventKind::SourceEot,
            EventKind::EotDuplicated,
        ]))
    }

    fn wake_at_us(&self) -> u64 {
        u64::MAX
    }

    fn finish(&mut self, _end: &End) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    fn deployed(ms: u64, attempt: u32, starts: Vec<u64>) -> TraceEntry {
        at(ms, "coordinator", Event::AttemptDeployed { attempt, start_offsets: starts, placement: vec![] })
    }

    fn emitted(ms: u64, attempt: u32, p: u32, o: u64) -> TraceEntry {
        at(ms, "worker-1", Event::Emitted { attempt, id: RecordId { partition: p, offset: o } })
    }

    fn eot(ms: u64, attempt: u32, p: u32, end: u64) -> TraceEntry {
        let task = TaskId { vertex: 0, replica: 0 };
        at(ms, "worker-1", Event::SourceEot { attempt, task, partition: p, end_offset: end })
    }

    fn check(setup: &Setup, trace: &[TraceEntry]) -> Vec<Violation> {
        run(&mut ProductionMatchesConfig::new(setup), trace, 100_000)
    }

    #[test]
    fn passes_on_the_configured_records_across_a_restart() {
        let trace = vec![
            deployed(0, 1, vec![0]),
            emitted(10, 1, 0, 0),
            emitted(20, 1, 0, 1),
            deployed(500, 2, vec![1]),
            emitted(510, 2, 0, 1),
            emitted(520, 2, 0, 2),
            eot(530, 2, 0, 3),
        ];
        assert!(check(&setup(vec![3]), &trace).is_empty(), "{:?}", check(&setup(vec![3]), &trace));
    }

    #[test]
    fn fails_on_extra_missing_and_skipped_records() {
        let extra = vec![deployed(0, 1, vec![0]), emitted(10, 1, 0, 0), emitted(20, 1, 0, 1), eot(30, 1, 0, 2)];
        let v = check(&setup(vec![1]), &extra);
        assert!(v.iter().any(|v| v.detail.contains("holds 1 records")), "{v:?}");
        let short = vec![deployed(0, 1, vec![0]), emitted(10, 1, 0, 0), eot(30, 1, 0, 1)];
        assert!(check(&setup(vec![2]), &short).iter().any(|v| v.detail.contains("as configured")));
        let gap = vec![deployed(0, 1, vec![0]), emitted(10, 1, 0, 0), emitted(20, 1, 0, 2)];
        assert!(check(&setup(vec![3]), &gap).iter().any(|v| v.detail.contains("where 1 comes next")));
    }

    #[test]
    fn an_end_partition_cuts_at_what_was_read() {
        let base =
            vec![deployed(0, 1, vec![0]), emitted(10, 1, 0, 0), fault(15, Action::EndPartition { partition: 0 })];
        for (end, ok) in [(1, true), (2, true), (3, false), (10, false)] {
            let mut trace = base.clone();
            trace.extend((1..end).map(|o| emitted(20 + o, 1, 0, o)));
            trace.push(eot(40, 1, 0, end));
            assert_eq!(check(&setup(vec![10]), &trace).is_empty(), ok, "EOT at {end}");
        }
    }

    #[test]
    fn streaming_rates_bound_what_is_emitted() {
        let mut s = setup(vec![u64::MAX, u64::MAX]);
        s.mode = Mode::Streaming;
        s.rates_per_sec = vec![10, 0];
        let paced: Vec<TraceEntry> =
            std::iter::once(deployed(0, 1, vec![0, 0])).chain((0..10).map(|o| emitted(o * 100, 1, 0, o))).collect();
        assert!(check(&s, &paced).is_empty());
        let fast: Vec<TraceEntry> =
            std::iter::once(deployed(0, 1, vec![0, 0])).chain((0..10).map(|o| emitted(o * 10, 1, 0, o))).collect();
        assert!(check(&s, &fast).iter().any(|v| v.detail.contains("above the configured 10 per second")));
        let idle = vec![deployed(0, 1, vec![0, 0]), emitted(10, 1, 1, 0)];
        assert!(check(&s, &idle).iter().any(|v| v.detail.contains("no data")));
    }
}
