//! Swarm testing: faults drawn from the seed.
//!
//! A `[swarm]` table sets knobs named `<subject>_<fault>_probability`: the chance, per step of `step_ms` and per
//! subject (each worker, each partition, the store, the job...), that such a fault starts in that step. Bounds keep a
//! run meaningful: faults start inside `window_ms`, clipped for a batch job to its life (one pilot run per scenario,
//! see [`life_ms`]), last `fault_ms` (a crash restarts, an isolation or a clog heals, a pause is resumed, all before
//! the run ends), at most `max_faults` of those drawn are kept (a random subset of the whole window's draws), and one
//! subject is never hit by two overlapping faults. `sluice explore --swarm` draws the knobs themselves from the seed as well (TigerBeetle's swarm
//! testing): each knob is off half the time, else uniform up to its cap.
//!
//! Two separate ChaCha streams of the seed are used, one for the knobs and one for the faults; the simulation's own
//! scheduling randomness is madsim's, from the same seed. Drawn faults are materialized: the run is the scenario with
//! `[swarm]` replaced by the drawn `[[faults]]` (see [`instantiate`]), so a failure file holds the faults as run, and
//! the shrinker can drop one without reshuffling the others.

use crate::scenario::timings::{TimingName, SWARM_HEARTBEATS_PER_TIMEOUT, TIMINGS};
use crate::scenario::Scenario;
use crate::trace::TraceKeep;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_engine::faults::FailReason;
use sluice_engine::Mode;
use std::collections::BTreeMap;
use strum::VariantNames;

/// The knobs, in the order faults are drawn. Each is `<subject>_<fault>_probability`.
pub const KNOBS: [&str; 12] = [
    "worker_crash_probability",
    "worker_isolate_probability",
    "worker_slow_cancel_probability",
    "store_crash_probability",
    "store_isolate_probability",
    "link_clog_probability",
    "partition_end_probability",
    "partition_duplicate_eot_probability",
    "checkpoint_fail_probability",
    "checkpoint_delay_ack_probability",
    "job_pause_probability",
    "link_slow_probability",
];

/// The network knobs: each is the cap of a property of the run's network, drawn per seed and written into the run's
/// `[network]`: `network_latency_ms` the highest one-way latency (the lowest is drawn below it), `network_loss` the
/// loss rate of datagrams.
pub const NETWORK_KNOBS: [&str; 2] = ["network_latency_ms", "network_loss"];
/// The caps `--swarm` uses for a network knob the scenario does not list.
pub const DEFAULT_LATENCY_CAP_MS: u64 = 40;
pub const DEFAULT_LOSS_CAP: f64 = 0.02;
/// The safe ranges: the most a scenario may set (the checkers' bounds hold up to these).
pub const MAX_LATENCY_CAP_MS: u64 = 100;
pub const MAX_LOSS_CAP: f64 = 0.05;

/// The cap of a knob that `--swarm` draws and the scenario does not list.
pub const DEFAULT_KNOB_CAP: f64 = 0.25;
/// Default bounds.
pub const DEFAULT_STEP_MS: u64 = 1_000;
pub const DEFAULT_MAX_FAULTS: u32 = 4;
pub const DEFAULT_FAULT_MS: (u64, u64) = (200, 3_000);
/// How much a drawn `slow` delays a link's datagrams: [least, most].
pub const SLOW_BY_MS: (u64, u64) = (50, 1_500);
/// Hard limit on `max_faults`.
pub const MAX_FAULTS_LIMIT: u32 = 64;
/// The most draw steps a swarm window may have (each step draws every knob for every subject).
pub const MAX_SWARM_STEPS: u64 = 10_000;

const KNOB_STREAM: u64 = 1;
const FAULT_STREAM: u64 = 2;
const NETWORK_STREAM: u64 = 3;
const TIMING_STREAM: u64 = 4;

/// The network one seed draws: the `[network]` values that replace the scenario's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DrawnNetwork {
    pub latency_ms: Option<(u64, u64)>,
    pub loss: Option<f64>,
}

/// A validated `[swarm]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Swarm {
    /// The knobs the scenario lists (a knob not listed is 0, and capped at [`DEFAULT_KNOB_CAP`] under `--swarm`).
    pub knobs: BTreeMap<String, f64>,
    pub window_ms: (u64, u64),
    pub step_ms: u64,
    pub max_faults: u32,
    pub fault_ms: (u64, u64),
    /// The timing knobs that are on: each timing drawn per seed within its range (`[swarm] timing_<name>`).
    pub timings: BTreeMap<TimingName, (u64, u64)>,
}

