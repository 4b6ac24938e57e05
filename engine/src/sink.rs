//! The sink operator: reads its partitions' streams and writes to the store with the EOT-framed batch protocol of
//! class C (N records, then EOT; then N responses and the EOT response), one forwarder and one store stream per
//! partition.
//!
//! Canaries living here:
//! - `sink-stops-at-first-eot`: the consume loop is left at the first EOT read.
//! - `eot-counted-not-tracked`: the end of input is decided by counting EOTs, not by which partitions ended.
//! - `shared-partition-stream`: the forwarders of one replica share one store stream.

use crate::canary::{Canaries, Canary};
use crate::event::{Event, StoreResponse, Tracer};
use crate::job::Record;
use crate::net::Deployment;
use crate::store::{StoreFrame, StoreStream};
use crate::stream::{read_input, send_frame, Frame, Inbound, InputEvent, Scope, StreamError};
use madsim::net::Sender;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the consume loop hands a forwarder.
enum ToForwarder {
    Record(Record),
    /// Flush now: the partition's EOT was read.
    Flush,
}

/// What a forwarder reports back.
enum FromForwarder {
    /// A batch of `count` records was answered; offsets below `upto_offset` are acknowledged.
    Acked {
        partition: u32,
        count: u32,
    },
    Failed(StreamError),
}

/// The consume loop's view of the input.
struct InputState {
    owned: Vec<u32>,
    canaries: Canaries,
    /// Partitions whose EOT was read.
    ended: BTreeSet<u32>,
    /// EOT markers read (duplicates included).
    eots_read: usize,
}

impl InputState {
    /// Whether the consume loop has read all its input.
    fn done(&self) -> bool {
        if self.canaries.has(Canary::SinkStopsAtFirstEot) && self.eots_read > 0 {
            return true;
        }
        if self.canaries.has(Canary::EotCountedNotTracked) {
            return self.eots_read >= self.owned.len();
        }
        self.ended.len() == self.owned.len()
    }
}

/// Runs one sink replica until every owned partition has delivered its EOT and everything before it is acknowledged.
pub async fn run(
    dep: Arc<Deployment>,
    tracer: Tracer,
    canaries: Canaries,
    mut inbound: mpsc::Receiver<Inbound>,
) -> Result<(), StreamError> {
    let spec = dep.spec.clone();
    let timings = spec.timings;
    let (attempt, task) = (dep.attempt, dep.task);
    let owned = spec.owned_partitions(task);
    let batch_size = spec.vertices[task.vertex as usize].batch_size.max(1);
    let mut scope = Scope::default();

    let window = timings.stream_window as usize;
    let (input_tx, mut input_rx) = mpsc::channel::<(u32, InputEvent)>(window * owned.len().max(1) + 16);
    let (report_tx, mut report_rx) = mpsc::channel::<FromForwarder>(owned.len().max(1) * 4);
    let mut streams: BTreeMap<String, Arc<StoreStream>> = BTreeMap::new();
    let mut forwarders: BTreeMap<u32, mpsc::Sender<ToForwarder>> = BTreeMap::new();
    for &p in &owned {
        // The fix of numaflow#2516: a new stream for every partition. The canary shares one per replica.
        let label =
            if canaries.has(Canary::SharedPartitionStream) { format!("{task}/shared") } else { format!("{task}/p{p}") };
        let stream = match streams.get(&label) {
            Some(s) => s.clone(),
            None => {
                let s = StoreStream::open(attempt, label.clone(), timings.connect_wait_ms)
                    .await
                    .map_err(|why| StreamError::Connect { to: crate::net::NodeName::Store.data(), why })?;
                let s = Arc::new(s);
                streams.insert(label, s.clone());
                s
            }
        };
        let (tx, rx) = mpsc::channel(window + 2);
        forwarders.insert(p, tx);
        let fwd = Forwarder { tracer: tracer.clone(), dep: dep.clone(), partition: p, stream, batch_size };
        scope.spawn(fwd.run(rx, report_tx.clone()));
    }

    let mut input = InputState { owned: owned.clone(), canaries, ended: BTreeSet::new(), eots_read: 0 };
    let mut credit_to: BTreeMap<u32, Sender> = BTreeMap::new();
    let mut pending: u64 = 0;
    let mut consuming = !owned.is_empty();
    while consuming || pending > 0 {
        tokio::select! {
            biased;
            report = report_rx.recv() => match report.expect("forwarders outlive the loop") {
                FromForwarder::Acked { partition, count } => {
                    pending -= count as u64;
                    if let Some(tx) = credit_to.get(&partition) {
                        // The upstream may be gone after its EOT; credits are then moot.
                        let _ = send_frame(tx, partition, Frame::Credit(count)).await;
                    }
                }
                FromForwarder::Failed(e) => return Err(e),
            },
            Some(inb) = inbound.recv(), if consuming => {
                if !owned.contains(&inb.partition) {
                    return Err(StreamError::Protocol { partition: inb.partition, why: "partition not owned".into() });
                }
                send_frame(&inb.tx, inb.partition, Frame::Credit(timings.stream_window)).await?;
                credit_to.insert(inb.partition, inb.tx);
                scope.spawn(read_input(inb.rx, inb.partition, input_tx.clone()));
            }
            Some((partition, event)) = input_rx.recv(), if consuming => match event {
                InputEvent::Data(record) => {
                    if record.id.partition != partition || input.ended.contains(&partition) {
                        return Err(StreamError::Protocol { partition, why: format!("unexpected record {:?}", record.id) });
                    }
                    pending += 1;
                    forward(&forwarders, partition, ToForwarder::Record(record)).await?;
                }
                InputEvent::Eot { partition: p } => {
                    if p != partition {
                        return Err(StreamError::Protocol { partition, why: format!("EOT of partition {p}") });
                    }
                    tracer.emit(Event::SinkEotReceived { attempt, task, partition });
                    input.eots_read += 1;
                    if input.ended.insert(partition) {
                        forward(&forwarders, partition, ToForwarder::Flush).await?;
                    }
                    consuming = !input.done();
                    if !consuming {
                        // Whatever is buffered but not yet handed to a forwarder is flushed with what it has.
                        for tx in forwarders.values() {
                            let _ = tx.send(ToForwarder::Flush).await;
                        }
                    }
                }
                InputEvent::Closed { partition, why } => {
                    if !input.ended.contains(&partition) {
                        return Err(StreamError::Broken { partition, why });
                    }
                }
            },
        }
    }
    tracer.emit(Event::SinkFinished { attempt, task, partitions: owned });
    Ok(())
}

