//! `partition-progress` (class C):
//! - C1 (liveness): while the job is RUNNING in the liveness phase, a partition with records emitted but not
//!   acknowledged advances its acknowledged offset within `progress_within_ms`.
//! - C2: a response reaches the forwarder of its own partition, and a batch is acknowledged only after exactly its
//!   records were answered, as acknowledged up to just past the last of them (`upto_offset`: every offset before
//!   it is acknowledged, the batch's last answered offset included).
//! - C3: at most one batch in flight per store stream: as the sink labels its streams, and as the store reads them
//!   (the writes the store reads on one connection before a batch's EOT all belong to that EOT's partition).
//! - C4 (liveness): while a streaming job is RUNNING in the liveness phase, every partition configured with data
//!   (and not ended) emits within `progress_within_ms`.
//! - C5: a batch holds at least one record and at most the sink's `batch_size` (README: records per batch on the
//!   sink's store stream): as the sink sends it, and as the store reads it before the batch's EOT.
//! - C6: one store stream per partition of the sink's buffer (numaflow#2517, "a new stream for every partition";
//!   README, per-vertex partitions): records are keyed by their source partition, so source partitions `p` and `q`
//!   feed the same sink partition exactly when `p % n == q % n` for the sink's `n` partitions; a sink execution writes
//!   the batches of one sink partition on one stream, and it is the replica that owns that sink partition (replica
//!   `r` of an attempt deployed with `replicas` sink replicas owns the sink partitions `b % replicas == r`).

use super::kinds::after_ms;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, JobStatus, StoreResponse, TaskId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(crate) const NAME: &str = "partition-progress";

#[derive(Clone, Copy, Debug, Default)]
struct Lane {
    /// Offsets below this were emitted into the buffer (current attempt).
    emitted_upto: u64,
    /// Offsets below this were acknowledged by the store to the sink (current attempt).
    acked_upto: u64,
    /// When the stall clock last restarted (progress, a new attempt, the job becoming RUNNING).
    since_ms: u64,
    flagged: bool,
    /// C4: when the partition last emitted (or the clock restarted), whether it ended, whether it was flagged.
    emit_since_ms: u64,
    ended: bool,
    idle_flagged: bool,
}

impl Lane {
    /// C4: since when a partition configured with data (`data`) has owed a record, counted from `start_ms` at the
    /// earliest; `None` once it ended or was flagged.
    fn idle_since_ms(&self, data: bool, start_ms: u64) -> Option<u64> {
        (data && !self.ended && !self.idle_flagged).then(|| self.emit_since_ms.max(start_ms))
    }

    /// Since when emitted records have waited for the store's acknowledgement, counted from `start_ms` at the
    /// earliest; `None` while nothing waits or once flagged.
    fn stalled_since_ms(&self, start_ms: u64) -> Option<u64> {
        (self.emitted_upto > self.acked_upto && !self.flagged).then(|| self.since_ms.max(start_ms))
    }
}

/// One forwarder's batch in flight.
#[derive(Clone, Copy, Debug)]
struct Batch {
    count: u32,
    answered: u32,
    /// The highest offset answered so far.
    last_answered: Option<u64>,
}

#[derive(Debug)]
pub struct PartitionProgress {
    liveness_start_ms: Option<u64>,
    bound_ms: u64,
    /// C4: streaming partitions configured with data.
    with_data: Vec<bool>,
    /// C3 as the store reads it: connections already flagged.
    flagged_connections: BTreeSet<(u64, Arc<str>)>,
    running: bool,
    lanes: Vec<Lane>,
    /// (attempt, task, stream) → partition whose batch is in flight on it.
    in_flight: BTreeMap<(u32, TaskId, Arc<str>), u32>,
    /// (attempt, task, partition) → its forwarder's current batch.
    batches: BTreeMap<(u32, TaskId, u32), Batch>,
    flagged_streams: BTreeSet<(u32, TaskId, Arc<str>)>,
    /// C5: the sink's batch size, and whether an oversized batch was flagged (once a run).
    batch_size: u32,
    /// C6: the sink's partitions, and the stream each (attempt, task, sink partition) wrote on first.
    sink_partitions: u32,
    stream_of: BTreeMap<(u32, TaskId, u32), (String, u32)>,
    split_flagged: bool,
    /// C6: the sink's vertex (when the scenario's vertices are known), its replicas per attempt as deployed.
    sink_vertex: Option<u16>,
    sink_replicas: BTreeMap<u32, u16>,
    owner_flagged: bool,
    oversized_flagged: bool,
    violations: Vec<Violation>,
}

