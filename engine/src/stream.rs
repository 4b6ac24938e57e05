//! The data plane: ordered, credit-based streams between tasks, one per buffer partition.
//!
//! In-band frames: `Data`, `Eot` (end of a partition) downstream; `Credit` upstream. A downstream task grants
//! `stream_window` credits when it accepts a stream and returns one for every record it is done with, so a buffer
//! partition never holds more than the window. Streams cross the simulated network: latency, loss (as delay), clogs
//! and node kills apply to them.

use crate::buggify::BuggifyPoint;
use crate::event::Tracer;
use crate::job::{Record, TaskId};
use crate::net::Deployment;
use madsim::net::{Endpoint, Receiver, Sender};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// A frame on a data stream; its kind names it in errors (`data`, `eot`, `credit`, ...).
#[derive(Clone, Debug, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Frame {
    /// First frame upstream → worker: which task, attempt and partition the stream feeds.
    Hello {
        to: TaskId,
        attempt: u32,
        partition: u32,
    },
    Data(Record),
    Eot {
        partition: u32,
    },
    /// Checkpoint barrier: everything before it belongs to checkpoint `epoch`; `is_final` when that is the final
    /// checkpoint (a task learns it from the barrier, whichever comes first of it and the coordinator's trigger).
    Barrier {
        epoch: u64,
        is_final: bool,
    },
    /// The producer of this partition stops here because the job pauses (not an end: it resumes later).
    Pause {
        partition: u32,
    },
    /// Downstream → upstream: that many more records may be sent.
    Credit(u32),
    /// Worker → upstream: no such execution.
    Refused(String),
}

/// Why a stream failed. A stream failure fails its task; the coordinator decides about restarts.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StreamError {
    #[error("connecting to {to} failed: {why}")]
    Connect { to: SocketAddr, why: String },
    #[error("stream of partition {partition} broke: {why}")]
    Broken { partition: u32, why: String },
    #[error("protocol violation on partition {partition}: {why}")]
    Protocol { partition: u32, why: String },
    /// The store refused a write because a newer attempt fenced this one: a zombie stopped, not a broken protocol.
    #[error("the store refused record {offset} of partition {partition}: this attempt is fenced")]
    Fenced { partition: u32, offset: u64 },
}

/// Aborts every child task when dropped, so cancelling an execution cancels all of it.
#[derive(Default)]
pub struct Scope(Vec<JoinHandle<()>>);

impl Scope {
    pub fn spawn<F>(&mut self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.0.push(tokio::spawn(fut));
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Sends a frame; a closed peer is a broken stream.
pub async fn send_frame(tx: &Sender, partition: u32, frame: Frame) -> Result<(), StreamError> {
    tx.send(Box::new(frame)).await.map_err(|e| StreamError::Broken { partition, why: e.to_string() })
}

/// Receives a frame; a closed peer is a broken stream.
pub async fn recv_frame(rx: &mut Receiver, partition: u32) -> Result<Frame, StreamError> {
    let payload = rx.recv().await.map_err(|e| StreamError::Broken { partition, why: e.to_string() })?;
    payload
        .downcast::<Frame>()
        .map(|f| *f)
        .map_err(|_| StreamError::Protocol { partition, why: "payload is not a Frame".into() })
}

/// Opens a reliable stream to `addr`, retrying while the link refuses (clog, loss), at most `wait_ms`.
pub async fn connect(addr: SocketAddr, wait_ms: u64, tracer: &Tracer) -> Result<(Sender, Receiver), StreamError> {
    let ep = Endpoint::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))
        .await
        .map_err(|e| StreamError::Connect { to: addr, why: e.to_string() })?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    loop {
        match ep.connect1(addr).await {
            Ok(pair) => return Ok(pair),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(StreamError::Connect { to: addr, why: e.to_string() })
            }
            Err(_) => {
                let pause_ms = if tracer.buggify(BuggifyPoint::ReconnectEarly) { 1 } else { 20 };
                tokio::time::sleep(Duration::from_millis(pause_ms)).await
            }
        }
    }
}

