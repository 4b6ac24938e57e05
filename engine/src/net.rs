//! Addresses and the control plane: typed datagrams between nodes over `madsim::net`.
//!
//! Control messages are idempotent intents and reports that are re-sent on every tick, so a lost or late datagram
//! costs time, never correctness. Data moves on ordered streams (see `stream.rs`).

use crate::event::{Event, Tracer};
use crate::faults::{FailReason, FaultPlane};
use crate::job::{JobSpec, TaskId};
use crate::status::JobStatus;
use madsim::net::Endpoint;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tracing::Instrument;

/// Port of every node's control endpoint.
pub const CTRL_PORT: u16 = 7000;
/// Port where workers accept data streams and the store accepts sink streams.
pub const DATA_PORT: u16 = 7001;
const CTRL_TAG: u64 = 1;

/// The nodes of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeName {
    Coordinator,
    Store,
    /// The operator's client (the CLI a user would run): reads status through the API.
    Client,
    /// The management platform (StreamPark's role): polls checkpoint statistics, enforces its policy.
    Platform,
    /// `worker-N`, numbered from 1.
    Worker(u16),
}

/// A node serializes as its label (`worker-2`), as scenarios and traces name it.
impl serde::Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> serde::Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let label = String::deserialize(d)?;
        NodeName::parse(&label).ok_or_else(|| serde::de::Error::custom(format!("no node named {label:?}")))
    }
}

impl NodeName {
    pub fn ip(self) -> IpAddr {
        match self {
            NodeName::Coordinator => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            NodeName::Store => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            NodeName::Client => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            NodeName::Platform => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4)),
            NodeName::Worker(n) => {
                // Workers live in 10.1.0.0/16, apart from the fixed nodes: worker n is 10.1.<n's two bytes>.
                assert!(n >= 1, "workers are numbered from 1");
                let [high, low] = n.to_be_bytes();
                IpAddr::V4(Ipv4Addr::new(10, 1, high, low))
            }
        }
    }

    pub fn ctrl(self) -> SocketAddr {
        SocketAddr::new(self.ip(), CTRL_PORT)
    }

    pub fn data(self) -> SocketAddr {
        SocketAddr::new(self.ip(), DATA_PORT)
    }

    pub fn label(self) -> String {
        match self {
            NodeName::Coordinator => "coordinator".into(),
            NodeName::Store => "store".into(),
            NodeName::Client => "client".into(),
            NodeName::Platform => "platform".into(),
            NodeName::Worker(n) => format!("worker-{n}"),
        }
    }

    /// Parses `coordinator`, `store`, `client` or `worker-N`.
    pub fn parse(name: &str) -> Option<NodeName> {
        match name {
            "coordinator" => Some(NodeName::Coordinator),
            "store" => Some(NodeName::Store),
            "client" => Some(NodeName::Client),
            "platform" => Some(NodeName::Platform),
            _ => {
                let n: u16 = name.strip_prefix("worker-")?.parse().ok()?;
                (n >= 1).then_some(NodeName::Worker(n))
            }
        }
    }
}

/// What one execution is doing, as its worker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecState {
    Running,
    Finished,
    Failed(String),
    /// The worker refused the deploy: it already runs another deployment of this location and attempt.
    Refused(String),
    /// Stopped by a pause (a source that sent its `Pause` frames).
    Paused,
}

/// One execution in a worker's heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecReport {
    pub task: TaskId,
    pub attempt: u32,
    pub state: ExecState,
    /// What the execution says of checkpoints (recent ones), re-sent with every heartbeat.
    pub checkpoints: CheckpointReport,
}

