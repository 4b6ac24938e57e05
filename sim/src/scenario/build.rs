//! Turns a parsed scenario into a validated one: every rule that serde's types cannot state, each refusal located by
//! its key.

use super::*;

pub(super) fn build(raw: RawScenario, ctx: &Ctx, default_name: &str, text: &str) -> Result<Scenario, ScenarioError> {
    if raw.duration_ms == 0 {
        return Err(ctx.err("duration_ms", "must be positive"));
    }
    if raw.duration_ms > MAX_DURATION_MS {
        return Err(ctx.err("duration_ms", format!("at most {MAX_DURATION_MS} (one simulated hour)")));
    }
    let job = &raw.job;
    let mode = job.mode;
    let pause_grace_period_ms = job.lifecycle.as_ref().and_then(|l| l.pause_grace_period_ms).unwrap_or(30_000);
    if pause_grace_period_ms == 0 {
        return Err(ctx.err("job.lifecycle.pause_grace_period_ms", "must be positive"));
    }
    if job.partitions == 0 {
        return Err(ctx.err("job.partitions", "must be positive"));
    }
    if job.partitions > MAX_PARTITIONS {
        return Err(ctx.err("job.partitions", format!("at most {MAX_PARTITIONS} partitions")));
    }
    let delivery = job.delivery.unwrap_or(Delivery::ExactlyOnce);
    let workers = raw.cluster.as_ref().and_then(|c| c.workers).unwrap_or(2);
    if workers == 0 || workers > 1000 {
        return Err(ctx.err("cluster.workers", "must be between 1 and 1000"));
    }
    let vertices = build_vertices(job, mode, raw.duration_ms, ctx)?;
    let raw_source = &job.vertices[0];
    let source = SourceConfig {
        records: raw_source.records.unwrap_or(0),
        skew: raw_source.skew.clone().unwrap_or_else(|| vec![1; job.partitions as usize]),
        rate_per_sec: (mode == Mode::Batch).then(|| raw_source.rate_per_sec.unwrap_or(DEFAULT_RATE_PER_SEC)),
    };
    let restart = build_restart(job.restart.as_ref(), ctx)?;
    let checkpoint = build_checkpoint(job.checkpoint.as_ref(), ctx)?;
    let policy = build_policy(job.checkpoint_failure_policy.as_ref(), checkpoint.is_some(), ctx)?;
    let network = build_network(raw.network.as_ref(), ctx)?;
    let expect = build_expect(raw.expect.as_ref(), raw.duration_ms, ctx)?;
    let (timings, pinned_timings) = super::timings::validate(raw.timings.as_ref(), ctx)?;
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
        timings,
        buggify: build_buggify(raw.buggify.as_ref(), ctx)?,
    };
    let name = raw.name.clone().unwrap_or_else(|| default_name.to_string());
    check_name(&name, "name", ctx)?;
    let mut scenario = Scenario {
        name,
        file: ctx.file.to_string(),
        duration_ms: raw.duration_ms,
        job: spec,
        source,
        network,
        faults: Vec::new(),
        expect,
        swarm: None,
        pinned_timings,
        text: text.to_string(),
    };
    for (i, f) in raw.faults.iter().enumerate() {
        let fault = super::faults::validate(f, i, &scenario, ctx)?;
        scenario.faults.push(fault);
    }
    if let Some(swarm) = &raw.swarm {
        scenario.swarm = Some(super::swarm_table::validate(swarm, &scenario, ctx)?);
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
    let poll_ms = p.poll_ms.unwrap_or(DEFAULT_POLL_MS);
    if poll_ms == 0 {
        return Err(ctx.err(&key("poll_ms"), "must be positive"));
    }
    Ok(Some(PolicySpec { window_ms: p.window_ms, max_failures: p.max_failures, action: p.action, poll_ms }))
}