/// The upstream end of one buffer partition.
pub struct Output {
    pub partition: u32,
    tx: Sender,
    /// Credits granted and not yet spent. A reader task of its own takes the consumer's `Credit` frames off the
    /// stream as they arrive: the simulated network hands a connection's frames out one at a time and never sooner
    /// than a millisecond after the reader asks, so a producer that read its credits only once it ran out would pay
    /// that millisecond per record (a map over 1024 partitions then forwards at most 1,000 records/s, whatever the
    /// rates). Closed when the stream breaks or the consumer sends something else; `broken` then says why.
    credits: Arc<Semaphore>,
    /// A credit taken by [`Output::reserve`] and not yet spent by [`Output::send`].
    reserved: bool,
    broken: Arc<Mutex<Option<StreamError>>>,
    reader: JoinHandle<()>,
}

impl Drop for Output {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Output {
    /// Opens the stream of `partition` to the task `to` of this attempt and waits to be accepted.
    pub async fn open(dep: &Deployment, to: TaskId, partition: u32, tracer: &Tracer) -> Result<Output, StreamError> {
        let wait_ms = dep.spec.timings.connect_wait_ms;
        let addr = dep.worker_of(to).data();
        let (tx, mut rx) = connect(addr, wait_ms, tracer).await?;
        send_frame(&tx, partition, Frame::Hello { to, attempt: dep.attempt, partition }).await?;
        let first = tokio::time::timeout(Duration::from_millis(2 * wait_ms), recv_frame(&mut rx, partition))
            .await
            .map_err(|_| StreamError::Connect { to: addr, why: "no answer to hello".into() })??;
        match first {
            Frame::Credit(n) => {
                let window = dep.spec.timings.stream_window;
                assert!(n <= window, "partition {partition}: initial credit {n} above the window {window}");
                let credits = Arc::new(Semaphore::new(n as usize));
                let broken = Arc::new(Mutex::new(None));
                let reader = tokio::spawn(read_credits(rx, partition, window, credits.clone(), broken.clone()));
                Ok(Output { partition, tx, credits, reserved: false, broken, reader })
            }
            Frame::Refused(why) => Err(StreamError::Connect { to: addr, why }),
            other => Err(StreamError::Protocol {
                partition,
                why: format!("expected a credit, got a {} frame", <&str>::from(&other)),
            }),
        }
    }

    /// Waits for a credit and keeps it for the next [`Output::send`]. Cancel-safe: dropped while it waits, it has
    /// taken nothing, so a producer may stop waiting when something more urgent comes (a pause).
    pub async fn reserve(&mut self) -> Result<(), StreamError> {
        if self.reserved {
            return Ok(());
        }
        match self.credits.acquire().await {
            Ok(credit) => credit.forget(),
            Err(_) => {
                let why = self.broken.lock().expect("broken lock").clone();
                return Err(why.expect("the credit reader says why before it closes the credits"));
            }
        }
        self.reserved = true;
        Ok(())
    }

    /// Takes a credit if one is there now (kept for the next [`Output::send`]); never waits.
    pub fn try_reserve(&mut self) -> bool {
        if !self.reserved {
            match self.credits.try_acquire() {
                Ok(credit) => credit.forget(),
                Err(_) => return false,
            }
            self.reserved = true;
        }
        self.reserved
    }

    /// Sends one record, with the credit [`Output::reserve`] kept, or waiting for one first.
    pub async fn send(&mut self, record: Record) -> Result<(), StreamError> {
        self.reserve().await?;
        assert!(self.reserved, "a record goes out only on a credit");
        self.reserved = false;
        send_frame(&self.tx, self.partition, Frame::Data(record)).await
    }

    /// Sends a checkpoint barrier (needs no credit).
    pub async fn send_barrier(&mut self, epoch: u64, is_final: bool) -> Result<(), StreamError> {
        send_frame(&self.tx, self.partition, Frame::Barrier { epoch, is_final }).await
    }

    /// Sends the partition's `Pause` (needs no credit).
    pub async fn send_pause(&mut self) -> Result<(), StreamError> {
        send_frame(&self.tx, self.partition, Frame::Pause { partition: self.partition }).await
    }

