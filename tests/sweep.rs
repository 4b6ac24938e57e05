//! The shipped sweep as a test target, for mutation testing (`scripts/mutation-score`): with `SLUICE_SWEEP_SEEDS=N`
//! set, runs every shipped scenario over seeds 0..N (what `sluice explore scenarios/ --seeds N --require-coverage`
//! runs) and fails on any violation, engine assertion included, or on a coverage gap. Without it, it says so and
//! passes: the main suite already sweeps every scenario over 300 seeds (tests/scenarios.rs).

use sluice_sim::{explore, Finding, Scenario, Sweep};
use std::path::Path;

#[test]
fn shipped_sweep() {
    let Some(seeds) = std::env::var("SLUICE_SWEEP_SEEDS").ok() else {
        eprintln!("skipped: set SLUICE_SWEEP_SEEDS=N to sweep scenarios/ over N seeds (scripts/mutation-score does)");
        return;
    };
    let seeds: u64 = seeds.parse().expect("SLUICE_SWEEP_SEEDS is a number of seeds");
    let threads = std::env::var("SLUICE_SWEEP_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let scenarios: Vec<Scenario> = files.iter().map(|f| Scenario::load(f).unwrap_or_else(|e| panic!("{e}"))).collect();
    let report = explore(&scenarios, &Sweep::new(seeds, 0, vec![], threads), &print_finding, &|_, _| {});
    assert_eq!(report.runs, seeds * scenarios.len() as u64);
    assert_eq!(report.failures, 0, "failing runs: {:?}", report.failing);
    // A scenario that no longer reaches the state it exists for tests nothing: `explore --require-coverage`.
    assert!(report.coverage_gaps.is_empty(), "coverage gaps: {:?}", report.coverage_gaps);
}

fn print_finding(f: Finding) {
    match f {
        Finding::Failure { report, .. } => {
            eprintln!("FAIL {} seed {}: {:?}", report.scenario, report.seed, report.violations.first())
        }
        Finding::Nondeterministic(m) => eprintln!("NONDETERMINISTIC {m:?}"),
    }
}
