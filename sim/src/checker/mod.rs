//! Checkers: each holds its own small model, consumes the trace in order, and reports violations.
//!
//! Checkers judge from the trace and the ledger, never from engine internals. Every checker has a test that shows it
//! failing and one that shows it passing.

mod autoscaler_follows_rule;
pub mod bounds;
mod checkpoint_schedule;
mod commits_match_checkpoint;
pub mod config;
mod eventually_terminal;
mod exactly_once;
mod executions;
mod expected_status;
mod failures_explained;
mod faults_take_effect;
mod judge;
pub mod kinds;
mod partition_progress;
mod pause_drains;
mod pause_grace;
mod production_matches_config;
mod reachability;
mod restart_policy_honored;
mod resumes_at_recovery_point;
mod single_live_execution;
mod status_matches_ledger;
mod status_transitions;
mod superseded_executions_end;
mod terminal_is_quiescent;
mod worker_loss_handled;

pub use autoscaler_follows_rule::{AutoscalerFollowsRule, Scale};
pub use checkpoint_schedule::CheckpointSchedule;
pub use commits_match_checkpoint::CommitsMatchCheckpoint;
pub use eventually_terminal::EventuallyTerminal;
pub use exactly_once::ExactlyOnce;
pub use expected_status::ExpectedStatus;
pub use failures_explained::FailuresExplained;
pub use faults_take_effect::FaultsTakeEffect;
pub use judge::{DistinctIds, IdRuns, Judge, JudgePair, SharedJudge, SharedJudgePair};
pub use kinds::Kinds;
pub use partition_progress::PartitionProgress;
pub use pause_drains::PauseDrains;
pub use production_matches_config::ProductionMatchesConfig;
pub use restart_policy_honored::RestartPolicyHonored;
pub use resumes_at_recovery_point::ResumesAtRecoveryPoint;
pub use single_live_execution::SingleLiveExecution;
pub use status_matches_ledger::StatusMatchesLedger;
pub use status_transitions::StatusTransitions;
pub use superseded_executions_end::SupersededExecutionsEnd;
pub use terminal_is_quiescent::TerminalIsQuiescent;
pub use worker_loss_handled::WorkerLossHandled;

/// Every invariant a run can violate: the checkers' names, and `engine-assertion` (an engine panic). A failure file
/// naming another is refused.
pub const INVARIANTS: [&str; 20] = [
    status_matches_ledger::NAME,
    exactly_once::NAME,
    commits_match_checkpoint::NAME,
    partition_progress::NAME,
    eventually_terminal::NAME,
    expected_status::NAME,
    terminal_is_quiescent::NAME,
    single_live_execution::NAME,
    restart_policy_honored::NAME,
    pause_drains::NAME,
    production_matches_config::NAME,
    faults_take_effect::NAME,
    failures_explained::NAME,
    status_transitions::NAME,
    superseded_executions_end::NAME,
    checkpoint_schedule::NAME,
    autoscaler_follows_rule::NAME,
    worker_loss_handled::NAME,
    resumes_at_recovery_point::NAME,
    crate::runner::ENGINE_PANIC,
];

use crate::scenario::Scenario;
use crate::trace::TraceEntry;
use serde::Serialize;
use sluice_engine::store::Commit;
use sluice_engine::{CheckpointSpec, Delivery, JobStatus, Mode, PolicySpec, RestartSpec, VertexKind};
use std::fmt;

/// The statuses a job never leaves (README: FAILED, CANCELED, FINISHED): the checkers' own definition.
pub fn terminal(status: JobStatus) -> bool {
    matches!(status, JobStatus::Failed | JobStatus::Canceled | JobStatus::Finished)
}

/// What kind of failure a violation is (TigerBeetle's split).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum FailureClass {
    /// Something wrong happened.
    Safety,
    /// Something that should have happened did not, within its bound.
    Liveness,
    /// The engine hit an assertion (a bug only a bug can cause).
    Crash,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: String,
    pub at_ms: u64,
    pub detail: String,
    pub class: FailureClass,
}

impl Violation {
    pub fn new(invariant: &str, at_ms: u64, class: FailureClass, detail: impl Into<String>) -> Violation {
        Violation { invariant: invariant.to_string(), at_ms, detail: detail.into(), class }
    }
}

/// The violations of one invariant, capped: the first [`Capped::AT_MOST`] are kept, the rest counted and summed up
/// in one last violation, so a run that breaks an invariant on every record stays readable and bounded.
#[derive(Debug)]
pub(crate) struct Capped {
    invariant: &'static str,
    kept: Vec<Violation>,
    suppressed: usize,
}

impl Capped {
    pub const AT_MOST: usize = 5;

