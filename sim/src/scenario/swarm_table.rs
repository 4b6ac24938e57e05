//! Validation of `[swarm]`: probabilities in [0, 1] and only for knobs that can act on the job, a fault window inside
//! `duration_ms` with a bounded number of steps, bounded fault counts and lengths. Part of the scenario module, which
//! owns all validation; `swarm` holds the knobs, their draw and the instantiation of a seed.

use super::timings::{TimingName, TIMINGS};
use super::{Ctx, Scenario, ScenarioError};
use crate::swarm::{
    applies, Swarm, DEFAULT_FAULT_MS, DEFAULT_MAX_FAULTS, DEFAULT_STEP_MS, KNOBS, MAX_FAULTS_LIMIT, MAX_LATENCY_CAP_MS,
    MAX_LOSS_CAP, MAX_SWARM_STEPS,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[swarm]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSwarm {
    window_ms: Option<[u64; 2]>,
    step_ms: Option<u64>,
    max_faults: Option<u32>,
    fault_ms: Option<[u64; 2]>,
    worker_crash_probability: Option<f64>,
    worker_isolate_probability: Option<f64>,
    worker_slow_cancel_probability: Option<f64>,
    store_crash_probability: Option<f64>,
    store_isolate_probability: Option<f64>,
    link_clog_probability: Option<f64>,
    partition_end_probability: Option<f64>,
    partition_duplicate_eot_probability: Option<f64>,
    checkpoint_fail_probability: Option<f64>,
    checkpoint_delay_ack_probability: Option<f64>,
    job_pause_probability: Option<f64>,
    link_slow_probability: Option<f64>,
    network_latency_ms: Option<u64>,
    network_loss: Option<f64>,
    timing_heartbeat_ms: Option<[u64; 2]>,
    timing_worker_timeout_ms: Option<[u64; 2]>,
    timing_tick_ms: Option<[u64; 2]>,
    timing_flush_ms: Option<[u64; 2]>,
    timing_stream_window: Option<[u64; 2]>,
    timing_connect_wait_ms: Option<[u64; 2]>,
    timing_store_response_timeout_ms: Option<[u64; 2]>,
    timing_cancel_timeout_ms: Option<[u64; 2]>,
    timing_autoscale_period_ms: Option<[u64; 2]>,
}

impl RawSwarm {
    fn timing_knob(&self, name: TimingName) -> Option<[u64; 2]> {
        match name {
            TimingName::HeartbeatMs => self.timing_heartbeat_ms,
            TimingName::WorkerTimeoutMs => self.timing_worker_timeout_ms,
            TimingName::TickMs => self.timing_tick_ms,
            TimingName::FlushMs => self.timing_flush_ms,
            TimingName::StreamWindow => self.timing_stream_window,
            TimingName::ConnectWaitMs => self.timing_connect_wait_ms,
            TimingName::StoreResponseTimeoutMs => self.timing_store_response_timeout_ms,
            TimingName::CancelTimeoutMs => self.timing_cancel_timeout_ms,
            TimingName::AutoscalePeriodMs => self.timing_autoscale_period_ms,
        }
    }

    fn knobs(&self) -> [Option<f64>; 12] {
        [
            self.worker_crash_probability,
            self.worker_isolate_probability,
            self.worker_slow_cancel_probability,
            self.store_crash_probability,
            self.store_isolate_probability,
            self.link_clog_probability,
            self.partition_end_probability,
            self.partition_duplicate_eot_probability,
            self.checkpoint_fail_probability,
            self.checkpoint_delay_ack_probability,
            self.job_pause_probability,
            self.link_slow_probability,
        ]
    }
}

pub(crate) fn validate(raw: &RawSwarm, s: &Scenario, ctx: &Ctx) -> Result<Swarm, ScenarioError> {
    let key = |k: &str| format!("swarm.{k}");
    let mut knobs = BTreeMap::new();
    for (name, value) in KNOBS.iter().zip(raw.knobs()) {
        let Some(p) = value else { continue };
        if !(0.0..=1.0).contains(&p) {
            return Err(ctx.err(&key(name), format!("{p} is not a probability in [0, 1]")));
        }
        if p > 0.0 && !applies(name, s) {
            return Err(ctx.err(&key(name), "a checkpoint fault needs [job.checkpoint]"));
        }
        knobs.insert(name.to_string(), p);
    }
    if let Some(cap) = raw.network_latency_ms {
        if cap > MAX_LATENCY_CAP_MS {
            return Err(ctx.err(&key("network_latency_ms"), format!("at most {MAX_LATENCY_CAP_MS} ms (0: off)")));
        }
        knobs.insert("network_latency_ms".to_string(), cap as f64);
    }
    if let Some(cap) = raw.network_loss {
        if !(0.0..=MAX_LOSS_CAP).contains(&cap) {
            return Err(ctx.err(&key("network_loss"), format!("{cap} is not a loss rate in [0, {MAX_LOSS_CAP}]")));
        }
        knobs.insert("network_loss".to_string(), cap);
    }
    let window_ms = match raw.window_ms {
        Some([from, to]) if from >= to => return Err(ctx.err(&key("window_ms"), "must be [from, to] with from < to")),
        Some([_, to]) if to > s.duration_ms => {
            return Err(ctx.err(&key("window_ms"), format!("ends after duration_ms {}", s.duration_ms)))
        }
        Some([from, to]) => (from, to),
        None => (0, (s.duration_ms / 2).max(1)),
    };
    let step_ms = raw.step_ms.unwrap_or(DEFAULT_STEP_MS);
    if step_ms == 0 {
        return Err(ctx.err(&key("step_ms"), "must be positive"));
    }
    let steps = (window_ms.1 - window_ms.0).div_ceil(step_ms);
    if steps > MAX_SWARM_STEPS {
        let detail = format!("the window is {steps} steps of step_ms; at most {MAX_SWARM_STEPS} (raise step_ms)");
        return Err(ctx.err(&key("step_ms"), detail));
    }
    let max_faults = raw.max_faults.unwrap_or(DEFAULT_MAX_FAULTS);
    if max_faults > MAX_FAULTS_LIMIT {
        return Err(ctx.err(&key("max_faults"), format!("at most {MAX_FAULTS_LIMIT}")));
    }
    let fault_ms = match raw.fault_ms {
        Some([lo, hi]) if lo == 0 || lo > hi => {
            return Err(ctx.err(&key("fault_ms"), "must be [shortest, longest] with 0 < shortest <= longest"))
        }
        Some([lo, hi]) => (lo, hi),
        None => DEFAULT_FAULT_MS,
    };
    let mut timings = BTreeMap::new();
    for range in &TIMINGS {
        let Some([lo, hi]) = raw.timing_knob(range.name) else { continue };
        let (least, most) = range.accepted;
        if lo > hi || lo < least || hi > most {
            let detail = format!("must be [lowest, highest] within [{least}, {most}]");
            return Err(ctx.err(&key(&range.name.knob()), detail));
        }
        timings.insert(range.name, (lo, hi));
    }
    Ok(Swarm { knobs, window_ms, step_ms, max_faults, fault_ms, timings })
}
