//! Sweeps: many seeds of many scenarios, spread over OS threads (one runtime per run), failures reported the moment
//! they are found.

use crate::runner::{run, RunReport, Verdict};
use crate::scenario::Scenario;
use serde::Serialize;
use sluice_engine::Canary;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One failing run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Failing {
    pub scenario: String,
    pub seed: u64,
    pub invariant: String,
}

/// What `sluice explore --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ExploreReport {
    pub scenarios: usize,
    pub seeds: u64,
    pub runs: u64,
    pub failures: u64,
    pub failing: Vec<Failing>,
    pub seeds_per_sec: f64,
    pub sim_to_wall: f64,
    pub wall_ms: u64,
}

/// A sweep's parameters.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub seeds: u64,
    pub first_seed: u64,
    pub canaries: Vec<Canary>,
    pub threads: usize,
}

/// Runs every scenario under every seed. `on_failure` is called (from a worker thread) for each failing run as soon
/// as it is found; `on_progress` after every run with (done, total).
pub fn explore(
    scenarios: &[Scenario],
    sweep: &Sweep,
    on_failure: &(dyn Fn(&Scenario, &RunReport) + Sync),
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> ExploreReport {
    let total = scenarios.len() as u64 * sweep.seeds;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let sim_ms = AtomicU64::new(0);
    let failing = Mutex::new(Vec::new());
    let threads = sweep.threads.max(1).min(total.max(1) as usize);
    let active = AtomicUsize::new(0);
    let wall = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                active.fetch_add(1, Ordering::SeqCst);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    // Seed-major order: the first seeds of every scenario come first.
                    let scenario = &scenarios[(i % scenarios.len() as u64) as usize];
                    let seed = sweep.first_seed.wrapping_add(i / scenarios.len() as u64);
                    let report = run(scenario, seed, &sweep.canaries);
                    sim_ms.fetch_add(report.sim_ms, Ordering::Relaxed);
                    if report.verdict == Verdict::Fail {
                        on_failure(scenario, &report);
                        failing.lock().expect("failing lock").push(Failing {
                            scenario: scenario.name.clone(),
                            seed,
                            invariant: report.first_invariant().unwrap_or_default().to_string(),
                        });
                    }
                    let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                    on_progress(d, total);
                }
            });
        }
    });
    let wall_s = wall.elapsed().as_secs_f64().max(1e-9);
    let mut failing = failing.into_inner().expect("failing lock");
    failing.sort();
    ExploreReport {
        scenarios: scenarios.len(),
        seeds: sweep.seeds,
        runs: total,
        failures: failing.len() as u64,
        failing,
        seeds_per_sec: total as f64 / wall_s,
        sim_to_wall: sim_ms.load(Ordering::Relaxed) as f64 / 1000.0 / wall_s,
        wall_ms: (wall_s * 1000.0) as u64,
    }
}