    /// Sends the partition's EOT (needs no credit).
    pub async fn send_eot(&mut self) -> Result<(), StreamError> {
        send_frame(&self.tx, self.partition, Frame::Eot { partition: self.partition }).await
    }
}

/// Takes the consumer's credits off an output stream as they arrive, until the stream breaks or carries something
/// other than a credit: then records why and closes the credits, so that a producer waiting for one hears of it.
async fn read_credits(
    mut rx: Receiver,
    partition: u32,
    window: u32,
    credits: Arc<Semaphore>,
    broken: Arc<Mutex<Option<StreamError>>>,
) {
    let why = loop {
        match recv_frame(&mut rx, partition).await {
            Ok(Frame::Credit(n)) => {
                let held = credits.available_permits() as u32 + n;
                assert!(held <= window, "partition {partition}: {held} credits, above the window {window}");
                credits.add_permits(n as usize);
            }
            Ok(other) => {
                let why = format!("expected a credit, got a {} frame", <&str>::from(&other));
                break StreamError::Protocol { partition, why };
            }
            Err(e) => break e,
        }
    };
    *broken.lock().expect("broken lock") = Some(why);
    credits.close();
}

/// An accepted stream, handed to the task it feeds.
pub struct Inbound {
    pub partition: u32,
    pub tx: Sender,
    pub rx: Receiver,
}

/// Executions on a worker that accept streams, by (task, attempt).
pub type Registry = Arc<Mutex<BTreeMap<(TaskId, u32), mpsc::Sender<Inbound>>>>;

/// Accepts data streams on this worker and hands each to its execution; refuses after `wait_ms` if none appears.
pub async fn accept_loop(registry: Registry, wait_ms: u64) {
    let ep = match Endpoint::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), crate::net::DATA_PORT)).await {
        Ok(ep) => ep,
        Err(e) => panic!("data port of a worker is taken: {e}"),
    };
    while let Ok((tx, rx, _from)) = ep.accept1().await {
        tokio::spawn(hand_over(registry.clone(), tx, rx, wait_ms));
    }
}

async fn hand_over(registry: Registry, tx: Sender, mut rx: Receiver, wait_ms: u64) {
    let Ok(Ok(Frame::Hello { to, attempt, partition })) =
        tokio::time::timeout(Duration::from_millis(wait_ms), recv_frame(&mut rx, u32::MAX)).await
    else {
        return;
    };
    let step_ms = 10;
    for _ in 0..=wait_ms / step_ms {
        let target = registry.lock().expect("registry lock").get(&(to, attempt)).cloned();
        if let Some(target) = target {
            // The execution may end between lookup and send; then the stream just closes.
            let _ = target.send(Inbound { partition, tx, rx }).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(step_ms)).await;
    }
    let _ = send_frame(&tx, partition, Frame::Refused(format!("no execution {to} attempt {attempt}"))).await;
}

/// What an input reader tells its task.
#[derive(Debug)]
pub enum InputEvent {
    Data(Record),
    Eot {
        partition: u32,
    },
    Barrier {
        epoch: u64,
        is_final: bool,
    },
    Pause {
        partition: u32,
    },
    /// The stream closed or broke (`error` says how); fine after its EOT, a failure before.
    Closed {
        partition: u32,
        error: StreamError,
    },
}

/// The consumer's side of its input streams: who gets credits back, and where the readers deliver.
pub struct Inputs {
    owned: Vec<u32>,
    window: u32,
    into: mpsc::Sender<(u32, InputEvent)>,
    /// The upstream of each accepted partition, to return credits to, and the credits it holds: granted and not yet
    /// spent on a record the reader took off the stream.
    credit_to: BTreeMap<u32, (Sender, Arc<AtomicU32>)>,
    /// Records the readers took off the network and the task has not finished with (its backlog).
    queued: Arc<AtomicU64>,
}