    pub fn new(invariant: &'static str) -> Capped {
        Capped { invariant, kept: Vec::new(), suppressed: 0 }
    }

    pub fn report(&mut self, at_ms: u64, class: FailureClass, detail: String) {
        if self.kept.len() < Self::AT_MOST {
            self.kept.push(Violation::new(self.invariant, at_ms, class, detail));
        } else {
            self.suppressed += 1;
        }
    }

    /// The kept violations, and one more that counts the rest.
    pub fn finish(&mut self) -> Vec<Violation> {
        if self.suppressed > 0 {
            let last = self.kept.last().expect("a suppressed violation follows kept ones");
            let (at_ms, class) = (last.at_ms, last.class);
            let detail = format!("and {} more {} violations", self.suppressed, self.invariant);
            self.kept.push(Violation::new(self.invariant, at_ms, class, detail));
            self.suppressed = 0;
        }
        std::mem::take(&mut self.kept)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) at {} ms: {}", self.invariant, self.class, self.at_ms, self.detail)
    }
}

/// What the checkers know of a run before it starts: the scenario's facts, nothing of the engine's internals.
#[derive(Clone, Debug)]
pub struct Setup {
    pub mode: Mode,
    pub delivery: Delivery,
    pub partitions: u32,
    /// Records each source partition holds at the start (an early end lowers it; the trace says so); `u64::MAX` for
    /// a streaming partition. Computed by [`config::shares`] from the scenario's `records` and `skew`.
    pub initial_records: Vec<u64>,
    /// Records per second each source partition emits at most (0: unpaced in batch, no data in streaming).
    pub rates_per_sec: Vec<u64>,
    pub workers: u16,
    /// The network's loss rate.
    pub loss: f64,
    /// Canaries switched on for the run (a failure a canary causes is explained by it).
    pub canaries: Vec<sluice_engine::Canary>,
    /// Each vertex's kind and scale bounds as the scenario sets them, with its replicas at the start.
    pub scales: Vec<Scale>,
    pub duration_ms: u64,
    /// From when liveness is judged; `None`: never (a fault is never healed).
    pub liveness_start_ms: Option<u64>,
    pub progress_within_ms: u64,
    pub terminal_within_ms: u64,
    pub expect_status: Option<JobStatus>,
    pub expect_within_ms: Option<u64>,
    /// After a terminal status, by when no unfenced execution may run and the ledger must be still.
    pub quiescent_within_ms: u64,
    pub restart: RestartSpec,
    pub checkpoint: Option<CheckpointSpec>,
    pub policy: Option<PolicySpec>,
    /// The network's highest one-way latency (slack for message round trips).
    pub latency_max_ms: u64,
    pub pause_grace_period_ms: u64,
    /// Sinks stage writes and commit them with checkpoints.
    pub two_phase: bool,
    /// Records per batch on a sink's store stream, as the scenario sets it.
    pub sink_batch_size: u32,
    /// Partitions of the sink's buffer, as the scenario sets them (`job.partitions` unless the sink names its own).
    pub sink_partitions: u32,
    /// The time bounds, from the scenario's `[timings]`.
    pub bounds: bounds::Bounds,
}

impl Setup {
    /// How many times in a row a request that is re-sent every period (a poll, a tick's intent) may go unanswered on
    /// this network before a checker calls the wait too long: 0 without loss; with loss `p`, a request or its answer
    /// is lost with chance about `2p`, and the smallest `k` with `(2p)^k` at most one in a billion is allowed.
    pub fn lost_in_a_row(&self) -> u32 {
        if self.loss <= 0.0 {
            return 0;
        }
        let per_round = (2.0 * self.loss).min(0.99);
        let k = (1e-9f64.ln() / per_round.ln()).ceil();
        assert!((1.0..1e4).contains(&k), "a loss rate below 0.5 gives a small count: {k}");
        k as u32
    }

