//! Sweeps: many seeds of many scenarios, spread over OS threads (one runtime per run), failures reported the moment
//! they are found.
//!
//! A sweep can be cut into shards (`--shard I/N`: the seeds whose index is I modulo N), so that disjoint shards run on
//! CI matrix jobs or a cluster's batch jobs, and their reports are joined with [`merge`]. A share of the seeds can be
//! run twice and their traces compared (`--check-determinism`): the first differing event is reported.

use crate::guide::{Guide, Lesson, GENERATION_SEEDS};
use crate::runner::{run_as_is_keeping, RunReport, Verdict};
use crate::scenario::Scenario;
use crate::swarm::{instantiate_drawn, instantiate_within, life_ms, SwarmMode};
use crate::trace::{render, TraceEntry, TraceKeep};
use serde::{Deserialize, Serialize};
use sluice_engine::{Canary, Point};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One failing run.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Failing {
    pub scenario: String,
    pub seed: u64,
    pub invariant: String,
    /// The knobs of a swarm run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<BTreeMap<String, f64>>,
}

/// A seed whose two runs differed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub scenario: String,
    pub seed: u64,
    /// Index of the first differing trace entry.
    pub index: usize,
    /// That entry in the first and in the second run, rendered (`null`: that trace had ended).
    pub first: Option<String>,
    pub second: Option<String>,
}

/// A shard of the seed space: the seeds whose index in the sweep is `index` modulo `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// At most this many seeds per scenario in one sweep: run indexes (scenarios × seeds) stay far from `u64::MAX`.
pub const MAX_SEEDS: u64 = 1_000_000_000_000;
/// At most this many shards of one sweep: `merge` can list the missing ones.
pub const MAX_SHARDS: u64 = 1_000_000;

impl Shard {
    /// Parses `I/N` (0 <= I < N <= [`MAX_SHARDS`]).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("shard {text:?} is not I/N"))?;
        let index: u64 = i.trim().parse().map_err(|_| format!("shard index {i:?} is not a number"))?;
        let count: u64 = n.trim().parse().map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {text:?}: need 0 <= I < N (shards are numbered from 0)"));
        }
        if count > MAX_SHARDS {
            return Err(format!("shard {text:?}: at most {MAX_SHARDS} shards"));
        }
        Ok(Shard { index, count })
    }

    /// How many seed indexes in 0..seeds belong to this shard.
    pub fn seed_count(&self, seeds: u64) -> u64 {
        assert!(self.index < self.count, "shard {}/{} out of range", self.index, self.count);
        if self.index >= seeds {
            0
        } else {
            (seeds - self.index - 1) / self.count + 1
        }
    }

    /// The shard's `n`-th seed index (n < [`Shard::seed_count`]), computed, never listed.
    pub fn seed_index(&self, n: u64) -> u64 {
        self.index + n * self.count
    }

    /// The seed indexes in 0..seeds that belong to this shard, lazily.
    pub fn seed_indexes(&self, seeds: u64) -> impl Iterator<Item = u64> + '_ {
        (0..self.seed_count(seeds)).map(|n| self.seed_index(n))
    }
}

/// What `sluice explore --json` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExploreReport {
    pub scenarios: usize,
    /// Seeds per scenario (of the whole sweep, all shards together).
    pub seeds: u64,
    pub first_seed: u64,
    pub runs: u64,
    pub failures: u64,
    pub failing: Vec<Failing>,
    pub seeds_per_sec: f64,
    pub sim_to_wall: f64,
    pub wall_ms: u64,
    /// Names of the scenarios swept, in order.
    pub scenario_names: Vec<String>,
    pub canaries: Vec<String>,
    /// Knobs drawn from the seed (`--swarm`).
    pub swarm: bool,
    /// Guided seeds (`--guided`): a seed's knobs depend on earlier seeds of the sweep.
    #[serde(default)]
    pub guided: bool,
    /// The shards this report covers (one for a shard's own report, all of them after `merge`).
    pub shards: Vec<Shard>,
    /// Runs repeated to compare traces, and the seeds whose traces differed.
    pub determinism_checked: u64,
    pub determinism_mismatches: Vec<Mismatch>,
    /// Per scenario, each coverage point and how many runs reached it. A point the scenario lists under
    /// `[expect] reaches` is present even when no run reached it (0 runs): that is a coverage gap.
    #[serde(default)]
    pub coverage: BTreeMap<String, BTreeMap<Point, u64>>,
    /// The points scenarios list under `[expect] reaches` that no run of the sweep reached.
    #[serde(default)]
    pub coverage_gaps: Vec<CoverageGap>,
}

