//! Failure files: a failing run, self-contained and readable, written the moment `explore` finds it.
//!
//! The file holds the scenario as run (its TOML text inline, swarm faults materialized), the seed, the canaries, the
//! violated invariant and the expected `trace_hash`. It holds no binary state, so it stays useful across code changes:
//! `sluice replay FILE` reruns it at any revision (that is what `git bisect run` needs) and `sluice shrink FILE`
//! minimizes it. Layout (format 1):
//!
//! ```toml
//! [failure]
//! format = 1
//! scenario = "multi-partition-eot"      # name
//! source = "scenarios/multi-partition-eot.toml"
//! seed = 3
//! canaries = ["sink-stops-on-first-eot"]
//! invariant = "status-matches-ledger"
//! class = "safety"
//! at_ms = 4100
//! detail = "..."
//! trace_hash = "..."
//! swarm = { worker_crash_probability = 0.2 }   # only for swarm runs: the knobs that drew the faults
//!
//! [scenario]
//! text = '''
//! ...the scenario TOML...
//! '''
//! ```

use crate::checker::FailureClass;
use crate::locate::KeyMap;
use crate::runner::{run_as_is, RunReport};
use crate::scenario::{Scenario, ScenarioError};
use crate::swarm::{instantiate, SwarmMode};
use serde::{Deserialize, Serialize};
use sluice_engine::Canary;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Version of the failure file layout.
pub const FAILURE_FORMAT_VERSION: u32 = 1;

/// The `[failure]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureMeta {
    pub format: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The file the scenario came from (information only: the text below is what runs).
    pub source: String,
    pub seed: u64,
    pub canaries: Vec<String>,
    pub invariant: String,
    pub class: FailureClass,
    pub at_ms: u64,
    pub detail: String,
    pub trace_hash: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub swarm: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    failure: FailureMeta,
    scenario: RawScenarioText,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenarioText {
    text: String,
}

/// A failure: what ran and how it failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub meta: FailureMeta,
    /// The scenario's TOML text, as run.
    pub text: String,
    /// Where it was read from, for errors (`<new>` before it is written).
    pub path: String,
    /// Lines before the scenario text in the file, so scenario errors point into the failure file.
    text_line_offset: usize,
}

const TEXT_OPENING: &str = "[scenario]\ntext = '''\n";

