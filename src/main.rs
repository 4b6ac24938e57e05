//! `sluice`: the command line of the harness.
//!
//! - `sluice run SCENARIO [--seed N] [--canary NAME]... [--json] [--trace] [--buggify] [--log FILTER] [--html OUT]`:
//!   one run, judged.
//! - `sluice explore SCENARIO|DIR... [--seeds N] [--first-seed S] [--canary NAME]... [--threads T] [--json]
//!   [--swarm] [--buggify] [--shard I/N] [--check-determinism P] [--failures DIR] [--corpus DIR]
//!   [--max-failure-files N] [--require-coverage] [--guided]`:
//!   a sweep; every failing run is written as a failure file the moment it is found.
//! - `sluice replay FILE [--json] [--trace] [--bisect] [--log FILTER] [--html OUT]`: reruns a failure file.
//! - `sluice shrink FILE [--out FILE] [--max-runs N] [--json]`: minimizes a failure file.
//! - `sluice merge REPORT.json... [--json] [--partial]`: joins the JSON reports of the shards of one sweep (all of
//!   them unless `--partial`).
//! - `sluice canaries [--json]`: the canaries this engine carries.
//! - `sluice bench [--seeds N] [--threads T] [--json]`: seeds per second of a fixed set of shipped scenarios against
//!   a raw-madsim baseline of the same message volume (exit 1 if a benchmarked run failed).
//!
//! Exit codes: 0 every run passed, 1 an invariant was violated, 2 usage or scenario error; `shrink`: 0 it wrote a
//! minimal failure, 1 the failure does not reproduce. `replay --bisect` maps its
//! verdicts for `git bisect run`: 0 passes (good), 1 the same invariant fails (bad), 125 anything else (skip).