/// A point a scenario lists under `[expect] reaches` that no run of the sweep reached.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CoverageGap {
    pub scenario: String,
    pub point: Point,
}

/// Counts, per scenario (by its index in the sweep) and point, the runs that reached it.
struct CoverageCounts(Mutex<Vec<[u64; Point::ALL.len()]>>);

impl CoverageCounts {
    fn new(scenarios: usize) -> CoverageCounts {
        CoverageCounts(Mutex::new(vec![[0; Point::ALL.len()]; scenarios]))
    }

    fn add(&self, scenario: usize, reached: &[Point]) {
        if reached.is_empty() {
            return;
        }
        let mut counts = self.0.lock().expect("coverage lock");
        for p in reached {
            counts[scenario][*p as usize] += 1;
        }
    }

    /// The report's map: the points reached, and the points each scenario lists even when unreached.
    fn into_map(self, scenarios: &[Scenario]) -> BTreeMap<String, BTreeMap<Point, u64>> {
        let counts = self.0.into_inner().expect("coverage lock");
        assert_eq!(counts.len(), scenarios.len(), "a row of counts per scenario");
        let mut map: BTreeMap<String, BTreeMap<Point, u64>> = BTreeMap::new();
        for (s, row) in scenarios.iter().zip(counts) {
            let points = map.entry(s.name.clone()).or_default();
            for (p, runs) in Point::ALL.iter().zip(row) {
                if runs > 0 || s.expect.reaches.contains(p) {
                    *points.entry(*p).or_default() += runs;
                }
            }
        }
        map
    }
}

/// The points listed and never reached: entries of 0 runs (only listed points have them).
fn coverage_gaps(coverage: &BTreeMap<String, BTreeMap<Point, u64>>) -> Vec<CoverageGap> {
    let mut gaps = Vec::new();
    for (scenario, points) in coverage {
        for (point, runs) in points {
            if *runs == 0 {
                gaps.push(CoverageGap { scenario: scenario.clone(), point: *point });
            }
        }
    }
    gaps
}

/// A sweep's parameters.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub seeds: u64,
    pub first_seed: u64,
    pub canaries: Vec<Canary>,
    pub threads: usize,
    pub swarm: SwarmMode,
    pub shard: Shard,
    /// Share of the seeds (0..=1) run twice to compare their traces.
    pub check_determinism: f64,
    /// Guided seeds (`--guided`, with `--swarm`): knobs favoured by what earlier generations reached (see
    /// [`crate::guide`]).
    pub guided: bool,
}

impl Sweep {
    /// A plain sweep: every seed, knobs as written, no determinism check.
    pub fn new(seeds: u64, first_seed: u64, canaries: Vec<Canary>, threads: usize) -> Sweep {
        Sweep {
            seeds,
            first_seed,
            canaries,
            threads,
            swarm: SwarmMode::AsWritten,
            shard: Shard { index: 0, count: 1 },
            check_determinism: 0.0,
            guided: false,
        }
    }
}

