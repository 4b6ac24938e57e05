//! Scenario scripts: the TOML schema (see `scenarios/README.md`), its validation, and the validated [`Scenario`].
//!
//! Bad input is refused before anything runs, with the file, line, column and key in the message. This module owns
//! all of it: the job's rules beyond types in `build.rs`, `[[faults]]` in `faults.rs`, `[swarm]` in
//! `swarm_table.rs`, `[timings]` in `timings.rs`; `crate::fault` and `crate::swarm` hold the validated types and what runs them.

mod build;
mod faults;
mod swarm_table;
pub mod timings;

use crate::fault::Fault;
use crate::locate::KeyMap;
use serde::Deserialize;
use sluice_engine::buggify::{BuggifyPoint, BuggifySpec};
use sluice_engine::faults::FailReason;
use sluice_engine::job::split_records;
use sluice_engine::net::NodeName;
use sluice_engine::{
    CheckpointSpec, Delivery, JobSpec, JobStatus, Mode, Point, PolicyAction, PolicySpec, RestartSpec, VertexKind,
    VertexSpec,
};
use std::path::Path;
use thiserror::Error;

/// Why a scenario was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {why}")]
    Read { file: String, why: String },
    #[error("{file}:{line}:{column}: {}{message}", key_part(.key))]
    Invalid { file: String, line: usize, column: usize, key: String, message: String },
}

/// The most partitions a source or a vertex's buffer may have.
pub const MAX_PARTITIONS: u32 = 1024;
/// Default source pace in batch mode (records per second per partition).
pub const DEFAULT_RATE_PER_SEC: u64 = 100;
/// The longest run a scenario may ask for: one simulated hour.
pub const MAX_DURATION_MS: u64 = 3_600_000;
/// The most records a run may produce: a batch source's `records`, or a streaming source's rate × `duration_ms`.
/// Chosen so that the largest run ends within minutes and well under 1 GB on a 2-core machine (README, limits).
pub const MAX_RECORDS_PER_RUN: u64 = 2_000_000;
/// The largest relative weight in a source's `skew` (weights are relative: a million to one is skew enough).
pub const MAX_SKEW_WEIGHT: u64 = 1_000_000;
/// Default sink batch size.
pub const DEFAULT_BATCH_SIZE: u32 = 10;
/// Default bound for a partition with pending records to advance (C1), once faults have healed.
pub const DEFAULT_PROGRESS_WITHIN_MS: u64 = 10_000;
/// Default bound for a batch job to reach a terminal status once faults have healed.
pub const DEFAULT_TERMINAL_WITHIN_MS: u64 = 60_000;
/// Default bound, after a terminal status, by which no unfenced execution runs and the ledger is still.
pub const DEFAULT_QUIESCENT_WITHIN_MS: u64 = 1_000;
/// Default poll interval of the platform's checkpoint-failure policy.
pub const DEFAULT_POLL_MS: u64 = 5_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    duration_ms: u64,
    job: RawJob,
    cluster: Option<RawCluster>,
    network: Option<RawNetwork>,
    timings: Option<timings::RawTimings>,
    buggify: Option<RawBuggify>,
    #[serde(default)]
    faults: Vec<RawFault>,
    expect: Option<RawExpect>,
    swarm: Option<swarm_table::RawSwarm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    mode: Mode,
    partitions: u32,
    delivery: Option<Delivery>,
    vertices: Vec<RawVertex>,
    restart: Option<RawRestart>,
    checkpoint: Option<RawCheckpoint>,
    checkpoint_failure_policy: Option<RawPolicy>,
    lifecycle: Option<RawLifecycle>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    pause_grace_period_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    interval_ms: u64,
    timeout_ms: u64,
    tolerable_failures: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    window_ms: u64,
    max_failures: u32,
    action: PolicyAction,
    poll_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVertex {
    name: String,
    kind: VertexKind,
    partitions: Option<u32>,
    records: Option<u64>,
    skew: Option<Vec<u64>>,
    scale: Option<RawScale>,
    rate_per_sec: Option<u64>,
    batch_size: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScale {
    min: Option<u16>,
    max: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    strategy: build::Strategy,
    max_failures_per_interval: Option<u32>,
    failure_rate_interval_ms: Option<u64>,
    attempts: Option<u32>,
    delay_ms: Option<u64>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    backoff_multiplier: Option<f64>,
    reset_backoff_threshold_ms: Option<u64>,
    jitter_factor: Option<f64>,
    attempts_before_reset_backoff: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuggify {
    points: Option<Vec<BuggifyPoint>>,
    probability: Option<f64>,
}

/// The firing probability of a buggify point when `[buggify]` (or `--buggify`) does not set one.
pub const DEFAULT_BUGGIFY_PROBABILITY: f64 = 0.05;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    workers: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    latency_ms: Option<[u64; 2]>,
    loss: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    pub at_ms: u64,
    pub kind: faults::FaultName,
    pub vertex: Option<String>,
    pub partition: Option<u32>,
    pub node: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub restart_after_ms: Option<u64>,
    pub heal_after_ms: Option<u64>,
    pub reason: Option<FailReason>,
    pub count: Option<u32>,
    pub checkpoint: Option<faults::Checkpoint>,
    pub by_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    status: Option<JobStatus>,
    reaches: Option<Vec<Point>>,
    within_ms: Option<u64>,
    progress_within_ms: Option<u64>,
    terminal_within_ms: Option<u64>,
    quiescent_within_ms: Option<u64>,
}

/// The network model.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub latency_ms: (u64, u64),
    pub loss: f64,
}