/// A task's recent checkpoint acknowledgements and declines, and whether its input is exhausted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// (checkpoint id, snapshot): for a source, `(partition, next offset)` pairs; empty for other tasks.
    pub acked: Vec<(u64, Vec<(u32, u64)>)>,
    pub declined: Vec<(u64, FailReason, String)>,
    /// Every input ended: a batch source whose partitions all sent their EOT (ready for the final checkpoint), a
    /// sink whose partitions all delivered theirs.
    pub input_ended: bool,
    /// A source's `(partition, end offset)` for each owned partition that sent its EOT.
    pub ended_at: Vec<(u32, u64)>,
    /// Records this task received and has not finished with (not yet written, or forwarded).
    pub pending: u64,
    /// Records written to the store and not yet acknowledged.
    pub ack_pending: u64,
    /// Every input partition this task owns delivered its `Pause` or its EOT.
    pub inputs_quiet: bool,
}

impl CheckpointReport {
    /// How many checkpoints a report remembers.
    pub const KEEP: usize = 8;

    pub fn ack(&mut self, epoch: u64, snapshot: Vec<(u32, u64)>) {
        if !self.acked.iter().any(|(e, _)| *e == epoch) {
            crate::history::push_bounded(&mut self.acked, (epoch, snapshot), Self::KEEP);
        }
    }

    pub fn decline(&mut self, epoch: u64, reason: FailReason, why: String) {
        assert!(reason.is_decline(), "a task does not fail a checkpoint with {reason}");
        if !self.declined.iter().any(|(e, _, _)| *e == epoch) {
            crate::history::push_bounded(&mut self.declined, (epoch, reason, why), Self::KEEP);
        }
    }
}

/// What the coordinator tells a running execution about checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskControl {
    /// Take checkpoint `epoch` (sources inject its barrier).
    /// `triggered_ms` is on the fault plane's clock ([`crate::faults::fault_clock_ms`]).
    Trigger { epoch: u64, is_final: bool, triggered_ms: u64 },
    /// Checkpoint `epoch` completed (its transactions are committed).
    Complete { epoch: u64, is_final: bool },
    /// Pause: a source stops emitting, sends `Pause` on its streams and ends.
    Pause,
}

/// A completed checkpoint as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedCheckpoint {
    pub epoch: u64,
    /// Next offset of every source partition.
    pub offsets: Vec<u64>,
}

/// The coordinator's checkpoint statistics, as its API shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// (id, completion time ms) of the latest completed checkpoint.
    pub latest_completed: Option<(u64, u64)>,
    /// Recent failed checkpoints: (id, failure time ms, reason), oldest first, at most `KEEP`.
    pub recent_failed: Vec<(u64, u64, String)>,
}

impl CheckpointStats {
    pub const KEEP: usize = 16;
}

/// An alert the platform raised when its checkpoint-failure policy fired with `action = "alert"`, as its API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// 1, 2, ...: in the order raised.
    pub id: u64,
    /// The failed checkpoints that made the policy fire.
    pub epochs: Vec<u64>,
}

impl Alert {
    /// Alerts in one answer of the platform's API; a reader asks again from the last one it has.
    pub const PAGE: usize = 8;
}

/// One task of one attempt, with everything the worker needs to run it.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub attempt: u32,
    /// Tells two deployments of one attempt apart (only the canary `redeploy-without-fencing` makes such).
    pub deploy_seq: u64,
    pub task: TaskId,
    pub spec: Arc<JobSpec>,
    /// Which worker runs each task of this attempt.
    pub placement: Arc<BTreeMap<TaskId, u16>>,
    /// Where each source partition resumes (the restored checkpoint's offsets, or the store's committed offsets).
    pub start_offsets: Arc<Vec<u64>>,
    /// The checkpoint this attempt restored from (0: none); records after it belong to epoch `restored + 1`.
    pub restored_epoch: u64,
}

impl Deployment {
    /// The worker running `task` in this attempt.
    pub fn worker_of(&self, task: TaskId) -> NodeName {
        NodeName::Worker(*self.placement.get(&task).expect("every task of an attempt is placed"))
    }
}

