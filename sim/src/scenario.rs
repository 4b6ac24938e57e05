//! Scenario scripts: the TOML schema (see `scenarios/README.md`), its validation, and the validated [`Scenario`].
//!
//! Bad input is refused before anything runs, with the file, line, column and key in the message.

use crate::fault::{Fault, FaultKind};
use crate::locate::KeyMap;
use serde::Deserialize;
use sluice_engine::job::split_records;
use sluice_engine::net::NodeName;
use sluice_engine::{
    CheckpointSpec, Delivery, JobSpec, JobStatus, Mode, PolicyAction, PolicySpec, RestartSpec, Timings, VertexKind,
    VertexSpec,
};
use std::path::Path;
use thiserror::Error;

/// Why a scenario was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {why}")]
    Read { file: String, why: String },
    #[error("{file}:{line}:{column}: key `{key}`: {message}")]
    Invalid { file: String, line: usize, column: usize, key: String, message: String },
}

/// Default source pace in batch mode (records per second per partition).
pub const DEFAULT_RATE_PER_SEC: u64 = 100;
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
    #[serde(default)]
    faults: Vec<RawFault>,
    expect: Option<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    mode: String,
    partitions: u32,
    delivery: Option<String>,
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
    action: String,
    poll_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVertex {
    name: String,
    kind: String,
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
    strategy: String,
    max_failures_per_interval: Option<u32>,
    failure_rate_interval_ms: Option<u64>,
    attempts: Option<u32>,
    delay_ms: Option<u64>,
}

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
    pub kind: String,
    pub vertex: Option<String>,
    pub partition: Option<u32>,
    pub node: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub restart_after_ms: Option<u64>,
    pub heal_after_ms: Option<u64>,
    pub reason: Option<String>,
    pub count: Option<u32>,
    pub checkpoint: Option<toml::Value>,
    pub by_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    status: Option<String>,
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
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// Where it came from (a path, or `<inline>`).
    pub file: String,
    pub duration_ms: u64,
    pub job: JobSpec,
    pub network: Network,
    pub faults: Vec<Fault>,
    pub expect: Expect,
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
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Read { file: file.clone(), why: e.to_string() })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario".into());
        Scenario::parse(&text, &file, &stem)
    }

    /// Validates a scenario text; `file` names it in errors, `default_name` is used when it has no `name`.
    pub fn parse(text: &str, file: &str, default_name: &str) -> Result<Scenario, ScenarioError> {
        let ctx = Ctx { file, keys: KeyMap::new(text) };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = ctx.keys.line_col(span.start);
            let key = ctx.keys.path_at(&span).unwrap_or_else(|| unknown_key(e.message()).unwrap_or_default());
            ScenarioError::Invalid {
                file: file.to_string(),
                line,
                column,
                key,
                message: e.message().trim().to_string(),
            }
        })?;
        build(raw, &ctx, default_name)
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