impl Failure {
    /// The failure of `report`, a failing run of `as_run` (the scenario exactly as it ran).
    pub fn of_run(as_run: &Scenario, source: &str, report: &RunReport) -> Failure {
        let first = report.violations.first().expect("a failure file is written for a failing run");
        Failure {
            meta: FailureMeta {
                format: FAILURE_FORMAT_VERSION,
                scenario: as_run.name.clone(),
                source: source.to_string(),
                seed: report.seed,
                canaries: report.canaries.clone(),
                invariant: first.invariant.clone(),
                class: first.class,
                at_ms: first.at_ms,
                detail: first.detail.clone(),
                trace_hash: report.trace_hash.clone(),
                swarm: report.swarm.clone().unwrap_or_default(),
            },
            text: as_run.text.clone(),
            path: "<new>".into(),
            text_line_offset: 0,
        }
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct Meta<'a> {
            failure: &'a FailureMeta,
        }
        let meta = toml::to_string(&Meta { failure: &self.meta }).expect("failure metadata serializes");
        let header = "# sluice failure file: a failing run, self-contained.\n\
                      # Replay: sluice replay THIS_FILE   Shrink: sluice shrink THIS_FILE\n";
        let mut text = self.text.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if text.contains("'''") {
            // A literal string cannot hold ''': let the serializer pick the quoting.
            let raw = RawFile { failure: self.meta.clone(), scenario: RawScenarioText { text } };
            return format!("{header}{}", toml::to_string(&raw).expect("failure files serialize"));
        }
        format!("{header}\n{meta}\n{TEXT_OPENING}{text}'''\n")
    }

    /// Reads a failure file. Errors name the file, line, column and key, as for scenarios.
    pub fn load(path: &Path) -> Result<Failure, ScenarioError> {
        let file = path.display().to_string();
        let text = crate::scenario::read_text(path)?;
        Failure::parse(&text, &file)
    }

    /// Parses a failure file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Failure, ScenarioError> {
        let keys = KeyMap::new(text);
        let located = |key: &str, message: String, span: Option<std::ops::Range<usize>>| {
            let (line, column) = match span {
                Some(span) => keys.line_col(span.start),
                None => keys.place_of(key).unwrap_or((1, 1)),
            };
            ScenarioError::Invalid { file: file.to_string(), line, column, key: key.to_string(), message }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let key = span
                .as_ref()
                .and_then(|s| keys.path_at(s).or_else(|| crate::locate::key_on_line(text, s.start)))
                .unwrap_or_default();
            let mut message = crate::locate::toml_message(e.message());
            const SCENARIO_KEYS: [&str; 8] =
                ["name", "duration_ms", "job", "cluster", "network", "faults", "expect", "swarm"];
            if SCENARIO_KEYS.contains(&key.as_str()) && message.starts_with("unknown field") {
                message.push_str("; this is a scenario: `sluice run` or `sluice explore` read it");
            }
            located(&key, message, span)
        })?;
        if raw.failure.format != FAILURE_FORMAT_VERSION {
            return Err(located(
                "failure.format",
                format!("format {} is not supported (this sluice reads {FAILURE_FORMAT_VERSION})", raw.failure.format),
                None,
            ));
        }
        if !crate::checker::INVARIANTS.contains(&raw.failure.invariant.as_str()) {
            let message = format!(
                "unknown invariant {:?}; known invariants: {}",
                raw.failure.invariant,
                crate::checker::INVARIANTS.join(", ")
            );
            return Err(located("failure.invariant", message, None));
        }
        for (i, name) in raw.failure.canaries.iter().enumerate() {
            if Canary::from_name(name).is_none() {
                return Err(located(&format!("failure.canaries[{i}]"), format!("unknown canary {name:?}"), None));
            }
        }
        let text_line_offset = text.find(TEXT_OPENING).map_or(0, |at| text[..at].lines().count() + 2);
        Ok(Failure { meta: raw.failure, text: raw.scenario.text, path: file.to_string(), text_line_offset })
    }

    /// The scenario as it runs, validated (a hand-written `[swarm]` table draws its faults from the seed, as in
    /// `sluice run`); its errors point into the failure file.
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        let scenario = Scenario::parse(&self.text, &self.path, &self.meta.scenario).map_err(|e| match e {
            ScenarioError::Invalid { file, line, column, key, message } => ScenarioError::Invalid {
                file,
                line: line + self.text_line_offset,
                column,
                key: format!("scenario.text: {key}"),
                message,
            },
            other => other,
        })?;
        Ok(instantiate(&scenario, self.meta.seed, SwarmMode::AsWritten).0)
    }

    /// The canaries, parsed (checked by `parse`).
    pub fn canaries(&self) -> Vec<Canary> {
        self.meta.canaries.iter().map(|n| Canary::from_name(n).expect("canaries checked on load")).collect()
    }

    /// Writes the file into `dir` (created if needed) and returns its path. A file of the same name with other
    /// content is kept; the new one gets a numbered name.
    pub fn write_into(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let stem: String = format!("{}-seed{}-{}", self.meta.scenario, self.meta.seed, self.meta.invariant)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let text = self.to_toml();
        for n in 1..=1000 {
            let name = if n == 1 { format!("{stem}.toml") } else { format!("{stem}-{n}.toml") };
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(existing) if existing == text => return Ok(path),
                Ok(_) => continue,
                Err(_) => {
                    std::fs::write(&path, &text)?;
                    return Ok(path);
                }
            }
        }
        Err(std::io::Error::other(format!("{}: 1000 failure files named {stem}-N already", dir.display())))
    }

    /// What identifies a failure in a corpus: the scenario, the invariant and the canaries.
    pub fn corpus_key(&self) -> (String, String, Vec<String>) {
        (self.meta.scenario.clone(), self.meta.invariant.clone(), self.meta.canaries.clone())
    }
}

/// The failure files (`*.toml`) of a directory, in name order; a missing directory holds none.
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The corpus keys of a directory's failure files (unreadable files are skipped: they are reported on replay).
pub fn corpus_keys(dir: &Path) -> std::io::Result<BTreeSet<(String, String, Vec<String>)>> {
    Ok(files_in(dir)?.iter().filter_map(|f| Failure::load(f).ok()).map(|f| f.corpus_key()).collect())
}

/// How a replay compares with the failure it replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayOutcome {
    /// It fails the same invariant.
    Reproduced,
    /// It fails, but another invariant first.
    FailsDifferently,
    /// It passes now.
    Passes,
}

/// A replay's result.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    pub outcome: ReplayOutcome,
    pub expected_invariant: String,
    pub expected_trace_hash: String,
    /// The trace is the same, byte for byte: the same code ran the same way.
    pub same_trace_hash: bool,
    pub report: RunReport,
}

/// Reruns a failure with its canaries.
pub fn replay(failure: &Failure) -> Result<Replay, ScenarioError> {
    replay_with(failure, &failure.canaries())
}