/// The control-plane messages.
#[derive(Clone, Debug)]
pub enum Ctrl {
    /// worker → coordinator, every heartbeat: who I am (incarnation changes on restart) and what I run.
    Heartbeat { worker: u16, incarnation: u64, executions: Vec<ExecReport> },
    /// coordinator → worker: run this execution (idempotent).
    Deploy(Arc<Deployment>),
    /// coordinator → worker: stop every execution of attempts below `below_attempt` (idempotent).
    CancelBelow { below_attempt: u32 },
    /// coordinator → store: refuse writes of attempts below `attempt`; reply with the committed offsets.
    Fence { attempt: u32, partitions: u32 },
    /// store → coordinator: the committed offsets and the latest saved checkpoint.
    Fenced { attempt: u32, next_offsets: Vec<u64>, latest: Option<SavedCheckpoint> },
    /// client → coordinator: read the job status.
    GetStatus { request: u64 },
    /// coordinator → client.
    Status { request: u64, status: JobStatus, drained_on_pause: bool },
    /// client → coordinator: set the desired phase (paused or running); idempotent per request.
    SetPhase { request: u64, pause: bool },
    /// coordinator → client: the request was taken.
    PhaseAck { request: u64 },
    /// coordinator → worker: hand a checkpoint message to the executions of `attempt`.
    ToTasks { attempt: u32, control: TaskControl },
    /// coordinator → store: persist a completed checkpoint and commit its transactions (idempotent).
    SaveCheckpoint { attempt: u32, checkpoint: SavedCheckpoint },
    /// store → coordinator.
    CheckpointSaved { attempt: u32, epoch: u64, result: Result<(), String> },
    /// platform → coordinator: read the checkpoint statistics.
    GetCheckpointStats { request: u64 },
    /// coordinator → platform.
    CheckpointStats { request: u64, stats: CheckpointStats },
    /// platform → coordinator: restart the job (idempotent per request).
    RestartJob { request: u64, cause: String },
    /// client → platform: read the alerts raised after alert `after` (0: from the first).
    GetAlerts { request: u64, after: u64 },
    /// platform → client: the next alerts after the one asked for, oldest first, at most [`Alert::PAGE`].
    Alerts { request: u64, alerts: Vec<Alert> },
}

/// Datagrams taken off the socket and not yet read by the node. When it is full the pump waits, and what arrives
/// meanwhile stays in the simulated socket's mailbox: nothing is dropped.
const CTRL_INBOX: usize = 1024;

/// A node's control endpoint.
///
/// Receiving is cancel-safe: a pump task of the node takes every datagram off the socket and queues it, and
/// [`CtrlEndpoint::recv`] reads the queue. The simulated socket's own receive is not cancel-safe (a datagram it has
/// taken is lost if the future is dropped before it returns), and every node reads its endpoint inside `select!`
/// beside a timer: read directly, a datagram could vanish on a reliable network whenever the timer won the race
/// (found by the timing swarm: a coordinator ticking every 11 ms lost a platform poll).
pub struct CtrlEndpoint {
    ep: Arc<Endpoint>,
    me: NodeName,
    faults: Arc<FaultPlane>,
    tracer: Tracer,
    /// Each node reads its endpoint from one loop, so a plain lock held only inside a poll is all it needs (two
    /// tasks waiting at once would share the queue's one waker).
    inbox: std::sync::Mutex<tokio::sync::mpsc::Receiver<io::Result<(Ctrl, SocketAddr)>>>,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for CtrlEndpoint {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl CtrlEndpoint {
    /// Binds the control port of the current node, `me`, and starts its pump.
    pub async fn bind(me: NodeName, faults: Arc<FaultPlane>, tracer: Tracer) -> io::Result<CtrlEndpoint> {
        let ep = Arc::new(Endpoint::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), CTRL_PORT)).await?);
        let (tx, rx) = tokio::sync::mpsc::channel(CTRL_INBOX);
        let pump = tokio::spawn(pump(ep.clone(), tx).in_current_span());
        Ok(CtrlEndpoint { ep, me, faults, tracer, inbox: std::sync::Mutex::new(rx), pump })
    }

    /// Sends a datagram. Loss is not an error: every control message is re-sent until it has effect. On a slowed
    /// link (an injected fault) the datagram leaves late, from a task of this node: the caller goes on at once, and
    /// later datagrams may overtake it, as on a real network.
    pub async fn send(&self, to: NodeName, msg: Ctrl) {
        let Some(by_ms) = self.faults.link_delay_ms(self.me, to) else {
            // A send only fails when this node's network is gone, which the caller learns on its next receive.
            let _ = self.ep.send_to_raw(to.ctrl(), CTRL_TAG, Box::new(msg)).await;
            return;
        };
        // Every delayed datagram is in the trace: a link still slowed after its `unslow` shows, not only its start.
        self.tracer.emit(Event::ControlDelayed { to, by_ms });
        let ep = self.ep.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(by_ms)).await;
            let _ = ep.send_to_raw(to.ctrl(), CTRL_TAG, Box::new(msg)).await;
        });
    }

    /// Receives the next datagram and the address it came from. Cancel-safe: dropped before it returns, it has taken
    /// nothing.
    pub async fn recv(&self) -> io::Result<(Ctrl, SocketAddr)> {
        let next = std::future::poll_fn(|cx| self.inbox.lock().expect("control inbox lock").poll_recv(cx)).await;
        next.unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::BrokenPipe, "control pump stopped")))
    }
}