/// Expectations on top of the checkers, and the liveness bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub status: Option<JobStatus>,
    pub within_ms: Option<u64>,
    pub progress_within_ms: u64,
    pub terminal_within_ms: u64,
    pub quiescent_within_ms: u64,
    /// Coverage points a sweep of this scenario must reach (`explore` reports a gap for each one never reached).
    pub reaches: Vec<Point>,
}

/// The source vertex as the scenario writes it (before anything is split over partitions): what checkers derive the
/// configured production from, with their own reading of the documented rules.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceConfig {
    /// Batch: records in all; streaming: records per second in all.
    pub records: u64,
    /// Relative share of each partition (all 1 when the scenario gives none).
    pub skew: Vec<u64>,
    /// Batch: records per second per partition (0: unpaced); streaming: `None` (the rate is `records`).
    pub rate_per_sec: Option<u64>,
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// Where it came from (a path, or `<inline>`).
    pub file: String,
    pub duration_ms: u64,
    pub job: JobSpec,
    /// The source as written.
    pub source: SourceConfig,
    pub network: Network,
    pub faults: Vec<Fault>,
    pub expect: Expect,
    /// `[swarm]`: faults drawn from the seed on top of `faults` (see [`crate::swarm`]).
    pub swarm: Option<crate::swarm::Swarm>,
    /// The timings the scenario sets in `[timings]` (the rest are defaults); `--swarm` draws none of them unless
    /// `[swarm]` lists it.
    pub pinned_timings: Vec<timings::TimingName>,
    /// The TOML text it was read from: what a failure file carries and what the shrinker edits.
    pub text: String,
}

