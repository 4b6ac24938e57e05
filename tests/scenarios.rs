//! Every shipped scenario passes over a few hundred seeds on the fixed engine; with no restart left, the end state
//! after failed checkpoints follows what was committed.

use crate::support::shipped;
use sluice_sim::{explore, Finding, Sweep};

#[test]
fn every_shipped_scenario_passes_over_300_seeds() {
    let scenarios = shipped();
    let mut sweep = Sweep::new(300, 0, vec![], 2);
    // Every tenth seed runs twice: the determinism self-check rides along.
    sweep.check_determinism = 0.1;
    let report = explore(&scenarios, &sweep, &print_finding, &|_, _| {});
    assert_eq!(report.runs, 300 * scenarios.len() as u64);
    assert_eq!(report.failures, 0, "failing runs: {:?}", report.failing);
    assert!(report.determinism_checked > 0 && report.determinism_mismatches.is_empty());
    assert!(report.coverage_gaps.is_empty(), "coverage gaps: {:?}", report.coverage_gaps);
}

pub fn print_finding(f: Finding) {
    match f {
        Finding::Failure { report, .. } => {
            eprintln!("FAIL {} seed {}: {:?}", report.scenario, report.seed, report.violations)
        }
        Finding::Nondeterministic(m) => eprintln!("NONDETERMINISTIC {m:?}"),
    }
}

/// A batch job (source → sink, 2 partitions, 300 records at `rate_per_sec` per partition, checkpoints every second,
/// tolerable 0, no restart) with the given delivery and one checkpoint fault.
fn no_restart(delivery: &str, rate_per_sec: u64, fault: &str) -> String {
    format!(
        "duration_ms = 60_000\n[job]\nmode = \"batch\"\npartitions = 2\ndelivery = \"{delivery}\"\n\
         [[job.vertices]]\nname = \"in\"\nkind = \"source\"\nrecords = 300\nskew = [2, 1]\nrate_per_sec = {rate_per_sec}\n\
         [[job.vertices]]\nname = \"out\"\nkind = \"sink\"\n\
         [job.checkpoint]\ninterval_ms = 1_000\ntimeout_ms = 1_500\ntolerable_failures = 0\n\
         [job.restart]\nstrategy = \"none\"\n\
         [[faults]]\nat_ms = 0\n{fault}\n"
    )
}

#[test]
fn with_no_restart_the_end_state_follows_what_was_committed() {
    use sluice_engine::JobStatus;
    let late_final = "kind = \"delay-checkpoint-ack\"\ncheckpoint = \"final\"\nby_ms = 3_000";
    let all_expire = "kind = \"fail-checkpoint\"\nreason = \"expired\"\ncount = 50";
    let all_decline = "kind = \"fail-checkpoint\"\nreason = \"declined\"\ncount = 50";
    // (delivery, rate, fault, end state). At-least-once commits as it writes: failed checkpoints leave the delivery
    // to complete within the settling bound (10 s), unless it is too slow to (200 records at 15/s). Exactly-once
    // commits with checkpoints: when none completes, nothing is committed.
    let cases = [
        ("at-least-once", 100, late_final, JobStatus::Finished),
        ("at-least-once", 100, all_expire, JobStatus::Finished),
        ("at-least-once", 100, all_decline, JobStatus::Finished),
        ("at-least-once", 15, all_decline, JobStatus::Failed),
        ("exactly-once", 100, all_expire, JobStatus::Failed),
        ("exactly-once", 100, all_decline, JobStatus::Failed),
    ];
    for (delivery, rate, fault, status) in cases {
        let scenario = crate::support::parse(&no_restart(delivery, rate, fault), "no-restart");
        for seed in 0..20 {
            let report = sluice_sim::run(&scenario, seed, &[]);
            let case = format!("{delivery} at {rate}/s, {fault}, seed {seed}");
            assert_eq!(report.verdict, sluice_sim::Verdict::Pass, "{case}: {:?}", report.violations);
            assert_eq!(report.status, Some(status), "{case}");
            let all = report.delivered == 300;
            assert_eq!(all, status == JobStatus::Finished, "{case}: {} of 300 delivered", report.delivered);
        }
    }
}

/// The documented upper limit of partitions (1024) works for a streaming job through a map, and keeps working: for
/// 30 s, records are produced and delivered, checkpoints complete, every checker passes. (A map that opened its 1024
/// outputs one after the other sent no record before its first checkpoint expired; one that read its credits only
/// once it ran out paid the network's millisecond per record after 32 records per partition, fell behind at
/// 2,048 records/s, and a checkpoint expired at 17 s.)
#[test]
fn a_streaming_map_at_1024_partitions_produces_checkpoints_and_passes() {
    use sluice_engine::{Event, JobStatus};
    use sluice_sim::trace::TraceEvent;
    let text = "duration_ms = 30_000\n[job]\nmode = \"streaming\"\npartitions = 1024\ndelivery = \"exactly-once\"\n\
                [[job.vertices]]\nname = \"in\"\nkind = \"source\"\nrecords = 2048\n\
                [[job.vertices]]\nname = \"parse\"\nkind = \"map\"\n\
                [[job.vertices]]\nname = \"out\"\nkind = \"sink\"\n\
                [job.checkpoint]\ninterval_ms = 1_000\ntimeout_ms = 1_000\n[expect]\nstatus = \"RUNNING\"\n";
    let scenario = crate::support::parse(text, "map-1024");
    let seed = 0;
    let report = sluice_sim::run(&scenario, seed, &[]);
    assert_eq!(report.verdict, sluice_sim::Verdict::Pass, "seed {seed}: {:?}", report.violations);
    assert_eq!(report.status, Some(JobStatus::Running), "seed {seed}");
    let completed = (report.trace.iter())
        .filter(|e| matches!(e.event, TraceEvent::Engine(Event::CheckpointCompleted { .. })))
        .count();
    assert!(completed >= 25, "seed {seed}: {completed} checkpoints completed in 30 s at a 1 s interval");
    // 2,048 records/s for about 29 s, committed up to the last completed checkpoint.
    assert!(report.produced >= 25 * 2048 && report.delivered >= 25 * 2048, "seed {seed}: {report:?}");
}