#[macro_use]
mod output;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_engine::Canary;
use sluice_sim::explore::{missing_shards, MAX_SEEDS};
use sluice_sim::failure;
use sluice_sim::shrink::{shrink, ShrinkError, Size};
use sluice_sim::swarm::SwarmMode;
use sluice_sim::timeline::{SharedTimeline, Timeline};
use sluice_sim::trace::{TraceKeep, RECENT_ENTRIES};
use sluice_sim::{
    explore, merge, replay, replay_command, run_watched, ExploreReport, Failure, Finding, ReplayOutcome, RunReport,
    Scenario, Shard, Sweep, Verdict,
};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The exit codes, shown by every `--help`.
const EXIT_CODES: &str = "Exit codes:
  0    every run passed (shrink: it wrote a minimal failure; bench: every run passed)
  1    an invariant was violated (shrink: the failure does not reproduce; bench: a run failed)
  2    usage or scenario error: bad arguments, an unreadable or invalid file (file, line and key named)
  125  replay --bisect only: neither pass nor the same failure (git bisect run skips the revision)";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Deterministic simulation testing for a streaming/batch dataflow engine",
    after_help = EXIT_CODES,
    after_long_help = EXIT_CODES,
    subcommand_help_heading = "Commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario under one seed and judge it.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The seed of the simulation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Switch a canary on (repeatable); `sluice canaries` says what each one does.
        #[arg(long = "canary", value_name = "NAME", value_parser = canary_names())]
        canaries: Vec<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Print the whole trace as well: readable lines before the report, or with --json one JSON object per
        /// entry after the report's line (JSON lines, for jq).
        #[arg(long)]
        trace: bool,
        /// Turn buggify on: every point fires at the default probability (a
        /// scenario's own `[buggify]` is kept); failure files carry it.
        #[arg(long)]
        buggify: bool,
        /// Show the engine's and the harness's logs on stderr, stamped with simulated time (EnvFilter syntax:
        /// `sluice_engine=debug`, `sluice_engine::checkpoint=trace,sluice_sim=info`); default: `RUST_LOG`, else none.
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
        /// Write a self-contained HTML timeline of the run to OUT (status bands, faults, checkpoints, a lane per node
        /// with its executions, produced and committed offsets per partition, the first violation).
        #[arg(long, value_name = "OUT")]
        html: Option<PathBuf>,
    },
    /// Run many seeds of one or more scenarios (files or directories of *.toml).
    #[command(after_help = EXIT_CODES)]
    Explore {
        /// Scenario files, or directories whose *.toml files are all run (in name order).
        #[arg(required = true, value_name = "SCENARIO|DIR")]
        paths: Vec<PathBuf>,
        /// Seeds per scenario.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Switch a canary on (repeatable); `sluice canaries` says what each one does.
        #[arg(long = "canary", value_name = "NAME", value_parser = canary_names())]
        canaries: Vec<String>,
        /// OS threads (one simulation per thread at a time); default: the machine's cores.
        #[arg(long)]
        threads: Option<usize>,
        /// Print one JSON object instead of text; no progress bar.
        #[arg(long)]
        json: bool,
        /// Draw the [swarm] knobs themselves from the seed (scenarios without [swarm] run as written).
        #[arg(long)]
        swarm: bool,
        /// Run only shard I of N (0 <= I < N): the seeds whose index is I modulo N.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Run this share of the seeds twice and compare their traces (0.1 or 10%).
        #[arg(long, value_name = "P")]
        check_determinism: Option<String>,
        /// Where failure files are written.
        #[arg(long, value_name = "DIR", default_value = "sluice-failures")]
        failures: PathBuf,
        /// Also add new failures to this regression corpus (one file per scenario, invariant and canaries).
        #[arg(long, value_name = "DIR")]
        corpus: Option<PathBuf>,
        /// At most this many failure files per sweep (0: none); every failing seed is still listed.
        #[arg(long, value_name = "N", default_value_t = 20)]
        max_failure_files: u64,
        /// Exit 1 when a coverage point a scenario lists under `[expect] reaches` was reached by no run.
        #[arg(long)]
        require_coverage: bool,
        /// With --swarm: favour knob settings that reached rarely covered points in earlier seeds of this sweep (a
        /// seed's knobs then depend on earlier seeds; its failure file still replays exactly).
        #[arg(long)]
        guided: bool,
        /// Turn buggify on: every point fires at the default probability (a
        /// scenario's own `[buggify]` is kept); failure files carry it.
        #[arg(long)]
        buggify: bool,
    },
    /// Rerun a failure file: does it still fail the same way, with the same trace_hash?
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The failure file (written by `explore`, `run` or `shrink`; a corpus file).
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Print the whole trace as well: readable lines before the report, or with --json one JSON object per
        /// entry after the report's line (JSON lines, for jq).
        #[arg(long)]
        trace: bool,
        /// Exit codes for `git bisect run`: 0 passes, 1 same invariant fails, 125 anything else (skip).
        #[arg(long)]
        bisect: bool,
        /// Show the engine's and the harness's logs on stderr, stamped with simulated time (EnvFilter syntax:
        /// `sluice_engine=debug`, `sluice_engine::checkpoint=trace,sluice_sim=info`); default: `RUST_LOG`, else none.
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
        /// Write a self-contained HTML timeline of the run to OUT (status bands, faults, checkpoints, a lane per node
        /// with its executions, produced and committed offsets per partition, the first violation).
        #[arg(long, value_name = "OUT")]
        html: Option<PathBuf>,
    },
    /// Minimize a failure file while it keeps failing the same invariant.
    #[command(after_help = EXIT_CODES)]
    Shrink {
        /// The failure file to minimize.
        file: PathBuf,
        /// Where the minimal failure file goes; default: FILE with `.min.toml`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run budget: at most this many candidate runs.
        #[arg(long, default_value_t = sluice_sim::shrink::DEFAULT_MAX_RUNS)]
        max_runs: u64,
        /// Print one JSON object instead of progress lines and text.
        #[arg(long)]
        json: bool,
    },
    /// Join the JSON reports (`explore --json`) of the shards of one sweep.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// The shards' reports (`explore --shard I/N --json > REPORT.json`).
        #[arg(required = true, value_name = "REPORT.json")]
        reports: Vec<PathBuf>,
        /// Print one JSON object (an `explore --json` report of the whole sweep) instead of text.
        #[arg(long)]
        json: bool,
        /// Join the shards given although some of the sweep's shards are missing (otherwise exit 2).
        #[arg(long)]
        partial: bool,
    },
    /// List the canaries: deliberately reintroduced historical bugs.
    #[command(after_help = EXIT_CODES)]
    Canaries {
        /// Print one JSON array of {name, class, description} instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure seeds per second: multi-partition-eot, checkpoint-failure-policy and swarm-streaming-exactly-once
    /// (compiled in), each on one thread and on --threads, against a raw-madsim baseline of the same message volume.
    #[command(after_help = EXIT_CODES)]
    Bench {
        /// Seeds per scenario and thread count.
        #[arg(long, default_value_t = 400)]
        seeds: u64,
        /// OS threads of the parallel pass; default: the machine's cores.
        #[arg(long)]
        threads: Option<usize>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// mimalloc, counting allocations while `sluice bench` asks it to (otherwise one relaxed load per allocation).
#[global_allocator]
static ALLOCATIONS: sluice_sim::bench::AllocCounter = sluice_sim::bench::AllocCounter::new();

/// A usage or scenario error: printed, exit code 2.
struct UsageError(String);

/// What a command ends with: an exit code of its own (0 pass, 1 a violation, 125 bisect skip).
type Outcome = Result<u8, UsageError>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { scenario, seed, canaries, json, trace, buggify, log, html } => install_logs(log.as_deref())
            .and_then(|()| cmd_run(&scenario, seed, &canaries, RunFlags { json, trace, buggify, html })),
        Command::Explore {
            paths,
            seeds,
            first_seed,
            canaries,
            threads,
            json,
            swarm,
            shard,
            check_determinism,
            failures,
            corpus,
            max_failure_files,
            require_coverage,
            buggify,
            guided,
        } => {
            let files = FailureFiles { dir: failures, corpus, max: max_failure_files };
            let extra = ExploreExtras { swarm, shard, check_determinism, require_coverage, buggify, guided };
            cmd_explore(&paths, seeds, first_seed, &canaries, threads, json, extra, files)
        }
        Command::Replay { file, json, trace, bisect, log, html } => {
            install_logs(log.as_deref()).and_then(|()| cmd_replay(&file, json, trace, bisect, html.as_deref()))
        }
        Command::Shrink { file, out, max_runs, json } => cmd_shrink(&file, out, max_runs, json),
        Command::Merge { reports, json, partial } => cmd_merge(&reports, json, partial),
        Command::Canaries { json } => {
            cmd_canaries(json);
            Ok(0)
        }
        Command::Bench { seeds, threads, json } => cmd_bench(seeds, threads, json),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(UsageError(message)) => {
            errln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Before a run: the directory an output file goes to must exist (a run is not wasted on a path it cannot write).
fn check_output_dir(out: Option<&Path>) -> Result<(), UsageError> {
    let Some(out) = out else { return Ok(()) };
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(UsageError(format!("{}: no directory {} to write it in", out.display(), dir.display())));
    }
    Ok(())
}

/// Writes the HTML timeline of a run.
fn write_html(out: &Path, timeline: &Timeline) -> Result<(), UsageError> {
    std::fs::write(out, sluice_sim::timeline::render(timeline))
        .map_err(|e| UsageError(format!("{}: cannot write the timeline: {e}", out.display())))?;
    errln!("timeline: {}", out.display());
    Ok(())
}

/// Installs the stderr logger of `--log FILTER` (or `RUST_LOG`); a filter that does not parse is a usage error.
fn install_logs(filter: Option<&str>) -> Result<(), UsageError> {
    sluice_sim::logs::install(filter).map(|_| ()).map_err(|e| UsageError(e.to_string()))
}

/// The canary names `--canary` accepts (listed by `--help`; anything else is a usage error, exit 2).
fn canary_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(Canary::ALL.iter().map(|c| c.name()))
}

fn parse_canaries(names: &[String]) -> Result<Vec<Canary>, UsageError> {
    let mut out: Vec<Canary> = Vec::new();
    for name in names {
        let c = Canary::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Canary::ALL.iter().map(|c| c.name()).collect();
            UsageError(format!("unknown canary {name:?}; known canaries: {}", known.join(", ")))
        })?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out.sort();
    Ok(out)
}

