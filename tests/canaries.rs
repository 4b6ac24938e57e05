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
    Canary::ALL.iter().copied().filter(|c| c.class() == BugClass::C)
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

/// `shared-partition-stream` shows NumaFlow #2516's real symptom: a stall, not a failure. The forwarders take each
/// other's answers off the one shared stream and wait indefinitely; the job neither fails nor finishes.
#[test]
fn shared_partition_stream_stalls_instead_of_failing() {
    let s = shipped_named("multi-partition-eot");
    for seed in 0..5 {
        let r = sluice_sim::run(&s, seed, &[Canary::SharedPartitionStream]);
        assert_eq!(r.status, Some(sluice_engine::JobStatus::Running), "seed {seed}: {:?}", r.violations);
        let stalled = r.violations.iter().any(|v| v.invariant == "partition-progress" && v.detail.contains("stalled"));
        assert!(stalled, "seed {seed}: no stall reported: {:?}", r.violations);
        assert!(r.delivered < r.produced, "seed {seed}: a stall leaves records undelivered");
    }
}

/// The issue-3 canaries: each on its scenario, by one of the invariants that model its bug.
const CHECKPOINT_CANARIES: &[(Canary, &str, &[&str])] = &[
    (
        Canary::BatchFinalCheckpointFailsJob,
        "batch-checkpoint-final-expiry",
        &["status-matches-ledger", "restart-policy-honored"],
    ),
    (Canary::RedeployWithoutFencing, "batch-checkpoint-final-expiry", &["terminal-is-quiescent"]),
    (Canary::RedeployWithoutFencing, "batch-isolate-worker", &["single-live-execution"]),
    (Canary::PolicyIgnoresFailedCheckpoints, "checkpoint-failure-policy", &["restart-policy-honored"]),
    (Canary::PolicyCountsPollsNotCheckpoints, "checkpoint-failure-policy", &["restart-policy-honored"]),
    (Canary::PolicyWindowNeverResets, "checkpoint-policy-old-burst", &["restart-policy-honored"]),
    (Canary::PolicyFiresOneObservationLate, "checkpoint-failure-policy", &["restart-policy-honored"]),
    (Canary::PolicyWindowWholeMinutes, "checkpoint-policy-window", &["restart-policy-honored"]),
    (Canary::FinishedBeforeFinalCommit, "batch-exactly-once-final-commit", &["status-matches-ledger"]),
    (Canary::CommitBeforeCheckpointComplete, "streaming-exactly-once-crash", &["exactly-once"]),
    (Canary::PauseClampedToScaleMin, "pause-no-data", &["pause-drains"]),
    (Canary::PauseClampedToScaleMin, "pause-with-data", &["pause-drains"]),
    (Canary::DrainedFlagKeptOnResume, "pause-resume-cycles", &["pause-drains"]),
];

fn assert_caught_by(scenario: &Scenario, canary: Canary, invariants: &[&str]) {
    let report = first_failure(scenario, 0..1000, &[canary])
        .unwrap_or_else(|| panic!("{canary} not caught within 1000 seeds on {}", scenario.name));
    let found: Vec<&str> = report.violations.iter().map(|v| v.invariant.as_str()).collect();
    assert!(
        invariants.iter().any(|i| found.contains(i)),
        "{canary} on {} seed {} caught by {found:?}, expected one of {invariants:?}",
        scenario.name,
        report.seed
    );
}

#[test]
fn every_checkpoint_canary_is_caught_on_its_scenario() {
    for (canary, scenario, invariants) in CHECKPOINT_CANARIES {
        assert_caught_by(&shipped_named(scenario), *canary, invariants);
    }
    let covered: Vec<Canary> = CHECKPOINT_CANARIES.iter().map(|(c, _, _)| *c).collect();
    for c in Canary::ALL.iter().copied().filter(|c| c.class() != BugClass::C) {
        assert!(covered.contains(&c), "{c} has no scenario that catches it");
    }
}

