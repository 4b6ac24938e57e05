//! The store: the external system the sink writes to. Keeps the ledger of committed records (the ground truth the
//! checkers compare reported status against) and fences writes of old attempts.
//!
//! Its state is durable: it lives outside the node's tasks, so a store restart keeps it.

use crate::buggify::{BuggifyPoint, BuggifySpec, STORE_DELAY_MAX_MS};
use crate::coverage::Point;
use crate::event::{Event, StoreResponse, Tracer};
use crate::faults::{FailReason, FaultPlane};
use crate::job::{Record, RecordId};
use crate::net::{Ctrl, CtrlEndpoint, NodeName, SavedCheckpoint};
use crate::stream::connect;
use madsim::net::{Endpoint, Receiver, Sender};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// A frame from a sink to the store.
#[derive(Clone, Debug)]
pub enum StoreFrame {
    /// First frame: the writer's attempt and its stream's label.
    Open { attempt: u32, label: Arc<str> },
    /// A record: committed on write (`txn: None`), or staged in the transaction of checkpoint `txn`.
    Write { record: Record, txn: Option<u64> },
    /// End of a batch: answered once everything before it on the stream is answered.
    Eot { partition: u32 },
}

/// One entry of the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    pub id: RecordId,
    pub attempt: u32,
}

/// The store's durable state.
#[derive(Debug)]
pub struct Ledger {
    /// Every commit, in order (duplicates included: the store does not hide them).
    commits: Vec<Commit>,
    /// Committed offsets per partition.
    committed: Vec<BTreeSet<u64>>,
    /// Writes of attempts below this are refused.
    fenced_below: u32,
    /// Staged records by (attempt, checkpoint), committed when that checkpoint is saved.
    staged: BTreeMap<(u32, u64), Vec<RecordId>>,
    /// The latest saved checkpoint (the recovery point).
    latest: Option<SavedCheckpoint>,
}

impl Ledger {
    pub fn new(partitions: u32) -> Arc<Mutex<Ledger>> {
        Arc::new(Mutex::new(Ledger {
            commits: Vec::new(),
            committed: vec![BTreeSet::new(); partitions as usize],
            fenced_below: 0,
            staged: BTreeMap::new(),
            latest: None,
        }))
    }

    pub fn commits(&self) -> &[Commit] {
        &self.commits
    }

    /// The first offset of each partition that is not committed (sources resume there without checkpoints).
    pub fn next_offsets(&self) -> Vec<u64> {
        self.committed
            .iter()
            .map(|set| {
                let mut next = 0;
                while set.contains(&next) {
                    next += 1;
                }
                next
            })
            .collect()
    }

    fn commit(&mut self, id: RecordId, attempt: u32) -> bool {
        if attempt < self.fenced_below {
            return false;
        }
        self.commits.push(Commit { id, attempt });
        self.committed[id.partition as usize].insert(id.offset);
        true
    }

    fn stage(&mut self, id: RecordId, attempt: u32, txn: u64) -> bool {
        if attempt < self.fenced_below {
            return false;
        }
        // A sink stages after its last completed checkpoint: a transaction at or below the saved one would be
        // committed by no later save (or by one it does not belong to).
        let saved = self.latest.as_ref().map(|l| l.epoch);
        assert!(
            saved.is_none_or(|e| txn > e),
            "{id:?} of attempt {attempt} staged in transaction {txn}, at or below the saved checkpoint {saved:?}"
        );
        self.staged.entry((attempt, txn)).or_default().push(id);
        true
    }

    /// Fences attempts below `attempt` and aborts their staged records; returns how many were aborted.
    fn fence(&mut self, attempt: u32) -> Option<u64> {
        if attempt <= self.fenced_below {
            return None;
        }
        self.fenced_below = attempt;
        let aborted: Vec<(u32, u64)> = self.staged.range(..(attempt, 0)).map(|(k, _)| *k).collect();
        let records = aborted.iter().map(|k| self.staged.remove(k).map_or(0, |v| v.len() as u64)).sum();
        assert!(
            self.staged.range(..(attempt, 0)).next().is_none(),
            "a fenced attempt's transaction survived the fence"
        );
        Some(records)
    }