fn load(path: &Path) -> Result<Scenario, UsageError> {
    Scenario::load(path).map_err(|e| UsageError(e.to_string()))
}

/// The first line of a failure: scenario, seed, first violation.
fn failure_line(report: &RunReport) -> String {
    let first = report.violations.first().map(|v| v.to_string()).unwrap_or_default();
    format!("FAIL {} seed {}: {first}", report.scenario, report.seed)
}

fn print_failure_header(file: &str, report: &RunReport, buggify: bool) {
    let replay = replay_command(file, report.seed, &report.canaries) + if buggify { " --buggify" } else { "" };
    errln!("{}\n  replay: {replay}", failure_line(report));
}

/// A loaded scenario, with buggify turned on when asked.
fn load_with(path: &Path, buggify: bool) -> Result<Scenario, UsageError> {
    let scenario = load(path)?;
    Ok(if buggify { scenario.with_buggify() } else { scenario })
}

fn cmd_run(path: &Path, seed: u64, canary_names: &[String], flags: RunFlags) -> Outcome {
    let RunFlags { json, trace, buggify, html } = flags;
    let canaries = parse_canaries(canary_names)?;
    let scenario = load_with(path, buggify)?;
    check_output_dir(html.as_deref())?;
    // Without --trace, the run keeps only its recent entries: its memory stays flat however long it runs (a timeline
    // is built as the entries come).
    let keep = if trace { TraceKeep::All } else { TraceKeep::Recent(RECENT_ENTRIES) };
    let timeline = html.as_ref().map(|_| SharedTimeline::default());
    let watcher = timeline.clone().map(|t| Box::new(t) as Box<dyn sluice_sim::trace::TraceObserver>);
    let report = run_watched(&scenario, seed, &canaries, keep, watcher);
    if let (Some(out), Some(timeline)) = (html.as_deref(), timeline) {
        write_html(out, &timeline.finish(&report))?;
    }
    let failed = report.verdict == Verdict::Fail;
    if failed {
        // The seed and the command that replays it come first, before anything that could be lost.
        print_failure_header(&scenario.file, &report, buggify);
    }
    if json {
        outln!("{}", serde_json::to_string(&report).expect("reports serialize"));
        if trace {
            out!("{}", sluice_sim::trace::render_json_lines(&report.trace));
        }
    } else {
        print_report(&report, trace);
    }
    Ok(u8::from(failed))
}

