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
