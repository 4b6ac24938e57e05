//! Typed events the engine emits. The recorder (the sim, or a log in production) attaches time and node.
//!
//! Events are facts, stated where they happen; checkers judge the engine from them and from the store's ledger.

use crate::buggify::{BuggifyPoint, BuggifySpec};
use crate::coverage::Point;
use crate::faults::FailReason;
use crate::job::{PolicyAction, RecordId, TaskId};
use crate::net::NodeName;
use crate::status::JobStatus;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How an execution ended on its worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "cause")]
pub enum ExecOutcome {
    Finished,
    /// A source stopped by a pause.
    Paused,
    Failed(String),
    Canceled(String),
}

/// A response the store sends on a sink stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreResponse {
    /// The record was committed.
    Ack(RecordId),
    /// The record was refused: its attempt is fenced.
    Rejected(RecordId),
    /// The batch's EOT marker was received; everything before it on the stream was answered.
    EotAck { partition: u32 },
}

/// Why the coordinator failed an attempt: typed, so that checkers match on it instead of parsing text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "cause")]
pub enum FailureCause {
    /// A worker that runs a task of the attempt sent no heartbeat within the worker timeout.
    WorkerLost { worker: u16 },
    /// A worker that ran a task of the attempt came back with a new incarnation (it lost its executions).
    WorkerRestarted { worker: u16 },
    /// An execution of the attempt reported that it failed.
    TaskFailed { task: TaskId, why: String },
    /// A worker refused to deploy a task of the attempt.
    DeployRefused { task: TaskId, why: String },
    /// More consecutive failed checkpoints than tolerated.
    CheckpointTolerance { consecutive: u32, tolerable: u32 },
    /// Canary `batch-final-checkpoint-fails-job`: one failed checkpoint failed the checkpoint coordinator.
    CheckpointCoordinatorFailed { epoch: u64 },
    /// A restart asked through the API (by the platform).
    RestartRequested { why: String },
}

impl std::fmt::Display for FailureCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureCause::WorkerLost { worker } => write!(f, "worker-{worker} lost (no heartbeat)"),
            FailureCause::WorkerRestarted { worker } => write!(f, "worker-{worker} restarted and lost its executions"),
            FailureCause::TaskFailed { task, why } => write!(f, "{task} failed: {why}"),
            FailureCause::DeployRefused { task, why } => write!(f, "deploy of {task} refused: {why}"),
            FailureCause::CheckpointTolerance { consecutive, tolerable } => write!(
                f,
                "checkpoint tolerance exceeded: {consecutive} consecutive failed checkpoints (tolerable {tolerable})"
            ),
            FailureCause::CheckpointCoordinatorFailed { epoch } => {
                write!(f, "checkpoint coordinator failed: checkpoint {epoch} failed")
            }
            FailureCause::RestartRequested { why } => write!(f, "restart requested: {why}"),
        }
    }
}

/// Why a vertex's replicas changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "cause")]
pub enum ReplicaCause {
    /// A pause scales the source to its pause replicas.
    Pause,
    /// The pause completed: every vertex to 0.
    Paused,
    /// The autoscaler, from the vertex's backlog.
    Autoscaler { backlog: u64 },
}

/// Everything the engine reports. [`EventKind`] names its variants without their fields (a checker says by kind which
/// events it reads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(rename_all = "kebab-case", tag = "event")]
#[strum_discriminants(name(EventKind), derive(strum::EnumCount, strum::VariantArray))]
pub enum Event {
    // ---- coordinator ----
    /// The reported job status changed.
    StatusChanged {
        from: JobStatus,
        to: JobStatus,
        cause: String,
    },
    /// A new attempt is deployed: sources resume at `start_offsets` (one per partition).
    AttemptDeployed {
        attempt: u32,
        start_offsets: Vec<u64>,
        placement: Vec<(TaskId, u16)>,
    },
    /// The coordinator failed the attempt.
    FailureDetected {
        attempt: u32,
        cause: FailureCause,
    },
    /// The restart strategy allowed a restart after `delay_ms`.
    RestartScheduled {
        attempt: u32,
        delay_ms: u64,
    },
    /// The restart strategy refused to restart.
    RestartRefused {
        attempt: u32,
        cause: String,
    },

    // ---- worker ----
    ExecutionStarted {
        task: TaskId,
        attempt: u32,
    },
    ExecutionEnded {
        task: TaskId,
        attempt: u32,
        outcome: ExecOutcome,
    },

