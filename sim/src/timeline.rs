//! `--html OUT` (`run`, `replay`): one self-contained HTML page that shows a run instead of listing it.
//!
//! The page is the run's [`Timeline`] as JSON plus a small script (`timeline.js`) and style sheet (`timeline.css`),
//! all inline: no network, no CDN. It draws, over simulated time:
//! - the job status read from the engine's `status-changed` events, as coloured bands;
//! - the faults the harness applied, paired into intervals (`crash`…`restart`, `isolate`…`heal`, `clog`…`unclog`,
//!   `slow`…`unslow`, `pause`…`resume`) or marked as instants, on a lane of their own and over the nodes they hit;
//! - the checkpoints, from trigger to completion or failure, coloured by outcome;
//! - a lane per node with its executions (task and attempt, coloured by attempt, outlined by outcome);
//! - per partition, the highest offset produced and the records committed, as steps over time (the first 32
//!   partitions; the page says how many more there are);
//! - the first violation as a red line where it happened, with its invariant and detail (the others thinner).
//!
//! Wheel to zoom, drag to pan, double-click to reset; every mark has its details on hover. The timeline is built from
//! the trace alone (the same entries the checkers judge), so it needs the whole trace: a run asked for HTML keeps it.

use crate::fault::Action;
use crate::runner::RunReport;
use crate::trace::{TraceEntry, TraceEvent, TraceObserver};
use serde::Serialize;
use sluice_engine::{Event, ExecOutcome};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Points kept per partition series at most: enough for a screen, bounded however long the run.
const MAX_POINTS: usize = 2_000;
/// Partitions drawn at most (the lowest-numbered); a job may have 1024, and a page of 1024 charts shows nothing.
const MAX_PARTITION_CHARTS: usize = 32;

/// A run as the page draws it (embedded as JSON; the field names are the script's).
#[derive(Debug, Default, Serialize)]
pub struct Timeline {
    pub title: String,
    pub scenario: String,
    pub seed: u64,
    pub canaries: Vec<String>,
    pub verdict: String,
    pub status: String,
    pub trace_hash: String,
    pub end_ms: f64,
    pub lanes: Vec<String>,
    pub status_bands: Vec<Band>,
    pub executions: Vec<Execution>,
    pub faults: Vec<FaultMark>,
    pub checkpoints: Vec<Checkpoint>,
    pub partitions: Vec<Series>,
    /// Partitions with records that are not drawn (beyond [`MAX_PARTITION_CHARTS`]).
    pub partitions_omitted: usize,
    pub violations: Vec<Mark>,
}

#[derive(Debug, Serialize)]
pub struct Band {
    pub from_ms: f64,
    pub to_ms: f64,
    pub status: String,
    pub cause: String,
}