impl PartitionProgress {
    pub fn new(setup: &Setup) -> PartitionProgress {
        PartitionProgress {
            liveness_start_ms: setup.liveness_start_ms,
            bound_ms: setup.progress_within_ms,
            with_data: setup
                .rates_per_sec
                .iter()
                .map(|r| setup.mode == sluice_engine::Mode::Streaming && *r > 0)
                .collect(),
            flagged_connections: BTreeSet::new(),
            running: false,
            lanes: vec![Lane::default(); setup.partitions as usize],
            in_flight: BTreeMap::new(),
            batches: BTreeMap::new(),
            flagged_streams: BTreeSet::new(),
            batch_size: setup.sink_batch_size,
            sink_partitions: setup.sink_partitions.max(1),
            stream_of: BTreeMap::new(),
            split_flagged: false,
            sink_vertex: setup.scales.iter().position(|s| s.kind == sluice_engine::VertexKind::Sink).map(|v| v as u16),
            sink_replicas: BTreeMap::new(),
            owner_flagged: false,
            oversized_flagged: false,
            violations: Vec::new(),
        }
    }

    /// C5: a batch of `records` as `who` saw it.
    fn check_batch_size(&mut self, records: u32, who: &str, at_ms: u64) {
        // A sink sends a batch only when it holds a record: an empty batch is writes lost or miscounted on the way.
        if records == 0 && !self.oversized_flagged {
            self.oversized_flagged = true;
            self.safety(at_ms, format!("C5: {who} a batch of no record (an EOT with no write before it)"));
        }
        if records > self.batch_size && !self.oversized_flagged {
            self.oversized_flagged = true;
            let detail =
                format!("C5: {who} a batch of {records} records, above the sink's batch_size {}", self.batch_size);
            self.safety(at_ms, detail);
        }
    }

    /// C6: the batch of source partition `partition` that `task` (attempt `attempt`) sent on `stream`.
    fn check_one_stream_per_sink_partition(
        &mut self,
        attempt: u32,
        task: TaskId,
        partition: u32,
        stream: &str,
        at_ms: u64,
    ) {
        let sink_partition = partition % self.sink_partitions;
        let replicas = self.sink_replicas.get(&attempt).copied().unwrap_or(0);
        if replicas > 0 && (sink_partition % u32::from(replicas)) as u16 != task.replica && !self.owner_flagged {
            let owner = sink_partition % u32::from(replicas);
            let detail = format!(
                "C6: sink {task} (attempt {attempt}) wrote partition {partition}, which is in sink partition \
                 {sink_partition} of {}: replica {owner} of the attempt's {replicas} owns it",
                self.sink_partitions
            );
            self.owner_flagged = true;
            self.safety(at_ms, detail);
        }
        let first =
            self.stream_of.entry((attempt, task, sink_partition)).or_insert_with(|| (stream.to_string(), partition));
        if first.0 != stream && !self.split_flagged {
            let detail = format!(
                "C6: sink {task} (attempt {attempt}) wrote partition {partition} on stream {stream} but partition {} on \
                 stream {}; both feed partition {sink_partition} of the sink's {} (one stream per sink partition)",
                first.1, first.0, self.sink_partitions
            );
            self.split_flagged = true;
            self.safety(at_ms, detail);
        }
    }

    fn safety(&mut self, at_ms: u64, detail: String) {
        self.violations.push(Violation::new(NAME, at_ms, FailureClass::Safety, detail));
    }

