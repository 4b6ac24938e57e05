//! `[timings]`: the engine's timing constants as part of the scenario (heartbeat, worker timeout, coordinator tick,
//! sink flush, stream window, connect wait, store response timeout, cancel bound, autoscale period).
//!
//! Each has a documented default (the value every shipped scenario ran with before `[timings]` existed), a range a
//! scenario may set, and a narrower swarm range that `--swarm` draws from (`[swarm] timing_<name>`, see
//! [`crate::swarm`]). The checkers derive their bounds from the scenario's values (`checker::bounds`), so a drawn
//! timing moves the bounds with it. Everything here is this module's own reading of the README; the engine's
//! `Timings::default()` is never consulted.

use super::{Ctx, ScenarioError};
use serde::Deserialize;
use sluice_engine::Timings;

/// The name of one timing constant, as written under `[timings]` (and, prefixed with `timing_`, under `[swarm]`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, strum::EnumString, strum::IntoStaticStr, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum TimingName {
    HeartbeatMs,
    WorkerTimeoutMs,
    TickMs,
    FlushMs,
    StreamWindow,
    ConnectWaitMs,
    StoreResponseTimeoutMs,
    CancelTimeoutMs,
    AutoscalePeriodMs,
}

/// One timing's documented default, the range a scenario may set, and the range `--swarm` draws from.
#[derive(Clone, Copy, Debug)]
pub struct TimingRange {
    pub name: TimingName,
    pub default: u64,
    /// What `[timings]` accepts (inclusive).
    pub accepted: (u64, u64),
    /// What a swarm draws from when the scenario does not narrow it (inclusive, inside `accepted`).
    pub swarm: (u64, u64),
    pub meaning: &'static str,
}

/// Every timing, in the order they are drawn. The swarm ranges are the documented safe ranges: within them every
/// shipped scenario's checkers hold (measured: README, "Timings").
pub const TIMINGS: [TimingRange; 9] = [
    t(TimingName::HeartbeatMs, 100, (10, 1_000), (25, 250), "workers report their executions this often"),
    t(TimingName::WorkerTimeoutMs, 1_000, (100, 30_000), (500, 3_000), "a worker silent this long is lost"),
    t(TimingName::TickMs, 50, (5, 1_000), (10, 150), "the coordinator re-evaluates and re-sends its intents"),
    t(TimingName::FlushMs, 50, (1, 5_000), (5, 500), "a sink flushes a partial batch after this long"),
    t(TimingName::StreamWindow, 32, (1, 1_024), (2, 128), "records in flight on one data stream (credits)"),
    t(TimingName::ConnectWaitMs, 2_000, (100, 30_000), (500, 5_000), "a stream waits this long for its peer"),
    t(TimingName::StoreResponseTimeoutMs, 5_000, (100, 60_000), (1_000, 15_000), "a sink waits this long for a batch"),
    t(TimingName::CancelTimeoutMs, 10_000, (100, 120_000), (2_000, 30_000), "the wait for cancel confirmations"),
    t(TimingName::AutoscalePeriodMs, 2_000, (100, 60_000), (500, 5_000), "the autoscaler looks this often"),
];

const fn t(
    name: TimingName,
    default: u64,
    accepted: (u64, u64),
    swarm: (u64, u64),
    meaning: &'static str,
) -> TimingRange {
    TimingRange { name, default, accepted, swarm, meaning }
}

/// A worker must be allowed to miss this many heartbeats in a row before it is declared lost (`[timings]` refuses a
/// shorter `worker_timeout_ms`; the swarm draws at least [`SWARM_HEARTBEATS_PER_TIMEOUT`]).
pub const MIN_HEARTBEATS_PER_TIMEOUT: u64 = 5;
/// What a swarm draw keeps: the worker timeout is raised to this many heartbeats when it draws less.
pub const SWARM_HEARTBEATS_PER_TIMEOUT: u64 = 8;

impl TimingName {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The `[swarm]` knob that draws this timing.
    pub fn knob(self) -> String {
        format!("timing_{}", self.name())
    }

