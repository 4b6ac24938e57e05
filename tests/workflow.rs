//! The daily workflows from the command line: a sweep writes failure files as it finds them; `replay` reruns one
//! (exit codes for `git bisect run`); `shrink` minimizes one; `--swarm` prints its knobs; shards joined by `merge`
//! equal the whole sweep; `--check-determinism` reruns seeds; `--corpus` adds each new failure once.

use crate::support::scenarios_dir;
use sluice_sim::failure::{files_in, Failure};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().expect("the sluice binary runs")
}

fn scenario(name: &str) -> String {
    scenarios_dir().join(format!("{name}.toml")).display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-workflow-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn explore_writes_a_failure_file_that_replays_and_bisects() {
    let dir = scratch("replay");
    let failures = dir.join("failures");
    let out = sluice(&[
        "explore",
        &scenario("multi-partition-eot"),
        "--seeds",
        "3",
        "--canary",
        "sink-stops-at-first-eot",
        "--failures",
        path(&failures),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("failure file: ") && err.contains("sluice replay "), "{err}");
    let files = files_in(&failures).unwrap();
    assert_eq!(files.len(), 3, "one file per failing seed: {err}");
    let file = &files[0];
    let f = Failure::load(file).unwrap();
    assert_eq!(f.meta.canaries, ["sink-stops-at-first-eot"]);
    assert_eq!(f.meta.invariant, "status-matches-ledger");
    assert!(f.text.contains("# Goal:") && f.text.contains("[[faults]]"), "the scenario is inline, as run");

    let out = sluice(&["replay", path(file)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("REPRODUCED") && text.contains("same trace_hash"), "{text}");
    let v = json(&sluice(&["replay", path(file), "--json"]));
    assert_eq!((v["outcome"].as_str(), v["same_trace_hash"].as_bool()), (Some("reproduced"), Some(true)));

    // Without its canary (the fixed engine), the failure is gone: what `git bisect run` calls good.
    let fixed = dir.join("fixed.toml");
    std::fs::write(&fixed, std::fs::read_to_string(file).unwrap().replace("\"sink-stops-at-first-eot\"", "")).unwrap();
    let out = sluice(&["replay", path(&fixed), "--bisect"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASSES"));

    // Another invariant first: 1 normally, 125 (skip) for bisect.
    let other = dir.join("other.toml");
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::write(&other, text.replace("invariant = \"status-matches-ledger\"", "invariant = \"exactly-once\""))
        .unwrap();
    assert_eq!(sluice(&["replay", path(&other)]).status.code(), Some(1));
    assert_eq!(sluice(&["replay", path(&other), "--bisect"]).status.code(), Some(125));

    // A file this revision cannot read: 2 normally, 125 for bisect.
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, text.replace("format = 1", "format = 99")).unwrap();
    let out = sluice(&["replay", path(&broken)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.toml:") && stderr(&out).contains("failure.format"), "{}", stderr(&out));
    assert_eq!(sluice(&["replay", path(&broken), "--bisect"]).status.code(), Some(125));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn shrink_writes_a_smaller_failure_that_still_fails_the_same_way() {
    let dir = scratch("shrink");
    let out = sluice(&[
        "explore",
        &scenario("multi-partition-eot"),
        "--seeds",
        "5",
        "--canary",
        "eot-counted-not-tracked",
        "--failures",
        path(&dir),
        "--max-failure-files",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let file = files_in(&dir).unwrap().remove(0);
    let out = sluice(&["shrink", path(&file), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let min = PathBuf::from(v["file"].as_str().unwrap());
    assert!(min.to_str().unwrap().ends_with(".min.toml"));
    assert!(v["after"]["records"].as_u64() < v["before"]["records"].as_u64(), "{v}");
    assert!(v["after"]["faults"].as_u64().unwrap() <= 3, "{v}");
    let replayed = sluice(&["replay", path(&min)]);
    assert_eq!(replayed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&replayed.stdout).contains("REPRODUCED: fails status-matches-ledger again"));
    // Text mode prints the before/after table.
    let text = sluice(&["shrink", path(&file), "--out", path(&dir.join("again.toml"))]);
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(table.contains("before") && table.contains("after") && table.contains("faults"), "{table}");
    // The output is checked before any run: never the input itself, never into a missing directory.
    let before = std::fs::read_to_string(&file).unwrap();
    let out = sluice(&["shrink", path(&file), "--out", path(&file)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("that is the failure being shrunk"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "the input is untouched");
    let out = sluice(&["shrink", path(&file), "--out", "/nonexistent-sluice-dir/x.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist") && !stderr(&out).contains("run 1"), "{}", stderr(&out));
    // A failure that no longer reproduces cannot be shrunk: exit 1, said so.
    let gone = dir.join("gone.toml");
    std::fs::write(&gone, std::fs::read_to_string(&file).unwrap().replace("\"eot-counted-not-tracked\"", "")).unwrap();
    let out = sluice(&["shrink", path(&gone)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not reproduce"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn swarm_runs_print_their_knobs_and_replay_from_their_failure_file() {
    let dir = scratch("swarm");
    // The EOT swarm scenario with a class-C canary: the faults come from the seed, the knobs too with --swarm.
    let out = sluice(&[
        "explore",
        &scenario("swarm-batch-eot"),
        "--seeds",
        "4",
        "--swarm",
        "--canary",
        "sink-stops-at-first-eot",
        "--failures",
        path(&dir),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("swarm knobs: "), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["swarm"], true);
    assert!(v["failing"].as_array().unwrap().iter().all(|f| f["swarm"].is_object()), "{v}");
    for file in files_in(&dir).unwrap() {
        let f = Failure::load(&file).unwrap();
        assert!(!f.text.lines().any(|l| l.trim() == "[swarm]"), "the faults are materialized, the table gone");
        assert!(f.text.contains("# [swarm] drew these faults from seed"));
        let out = sluice(&["replay", path(&file)]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("same trace_hash"), "{}", file.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn shards_merged_equal_the_whole_sweep() {
    let dir = scratch("shards");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "explore".to_string(),
            scenario("multi-partition-eot"),
            scenario("single-partition-control"),
            "--seeds".into(),
            "7".into(),
            "--canary".into(),
            "shared-partition-stream".into(),
            "--max-failure-files".into(),
            "0".into(),
            "--json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let out = sluice(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "{}", stderr(&out));
        out
    };
    let whole = json(&run(&[]));
    let mut files = Vec::new();
    for i in 0..3 {
        let out = run(&["--shard", &format!("{i}/3")]);
        let f = dir.join(format!("shard-{i}.json"));
        std::fs::write(&f, &out.stdout).unwrap();
        files.push(f);
    }
    let shard0 = json(&run(&["--shard", "0/3"]));
    assert_eq!(shard0["runs"], 2 * 3, "seeds 0, 3, 6 of two scenarios");
    let mut merge_args = vec!["merge", "--json"];
    merge_args.extend(files.iter().map(|f| path(f)));
    let out = sluice(&merge_args);
    let expected_code = if whole["failures"].as_u64() > Some(0) { 1 } else { 0 };
    assert_eq!(out.status.code(), Some(expected_code));
    let merged = json(&out);
    assert_eq!(merged["runs"], whole["runs"]);
    assert_eq!(merged["failures"], whole["failures"]);
    assert_eq!(merged["failing"], whole["failing"]);
    // A missing shard is refused unless --partial (then a warning); an overlap and another sweep are refused.
    let out = sluice(&["merge", path(&files[0]), path(&files[1])]);
    assert_eq!(out.status.code(), Some(2), "a merge with a shard missing does not pass");
    assert!(stderr(&out).contains("shards missing from this merge: 2/3"), "{}", stderr(&out));
    let out = sluice(&["merge", "--partial", path(&files[0]), path(&files[1])]);
    assert_eq!(out.status.code(), Some(expected_code));
    assert!(stderr(&out).contains("warning: shards missing from this merge: 2/3"), "{}", stderr(&out));
    assert_eq!(sluice(&["merge", path(&files[0]), path(&files[0])]).status.code(), Some(2));
    let not_json = dir.join("x.json");
    std::fs::write(&not_json, "{").unwrap();
    let out = sluice(&["merge", path(&not_json)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("x.json:"), "{}", stderr(&out));
    for bad in ["3/3", "x"] {
        assert_eq!(run_code(&["explore", &scenario("multi-partition-eot"), "--shard", bad]), Some(2), "{bad}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn run_code(args: &[&str]) -> Option<i32> {
    sluice(args).status.code()
}

#[test]
fn check_determinism_reruns_the_share_it_is_given() {
    let out = sluice(&["explore", &scenario("pause-no-data"), "--seeds", "20", "--check-determinism", "50%", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let checked = v["determinism_checked"].as_u64().unwrap();
    assert!((3..=17).contains(&checked), "about half of 20: {checked}");
    assert_eq!(v["determinism_mismatches"].as_array().unwrap().len(), 0);
    for bad in ["1.5", "-1", "ten"] {
        assert_eq!(run_code(&["explore", &scenario("pause-no-data"), "--check-determinism", bad]), Some(2), "{bad}");
    }
}

#[test]
fn corpus_gets_each_new_failure_once() {
    let dir = scratch("corpus");
    let corpus = dir.join("corpus");
    for _ in 0..2 {
        let out = sluice(&[
            "explore",
            &scenario("multi-partition-eot"),
            "--seeds",
            "4",
            "--canary",
            "shared-partition-stream",
            "--failures",
            path(&dir.join("failures")),
            "--corpus",
            path(&corpus),
        ]);
        assert_eq!(out.status.code(), Some(1));
    }
    let files = files_in(&corpus).unwrap();
    assert_eq!(files.len(), 1, "four failing seeds of one scenario, invariant and canary: one corpus entry");
    assert_eq!(files_in(&dir.join("failures")).unwrap().len(), 4);
    std::fs::remove_dir_all(&dir).ok();
}