async fn forward(
    forwarders: &BTreeMap<u32, mpsc::Sender<ToForwarder>>,
    partition: u32,
    msg: ToForwarder,
) -> Result<(), StreamError> {
    let tx = forwarders.get(&partition).expect("a forwarder per owned partition");
    tx.send(msg).await.map_err(|_| StreamError::Broken { partition, why: "forwarder gone".into() })
}

/// Writes one partition's records to the store, one batch in flight at a time.
struct Forwarder {
    tracer: Tracer,
    dep: Arc<Deployment>,
    partition: u32,
    stream: Arc<StoreStream>,
    batch_size: u32,
}

impl Forwarder {
    async fn run(self, mut rx: mpsc::Receiver<ToForwarder>, report: mpsc::Sender<FromForwarder>) {
        let flush_after = Duration::from_millis(self.dep.spec.timings.flush_ms);
        let mut batch: Vec<Record> = Vec::new();
        loop {
            let deadline = tokio::time::Instant::now() + flush_after;
            let mut flush = false;
            while !flush && (batch.len() as u32) < self.batch_size {
                let next = if batch.is_empty() {
                    rx.recv().await
                } else {
                    match tokio::time::timeout(
                        deadline.saturating_duration_since(tokio::time::Instant::now()),
                        rx.recv(),
                    )
                    .await
                    {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                };
                match next {
                    Some(ToForwarder::Record(r)) => batch.push(r),
                    Some(ToForwarder::Flush) => flush = true,
                    None => return,
                }
            }
            if batch.is_empty() {
                continue;
            }
            let count = batch.len() as u32;
            let result = self.write_batch(std::mem::take(&mut batch)).await;
            let msg = match result {
                Ok(()) => FromForwarder::Acked { partition: self.partition, count },
                Err(e) => FromForwarder::Failed(e),
            };
            let failed = matches!(msg, FromForwarder::Failed(_));
            if report.send(msg).await.is_err() || failed {
                return;
            }
        }
    }

    /// Sends N records and the EOT, then reads until N responses and the EOT response have arrived.
    async fn write_batch(&self, batch: Vec<Record>) -> Result<(), StreamError> {
        let (attempt, task, partition) = (self.dep.attempt, self.dep.task, self.partition);
        let label = self.stream.label.clone();
        let broken = |why: String| StreamError::Broken { partition, why };
        let first_offset = batch[0].id.offset;
        let upto_offset = batch[batch.len() - 1].id.offset + 1;
        self.tracer.emit(Event::SinkBatchSent {
            attempt,
            task,
            partition,
            stream: label.clone(),
            first_offset,
            count: batch.len() as u32,
        });
        let expected: BTreeSet<u64> = batch.iter().map(|r| r.id.offset).collect();
        for r in &batch {
            self.stream.send(StoreFrame::Write(*r)).await.map_err(broken)?;
        }
        self.stream.send(StoreFrame::Eot { partition }).await.map_err(broken)?;
        let mut answered = 0usize;
        let timeout = Duration::from_millis(self.dep.spec.timings.store_response_timeout_ms);
        loop {
            let response = tokio::time::timeout(timeout, self.stream.recv())
                .await
                .map_err(|_| broken(format!("no response from the store within {} ms", timeout.as_millis())))?
                .map_err(broken)?;
            self.tracer.emit(Event::SinkResponse { attempt, task, partition, stream: label.clone(), response });
            let protocol = |why: String| StreamError::Protocol { partition, why };
            match response {
                StoreResponse::Ack(id) if id.partition == partition && expected.contains(&id.offset) => answered += 1,
                StoreResponse::Rejected(id) => {
                    return Err(protocol(format!("write of {id:?} refused: attempt fenced")))
                }
                StoreResponse::EotAck { partition: p } if p == partition => {
                    if answered != expected.len() {
                        return Err(protocol(format!("EOT response after {answered} of {} responses", expected.len())));
                    }
                    self.tracer.emit(Event::SinkBatchAcked { attempt, task, partition, upto_offset });
                    return Ok(());
                }
                other => return Err(protocol(format!("response {other:?} is not for this batch"))),
            }
        }
    }
}