    pub fn range(self) -> &'static TimingRange {
        TIMINGS.iter().find(|r| r.name == self).expect("every timing is in the table")
    }

    /// The value of this timing in `timings`.
    pub fn get(self, timings: &Timings) -> u64 {
        match self {
            TimingName::HeartbeatMs => timings.heartbeat_ms,
            TimingName::WorkerTimeoutMs => timings.worker_timeout_ms,
            TimingName::TickMs => timings.tick_ms,
            TimingName::FlushMs => timings.flush_ms,
            TimingName::StreamWindow => u64::from(timings.stream_window),
            TimingName::ConnectWaitMs => timings.connect_wait_ms,
            TimingName::StoreResponseTimeoutMs => timings.store_response_timeout_ms,
            TimingName::CancelTimeoutMs => timings.cancel_timeout_ms,
            TimingName::AutoscalePeriodMs => timings.autoscale_period_ms,
        }
    }

    /// Sets this timing in `timings` (`value` inside the accepted range).
    pub fn set(self, timings: &mut Timings, value: u64) {
        let (lo, hi) = self.range().accepted;
        assert!((lo..=hi).contains(&value), "{}: {value} outside the accepted range, validated before", self.name());
        match self {
            TimingName::HeartbeatMs => timings.heartbeat_ms = value,
            TimingName::WorkerTimeoutMs => timings.worker_timeout_ms = value,
            TimingName::TickMs => timings.tick_ms = value,
            TimingName::FlushMs => timings.flush_ms = value,
            TimingName::StreamWindow => timings.stream_window = value as u32,
            TimingName::ConnectWaitMs => timings.connect_wait_ms = value,
            TimingName::StoreResponseTimeoutMs => timings.store_response_timeout_ms = value,
            TimingName::CancelTimeoutMs => timings.cancel_timeout_ms = value,
            TimingName::AutoscalePeriodMs => timings.autoscale_period_ms = value,
        }
    }
}

/// The documented defaults: the timings of a scenario without `[timings]`.
pub fn default_timings() -> Timings {
    let mut timings = Timings {
        heartbeat_ms: 0,
        worker_timeout_ms: 0,
        tick_ms: 0,
        flush_ms: 0,
        stream_window: 0,
        connect_wait_ms: 0,
        store_response_timeout_ms: 0,
        cancel_timeout_ms: 0,
        autoscale_period_ms: 0,
    };
    for r in &TIMINGS {
        r.name.set(&mut timings, r.default);
    }
    timings
}

/// `[timings]` as written: any subset of the timings; the rest keep their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimings {
    heartbeat_ms: Option<u64>,
    worker_timeout_ms: Option<u64>,
    tick_ms: Option<u64>,
    flush_ms: Option<u64>,
    stream_window: Option<u64>,
    connect_wait_ms: Option<u64>,
    store_response_timeout_ms: Option<u64>,
    cancel_timeout_ms: Option<u64>,
    autoscale_period_ms: Option<u64>,
}

impl RawTimings {
    fn value(&self, name: TimingName) -> Option<u64> {
        match name {
            TimingName::HeartbeatMs => self.heartbeat_ms,
            TimingName::WorkerTimeoutMs => self.worker_timeout_ms,
            TimingName::TickMs => self.tick_ms,
            TimingName::FlushMs => self.flush_ms,
            TimingName::StreamWindow => self.stream_window,
            TimingName::ConnectWaitMs => self.connect_wait_ms,
            TimingName::StoreResponseTimeoutMs => self.store_response_timeout_ms,
            TimingName::CancelTimeoutMs => self.cancel_timeout_ms,
            TimingName::AutoscalePeriodMs => self.autoscale_period_ms,
        }
    }
}