/// Whether a knob can act on this scenario's job.
pub(crate) fn applies(knob: &str, s: &Scenario) -> bool {
    !knob.starts_with("checkpoint_") || s.job.checkpoint.is_some()
}

impl Swarm {
    /// The knobs `--swarm` runs this seed with: each knob that applies is off half the time, else uniform in
    /// (0, cap] (cap: the scenario's value, or [`DEFAULT_KNOB_CAP`] for a knob it does not list: swarm testing
    /// explores what the author did not think of); a knob the scenario sets to 0 stays off. Rounded to 3 decimals, so
    /// that the printed knobs are the knobs. A run with an unlisted knob on drops the scenario's `[expect] status`.
    pub fn redraw(&self, s: &Scenario, seed: u64) -> Swarm {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(KNOB_STREAM);
        let mut knobs = BTreeMap::new();
        for name in KNOBS {
            let cap = self.knobs.get(name).copied().unwrap_or(DEFAULT_KNOB_CAP);
            // Draw for every knob, applicable or not, so one knob's draw does not depend on the others.
            let on = rng.gen_bool(0.5);
            let p = (rng.gen_range(0.0..1.0f64) * cap * 1000.0).ceil() / 1000.0;
            knobs.insert(name.to_string(), if on && cap > 0.0 && applies(name, s) { p.min(cap) } else { 0.0 });
        }
        // After the fault knobs, so that adding these did not change what a seed draws for those.
        for name in NETWORK_KNOBS {
            let default = if name == "network_loss" { DEFAULT_LOSS_CAP } else { DEFAULT_LATENCY_CAP_MS as f64 };
            let cap = self.knobs.get(name).copied().unwrap_or(default);
            knobs.insert(name.to_string(), if rng.gen_bool(0.5) { cap } else { 0.0 });
        }
        // Then the timings: each on half the time, within the scenario's range or its documented swarm range; a
        // timing the scenario pins in `[timings]` and does not list under `[swarm]` stays as written.
        let mut timings = BTreeMap::new();
        for range in &TIMINGS {
            let on = rng.gen_bool(0.5);
            let listed = self.timings.get(&range.name).copied();
            let pinned = s.pinned_timings.contains(&range.name);
            match listed.or((!pinned).then_some(range.swarm)) {
                Some(r) if on => timings.insert(range.name, r),
                _ => None,
            };
        }
        Swarm { knobs, timings, ..self.clone() }
    }

