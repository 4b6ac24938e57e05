//! Hostile input (issue 12): shipped scenarios and corpus failure files, mutated (cut off, a value swapped for a
//! boundary number or another type or an odd string, a line dropped, doubled or replaced, a table added) must give
//! either a located error (`file:line:column: …`, one line) or a valid run, and never a panic.
//!
//! Cases: `FUZZ_CASES` (default 256); the draw is seeded by `FUZZ_SEED` (default 0), so CI runs the same cases every
//! time and a longer hunt is `FUZZ_CASES=5000 FUZZ_SEED=$RANDOM cargo test --release --test main fuzz`.

use crate::support::scenarios_dir;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use sluice_sim::failure::Failure;
use sluice_sim::runner::ENGINE_PANIC;
use sluice_sim::{run, Scenario, ScenarioError};
use std::path::{Path, PathBuf};

/// Values a careless or hostile user writes: boundaries of every integer type, other types, odd strings.
const HOSTILE_VALUES: [&str; 26] = [
    "0",
    "-1",
    "1",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1e308",
    "nan",
    "-inf",
    "1.5",
    "true",
    "\"\"",
    "\"x\"",
    "\"q\\\"uote \\n ☃\"",
    "\"a\\u0000b\"",
    "[]",
    "[0, 18446744073709551615]",
    "[2000000000000, 1]",
    "[[1]]",
    "{}",
    "{ min = 4294967296, max = 1 }",
    "'''two\nlines'''",
    "1979-05-27T07:32:00Z",
    "[0, 1000000000000000]",
];

/// Lines inserted whole: tables twice, unknown keys, a BOM, swarm windows far too wide.
const HOSTILE_LINES: [&str; 8] = [
    "[job]",
    "[[faults]]",
    "unknown_key = 1",
    "\u{feff}name = \"bom\"",
    "[swarm]\nwindow_ms = [0, 1000000000000000]\nstep_ms = 1",
    "[[job.vertices]]\nname = \"in\"\nkind = \"source\"\nrecords = 1",
    "duration_ms = 3_600_001",
    "a.b.c.d.e.f.g.h = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Cut the text off at this share of its length (per mille).
    Truncate(u32),
    /// Give the value of the n-th `key = value` line one of `HOSTILE_VALUES`.
    Value {
        line: u32,
        value: usize,
    },
    DropLine(u32),
    DoubleLine(u32),
    /// Insert one of `HOSTILE_LINES` before the n-th line.
    Insert {
        line: u32,
        text: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0u32..1000).prop_map(Mutation::Truncate),
        (any::<u32>(), 0..HOSTILE_VALUES.len()).prop_map(|(line, value)| Mutation::Value { line, value }),
        any::<u32>().prop_map(Mutation::DropLine),
        any::<u32>().prop_map(Mutation::DoubleLine),
        (any::<u32>(), 0..HOSTILE_LINES.len()).prop_map(|(line, text)| Mutation::Insert { line, text }),
    ]
}

fn mutate(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let pick = |n: u32, len: usize| n as usize % len.max(1);
    match *m {
        Mutation::Truncate(per_mille) => {
            let mut cut = text.len() * per_mille as usize / 1000;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_string();
        }
        Mutation::Value { line, value } => {
            let keyed: Vec<usize> = (0..lines.len()).filter(|i| lines[*i].contains(" = ")).collect();
            if let Some(&i) = keyed.get(pick(line, keyed.len())) {
                let key = lines[i].split(" = ").next().expect("split gives a first part").to_string();
                lines[i] = format!("{key} = {}", HOSTILE_VALUES[value]);
            }
        }
        Mutation::DropLine(line) if !lines.is_empty() => {
            lines.remove(pick(line, lines.len()));
        }
        Mutation::DoubleLine(line) if !lines.is_empty() => {
            let i = pick(line, lines.len());
            lines.insert(i, lines[i].clone());
        }
        Mutation::Insert { line, text } => lines.insert(pick(line, lines.len() + 1), HOSTILE_LINES[text].to_string()),
        _ => {}
    }
    lines.join("\n") + "\n"
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// A refusal names the file, and the line and column where it has them, on one line.
fn assert_located(e: &ScenarioError, file: &str, text: &str) {
    let message = e.to_string();
    assert!(message.starts_with(&format!("{file}:")), "not located: {message}\n--- input ---\n{text}");
    assert!(!message.trim_end().contains('\n'), "more than one line: {message}\n--- input ---\n{text}");
    if let ScenarioError::Invalid { line, column, message: why, .. } = e {
        assert!(*line >= 1 && *column >= 1, "no line or column: {message}");
        assert!(!why.trim().is_empty(), "an empty message: {message}\n--- input ---\n{text}");
    }
}

/// A valid mutant runs (for at most 10 simulated seconds: the run is not what is under test) without an engine
/// panic; a harness panic fails the test by itself.
fn assert_runs(mut scenario: Scenario, text: &str) {
    scenario.duration_ms = scenario.duration_ms.min(10_000);
    let report = run(&scenario, 0, &[]);
    let panicked = report.violations.iter().find(|v| v.invariant == ENGINE_PANIC);
    assert!(panicked.is_none(), "a valid input panicked the engine: {panicked:?}\n--- input ---\n{text}");
}

fn runner() -> TestRunner {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let config = Config {
        cases: env("FUZZ_CASES", 256) as u32,
        rng_seed: RngSeed::Fixed(env("FUZZ_SEED", 0)),
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config)
}

#[test]
fn mutated_scenarios_get_a_located_error_or_a_valid_run() {
    let files = toml_files(&scenarios_dir());
    let texts: Vec<(String, String)> =
        files.iter().map(|f| (f.display().to_string(), std::fs::read_to_string(f).expect("readable"))).collect();
    let strategy = (0..texts.len(), proptest::collection::vec(mutation(), 1..4));
    runner()
        .run(&strategy, |(index, mutations)| {
            let (file, original) = &texts[index];
            let text = mutations.iter().fold(original.clone(), |t, m| mutate(&t, m));
            match Scenario::parse(&text, file, "fuzzed") {
                Ok(scenario) => assert_runs(scenario, &text),
                Err(e) => assert_located(&e, file, &text),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_failure_files_get_a_located_error_or_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let texts: Vec<(String, String)> = toml_files(&dir)
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).expect("readable")))
        .collect();
    let strategy = (0..texts.len(), proptest::collection::vec(mutation(), 1..4));
    runner()
        .run(&strategy, |(index, mutations)| {
            let (file, original) = &texts[index];
            let text = mutations.iter().fold(original.clone(), |t, m| mutate(&t, m));
            match Failure::parse(&text, file) {
                Ok(f) => assert!(!f.meta.invariant.is_empty(), "a failure file with no invariant loaded"),
                Err(e) => assert_located(&e, file, &text),
            }
            Ok(())
        })
        .unwrap();
}