    // ---- source ----
    /// A record went into the buffer.
    Emitted {
        attempt: u32,
        id: RecordId,
    },
    /// The source sent the EOT of a partition; `end_offset` records precede it.
    SourceEot {
        attempt: u32,
        task: TaskId,
        partition: u32,
        end_offset: u64,
    },

    // ---- sink ----
    /// The sink read a partition's EOT from its input.
    SinkEotReceived {
        attempt: u32,
        task: TaskId,
        partition: u32,
    },
    /// A forwarder sent a batch (`count` records then the framing EOT) on a store stream.
    SinkBatchSent {
        attempt: u32,
        task: TaskId,
        partition: u32,
        stream: Arc<str>,
        first_offset: u64,
        count: u32,
    },
    /// A forwarder read one response from its store stream.
    SinkResponse {
        attempt: u32,
        task: TaskId,
        partition: u32,
        stream: Arc<str>,
        response: StoreResponse,
    },
    /// A forwarder's batch is fully answered; everything before `upto_offset` of the partition is acknowledged.
    SinkBatchAcked {
        attempt: u32,
        task: TaskId,
        partition: u32,
        upto_offset: u64,
    },
    /// A sink replica finished, claiming every partition it owns ended and was acknowledged.
    SinkFinished {
        attempt: u32,
        task: TaskId,
        partitions: Vec<u32>,
    },

    // ---- store ----
    /// The store fenced every attempt below `attempt`; sources resume at `next_offsets`.
    Fenced {
        attempt: u32,
        next_offsets: Vec<u64>,
    },
    /// A record entered the ledger.
    Committed {
        attempt: u32,
        id: RecordId,
    },
    /// A write of a fenced attempt was refused.
    WriteRejected {
        attempt: u32,
        current_attempt: u32,
        id: RecordId,
    },
    /// Staged (uncommitted) records of fenced attempts were discarded.
    TransactionsAborted {
        below_attempt: u32,
        records: u64,
    },
    /// The store answered a batch's EOT on one sink connection (`conn`, numbered by the store as it accepts them):
    /// the batch held `records` writes, of these partitions (what the store saw on the wire, whatever the sink thinks).
    StoreBatchServed {
        attempt: u32,
        conn: u64,
        label: Arc<str>,
        partition: u32,
        partitions: Vec<u32>,
        records: u32,
    },
    /// Checkpoint storage saved a checkpoint (and committed its transactions, each a `committed` just before): the
    /// source's next offset of every partition at the checkpoint's barrier.
    CheckpointStored {
        attempt: u32,
        epoch: u64,
        offsets: Vec<u64>,
    },

    // ---- checkpoints (coordinator) ----
    CheckpointTriggered {
        attempt: u32,
        epoch: u64,
        is_final: bool,
    },
    CheckpointCompleted {
        attempt: u32,
        epoch: u64,
        is_final: bool,
    },
    /// A checkpoint failed; `consecutive` counts failed checkpoints since the last success (each id once).
    CheckpointFailed {
        attempt: u32,
        epoch: u64,
        reason: FailReason,
        detail: String,
        consecutive: u32,
    },
    /// The coordinator restored an attempt from a checkpoint (0: none) and the source offsets it starts at.
    Restored {
        attempt: u32,
        epoch: u64,
    },
    /// The coordinator asked workers to cancel executions below an attempt.
    CancelRequested {
        below_attempt: u32,
    },
    /// Executions of old attempts that were still reported when the cancel bound passed (they are fenced).
    CancelUnconfirmed {
        below_attempt: u32,
        workers: Vec<u16>,
    },
    /// A restart asked through the API (by the platform).
    RestartRequested {
        cause: String,
    },
    /// The desired phase was set through the API.
    PauseRequested,
    ResumeRequested,
    /// The replicas of a vertex changed, and why.
    ReplicasChanged {
        vertex: u16,
        from: u16,
        to: u16,
        cause: ReplicaCause,
    },
    /// The autoscaler looked at the backlog (pending + awaiting acknowledgement, over the vertex's replicas) of every
    /// vertex, in vertex order.
    AutoscaleSampled {
        backlogs: Vec<u64>,
    },
    /// The pause controller checked the buffers: `sources_running` replicas, records pending and ack-pending.
    DrainChecked {
        sources_running: u16,
        pending: u64,
        ack_pending: u64,
        drained: bool,
    },
    /// `drained_on_pause` changed.
    DrainedFlag {
        value: bool,
    },