/// Validation context: turns a key path and a message into a located error.
pub(crate) struct Ctx<'a> {
    file: &'a str,
    keys: KeyMap,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, key: &str, message: impl Into<String>) -> ScenarioError {
        let (line, column) = self.keys.place_of(key).unwrap_or((1, 1));
        ScenarioError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = read_text(path)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario".into());
        Scenario::parse(&text, &file, &stem)
    }

    /// Validates a scenario text; `file` names it in errors, `default_name` is used when it has no `name`.
    pub fn parse(text: &str, file: &str, default_name: &str) -> Result<Scenario, ScenarioError> {
        let ctx = Ctx { file, keys: KeyMap::new(text) };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = ctx.keys.line_col(span.start);
            let key = ctx
                .keys
                .path_at(&span)
                .or_else(|| unknown_key(e.message()))
                .or_else(|| crate::locate::key_on_line(text, span.start))
                .unwrap_or_default();
            let mut message = crate::locate::toml_message(e.message());
            if key == "failure" && message.starts_with("unknown field") {
                message.push_str("; this is a failure file: `sluice replay` or `sluice shrink` read it");
            }
            ScenarioError::Invalid { file: file.to_string(), line, column, key, message }
        })?;
        build::build(raw, &ctx, default_name, text)
    }

    /// The scenario with buggify on (`--buggify`): a `[buggify]` table with every point at the default probability
    /// is added to its text, so that a failure file carries it; a scenario with its own `[buggify]` keeps it. Like a
    /// swarm knob the scenario does not list, buggify drops `[expect] status` and `within_ms`: the author expected
    /// the faults the scenario names (the checkers still judge the run).
    pub fn with_buggify(&self) -> Scenario {
        if self.job.buggify.is_some() {
            return self.clone();
        }
        let mut doc: toml_edit::DocumentMut = self.text.parse().expect("a validated scenario is a TOML document");
        let mut table = toml_edit::Table::new();
        table.insert("probability", toml_edit::value(DEFAULT_BUGGIFY_PROBABILITY));
        doc.insert("buggify", toml_edit::Item::Table(table));
        let mut dropped = false;
        if let Some(expect) = doc.get_mut("expect").and_then(|e| e.as_table_like_mut()) {
            dropped |= expect.remove("status").is_some();
            dropped |= expect.remove("within_ms").is_some();
        }
        let mut text = doc.to_string();
        if dropped {
            text.push_str("# [expect] status dropped: --buggify turned buggify on\n");
        }
        let mut on = Scenario::parse(&text, &self.file, &self.name)
            .unwrap_or_else(|e| panic!("adding [buggify] broke a valid scenario (a bug): {e}"));
        on.name = self.name.clone();
        assert!(on.job.buggify.is_some(), "the table just added turns buggify on");
        on
    }

    /// Index of the vertex named `name`.
    pub fn vertex_index(&self, name: &str) -> Option<u16> {
        self.job.vertices.iter().position(|v| v.name == name).map(|i| i as u16)
    }

    /// The records each source partition holds at the start (`u64::MAX`: a streaming partition).
    pub fn partition_records(&self) -> &[u64] {
        &self.job.vertices[0].partition_records
    }
}

/// Reads a TOML file (scenario or failure file); text that is not UTF-8 is refused at its first bad byte, located.
pub(crate) fn read_text(path: &Path) -> Result<String, ScenarioError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ScenarioError::Read { file: file.clone(), why: e.to_string() })?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let bad = e.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&bytes[..bad]).expect("valid up to the first bad byte");
        let (line, column) = KeyMap::new(valid).line_col(bad);
        ScenarioError::Invalid {
            file,
            line,
            column,
            key: crate::locate::key_on_line(valid, bad).unwrap_or_default(),
            message: format!("byte 0x{:02x} is not UTF-8 (these files are UTF-8 text)", bytes[bad]),
        }
    })
}

/// "key `k`: " when the error has a key; nothing when it stands before any key (a broken first line).
fn key_part(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("key `{key}`: ")
    }
}

