//! The sink's store side: one forwarder per owned buffer partition, each writing its channels' records to the store
//! with the EOT-framed batch protocol of class C (N records, then EOT; then N responses and the EOT response) on a
//! store stream of its own, one batch in flight at a time. A buffer partition fed by several channels gathers one
//! batch per channel and writes them one after the other; a batch holds one channel's records.
//!
//! Canary living here: `shared-partition-stream` (the forwarders of one replica share one store stream, and read its
//! answers without asking whose they are).

use crate::buggify::BuggifyPoint;
use crate::canary::{Canaries, Canary};
use crate::event::{Event, StoreResponse, Tracer};
use crate::job::Record;
use crate::net::Deployment;
use crate::store::{StoreFrame, StoreStream};
use crate::stream::{Scope, StreamError};
use crate::timer::Deadline;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the consume loop hands a forwarder.
pub(crate) enum ToForwarder {
    /// A record and the checkpoint whose transaction it belongs to (`None`: commit on write).
    Record(Record, Option<u64>),
    /// Flush now: the partition's EOT was read, or a barrier is aligned.
    Flush,
}

/// What a forwarder reports back.
pub(crate) enum FromForwarder {
    /// A batch of `count` records was answered; offsets below `upto_offset` are acknowledged.
    Acked {
        partition: u32,
        count: u32,
    },
    Failed(StreamError),
}

/// A sink replica's store side: one forwarder per owned buffer partition, and which channel feeds which.
pub(crate) struct Forwarders {
    /// The store streams, open for as long as the replica runs (a forwarder that stopped does not close its stream).
    _streams: BTreeMap<Arc<str>, Arc<StoreStream>>,
    by_buffer: BTreeMap<u32, mpsc::Sender<ToForwarder>>,
    buffer_of: BTreeMap<u32, u32>,
    /// Records written to the store and not yet answered, over all forwarders.
    pub(crate) in_flight: Arc<AtomicU64>,
}

impl Forwarders {
    /// Opens the store streams of the buffer partitions the owned channels feed (concurrently: one after the other,
    /// 1024 partitions wait 1024 round trips before the first write) and starts a forwarder on each, in `scope`.
    pub(crate) async fn start(
        dep: &Arc<Deployment>,
        tracer: &Tracer,
        canaries: Canaries,
        scope: &mut Scope,
        report_tx: &mpsc::Sender<FromForwarder>,
    ) -> Result<Forwarders, StreamError> {
        let (spec, attempt, task) = (&dep.spec, dep.attempt, dep.task);
        let timings = spec.timings;
        let owned = spec.owned_partitions(task);
        let batch_size = spec.vertices[task.vertex as usize].batch_size.max(1);
        // The fix of numaflow#2516: a new stream for every partition. The canary shares one per replica.
        let shared = canaries.has(Canary::SharedPartitionStream);
        let label_of =
            |b: u32| -> Arc<str> { Arc::from(if shared { format!("{task}/shared") } else { format!("{task}/p{b}") }) };
        let buffer_of: BTreeMap<u32, u32> = owned.iter().map(|&c| (c, spec.buffer_partition(task.vertex, c))).collect();
        let buffers: BTreeSet<u32> = buffer_of.values().copied().collect();
        let labels: BTreeSet<Arc<str>> = buffers.iter().map(|&b| label_of(b)).collect();
        let opens = labels.iter().map(|label| async move {
            let stream = StoreStream::open(attempt, label.clone(), timings.connect_wait_ms, tracer)
                .await
                .map_err(|why| StreamError::Connect { to: crate::net::NodeName::Store.data(), why })?;
            Ok::<_, StreamError>((label.clone(), Arc::new(stream)))
        });
        let streams: BTreeMap<Arc<str>, Arc<StoreStream>> =
            crate::join::try_join_in_order(opens).await?.into_iter().collect();
        assert_eq!(streams.len(), labels.len(), "one store stream per label");
        let in_flight = Arc::new(AtomicU64::new(0));
        let mut by_buffer = BTreeMap::new();
        for &b in &buffers {
            let stream = streams.get(&label_of(b)).expect("every owned buffer partition's stream was opened").clone();
            // Room for every record its channels' credits allow, and their flushes: handing a record on never waits
            // for the forwarder, which may itself be waiting for the consume loop to take its report.
            let channels = buffer_of.values().filter(|fed| **fed == b).count();
            assert!(channels > 0, "buffer partition {b} is owned because a channel feeds it");
            let (tx, rx) = mpsc::channel((timings.stream_window as usize + 2) * channels);
            by_buffer.insert(b, tx);
            let fwd = Forwarder {
                tracer: tracer.clone(),
                dep: dep.clone(),
                stream,
                batch_size,
                in_flight: in_flight.clone(),
                shared_stream_canary: shared,
            };
            scope.spawn(fwd.run(rx, report_tx.clone()));
        }
        assert_eq!(by_buffer.len(), buffers.len(), "a forwarder per owned buffer partition");
        Ok(Forwarders { _streams: streams, by_buffer, buffer_of, in_flight })
    }