/// A streaming job with a platform policy, as text: checkpoints every `interval_ms`, failures injected at `fail_at`.
fn policy_variant(window_ms: u64, max_failures: u32, poll_ms: u64, interval_ms: u64, fail_at: &[(u64, u32)]) -> String {
    let faults: String = fail_at
        .iter()
        .map(|(at, count)| {
            format!("[[faults]]\nat_ms = {at}\nkind = \"fail-checkpoint\"\nreason = \"declined\"\ncount = {count}\n")
        })
        .collect();
    format!(
        "duration_ms = 90_000\n[job]\nmode = \"streaming\"\npartitions = 2\n\
         [[job.vertices]]\nname = \"in\"\nkind = \"source\"\nrecords = 10\n[[job.vertices]]\nname = \"out\"\nkind = \"sink\"\n\
         [job.checkpoint]\ninterval_ms = {interval_ms}\ntimeout_ms = 1_000\ntolerable_failures = 1000\n\
         [job.checkpoint_failure_policy]\nwindow_ms = {window_ms}\nmax_failures = {max_failures}\naction = \"restart\"\npoll_ms = {poll_ms}\n\
         {faults}[expect]\nstatus = \"RUNNING\"\n"
    )
}

#[test]
fn policy_canaries_are_caught_on_unseen_windows_thresholds_and_intervals() {
    // Three failures in a row, threshold 3, polled every 2 s, checkpoints every 4 s.
    let burst = parse(&policy_variant(120_000, 3, 2_000, 4_000, &[(1_000, 3)]), "policy-burst");
    // Four failures spread 15 s apart with a 20 s window and threshold 2: every pair in the window fires once.
    let spread = parse(
        &policy_variant(20_000, 2, 3_000, 5_000, &[(1_000, 1), (16_000, 1), (31_000, 1), (46_000, 1)]),
        "policy-spread",
    );
    // Failures 30 s apart, window 10 s: the policy must never fire.
    let sparse =
        parse(&policy_variant(10_000, 2, 1_000, 3_000, &[(1_000, 1), (31_000, 1), (61_000, 1)]), "policy-sparse");
    // A lone failure, then bursts long after it (window 10 s, threshold 2; window 25 s, threshold 3): each fires.
    let old_burst = parse(&policy_variant(10_000, 2, 1_000, 3_000, &[(1_000, 1), (31_000, 2)]), "policy-old-burst");
    let old_triple = parse(&policy_variant(25_000, 3, 2_000, 4_000, &[(1_000, 1), (40_000, 3)]), "policy-old-triple");
    for s in [&burst, &spread, &sparse, &old_burst, &old_triple] {
        assert!(first_failure(s, 0..20, &[]).is_none(), "{} fails without a canary", s.name);
    }
    assert_caught_by(&burst, Canary::PolicyIgnoresFailedCheckpoints, &["restart-policy-honored"]);
    assert_caught_by(&spread, Canary::PolicyIgnoresFailedCheckpoints, &["restart-policy-honored"]);
    assert_caught_by(&burst, Canary::PolicyCountsPollsNotCheckpoints, &["restart-policy-honored"]);
    assert_caught_by(&sparse, Canary::PolicyCountsPollsNotCheckpoints, &["restart-policy-honored"]);
    assert_caught_by(&old_burst, Canary::PolicyWindowNeverResets, &["restart-policy-honored"]);
    assert_caught_by(&old_triple, Canary::PolicyWindowNeverResets, &["restart-policy-honored"]);
    // Exactly the threshold and no more: the late policy never fires.
    assert_caught_by(&burst, Canary::PolicyFiresOneObservationLate, &["restart-policy-honored"]);
    assert_caught_by(&old_triple, Canary::PolicyFiresOneObservationLate, &["restart-policy-honored"]);
    // 30 s apart with a 10 s window: inside the first whole minute, so the minute window fires where it must not
    // (sparse), or fires on the burst's first failure, counting the lone old one (old burst).
    assert_caught_by(&sparse, Canary::PolicyWindowWholeMinutes, &["restart-policy-honored"]);
    assert_caught_by(&old_burst, Canary::PolicyWindowWholeMinutes, &["restart-policy-honored"]);
}