/// The field a serde message names ("unknown field `x`", "missing field `x`"); not the tokens a syntax error expects.
fn unknown_key(message: &str) -> Option<String> {
    let start = message.find("field `")? + "field `".len();
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// Parses a node name of this cluster.
pub(crate) fn node_of(name: &str, workers: u16, platform: bool) -> Option<NodeName> {
    match NodeName::parse(name)? {
        NodeName::Client => None,
        NodeName::Platform if !platform => None,
        NodeName::Worker(n) if n > workers => None,
        n => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultKind;

    const GOOD: &str = r#"# Goal: g.  Method: m.
duration_ms = 10_000

[job]
mode = "batch"
partitions = 2

[[job.vertices]]
name = "in"
kind = "source"
records = 10

[[job.vertices]]
name = "out"
kind = "sink"

[[faults]]
at_ms = 100
kind = "end-partition"
vertex = "in"
partition = 1
"#;

    /// `text` is refused at `key` with a message that says `says`.
    fn assert_refused(text: &str, key: &str, says: &str, case: &str) {
        let (_, _, k, message) = error(text);
        assert_eq!(k, key, "{case}: {message}");
        assert!(message.contains(says), "{case}: {message}");
    }

    fn error(text: &str) -> (usize, usize, String, String) {
        match Scenario::parse(text, "t.toml", "t") {
            Err(ScenarioError::Invalid { file, line, column, key, message }) => {
                assert_eq!(file, "t.toml");
                (line, column, key, message)
            }
            other => panic!("expected an invalid-scenario error, got {other:?}"),
        }
    }

    #[test]
    fn the_good_scenario_loads_with_defaults() {
        let s = Scenario::parse(GOOD, "t.toml", "t").unwrap();
        assert_eq!(s.name, "t");
        assert_eq!(s.job.vertices[0].partition_records, vec![5, 5]);
        assert_eq!(s.job.restart, RestartSpec::None);
        assert_eq!(s.job.workers, 2);
        assert_eq!(s.network, Network { latency_ms: (1, 10), loss: 0.0 });
        assert_eq!(s.faults.len(), 1);
    }

    #[test]
    fn reaches_takes_known_points_once_each() {
        let with = |list: &str| format!("{GOOD}\n[expect]\nreaches = {list}\n");
        let s = Scenario::parse(&with("[\"pause-while-restarting\", \"cancel-unconfirmed\"]"), "t.toml", "t").unwrap();
        assert_eq!(s.expect.reaches, vec![Point::CancelUnconfirmed, Point::PauseWhileRestarting]);
        assert!(Scenario::parse(GOOD, "t.toml", "t").unwrap().expect.reaches.is_empty());
        assert_refused(&with("[\"moon-landing\"]"), "expect.reaches[0]", "cancel-unconfirmed", "unknown point");
        assert_refused(&with("[\"cancel-unconfirmed\", \"cancel-unconfirmed\"]"), "expect.reaches", "twice", "twice");
        assert_refused(&with("\"cancel-unconfirmed\""), "expect.reaches", "sequence", "not a list");
    }

    #[test]
    fn every_error_names_file_line_column_and_key() {
        let cases: &[(&str, &str, usize, &str)] = &[
            ("records = 10", "records = \"ten\"", 11, "job.vertices[0].records"),
            ("partitions = 2", "partitions = 2\ncolour = \"red\"", 7, "job.colour"),
            ("partitions = 2", "partitions = 0", 6, "job.partitions"),
            ("duration_ms = 10_000", "duration_ms = -5", 2, "duration_ms"),
            ("vertex = \"in\"", "vertex = \"nope\"", 20, "faults[0].vertex"),
            ("partition = 1\n", "partition = 7\n", 21, "faults[0].partition"),
            ("kind = \"end-partition\"", "kind = \"meteor\"", 19, "faults[0].kind"),
            ("mode = \"batch\"", "mode = \"bulk\"", 5, "job.mode"),
            ("at_ms = 100", "at_ms = 20_000", 18, "faults[0].at_ms"),
            ("name = \"in\"", "name = \"a\\nb\"", 9, "job.vertices[0].name"),
            ("duration_ms = 10_000", "name = \"\\u001b[31m\"\nduration_ms = 10_000", 2, "name"),
            ("kind = \"sink\"", "kind = \"sink\"\nscale = { min = 3, max = 2 }", 16, "job.vertices[1].scale.min"),
        ];
        for (from, to, line, key) in cases {
            assert!(GOOD.contains(from), "case {from:?} does not apply");
            let text = GOOD.replacen(from, to, 1);
            let (l, c, k, message) = error(&text);
            assert_eq!((l, k.as_str()), (*line, *key), "for {to:?}: {message}");
            assert!(c >= 1 && !message.is_empty());
        }
    }

    /// No run produces more than MAX_RECORDS_PER_RUN records: batch totals and streaming rate × duration alike.
    #[test]
    fn the_records_of_a_run_are_bounded_in_batch_and_streaming() {
        let batch = |n: u64| GOOD.replace("records = 10", &format!("records = {n}"));
        assert!(Scenario::parse(&batch(MAX_RECORDS_PER_RUN), "t.toml", "t").is_ok());
        let (line, _, key, message) = error(&batch(MAX_RECORDS_PER_RUN + 1));
        assert_eq!((line, key.as_str()), (11, "job.vertices[0].records"), "{message}");
        let streaming = |rate: u64, duration_ms: u64| {
            GOOD.replace("mode = \"batch\"", "mode = \"streaming\"")
                .replace("records = 10", &format!("records = {rate}"))
                .replace("duration_ms = 10_000", &format!("duration_ms = {duration_ms}"))
                .replace("[[faults]]\nat_ms = 100\nkind = \"end-partition\"\nvertex = \"in\"\npartition = 1\n", "")
        };
        assert!(Scenario::parse(&streaming(100_000, 20_000), "t.toml", "t").is_ok());
        let (_, _, key, message) = error(&streaming(100_000, 20_001));
        assert_eq!(key, "job.vertices[0].records");
        assert!(message.contains("up to 2000100 records"), "{message}");
        let (_, _, _, message) = error(&streaming(1_000, MAX_DURATION_MS));
        assert!(message.contains("lower `records` or `duration_ms`"), "{message}");
    }

    #[test]
    fn a_fault_naming_a_missing_node_or_a_wrong_key_is_refused() {
        let crash = GOOD.replace(
            "kind = \"end-partition\"\nvertex = \"in\"\npartition = 1",
            "kind = \"crash\"\nnode = \"worker-9\"",
        );
        let (_, _, key, message) = error(&crash);
        assert_eq!(key, "faults[0].node");
        assert!(message.contains("worker-9"), "{message}");
        let wrong = GOOD.replace("partition = 1\n", "partition = 1\nnode = \"store\"\n");
        let (_, _, key, _) = error(&wrong);
        assert_eq!(key, "faults[0].node");
    }

    /// Names (kinds, reasons, checkpoints, statuses) are parsed by serde into typed values: a wrong one is refused at
    /// its own key with the choices, and a key the fault's kind does not take is refused at that key.
    #[test]
    fn typed_names_and_the_keys_of_each_kind_are_refused_where_they_stand() {
        let with = |fault: &str| {
            GOOD.replace("kind = \"end-partition\"\nvertex = \"in\"\npartition = 1", fault)
                .replace("[[faults]]", "[job.checkpoint]\ninterval_ms = 500\ntimeout_ms = 400\n\n[[faults]]")
        };
        let cases = [
            ("kind = \"fail-checkpoint\"\nreason = \"bored\"", "faults[0].reason", "`task-not-ready`"),
            ("kind = \"delay-checkpoint-ack\"\ncheckpoint = \"last\"\nby_ms = 5", "faults[0].checkpoint", "\"final\""),
            ("kind = \"delay-checkpoint-ack\"\ncheckpoint = 0\nby_ms = 5", "faults[0].checkpoint", "number"),
            ("kind = \"delay-checkpoint-ack\"\ncheckpoint = 1.5\nby_ms = 5", "faults[0].checkpoint", "number"),
            ("kind = \"pause\"\nnode = \"store\"", "faults[0].node", "it takes: no other keys"),
            ("kind = \"crash\"\nnode = \"store\"\nby_ms = 5", "faults[0].by_ms", "it takes: node, restart_after_ms"),
            ("kind = \"fail-checkpoint\"", "faults[0].reason", "needs `reason`"),
        ];
        for (fault, key, says) in cases {
            assert_refused(&with(fault), key, says, fault);
        }
        let ok = Scenario::parse(&with("kind = \"delay-checkpoint-ack\"\ncheckpoint = \"final\"\nby_ms = 5"), "t", "t");
        let kind = ok.map(|s| s.faults[0].kind.clone());
        let final_ack = FaultKind::DelayCheckpointAck { checkpoint: sluice_engine::faults::AckTarget::Final, by_ms: 5 };
        assert_eq!(kind, Ok(final_ack));
        let inline = GOOD
            .replace("[[faults]]\nat_ms = 100\nkind = \"end-partition\"\nvertex = \"in\"\npartition = 1\n", "")
            .replace(
                "duration_ms = 10_000\n",
                "duration_ms = 10_000\nfaults = [{ at_ms = 100, kind = \"resume\", partition = 1 }]\n",
            );
        let (_, _, k, message) = error(&inline);
        assert_eq!(k, "faults[0].partition", "an inline fault table is checked the same way: {message}");
        let status = GOOD.to_string() + "\n[expect]\nstatus = \"DONE\"\n";
        let (_, _, k, message) = error(&status);
        assert!(k == "expect.status" && message.contains("`FINISHED`"), "{k}: {message}");
    }

    #[test]
    fn a_slow_link_is_validated_like_a_clog_and_bounded() {
        let slow = |body: &str| {
            GOOD.replace(
                "kind = \"end-partition\"\nvertex = \"in\"\npartition = 1",
                &format!("kind = \"slow\"\n{body}"),
            )
        };
        let good = Scenario::parse(&slow("from = \"store\"\nto = \"coordinator\"\nby_ms = 700"), "t.toml", "t");
        assert!(good.is_ok(), "{good:?}");
        let cases = [
            ("from = \"store\"\nto = \"coordinator\"", "faults[0].by_ms", "needs `by_ms`"),
            ("from = \"store\"\nto = \"coordinator\"\nby_ms = 60_001", "faults[0].by_ms", "above 60000"),
            ("from = \"store\"\nto = \"coordinator\"\nby_ms = 0", "faults[0].by_ms", "must be positive"),
            ("from = \"store\"\nto = \"store\"\nby_ms = 5", "faults[0].to", "two different nodes"),
            ("from = \"worker-7\"\nto = \"store\"\nby_ms = 5", "faults[0].from", "worker-7"),
        ];
        for (body, key, says) in cases {
            assert_refused(&slow(body), key, says, body);
        }
        let unslow = GOOD.replace(
            "kind = \"end-partition\"\nvertex = \"in\"\npartition = 1",
            "kind = \"unslow\"\nfrom = \"store\"\nto = \"coordinator\"\nby_ms = 5",
        );
        assert_eq!(error(&unslow).2, "faults[0].by_ms", "an unslow takes no amount");
    }

    #[test]
    fn exponential_delay_takes_flinks_defaults_and_refuses_what_flink_refuses() {
        let with = |keys: &str| GOOD.replace("[[faults]]", &format!("[job.restart]\n{keys}\n\n[[faults]]"));
        let s = Scenario::parse(&with("strategy = \"exponential-delay\""), "t.toml", "t").unwrap();
        let flink = RestartSpec::ExponentialDelay {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            backoff_multiplier_milli: 1_500,
            reset_backoff_threshold_ms: 3_600_000,
            jitter_factor_milli: 100,
            attempts_before_reset_backoff: None,
        };
        assert_eq!(s.job.restart, flink);
        let cases = [
            ("backoff_multiplier = 1.0", "job.restart.backoff_multiplier", "above 1"),
            ("backoff_multiplier = 1.0004", "job.restart.backoff_multiplier", "above 1"),
            ("backoff_multiplier = nan", "job.restart.backoff_multiplier", "above 1"),
            ("jitter_factor = 1.5", "job.restart.jitter_factor", "between 0 and 1"),
            ("initial_backoff_ms = 0", "job.restart.initial_backoff_ms", "between 1 and"),
            ("initial_backoff_ms = 5_000\nmax_backoff_ms = 4_000", "job.restart.max_backoff_ms", "below initial"),
            ("attempts_before_reset_backoff = 0", "job.restart.attempts_before_reset_backoff", "positive"),
            ("delay_ms = 5", "job.restart.delay_ms", "takes no `delay_ms`"),
        ];
        for (keys, key, says) in cases {
            assert_refused(&with(&format!("strategy = \"exponential-delay\"\n{keys}")), key, says, keys);
        }
        let (_, _, k, message) = error(&with("strategy = \"fixed-delay\"\nattempts = 1\njitter_factor = 0.5"));
        assert!(k == "job.restart.jitter_factor" && message.contains("takes no"), "{message}");
        let (_, _, _, message) = error(&with("strategy = \"exponential\""));
        assert!(message.contains("`exponential-delay`"), "the choices are named: {message}");
    }

    #[test]
    fn syntax_errors_are_located_too() {
        let (line, _, _, message) = error("duration_ms = \n[job");
        assert_eq!(line, 1, "{message}");
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let e = Scenario::load(Path::new("/no/such/scenario.toml")).unwrap_err();
        assert!(matches!(e, ScenarioError::Read { .. }));
        assert!(e.to_string().starts_with("/no/such/scenario.toml"));
    }
}
