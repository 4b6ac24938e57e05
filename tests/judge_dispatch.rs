//! The judge hands a checker only the entries of its kinds and those its deadlines wake it for (see
//! `sluice_sim::checker::kinds`). That must change nothing: every run here is judged a second time by a pair of
//! judges, one dispatching and one whose checkers read every entry. The two copies of each checker must hold the same
//! state (compared every 32 entries: an entry one of them skipped changed nothing), and the verdicts must be equal,
//! detail for detail. The runs cover every shipped scenario over two seeds (knobs drawn from the seed, as
//! `explore --swarm` does), as written, buggified, and with each canary on one of the seeds, and every failure of the
//! regression corpus; many of them fail, so violations are compared, not only silences.

use crate::support::shipped;
use sluice_engine::Canary;
use sluice_sim::failure::{files_in, Failure};
use sluice_sim::runner::ENGINE_PANIC;
use sluice_sim::swarm::{instantiate, SwarmMode};
use sluice_sim::{run_as_is_judged_twice, Scenario};
use std::path::Path;

/// Judges one run twice; panics if the judges differ. Whether the run failed.
fn judged_alike(scenario: &Scenario, seed: u64, canaries: &[Canary]) -> bool {
    let (report, pair) = run_as_is_judged_twice(scenario, seed, canaries);
    if report.violations.iter().any(|v| v.invariant == ENGINE_PANIC) {
        return true;
    }
    let every_entry = pair.unwrap_or_else(|difference| {
        panic!("{} seed {seed} canaries {canaries:?}: {difference}", scenario.name);
    });
    assert_eq!(report.violations, every_entry, "{} seed {seed} canaries {canaries:?}", scenario.name);
    !report.violations.is_empty()
}

#[test]
fn every_shipped_scenario_with_every_canary_is_judged_as_if_every_checker_read_every_entry() {
    let (mut runs, mut failed) = (0, 0);
    for scenario in shipped() {
        for seed in 0..2 {
            let (as_run, _) = instantiate(&scenario, seed, SwarmMode::DrawKnobs);
            let (buggified, _) = instantiate(&scenario.with_buggify(), seed, SwarmMode::DrawKnobs);
            // Each canary once per scenario, on alternate seeds.
            let canaries = Canary::ALL.iter().skip(seed as usize).step_by(2).map(|&c| vec![c]);
            let runs_of_seed = [(&as_run, Vec::new()), (&buggified, Vec::new())].into_iter();
            for (s, canaries) in runs_of_seed.chain(canaries.map(|c| (&as_run, c))) {
                runs += 1;
                failed += u32::from(judged_alike(s, seed, &canaries));
            }
        }
    }
    // Not a comparison of silences: the canaries make a good share of the runs fail.
    assert!(failed * 10 >= runs, "only {failed} of {runs} runs failed");
}

#[test]
fn every_corpus_failure_is_judged_as_if_every_checker_read_every_entry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for file in files_in(&dir).unwrap() {
        let failure = Failure::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let scenario = failure.scenario().unwrap_or_else(|e| panic!("{e}"));
        let canaries = failure.canaries();
        let failed = judged_alike(&scenario, failure.meta.seed, &canaries);
        assert!(failed || canaries.is_empty(), "{}: a canary's failure no longer fails", file.display());
    }
}