/// Scenario files named by the arguments: files as given, directories' `*.toml` in name order.
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, UsageError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries =
                std::fs::read_dir(p).map_err(|e| UsageError(format!("{}: cannot read directory: {e}", p.display())))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(UsageError(format!("{}: no *.toml scenario in this directory", p.display())));
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    // The same file named twice (as a file and through its directory, or by two spellings) runs once.
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

/// The `explore` options beyond the contract's.
struct ExploreExtras {
    swarm: bool,
    shard: Option<String>,
    check_determinism: Option<String>,
    require_coverage: bool,
    buggify: bool,
    guided: bool,
}

/// `run`'s switches.
struct RunFlags {
    json: bool,
    trace: bool,
    buggify: bool,
    html: Option<PathBuf>,
}

/// Where failure files go.
struct FailureFiles {
    dir: PathBuf,
    corpus: Option<PathBuf>,
    max: u64,
}

/// Parses a share: `0.1` or `10%`, within [0, 1].
fn parse_share(text: &str) -> Result<f64, UsageError> {
    let bad = || UsageError(format!("--check-determinism {text:?}: expected a share such as 0.1 or 10%"));
    let p = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => text.trim().parse::<f64>().map_err(|_| bad())?,
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(bad());
    }
    Ok(p)
}

fn knobs_line(knobs: &std::collections::BTreeMap<String, f64>) -> String {
    if knobs.is_empty() {
        return "none on".into();
    }
    knobs.iter().map(|(k, p)| format!("{k} = {p}")).collect::<Vec<_>>().join(", ")
}