    pub fn of(s: &Scenario) -> Setup {
        let actions = crate::fault::timeline(&s.faults);
        let split = config::shares(s.source.records, &s.source.skew);
        let (initial_records, rates_per_sec) = match (s.job.mode, s.source.rate_per_sec) {
            (Mode::Batch, Some(rate)) => (split, vec![rate; s.job.partitions as usize]),
            _ => (vec![u64::MAX; s.job.partitions as usize], split),
        };
        Setup {
            mode: s.job.mode,
            delivery: s.job.delivery,
            partitions: s.job.partitions,
            initial_records,
            rates_per_sec,
            workers: s.job.workers,
            loss: s.network.loss,
            canaries: Vec::new(),
            scales: s
                .job
                .vertices
                .iter()
                .map(|v| Scale { kind: v.kind, min: v.scale_min, max: v.scale_max, replicas: v.replicas })
                .collect(),
            duration_ms: s.duration_ms,
            liveness_start_ms: crate::fault::liveness_start_ms(&actions, s.job.workers),
            progress_within_ms: s.expect.progress_within_ms,
            terminal_within_ms: s.expect.terminal_within_ms,
            expect_status: s.expect.status,
            expect_within_ms: s.expect.within_ms,
            quiescent_within_ms: s.expect.quiescent_within_ms,
            restart: s.job.restart,
            checkpoint: s.job.checkpoint,
            policy: s.job.policy,
            latency_max_ms: s.network.latency_ms.1,
            pause_grace_period_ms: s.job.pause_grace_period_ms,
            // README: with checkpoints, an exactly-once sink stages its writes and commits them with checkpoints.
            two_phase: s.job.delivery == Delivery::ExactlyOnce && s.job.checkpoint.is_some(),
            bounds: bounds::Bounds::of(&s.job.timings),
            sink_batch_size: s
                .job
                .vertices
                .iter()
                .find(|v| v.kind == VertexKind::Sink)
                .map_or(u32::MAX, |v| v.batch_size),
            sink_partitions: s
                .job
                .vertices
                .iter()
                .find(|v| v.kind == VertexKind::Sink)
                .map_or(s.job.partitions, |v| v.partitions),
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct End<'a> {
    pub end_ms: u64,
    /// The last status the client read through the API.
    pub final_status: Option<JobStatus>,
    /// The store's ledger: the ground truth (`None` in checker unit tests, which have no store).
    pub ledger: Option<&'a [Commit]>,
}

/// A checker: consumes entries in order, then judges. `Send`: it runs inside the recorder, as the run goes.
pub trait Checker: Send + std::fmt::Debug {
    fn on_entry(&mut self, entry: &TraceEntry);
    fn finish(&mut self, end: &End) -> Vec<Violation>;

    /// The kinds of entry that can change what this checker holds or concludes, apart from those its deadlines wake
    /// it for (`wake_at_us`). Asked once, before the first entry; it may depend on the setup (a checker with nothing
    /// to watch in a run reads nothing). Default: every entry.
    fn kinds(&self) -> Kinds {
        Kinds::ALL
    }

    /// The earliest simulated time (µs) at which an entry of a kind outside [`Checker::kinds`] can change this
    /// checker: the first moment one of its deadlines can pass. Asked before the first entry and after every entry
    /// it reads (nothing else changes it); `u64::MAX`: no deadline pending. Default: from the start (every entry).
    fn wake_at_us(&self) -> u64 {
        0
    }
}

/// Every checker, for a run with this setup.
pub fn all(setup: &Setup) -> Vec<Box<dyn Checker>> {
    vec![
        Box::new(StatusMatchesLedger::new(setup)),
        Box::new(ExactlyOnce::new(setup)),
        Box::new(CommitsMatchCheckpoint::new(setup)),
        Box::new(PartitionProgress::new(setup)),
        Box::new(EventuallyTerminal::new(setup)),
        Box::new(ExpectedStatus::new(setup)),
        Box::new(TerminalIsQuiescent::new(setup)),
        Box::new(SingleLiveExecution::new(setup)),
        Box::new(RestartPolicyHonored::new(setup)),
        Box::new(PauseDrains::new(setup)),
        Box::new(ProductionMatchesConfig::new(setup)),
        Box::new(FaultsTakeEffect::new(setup)),
        Box::new(FailuresExplained::new(setup)),
        Box::new(StatusTransitions::new(setup)),
        Box::new(SupersededExecutionsEnd::new(setup)),
        Box::new(CheckpointSchedule::new(setup)),
        Box::new(AutoscalerFollowsRule::new(setup)),
        Box::new(WorkerLossHandled::new(setup)),
        Box::new(ResumesAtRecoveryPoint::new(setup)),
    ]
}

/// Runs every checker over a trace; violations sorted by time, then name.
pub fn check(setup: &Setup, trace: &[TraceEntry], end: &End) -> Vec<Violation> {
    judge_with(Judge::new(setup), trace, end)
}

/// [`check`], with every checker reading every entry, whatever its [`Checker::kinds`]: what the dispatch by kind
/// must agree with.
pub fn check_every_entry(setup: &Setup, trace: &[TraceEntry], end: &End) -> Vec<Violation> {
    judge_with(Judge::every_entry(setup), trace, end)
}

fn judge_with(mut judge: Judge, trace: &[TraceEntry], end: &End) -> Vec<Violation> {
    for entry in trace {
        judge.on_entry(entry);
    }
    judge.finish(end)
}

/// Helpers to build hand-made traces in checker tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::trace::TraceEvent;
    use sluice_engine::{Event, RecordId, TaskId};

    pub fn setup(records: Vec<u64>) -> Setup {
        let sink_partitions = records.len() as u32;
        Setup {
            mode: Mode::Batch,
            delivery: Delivery::ExactlyOnce,
            partitions: records.len() as u32,
            rates_per_sec: vec![0; records.len()],
            initial_records: records,
            workers: 2,
            loss: 0.0,
            canaries: Vec::new(),
            scales: Vec::new(),
            duration_ms: 100_000,
            liveness_start_ms: Some(0),
            progress_within_ms: 1_000,
            terminal_within_ms: 10_000,
            expect_status: None,
            expect_within_ms: None,
            quiescent_within_ms: 1_000,
            restart: RestartSpec::None,
            checkpoint: None,
            policy: None,
            latency_max_ms: 10,
            pause_grace_period_ms: 30_000,
            two_phase: false,
            sink_batch_size: 10,
            sink_partitions,
            bounds: super::bounds::Bounds::default(),
        }
    }

    pub fn fault(ms: u64, action: crate::fault::Action) -> TraceEntry {
        TraceEntry { at_us: ms * 1000, node: "sim".into(), event: TraceEvent::Fault(action) }
    }

    pub fn worker(n: u16) -> sluice_engine::net::NodeName {
        sluice_engine::net::NodeName::Worker(n)
    }

    pub fn at(ms: u64, node: &str, event: Event) -> TraceEntry {
        TraceEntry { at_us: ms * 1000, node: node.into(), event: TraceEvent::Engine(event) }
    }

    pub fn commit(ms: u64, p: u32, o: u64) -> TraceEntry {
        at(ms, "store", Event::Committed { attempt: 1, id: RecordId { partition: p, offset: o } })
    }

    pub fn status(ms: u64, from: JobStatus, to: JobStatus) -> TraceEntry {
        at(ms, "coordinator", Event::StatusChanged { from, to, cause: "test".into() })
    }

    pub fn sink() -> TaskId {
        TaskId { vertex: 1, replica: 0 }
    }

    /// Feeds `c` the trace as the judge does: only the entries of its kinds and those its deadlines wake it for.
    fn feed(c: &mut dyn Checker, trace: &[TraceEntry]) {
        let (kinds, mut wake_at_us) = (c.kinds(), c.wake_at_us());
        for e in trace {
            super::judge::offer(c, kinds, &mut wake_at_us, e, Kinds::of(e));
        }
    }

    pub fn run(c: &mut dyn Checker, trace: &[TraceEntry], end_ms: u64) -> Vec<Violation> {
        feed(c, trace);
        c.finish(&End { end_ms, final_status: None, ledger: None })
    }

    /// As [`run`], with the store's ledger at the end.
    pub fn run_with_ledger(c: &mut dyn Checker, trace: &[TraceEntry], ledger: &[Commit]) -> Vec<Violation> {
        feed(c, trace);
        c.finish(&End { end_ms: 10_000, final_status: None, ledger: Some(ledger) })
    }

    pub fn ledger_of(ids: &[(u32, u64)]) -> Vec<Commit> {
        ids.iter().map(|(p, o)| Commit { id: RecordId { partition: *p, offset: *o }, attempt: 1 }).collect()
    }
}

#[cfg(test)]
mod invariant_names {
    use super::*;