    /// Saves a checkpoint of `attempt` and commits its staged records (those of checkpoints up to it).
    fn save(&mut self, attempt: u32, checkpoint: SavedCheckpoint) -> Result<Vec<RecordId>, String> {
        if attempt < self.fenced_below {
            return Err(format!("attempt {attempt} is fenced"));
        }
        if self.latest.as_ref().is_some_and(|l| l.epoch >= checkpoint.epoch) {
            return Ok(Vec::new()); // saved before: the coordinator asks again until it hears back
        }
        let due: Vec<(u32, u64)> =
            self.staged.range((attempt, 0)..=(attempt, checkpoint.epoch)).map(|(k, _)| *k).collect();
        let mut ids = Vec::new();
        for k in due {
            for id in self.staged.remove(&k).expect("listed") {
                self.commit(id, attempt);
                ids.push(id);
            }
        }
        self.latest = Some(checkpoint);
        Ok(ids)
    }
}

/// Runs the store node: the control endpoint (fencing, checkpoint storage) and the sink streams.
pub async fn run(ledger: Arc<Mutex<Ledger>>, tracer: Tracer, faults: Arc<FaultPlane>) {
    tracer.emit(Event::NodeStarted { incarnation: madsim::rand::random() });
    let streams = {
        let (ledger, tracer) = (ledger.clone(), tracer.clone());
        tokio::spawn(accept_streams(ledger, tracer).in_current_span())
    };
    let ctrl =
        CtrlEndpoint::bind(NodeName::Store, faults.clone(), tracer.clone()).await.expect("store control port is free");
    while let Ok((msg, _from)) = ctrl.recv().await {
        let reply = {
            let mut l = ledger.lock().expect("ledger lock");
            match msg {
                Ctrl::Fence { attempt, partitions } => {
                    assert_eq!(l.committed.len(), partitions as usize, "fence for another job shape");
                    if let Some(records) = l.fence(attempt) {
                        tracer.emit(Event::Fenced { attempt, next_offsets: l.next_offsets() });
                        if records > 0 {
                            tracer.emit(Event::TransactionsAborted { below_attempt: attempt, records });
                        }
                    }
                    Ctrl::Fenced { attempt, next_offsets: l.next_offsets(), latest: l.latest.clone() }
                }
                Ctrl::SaveCheckpoint { attempt, checkpoint } => {
                    let epoch = checkpoint.epoch;
                    let io_error = faults.checkpoint_fate(epoch, u64::MAX) == Some(FailReason::IoError)
                        && l.latest.as_ref().is_none_or(|c| c.epoch < epoch);
                    let result = if io_error {
                        tracer.emit(Event::CheckpointStorageFailed { attempt, epoch });
                        Err("checkpoint storage: I/O error".to_string())
                    } else {
                        let offsets = checkpoint.offsets.clone();
                        l.save(attempt, checkpoint).map(|ids| {
                            for id in ids {
                                tracer.emit(Event::Committed { attempt, id });
                            }
                            tracer.emit(Event::CheckpointStored { attempt, epoch, offsets });
                        })
                    };
                    Ctrl::CheckpointSaved { attempt, epoch, result }
                }
                _ => continue,
            }
        };
        ctrl.send(NodeName::Coordinator, reply).await;
    }
    streams.abort();
}

async fn accept_streams(ledger: Arc<Mutex<Ledger>>, tracer: Tracer) {
    let ep = Endpoint::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), crate::net::DATA_PORT))
        .await
        .expect("store data port is free");
    let mut conn = 0u64;
    while let Ok((tx, rx, _from)) = ep.accept1().await {
        conn += 1;
        tokio::spawn(serve_stream(ledger.clone(), tracer.clone(), conn, tx, rx).in_current_span());
    }
}

