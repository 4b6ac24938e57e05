//! Coverage points: reached where the state arises and only there, kept out of the trace, counted by sweeps, listed
//! by scenarios; and the swarm of the EOT scenario catches the EOT-counting canary because it reaches that state.

use crate::support::{parse, shipped, shipped_named};
use sluice_engine::{Canary, Point};
use sluice_sim::swarm::{instantiate, SwarmMode};
use sluice_sim::{explore, run, run_as_is, Sweep, Verdict};

#[test]
fn a_duplicated_eot_beside_an_open_partition_is_reached_and_the_control_never_reaches_it() {
    let eot = shipped_named("multi-partition-eot");
    let report = run(&eot, 0, &[]);
    assert!(report.coverage.contains(&Point::DuplicateEotWhileSiblingOpen), "{:?}", report.coverage);
    // One partition per sink: a duplicate EOT has no sibling to end early.
    let control = shipped_named("single-partition-control");
    for seed in 0..20 {
        let r = run(&control, seed, &[]);
        assert!(r.coverage.contains(&Point::EotDuplicatedAfterEnd), "seed {seed}: the duplicate was delivered");
        assert!(!r.coverage.contains(&Point::DuplicateEotWhileSiblingOpen), "seed {seed}: {:?}", r.coverage);
    }
}

#[test]
fn reaching_points_changes_neither_the_run_nor_its_hash() {
    // The same seed twice: the same points, the same hash; and a point is not a trace entry.
    let s = shipped_named("streaming-abandoned-alignment");
    let (a, b) = (run(&s, 3, &[]), run(&s, 3, &[]));
    assert_eq!((&a.coverage, &a.trace_hash), (&b.coverage, &b.trace_hash));
    assert!(a.coverage.contains(&Point::BarrierSupersedesAligning));
    let rendered = sluice_sim::trace::render(&a.trace);
    assert!(!rendered.contains("barrier-supersedes-aligning"), "coverage is not in the trace");
}

#[test]
fn a_sweep_counts_points_per_scenario_and_reports_listed_points_never_reached() {
    let listed = parse(
        &crate::support::eot_variant(2, 40, &[1, 1], 1, "[expect]\nreaches = [\"cancel-unconfirmed\"]\n"),
        "never-cancels",
    );
    let eot = shipped_named("multi-partition-eot");
    let report = explore(&[listed, eot], &Sweep::new(6, 0, vec![], 2), &|_| {}, &|_, _| {});
    assert_eq!(report.failures, 0);
    assert_eq!(report.coverage["never-cancels"].get(&Point::CancelUnconfirmed), Some(&0));
    assert_eq!(report.coverage["multi-partition-eot"].get(&Point::DuplicateEotWhileSiblingOpen), Some(&6));
    assert_eq!(report.coverage_gaps.len(), 1);
    assert_eq!(report.coverage_gaps[0].scenario, "never-cancels");
    assert_eq!(report.coverage_gaps[0].point, Point::CancelUnconfirmed);
}

#[test]
fn every_point_a_shipped_scenario_lists_is_reached_within_20_seeds() {
    let scenarios: Vec<_> = shipped().into_iter().filter(|s| !s.expect.reaches.is_empty()).collect();
    assert!(scenarios.len() >= 10, "scenarios list the states they exist to reach");
    let report = explore(&scenarios, &Sweep::new(20, 0, vec![], 2), &|_| {}, &|_, _| {});
    assert!(report.coverage_gaps.is_empty(), "{:?}", report.coverage_gaps);
}

#[test]
fn the_eot_swarm_catches_eot_counting_within_1000_seeds() {
    let s = shipped_named("swarm-batch-eot");
    let canary = [Canary::EotCountedNotTracked];
    let caught = (0..1000).find_map(|seed| {
        let (as_run, _) = instantiate(&s, seed, SwarmMode::DrawKnobs);
        let r = run_as_is(&as_run, seed, &canary);
        (r.verdict == Verdict::Fail).then_some(r)
    });
    let r = caught.expect("eot-counted-not-tracked caught by swarm-batch-eot --swarm within 1000 seeds");
    assert_eq!(r.first_invariant(), Some("status-matches-ledger"), "{:?}", r.violations);
    assert!(r.coverage.contains(&Point::DuplicateEotWhileSiblingOpen), "caught where the state was reached");
}

#[test]
fn a_guided_sweep_is_the_same_sweep_whatever_the_thread_count_and_says_it_is_guided() {
    let s = shipped_named("swarm-batch-eot");
    let sweep = |threads| Sweep {
        swarm: SwarmMode::DrawKnobs,
        guided: true,
        ..Sweep::new(3 * sluice_sim::guide::GENERATION_SEEDS, 0, vec![Canary::EotCountedNotTracked], threads)
    };
    let one = explore(std::slice::from_ref(&s), &sweep(1), &|_| {}, &|_, _| {});
    let two = explore(std::slice::from_ref(&s), &sweep(2), &|_| {}, &|_, _| {});
    assert!(one.guided && two.guided);
    assert_eq!(one.coverage, two.coverage, "generations learn in seed order");
    let seeds = |r: &sluice_sim::ExploreReport| r.failing.iter().map(|f| (f.seed, f.swarm.clone())).collect::<Vec<_>>();
    assert_eq!(seeds(&one), seeds(&two));
    // From the second generation on, some seeds run with a parent's knobs: not the knobs the seed alone draws.
    let plain = explore(std::slice::from_ref(&s), &Sweep { guided: false, ..sweep(2) }, &|_| {}, &|_, _| {});
    assert!(!plain.guided);
    assert_ne!(seeds(&plain), seeds(&one), "guidance changed what later seeds ran");
}
