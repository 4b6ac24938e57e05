//! sluice-sim: the harness. Data flows one way: scenario → world → trace → checkers → verdict.
//!
//! Map of the crate:
//! - [`scenario`]: the TOML schema and all its validation (job, `[[faults]]`, `[swarm]`, `[timings]`, `[buggify]`) with file/line/column/key
//!   errors, the validated [`Scenario`].
//! - [`locate`]: where a key stands in a TOML text.
//! - [`fault`]: faults, their timeline of actions, and when the liveness phase starts.
//! - [`world`]: one seeded madsim runtime with the engine's nodes, the fault driver and the status-reading client.
//! - [`trace`]: trace entries, the recorder (hashes and feeds the checkers as entries come; keeps all or the recent
//!   ones), `trace_hash` (versioned canonical form), a readable rendering.
//! - [`checker`]: one file per invariant, each with its own small model.
//! - [`runner`]: one run → a [`RunReport`] (verdict, violations, counts, hash); engine panics become a verdict.
//! - [`timeline`]: `--html OUT`, a self-contained HTML timeline of a run (status bands, faults, checkpoints, a lane
//!   per node with its executions, produced and committed offsets per partition, the first violation).
//! - [`swarm`]: `[swarm]` knobs, faults drawn from the seed and materialized into the scenario as run.
//! - [`guide`]: guided seeds (`--guided`): knob settings that reached rare coverage points are favoured.
//! - [`failure`]: failure files (the scenario as run, seed, canaries, invariant, hash) and their replay.
//! - [`shrink`]: minimizes a failure file while it keeps failing the same invariant.
//! - [`explore`]: sweeps of seeds × scenarios over threads, failures reported as found; shards, merge, the
//!   determinism self-check.
//! - [`logs`]: the stderr logger of `--log` / `RUST_LOG`, stamped with simulated time (off unless asked).
//! - [`bench`]: `sluice bench`, seeds per second of a fixed set of shipped scenarios against a raw-madsim baseline of
//!   the same message volume.

pub mod bench;
pub mod checker;
pub mod explore;
pub mod failure;
pub mod fault;
pub mod guide;
pub mod locate;
pub mod logs;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod swarm;
pub mod timeline;
pub mod trace;
pub mod world;

pub use checker::{FailureClass, Violation};
pub use explore::{explore, merge, ExploreReport, Failing, Finding, Shard, Sweep};
pub use failure::{replay, Failure, Replay, ReplayOutcome};
pub use runner::{
    replay_command, run, run_as_is, run_as_is_judged_twice, run_as_is_keeping, run_keeping, run_watched, RunReport,
    Verdict,
};
pub use scenario::{Scenario, ScenarioError};
