//! Every canary is caught by a named invariant within 1000 seeds on the EOT scenario and on unseen variants of it,
//! and never on the one-partition control.

use crate::support::{eot_variant, first_failure, parse, shipped_named};
use sluice_engine::{BugClass, Canary};
use sluice_sim::Scenario;

/// The invariants that may catch each canary (the one that must come first).
fn catching_invariant(c: Canary) -> &'static str {
    match c {
        Canary::SinkStopsAtFirstEot | Canary::EotCountedNotTracked => "status-matches-ledger",
        Canary::SharedPartitionStream => "partition-progress",
        other => panic!("{other} is not a class C canary"),
    }
}

/// The EOT canaries (class C).
fn eot_canaries() -> impl Iterator<Item = Canary> {
    Canary::ALL.into_iter().filter(|c| c.class() == BugClass::C)
}

fn assert_caught(scenario: &Scenario, canary: Canary) {
    let report = first_failure(scenario, 0..1000, &[canary])
        .unwrap_or_else(|| panic!("{canary} not caught within 1000 seeds on {}", scenario.name));
    let invariants: Vec<&str> = report.violations.iter().map(|v| v.invariant.as_str()).collect();
    assert!(
        invariants.contains(&catching_invariant(canary)),
        "{canary} on {} seed {} caught by {invariants:?}, expected {}",
        scenario.name,
        report.seed,
        catching_invariant(canary)
    );
}

#[test]
fn every_canary_is_caught_on_the_eot_scenario() {
    let s = shipped_named("multi-partition-eot");
    for c in eot_canaries() {
        assert_caught(&s, c);
    }
}

#[test]
fn every_canary_is_caught_on_unseen_eot_variants() {
    let dup = |p: u32| format!("[[faults]]\nat_ms = 100\nkind = \"duplicate-eot\"\nvertex = \"in\"\npartition = {p}\n");
    let end = |p: u32, at: u64| {
        format!("[[faults]]\nat_ms = {at}\nkind = \"end-partition\"\nvertex = \"in\"\npartition = {p}\n")
    };
    let variants = [
        ("two-partitions", eot_variant(2, 120, &[5, 1], 1, &dup(1))),
        ("five-partitions", eot_variant(5, 500, &[1, 2, 3, 4, 5], 1, &(dup(0) + &end(4, 300)))),
        ("empty-partition", eot_variant(3, 200, &[3, 0, 2], 1, &dup(1))),
        ("two-sink-replicas", eot_variant(4, 400, &[6, 1, 1, 1], 2, &(dup(2) + &end(3, 50)))),
        ("three-sink-replicas", eot_variant(6, 600, &[4, 1, 1, 4, 1, 1], 3, &dup(3))),
    ];
    for (name, text) in variants {
        let s = parse(&text, name);
        for c in eot_canaries() {
            assert_caught(&s, c);
        }
    }
}

#[test]
fn no_canary_shows_with_one_partition_per_sink() {
    let control = shipped_named("single-partition-control");
    let one_each = parse(&eot_variant(2, 200, &[3, 1], 2, ""), "one-partition-per-replica");
    for s in [control, one_each] {
        for c in eot_canaries() {
            if let Some(r) = first_failure(&s, 0..100, &[c]) {
                panic!("{c} failed the control {} at seed {}: {:?}", s.name, r.seed, r.violations);
            }
        }
    }
}
