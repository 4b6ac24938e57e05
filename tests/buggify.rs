//! Buggify: off unless asked, seeded (the same seed fires the same points), every firing a trace event, and the
//! failure file of a buggified run carries `[buggify]`, so replay reproduces it.

use crate::support::shipped_named;
use sluice_engine::buggify::BuggifyPoint;
use sluice_engine::Event;
use sluice_sim::trace::{TraceEntry, TraceEvent};
use sluice_sim::{run, Scenario, ScenarioError};
use std::collections::BTreeSet;

fn fired(trace: &[TraceEntry]) -> Vec<BuggifyPoint> {
    trace
        .iter()
        .filter_map(|e| match &e.event {
            TraceEvent::Engine(Event::Buggified { point }) => Some(*point),
            _ => None,
        })
        .collect()
}

#[test]
fn buggify_is_off_unless_asked_and_seeded_when_on() {
    let plain = shipped_named("autoscale-backlog");
    assert!(plain.job.buggify.is_none());
    let off = run(&plain, 4, &[]);
    assert!(fired(&off.trace).is_empty(), "no [buggify], no --buggify: nothing fires");
    let on = plain.with_buggify();
    let (a, b) = (run(&on, 4, &[]), run(&on, 4, &[]));
    assert_eq!(a.trace_hash, b.trace_hash, "the same seed fires the same points");
    assert_ne!(a.trace_hash, off.trace_hash);
    let kinds: BTreeSet<BuggifyPoint> = fired(&a.trace).into_iter().collect();
    assert!(kinds.len() >= 4, "a busy streaming run passes most points: {kinds:?}");
    let other = run(&on, 5, &[]);
    assert_ne!(fired(&other.trace), fired(&a.trace), "another seed fires elsewhere");
}

#[test]
fn a_buggified_scenario_carries_its_table_and_reads_back_the_same() {
    let s = shipped_named("streaming-sink-fan-in").with_buggify();
    assert!(s.text.contains("[buggify]") && s.expect.status.is_none(), "the expected status is dropped");
    let again = Scenario::parse(&s.text, "again.toml", "t").unwrap();
    assert_eq!(again.job, s.job, "a failure file's text turns buggify on again");
    assert_eq!(run(&again, 2, &[]).trace_hash, run(&s, 2, &[]).trace_hash);
    // A scenario's own [buggify] is kept as written.
    let own = format!(
        "{}\n[buggify]\npoints = [\"tick-skipped\"]\nprobability = 0.5\n",
        shipped_named("batch-exactly-once-final-commit").text
    );
    let own = Scenario::parse(&own, "own.toml", "own").unwrap();
    let kept = own.with_buggify();
    assert_eq!(kept.job.buggify, own.job.buggify);
    let points: BTreeSet<BuggifyPoint> = fired(&run(&kept, 0, &[]).trace).into_iter().collect();
    assert_eq!(points, BTreeSet::from([BuggifyPoint::TickSkipped]), "only the listed point fires");
}

#[test]
fn bad_buggify_tables_are_refused_at_their_key() {
    let base = shipped_named("batch-exactly-once-final-commit").text;
    for (table, key) in [
        ("probability = 0.0\n", "buggify.probability"),
        ("probability = 0.9\n", "buggify.probability"),
        ("points = []\n", "buggify.points"),
        ("points = [\"tick-skipped\", \"tick-skipped\"]\n", "buggify.points"),
        ("points = [\"meteor-strike\"]\n", "buggify.points"),
    ] {
        match Scenario::parse(&format!("{base}\n[buggify]\n{table}"), "b.toml", "b") {
            Err(ScenarioError::Invalid { key: k, .. }) => assert!(k.starts_with(key), "{table}: {k}"),
            other => panic!("{table}: not refused: {other:?}"),
        }
    }
}