    // ---- tasks ----
    /// A task acknowledged a checkpoint (after its barrier was aligned and its writes were staged).
    CheckpointAcked {
        attempt: u32,
        task: TaskId,
        epoch: u64,
    },

    // ---- buggify: a seeded rare path taken (only when the job asks for buggify) ----
    /// The engine took the rare path of a buggify point here.
    Buggified {
        point: BuggifyPoint,
    },
    // ---- fault effects: emitted by the component where an injected fault takes effect ----
    /// A worker or the store started: at boot, and after every restart (`incarnation` is drawn anew each time).
    NodeStarted {
        incarnation: u64,
    },
    /// A source sent a partition's EOT once more (an injected duplicate); `delivered` is false when its consumer had
    /// already closed the stream after reading the first one.
    EotDuplicated {
        attempt: u32,
        task: TaskId,
        partition: u32,
        end_offset: u64,
        delivered: bool,
    },
    /// A source declined a checkpoint, for `reason` (declined, subsumed or task-not-ready).
    CheckpointDeclined {
        attempt: u32,
        task: TaskId,
        epoch: u64,
        reason: FailReason,
    },
    /// A source withholds its acknowledgement of a checkpoint, so that the checkpoint expires.
    CheckpointAckWithheld {
        attempt: u32,
        task: TaskId,
        epoch: u64,
    },
    /// A task will acknowledge a checkpoint `by_ms` late.
    CheckpointAckDelayed {
        attempt: u32,
        task: TaskId,
        epoch: u64,
        by_ms: u64,
    },
    /// Checkpoint storage refused to save a checkpoint (an I/O error).
    CheckpointStorageFailed {
        attempt: u32,
        epoch: u64,
    },
    /// A control datagram to `to` leaves `by_ms` late: each one sent on a slowed link (the emitting node is the
    /// link's other end).
    ControlDelayed {
        to: NodeName,
        by_ms: u64,
    },
    /// A worker carries out the cancellation of a live execution `by_ms` late.
    CancelDelayed {
        task: TaskId,
        attempt: u32,
        by_ms: u64,
    },

    // ---- platform ----
    /// The platform counted a failed checkpoint toward its policy; `count` is the count after it.
    PolicyFailureCounted {
        epoch: u64,
        count: u32,
    },
    /// The policy fired on these failed checkpoints.
    PolicyFired {
        action: PolicyAction,
        epochs: Vec<u64>,
    },
    /// The platform raised alert `id` (its policy fired with `action = "alert"`); its API shows it from now on.
    AlertRaised {
        id: u64,
        epochs: Vec<u64>,
    },
}

/// Receives events; attaches simulated time and the emitting node.
pub trait Recorder: Send + Sync {
    /// Records an event of `node` (each node's tracer passes its one shared name).
    fn record(&self, node: &Arc<str>, event: Event);

    /// A coverage point was reached: recorded on the side, never part of the trace (see [`crate::coverage`]).
    fn reach(&self, _point: Point) {}
}

/// A recorder that drops everything (for engine unit tests).
pub struct NullRecorder;

impl Recorder for NullRecorder {
    fn record(&self, _node: &Arc<str>, _event: Event) {}
}

/// A node's handle on the recorder.
#[derive(Clone)]
pub struct Tracer {
    node: Arc<str>,
    recorder: Arc<dyn Recorder>,
    /// The job's buggify points, when it asks for them.
    buggify: Option<Arc<BuggifySpec>>,
}

impl Tracer {
    pub fn new(node: &str, recorder: Arc<dyn Recorder>) -> Tracer {
        Tracer { node: node.into(), recorder, buggify: None }
    }

    /// The same handle, with the job's buggify points.
    pub fn with_buggify(self, buggify: Option<Arc<BuggifySpec>>) -> Tracer {
        Tracer { buggify, ..self }
    }

    /// Whether the buggify point fires now (never when the job did not ask for it); a firing is a trace event.
    pub fn buggify(&self, point: BuggifyPoint) -> bool {
        let fired = self.buggify.as_ref().is_some_and(|b| b.fires(point));
        if fired {
            self.emit(Event::Buggified { point });
        }
        fired
    }

    pub fn emit(&self, event: Event) {
        crate::log::event(&event);
        self.recorder.record(&self.node, event);
    }

    /// Marks a coverage point reached. Behaviour and trace do not change.
    pub fn reach(&self, point: Point) {
        self.recorder.reach(point);
    }
}