    #[test]
    fn every_checker_and_the_engine_panic_have_one_distinct_name() {
        let checkers = all(&tests_support::setup(vec![1])).len();
        assert_eq!(INVARIANTS.len(), checkers + 1, "a checker without its name in INVARIANTS");
        let distinct: std::collections::BTreeSet<&str> = INVARIANTS.iter().copied().collect();
        assert_eq!(distinct.len(), INVARIANTS.len());
    }

    #[test]
    fn requests_lost_in_a_row_grow_with_the_loss_rate() {
        let with = |loss: f64| Setup { loss, ..tests_support::setup(vec![1]) }.lost_in_a_row();
        assert_eq!(with(0.0), 0, "a reliable network loses nothing");
        assert_eq!(with(0.0162), 7, "(2 x 0.0162)^7 < 1e-9 <= (2 x 0.0162)^6");
        assert_eq!(with(0.001), 4);
        assert!(with(0.05) > with(0.02) && with(0.49) < 10_000);
    }

    #[test]
    fn capped_keeps_the_first_violations_and_counts_the_rest() {
        let mut capped = Capped::new("exactly-once");
        for ms in 0..7 {
            capped.report(ms, FailureClass::Safety, format!("v{ms}"));
        }
        let v = capped.finish();
        assert_eq!(v.len(), Capped::AT_MOST + 1);
        assert_eq!((v[5].at_ms, v[5].detail.as_str()), (4, "and 2 more exactly-once violations"));
        assert!(Capped::new("x").finish().is_empty());
    }
}