/// Serves one sink stream in order: a response for every write, then one for the batch's EOT.
async fn serve_stream(ledger: Arc<Mutex<Ledger>>, tracer: Tracer, conn: u64, tx: Sender, mut rx: Receiver) {
    let mut opened: Option<(u32, Arc<str>)> = None;
    // The batch being read: the partitions its writes belong to, and how many.
    let (mut partitions, mut records) = (BTreeSet::new(), 0u32);
    while let Ok(payload) = rx.recv().await {
        let Ok(frame) = payload.downcast::<StoreFrame>() else { return };
        let attempt = opened.as_ref().map(|(a, _)| *a);
        let response = match (*frame, attempt) {
            (StoreFrame::Open { attempt: a, label }, None) => {
                opened = Some((a, label));
                continue;
            }
            (StoreFrame::Write { record, txn }, Some(a)) => {
                partitions.insert(record.id.partition);
                records += 1;
                let mut l = ledger.lock().expect("ledger lock");
                let accepted = match txn {
                    None => l.commit(record.id, a),
                    Some(txn) => l.stage(record.id, a, txn),
                };
                if !accepted {
                    tracer.reach(Point::FencedWriteRejected);
                    tracer.emit(Event::WriteRejected { attempt: a, current_attempt: l.fenced_below, id: record.id });
                    StoreResponse::Rejected(record.id)
                } else {
                    if txn.is_none() {
                        tracer.emit(Event::Committed { attempt: a, id: record.id });
                    }
                    StoreResponse::Ack(record.id)
                }
            }
            (StoreFrame::Eot { partition }, Some(attempt)) => {
                let label = opened.as_ref().map_or_else(|| Arc::from(""), |(_, l)| l.clone());
                let partitions = std::mem::take(&mut partitions).into_iter().collect();
                let records = std::mem::take(&mut records);
                tracer.emit(Event::StoreBatchServed { attempt, conn, label, partition, partitions, records });
                StoreResponse::EotAck { partition }
            }
            // A stream that does not open first is not a sink of ours.
            _ => return,
        };
        // Buggify: the answer that ends a batch comes late (once per batch, not per write: a rare path, not a slow
        // store).
        let batch_end = matches!(response, StoreResponse::EotAck { .. });
        if batch_end && tracer.buggify(BuggifyPoint::StoreResponseDelayed) {
            tokio::time::sleep(Duration::from_millis(BuggifySpec::draw_ms(STORE_DELAY_MAX_MS))).await;
        }
        if tx.send(Box::new(response)).await.is_err() {
            return;
        }
    }
}

/// A sink's stream to the store.
pub struct StoreStream {
    pub label: Arc<str>,
    tx: Sender,
    rx: tokio::sync::Mutex<Receiver>,
}

impl StoreStream {
    pub async fn open(attempt: u32, label: Arc<str>, wait_ms: u64, tracer: &Tracer) -> Result<StoreStream, String> {
        let (tx, rx) = connect(NodeName::Store.data(), wait_ms, tracer).await.map_err(|e| e.to_string())?;
        tx.send(Box::new(StoreFrame::Open { attempt, label: label.clone() })).await.map_err(|e| e.to_string())?;
        Ok(StoreStream { label, tx, rx: tokio::sync::Mutex::new(rx) })
    }

    pub async fn send(&self, frame: StoreFrame) -> Result<(), String> {
        self.tx.send(Box::new(frame)).await.map_err(|e| e.to_string())
    }

    /// Reads the next response on the stream, whoever it was meant for.
    pub async fn recv(&self) -> Result<StoreResponse, String> {
        let payload = self.rx.lock().await.recv().await.map_err(|e| e.to_string())?;
        payload.downcast::<StoreResponse>().map(|r| *r).map_err(|_| "response is not a StoreResponse".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_refuses_old_attempts_and_offsets_are_prefixes() {
        let ledger = Ledger::new(2);
        let mut l = ledger.lock().unwrap();
        assert!(l.commit(RecordId { partition: 0, offset: 0 }, 0));
        assert!(l.commit(RecordId { partition: 0, offset: 2 }, 0));
        assert_eq!(l.next_offsets(), vec![1, 0]);
        assert_eq!(l.fence(1), Some(0));
        assert!(!l.commit(RecordId { partition: 1, offset: 0 }, 0));
        assert!(l.commit(RecordId { partition: 1, offset: 0 }, 1));
        assert_eq!(l.commits().len(), 3);
    }

    #[test]
    fn staged_records_commit_with_their_checkpoint_or_abort_with_their_attempt() {
        let ledger = Ledger::new(1);
        let mut l = ledger.lock().unwrap();
        let id = |o| RecordId { partition: 0, offset: o };
        assert!(l.stage(id(0), 1, 1));
        assert!(l.stage(id(1), 1, 2));
        let saved = l.save(1, SavedCheckpoint { epoch: 1, offsets: vec![1] }).unwrap();
        assert_eq!(saved, vec![id(0)], "only the transaction of checkpoint 1 commits");
        assert_eq!(l.save(1, SavedCheckpoint { epoch: 1, offsets: vec![1] }).unwrap(), vec![], "idempotent");
        assert_eq!(l.fence(2), Some(1), "the staged record of checkpoint 2 is aborted");
        assert!(l.save(1, SavedCheckpoint { epoch: 2, offsets: vec![2] }).is_err(), "a fenced attempt cannot save");
        assert_eq!(l.commits().len(), 1);
    }
}