#[allow(clippy::too_many_arguments)]
fn cmd_explore(
    paths: &[PathBuf],
    seeds: u64,
    first_seed: u64,
    canary_names: &[String],
    threads: Option<usize>,
    json: bool,
    extra: ExploreExtras,
    files: FailureFiles,
) -> Outcome {
    let canaries = parse_canaries(canary_names)?;
    if seeds == 0 || seeds > MAX_SEEDS {
        return Err(UsageError(format!("--seeds {seeds}: must be in 1..={MAX_SEEDS}")));
    }
    if threads == Some(0) {
        return Err(UsageError("--threads must be positive".into()));
    }
    let shard = match &extra.shard {
        Some(text) => Shard::parse(text).map_err(|e| UsageError(format!("--shard: {e}")))?,
        None => Shard { index: 0, count: 1 },
    };
    let share = extra.check_determinism.as_deref().map(parse_share).transpose()?.unwrap_or(0.0);
    if extra.guided && !extra.swarm {
        return Err(UsageError("--guided guides the knobs --swarm draws: give --swarm too".into()));
    }
    // Every scenario is validated before anything runs.
    let scenarios =
        scenario_files(paths)?.iter().map(|f| load_with(f, extra.buggify)).collect::<Result<Vec<_>, _>>()?;
    let corpus_keys = match &files.corpus {
        Some(dir) => failure::corpus_keys(dir).map_err(|e| UsageError(format!("{}: {e}", dir.display())))?,
        None => Default::default(),
    };
    let corpus_keys = Mutex::new(corpus_keys);
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sweep = Sweep {
        seeds,
        first_seed,
        canaries,
        threads,
        swarm: if extra.swarm { SwarmMode::DrawKnobs } else { SwarmMode::AsWritten },
        shard,
        check_determinism: share,
        guided: extra.guided,
    };
    let runs = scenarios.len() as u64 * shard.seed_count(seeds);
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(runs);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {per_sec}  eta {eta}  {msg}")
                .expect("progress template"),
        );
        bar
    });
    let say = |text: String| match &bar {
        Some(bar) => bar.println(text),
        None => errln!("{text}"),
    };
    let written = AtomicU64::new(0);
    let on_finding = |finding: Finding| match finding {
        Finding::Failure { scenario, as_run, report } => {
            let mut text = failure_line(report);
            if let Some(knobs) = &report.swarm {
                text.push_str(&format!("\n  swarm knobs: {}", knobs_line(knobs)));
            }
            let mut replay = replay_command(&scenario.file, report.seed, &report.canaries);
            if report.swarm.is_some() && extra.guided {
                // The knobs depend on earlier seeds of the sweep: only the failure file reproduces the run.
                replay = "sluice replay <the failure file below> (a guided seed's knobs depend on the sweep)".into();
            } else if report.swarm.is_some() && extra.swarm {
                // The knobs were drawn from the seed: `run` uses the scenario's own; a one-seed sweep redraws them.
                replay = replay.replacen("sluice run", "sluice explore", 1).replacen(
                    &format!("--seed {}", report.seed),
                    &format!("--swarm --first-seed {} --seeds 1", report.seed),
                    1,
                );
            }
            if extra.buggify {
                replay.push_str(" --buggify");
            }
            text.push_str(&format!("\n  replay: {replay}"));
            let failure = Failure::of_run(as_run, &scenario.file, report);
            if written.fetch_add(1, Ordering::SeqCst) < files.max {
                match failure.write_into(&files.dir) {
                    Ok(path) => text.push_str(&format!("\n  failure file: {0}  (sluice replay {0})", path.display())),
                    Err(e) => text.push_str(&format!("\n  warning: cannot write the failure file: {e}")),
                }
            }
            if let Some(dir) = &files.corpus {
                let new = corpus_keys.lock().expect("corpus lock").insert(failure.corpus_key());
                if new {
                    match failure.write_into(dir) {
                        Ok(path) => text.push_str(&format!("\n  added to the corpus: {}", path.display())),
                        Err(e) => text.push_str(&format!("\n  warning: cannot add to the corpus: {e}")),
                    }
                }
            }
            say(text);
        }
        Finding::Nondeterministic(m) => say(format!(
            "NONDETERMINISTIC {} seed {}: the two runs differ first at trace entry {}\n  run 1: {}\n  run 2: {}",
            m.scenario,
            m.seed,
            m.index,
            m.first.as_deref().unwrap_or("(trace ended)"),
            m.second.as_deref().unwrap_or("(trace ended)")
        )),
    };
    let on_progress = |done: u64, _total: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let report = explore(&scenarios, &sweep, &on_finding, &on_progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let unwritten = written.load(Ordering::SeqCst).saturating_sub(files.max);
    if unwritten > 0 {
        errln!("{unwritten} more failing runs have no failure file (--max-failure-files {})", files.max);
    }
    if json {
        outln!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        print_explore_summary(&report);
    }
    let gaps_fail = extra.require_coverage && !report.coverage_gaps.is_empty();
    Ok(u8::from(report.failures > 0 || !report.determinism_mismatches.is_empty() || gaps_fail))
}