/// What a sweep reports as it goes.
pub enum Finding<'a> {
    /// A failing run: the scenario as written, as it ran (swarm faults materialized), and the report.
    Failure { scenario: &'a Scenario, as_run: &'a Scenario, report: &'a RunReport },
    /// A seed that ran differently twice.
    Nondeterministic(&'a Mismatch),
}

/// Whether a seed is one of the share `p` whose determinism is checked (a function of the seed alone, so every shard
/// and every rerun picks the same seeds).
pub fn determinism_checked(seed: u64, p: f64) -> bool {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 <= p.min(1.0) && p > 0.0
}

/// The first entry where two traces differ, if they do.
pub fn first_difference(a: &[TraceEntry], b: &[TraceEntry]) -> Option<(usize, Option<String>, Option<String>)> {
    let line = |e: Option<&TraceEntry>| e.map(|e| render(std::slice::from_ref(e)).trim_end().to_string());
    let index = (0..a.len().max(b.len())).find(|i| a.get(*i) != b.get(*i))?;
    Some((index, line(a.get(index)), line(b.get(index))))
}

/// Runs every scenario under every seed of the shard. `on_finding` is called (from a worker thread) for each failing
/// run and each nondeterministic seed as soon as it is found; `on_progress` after every run with (done, total).
pub fn explore(
    scenarios: &[Scenario],
    sweep: &Sweep,
    on_finding: &(dyn Fn(Finding) + Sync),
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> ExploreReport {
    explore_with(scenarios, sweep, &run_as_is_keeping, on_finding, on_progress)
}

/// How `explore_with` runs one seed: scenario, seed, canaries, how much trace to keep.
pub type RunFn<'a> = dyn Fn(&Scenario, u64, &[Canary], TraceKeep) -> RunReport + Sync + 'a;

/// [`explore`] with the run function given: the determinism self-check is tested with a run that is not.
pub fn explore_with(
    scenarios: &[Scenario],
    sweep: &Sweep,
    run: &RunFn<'_>,
    on_finding: &(dyn Fn(Finding) + Sync),
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> ExploreReport {
    assert!(sweep.seeds <= MAX_SEEDS, "the CLI refuses more than {MAX_SEEDS} seeds");
    let total = scenarios.len() as u64 * sweep.shard.seed_count(sweep.seeds);
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let sim_ms = AtomicU64::new(0);
    let checked = AtomicU64::new(0);
    let failing = Mutex::new(Vec::new());
    let mismatches = Mutex::new(Vec::new());
    let coverage = CoverageCounts::new(scenarios.len());
    // A swarm batch job's life is measured once per scenario: every seed draws within it.
    let lives: Vec<u64> = scenarios.iter().map(life_ms).collect();
    let threads = sweep.threads.max(1).min(total.max(1) as usize);
    let wall = Instant::now();
    // Unguided, one generation holds every run. Guided, a generation is GENERATION_SEEDS seeds of every scenario
    // (runs are seed-major, so a generation is a range of run indexes), and the guide learns between generations.
    let generation_runs = if sweep.guided { GENERATION_SEEDS * scenarios.len() as u64 } else { total.max(1) };
    let mut guide = Guide::new(scenarios.len());
    let lessons: Mutex<Vec<(usize, Lesson)>> = Mutex::new(Vec::new());
    let mut generation_start = 0;
    while generation_start < total {
        let generation_end = (generation_start + generation_runs).min(total);
        next.store(generation_start, Ordering::SeqCst);
        let guide_now = &guide;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= generation_end {
                        break;
                    }
                    // Seed-major order: the first seeds of every scenario come first.
                    let scenario_index = (i % scenarios.len() as u64) as usize;
                    let scenario = &scenarios[scenario_index];
                    let index = sweep.shard.seed_index(i / scenarios.len() as u64);
                    let seed = sweep.first_seed.wrapping_add(index);
                    // Guided: the knobs the guide chooses from the seed's own draw and what earlier generations reached.
                    let chosen = match (&scenario.swarm, sweep.guided) {
                        (Some(swarm), true) => {
                            Some(guide_now.knobs(scenario_index, &swarm.redraw(scenario, seed), seed).0)
                        }
                        _ => None,
                    };
                    let (as_run, knobs) = match &chosen {
                        Some(chosen) => instantiate_drawn(scenario, seed, chosen, lives[scenario_index]),
                        None => instantiate_within(scenario, seed, sweep.swarm, lives[scenario_index]),
                    };
                    // A run keeps no trace (the checkers judged it as it went; a failure is replayed from its file),
                    // unless the determinism check will compare it entry by entry. Keeping the last 2,000 entries,
                    // as before, cost a sweep 1.3 % of its instructions in moving and dropping entries nobody read.
                    let checks_determinism = determinism_checked(seed, sweep.check_determinism);
                    let keep = if checks_determinism { TraceKeep::All } else { TraceKeep::Recent(1) };
                    let mut report = run(&as_run, seed, &sweep.canaries, keep);
                    report.swarm = knobs.clone();
                    sim_ms.fetch_add(report.sim_ms, Ordering::Relaxed);
                    coverage.add(scenario_index, &report.coverage);
                    if let Some(knobs) = chosen {
                        let lesson = Lesson { order: i, knobs, reached: report.coverage.clone() };
                        lessons.lock().expect("lessons lock").push((scenario_index, lesson));
                    }
                    if report.verdict == Verdict::Fail {
                        on_finding(Finding::Failure { scenario, as_run: &as_run, report: &report });
                        failing.lock().expect("failing lock").push(Failing {
                            scenario: scenario.name.clone(),
                            seed,
                            invariant: report.first_invariant().unwrap_or_default().to_string(),
                            swarm: knobs,
                        });
                    }
                    if checks_determinism {
                        let again = run(&as_run, seed, &sweep.canaries, TraceKeep::All);
                        sim_ms.fetch_add(again.sim_ms, Ordering::Relaxed);
                        checked.fetch_add(1, Ordering::Relaxed);
                        let differs = again.trace_hash != report.trace_hash || again.violations != report.violations;
                        if differs {
                            let (index, first, second) = first_difference(&report.trace, &again.trace).unwrap_or((
                                report.trace.len(),
                                Some("(same trace, other verdict)".into()),
                                None,
                            ));
                            let m = Mismatch { scenario: scenario.name.clone(), seed, index, first, second };
                            on_finding(Finding::Nondeterministic(&m));
                            mismatches.lock().expect("mismatch lock").push(m);
                        }
                    }
                    let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                    on_progress(d, total);
                });
            }
        });
        // The generation is complete: the guide learns from it in seed order, whichever thread ran what.
        let mut learned = std::mem::take(&mut *lessons.lock().expect("lessons lock"));
        learned.sort_by_key(|(_, l)| l.order);
        for scenario_index in 0..scenarios.len() {
            let row: Vec<Lesson> =
                learned.iter().filter(|(k, _)| *k == scenario_index).map(|(_, l)| l.clone()).collect();
            if !row.is_empty() {
                guide.learn(scenario_index, &row);
            }
        }
        generation_start = generation_end;
    }
    let wall_s = wall.elapsed().as_secs_f64().max(1e-9);
    let failing = failing.into_inner().expect("failing lock");
    let determinism_mismatches = mismatches.into_inner().expect("mismatch lock");
    let coverage = coverage.into_map(scenarios);
    let mut report = ExploreReport {
        scenarios: scenarios.len(),
        seeds: sweep.seeds,
        first_seed: sweep.first_seed,
        runs: total,
        failures: failing.len() as u64,
        failing,
        seeds_per_sec: total as f64 / wall_s,
        sim_to_wall: sim_ms.load(Ordering::Relaxed) as f64 / 1000.0 / wall_s,
        wall_ms: (wall_s * 1000.0) as u64,
        scenario_names: scenarios.iter().map(|s| s.name.clone()).collect(),
        canaries: sweep.canaries.iter().map(|c| c.name().to_string()).collect(),
        swarm: sweep.swarm == SwarmMode::DrawKnobs,
        guided: sweep.guided,
        shards: vec![sweep.shard],
        determinism_checked: checked.load(Ordering::Relaxed),
        determinism_mismatches,
        coverage_gaps: coverage_gaps(&coverage),
        coverage,
    };
    report.sort_findings();
    report
}