fn unknown_key(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

fn build(raw: RawScenario, ctx: &Ctx, default_name: &str) -> Result<Scenario, ScenarioError> {
    if raw.duration_ms == 0 {
        return Err(ctx.err("duration_ms", "must be positive"));
    }
    let job = &raw.job;
    let mode = match job.mode.as_str() {
        "batch" => Mode::Batch,
        "streaming" => Mode::Streaming,
        other => {
            return Err(ctx.err("job.mode", format!("unknown mode {other:?}; expected \"batch\" or \"streaming\"")))
        }
    };
    let pause_grace_period_ms = job.lifecycle.as_ref().and_then(|l| l.pause_grace_period_ms).unwrap_or(30_000);
    if pause_grace_period_ms == 0 {
        return Err(ctx.err("job.lifecycle.pause_grace_period_ms", "must be positive"));
    }
    if job.partitions == 0 {
        return Err(ctx.err("job.partitions", "must be positive"));
    }
    if job.partitions > 1024 {
        return Err(ctx.err("job.partitions", "at most 1024 partitions"));
    }
    let delivery = match job.delivery.as_deref() {
        None | Some("exactly-once") => Delivery::ExactlyOnce,
        Some("at-least-once") => Delivery::AtLeastOnce,
        Some(other) => {
            return Err(ctx.err(
                "job.delivery",
                format!("unknown delivery {other:?}; expected \"exactly-once\" or \"at-least-once\""),
            ))
        }
    };
    let workers = raw.cluster.as_ref().and_then(|c| c.workers).unwrap_or(2);
    if workers == 0 || workers > 1000 {
        return Err(ctx.err("cluster.workers", "must be between 1 and 1000"));
    }
    let vertices = build_vertices(job, mode, ctx)?;
    let restart = build_restart(job.restart.as_ref(), ctx)?;
    let checkpoint = build_checkpoint(job.checkpoint.as_ref(), ctx)?;
    let policy = build_policy(job.checkpoint_failure_policy.as_ref(), checkpoint.is_some(), ctx)?;
    let network = build_network(raw.network.as_ref(), ctx)?;
    let expect = build_expect(raw.expect.as_ref(), raw.duration_ms, ctx)?;
    let spec = JobSpec {
        mode,
        delivery,
        partitions: job.partitions,
        vertices,
        restart,
        checkpoint,
        policy,
        pause_grace_period_ms,
        workers,
        timings: Timings::default(),
    };
    let name = raw.name.clone().unwrap_or_else(|| default_name.to_string());
    if name.is_empty() {
        return Err(ctx.err("name", "must not be empty"));
    }
    let mut scenario = Scenario {
        name,
        file: ctx.file.to_string(),
        duration_ms: raw.duration_ms,
        job: spec,
        network,
        faults: Vec::new(),
        expect,
    };
    for (i, f) in raw.faults.iter().enumerate() {
        let fault = crate::fault::validate(f, i, &scenario, ctx)?;
        scenario.faults.push(fault);
    }
    Ok(scenario)
}

fn build_checkpoint(raw: Option<&RawCheckpoint>, ctx: &Ctx) -> Result<Option<CheckpointSpec>, ScenarioError> {
    let Some(c) = raw else { return Ok(None) };
    if c.interval_ms == 0 {
        return Err(ctx.err("job.checkpoint.interval_ms", "must be positive"));
    }
    if c.timeout_ms == 0 {
        return Err(ctx.err("job.checkpoint.timeout_ms", "must be positive"));
    }
    Ok(Some(CheckpointSpec {
        interval_ms: c.interval_ms,
        timeout_ms: c.timeout_ms,
        tolerable_failures: c.tolerable_failures.unwrap_or(0),
    }))
}

fn build_policy(raw: Option<&RawPolicy>, checkpoints: bool, ctx: &Ctx) -> Result<Option<PolicySpec>, ScenarioError> {
    let Some(p) = raw else { return Ok(None) };
    let key = |k: &str| format!("job.checkpoint_failure_policy.{k}");
    if !checkpoints {
        return Err(ctx.err("job.checkpoint_failure_policy", "a checkpoint-failure policy needs [job.checkpoint]"));
    }
    if p.window_ms == 0 {
        return Err(ctx.err(&key("window_ms"), "must be positive"));
    }
    if p.max_failures == 0 {
        return Err(ctx.err(&key("max_failures"), "must be positive"));
    }
    let action = match p.action.as_str() {
        "restart" => PolicyAction::Restart,
        "alert" => PolicyAction::Alert,
        other => {
            return Err(ctx.err(&key("action"), format!("unknown action {other:?}; expected \"restart\" or \"alert\"")))
        }
    };
    let poll_ms = p.poll_ms.unwrap_or(DEFAULT_POLL_MS);
    if poll_ms == 0 {
        return Err(ctx.err(&key("poll_ms"), "must be positive"));
    }
    Ok(Some(PolicySpec { window_ms: p.window_ms, max_failures: p.max_failures, action, poll_ms }))
}

fn build_vertices(job: &RawJob, mode: Mode, ctx: &Ctx) -> Result<Vec<VertexSpec>, ScenarioError> {
    if job.vertices.len() < 2 {
        return Err(ctx.err("job.vertices", "a job needs a source and a sink: at least two vertices"));
    }
    let last = job.vertices.len() - 1;
    let mut out = Vec::new();
    for (i, v) in job.vertices.iter().enumerate() {
        let key = |k: &str| format!("job.vertices[{i}].{k}");
        let kind = match v.kind.as_str() {
            "source" => VertexKind::Source,
            "map" => VertexKind::Map,
            "sink" => VertexKind::Sink,
            other => return Err(ctx.err(&key("kind"), format!("unknown kind {other:?}; expected source, map or sink"))),
        };
        let expected = if i == 0 {
            VertexKind::Source
        } else if i == last {
            VertexKind::Sink
        } else {
            VertexKind::Map
        };
        if kind != expected {
            return Err(ctx.err(&key("kind"), "a job is a chain: one source first, maps in between, one sink last"));
        }
        if v.name.is_empty() {
            return Err(ctx.err(&key("name"), "must not be empty"));
        }
        if job.vertices[..i].iter().any(|w| w.name == v.name) {
            return Err(ctx.err(&key("name"), format!("vertex name {:?} is used twice", v.name)));
        }
        let min = v.scale.as_ref().and_then(|s| s.min).unwrap_or(1);
        let max = v.scale.as_ref().and_then(|s| s.max).unwrap_or(min.max(1));
        if max == 0 && (mode == Mode::Batch || kind != VertexKind::Source) {
            return Err(ctx.err(
                &key("scale.max"),
                "only a streaming source may have no replica (a batch job, and every map and sink, needs one)",
            ));
        }
        if min > max {
            return Err(ctx.err(&key("scale.min"), format!("min {min} is above max {max}")));
        }
        if max > 64 {
            return Err(ctx.err(&key("scale.max"), "at most 64 replicas"));
        }
        let only_source = |k: &str, present: bool| -> Result<(), ScenarioError> {
            if present && kind != VertexKind::Source {
                return Err(ctx.err(&key(k), "only a source vertex takes this key"));
            }
            Ok(())
        };
        only_source("records", v.records.is_some())?;
        only_source("skew", v.skew.is_some())?;
        only_source("rate_per_sec", v.rate_per_sec.is_some())?;
        if v.batch_size.is_some() && kind != VertexKind::Sink {
            return Err(ctx.err(&key("batch_size"), "only a sink vertex takes this key"));
        }
        let mut partition_records = Vec::new();
        let mut partition_rates = Vec::new();
        if kind == VertexKind::Source {
            let records = v.records.ok_or_else(|| ctx.err(&key("records"), "a source needs `records`"))?;
            if records > 10_000_000 {
                return Err(ctx.err(&key("records"), "at most 10,000,000 records"));
            }
            let weights = v.skew.clone().unwrap_or_else(|| vec![1; job.partitions as usize]);
            if weights.len() != job.partitions as usize {
                return Err(
                    ctx.err(&key("skew"), format!("has {} weights for {} partitions", weights.len(), job.partitions))
                );
            }
            if weights.iter().all(|w| *w == 0) {
                return Err(ctx.err(&key("skew"), "at least one weight must be positive"));
            }
            let shares = split_records(records, &weights);
            if mode == Mode::Streaming {
                // Streaming: `records` is records per second, split by the skew; partitions never end by themselves.
                if v.rate_per_sec.is_some() {
                    return Err(ctx.err(&key("rate_per_sec"), "a streaming source's rate is `records` (per second)"));
                }
                if records > 100_000 {
                    return Err(ctx.err(&key("records"), "a streaming source emits at most 100,000 records per second"));
                }
                partition_rates = shares;
                partition_records = vec![u64::MAX; job.partitions as usize];
            } else {
                let rate = v.rate_per_sec.unwrap_or(DEFAULT_RATE_PER_SEC);
                if rate > 1_000_000 {
                    return Err(ctx.err(&key("rate_per_sec"), "at most 1,000,000 (0 means unpaced)"));
                }
                partition_rates = vec![rate; job.partitions as usize];
                partition_records = shares;
            }
        }
        let batch_size = v.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 || batch_size > 10_000 {
            return Err(ctx.err(&key("batch_size"), "must be between 1 and 10000"));
        }
        out.push(VertexSpec {
            name: v.name.clone(),
            kind,
            replicas: if max == 0 { 0 } else { min.max(1) },
            scale_min: min,
            scale_max: max,
            partition_records,
            partition_rates,
            batch_size,
        });
    }
    Ok(out)
}

fn build_restart(raw: Option<&RawRestart>, ctx: &Ctx) -> Result<RestartSpec, ScenarioError> {
    let Some(r) = raw else {
        return Ok(RestartSpec::None);
    };
    let need = |v: Option<u64>, k: &str| -> Result<u64, ScenarioError> {
        v.ok_or_else(|| ctx.err(&format!("job.restart.{k}"), format!("strategy {:?} needs `{k}`", r.strategy)))
    };
    let not_for = |present: bool, k: &str| -> Result<(), ScenarioError> {
        if present {
            return Err(ctx.err(&format!("job.restart.{k}"), format!("strategy {:?} takes no `{k}`", r.strategy)));
        }
        Ok(())
    };
    match r.strategy.as_str() {
        "none" => {
            not_for(r.attempts.is_some(), "attempts")?;
            not_for(r.delay_ms.is_some(), "delay_ms")?;
            not_for(r.max_failures_per_interval.is_some(), "max_failures_per_interval")?;
            not_for(r.failure_rate_interval_ms.is_some(), "failure_rate_interval_ms")?;
            Ok(RestartSpec::None)
        }
        "fixed-delay" => {
            not_for(r.max_failures_per_interval.is_some(), "max_failures_per_interval")?;
            not_for(r.failure_rate_interval_ms.is_some(), "failure_rate_interval_ms")?;
            let attempts = need(r.attempts.map(u64::from), "attempts")? as u32;
            if attempts > 1000 {
                return Err(ctx.err("job.restart.attempts", "at most 1000"));
            }
            Ok(RestartSpec::FixedDelay { attempts, delay_ms: r.delay_ms.unwrap_or(1_000) })
        }
        "failure-rate" => {
            not_for(r.attempts.is_some(), "attempts")?;
            let max = need(r.max_failures_per_interval.map(u64::from), "max_failures_per_interval")? as u32;
            let interval = need(r.failure_rate_interval_ms, "failure_rate_interval_ms")?;
            if max == 0 {
                return Err(ctx.err("job.restart.max_failures_per_interval", "must be positive"));
            }
            if interval == 0 {
                return Err(ctx.err("job.restart.failure_rate_interval_ms", "must be positive"));
            }
            Ok(RestartSpec::FailureRate {
                max_failures_per_interval: max,
                failure_rate_interval_ms: interval,
                delay_ms: r.delay_ms.unwrap_or(1_000),
            })
        }
        other => Err(ctx.err(
            "job.restart.strategy",
            format!("unknown strategy {other:?}; expected \"none\", \"fixed-delay\" or \"failure-rate\""),
        )),
    }
}

fn build_network(raw: Option<&RawNetwork>, ctx: &Ctx) -> Result<Network, ScenarioError> {
    let latency_ms = raw.and_then(|n| n.latency_ms).unwrap_or([1, 10]);
    if latency_ms[0] == 0 || latency_ms[0] > latency_ms[1] {
        return Err(ctx.err("network.latency_ms", "must be [low, high] with 0 < low <= high"));
    }
    if latency_ms[1] > 60_000 {
        return Err(ctx.err("network.latency_ms", "at most 60,000 ms"));
    }
    let loss = raw.and_then(|n| n.loss).unwrap_or(0.0);
    if !(0.0..0.5).contains(&loss) {
        return Err(ctx.err("network.loss", "must be in [0, 0.5)"));
    }
    Ok(Network { latency_ms: (latency_ms[0], latency_ms[1]), loss })
}

fn build_expect(raw: Option<&RawExpect>, duration_ms: u64, ctx: &Ctx) -> Result<Expect, ScenarioError> {
    let status = match raw.and_then(|e| e.status.as_deref()) {
        None => None,
        Some(s) => Some(JobStatus::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = JobStatus::ALL.iter().map(|s| s.name()).collect();
            ctx.err("expect.status", format!("unknown status {s:?}; expected one of {}", names.join(", ")))
        })?),
    };
    let bound = |v: Option<u64>, k: &str, default: u64| -> Result<u64, ScenarioError> {
        match v {
            Some(0) => Err(ctx.err(&format!("expect.{k}"), "must be positive")),
            Some(v) if v > duration_ms && k == "within_ms" => {
                Err(ctx.err(&format!("expect.{k}"), format!("{v} is beyond duration_ms {duration_ms}")))
            }
            Some(v) => Ok(v),
            None => Ok(default),
        }
    };
    let within_ms = match raw.and_then(|e| e.within_ms) {
        None => None,
        Some(v) => Some(bound(Some(v), "within_ms", 0)?),
    };
    Ok(Expect {
        status,
        within_ms,
        quiescent_within_ms: bound(
            raw.and_then(|e| e.quiescent_within_ms),
            "quiescent_within_ms",
            DEFAULT_QUIESCENT_WITHIN_MS,
        )?,
        progress_within_ms: bound(
            raw.and_then(|e| e.progress_within_ms),
            "progress_within_ms",
            DEFAULT_PROGRESS_WITHIN_MS,
        )?,
        terminal_within_ms: bound(
            raw.and_then(|e| e.terminal_within_ms),
            "terminal_within_ms",
            DEFAULT_TERMINAL_WITHIN_MS,
        )?,
    })
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

/// Short description of a fault kind, for errors.
pub(crate) fn kind_list() -> &'static str {
    FaultKind::NAMES
}

#[cfg(test)]
mod tests {
    use super::*;

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