fn print_explore_summary(report: &ExploreReport) {
    let shard = match report.shards.as_slice() {
        [s] if s.count > 1 => format!(" (shard {}/{})", s.index, s.count),
        [] | [_] => String::new(),
        many => format!(" ({} of {} shards)", many.len(), many[0].count),
    };
    let guided = if report.guided { " (guided)" } else { "" };
    outln!(
        "{} scenarios x {} seeds{shard}{guided} = {} runs: {} failed  ({:.0} runs/s, simulated/wall {:.0}x, {} ms)",
        report.scenarios,
        report.seeds,
        report.runs,
        report.failures,
        report.seeds_per_sec,
        report.sim_to_wall,
        report.wall_ms
    );
    for f in &report.failing {
        let knobs = f.swarm.as_ref().map(|k| format!("  [swarm: {}]", knobs_line(k))).unwrap_or_default();
        outln!("  {} seed {}: {}{knobs}", f.scenario, f.seed, f.invariant);
    }
    if report.determinism_checked > 0 {
        outln!(
            "determinism: {} seeds run twice, {} differed",
            report.determinism_checked,
            report.determinism_mismatches.len()
        );
        for m in &report.determinism_mismatches {
            outln!("  {} seed {}: first difference at trace entry {}", m.scenario, m.seed, m.index);
        }
    }
    print_coverage(report);
}

/// The coverage table: per point, the runs that reached it (and in how many scenarios, for a sweep of several); then
/// the gaps.
fn print_coverage(report: &ExploreReport) {
    let mut totals: std::collections::BTreeMap<sluice_engine::Point, (u64, usize)> = Default::default();
    for points in report.coverage.values() {
        for (point, runs) in points {
            let total = totals.entry(*point).or_default();
            total.0 += runs;
            total.1 += usize::from(*runs > 0);
        }
    }
    if totals.is_empty() {
        return;
    }
    let several = report.coverage.len() > 1;
    outln!("coverage (runs that reached each point{}):", if several { ", scenarios" } else { "" });
    for (point, (runs, scenarios)) in &totals {
        let share = 100.0 * *runs as f64 / report.runs.max(1) as f64;
        let across = if several { format!("  in {scenarios} scenarios") } else { String::new() };
        outln!("  {:<42} {runs:>9} runs ({share:.1}%){across}", point.name());
    }
    for gap in &report.coverage_gaps {
        outln!("coverage gap: {} never reached {} (listed under [expect] reaches)", gap.scenario, gap.point);
    }
}

fn load_failure(path: &Path) -> Result<Failure, UsageError> {
    Failure::load(path).map_err(|e| UsageError(e.to_string()))
}

fn print_report(report: &RunReport, trace: bool) {
    if trace {
        out!("{}", sluice_sim::trace::render(&report.trace));
    }
    let canaries = if report.canaries.is_empty() { "none".to_string() } else { report.canaries.join(", ") };
    outln!("scenario {}  seed {}  canaries: {canaries}", report.scenario, report.seed);
    outln!("verdict: {}", if report.verdict == Verdict::Fail { "FAIL" } else { "pass" });
    for v in &report.violations {
        outln!("  {v}");
    }
    let mut status = report.status.map_or("unknown".to_string(), |s| s.to_string());
    if report.drained_on_pause {
        status.push_str(" (drained on pause)");
    }
    outln!(
        "status {status}  produced {}  delivered {}  sim {} ms  wall {} ms  trace_hash {}",
        report.produced,
        report.delivered,
        report.sim_ms,
        report.wall_ms,
        report.trace_hash
    );
}