    /// The timings this seed draws: each timing knob that is on draws uniformly within its range (whole ms, or
    /// records for the stream window). A drawn worker timeout is raised to [`SWARM_HEARTBEATS_PER_TIMEOUT`]
    /// heartbeats; a drawn heartbeat under a timeout that was not drawn is lowered to fit it the same way.
    pub fn draw_timings(&self, s: &Scenario, seed: u64) -> BTreeMap<TimingName, u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(TIMING_STREAM);
        let mut drawn = BTreeMap::new();
        for range in &TIMINGS {
            // Draw for every timing, on or not, so one timing's draw does not depend on the others.
            let unit = rng.gen_range(0.0..1.0f64);
            if let Some((lo, hi)) = self.timings.get(&range.name) {
                drawn.insert(range.name, lo + ((hi - lo + 1) as f64 * unit) as u64);
            }
        }
        let (hb, wto) = (TimingName::HeartbeatMs, TimingName::WorkerTimeoutMs);
        let heartbeat = drawn.get(&hb).copied().unwrap_or(s.job.timings.heartbeat_ms);
        let timeout = drawn.get(&wto).copied().unwrap_or(s.job.timings.worker_timeout_ms);
        if timeout < SWARM_HEARTBEATS_PER_TIMEOUT * heartbeat {
            if drawn.contains_key(&wto) {
                drawn.insert(wto, SWARM_HEARTBEATS_PER_TIMEOUT * heartbeat);
            } else {
                drawn.insert(hb, (timeout / SWARM_HEARTBEATS_PER_TIMEOUT).max(hb.range().accepted.0));
            }
        }
        for (name, value) in &drawn {
            let (lo, hi) = name.range().accepted;
            assert!((lo..=hi).contains(value), "{}: drew {value}, outside [{lo}, {hi}]", name.name());
        }
        drawn
    }

    /// The window clipped to the job's life: faults start before the job would end without them.
    pub fn within_life(&self, life_ms: u64) -> Swarm {
        let (from, to) = self.window_ms;
        Swarm { window_ms: (from, to.min(life_ms).max(from + 1)), ..self.clone() }
    }

    /// The knobs that are on, for reports.
    pub fn active_knobs(&self) -> BTreeMap<String, f64> {
        self.knobs.iter().filter(|(_, p)| **p > 0.0).map(|(k, p)| (k.clone(), *p)).collect()
    }

    /// The network this seed draws: for each network knob that is on, a value up to its cap (uniform; latency in
    /// whole ms, the lowest latency at most the highest; loss rounded to 4 decimals).
    pub fn draw_network(&self, seed: u64) -> DrawnNetwork {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(NETWORK_STREAM);
        let cap = |name: &str| self.knobs.get(name).copied().filter(|c| *c > 0.0);
        let latency_ms = cap("network_latency_ms").map(|c| {
            let high = rng.gen_range(1..=(c as u64).max(1));
            (rng.gen_range(1..=high), high)
        });
        let loss = cap("network_loss").map(|c| (rng.gen_range(0.0..1.0f64) * c * 10_000.0).ceil() / 10_000.0);
        assert!(loss.is_none_or(|l| l <= MAX_LOSS_CAP), "validation bounds the loss cap");
        DrawnNetwork { latency_ms, loss }
    }

    /// The faults this seed draws, as `[[faults]]` TOML tables in time order.
    pub fn draw(&self, s: &Scenario, seed: u64) -> Vec<(u64, String)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(FAULT_STREAM);
        // One group per fault: a pause and its resume are one fault, bounded together.
        let mut drawn: Vec<Vec<(u64, String)>> = Vec::new();
        let mut busy_until: BTreeMap<String, u64> = BTreeMap::new();
        let workers = s.job.workers;
        let source = &s.job.vertices[0].name;
        let (from, to) = self.window_ms;
        let mut step = from;
        while step < to {
            let step_end = (step + self.step_ms).min(to);
            for name in KNOBS {
                let p = self.knobs.get(name).copied().unwrap_or(0.0);
                if p <= 0.0 {
                    continue;
                }
                let subjects: Vec<String> = match name.split('_').next().expect("knob names have a subject") {
                    "worker" => (1..=workers).map(|w| format!("worker-{w}")).collect(),
                    "store" => vec!["store".into()],
                    "partition" => (0..s.job.partitions).map(|p| p.to_string()).collect(),
                    "link" => vec!["link".into()],
                    "checkpoint" => vec!["checkpoint".into()],
                    _ => vec!["job".into()],
                };
                for subject in subjects {
                    if !rng.gen_bool(p) {
                        continue;
                    }
                    let at = rng.gen_range(step..step_end);
                    let lasting = rng.gen_range(self.fault_ms.0..=self.fault_ms.1);
                    // Every fault heals before the run ends, so the liveness phase can begin.
                    let lasting = lasting.min(s.duration_ms.saturating_sub(at + 1));
                    // Crash and isolation of one node exclude each other; other faults only repeat themselves.
                    let family = match name {
                        "worker_crash_probability" | "worker_isolate_probability" => "down",
                        "store_crash_probability" | "store_isolate_probability" => "down",
                        other => other,
                    };
                    let busy_key = format!("{subject}/{family}");
                    if lasting == 0 || busy_until.get(&busy_key).is_some_and(|u| *u > at) {
                        continue;
                    }
                    busy_until.insert(busy_key, at + lasting);
                    let mut then = None;
                    let body = match name {
                        "worker_crash_probability" | "store_crash_probability" => body(&[
                            ("kind", "crash".into()),
                            ("node", subject.as_str().into()),
                            ("restart_after_ms", int(lasting)),
                        ]),
                        "worker_isolate_probability" | "store_isolate_probability" => {
                            let nodes = toml_edit::Array::from_iter([subject.as_str()]);
                            body(&[
                                ("kind", "isolate".into()),
                                ("nodes", nodes.into()),
                                ("heal_after_ms", int(lasting)),
                            ])
                        }
                        "worker_slow_cancel_probability" => body(&[
                            ("kind", "slow-cancel".into()),
                            ("node", subject.as_str().into()),
                            ("by_ms", int(lasting)),
                        ]),
                        "link_clog_probability" | "link_slow_probability" => {
                            let mut nodes = vec!["coordinator".to_string(), "store".to_string()];
                            nodes.extend((1..=workers).map(|w| format!("worker-{w}")));
                            nodes.shuffle(&mut rng);
                            let (from, to) = (&nodes[0], &nodes[1]);
                            if name == "link_clog_probability" {
                                let (from, to) = (from.as_str().into(), to.as_str().into());
                                body(&[
                                    ("kind", "clog".into()),
                                    ("from", from),
                                    ("to", to),
                                    ("heal_after_ms", int(lasting)),
                                ])
                            } else {
                                let by_ms = rng.gen_range(SLOW_BY_MS.0..=SLOW_BY_MS.1);
                                let (from, to) = (from.as_str().into(), to.as_str().into());
                                let by_ms = int(by_ms);
                                body(&[
                                    ("kind", "slow".into()),
                                    ("from", from),
                                    ("to", to),
                                    ("by_ms", by_ms),
                                    ("heal_after_ms", int(lasting)),
                                ])
                            }
                        }
                        "partition_end_probability" => {
                            // A partition ends once.
                            busy_until.insert(format!("{subject}/{name}"), u64::MAX);
                            body(&[
                                ("kind", "end-partition".into()),
                                ("vertex", source.as_str().into()),
                                ("partition", int(subject.parse().expect("a partition number"))),
                            ])
                        }
                        "partition_duplicate_eot_probability" => body(&[
                            ("kind", "duplicate-eot".into()),
                            ("vertex", source.as_str().into()),
                            ("partition", int(subject.parse().expect("a partition number"))),
                        ]),
                        "checkpoint_fail_probability" => {
                            let reasons = FailReason::VARIANTS;
                            let reason = reasons[rng.gen_range(0..reasons.len())];
                            let count: i32 = rng.gen_range(1..=3); // drawn as before: the same seed draws the same faults
                            body(&[
                                ("kind", "fail-checkpoint".into()),
                                ("reason", reason.into()),
                                ("count", i64::from(count).into()),
                            ])
                        }
                        "checkpoint_delay_ack_probability" => {
                            let interval = s.job.checkpoint.as_ref().map_or(1, |c| c.interval_ms.max(1));
                            // Either mode takes a final checkpoint once every partition ended.
                            let target = if rng.gen_bool(0.5) { "final".into() } else { int(at / interval + 1) };
                            body(&[
                                ("kind", "delay-checkpoint-ack".into()),
                                ("checkpoint", target),
                                ("by_ms", int(lasting)),
                            ])
                        }
                        _ => {
                            debug_assert_eq!(name, "job_pause_probability");
                            then = Some((at + lasting, body(&[("kind", "resume".into())])));
                            body(&[("kind", "pause".into())])
                        }
                    };
                    drawn.push(std::iter::once((at, body)).chain(then).collect());
                }
            }
            step = step_end;
        }
        if drawn.len() > self.max_faults as usize {
            drawn.shuffle(&mut rng);
            drawn.truncate(self.max_faults as usize);
        }
        let mut faults: Vec<(u64, String)> = drawn.into_iter().flatten().collect();
        faults.sort_by_key(|(at, _)| *at);
        faults
    }
}

