//! The data plane: ordered, credit-based streams between tasks, one per buffer partition.
//!
//! In-band frames: `Data`, `Eot` (end of a partition) downstream; `Credit` upstream. A downstream task grants
//! `stream_window` credits when it accepts a stream and returns one for every record it is done with, so a buffer
//! partition never holds more than the window. Streams cross the simulated network: latency, loss (as delay), clogs
//! and node kills apply to them.
//!
//! As in Flink's network stack, records travel in buffers and credits come back in bulk:
//! - a `Data` frame carries up to [`buffer_records`] records, in order. An [`Output`] gathers records on their
//!   credits and sends the buffer when it is full, before any barrier, EOT or pause (in band, in order), and when
//!   its producer is about to wait ([`Output::flush`]: for a credit, its pace or its input). A simulated producer
//!   has nothing else to do then, so a buffer never holds a record longer than its producer is busy: no flush
//!   timeout is needed and latency is not raised;
//! - a consumer returns credits once it owes [`credit_batch`] of them to a stream, not one frame per record. The
//!   producer then holds at least `window - credit_batch + 1` credits once its consumer caught up, so it never waits
//!   on a credit the consumer keeps back.

use crate::buggify::BuggifyPoint;
use crate::event::Tracer;
use crate::job::{Record, TaskId};
use crate::net::Deployment;
use crate::timer::Deadline;
use madsim::net::{Endpoint, Receiver, Sender};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

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
    /// Records of one partition, in order: at least one, at most [`buffer_records`] of the stream's window.
    Data(Vec<Record>),
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

/// Records in one `Data` frame at most: a quarter of the stream window (at least one), so that a window is a few
/// frames in flight and a producer keeps sending while its consumer works through the first.
pub fn buffer_records(window: u32) -> usize {
    (window as usize / 4).max(1)
}

/// Credits a consumer gathers before it returns them (a quarter of the window, at least one).
pub fn credit_batch(window: u32) -> u32 {
    (window / 4).max(1)
}

/// Aborts every child task when dropped, so cancelling an execution cancels all of it.
#[derive(Default)]
pub struct Scope(Vec<JoinHandle<()>>);