fn cmd_replay(path: &Path, json: bool, trace: bool, bisect: bool, html: Option<&Path>) -> Outcome {
    check_output_dir(html)?;
    // Under `git bisect run`, a revision that cannot read the file (an older schema, say) cannot be judged: skip it.
    let replayed = match load_failure(path).and_then(|f| replay(&f).map_err(|e| UsageError(e.to_string()))) {
        Ok(r) => r,
        Err(UsageError(message)) if bisect => {
            errln!("skip (exit 125): {message}");
            return Ok(125);
        }
        Err(e) => return Err(e),
    };
    if let Some(out) = html {
        write_html(out, &Timeline::of(&replayed.report))?;
    }
    if json {
        outln!("{}", serde_json::to_string(&replayed).expect("replays serialize"));
        if trace {
            out!("{}", sluice_sim::trace::render_json_lines(&replayed.report.trace));
        }
    } else {
        print_report(&replayed.report, trace);
        let hash = if replayed.same_trace_hash {
            "same trace_hash".to_string()
        } else {
            format!(
                "trace_hash differs (expected {}): the code or the scenario changed the run",
                replayed.expected_trace_hash
            )
        };
        let line = match replayed.outcome {
            ReplayOutcome::Reproduced => format!("REPRODUCED: fails {} again; {hash}", replayed.expected_invariant),
            ReplayOutcome::FailsDifferently => format!(
                "FAILS DIFFERENTLY: {} first, expected {}; {hash}",
                replayed.report.first_invariant().unwrap_or_default(),
                replayed.expected_invariant
            ),
            ReplayOutcome::Passes => format!("PASSES: {} no longer fails; {hash}", replayed.expected_invariant),
        };
        outln!("{line}");
    }
    Ok(match (replayed.outcome, bisect) {
        (ReplayOutcome::Passes, _) => 0,
        (ReplayOutcome::Reproduced, _) => 1,
        (ReplayOutcome::FailsDifferently, false) => 1,
        (ReplayOutcome::FailsDifferently, true) => 125,
    })
}

fn cmd_shrink(path: &Path, out: Option<PathBuf>, max_runs: u64, json: bool) -> Outcome {
    if max_runs == 0 {
        return Err(UsageError("--max-runs must be positive".into()));
    }
    let failure = load_failure(path)?;
    let out = out.unwrap_or_else(|| {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "failure".into());
        path.with_file_name(format!("{}.min.toml", stem.trim_end_matches(".min")))
    });
    check_shrink_output(path, &out)?;
    let wall = std::time::Instant::now();
    let on_progress = |runs: u64, accepted: u64, size: &Size| {
        if !json {
            errln!(
                "  run {runs}: step {accepted} kept: {} faults, {} records, {} partitions, {} workers, {} replicas",
                size.faults,
                size.records,
                size.partitions,
                size.workers,
                size.replicas
            );
        }
    };
    let shrunk = match shrink(&failure, max_runs, &on_progress) {
        Ok(s) => s,
        Err(e @ ShrinkError::DoesNotReproduce { .. }) => {
            errln!("{}: {e}", path.display());
            return Ok(1);
        }
        Err(e) => return Err(UsageError(e.to_string())),
    };
    let wall_ms = wall.elapsed().as_millis() as u64;
    let text = shrunk.failure.to_toml();
    std::fs::write(&out, text).map_err(|e| UsageError(format!("{}: cannot write: {e}", out.display())))?;
    if json {
        let v = serde_json::json!({
            "file": out.display().to_string(),
            "invariant": shrunk.failure.meta.invariant,
            "seed": shrunk.failure.meta.seed,
            "before": shrunk.before,
            "after": shrunk.after,
            "runs": shrunk.runs,
            "accepted": shrunk.accepted,
            "budget_spent": shrunk.budget_spent,
            "trace_hash": shrunk.failure.meta.trace_hash,
            "wall_ms": wall_ms,
        });
        outln!("{v}");
    } else {
        outln!(
            "shrunk {} ({}, seed {}) in {} runs, {} ms{}:",
            path.display(),
            shrunk.failure.meta.invariant,
            shrunk.failure.meta.seed,
            shrunk.runs,
            wall_ms,
            if shrunk.budget_spent { " (run budget spent; rerun shrink on the result to go on)" } else { "" }
        );
        outln!("  {:<12} {:>10} {:>10}", "", "before", "after");
        for ((name, before), (_, after)) in shrunk.before.rows().iter().zip(shrunk.after.rows()) {
            outln!("  {name:<12} {before:>10} {after:>10}");
        }
        outln!("wrote {0}  (sluice replay {0})", out.display());
    }
    Ok(0)
}