/// A drawn fault's body (`key = value` lines, no header), written by `toml_edit` so that any name is quoted right.
fn body(fields: &[(&str, toml_edit::Value)]) -> String {
    let mut table = toml_edit::Table::new();
    for (key, value) in fields {
        table.insert(key, toml_edit::Item::Value(value.clone()));
    }
    table.to_string().trim_end().to_string()
}

/// A drawn number as a TOML integer (every draw is bounded by a validated duration, far below `i64::MAX`).
fn int(n: u64) -> toml_edit::Value {
    toml_edit::Value::from(i64::try_from(n).expect("a drawn number is bounded by the scenario's duration"))
}

/// How `explore` treats a scenario's `[swarm]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwarmMode {
    /// Draw faults with the knobs as written.
    AsWritten,
    /// Draw the knobs from the seed too (`--swarm`).
    DrawKnobs,
}

/// The seed of the pilot run that measures how long a batch job lives.
pub const PILOT_SEED: u64 = 0;

/// How long the scenario's job lives, for the swarm's window: a streaming job lives the whole run; a batch job until
/// the client first reads a terminal status in one pilot run (seed [`PILOT_SEED`], the scenario's own `[[faults]]`,
/// no drawn fault, no canary), or the whole run if it never ends. A function of the scenario alone: every seed of a
/// sweep draws within the same life, and the failure file holds the faults as drawn.
pub fn life_ms(s: &Scenario) -> u64 {
    if s.swarm.is_none() || s.job.mode == Mode::Streaming {
        return s.duration_ms;
    }
    let mut pilot = s.clone();
    pilot.swarm = None;
    let report = crate::runner::run_as_is_keeping(&pilot, PILOT_SEED, &[], TraceKeep::Recent(1));
    report.first_terminal_ms.unwrap_or(s.duration_ms).clamp(1, s.duration_ms)
}