fn build_vertices(job: &RawJob, mode: Mode, duration_ms: u64, ctx: &Ctx) -> Result<Vec<VertexSpec>, ScenarioError> {
    if job.vertices.len() < 2 {
        return Err(ctx.err("job.vertices", "a job needs a source and a sink: at least two vertices"));
    }
    let last = job.vertices.len() - 1;
    let mut out = Vec::new();
    for (i, v) in job.vertices.iter().enumerate() {
        let key = |k: &str| format!("job.vertices[{i}].{k}");
        let kind = v.kind;
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
        check_name(&v.name, &key("name"), ctx)?;
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
            if mode == Mode::Batch && records > MAX_RECORDS_PER_RUN {
                let why = format!("at most {MAX_RECORDS_PER_RUN} records (a run must end within minutes on 2 cores)");
                return Err(ctx.err(&key("records"), why));
            }
            let weights = v.skew.clone().unwrap_or_else(|| vec![1; job.partitions as usize]);
            if weights.len() != job.partitions as usize {
                return Err(
                    ctx.err(&key("skew"), format!("has {} weights for {} partitions", weights.len(), job.partitions))
                );
            }
            if weights.iter().any(|w| *w > MAX_SKEW_WEIGHT) {
                return Err(ctx.err(&key("skew"), format!("each weight is at most {MAX_SKEW_WEIGHT}")));
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
                // At most as many records in a run as a batch source may have: rate × duration is bounded too.
                let most = records * duration_ms / 1000;
                if most > MAX_RECORDS_PER_RUN {
                    let why = format!(
                        "{records} records/s for {duration_ms} ms is up to {most} records; a run produces at most \
                         {MAX_RECORDS_PER_RUN} (lower `records` or `duration_ms`)"
                    );
                    return Err(ctx.err(&key("records"), why));
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
        let partitions = match (kind, v.partitions) {
            (_, None) => job.partitions,
            (VertexKind::Source, Some(_)) => {
                return Err(ctx.err(&key("partitions"), "a source's partitions are `job.partitions`"));
            }
            (_, Some(n)) if n == 0 || n > MAX_PARTITIONS => {
                return Err(ctx.err(&key("partitions"), format!("must be between 1 and {MAX_PARTITIONS}")));
            }
            (_, Some(n)) => n,
        };
        let batch_size = v.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 || batch_size > 10_000 {
            return Err(ctx.err(&key("batch_size"), "must be between 1 and 10000"));
        }
        out.push(VertexSpec {
            name: v.name.clone(),
            kind,
            partitions,
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

/// A name shown in reports, one per line: not empty, at most 200 characters, no control characters (a newline or an
/// escape would break the line it stands in).
fn check_name(name: &str, key: &str, ctx: &Ctx) -> Result<(), ScenarioError> {
    if name.is_empty() {
        return Err(ctx.err(key, "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(ctx.err(key, "at most 200 characters"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(ctx.err(key, format!("must not contain control characters (it holds {c:?})")));
    }
    Ok(())
}

/// `[job.restart] strategy`: Flink's restart strategies by their configuration names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub(super) enum Strategy {
    None,
    FixedDelay,
    FailureRate,
    ExponentialDelay,
}

impl Strategy {
    /// The keys of `[job.restart]` this strategy takes besides `strategy`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Strategy::None => &[],
            Strategy::FixedDelay => &["attempts", "delay_ms"],
            Strategy::FailureRate => &["max_failures_per_interval", "failure_rate_interval_ms", "delay_ms"],
            Strategy::ExponentialDelay => &[
                "initial_backoff_ms",
                "max_backoff_ms",
                "backoff_multiplier",
                "reset_backoff_threshold_ms",
                "jitter_factor",
                "attempts_before_reset_backoff",
            ],
        }
    }
}

/// Refuses a key of the table at `path` that its tag (a fault kind, a restart strategy) does not take, naming the key
/// and what the tag takes. The keys are read from the document itself, so this list cannot drift from the struct.
pub(super) fn refuse_keys_not_taken(
    ctx: &Ctx,
    path: &str,
    tag: &str,
    what: &str,
    takes: &[&str],
) -> Result<(), ScenarioError> {
    let written = ctx.keys.children(path);
    debug_assert!(!written.is_empty(), "{path} was parsed, so it has keys");
    match written.iter().find(|k| !takes.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => {
            let list = takes.iter().filter(|t| !matches!(**t, "kind" | "strategy" | "at_ms")).copied();
            let list: Vec<&str> = list.collect();
            let list = if list.is_empty() { "no other keys".to_string() } else { list.join(", ") };
            Err(ctx.err(&format!("{path}.{k}"), format!("{what} {tag:?} takes no `{k}` (it takes: {list})")))
        }
    }
}

fn build_restart(raw: Option<&RawRestart>, ctx: &Ctx) -> Result<RestartSpec, ScenarioError> {
    let Some(r) = raw else {
        return Ok(RestartSpec::None);
    };
    let name: &str = r.strategy.into();
    let need = |v: Option<u64>, k: &str| -> Result<u64, ScenarioError> {
        v.ok_or_else(|| ctx.err(&format!("job.restart.{k}"), format!("strategy {name:?} needs `{k}`")))
    };
    let takes: Vec<&str> = std::iter::once("strategy").chain(r.strategy.keys().iter().copied()).collect();
    refuse_keys_not_taken(ctx, "job.restart", name, "strategy", &takes)?;
    match r.strategy {
        Strategy::None => Ok(RestartSpec::None),
        Strategy::FixedDelay => {
            let attempts = need(r.attempts.map(u64::from), "attempts")? as u32;
            if attempts > 1000 {
                return Err(ctx.err("job.restart.attempts", "at most 1000"));
            }
            Ok(RestartSpec::FixedDelay { attempts, delay_ms: r.delay_ms.unwrap_or(1_000) })
        }
        Strategy::FailureRate => {
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
        Strategy::ExponentialDelay => build_exponential(r, ctx),
    }
}

/// Backoffs and the reset threshold: at most a day.
const MAX_BACKOFF_MS: u64 = 86_400_000;

/// Flink 1.19+'s exponential-delay, with Flink's defaults (`restart-strategy.exponential-delay.*`).
fn build_exponential(r: &RawRestart, ctx: &Ctx) -> Result<RestartSpec, ScenarioError> {
    let ms = |v: Option<u64>, default: u64, k: &str| -> Result<u64, ScenarioError> {
        let v = v.unwrap_or(default);
        if v == 0 || v > MAX_BACKOFF_MS {
            return Err(ctx.err(&format!("job.restart.{k}"), format!("must be between 1 and {MAX_BACKOFF_MS}")));
        }
        Ok(v)
    };
    let initial_backoff_ms = ms(r.initial_backoff_ms, 1_000, "initial_backoff_ms")?;
    let max_backoff_ms = ms(r.max_backoff_ms, 60_000, "max_backoff_ms")?;
    if max_backoff_ms < initial_backoff_ms {
        return Err(ctx.err("job.restart.max_backoff_ms", "must not be below initial_backoff_ms"));
    }
    let reset_backoff_threshold_ms = ms(r.reset_backoff_threshold_ms, 3_600_000, "reset_backoff_threshold_ms")?;
    let thousandths = |v: f64, k: &str, range: std::ops::RangeInclusive<f64>, what: &str| {
        if !v.is_finite() || !range.contains(&v) {
            return Err(ctx.err(&format!("job.restart.{k}"), format!("must be {what}")));
        }
        Ok((v * 1000.0).round() as u32)
    };
    let backoff_multiplier_milli =
        thousandths(r.backoff_multiplier.unwrap_or(1.5), "backoff_multiplier", 1.0..=100.0, "above 1 and at most 100")?;
    if backoff_multiplier_milli <= 1000 {
        return Err(ctx.err("job.restart.backoff_multiplier", "must be above 1 (to a thousandth)"));
    }
    let jitter_factor_milli =
        thousandths(r.jitter_factor.unwrap_or(0.1), "jitter_factor", 0.0..=1.0, "between 0 and 1")?;
    if r.attempts_before_reset_backoff == Some(0) {
        return Err(ctx.err("job.restart.attempts_before_reset_backoff", "must be positive"));
    }
    Ok(RestartSpec::ExponentialDelay {
        initial_backoff_ms,
        max_backoff_ms,
        backoff_multiplier_milli,
        reset_backoff_threshold_ms,
        jitter_factor_milli,
        attempts_before_reset_backoff: r.attempts_before_reset_backoff,
    })
}

/// `[buggify]`: every point unless `points` names some (each once), firing with `probability` in (0, 0.5].
fn build_buggify(raw: Option<&RawBuggify>, ctx: &Ctx) -> Result<Option<BuggifySpec>, ScenarioError> {
    use strum::VariantArray;
    let Some(b) = raw else { return Ok(None) };
    let probability = b.probability.unwrap_or(DEFAULT_BUGGIFY_PROBABILITY);
    let most = sluice_engine::buggify::MAX_PROBABILITY;
    if !(probability > 0.0 && probability <= most) {
        return Err(ctx.err("buggify.probability", format!("must be in (0, {most}]")));
    }
    let points = b.points.clone().unwrap_or_else(|| BuggifyPoint::VARIANTS.to_vec());
    if points.is_empty() {
        return Err(ctx.err("buggify.points", "names no point (leave it out for every point)"));
    }
    let spec = BuggifySpec::new(points.clone(), probability);
    if spec.points.len() < points.len() {
        return Err(ctx.err("buggify.points", "lists a point twice"));
    }
    Ok(Some(spec))
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
    let status = raw.and_then(|e| e.status);
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
    let mut reaches = raw.and_then(|e| e.reaches.clone()).unwrap_or_default();
    let listed = reaches.len();
    reaches.sort();
    reaches.dedup();
    if reaches.len() < listed {
        return Err(ctx.err("expect.reaches", "lists a point twice"));
    }
    Ok(Expect {
        status,
        within_ms,
        reaches,
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
