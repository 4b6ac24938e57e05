//! One run: a scenario, a seed, a set of canaries → a verdict with its violations, counts and `trace_hash`.

use crate::checker::{
    DistinctIds, End, FailureClass, Judge, JudgePair, Setup, SharedJudge, SharedJudgePair, Violation,
};
use crate::scenario::Scenario;
use crate::swarm::{instantiate, SwarmMode};
use crate::trace::{TraceEntry, TraceKeep, TraceObserver, TraceRecorder};
use crate::world::simulate;
use serde::Serialize;
use sluice_engine::{Canaries, Canary, JobStatus, Point};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Once};
use std::time::Instant;

/// Invariant name of a run that ended in an engine panic (an `assert!` that only a bug can trip).
pub const ENGINE_PANIC: &str = "engine-assertion";

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
}

/// What `sluice run --json` prints (the `trace` is kept for callers, not printed).
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub canaries: Vec<String>,
    pub verdict: Verdict,
    pub violations: Vec<Violation>,
    /// The final status read through the coordinator's API (`null` if it was never read).
    pub status: Option<JobStatus>,
    /// `drained_on_pause`, read through the API with the final status.
    pub drained_on_pause: bool,
    /// Distinct records the source put into the job.
    pub produced: u64,
    /// Distinct records committed in the store's ledger.
    pub delivered: u64,
    pub trace_hash: String,
    pub sim_ms: u64,
    pub wall_ms: u64,
    /// Messages the simulated network carried (stream frames and datagrams that got through).
    pub messages: u64,
    /// The `[swarm]` knobs that were on when the faults were drawn (absent without `[swarm]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<BTreeMap<String, f64>>,
    /// The coverage points the run reached, in declaration order (not part of the trace or its hash).
    pub coverage: Vec<Point>,
    /// When the client first read a terminal status (what the swarm's pilot run measures).
    #[serde(skip)]
    pub first_terminal_ms: Option<u64>,
    /// The trace as kept: all of it, or (in sweeps and `run` without `--trace`) the most recent entries.
    #[serde(skip)]
    pub trace: Vec<TraceEntry>,
    /// Entries recorded before `trace` and not kept (0 when the whole trace was kept).
    #[serde(skip)]
    pub trace_dropped: u64,
}

impl RunReport {
    /// The first violation's invariant, if the run failed.
    pub fn first_invariant(&self) -> Option<&str> {
        self.violations.first().map(|v| v.invariant.as_str())
    }
}