impl ExploreReport {
    /// Failing runs and mismatches in (scenario, seed) order, whichever thread or shard found them.
    fn sort_findings(&mut self) {
        self.failing.sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
        self.determinism_mismatches.sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
    }
}

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("report {index} is another sweep: its {what} differs from the first report's")]
    OtherSweep { index: usize, what: &'static str },
    #[error("shard {}/{} appears twice", .0.index, .0.count)]
    Overlap(Shard),
    #[error("shards of different counts cannot be joined ({0} and {1})")]
    Counts(u64, u64),
    #[error("report {index} names shard {}/{}, not a shard of at most {MAX_SHARDS}", .shard.index, .shard.count)]
    BadShard { index: usize, shard: Shard },
}

/// Joins the reports of disjoint shards of one sweep. The result says which shards it covers; a missing shard is
/// not an error here (the caller reports it), an overlapping one is.
pub fn merge(reports: &[ExploreReport]) -> Result<ExploreReport, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    for (index, r) in reports.iter().enumerate() {
        if let Some(shard) = r.shards.iter().find(|s| s.count == 0 || s.count > MAX_SHARDS || s.index >= s.count) {
            return Err(MergeError::BadShard { index, shard: *shard });
        }
    }
    let mut out = first.clone();
    for (index, r) in reports.iter().enumerate().skip(1) {
        let same: [(&'static str, bool); 6] = [
            ("scenario list", r.scenario_names == first.scenario_names),
            ("seed count", r.seeds == first.seeds),
            ("first seed", r.first_seed == first.first_seed),
            ("canary list", r.canaries == first.canaries),
            ("swarm flag", r.swarm == first.swarm),
            ("guided flag (a guided sweep is not comparable with an unguided one)", r.guided == first.guided),
        ];
        if let Some((what, _)) = same.iter().find(|(_, same)| !same) {
            return Err(MergeError::OtherSweep { index, what });
        }
        for shard in &r.shards {
            if out.shards.contains(shard) {
                return Err(MergeError::Overlap(*shard));
            }
            if let Some(other) = out.shards.iter().find(|s| s.count != shard.count) {
                return Err(MergeError::Counts(other.count, shard.count));
            }
            out.shards.push(*shard);
        }
        out.runs += r.runs;
        out.failures += r.failures;
        out.failing.extend(r.failing.iter().cloned());
        out.wall_ms += r.wall_ms;
        out.determinism_checked += r.determinism_checked;
        out.determinism_mismatches.extend(r.determinism_mismatches.iter().cloned());
        for (scenario, points) in &r.coverage {
            let into = out.coverage.entry(scenario.clone()).or_default();
            for (point, runs) in points {
                *into.entry(*point).or_default() += runs;
            }
        }
        // Rates of disjoint work: runs over the summed wall time of the shards (what one machine would achieve).
        let (w0, w1) = (out.wall_ms.saturating_sub(r.wall_ms) as f64, r.wall_ms as f64);
        out.sim_to_wall = (out.sim_to_wall * w0 + r.sim_to_wall * w1) / (w0 + w1).max(1e-9);
    }
    out.shards.sort();
    out.sort_findings();
    out.coverage_gaps = coverage_gaps(&out.coverage);
    out.seeds_per_sec = out.runs as f64 / (out.wall_ms as f64 / 1000.0).max(1e-9);
    Ok(out)
}

