//! Every shipped scenario passes over a few hundred seeds on the fixed engine.

use crate::support::shipped;
use sluice_sim::{explore, Sweep};

#[test]
fn every_shipped_scenario_passes_over_300_seeds() {
    let scenarios = shipped();
    let sweep = Sweep { seeds: 300, first_seed: 0, canaries: vec![], threads: 2 };
    let report = explore(
        &scenarios,
        &sweep,
        &|_, r| eprintln!("FAIL {} seed {}: {:?}", r.scenario, r.seed, r.violations),
        &|_, _| {},
    );
    assert_eq!(report.runs, 300 * scenarios.len() as u64);
    assert_eq!(report.failures, 0, "failing runs: {:?}", report.failing);
}