/// Before any run: the minimal failure must not overwrite its input, and its directory must exist.
fn check_shrink_output(input: &Path, out: &Path) -> Result<(), UsageError> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(out)) {
        (Ok(a), Ok(b)) => a == b,
        _ => input == out,
    };
    if same {
        return Err(UsageError(format!(
            "--out {}: that is the failure being shrunk; name another file",
            out.display()
        )));
    }
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(UsageError(format!("--out {}: directory {} does not exist", out.display(), dir.display())));
    }
    if out.is_dir() {
        return Err(UsageError(format!("--out {}: is a directory; name a file", out.display())));
    }
    Ok(())
}

fn cmd_merge(paths: &[PathBuf], json: bool, partial: bool) -> Outcome {
    let mut reports = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| UsageError(format!("{}: cannot read: {e}", p.display())))?;
        let r: ExploreReport = serde_json::from_str(&text).map_err(|e| {
            UsageError(format!("{}:{}:{}: not an `explore --json` report: {e}", p.display(), e.line(), e.column()))
        })?;
        reports.push(r);
    }
    let merged = merge(&reports).map_err(|e| UsageError(e.to_string()))?;
    let missing = missing_shards(&merged);
    if !missing.is_empty() {
        const LISTED: usize = 20;
        let mut list: Vec<String> = missing.iter().take(LISTED).map(|s| format!("{}/{}", s.index, s.count)).collect();
        if missing.len() > LISTED {
            list.push(format!("and {} more", missing.len() - LISTED));
        }
        let list = list.join(", ");
        if !partial {
            return Err(UsageError(format!(
                "shards missing from this merge: {list} (pass --partial to join the shards given anyway)"
            )));
        }
        errln!("warning: shards missing from this merge: {list}");
    }
    if json {
        outln!("{}", serde_json::to_string(&merged).expect("reports serialize"));
    } else {
        print_explore_summary(&merged);
    }
    Ok(u8::from(merged.failures > 0 || !merged.determinism_mismatches.is_empty()))
}

fn cmd_bench(seeds: u64, threads: Option<usize>, json: bool) -> Outcome {
    if threads == Some(0) {
        return Err(UsageError("--threads must be positive".into()));
    }
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !json {
        outln!(
            "{:<30} {:>9} {:>9} {:>7} {:>10} {:>11} {:>9} {:>10} {:>10} {:>8}",
            "scenario",
            "seeds/s 1",
            format!("seeds/s {threads}"),
            "scaling",
            "sim/wall",
            "records/s",
            "msgs/run",
            "allocs/rec",
            "raw seeds/s",
            "vs raw"
        );
    }
    let print = |c: &sluice_sim::bench::CaseFigures| {
        if !json {
            let allocs = c.allocations_per_record.map_or("-".to_string(), |a| format!("{a:.1}"));
            outln!(
                "{:<30} {:>9.0} {:>9.0} {:>6.2}x {:>9.0}x {:>11.0} {:>9.0} {:>10} {:>10.0} {:>7.2}x",
                c.scenario,
                c.seeds_per_sec_one_thread,
                c.seeds_per_sec,
                c.scaling,
                c.sim_to_wall,
                c.records_per_sec,
                c.messages_per_run,
                allocs,
                c.baseline_seeds_per_sec,
                c.ratio_to_baseline
            );
        }
    };
    let report =
        sluice_sim::bench::bench(seeds, threads, Some(&ALLOCATIONS), &print).map_err(|e| UsageError(e.to_string()))?;
    if json {
        outln!("{}", serde_json::to_string(&report).expect("a bench report serializes"));
    } else if let Some(kib) = report.max_rss_kib {
        outln!("max RSS {:.1} MiB; {seeds} seeds per scenario and pass", kib as f64 / 1024.0);
    }
    let failures: u64 = report.cases.iter().map(|c| c.failures).sum();
    if failures > 0 {
        errln!("{failures} benchmarked run(s) failed: a bench of a failing engine measures the wrong thing");
    }
    Ok(u8::from(failures > 0))
}

fn cmd_canaries(json: bool) {
    if json {
        let list: Vec<serde_json::Value> = Canary::ALL
            .iter()
            .map(|c| serde_json::json!({"name": c.name(), "class": format!("{:?}", c.class()), "description": c.description()}))
            .collect();
        outln!("{}", serde_json::Value::Array(list));
    } else {
        for &c in Canary::ALL {
            outln!("{:<28} class {:?}  {}", c.name(), c.class(), c.description());
        }
    }
}