/// A scenario as it runs under one seed: the scenario itself when it has no `[swarm]`; else its text with `[swarm]`
/// removed and the drawn faults appended as `[[faults]]`, re-validated, with the knobs it was drawn with. Measures
/// the job's life first ([`life_ms`]; a sweep measures it once per scenario and calls [`instantiate_within`]).
pub fn instantiate(s: &Scenario, seed: u64, mode: SwarmMode) -> (Scenario, Option<BTreeMap<String, f64>>) {
    instantiate_within(s, seed, mode, life_ms(s))
}

/// [`instantiate`] with the job's life given: faults start inside the window clipped to the life (a batch job that
/// ended takes no more faults; its own end may come later, when faults delay it).
pub fn instantiate_within(
    s: &Scenario,
    seed: u64,
    mode: SwarmMode,
    life_ms: u64,
) -> (Scenario, Option<BTreeMap<String, f64>>) {
    let Some(swarm) = &s.swarm else { return (s.clone(), None) };
    let swarm = match mode {
        SwarmMode::AsWritten => swarm.clone(),
        SwarmMode::DrawKnobs => swarm.redraw(s, seed),
    };
    instantiate_drawn(s, seed, &swarm, life_ms)
}

/// A scenario as it runs under one seed with the knobs given (drawn from the seed, or chosen by a guided sweep):
/// network, timings and faults drawn from the seed with them, written into the as-run text.
pub fn instantiate_drawn(
    s: &Scenario,
    seed: u64,
    swarm: &Swarm,
    life_ms: u64,
) -> (Scenario, Option<BTreeMap<String, f64>>) {
    assert!(s.swarm.is_some(), "only a scenario with [swarm] draws");
    let swarm = swarm.within_life(life_ms);
    let mut doc: toml_edit::DocumentMut = s.text.parse().expect("a validated scenario is a TOML document");
    doc.remove("swarm");
    let mut knobs = swarm.active_knobs();
    // The drawn network replaces the scenario's; the reported knob is the value drawn.
    let network = swarm.draw_network(seed);
    if network.latency_ms.is_some() || network.loss.is_some() {
        let table = doc.entry("network").or_insert(toml_edit::table()).as_table_like_mut();
        let table = table.expect("a validated scenario's [network] is a table");
        if let Some((low, high)) = network.latency_ms {
            let pair = toml_edit::Array::from_iter([int(low), int(high)]);
            table.insert("latency_ms", toml_edit::Item::Value(pair.into()));
            knobs.insert("network_latency_ms".into(), high as f64);
        }
        if let Some(loss) = network.loss {
            table.insert("loss", toml_edit::value(loss));
            knobs.insert("network_loss".into(), loss);
        }
    }
    // The drawn timings replace the scenario's; the reported knob is the value drawn.
    let timings = swarm.draw_timings(s, seed);
    if !timings.is_empty() {
        let table = doc.entry("timings").or_insert(toml_edit::table()).as_table_like_mut();
        let table = table.expect("a validated scenario's [timings] is a table");
        for (name, value) in &timings {
            table.insert(name.name(), toml_edit::Item::Value(int(*value)));
            knobs.insert(name.knob(), *value as f64);
        }
    }
    // The scenario's expected status was written for the faults it lists; with others drawn it no longer applies
    // (the checkers still judge the run).
    let listed =
        |k: &str| s.swarm.as_ref().is_some_and(|w| w.knobs.contains_key(k) || w.timings.keys().any(|t| t.knob() == k));
    let unlisted: Vec<&String> = knobs.keys().filter(|k| !listed(k)).collect();
    let mut dropped_expectation = false;
    if let Some(expect) = doc.get_mut("expect").and_then(|e| e.as_table_like_mut()) {
        if !unlisted.is_empty() {
            dropped_expectation |= expect.remove("status").is_some();
            dropped_expectation |= expect.remove("within_ms").is_some();
        }
    }
    let mut text = doc.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let listed: Vec<String> = knobs.iter().map(|(k, p)| format!("{k} = {p}")).collect();
    let (from, to) = swarm.window_ms;
    text.push_str(&format!(
        "\n# [swarm] drew these faults from seed {seed}, starting in [{from}, {to}) ms (the job lives {life_ms} ms \
         without them); knobs: {}\n",
        listed.join(", ")
    ));
    if dropped_expectation {
        let names: Vec<&str> = unlisted.iter().map(|k| k.as_str()).collect();
        text.push_str(&format!(
            "# [expect] status dropped: knobs the scenario does not list are on ({})\n",
            names.join(", ")
        ));
    }
    for (at, body) in swarm.draw(s, seed) {
        text.push_str(&format!("\n[[faults]]\nat_ms = {at}\n{body}\n"));
    }
    let file = format!("{} (swarm, seed {seed})", s.file);
    let stem = s.name.clone();
    let mut as_run = Scenario::parse(&text, &file, &stem)
        .unwrap_or_else(|e| panic!("swarm drew a scenario that does not validate (a bug in swarm.rs): {e}\n{text}"));
    as_run.name = s.name.clone();
    (as_run, Some(knobs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ScenarioError;

    const BASE: &str = r#"# Goal: g.  Method: m.
duration_ms = 30_000
[job]
mode = "batch"
partitions = 3
[[job.vertices]]
name = "in"
kind = "source"
records = 300
[[job.vertices]]
name = "out"
kind = "sink"
[job.checkpoint]
interval_ms = 1_000
timeout_ms = 500
[job.restart]
strategy = "fixed-delay"
attempts = 50
delay_ms = 100
"#;

    fn with_swarm(table: &str) -> Scenario {
        Scenario::parse(&format!("{BASE}[swarm]\n{table}"), "t.toml", "t").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_knob_draws_valid_faults_that_heal_in_time() {
        let all: String = KNOBS.iter().map(|k| format!("{k} = 0.5\n")).collect();
        let s = with_swarm(&format!("{all}max_faults = 64\nwindow_ms = [0, 29_000]\nfault_ms = [100, 9_000]\n"));
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let (run, knobs) = instantiate(&s, seed, SwarmMode::AsWritten);
            assert_eq!(knobs.map(|k| k.len()), Some(KNOBS.len()));
            assert!(run.swarm.is_none() && !run.faults.is_empty());
            assert!(run.faults.len() <= 64 * 2);
            let actions = crate::fault::timeline(&run.faults);
            assert!(actions.iter().all(|(t, _)| *t < s.duration_ms), "every heal happens inside the run");
            assert!(crate::fault::liveness_start_ms(&actions, run.job.workers).is_some(), "seed {seed} never heals");
            kinds.extend(run.faults.iter().map(|f| format!("{:?}", std::mem::discriminant(&f.kind))));
        }
        assert_eq!(kinds.len(), 11, "every kind is drawn (resume with pause)");
    }

    #[test]
    fn faults_start_while_a_batch_job_lives_and_anywhere_in_a_streaming_run() {
        // The default window is the first half of the run (15 s); the batch job ends well before that.
        let s = with_swarm("worker_crash_probability = 0.2\nmax_faults = 64\n");
        let life = life_ms(&s);
        assert!(life > 0 && life < 15_000, "the pilot run ends the batch job early: {life} ms");
        assert_eq!(life, life_ms(&s), "a function of the scenario");
        let mut drawn = 0;
        for seed in 0..20 {
            let (run, _) = instantiate(&s, seed, SwarmMode::AsWritten);
            assert!(run.faults.iter().all(|f| f.at_ms < life), "seed {seed}: a fault after the job's end");
            assert!(run.text.contains(&format!("starting in [0, {life}) ms")), "the window is written down");
            drawn += run.faults.len();
        }
        assert!(drawn > 0);
        let streaming = Scenario::parse(
            &format!("{}[swarm]\nworker_crash_probability = 0.2\n", BASE.replace("\"batch\"", "\"streaming\"")),
            "t.toml",
            "t",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(life_ms(&streaming), streaming.duration_ms, "a streaming job lives the whole run");
        let swarm = s.swarm.clone().unwrap();
        assert_eq!(swarm.within_life(1_000).window_ms, (0, 1_000));
        assert_eq!(swarm.within_life(60_000).window_ms, swarm.window_ms, "never widened");
    }

    #[test]
    fn draws_are_a_function_of_the_seed_and_respect_the_bounds() {
        let s = with_swarm("worker_crash_probability = 0.03\npartition_end_probability = 0.03\nmax_faults = 2\n");
        let a = instantiate(&s, 7, SwarmMode::AsWritten).0;
        assert_eq!(a, instantiate(&s, 7, SwarmMode::AsWritten).0);
        let counts: Vec<usize> =
            (0..50).map(|seed| instantiate(&s, seed, SwarmMode::AsWritten).0.faults.len()).collect();
        assert!(counts.iter().all(|n| *n <= 2), "{counts:?}");
        assert!(counts.contains(&2) && counts.iter().any(|n| *n < 2), "{counts:?}");
        let off = with_swarm("worker_crash_probability = 0.0\n");
        assert!(instantiate(&off, 3, SwarmMode::AsWritten).0.faults.is_empty());
    }

    #[test]
    fn redrawn_knobs_stay_within_caps_and_zero_stays_off() {
        let s = with_swarm("worker_crash_probability = 0.0\nstore_crash_probability = 0.1\n");
        let swarm = s.swarm.clone().unwrap();
        let mut seen_on = 0;
        for seed in 0..64 {
            let k = swarm.redraw(&s, seed).knobs;
            assert_eq!(k["worker_crash_probability"], 0.0);
            assert!(k["store_crash_probability"] <= 0.1);
            assert!(KNOBS.iter().all(|name| (0.0..=DEFAULT_KNOB_CAP).contains(&k[*name])));
            assert!([0.0, DEFAULT_LATENCY_CAP_MS as f64].contains(&k["network_latency_ms"]), "off, or its cap");
            assert!([0.0, DEFAULT_LOSS_CAP].contains(&k["network_loss"]));
            seen_on += usize::from(k["partition_end_probability"] > 0.0);
        }
        assert!((16..=48).contains(&seen_on), "a knob is on about half the time: {seen_on}/64");
    }

    #[test]
    fn network_knobs_draw_the_run_network_within_their_caps_and_write_it_down() {
        let s = with_swarm("network_latency_ms = 30\nnetwork_loss = 0.01\n");
        let (mut highs, mut losses) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for seed in 0..40 {
            let (run, knobs) = instantiate(&s, seed, SwarmMode::AsWritten);
            let knobs = knobs.unwrap();
            let (low, high) = run.network.latency_ms;
            assert!(1 <= low && low <= high && high <= 30, "seed {seed}: {low}..{high}");
            assert!(run.network.loss > 0.0 && run.network.loss <= 0.01, "seed {seed}: {}", run.network.loss);
            assert_eq!((knobs["network_latency_ms"], knobs["network_loss"]), (high as f64, run.network.loss));
            assert_eq!(run, instantiate(&s, seed, SwarmMode::AsWritten).0, "a function of the seed");
            // The as-run text carries the network: parsed again (a failure file's replay), the same run.
            assert_eq!(Scenario::parse(&run.text, "again.toml", "t").unwrap().network, run.network);
            highs.insert(high);
            losses.insert((run.network.loss * 10_000.0) as u64);
        }
        assert!(highs.len() > 10 && losses.len() > 10, "the values vary by seed");
        // Off: the scenario's own network.
        let off = with_swarm("network_latency_ms = 0\nworker_crash_probability = 0.1\n");
        assert_eq!(instantiate(&off, 1, SwarmMode::AsWritten).0.network.latency_ms, (1, 10));
    }

    #[test]
    fn timing_knobs_draw_the_run_timings_within_their_ranges_and_write_them_down() {
        let knobs =
            "timing_tick_ms = [20, 30]\ntiming_heartbeat_ms = [150, 250]\ntiming_worker_timeout_ms = [500, 900]\n";
        let s = with_swarm(knobs);
        let mut ticks = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let (run, knobs) = instantiate(&s, seed, SwarmMode::AsWritten);
            let (knobs, t) = (knobs.unwrap(), &run.job.timings);
            assert!((20..=30).contains(&t.tick_ms) && (150..=250).contains(&t.heartbeat_ms), "seed {seed}: {t:?}");
            assert!(t.worker_timeout_ms >= SWARM_HEARTBEATS_PER_TIMEOUT * t.heartbeat_ms, "seed {seed}: {t:?}");
            assert_eq!(knobs["timing_tick_ms"], t.tick_ms as f64, "the reported knob is the value drawn");
            assert_eq!(knobs["timing_worker_timeout_ms"], t.worker_timeout_ms as f64);
            assert_eq!(t.flush_ms, 50, "a timing no knob draws keeps its default");
            // The as-run text carries the timings: parsed again (a failure file's replay), the same job.
            assert_eq!(Scenario::parse(&run.text, "again.toml", "t").unwrap().job, run.job);
            assert_eq!(run, instantiate(&s, seed, SwarmMode::AsWritten).0, "a function of the seed");
            ticks.insert(t.tick_ms);
        }
        assert!(ticks.len() > 5, "the values vary by seed: {ticks:?}");
    }

    #[test]
    fn swarm_leaves_a_timing_the_scenario_pins_unless_it_lists_it() {
        let pinned = BASE.replace("[job.checkpoint]", "[timings]\ntick_ms = 40\nflush_ms = 7\n[job.checkpoint]");
        let s = Scenario::parse(&format!("{pinned}[swarm]\ntiming_flush_ms = [100, 200]\n"), "t", "t").unwrap();
        let mut drawn = std::collections::BTreeSet::new();
        for seed in 0..32 {
            let (run, _) = instantiate(&s, seed, SwarmMode::DrawKnobs);
            assert_eq!(run.job.timings.tick_ms, 40, "seed {seed}: pinned and not listed");
            let flush = run.job.timings.flush_ms;
            assert!(flush == 7 || (100..=200).contains(&flush), "seed {seed}: listed: {flush}");
            drawn.insert(run.job.timings.heartbeat_ms);
        }
        assert!(drawn.len() > 5, "a timing neither pinned nor listed is drawn from its swarm range: {drawn:?}");
    }

    #[test]
    fn unlisted_knobs_drop_the_expected_status_and_listed_ones_keep_it() {
        // Every knob listed (0 keeps it off) but store_crash_probability; every timing pinned in [timings].
        let table: String = KNOBS
            .iter()
            .chain(&NETWORK_KNOBS)
            .filter(|k| **k != "store_crash_probability")
            .map(|k| format!("{k} = {}\n", if *k == "worker_crash_probability" { 0.2 } else { 0.0 }))
            .collect();
        let pinned: String = TIMINGS.iter().map(|r| format!("{} = {}\n", r.name.name(), r.default)).collect();
        let text = format!("{BASE}[timings]\n{pinned}[expect]\nstatus = \"FINISHED\"\n[swarm]\n{table}");
        let s = Scenario::parse(&text, "t", "t").unwrap();
        assert_eq!(instantiate(&s, 1, SwarmMode::AsWritten).0.expect.status, Some(sluice_engine::JobStatus::Finished));
        let mut kept = 0;
        for seed in 0..32 {
            let (run, knobs) = instantiate(&s, seed, SwarmMode::DrawKnobs);
            let only_listed = knobs.unwrap().keys().all(|k| k == "worker_crash_probability");
            assert_eq!(run.expect.status.is_some(), only_listed, "seed {seed}");
            kept += usize::from(only_listed);
        }
        assert!(kept > 0 && kept < 32);
    }

    #[test]
    fn bad_knobs_are_refused_with_their_key() {
        for (table, key) in [
            ("worker_crash_probability = 1.5\n", "swarm.worker_crash_probability"),
            ("worker_meteor_probability = 0.1\n", "swarm.worker_meteor_probability"),
            ("window_ms = [5_000, 1_000]\n", "swarm.window_ms"),
            ("fault_ms = [0, 10]\n", "swarm.fault_ms"),
            ("step_ms = 0\n", "swarm.step_ms"),
            ("window_ms = [0, 29_000]\nstep_ms = 1\n", "swarm.step_ms"),
            ("network_latency_ms = 101\n", "swarm.network_latency_ms"),
            ("network_loss = 0.2\n", "swarm.network_loss"),
            ("timing_tick_ms = [30, 20]\n", "swarm.timing_tick_ms"),
            ("timing_tick_ms = [1, 20]\n", "swarm.timing_tick_ms"),
            ("timing_stream_window = [1, 5000]\n", "swarm.timing_stream_window"),
        ] {
            match Scenario::parse(&format!("{BASE}[swarm]\n{table}"), "t.toml", "t") {
                Err(ScenarioError::Invalid { key: k, .. }) => assert_eq!(k, key, "{table}"),
                other => panic!("{table}: expected an error, got {other:?}"),
            }
        }
        let no_checkpoint = BASE.replace("[job.checkpoint]\ninterval_ms = 1_000\ntimeout_ms = 500\n", "");
        let e = Scenario::parse(&format!("{no_checkpoint}[swarm]\ncheckpoint_fail_probability = 0.2\n"), "t", "t");
        assert!(matches!(e, Err(ScenarioError::Invalid { key, .. }) if key == "swarm.checkpoint_fail_probability"));
    }

    #[test]
    fn a_vertex_name_with_quotes_and_backslashes_is_quoted_in_the_drawn_faults() {
        let base = BASE.replace("name = \"in\"", "name = 'in\"\\x'");
        let knobs = "partition_end_probability = 0.5\npartition_duplicate_eot_probability = 0.5\n";
        let s = Scenario::parse(&format!("{base}[swarm]\n{knobs}"), "t.toml", "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.job.vertices[0].name, "in\"\\x");
        let drew = (0..10).map(|seed| instantiate(&s, seed, SwarmMode::AsWritten).0.faults.len()).sum::<usize>();
        assert!(drew > 0, "the knobs drew faults naming the quoted vertex, and they validated");
    }
}