/// The shards of `count` a merged report lacks (its shards are valid: [`merge`] checked them).
pub fn missing_shards(report: &ExploreReport) -> Vec<Shard> {
    let Some(count) = report.shards.first().map(|s| s.count) else { return Vec::new() };
    assert!(count <= MAX_SHARDS, "merge refuses shard counts above {MAX_SHARDS}");
    let present: std::collections::BTreeSet<u64> = report.shards.iter().map(|s| s.index).collect();
    (0..count).filter(|index| !present.contains(index)).map(|index| Shard { index, count }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_seed_space() {
        let mut all: Vec<u64> =
            (0..4).flat_map(|i| Shard { index: i, count: 4 }.seed_indexes(10).collect::<Vec<_>>()).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2", "0/1000001", "0/18446744073709551615"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let far = Shard { index: 7, count: MAX_SHARDS };
        assert_eq!(far.seed_count(MAX_SEEDS), MAX_SEEDS / MAX_SHARDS, "counted, never listed");
        assert_eq!(far.seed_index(far.seed_count(MAX_SEEDS) - 1), MAX_SEEDS - MAX_SHARDS + 7);
        assert_eq!(Shard { index: 3, count: 4 }.seed_count(3), 0);
        assert_eq!(Shard { index: 0, count: 1 }.seed_count(5), 5);
    }

    #[test]
    fn the_determinism_share_is_about_p_and_a_function_of_the_seed() {
        let n = (0..10_000).filter(|s| determinism_checked(*s, 0.1)).count();
        assert!((800..1200).contains(&n), "{n}");
        assert_eq!((0..100).filter(|s| determinism_checked(*s, 1.0)).count(), 100);
        assert_eq!((0..100).filter(|s| determinism_checked(*s, 0.0)).count(), 0);
    }

    fn report(shard: u64, failing: &[u64]) -> ExploreReport {
        ExploreReport {
            scenarios: 1,
            seeds: 10,
            first_seed: 0,
            runs: 5,
            failures: failing.len() as u64,
            failing: failing
                .iter()
                .map(|s| Failing { scenario: "x".into(), seed: *s, invariant: "exactly-once".into(), swarm: None })
                .collect(),
            seeds_per_sec: 5.0,
            sim_to_wall: 100.0,
            wall_ms: 1000,
            scenario_names: vec!["x".into()],
            canaries: vec![],
            swarm: false,
            guided: false,
            shards: vec![Shard { index: shard, count: 2 }],
            determinism_checked: 1,
            determinism_mismatches: vec![],
            coverage: BTreeMap::new(),
            coverage_gaps: vec![],
        }
    }

    #[test]
    fn merge_joins_disjoint_shards_and_refuses_overlaps_and_other_sweeps() {
        let m = merge(&[report(1, &[3]), report(0, &[2])]).unwrap();
        assert_eq!((m.runs, m.failures, m.wall_ms, m.determinism_checked), (10, 2, 2000, 2));
        assert_eq!(m.failing.iter().map(|f| f.seed).collect::<Vec<_>>(), vec![2, 3]);
        assert!(missing_shards(&m).is_empty());
        assert_eq!(missing_shards(&report(1, &[])), vec![Shard { index: 0, count: 2 }]);
        assert_eq!(
            merge(&[report(0, &[]), report(0, &[])]).unwrap_err(),
            MergeError::Overlap(Shard { index: 0, count: 2 })
        );
        let mut other = report(1, &[]);
        other.seeds = 11;
        assert!(matches!(merge(&[report(0, &[]), other]), Err(MergeError::OtherSweep { what: "seed count", .. })));
        let guided = ExploreReport { guided: true, ..report(1, &[]) };
        let refused = merge(&[report(0, &[]), guided]);
        assert!(matches!(refused, Err(MergeError::OtherSweep { what, .. }) if what.starts_with("guided flag")));
        assert_eq!(merge(&[]).unwrap_err(), MergeError::Empty);
        // Coverage adds up over shards; a listed point reached in one shard is no gap of the whole.
        let (mut a, mut b) = (report(0, &[]), report(1, &[]));
        a.coverage.insert("x".into(), BTreeMap::from([(Point::CancelUnconfirmed, 0), (Point::LateDeployDropped, 2)]));
        b.coverage.insert("x".into(), BTreeMap::from([(Point::CancelUnconfirmed, 3)]));
        let m = merge(&[a.clone(), b]).unwrap();
        assert_eq!(m.coverage["x"], BTreeMap::from([(Point::CancelUnconfirmed, 3), (Point::LateDeployDropped, 2)]));
        assert!(m.coverage_gaps.is_empty());
        let alone = merge(&[a]).unwrap();
        assert_eq!(alone.coverage_gaps, vec![CoverageGap { scenario: "x".into(), point: Point::CancelUnconfirmed }]);
        let mut huge = report(0, &[]);
        huge.shards = vec![Shard { index: 0, count: 1_000_000_000_000 }];
        assert!(matches!(merge(&[huge]), Err(MergeError::BadShard { index: 0, .. })));
    }
}
