//! sluice-engine: a small streaming/batch dataflow engine that runs on a (simulated) network.
//!
//! It knows nothing of scenarios or checkers: it emits typed events and keeps a ledger; the sim judges.
//!
//! Map of the crate:
//! - [`job`]: what to run: the chain of vertices, partitions, restart strategy, timings; record ids and routing.
//! - [`status`]: the job status state machine (terminal statuses are never left).
//! - [`event`]: the typed events the engine emits, and the recorder that receives them.
//! - [`log`]: every typed event also goes to `tracing` (for people, filtered by `RUST_LOG`); the trace is the oracle.
//! - [`canary`]: deliberately reintroduced historical bugs, off by default.
//! - [`buggify`]: seeded rare paths (a late response, a skipped heartbeat...), off unless the job asks; each firing
//!   is a trace event.
//! - [`coverage`]: coverage points: rare states a run reached, counted on the side (not in the trace).
//! - [`net`]: node addresses and the control plane (idempotent datagrams).
//! - [`stream`]: the data plane: ordered, credit-based streams with in-band `Data`/`Eot` frames; records travel in
//!   buffers, credits come back in bulk.
//! - [`join`]: joins many futures deterministically (futures' `try_join_all` beyond 30 is not, under madsim).
//! - [`timer`]: a deadline that registers one simulated timer, not one per poll (madsim's sleeps pile them up).
//! - [`node`]: what the nodes of one run share (job, canaries, recorder, external source, ledger).
//! - [`coordinator`]: the job master: attempts, fencing, failure detection, restarts, status API.
//! - [`worker`]: runs executions, one live execution per location, heartbeats.
//! - [`source`], [`map`], [`sink`]: the operators, each a struct whose handlers do one thing and a loop that
//!   chooses; [`forwarder`]: the sink's store side, class C's EOT-framed batch protocol.
//! - [`store`]: the external sink target: ledger, fencing by attempt.
//! - [`restart`]: restart strategies with Flink's semantics.
//! - [`checkpoint`]: the checkpoint coordinator: triggers, acknowledgements, timeouts, tolerance, statistics.
//! - [`lifecycle`]: the pause/drain/resume controller's state and the replica computation.
//! - [`platform`]: the management platform (StreamPark's role): polls checkpoint statistics, enforces its policy.
//! - [`history`]: bounded histories (acknowledgements, declines, statistics, alerts): the newest entries only.
//! - [`faults`]: the fault plane: where injected faults enter the engine, at the places real ones arise.

pub mod buggify;
pub mod canary;
pub mod checkpoint;
pub mod coordinator;
pub mod coverage;
pub mod event;
pub mod faults;
pub mod forwarder;
pub mod history;
pub mod job;
pub mod join;
pub mod lifecycle;
pub mod log;
pub mod map;
pub mod net;
pub mod node;
pub mod platform;
pub mod restart;
pub mod sink;
pub mod source;
pub mod status;
pub mod store;
pub mod stream;
pub mod timer;
pub mod worker;

pub use canary::{BugClass, Canaries, Canary};
pub use coverage::{Point, Reached};
pub use event::{Event, EventKind, ExecOutcome, FailureCause, Recorder, ReplicaCause, StoreResponse, Tracer};
pub use job::{
    CheckpointSpec, Delivery, JobSpec, Mode, PolicyAction, PolicySpec, RecordId, RestartSpec, TaskId, Timings,
    VertexKind, VertexSpec,
};
pub use node::NodeContext;
pub use status::JobStatus;