/// Reruns a failure with the given canaries (the corpus checks that a canary failure passes on the fixed engine).
pub fn replay_with(failure: &Failure, canaries: &[Canary]) -> Result<Replay, ScenarioError> {
    let scenario = failure.scenario()?;
    let report = run_as_is(&scenario, failure.meta.seed, canaries);
    let outcome = match report.first_invariant() {
        None => ReplayOutcome::Passes,
        Some(i) if i == failure.meta.invariant => ReplayOutcome::Reproduced,
        Some(_) => ReplayOutcome::FailsDifferently,
    };
    Ok(Replay {
        outcome,
        expected_invariant: failure.meta.invariant.clone(),
        expected_trace_hash: failure.meta.trace_hash.clone(),
        same_trace_hash: report.trace_hash == failure.meta.trace_hash,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Violation;
    use crate::runner::Verdict;

    const TEXT: &str = "# Goal: g.  Method: m.\nduration_ms = 5_000\n[job]\nmode = \"batch\"\npartitions = 1\n\
                        [[job.vertices]]\nname = \"in\"\nkind = \"source\"\nrecords = 5\n\
                        [[job.vertices]]\nname = \"out\"\nkind = \"sink\"\n";

    fn failing_report(s: &Scenario) -> RunReport {
        let mut r = run_as_is(s, 1, &[]);
        r.verdict = Verdict::Fail;
        r.violations.push(Violation::new("exactly-once", 7, FailureClass::Safety, "record 3 committed twice"));
        r
    }

    #[test]
    fn a_failure_file_round_trips_and_names_its_lines() {
        let s = Scenario::parse(TEXT, "x.toml", "x").unwrap();
        let mut f = Failure::of_run(&s, "x.toml", &failing_report(&s));
        f.meta.swarm.insert("worker_crash_probability".into(), 0.125);
        let text = f.to_toml();
        let back = Failure::parse(&text, "f.toml").unwrap();
        assert_eq!((back.meta.clone(), back.text.clone()), (f.meta.clone(), f.text.clone()));
        assert_eq!(back.scenario().unwrap().job, s.job);
        // An error in the inline scenario names the failure file's own line.
        let broken = text.replace("records = 5", "records = \"five\"");
        let e = Failure::parse(&broken, "f.toml").unwrap().scenario().unwrap_err();
        let line_in_file = broken.lines().position(|l| l.contains("\"five\"")).unwrap() + 1;
        assert!(matches!(&e, ScenarioError::Invalid { line, .. } if *line == line_in_file), "{e}");
    }

    #[test]
    fn a_scenario_holding_triple_quotes_still_round_trips() {
        let text = format!("{TEXT}# a comment with ''' in it\n");
        let s = Scenario::parse(&text, "x.toml", "x").unwrap();
        let f = Failure::of_run(&s, "x.toml", &failing_report(&s));
        assert_eq!(Failure::parse(&f.to_toml(), "f").unwrap().text, text);
    }

    #[test]
    fn bad_failure_files_are_refused_with_their_key() {
        let s = Scenario::parse(TEXT, "x.toml", "x").unwrap();
        let good = Failure::of_run(&s, "x.toml", &failing_report(&s)).to_toml();
        for (from, to, key) in [
            ("format = 1", "format = 9", "failure.format"),
            ("seed = 1", "seed = \"one\"", "failure.seed"),
            ("canaries = []", "canaries = [\"meteor\"]", "failure.canaries[0]"),
            ("invariant = \"exactly-once\"", "invariant = \"meteor\"", "failure.invariant"),
        ] {
            assert!(good.contains(from), "{from}");
            match Failure::parse(&good.replacen(from, to, 1), "f.toml") {
                Err(ScenarioError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{to}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn replay_tells_a_reproduced_failure_from_a_passing_run() {
        let s = Scenario::parse(TEXT, "x.toml", "x").unwrap();
        let mut f = Failure::of_run(&s, "x.toml", &failing_report(&s));
        let r = replay(&f).unwrap();
        assert_eq!(r.outcome, ReplayOutcome::Passes, "the healthy engine passes this scenario");
        assert!(r.same_trace_hash, "same scenario, same seed, same trace");
        f.meta.seed = 2;
        assert!(!replay(&f).unwrap().same_trace_hash);
    }

    #[test]
    fn writing_twice_keeps_one_file_and_a_different_failure_gets_its_own() {
        let dir = std::env::temp_dir().join(format!("sluice-failure-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Scenario::parse(TEXT, "x.toml", "x").unwrap();
        let mut f = Failure::of_run(&s, "x.toml", &failing_report(&s));
        let a = f.write_into(&dir).unwrap();
        assert_eq!(f.write_into(&dir).unwrap(), a);
        f.meta.detail = "another".into();
        let b = f.write_into(&dir).unwrap();
        assert_ne!(a, b);
        assert_eq!(files_in(&dir).unwrap().len(), 2);
        assert_eq!(corpus_keys(&dir).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
