//! The store: the external system the sink writes to. Keeps the ledger of committed records (the ground truth the
//! checkers compare reported status against) and fences writes of old attempts.
//!
//! Its state is durable: it lives outside the node's tasks, so a store restart keeps it.

use crate::event::{Event, StoreResponse, Tracer};
use crate::job::{Record, RecordId};
use crate::net::{Ctrl, CtrlEndpoint, NodeName};
use crate::stream::connect;
use madsim::net::{Endpoint, Receiver, Sender};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// A frame from a sink to the store.
#[derive(Clone, Debug)]
pub enum StoreFrame {
    /// First frame: the writer's attempt and its stream's label.
    Open {
        attempt: u32,
        label: String,
    },
    Write(Record),
    /// End of a batch: answered once everything before it on the stream is answered.
    Eot {
        partition: u32,
    },
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
}

impl Ledger {
    pub fn new(partitions: u32) -> Arc<Mutex<Ledger>> {
        Arc::new(Mutex::new(Ledger {
            commits: Vec::new(),
            committed: vec![BTreeSet::new(); partitions as usize],
            fenced_below: 0,
        }))
    }

    pub fn commits(&self) -> &[Commit] {
        &self.commits
    }

    /// The first offset of each partition that is not committed (sources resume there).
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
}

/// Runs the store node: the control endpoint (fencing) and the sink streams.
pub async fn run(ledger: Arc<Mutex<Ledger>>, tracer: Tracer) {
    let streams = {
        let (ledger, tracer) = (ledger.clone(), tracer.clone());
        tokio::spawn(async move { accept_streams(ledger, tracer).await })
    };
    let ctrl = CtrlEndpoint::bind().await.expect("store control port is free");
    while let Ok((msg, _from)) = ctrl.recv().await {
        if let Ctrl::Fence { attempt, partitions } = msg {
            let next_offsets = {
                let mut l = ledger.lock().expect("ledger lock");
                assert_eq!(l.committed.len(), partitions as usize, "fence for another job shape");
                if attempt > l.fenced_below {
                    l.fenced_below = attempt;
                    let next = l.next_offsets();
                    tracer.emit(Event::Fenced { attempt, next_offsets: next.clone() });
                }
                l.next_offsets()
            };
            ctrl.send(NodeName::Coordinator, Ctrl::Fenced { attempt, next_offsets }).await;
        }
    }
    streams.abort();
}

async fn accept_streams(ledger: Arc<Mutex<Ledger>>, tracer: Tracer) {
    let ep = Endpoint::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), crate::net::DATA_PORT))
        .await
        .expect("store data port is free");
    while let Ok((tx, rx, _from)) = ep.accept1().await {
        tokio::spawn(serve_stream(ledger.clone(), tracer.clone(), tx, rx));
    }
}

/// Serves one sink stream in order: a response for every write, then one for the batch's EOT.
async fn serve_stream(ledger: Arc<Mutex<Ledger>>, tracer: Tracer, tx: Sender, mut rx: Receiver) {
    let mut attempt = None;
    while let Ok(payload) = rx.recv().await {
        let Ok(frame) = payload.downcast::<StoreFrame>() else {
            return;
        };
        let response = match (*frame, attempt) {
            (StoreFrame::Open { attempt: a, .. }, None) => {
                attempt = Some(a);
                continue;
            }
            (StoreFrame::Write(record), Some(a)) => {
                let mut l = ledger.lock().expect("ledger lock");
                if l.commit(record.id, a) {
                    tracer.emit(Event::Committed { attempt: a, id: record.id });
                    StoreResponse::Ack(record.id)
                } else {
                    tracer.emit(Event::WriteRejected { attempt: a, current_attempt: l.fenced_below, id: record.id });
                    StoreResponse::Rejected(record.id)
                }
            }
            (StoreFrame::Eot { partition }, Some(_)) => StoreResponse::EotAck { partition },
            // A stream that does not open first is not a sink of ours.
            _ => return,
        };
        if tx.send(Box::new(response)).await.is_err() {
            return;
        }
    }
}

/// A sink's stream to the store.
pub struct StoreStream {
    pub label: String,
    tx: Sender,
    rx: tokio::sync::Mutex<Receiver>,
}

impl StoreStream {
    pub async fn open(attempt: u32, label: String, wait_ms: u64) -> Result<StoreStream, String> {
        let (tx, rx) = connect(NodeName::Store.data(), wait_ms).await.map_err(|e| e.to_string())?;
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
        l.fenced_below = 1;
        assert!(!l.commit(RecordId { partition: 1, offset: 0 }, 0));
        assert!(l.commit(RecordId { partition: 1, offset: 0 }, 1));
        assert_eq!(l.commits().len(), 3);
    }
}