    /// C1 at time `now_ms`.
    fn check_stalls(&mut self, now_ms: u64) {
        let Some(start) = self.liveness_start_ms else {
            return;
        };
        if !self.running || now_ms < start {
            return;
        }
        for (p, lane) in self.lanes.iter_mut().enumerate() {
            let data = self.with_data.get(p).copied().unwrap_or(false);
            if let Some(idle_since) = lane.idle_since_ms(data, start).filter(|t| now_ms > t + self.bound_ms) {
                lane.idle_flagged = true;
                let detail = format!(
                    "C4: streaming partition {p} is configured with data but emitted nothing from {idle_since} ms for \
                     {} ms while the job ran",
                    self.bound_ms
                );
                self.violations.push(Violation::new(NAME, idle_since + self.bound_ms, FailureClass::Liveness, detail));
            }
            if let Some(since) = lane.stalled_since_ms(start).filter(|t| now_ms > t + self.bound_ms) {
                lane.flagged = true;
                let detail = format!(
                    "partition {p} stalled: offsets {}..{} pending since {since} ms with no acknowledgement for {} ms",
                    lane.acked_upto, lane.emitted_upto, self.bound_ms
                );
                self.violations.push(Violation::new(NAME, since + self.bound_ms, FailureClass::Liveness, detail));
            }
        }
    }
}

impl Checker for PartitionProgress {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.check_stalls(at_ms);
        let TraceEvent::Engine(event) = &entry.event else {
            return;
        };
        match event {
            Event::SinkBatchSent { count, .. } => self.check_batch_size(*count, "the sink sent", at_ms),
            Event::StoreBatchServed { records, .. } => self.check_batch_size(*records, "the store read", at_ms),
            _ => {}
        }
        match event {
            Event::AttemptDeployed { attempt, start_offsets, placement } => {
                if let Some(sink) = self.sink_vertex {
                    let replicas = placement.iter().filter(|(t, _)| t.vertex == sink).count();
                    self.sink_replicas.insert(*attempt, u16::try_from(replicas).unwrap_or(u16::MAX));
                }
                // Bounded memory over many failovers: a zombie of an older attempt is judged from a fresh start.
                let keep_from = attempt.saturating_sub(2);
                self.sink_replicas.retain(|a, _| *a >= keep_from);
                self.stream_of.retain(|(a, _, _), _| *a >= keep_from);
                for (lane, start) in self.lanes.iter_mut().zip(start_offsets) {
                    *lane = Lane {
                        emitted_upto: *start,
                        acked_upto: *start,
                        since_ms: at_ms,
                        flagged: false,
                        emit_since_ms: at_ms,
                        ..*lane
                    };
                }
            }
            Event::StatusChanged { to, .. } => {
                self.running = *to == JobStatus::Running;
                for lane in self.lanes.iter_mut() {
                    (lane.since_ms, lane.emit_since_ms) = (at_ms, at_ms);
                }
            }
            Event::Emitted { id, .. } => {
                let lane = &mut self.lanes[id.partition as usize];
                lane.emitted_upto = lane.emitted_upto.max(id.offset + 1);
                lane.emit_since_ms = at_ms;
            }
            Event::SourceEot { partition, .. } => self.lanes[*partition as usize].ended = true,
            Event::StoreBatchServed { conn, label, partition, partitions, .. }
                if partitions.iter().any(|p| p != partition)
                    && self.flagged_connections.insert((*conn, label.clone())) =>
            {
                let detail = format!(
                    "C3: the store read writes of partitions {partitions:?} in one batch on connection {conn} ({label}), \
                     ended by partition {partition}'s EOT"
                );
                self.safety(at_ms, detail);
            }
            Event::SinkBatchSent { attempt, task, partition, stream, count, .. } => {
                self.check_one_stream_per_sink_partition(*attempt, *task, *partition, stream, at_ms);
                let key = (*attempt, *task, stream.clone());
                if let Some(other) = self.in_flight.insert(key.clone(), *partition) {
                    if self.flagged_streams.insert(key) {
                        self.safety(at_ms, format!(
                            "C3: stream {stream} carries a batch of partition {partition} while one of partition {other} is in flight"
                        ));
                    }
                }
                self.batches
                    .insert((*attempt, *task, *partition), Batch { count: *count, answered: 0, last_answered: None });
            }
            Event::SinkResponse { attempt, task, partition, stream, response } => {
                // The partition a response is about, read off the response itself.
                let about = match response {
                    StoreResponse::Ack(id) | StoreResponse::Rejected(id) => id.partition,
                    StoreResponse::EotAck { partition } => *partition,
                };
                if about != *partition {
                    let detail = format!(
                        "C2: the forwarder of partition {partition} read a response meant for partition {about} on stream {stream}"
                    );
                    self.safety(at_ms, detail);
                } else if let (StoreResponse::Ack(id), Some(b)) =
                    (response, self.batches.get_mut(&(*attempt, *task, *partition)))
                {
                    b.answered += 1;
                    b.last_answered = b.last_answered.max(Some(id.offset));
                }
            }
            Event::SinkBatchAcked { attempt, task, partition, upto_offset } => {
                if let Some(b) = self.batches.remove(&(*attempt, *task, *partition)) {
                    if b.answered != b.count {
                        let detail = format!(
                            "C2: batch of partition {partition} acknowledged after {} responses for {} records",
                            b.answered, b.count
                        );
                        self.safety(at_ms, detail);
                    }
                    if let Some(last) = b.last_answered.filter(|last| last + 1 != *upto_offset) {
                        let detail = format!(
                            "C2: batch of partition {partition} answered up to offset {last} but acknowledged as up to \
                             {upto_offset} (exclusive)"
                        );
                        self.safety(at_ms, detail);
                    }
                }
                self.in_flight.retain(|(a, t, _), p| !(*a == *attempt && *t == *task && *p == *partition));
                let lane = &mut self.lanes[*partition as usize];
                if *upto_offset > lane.acked_upto {
                    lane.acked_upto = *upto_offset;
                    lane.since_ms = at_ms;
                }
            }
            _ => {}
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::engine(&[
            EventKind::AttemptDeployed,
            EventKind::StatusChanged,
            EventKind::Emitted,
            EventKind::SourceEot,
            EventKind::StoreBatchServed,
            EventKind::SinkBatchSent,
            EventKind::SinkResponse,
            EventKind::SinkBatchAcked,
        ])
    }