/// Validates `[timings]`: every value inside its accepted range, and a worker timeout of at least
/// [`MIN_HEARTBEATS_PER_TIMEOUT`] heartbeats. Returns the timings and those the scenario sets (pinned: `--swarm`
/// leaves them as written unless `[swarm]` lists them).
pub(crate) fn validate(raw: Option<&RawTimings>, ctx: &Ctx) -> Result<(Timings, Vec<TimingName>), ScenarioError> {
    let mut timings = default_timings();
    let mut pinned = Vec::new();
    let Some(raw) = raw else { return Ok((timings, pinned)) };
    for r in &TIMINGS {
        let Some(v) = raw.value(r.name) else { continue };
        pinned.push(r.name);
        let (lo, hi) = r.accepted;
        if !(lo..=hi).contains(&v) {
            return Err(ctx.err(&format!("timings.{}", r.name.name()), format!("must be between {lo} and {hi}")));
        }
        r.name.set(&mut timings, v);
    }
    if timings.worker_timeout_ms < MIN_HEARTBEATS_PER_TIMEOUT * timings.heartbeat_ms {
        let key = if raw.worker_timeout_ms.is_some() { "timings.worker_timeout_ms" } else { "timings.heartbeat_ms" };
        let detail = format!(
            "worker_timeout_ms ({}) must be at least {MIN_HEARTBEATS_PER_TIMEOUT} heartbeats ({} ms each)",
            timings.worker_timeout_ms, timings.heartbeat_ms
        );
        return Err(ctx.err(key, detail));
    }
    Ok((timings, pinned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    const BASE: &str = r#"# Goal: g.  Method: m.
duration_ms = 5_000
[job]
mode = "batch"
partitions = 1
[[job.vertices]]
name = "in"
kind = "source"
records = 10
[[job.vertices]]
name = "out"
kind = "sink"
"#;

    fn parse(timings: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(&format!("{BASE}[timings]\n{timings}"), "t.toml", "t")
    }

    #[test]
    fn the_table_is_consistent_and_its_defaults_are_the_readme_values() {
        for r in &TIMINGS {
            assert!(r.accepted.0 <= r.swarm.0 && r.swarm.0 <= r.default && r.default <= r.swarm.1);
            assert!(r.swarm.1 <= r.accepted.1, "{:?}", r.name);
            assert_eq!(r.name.range().name, r.name);
        }
        let d = default_timings();
        assert_eq!((d.heartbeat_ms, d.worker_timeout_ms, d.tick_ms, d.flush_ms), (100, 1_000, 50, 50));
        assert_eq!((d.stream_window, d.connect_wait_ms, d.store_response_timeout_ms), (32, 2_000, 5_000));
        assert_eq!((d.cancel_timeout_ms, d.autoscale_period_ms), (10_000, 2_000));
        assert!(d.worker_timeout_ms >= SWARM_HEARTBEATS_PER_TIMEOUT * d.heartbeat_ms);
    }

    #[test]
    fn timings_are_read_and_defaulted() {
        let s = parse("heartbeat_ms = 50\nstream_window = 4\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.job.timings.heartbeat_ms, s.job.timings.stream_window), (50, 4));
        assert_eq!(s.job.timings.cancel_timeout_ms, 10_000, "the rest keep their defaults");
        assert_eq!(s.pinned_timings, vec![TimingName::HeartbeatMs, TimingName::StreamWindow]);
        let plain = Scenario::parse(BASE, "t.toml", "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.job.timings, default_timings());
    }

    #[test]
    fn bad_timings_are_refused_at_their_key() {
        let cases = [
            ("tick_ms = 0\n", "timings.tick_ms", "between 5 and 1000"),
            ("stream_window = 5000\n", "timings.stream_window", "between 1 and 1024"),
            ("worker_timeout_ms = 400\n", "timings.worker_timeout_ms", "at least 5 heartbeats"),
            ("heartbeat_ms = 900\n", "timings.heartbeat_ms", "at least 5 heartbeats"),
            ("heart_beat_ms = 9\n", "timings", "unknown field"),
        ];
        for (text, key, message) in cases {
            match parse(text) {
                Err(ScenarioError::Invalid { key: k, message: m, .. }) => {
                    assert!(k.starts_with(key) && m.contains(message), "{text}: {k}: {m}")
                }
                other => panic!("{text}: not refused: {other:?}"),
            }
        }
    }
}
