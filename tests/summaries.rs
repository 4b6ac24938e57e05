//! Snapshots of the readable trace summary of every shipped scenario at a fixed seed (insta): a change of behaviour
//! shows up in review as changed lines under `tests/snapshots/`. After an intended change:
//! `INSTA_UPDATE=always cargo test --release -- summaries` (or `cargo insta review`), then read the diff.

use crate::support::shipped;
use sluice_sim::{run, trace};

/// The seed of the snapshots.
const SEED: u64 = 1;

#[test]
fn every_shipped_scenario_summary_matches_its_snapshot() {
    for s in shipped() {
        let report = run(&s, SEED, &[]);
        let mut text = format!(
            "scenario {} seed {SEED}: {}, status {}, produced {}, delivered {}\n",
            s.name,
            if report.violations.is_empty() {
                "pass".to_string()
            } else {
                format!("FAIL {:?}", report.first_invariant())
            },
            report.status.map_or("unknown".to_string(), |s| s.to_string()),
            report.produced,
            report.delivered
        );
        text.push_str(&trace::summary(&report.trace));
        insta::assert_snapshot!(s.name.clone(), text);
    }
}