#[test]
fn class_a_and_commit_canaries_are_caught_on_unseen_variants() {
    // Final-checkpoint expiry with another interval, timeout, delay and a failure-rate strategy.
    let expiry = shipped_named("batch-checkpoint-final-expiry");
    let text =
        std::fs::read_to_string(crate::support::scenarios_dir().join("batch-checkpoint-final-expiry.toml")).unwrap();
    let variant = text
        .replace("interval_ms = 1_000", "interval_ms = 700")
        .replace("timeout_ms = 1_500", "timeout_ms = 900")
        .replace("by_ms = 3_000", "by_ms = 2_000")
        .replace(
            "strategy = \"fixed-delay\"\nattempts = 3\ndelay_ms = 3_000",
            "strategy = \"failure-rate\"\nmax_failures_per_interval = 2\nfailure_rate_interval_ms = 30_000\ndelay_ms = 1_000",
        );
    assert_ne!(variant, text, "the variant differs");
    let variant = parse(&variant, "final-expiry-variant");
    let no_restart = shipped_named("batch-checkpoint-expiry-no-restart");
    for s in [&expiry, &variant, &no_restart] {
        assert!(first_failure(s, 0..20, &[]).is_none(), "{} fails without a canary", s.name);
        assert_caught_by(s, Canary::BatchFinalCheckpointFailsJob, &["status-matches-ledger"]);
        assert_caught_by(s, Canary::RedeployWithoutFencing, &["terminal-is-quiescent", "single-live-execution"]);
    }
    // Exactly-once across a failover, without a map and with a slower checkpoint interval.
    let text =
        std::fs::read_to_string(crate::support::scenarios_dir().join("streaming-exactly-once-crash.toml")).unwrap();
    let variant = text
        .replace("interval_ms = 1_000", "interval_ms = 2_500")
        .replace("[[job.vertices]]\nname = \"parse\"\nkind = \"map\"\nscale = { min = 2, max = 2 }\n\n", "");
    assert!(!variant.contains("kind = \"map\"") && variant.contains("interval_ms = 2_500"), "the variant applies");
    let variant = parse(&variant, "exactly-once-variant");
    assert!(first_failure(&variant, 0..20, &[]).is_none(), "the variant fails without a canary");
    assert_caught_by(&variant, Canary::CommitBeforeCheckpointComplete, &["exactly-once"]);
}

/// A streaming job paused at 2 s (and resumed at 6 s when `resume`), with the source's scale and the grace given.
fn pause_variant(records: u64, min: u16, max: u16, grace_ms: u64, resume: bool) -> String {
    let resume = if resume { "[[faults]]\nat_ms = 6_000\nkind = \"resume\"\n" } else { "" };
    format!(
        "duration_ms = 60_000\n[job]\nmode = \"streaming\"\npartitions = 2\n\
         [[job.vertices]]\nname = \"in\"\nkind = \"source\"\nrecords = {records}\nscale = {{ min = {min}, max = {max} }}\n\
         [[job.vertices]]\nname = \"out\"\nkind = \"sink\"\n\
         [job.lifecycle]\npause_grace_period_ms = {grace_ms}\n\
         [[faults]]\nat_ms = 2_000\nkind = \"pause\"\n{resume}"
    )
}

#[test]
fn pause_canaries_are_caught_on_unseen_scales_graces_and_data() {
    let variants = [
        ("min-max-one", pause_variant(0, 1, 1, 30_000, false)),
        ("other-grace", pause_variant(0, 2, 5, 12_000, false)),
        ("data-flowing", pause_variant(120, 1, 3, 20_000, false)),
    ];
    for (name, text) in &variants {
        let s = parse(text, name);
        assert!(first_failure(&s, 0..20, &[]).is_none(), "{name} fails without a canary");
        assert_caught_by(&s, Canary::PauseClampedToScaleMin, &["pause-drains"]);
    }
    for (name, text) in [
        ("resume-no-data", pause_variant(0, 3, 6, 30_000, true)),
        ("resume-data", pause_variant(80, 1, 1, 10_000, true)),
    ] {
        let s = parse(&text, name);
        assert!(first_failure(&s, 0..20, &[]).is_none(), "{name} fails without a canary");
        assert_caught_by(&s, Canary::DrainedFlagKeptOnResume, &["pause-drains"]);
    }
    // With no source replica at all (scale {min 0, max 0}) the pause drains at once: the fixed engine passes, and
    // clamping a 0 into [0, 0] changes nothing, so that canary cannot show there.
    let zero = parse(&pause_variant(0, 0, 0, 30_000, false), "min-max-zero");
    assert!(first_failure(&zero, 0..20, &[]).is_none());
    let report = sluice_sim::run(&zero, 3, &[]);
    assert_eq!(report.status, Some(sluice_engine::JobStatus::Paused));
    assert!(report.drained_on_pause);
}
