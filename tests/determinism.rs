//! Same seed, same scenario, same canaries ⇒ the same trace, whatever thread runs it; another seed ⇒ another trace.

use crate::support::shipped;
use sluice_engine::Canary;
use sluice_sim::run;

#[test]
fn every_shipped_scenario_replays_byte_for_byte() {
    for s in shipped() {
        let a = run(&s, 42, &[]);
        let b = run(&s, 42, &[]);
        assert_eq!(a.trace_hash, b.trace_hash, "{}: same seed, different trace", s.name);
        assert_eq!(a.trace, b.trace);
        let c = run(&s, 43, &[]);
        assert_ne!(a.trace_hash, c.trace_hash, "{}: seeds 42 and 43 gave one trace", s.name);
    }
}

/// A source replica owning more than 30 partitions joins its emitters beyond the small join of `futures`, whose
/// `FuturesUnordered` path ran differently from one run to the next (every one of 4 seeds diverged at 31 partitions,
/// none at 30); `sluice_engine::join` replaced it.
#[test]
fn a_replica_owning_many_partitions_replays_byte_for_byte() {
    let text = r#"# Goal: one source replica owns 40 partitions.  Method: streaming, checkpoints, 2 s.
name = "forty-partitions"
duration_ms = 2_000
[job]
mode = "streaming"
partitions = 40
delivery = "exactly-once"
[[job.vertices]]
name = "in"
kind = "source"
records = 400
[[job.vertices]]
name = "out"
kind = "sink"
[job.checkpoint]
interval_ms = 500
timeout_ms = 2_000
[cluster]
workers = 3
[expect]
status = "RUNNING"
"#;
    let s = crate::support::parse(text, "forty-partitions");
    for seed in 0..3 {
        let a = run(&s, seed, &[]);
        let b = run(&s, seed, &[]);
        assert!(a.violations.is_empty(), "seed {seed}: {:?}", a.violations);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}: same seed, different trace");
    }
}

#[test]
fn a_canary_run_replays_too_and_threads_do_not_matter() {
    let s = crate::support::shipped_named("multi-partition-eot");
    let here = run(&s, 7, &[Canary::SharedPartitionStream]);
    let there = std::thread::scope(|scope| {
        let busy = scope.spawn(|| run(&s, 8, &[]));
        let same = scope.spawn(|| run(&s, 7, &[Canary::SharedPartitionStream]));
        busy.join().unwrap();
        same.join().unwrap()
    });
    assert_eq!(here.trace_hash, there.trace_hash);
    assert_eq!(here.violations, there.violations);
}

#[test]
fn the_determinism_self_check_catches_a_run_that_is_not_and_names_the_first_difference() {
    use sluice_sim::explore::{explore_with, Finding};
    use std::sync::atomic::{AtomicU64, Ordering};
    let s = crate::support::shipped_named("multi-partition-eot");
    let mut sweep = sluice_sim::Sweep::new(4, 0, vec![], 1);
    sweep.check_determinism = 1.0;
    // An engine with hidden state that survives between runs: every other run of a seed sees another "seed".
    let calls = AtomicU64::new(0);
    let leaky = |s: &sluice_sim::Scenario, seed: u64, c: &[Canary], keep| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        sluice_sim::run_as_is_keeping(s, seed + (n % 2) * 1000, c, keep)
    };
    let found = std::sync::Mutex::new(Vec::new());
    let on_finding = |f: Finding| {
        if let Finding::Nondeterministic(m) = f {
            found.lock().unwrap().push(m.clone());
        }
    };
    let report = explore_with(std::slice::from_ref(&s), &sweep, &leaky, &on_finding, &|_, _| {});
    assert_eq!(report.determinism_checked, 4);
    assert_eq!(report.determinism_mismatches.len(), 4, "{:?}", report.determinism_mismatches);
    let m = &report.determinism_mismatches[0];
    let (a, b) = (m.first.as_deref().unwrap(), m.second.as_deref().unwrap());
    assert_ne!(a, b, "the first differing entries are shown: {m:?}");
    assert_eq!(found.lock().unwrap().len(), 4, "reported as found");
    // The honest runner passes the same check.
    let honest = sluice_sim::explore(std::slice::from_ref(&s), &sweep, &|_| {}, &|_, _| {});
    assert_eq!((honest.determinism_checked, honest.determinism_mismatches.len()), (4, 0));
}