    /// Hands `msg` about channel `partition` to the forwarder of the buffer partition that channel feeds.
    pub(crate) async fn forward(&self, partition: u32, msg: ToForwarder) -> Result<(), StreamError> {
        let buffer = self.buffer_of.get(&partition).expect("an owned channel feeds an owned buffer partition");
        let tx = self.by_buffer.get(buffer).expect("a forwarder per owned buffer partition");
        tx.send(msg).await.map_err(|_| StreamError::Broken { partition, why: "forwarder gone".into() })
    }

    /// Asks every forwarder to write what it gathered.
    pub(crate) async fn flush_all(&self) {
        for tx in self.by_buffer.values() {
            let _ = tx.send(ToForwarder::Flush).await;
        }
    }
}

/// One channel's batch being gathered, and when its first record came.
struct Gathering {
    records: Vec<(Record, Option<u64>)>,
    since: tokio::time::Instant,
}

impl Gathering {
    fn new(since: tokio::time::Instant) -> Gathering {
        Gathering { records: Vec::new(), since }
    }
}

/// Writes one buffer partition's records to the store, one batch in flight at a time; a batch holds the records of
/// one channel (source partition), so batches and their acknowledgements stay in the channel's order.
struct Forwarder {
    tracer: Tracer,
    dep: Arc<Deployment>,
    stream: Arc<StoreStream>,
    batch_size: u32,
    /// Records written to the store and not yet answered, over all forwarders of the replica.
    in_flight: Arc<AtomicU64>,
    /// The `shared-partition-stream` canary: NumaFlow before 1.4.4 read a batch's answers off the replica's one
    /// shared stream without asking whose they were, and without a response timeout.
    shared_stream_canary: bool,
}

impl Forwarder {
    /// Gathers records into one batch per channel and writes a batch once it is full, once a flush asks for all of
    /// them, or once it waited `flush_ms`: the round's deadline (counted from when the forwarder began gathering)
    /// flushes every batch; a batch that waited `flush_ms` goes out with the next full one.
    async fn run(self, mut rx: mpsc::Receiver<ToForwarder>, report: mpsc::Sender<FromForwarder>) {
        let flush_after = Duration::from_millis(self.dep.spec.timings.flush_ms);
        let mut gathering: BTreeMap<u32, Gathering> = BTreeMap::new();
        // One deadline for the whole life of the forwarder, moved every round and every answer: a timer per record
        // (a `timeout` around each receive) filled the runtime's heap with timers that later woke it for nothing.
        let mut round_deadline = Deadline::after(flush_after);
        let mut response_deadline = Deadline::after(Duration::ZERO);
        loop {
            round_deadline.reset(crate::timer::now() + flush_after);
            let (mut flush, mut timed_out) = (false, false);
            // Full batches went out last round, so none is full yet; only the batch a record joins can become full.
            debug_assert!(gathering.values().all(|b| (b.records.len() as u32) < self.batch_size));
            let mut full = false;
            while !flush && !full {
                let next = if gathering.is_empty() {
                    rx.recv().await
                } else {
                    tokio::select! {
                        biased;
                        next = rx.recv() => next,
                        _ = &mut round_deadline => {
                            timed_out = true;
                            break;
                        }
                    }
                };
                match next {
                    Some(ToForwarder::Record(r, txn)) => {
                        let since = crate::timer::now();
                        let batch = gathering.entry(r.id.partition).or_insert_with(|| Gathering::new(since));
                        batch.records.push((r, txn));
                        full = batch.records.len() as u32 >= self.batch_size;
                    }
                    Some(ToForwarder::Flush) => flush = true,
                    None => return,
                }
            }
            let now = crate::timer::now();
            let due: Vec<u32> = gathering
                .iter()
                .filter(|(_, b)| {
                    flush || timed_out || b.records.len() as u32 >= self.batch_size || b.since + flush_after <= now
                })
                .map(|(channel, _)| *channel)
                .collect();
            for channel in due {
                let mut batch = gathering.remove(&channel).expect("a due batch is gathering").records;
                // Buggify: the batch goes out as two smaller ones, in order.
                let rest = (batch.len() > 1 && self.tracer.buggify(BuggifyPoint::BatchSplit))
                    .then(|| batch.split_off(batch.len() / 2));
                for part in std::iter::once(batch).chain(rest) {
                    if !self.send_and_report(part, &report, &mut response_deadline).await {
                        return;
                    }
                }
            }
        }
    }