/// Takes every control datagram off the socket, in order, into the node's inbox; an error (the node's network is
/// gone) is passed on, and the pump tries again a moment later.
async fn pump(ep: Arc<Endpoint>, inbox: tokio::sync::mpsc::Sender<io::Result<(Ctrl, SocketAddr)>>) {
    loop {
        let got = ep.recv_from_raw(CTRL_TAG).await.and_then(|(payload, from)| {
            let msg = payload
                .downcast::<Ctrl>()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "control payload is not a Ctrl"))?;
            Ok((*msg, from))
        });
        let failed = got.is_err();
        if inbox.send(got).await.is_err() {
            return; // the endpoint is gone
        }
        if failed {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        for n in [
            NodeName::Coordinator,
            NodeName::Store,
            NodeName::Client,
            NodeName::Platform,
            NodeName::Worker(1),
            NodeName::Worker(300),
        ] {
            assert_eq!(NodeName::parse(&n.label()), Some(n));
        }
        assert_eq!(NodeName::parse("worker-0"), None);
        assert_eq!(NodeName::parse("worker-x"), None);
        assert_ne!(NodeName::Worker(1).ip(), NodeName::Worker(251).ip());
    }

    #[test]
    fn no_datagram_is_lost_when_a_timer_wins_the_select() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(7, madsim::Config::default());
        let sender = runtime.create_node().ip(NodeName::Platform.ip()).build();
        let receiver = runtime.create_node().ip(NodeName::Coordinator.ip()).build();
        const SENT: u64 = 200;
        let received = receiver.spawn(async {
            let faults = Arc::new(FaultPlane::default());
            let tracer = Tracer::new("coordinator", Arc::new(crate::event::NullRecorder));
            let ctrl = CtrlEndpoint::bind(NodeName::Coordinator, faults, tracer).await.expect("port free");
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
            let mut seen = Vec::new();
            while (seen.len() as u64) < SENT {
                tokio::select! {
                    biased;
                    _ = tick.tick() => {}
                    msg = ctrl.recv() => match msg {
                        Ok((Ctrl::GetCheckpointStats { request }, _)) => seen.push(request),
                        other => panic!("unexpected {other:?}"),
                    },
                }
            }
            seen
        });
        sender.spawn(async {
            let tracer = Tracer::new("platform", Arc::new(crate::event::NullRecorder));
            let ctrl = CtrlEndpoint::bind(NodeName::Platform, Arc::default(), tracer).await.expect("port free");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            for request in 1..=SENT {
                ctrl.send(NodeName::Coordinator, Ctrl::GetCheckpointStats { request }).await;
                tokio::time::sleep(std::time::Duration::from_micros(700)).await;
            }
            std::future::pending::<()>().await;
        });
        let seen = runtime.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(10), received).await });
        let mut seen = seen.expect("every datagram arrives").expect("the receiver ran");
        seen.sort();
        assert_eq!(seen, (1..=SENT).collect::<Vec<_>>(), "every one, once, on a reliable network (in any order)");
    }
}