    /// When `check_stalls` would first flag a lane (C1 and C4).
    fn wake_at_us(&self) -> u64 {
        let Some(start) = self.liveness_start_ms.filter(|_| self.running) else { return u64::MAX };
        let lanes = self.lanes.iter().enumerate().flat_map(|(p, lane)| {
            let data = self.with_data.get(p).copied().unwrap_or(false);
            lane.idle_since_ms(data, start).into_iter().chain(lane.stalled_since_ms(start))
        });
        lanes.min().map_or(u64::MAX, |since| after_ms(since + self.bound_ms))
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_stalls(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::RecordId;

    fn emitted(ms: u64, p: u32, o: u64) -> TraceEntry {
        at(ms, "worker-1", Event::Emitted { attempt: 1, id: RecordId { partition: p, offset: o } })
    }

    fn sent(ms: u64, p: u32, stream: &str) -> TraceEntry {
        at(
            ms,
            "worker-1",
            Event::SinkBatchSent {
                attempt: 1,
                task: sink(),
                partition: p,
                stream: stream.into(),
                first_offset: 0,
                count: 1,
            },
        )
    }

    fn response(ms: u64, p: u32, for_p: u32, stream: &str) -> TraceEntry {
        let response = StoreResponse::Ack(RecordId { partition: for_p, offset: 0 });
        at(
            ms,
            "worker-1",
            Event::SinkResponse { attempt: 1, task: sink(), partition: p, stream: stream.into(), response },
        )
    }

    fn acked(ms: u64, p: u32) -> TraceEntry {
        at(ms, "worker-1", Event::SinkBatchAcked { attempt: 1, task: sink(), partition: p, upto_offset: 1 })
    }

    fn running(ms: u64) -> TraceEntry {
        status(ms, JobStatus::Scheduled, JobStatus::Running)
    }

    #[test]
    fn passes_on_one_batch_per_stream_answered_in_full() {
        let trace = vec![
            running(0),
            emitted(1, 0, 0),
            emitted(1, 1, 0),
            sent(2, 0, "p0"),
            sent(2, 1, "p1"),
            response(3, 0, 0, "p0"),
            response(3, 1, 1, "p1"),
            acked(4, 0),
            acked(4, 1),
        ];
        assert!(run(&mut PartitionProgress::new(&setup(vec![1, 1])), &trace, 5_000).is_empty());
    }

    #[test]
    fn c3_fails_on_two_batches_in_flight_on_one_stream() {
        let trace = vec![running(0), sent(2, 0, "shared"), sent(2, 1, "shared")];
        let v = run(&mut PartitionProgress::new(&setup(vec![1, 1])), &trace, 100);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.starts_with("C3"), "{}", v[0].detail);
    }

    #[test]
    fn c2_fails_on_a_foreign_response() {
        let trace = vec![running(0), sent(2, 0, "s"), response(3, 0, 1, "s")];
        let v = run(&mut PartitionProgress::new(&setup(vec![1, 1])), &trace, 100);
        assert!(v.iter().any(|v| v.detail.starts_with("C2")), "{v:?}");
    }

    #[test]
    fn c2_fails_on_a_batch_acknowledged_short_of_its_last_record() {
        let short = at(4, "worker-1", Event::SinkBatchAcked { attempt: 1, task: sink(), partition: 0, upto_offset: 0 });
        let base = vec![running(0), emitted(1, 0, 0), sent(2, 0, "p0"), response(3, 0, 0, "p0")];
        let v = run(&mut PartitionProgress::new(&setup(vec![1])), &[base.clone(), vec![short]].concat(), 100);
        assert!(v.len() == 1 && v[0].detail.contains("answered up to offset 0 but acknowledged as up to 0"), "{v:?}");
        assert!(run(&mut PartitionProgress::new(&setup(vec![1])), &[base, vec![acked(4, 0)]].concat(), 100).is_empty());
    }

    #[test]
    fn c3_fails_when_the_store_reads_two_partitions_in_one_batch() {
        let served = |partitions: Vec<u32>| {
            let label = "v1#0/p0".to_string();
            let event = Event::StoreBatchServed {
                attempt: 1,
                conn: 3,
                label: label.into(),
                partition: 0,
                partitions,
                records: 2,
            };
            at(5, "store", event)
        };
        assert!(run(&mut PartitionProgress::new(&setup(vec![1, 1])), &[served(vec![0])], 100).is_empty());
        let v = run(&mut PartitionProgress::new(&setup(vec![1, 1])), &[served(vec![0, 1]), served(vec![0, 1])], 100);
        assert_eq!(v.len(), 1, "flagged once per connection: {v:?}");
        assert!(v[0].detail.contains("store read writes of partitions [0, 1]"), "{}", v[0].detail);
    }

    #[test]
    fn c6_fails_when_one_sink_partition_writes_on_two_streams() {
        // Three source partitions into a sink of two: partitions 0 and 2 feed sink partition 0, 1 feeds partition 1.
        let mut s = setup(vec![1, 1, 1]);
        s.sink_partitions = 2;
        let batch = |ms, p, stream| vec![sent(ms, p, stream), response(ms + 1, p, p, stream), acked(ms + 2, p)];
        let good = [batch(2, 0, "v1#0/p0"), batch(5, 2, "v1#0/p0"), batch(8, 1, "v1#0/p1")].concat();
        let v = run(&mut PartitionProgress::new(&s), &good, 100);
        assert!(v.is_empty(), "grouped by key % 2: {v:?}");
        let split = [batch(2, 0, "v1#0/p0"), batch(5, 2, "v1#0/p2")].concat();
        let v = run(&mut PartitionProgress::new(&s), &split, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.starts_with("C6: sink v1#0 (attempt 1) wrote partition 2 on stream v1#0/p2"),
            "{}",
            v[0].detail
        );
        s.sink_partitions = 3;
        assert!(run(&mut PartitionProgress::new(&s), &split, 100).is_empty(), "three sink partitions: three streams");
    }

    #[test]
    fn c6_fails_when_a_replica_writes_a_sink_partition_it_does_not_own() {
        use crate::checker::autoscaler_follows_rule::Scale;
        use sluice_engine::VertexKind;
        // Four source partitions into a sink of 2 partitions over 2 replicas: replica 1 owns sink partition 1, that is
        // source partitions 1 and 3.
        let mut s = setup(vec![1, 1, 1, 1]);
        s.sink_partitions = 2;
        let scale = |kind| Scale { kind, min: 2, max: 2, replicas: 2 };
        s.scales = vec![scale(VertexKind::Source), scale(VertexKind::Sink)];
        let task = |vertex, replica| TaskId { vertex, replica };
        let placement = vec![(task(0, 0), 1), (task(0, 1), 2), (task(1, 0), 1), (task(1, 1), 2)];
        let deployed =
            at(1, "coordinator", Event::AttemptDeployed { attempt: 1, start_offsets: vec![0; 4], placement });
        let by = |replica, p| {
            let event = Event::SinkBatchSent {
                attempt: 1,
                task: task(1, replica),
                partition: p,
                stream: format!("v1#{replica}/p{}", p % 2).into(),
                first_offset: 0,
                count: 1,
            };
            at(2, "worker-1", event)
        };
        assert!(run(&mut PartitionProgress::new(&s), &[deployed.clone(), by(1, 3)], 100).is_empty());
        let v = run(&mut PartitionProgress::new(&s), &[deployed.clone(), by(0, 3)], 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("replica 1 of the attempt's 2 owns it"), "{}", v[0].detail);
        s.scales.clear();
        assert!(run(&mut PartitionProgress::new(&s), &[deployed, by(0, 3)], 100).is_empty(), "no vertices, no owner");
    }

    #[test]
    fn c5_fails_on_a_batch_above_the_batch_size() {
        let served = |records: u32| {
            let label = "v1#0/p0".to_string();
            let event = Event::StoreBatchServed {
                attempt: 1,
                conn: 3,
                label: label.into(),
                partition: 0,
                partitions: vec![0],
                records,
            };
            at(5, "store", event)
        };
        let mut s = setup(vec![1, 1]);
        s.sink_batch_size = 2;
        assert!(run(&mut PartitionProgress::new(&s), &[served(2), sent(6, 0, "s")], 100).is_empty());
        let v = run(&mut PartitionProgress::new(&s), &[served(3), served(3)], 100);
        assert_eq!(v.len(), 1, "flagged once: {v:?}");
        assert!(v[0].detail.contains("the store read a batch of 3 records, above the sink's batch_size 2"));
        let v = run(&mut PartitionProgress::new(&s), &[served(0)], 100);
        assert!(v.len() == 1 && v[0].detail.contains("the store read a batch of no record"), "{v:?}");
        s.sink_batch_size = 0;
        let v = run(&mut PartitionProgress::new(&s), &[sent(6, 0, "s")], 100);
        assert!(v[0].detail.contains("C5: the sink sent a batch of 1 records"), "{v:?}");
    }

    #[test]
    fn c4_fails_on_a_streaming_partition_with_data_that_never_emits() {
        let mut s = setup(vec![u64::MAX, u64::MAX]);
        s.mode = sluice_engine::Mode::Streaming;
        s.rates_per_sec = vec![10, 0];
        s.progress_within_ms = 10_000;
        let trace = vec![running(0)];
        assert!(run(&mut PartitionProgress::new(&s), &trace, 5_000).is_empty(), "within the bound");
        let v = run(&mut PartitionProgress::new(&s), &trace, 15_000);
        assert_eq!(v.len(), 1, "partition 1 has no data and owes nothing: {v:?}");
        assert!(v[0].detail.starts_with("C4: streaming partition 0"), "{}", v[0].detail);
    }

    #[test]
    fn c1_fails_on_a_stalled_partition_and_not_before_the_bound() {
        let trace = vec![running(0), emitted(10, 0, 0)];
        assert!(run(&mut PartitionProgress::new(&setup(vec![1])), &trace, 900).is_empty());
        let v = run(&mut PartitionProgress::new(&setup(vec![1])), &trace, 5_000);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].class, FailureClass::Liveness);
        let mut s = setup(vec![1]);
        s.liveness_start_ms = None;
        assert!(run(&mut PartitionProgress::new(&s), &trace, 5_000).is_empty(), "no liveness phase, no C1");
    }
}