    /// Writes one channel's batch and reports the outcome to the consume loop; `false`: the forwarder stops (the
    /// batch failed, or the loop is gone).
    async fn send_and_report(
        &self,
        batch: Vec<(Record, Option<u64>)>,
        report: &mpsc::Sender<FromForwarder>,
        response_deadline: &mut Deadline,
    ) -> bool {
        let count = batch.len() as u32;
        let partition = batch[0].0.id.partition;
        assert!(count <= self.batch_size, "a batch of {count} records, above the batch size {}", self.batch_size);
        assert!(batch.iter().all(|(r, _)| r.id.partition == partition), "a batch holds one channel's records");
        self.in_flight.fetch_add(count as u64, Ordering::SeqCst);
        let result = self.write_batch(batch, response_deadline).await;
        let before = self.in_flight.fetch_sub(count as u64, Ordering::SeqCst);
        assert!(before >= count as u64, "{count} records answered, but only {before} were in flight");
        let msg = match result {
            Ok(()) => FromForwarder::Acked { partition, count },
            Err(e) => FromForwarder::Failed(e),
        };
        let failed = matches!(msg, FromForwarder::Failed(_));
        report.send(msg).await.is_ok() && !failed
    }

    /// Sends N records and the EOT, then reads until N responses and the EOT response have arrived, each within the
    /// response timeout of the one before (`response_deadline` is moved along).
    async fn write_batch(
        &self,
        batch: Vec<(Record, Option<u64>)>,
        response_deadline: &mut Deadline,
    ) -> Result<(), StreamError> {
        let (attempt, task, partition) = (self.dep.attempt, self.dep.task, batch[0].0.id.partition);
        let label = self.stream.label.clone();
        let broken = |why: String| StreamError::Broken { partition, why };
        let first_offset = batch[0].0.id.offset;
        let upto_offset = batch[batch.len() - 1].0.id.offset + 1;
        self.tracer.emit(Event::SinkBatchSent {
            attempt,
            task,
            partition,
            stream: label.clone(),
            first_offset,
            count: batch.len() as u32,
        });
        let expected: BTreeSet<u64> = batch.iter().map(|(r, _)| r.id.offset).collect();
        for (r, txn) in &batch {
            self.stream.send(StoreFrame::Write { record: *r, txn: *txn }).await.map_err(broken)?;
        }
        self.stream.send(StoreFrame::Eot { partition }).await.map_err(broken)?;
        if self.shared_stream_canary {
            return self.canary_shared_stream_answers(partition, &expected, upto_offset).await;
        }
        let mut answered = 0usize;
        let timeout = Duration::from_millis(self.dep.spec.timings.store_response_timeout_ms);
        loop {
            response_deadline.reset(crate::timer::now() + timeout);
            let response = tokio::select! {
                biased;
                response = self.stream.recv() => response.map_err(broken)?,
                _ = &mut *response_deadline => {
                    return Err(broken(format!("no response from the store within {} ms", timeout.as_millis())));
                }
            };
            self.tracer.emit(Event::SinkResponse { attempt, task, partition, stream: label.clone(), response });
            let protocol = |why: String| StreamError::Protocol { partition, why };
            match response {
                StoreResponse::Ack(id) => {
                    // A partition's stream carries its own batches only, one at a time, answered in order.
                    assert!(
                        id.partition == partition && expected.contains(&id.offset),
                        "{id:?} acknowledged on the stream of partition {partition}'s batch {expected:?}"
                    );
                    answered += 1;
                }
                StoreResponse::Rejected(id) => {
                    return Err(StreamError::Fenced { partition: id.partition, offset: id.offset })
                }
                StoreResponse::EotAck { partition: p } => {
                    // As for acks: a partition's stream carries its own EOT only (another is a bug of the store).
                    assert_eq!(
                        p, partition,
                        "the EOT of partition {p} answered on the stream of partition {partition}"
                    );
                    if answered != expected.len() {
                        return Err(protocol(format!("EOT response after {answered} of {} responses", expected.len())));
                    }
                    self.tracer.emit(Event::SinkBatchAcked { attempt, task, partition, upto_offset });
                    return Ok(());
                }
            }
        }
    }

    /// The `shared-partition-stream` canary's receive side (NumaFlow #2516, before 1.4.4): every result read off the
    /// shared stream counts as one of this batch's, whoever it was for, and no response timeout applies. An EOT
    /// response read before the batch's count of results means "we will wait indefinitely": the forwarder waits for
    /// answers that another forwarder has taken, and so, in turn, does that one.
    async fn canary_shared_stream_answers(
        &self,
        partition: u32,
        expected: &BTreeSet<u64>,
        upto_offset: u64,
    ) -> Result<(), StreamError> {
        let (attempt, task) = (self.dep.attempt, self.dep.task);
        let label = self.stream.label.clone();
        let mut answered = 0usize;
        loop {
            let response = self.stream.recv().await.map_err(|why| StreamError::Broken { partition, why })?;
            self.tracer.emit(Event::SinkResponse { attempt, task, partition, stream: label.clone(), response });
            match response {
                StoreResponse::Ack(_) => answered += 1,
                StoreResponse::Rejected(id) => {
                    return Err(StreamError::Fenced { partition: id.partition, offset: id.offset })
                }
                StoreResponse::EotAck { .. } if answered >= expected.len() => {
                    self.tracer.emit(Event::SinkBatchAcked { attempt, task, partition, upto_offset });
                    return Ok(());
                }
                StoreResponse::EotAck { .. } => std::future::pending::<()>().await,
            }
        }
    }
}