#[derive(Debug, Serialize)]
pub struct Execution {
    pub node: String,
    pub task: String,
    pub attempt: u32,
    pub from_ms: f64,
    pub to_ms: f64,
    /// `finished`, `paused`, `failed`, `canceled`, `lost` (its node was killed), or `running` (live at the end).
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct FaultMark {
    pub label: String,
    /// The nodes it hits (empty for faults of the job or the source system).
    pub nodes: Vec<String>,
    pub from_ms: f64,
    /// Equal to `from_ms` for an instant fault; the end of the run for one never healed.
    pub to_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Checkpoint {
    pub attempt: u32,
    pub epoch: u64,
    pub is_final: bool,
    pub from_ms: f64,
    pub to_ms: f64,
    /// `completed`, `failed` or `pending`.
    pub outcome: String,
    pub detail: String,
}

/// One partition: the highest offset produced (+1) and the records committed, as (ms, value) steps.
#[derive(Debug, Serialize)]
pub struct Series {
    pub partition: u32,
    pub produced: Vec<(f64, u64)>,
    pub committed: Vec<(f64, u64)>,
}

#[derive(Debug, Serialize)]
pub struct Mark {
    pub at_ms: f64,
    pub invariant: String,
    pub detail: String,
}

/// The page of `report`, read from its trace (which must be whole: see the module's documentation).
pub fn render_html(report: &RunReport) -> String {
    render(&Timeline::of(report))
}

/// The page of a timeline.
pub fn render(timeline: &Timeline) -> String {
    // Inside a script element `</script` ends it and `<!--` changes how it is parsed: a scenario's name or a
    // violation's detail may carry either. `<` occurs in JSON only inside strings, where `\u003c` means the same.
    let data = serde_json::to_string(timeline).expect("timelines serialize").replace('<', "\\u003c");
    let title = html_escape(&timeline.title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>\n{css}</style>\n</head>\n<body>\n<div id=\"sluice-timeline\"></div>\n\
         <script id=\"sluice-data\" type=\"application/json\">{data}</script>\n<script>\n{js}</script>\n</body>\n</html>\n",
        css = include_str!("timeline.css"),
        js = include_str!("timeline.js"),
    )
}

/// Builds a timeline entry by entry as a run records them, so that a run drawn need not keep its trace (a long run's
/// trace is hundreds of megabytes; its timeline is bounded: series are thinned, partitions capped).
#[derive(Default)]
pub struct TimelineBuilder {
    t: Timeline,
    open: Open,
    series: BTreeMap<u32, SeriesBuilder>,
    nodes: BTreeSet<String>,
    last_ms: f64,
}

impl TimelineBuilder {
    pub fn new() -> TimelineBuilder {
        TimelineBuilder::default()
    }

    pub fn on_entry(&mut self, entry: &TraceEntry) {
        let at = ms(entry.at_us);
        assert!(at >= self.last_ms, "trace entries come in order of simulated time");
        self.last_ms = at;
        if !self.nodes.contains(&*entry.node) {
            self.nodes.insert(entry.node.to_string());
        }
        match &entry.event {
            TraceEvent::Engine(event) => self.t.on_event(&mut self.open, &mut self.series, entry, at, event),
            TraceEvent::Fault(action) => self.t.on_fault(&mut self.open, at, action),
            TraceEvent::Observed { .. } | TraceEvent::Alerted { .. } => {}
        }
    }

    /// The timeline of the run that `report` judged.
    pub fn finish(self, report: &RunReport) -> Timeline {
        let TimelineBuilder { mut t, open, series, nodes, last_ms } = self;
        let end_ms = last_ms.max(report.sim_ms as f64);
        t.title = format!("sluice: {} seed {} ({})", report.scenario, report.seed, verdict_name(report));
        t.scenario = report.scenario.clone();
        t.seed = report.seed;
        t.canaries = report.canaries.clone();
        t.verdict = verdict_name(report).to_string();
        t.status = report.status.map_or("unknown".into(), |s| s.to_string());
        t.trace_hash = report.trace_hash.clone();
        t.end_ms = end_ms;
        t.lanes = lanes(nodes);
        t.violations = report
            .violations
            .iter()
            .map(|v| Mark { at_ms: v.at_ms as f64, invariant: v.invariant.clone(), detail: v.detail.clone() })
            .collect();
        t.close_all(open, end_ms);
        t.partitions_omitted = series.len().saturating_sub(MAX_PARTITION_CHARTS);
        t.partitions =
            series.into_iter().take(MAX_PARTITION_CHARTS).map(|(partition, b)| b.finish(partition, end_ms)).collect();
        t
    }
}

/// A builder shared between the recorder (which feeds it) and the caller (which takes the timeline).
#[derive(Clone, Default)]
pub struct SharedTimeline(pub Arc<Mutex<TimelineBuilder>>);

impl TraceObserver for SharedTimeline {
    fn on_entry(&mut self, entry: &TraceEntry) {
        self.0.lock().expect("timeline lock").on_entry(entry);
    }
}

impl SharedTimeline {
    /// The timeline of the run `report` judged (the builder starts over empty).
    pub fn finish(&self, report: &RunReport) -> Timeline {
        std::mem::take(&mut *self.0.lock().expect("timeline lock")).finish(report)
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn ms(at_us: u64) -> f64 {
    at_us as f64 / 1000.0
}

/// What is open while the trace is read: intervals wait for the entry that closes them.
#[derive(Default)]
struct Open {
    status: Option<(f64, String, String)>,
    executions: BTreeMap<(String, String, u32), f64>,
    faults: BTreeMap<String, (f64, String, Vec<String>)>,
    checkpoints: BTreeMap<(u32, u64), (f64, bool)>,
}

impl Timeline {
    /// Reads the trace of `report` into a timeline.
    pub fn of(report: &RunReport) -> Timeline {
        let mut builder = TimelineBuilder::new();
        for entry in &report.trace {
            builder.on_entry(entry);
        }
        builder.finish(report)
    }

    fn on_event(
        &mut self,
        open: &mut Open,
        series: &mut BTreeMap<u32, SeriesBuilder>,
        entry: &TraceEntry,
        at: f64,
        event: &Event,
    ) {
        match event {
            Event::StatusChanged { from, to, cause } => {
                match open.status.take() {
                    Some((from_ms, status, cause)) => {
                        self.status_bands.push(Band { from_ms, to_ms: at, status, cause })
                    }
                    // The status the job had from the start (`CREATED`) until its first change.
                    None => {
                        let (status, cause) = (from.to_string(), "the job's status from the start".to_string());
                        self.status_bands.push(Band { from_ms: 0.0, to_ms: at, status, cause });
                    }
                }
                open.status = Some((at, to.to_string(), cause.clone()));
            }
            Event::ExecutionStarted { task, attempt } => {
                open.executions.insert((entry.node.to_string(), task.to_string(), *attempt), at);
            }
            Event::ExecutionEnded { task, attempt, outcome } => {
                let key = (entry.node.to_string(), task.to_string(), *attempt);
                let from_ms = open.executions.remove(&key).unwrap_or(at);
                let (outcome, detail) = match outcome {
                    ExecOutcome::Finished => ("finished", String::new()),
                    ExecOutcome::Paused => ("paused", String::new()),
                    ExecOutcome::Failed(why) => ("failed", why.clone()),
                    ExecOutcome::Canceled(why) => ("canceled", why.clone()),
                };
                let (node, task, attempt) = key;
                let outcome = outcome.to_string();
                self.executions.push(Execution { node, task, attempt, from_ms, to_ms: at, outcome, detail });
            }
            Event::CheckpointTriggered { attempt, epoch, is_final } => {
                open.checkpoints.insert((*attempt, *epoch), (at, *is_final));
            }
            Event::CheckpointCompleted { attempt, epoch, .. } => {
                self.close_checkpoint(open, *attempt, *epoch, at, "completed", String::new());
            }
            Event::CheckpointFailed { attempt, epoch, reason, detail, .. } => {
                let detail = format!("{reason}: {detail}");
                self.close_checkpoint(open, *attempt, *epoch, at, "failed", detail);
            }
            Event::Emitted { id, .. } => series.entry(id.partition).or_default().produce(at, id.offset),
            Event::Committed { id, .. } => series.entry(id.partition).or_default().commit(at, id.offset),
            _ => {}
        }
    }

    fn close_checkpoint(&mut self, open: &mut Open, attempt: u32, epoch: u64, at: f64, outcome: &str, detail: String) {
        let Some((from_ms, is_final)) = open.checkpoints.remove(&(attempt, epoch)) else {
            return; // a checkpoint triggered before the kept part of the trace
        };
        let outcome = outcome.to_string();
        self.checkpoints.push(Checkpoint { attempt, epoch, is_final, from_ms, to_ms: at, outcome, detail });
    }

    fn on_fault(&mut self, open: &mut Open, at: f64, action: &Action) {
        let nodes: Vec<String> = action.nodes().iter().map(|n| n.label()).collect();
        if let Action::Crash { node } | Action::Restart { node } = action {
            // A killed node reports nothing more: its executions end here.
            self.lose_executions(open, &node.label(), at, &action.describe());
        }
        let label = action.describe();
        match pairing(action) {
            Pairing::Opens(key) => {
                if let Some((from_ms, label, nodes)) = open.faults.remove(&key) {
                    self.faults.push(FaultMark { label, nodes, from_ms, to_ms: at });
                    // opened twice: the first ends
                }
                open.faults.insert(key, (at, label, nodes));
            }
            Pairing::Closes(key) => match open.faults.remove(&key) {
                Some((from_ms, opened, nodes)) => {
                    let label = format!("{opened} … {label}");
                    self.faults.push(FaultMark { label, nodes, from_ms, to_ms: at });
                }
                None => self.faults.push(FaultMark { label, nodes, from_ms: at, to_ms: at }),
            },
            Pairing::Instant => self.faults.push(FaultMark { label, nodes, from_ms: at, to_ms: at }),
        }
    }

    fn lose_executions(&mut self, open: &mut Open, node: &str, at: f64, why: &str) {
        let lost: Vec<(String, String, u32)> = open.executions.keys().filter(|k| k.0 == node).cloned().collect();
        for key in lost {
            let from_ms = open.executions.remove(&key).expect("listed");
            let (node, task, attempt) = key;
            let (outcome, detail) = ("lost".to_string(), format!("its node went down ({why})"));
            self.executions.push(Execution { node, task, attempt, from_ms, to_ms: at, outcome, detail });
        }
    }

    /// Whatever is still open at the end of the run ends there.
    fn close_all(&mut self, open: Open, end_ms: f64) {
        if let Some((from_ms, status, cause)) = open.status {
            self.status_bands.push(Band { from_ms, to_ms: end_ms, status, cause });
        }
        for ((node, task, attempt), from_ms) in open.executions {
            let (outcome, detail) = ("running".to_string(), "still running when the run ended".to_string());
            self.executions.push(Execution { node, task, attempt, from_ms, to_ms: end_ms, outcome, detail });
        }
        for (_, (from_ms, label, nodes)) in open.faults {
            self.faults.push(FaultMark { label: format!("{label} (not healed)"), nodes, from_ms, to_ms: end_ms });
        }
        for ((attempt, epoch), (from_ms, is_final)) in open.checkpoints {
            let (outcome, detail) = ("pending".to_string(), "neither completed nor failed".to_string());
            self.checkpoints.push(Checkpoint { attempt, epoch, is_final, from_ms, to_ms: end_ms, outcome, detail });
        }
        self.faults.sort_by(|a, b| a.from_ms.total_cmp(&b.from_ms));
        self.executions.sort_by(|a, b| a.from_ms.total_cmp(&b.from_ms));
    }
}

fn verdict_name(report: &RunReport) -> &'static str {
    if report.violations.is_empty() {
        "pass"
    } else {
        "FAIL"
    }
}

/// How a fault action pairs with another into an interval.
enum Pairing {
    Opens(String),
    Closes(String),
    Instant,
}

fn pairing(action: &Action) -> Pairing {
    let link = |from: &sluice_engine::net::NodeName, to: &sluice_engine::net::NodeName| {
        format!("{}>{}", from.label(), to.label())
    };
    match action {
        Action::Crash { node } => Pairing::Opens(format!("down {}", node.label())),
        Action::Restart { node } => Pairing::Closes(format!("down {}", node.label())),
        Action::Isolate { node } => Pairing::Opens(format!("isolated {}", node.label())),
        Action::Heal { node } => Pairing::Closes(format!("isolated {}", node.label())),
        Action::Clog { from, to } => Pairing::Opens(format!("clog {}", link(from, to))),
        Action::Unclog { from, to } => Pairing::Closes(format!("clog {}", link(from, to))),
        Action::Slow { from, to, .. } => Pairing::Opens(format!("slow {}", link(from, to))),
        Action::Unslow { from, to } => Pairing::Closes(format!("slow {}", link(from, to))),
        Action::Pause => Pairing::Opens("pause".into()),
        Action::Resume => Pairing::Closes("pause".into()),
        _ => Pairing::Instant,
    }
}

/// Node lanes in a fixed order: coordinator, platform, store, the workers by number, client; then any other.
fn lanes(names: BTreeSet<String>) -> Vec<String> {
    let rank = |n: &str| -> (u8, u32, String) {
        match n {
            "coordinator" => (0, 0, String::new()),
            "platform" => (1, 0, String::new()),
            "store" => (2, 0, String::new()),
            "client" => (4, 0, String::new()),
            _ => match n.strip_prefix("worker-").and_then(|k| k.parse().ok()) {
                Some(k) => (3, k, String::new()),
                None => (5, 0, n.to_string()),
            },
        }
    };
    let mut lanes: Vec<String> = names.into_iter().filter(|n| n != "sim").collect();
    lanes.sort_by_key(|n| rank(n));
    lanes
}

/// One partition's steps as the trace goes, thinned to [`MAX_POINTS`] at the end.
#[derive(Default)]
struct SeriesBuilder {
    produced_upto: u64,
    produced: Vec<(f64, u64)>,
    committed_offsets: BTreeSet<u64>,
    committed: Vec<(f64, u64)>,
}

impl SeriesBuilder {
    fn produce(&mut self, at: f64, offset: u64) {
        if offset + 1 > self.produced_upto {
            self.produced_upto = offset + 1;
            push_step(&mut self.produced, at, self.produced_upto);
        }
    }

    fn commit(&mut self, at: f64, offset: u64) {
        if self.committed_offsets.insert(offset) {
            push_step(&mut self.committed, at, self.committed_offsets.len() as u64);
        }
    }

    fn finish(self, partition: u32, end_ms: f64) -> Series {
        Series { partition, produced: thin(self.produced, end_ms), committed: thin(self.committed, end_ms) }
    }
}

/// Adds a step; several at one instant keep the last value.
fn push_step(points: &mut Vec<(f64, u64)>, at: f64, value: u64) {
    match points.last_mut() {
        Some(last) if last.0 == at => last.1 = value,
        _ => points.push((at, value)),
    }
}

/// Keeps the last point of each of [`MAX_POINTS`] equal slices of the run (a step chart loses nothing a screen
/// shows), and always the last point.
fn thin(points: Vec<(f64, u64)>, end_ms: f64) -> Vec<(f64, u64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let slice_ms = (end_ms / MAX_POINTS as f64).max(f64::MIN_POSITIVE);
    let mut kept: Vec<(f64, u64)> = Vec::with_capacity(MAX_POINTS + 1);
    for p in points {
        match kept.last_mut() {
            Some(last) if (last.0 / slice_ms).floor() == (p.0 / slice_ms).floor() => *last = p,
            _ => kept.push(p),
        }
    }
    assert!(kept.len() <= MAX_POINTS + 1, "thinned to {} points", kept.len());
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_last_point_of_each_slice_and_the_end() {
        let points: Vec<(f64, u64)> = (0..10_000).map(|i| (i as f64, i as u64 + 1)).collect();
        let kept = thin(points, 10_000.0);
        assert!(kept.len() <= MAX_POINTS + 1);
        assert_eq!(kept.last(), Some(&(9_999.0, 10_000)), "the final value stays");
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "in order");
        let few = vec![(1.0, 1), (2.0, 2)];
        assert_eq!(thin(few.clone(), 10.0), few, "short series are kept as they are");
    }

    #[test]
    fn text_from_the_run_cannot_end_the_script_or_the_title() {
        let hostile = "a </script><!-- <script>alert(1)</script> & \"q\"";
        let timeline = Timeline {
            title: hostile.to_string(),
            violations: vec![Mark { at_ms: 1.0, invariant: "x".into(), detail: hostile.to_string() }],
            ..Timeline::default()
        };
        let page = render(&timeline);
        let open = r#"<script id="sluice-data" type="application/json">"#;
        let start = page.find(open).expect("the data script") + open.len();
        let end = start + page[start..].find("</script>").expect("its end");
        let data: serde_json::Value = serde_json::from_str(&page[start..end]).expect("the whole data is JSON");
        assert_eq!(data["violations"][0]["detail"], hostile, "the text comes back as it was");
        assert!(!page[start..end].contains('<'), "no `<` inside the data");
        assert!(page.contains(
            "<title>a &lt;/script&gt;&lt;!-- &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</title>"
        ));
    }

    #[test]
    fn steps_at_one_instant_keep_the_last_value() {
        let mut points = Vec::new();
        push_step(&mut points, 1.0, 1);
        push_step(&mut points, 1.0, 3);
        push_step(&mut points, 2.0, 4);
        assert_eq!(points, vec![(1.0, 3), (2.0, 4)]);
    }
}
