//! The regression corpus: `tests/corpus/*.toml` are failure files (written by `explore`, most shrunk by `shrink`).
//! Each must still fail the same invariant with its canaries on, and pass on the fixed engine (canaries off).
//! A file without canaries records a bug of our own engine or harness that has been fixed: it must pass.

use sluice_engine::Canary;
use sluice_sim::failure::{files_in, replay, replay_with, Failure, ReplayOutcome};
use std::path::Path;

#[test]
fn every_corpus_failure_fails_with_its_canary_and_passes_without() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let files = files_in(&dir).unwrap();
    assert!(files.len() >= Canary::ALL.len(), "the corpus holds a failure per canary at least");
    let mut covered = Vec::new();
    for file in files {
        let f = Failure::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let name = file.display();
        if !f.meta.canaries.is_empty() {
            let r = replay(&f).unwrap();
            assert_eq!(
                r.outcome,
                ReplayOutcome::Reproduced,
                "{name}: expected {} with {:?}, got {:?}",
                f.meta.invariant,
                f.meta.canaries,
                r.report.violations
            );
            covered.extend(f.canaries());
        }
        let fixed = replay_with(&f, &[]).unwrap();
        assert_eq!(
            fixed.outcome,
            ReplayOutcome::Passes,
            "{name} fails on the fixed engine: {:?}",
            fixed.report.violations
        );
    }
    for &c in Canary::ALL {
        assert!(covered.contains(&c), "no corpus failure for canary {c}");
    }
}