thread_local! {
    static IN_SIM: RefCell<bool> = const { RefCell::new(false) };
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a simulation are captured as a verdict, not printed; others go to the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_SIM.with(|f| *f.borrow()) {
                let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{message}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one scenario under one seed with the given canaries, and judges it. A `[swarm]` scenario runs with the faults
/// its knobs draw from the seed. Keeps the whole trace.
pub fn run(scenario: &Scenario, seed: u64, canaries: &[Canary]) -> RunReport {
    run_keeping(scenario, seed, canaries, TraceKeep::All)
}

/// [`run`], keeping as much of the trace as `keep` says (the checkers and the hash see all of it either way).
pub fn run_keeping(scenario: &Scenario, seed: u64, canaries: &[Canary], keep: TraceKeep) -> RunReport {
    run_watched(scenario, seed, canaries, keep, None)
}

/// [`run_keeping`], with `watcher` seeing every entry as it is recorded, after the checkers (a timeline is built so,
/// without keeping the trace).
pub fn run_watched(
    scenario: &Scenario,
    seed: u64,
    canaries: &[Canary],
    keep: TraceKeep,
    watcher: Option<Box<dyn TraceObserver>>,
) -> RunReport {
    let (as_run, knobs) = instantiate(scenario, seed, SwarmMode::AsWritten);
    let mut report = run_as_is_watched(&as_run, seed, canaries, keep, watcher);
    report.swarm = knobs;
    report
}

/// Hands every entry to the first (the judge), then to the second (a watcher).
struct Tee(Box<dyn TraceObserver>, Box<dyn TraceObserver>);

impl TraceObserver for Tee {
    fn on_entry(&mut self, entry: &TraceEntry) {
        self.0.on_entry(entry);
        self.1.on_entry(entry);
    }
}

/// Runs a scenario exactly as it is (a `[swarm]` table must have been instantiated before); keeps the whole trace.
pub fn run_as_is(scenario: &Scenario, seed: u64, canaries: &[Canary]) -> RunReport {
    run_as_is_keeping(scenario, seed, canaries, TraceKeep::All)
}

/// [`run_as_is`], keeping as much of the trace as `keep` says. The checkers judge the entries as the run records
/// them, so a run's memory does not grow with its trace unless the whole trace is asked for.
pub fn run_as_is_keeping(scenario: &Scenario, seed: u64, canaries: &[Canary], keep: TraceKeep) -> RunReport {
    run_as_is_watched(scenario, seed, canaries, keep, None)
}

fn run_as_is_watched(
    scenario: &Scenario,
    seed: u64,
    canaries: &[Canary],
    keep: TraceKeep,
    watcher: Option<Box<dyn TraceObserver>>,
) -> RunReport {
    run_as_is_judged(scenario, seed, canaries, keep, watcher, None).0
}

/// [`run_as_is`] (keeping no trace), judged a second time by a [`JudgePair`]: the run's report, and the pair's
/// finding: the verdict, or where a checker that skipped an entry would have been changed by it (see
/// [`crate::checker::kinds`]). An engine panic leaves the pair without a verdict: `Ok` of no violation.
pub fn run_as_is_judged_twice(
    scenario: &Scenario,
    seed: u64,
    canaries: &[Canary],
) -> (RunReport, Result<Vec<Violation>, String>) {
    let setup = setup_of(scenario, canaries);
    let pair = SharedJudgePair(Arc::new(Mutex::new(JudgePair::new(&setup))));
    let (report, second) = run_as_is_judged(scenario, seed, canaries, TraceKeep::Recent(1), None, Some(pair));
    (report, second.unwrap_or(Ok(Vec::new())))
}

fn setup_of(scenario: &Scenario, canaries: &[Canary]) -> Setup {
    let set: Canaries = canaries.iter().copied().collect();
    let mut setup = Setup::of(scenario);
    setup.canaries = set.list();
    setup
}

/// The run, and the finding of `pair` when there is one and the engine did not panic.
fn run_as_is_judged(
    scenario: &Scenario,
    seed: u64,
    canaries: &[Canary],
    keep: TraceKeep,
    watcher: Option<Box<dyn TraceObserver>>,
    pair: Option<SharedJudgePair>,
) -> (RunReport, Option<Result<Vec<Violation>, String>>) {
    assert!(scenario.swarm.is_none(), "instantiate a [swarm] scenario before running it as is");
    install_panic_hook();
    let set: Canaries = canaries.iter().copied().collect();
    let setup = setup_of(scenario, canaries);
    let judge = SharedJudge(Arc::new(Mutex::new(Judge::new(&setup))));
    let watcher = match (watcher, pair.clone()) {
        (Some(w), Some(pair)) => Some(Box::new(Tee(Box::new(pair), w)) as Box<dyn TraceObserver>),
        (Some(w), None) => Some(w),
        (None, Some(pair)) => Some(Box::new(pair) as Box<dyn TraceObserver>),
        (None, None) => None,
    };
    let observer: Box<dyn TraceObserver> = match watcher {
        Some(watcher) => Box::new(Tee(Box::new(judge.clone()), watcher)),
        None => Box::new(judge.clone()),
    };
    let recorder = Arc::new(TraceRecorder::new(keep, Some(observer)));
    let wall = Instant::now();
    IN_SIM.with(|f| *f.borrow_mut() = true);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| simulate(scenario, seed, set, recorder.clone())));
    IN_SIM.with(|f| *f.borrow_mut() = false);
    let wall_ms = wall.elapsed().as_millis() as u64;
    let recorded = recorder.finish();
    let mut report = RunReport {
        scenario: scenario.name.clone(),
        seed,
        canaries: set.list().iter().map(|c| c.name().to_string()).collect(),
        verdict: Verdict::Pass,
        violations: Vec::new(),
        status: None,
        drained_on_pause: false,
        produced: 0,
        delivered: 0,
        trace_hash: recorded.hash,
        sim_ms: recorded.entries.last().map_or(0, |e| e.at_ms()),
        wall_ms,
        messages: 0,
        swarm: None,
        coverage: recorded.reached.iter().collect(),
        first_terminal_ms: None,
        trace: recorded.entries,
        trace_dropped: recorded.dropped,
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(payload) => {
            let message = PANIC_MESSAGE.with(|m| m.borrow_mut().take()).unwrap_or_else(|| "panic".into());
            if judge.0.is_poisoned() {
                // A checker panicked while judging an entry: a bug of sluice, not of the engine under test.
                eprintln!("a checker panicked (a bug of sluice, not of the engine): {message}");
                panic::resume_unwind(payload);
            }
            // The trace up to the assertion is kept: it is what a person replaying the failure reads.
            report.verdict = Verdict::Fail;
            report.violations = vec![Violation::new(ENGINE_PANIC, report.sim_ms, FailureClass::Crash, message)];
            return (report, None);
        }
    };
    let end = End { end_ms: outcome.sim_ms, final_status: outcome.status, ledger: Some(&outcome.ledger) };
    let second = pair.map(|p| p.0.lock().expect("judge pair lock").finish(&end));
    let mut judge = judge.0.lock().expect("judge lock");
    report.violations = judge.finish(&end);
    for v in &report.violations {
        tracing::warn!(target: "sluice_sim::checker", invariant = %v.invariant, at_ms = v.at_ms, "violated: {}", v.detail);
    }
    report.verdict = if report.violations.is_empty() { Verdict::Pass } else { Verdict::Fail };
    report.produced = judge.produced();
    report.delivered = DistinctIds::count_of(outcome.ledger.iter().map(|c| (c.id.partition, c.id.offset)));
    (report.status, report.drained_on_pause, report.sim_ms) =
        (outcome.status, outcome.drained_on_pause, outcome.sim_ms);
    report.first_terminal_ms = outcome.first_terminal_ms;
    report.messages = outcome.messages;
    (report, second)
}

/// The command that replays a run.
pub fn replay_command(file: &str, seed: u64, canaries: &[String]) -> String {
    let mut cmd = format!("sluice run {file} --seed {seed}");
    for c in canaries {
        cmd.push_str(&format!(" --canary {c}"));
    }
    cmd
}