impl Inputs {
    /// The inputs of a task owning `owned` partitions, and the merged queue its readers deliver into. The queue
    /// holds a window of records per partition and some control frames; credits bound the records, so a full
    /// queue only makes a reader wait (back-pressure): it loses and reorders nothing.
    pub fn new(owned: &[u32], window: u32) -> (Inputs, mpsc::Receiver<(u32, InputEvent)>) {
        let (into, merged) = mpsc::channel(window as usize * owned.len().max(1) + 16);
        (Inputs { owned: owned.to_vec(), window, into, credit_to: BTreeMap::new(), queued: Arc::default() }, merged)
    }

    /// Accepts a stream handed over by the worker: grants the initial window and starts its reader in `scope`.
    pub async fn accept(&mut self, inb: Inbound, scope: &mut Scope) -> Result<(), StreamError> {
        if !self.owned.contains(&inb.partition) {
            return Err(StreamError::Protocol { partition: inb.partition, why: "partition not owned".into() });
        }
        // Counted before the grant goes out: the upstream cannot spend a credit before it is counted.
        let unspent = Arc::new(AtomicU32::new(self.window));
        send_frame(&inb.tx, inb.partition, Frame::Credit(self.window)).await?;
        self.credit_to.insert(inb.partition, (inb.tx, unspent.clone()));
        scope.spawn(read_input(inb.rx, inb.partition, self.into.clone(), self.queued.clone(), unspent));
        Ok(())
    }

    /// The task is done with `count` records it read (forwarded them, or handed them on).
    pub fn done_with(&self, count: u64) {
        let before = self.queued.fetch_sub(count, Ordering::SeqCst);
        assert!(before >= count, "done with {count} records, but only {before} were read");
    }

    /// Records read and not yet done with.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::SeqCst)
    }

    /// Returns `count` credits to the upstream of `partition`; the upstream may be gone after its EOT or pause, and
    /// a death before those shows as `Closed` on the stream.
    pub async fn credit(&self, partition: u32, count: u32) {
        if let Some((tx, unspent)) = self.credit_to.get(&partition) {
            let before = unspent.fetch_add(count, Ordering::SeqCst);
            assert!(
                before + count <= self.window,
                "partition {partition}: {count} credits returned while the upstream holds {before}, above the window {}",
                self.window
            );
            let _ = send_frame(tx, partition, Frame::Credit(count)).await;
        }
    }

    /// Whether the stream of `partition` was ever accepted (a producer sends nothing before it is).
    pub fn opened(&self, partition: u32) -> bool {
        self.credit_to.contains_key(&partition)
    }
}

/// Reads one inbound stream into the task's merged input, after granting the initial window; counts the records it
/// reads into `queued`, and spends one of the upstream's `unspent` credits on each: a record sent without a credit
/// is a broken flow control (only a bug sends one).
pub async fn read_input(
    mut rx: Receiver,
    partition: u32,
    into: mpsc::Sender<(u32, InputEvent)>,
    queued: Arc<AtomicU64>,
    unspent: Arc<AtomicU32>,
) {
    loop {
        let event = match recv_frame(&mut rx, partition).await {
            Ok(Frame::Data(r)) => {
                let credits = unspent.fetch_sub(1, Ordering::SeqCst);
                assert!(credits > 0, "partition {partition}: record {:?} arrived with no credit granted for it", r.id);
                queued.fetch_add(1, Ordering::SeqCst);
                InputEvent::Data(r)
            }
            Ok(Frame::Eot { partition: p }) => InputEvent::Eot { partition: p },
            Ok(Frame::Barrier { epoch, is_final }) => InputEvent::Barrier { epoch, is_final },
            Ok(Frame::Pause { partition: p }) => InputEvent::Pause { partition: p },
            Ok(other) => {
                let error =
                    StreamError::Protocol { partition, why: format!("unexpected {} frame", <&str>::from(&other)) };
                InputEvent::Closed { partition, error }
            }
            Err(error) => InputEvent::Closed { partition, error },
        };
        let last = matches!(event, InputEvent::Closed { .. });
        if into.send((partition, event)).await.is_err() || last {
            return;
        }
    }
}