impl Scope {
    pub fn spawn<F>(&mut self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        // The child runs in the span of its execution (a log line says whose task it is).
        self.0.push(tokio::spawn(fut.in_current_span()));
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
    let deadline = crate::timer::now() + Duration::from_millis(wait_ms);
    loop {
        match ep.connect1(addr).await {
            Ok(pair) => return Ok(pair),
            Err(e) if crate::timer::now() >= deadline => {
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
    /// Records sent on their credits and not yet on the network (at most `buffer_capacity`).
    buffer: Vec<Record>,
    buffer_capacity: usize,
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
                let reader = read_credits(rx, partition, window, credits.clone(), broken.clone());
                let reader = tokio::spawn(reader.in_current_span());
                let buffer_capacity = buffer_records(window);
                let buffer = Vec::with_capacity(buffer_capacity);
                Ok(Output { partition, tx, credits, reserved: false, buffer, buffer_capacity, broken, reader })
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

    /// Sends one record, with the credit [`Output::reserve`] kept, or waiting for one first (the buffer is flushed
    /// before that wait). The record joins the buffer, which goes out once full.
    pub async fn send(&mut self, record: Record) -> Result<(), StreamError> {
        if !self.try_reserve() {
            self.flush().await?;
            self.reserve().await?;
        }
        assert!(self.reserved, "a record goes out only on a credit");
        self.reserved = false;
        self.buffer.push(record);
        if self.buffer.len() >= self.buffer_capacity {
            self.flush().await?;
        }
        Ok(())
    }

    /// Whether records wait in the buffer.
    pub fn buffered(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Sends the buffered records now, if there are any. A producer calls it before it waits for anything.
    pub async fn flush(&mut self) -> Result<(), StreamError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        assert!(self.buffer.len() <= self.buffer_capacity, "a buffer above its capacity");
        let records = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.buffer_capacity));
        send_frame(&self.tx, self.partition, Frame::Data(records)).await
    }

    /// Sends a checkpoint barrier (needs no credit), after the records before it.
    pub async fn send_barrier(&mut self, epoch: u64, is_final: bool) -> Result<(), StreamError> {
        self.flush().await?;
        send_frame(&self.tx, self.partition, Frame::Barrier { epoch, is_final }).await
    }

    /// Sends the partition's `Pause` (needs no credit), after the records before it.
    pub async fn send_pause(&mut self) -> Result<(), StreamError> {
        self.flush().await?;
        send_frame(&self.tx, self.partition, Frame::Pause { partition: self.partition }).await
    }

    /// Sends the partition's EOT (needs no credit), after the records before it.
    pub async fn send_eot(&mut self) -> Result<(), StreamError> {
        self.flush().await?;
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

/// Where an execution takes its streams, and the sequence number of its deployment.
type Inbox = (u64, mpsc::Sender<Inbound>);

/// Executions on a worker that accept streams, by (task, attempt), each with its deployment's sequence number; a
/// stream that comes before its execution waits for it to register.
#[derive(Default)]
pub struct Executions {
    inboxes: Mutex<BTreeMap<(TaskId, u32), Inbox>>,
    registered: Notify,
}

/// The worker's executions, shared with its stream acceptor.
pub type Registry = Arc<Executions>;

impl Executions {
    /// Registers the inbox of deployment `deploy_seq` (in place of an older execution of the same attempt that is
    /// still being stopped), and wakes the streams waiting for it.
    pub fn register(&self, task: TaskId, attempt: u32, deploy_seq: u64, inbox: mpsc::Sender<Inbound>) {
        self.inboxes.lock().expect("registry lock").insert((task, attempt), (deploy_seq, inbox));
        self.registered.notify_waiters();
    }

    /// Unregisters deployment `deploy_seq` (not one registered in its place since).
    pub fn unregister(&self, task: TaskId, attempt: u32, deploy_seq: u64) {
        let mut inboxes = self.inboxes.lock().expect("registry lock");
        if inboxes.get(&(task, attempt)).is_some_and(|(seq, _)| *seq == deploy_seq) {
            inboxes.remove(&(task, attempt));
        }
    }

    fn inbox(&self, task: TaskId, attempt: u32) -> Option<mpsc::Sender<Inbound>> {
        self.inboxes.lock().expect("registry lock").get(&(task, attempt)).map(|(_, inbox)| inbox.clone())
    }
}

/// Accepts data streams on this worker and hands each to its execution; refuses after `wait_ms` if none appears.
pub async fn accept_loop(registry: Registry, wait_ms: u64) {
    let ep = match Endpoint::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), crate::net::DATA_PORT)).await {
        Ok(ep) => ep,
        Err(e) => panic!("data port of a worker is taken: {e}"),
    };
    while let Ok((tx, rx, _from)) = ep.accept1().await {
        tokio::spawn(hand_over(registry.clone(), tx, rx, wait_ms).in_current_span());
    }
}

/// Hands an accepted stream to the execution its hello names, once that execution registers (it may come a little
/// after the stream); refuses the stream if none does within `wait_ms`.
async fn hand_over(registry: Registry, tx: Sender, mut rx: Receiver, wait_ms: u64) {
    let mut deadline = Deadline::after(Duration::from_millis(wait_ms));
    let hello = tokio::select! {
        biased;
        hello = recv_frame(&mut rx, u32::MAX) => hello,
        _ = &mut deadline => return,
    };
    let Ok(Frame::Hello { to, attempt, partition }) = hello else {
        return;
    };
    deadline.reset(crate::timer::now() + Duration::from_millis(wait_ms));
    loop {
        // Listening before looking: a registration after the look still wakes this wait.
        let registered = registry.registered.notified();
        if let Some(inbox) = registry.inbox(to, attempt) {
            // The execution may end between lookup and send; then the stream just closes.
            let _ = inbox.send(Inbound { partition, tx, rx }).await;
            return;
        }
        tokio::select! {
            biased;
            _ = registered => {}
            _ = &mut deadline => break,
        }
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
    /// Credits owed to each partition's upstream and not yet returned (fewer than [`credit_batch`]).
    owed: BTreeMap<u32, u32>,
    /// Records the readers took off the network and the task has not finished with (its backlog).
    queued: Arc<AtomicU64>,
}

impl Inputs {
    /// The inputs of a task owning `owned` partitions, and the merged queue its readers deliver into. The queue
    /// holds a window of records per partition and some control frames; credits bound the records, so a full
    /// queue only makes a reader wait (back-pressure): it loses and reorders nothing.
    pub fn new(owned: &[u32], window: u32) -> (Inputs, mpsc::Receiver<(u32, InputEvent)>) {
        let (into, merged) = mpsc::channel(window as usize * owned.len().max(1) + 16);
        let (credit_to, owed, queued) = (BTreeMap::new(), BTreeMap::new(), Arc::default());
        (Inputs { owned: owned.to_vec(), window, into, credit_to, owed, queued }, merged)
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
        self.owed.remove(&inb.partition);
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

    /// Owes `count` more credits to the upstream of `partition`, and returns what it owes once that is
    /// [`credit_batch`] or more; the upstream may be gone after its EOT or pause, and a death before those shows as
    /// `Closed` on the stream.
    pub async fn credit(&mut self, partition: u32, count: u32) {
        let Some((tx, unspent)) = self.credit_to.get(&partition) else {
            return;
        };
        let owed = self.owed.entry(partition).or_default();
        *owed += count;
        if *owed < credit_batch(self.window) {
            return;
        }
        let count = std::mem::take(owed);
        let before = unspent.fetch_add(count, Ordering::SeqCst);
        assert!(
            before + count <= self.window,
            "partition {partition}: {count} credits returned while the upstream holds {before}, above the window {}",
            self.window
        );
        let _ = send_frame(tx, partition, Frame::Credit(count)).await;
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
            Ok(Frame::Data(records)) => {
                let count = records.len() as u32;
                assert!(count > 0, "partition {partition}: an empty data frame");
                let credits = unspent.fetch_sub(count, Ordering::SeqCst);
                assert!(
                    credits >= count,
                    "partition {partition}: {count} records from {:?} arrived on {credits} credits",
                    records[0].id
                );
                queued.fetch_add(count as u64, Ordering::SeqCst);
                // The task reads records one by one, as if each had come alone: buffers are the network's business.
                for record in records {
                    if into.send((partition, InputEvent::Data(record))).await.is_err() {
                        return;
                    }
                }
                continue;
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
