//! `sluice`: the command line of the harness.
//!
//! - `sluice run SCENARIO [--seed N] [--canary NAME]... [--json] [--trace]`: one run, judged.
//! - `sluice explore SCENARIO|DIR... [--seeds N] [--first-seed S] [--canary NAME]... [--threads T] [--json]`.
//! - `sluice canaries [--json]`: the canaries this engine carries.
//!
//! Exit codes: 0 every run passed, 1 an invariant was violated, 2 usage or scenario error.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_engine::Canary;
use sluice_sim::{explore, replay_command, run, RunReport, Scenario, Sweep, Verdict};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sluice", version, about = "Deterministic simulation testing for a streaming/batch dataflow engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario under one seed and judge it.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The seed of the simulation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Switch a canary on (repeatable); see `sluice canaries`.
        #[arg(long = "canary", value_name = "NAME")]
        canaries: Vec<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Print the readable trace as well (text mode only).
        #[arg(long)]
        trace: bool,
    },
    /// Run many seeds of one or more scenarios (files or directories of *.toml).
    Explore {
        #[arg(required = true, value_name = "SCENARIO|DIR")]
        paths: Vec<PathBuf>,
        /// Seeds per scenario.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Switch a canary on (repeatable).
        #[arg(long = "canary", value_name = "NAME")]
        canaries: Vec<String>,
        /// OS threads (one simulation per thread at a time); default: the machine's cores.
        #[arg(long)]
        threads: Option<usize>,
        /// Print one JSON object instead of text; no progress bar.
        #[arg(long)]
        json: bool,
    },
    /// List the canaries: deliberately reintroduced historical bugs.
    Canaries {
        #[arg(long)]
        json: bool,
    },
}

/// A usage or scenario error: printed, exit code 2.
struct UsageError(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { scenario, seed, canaries, json, trace } => cmd_run(&scenario, seed, &canaries, json, trace),
        Command::Explore { paths, seeds, first_seed, canaries, threads, json } => {
            cmd_explore(&paths, seeds, first_seed, &canaries, threads, json)
        }
        Command::Canaries { json } => {
            cmd_canaries(json);
            Ok(true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
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

fn print_failure_header(file: &str, report: &RunReport) {
    eprintln!(
        "FAIL {} seed {}: {}\n  replay: {}",
        report.scenario,
        report.seed,
        report.violations.first().map(|v| v.to_string()).unwrap_or_default(),
        replay_command(file, report.seed, &report.canaries)
    );
}

fn cmd_run(path: &Path, seed: u64, canary_names: &[String], json: bool, trace: bool) -> Result<bool, UsageError> {
    let canaries = parse_canaries(canary_names)?;
    let scenario = load(path)?;
    let report = run(&scenario, seed, &canaries);
    let failed = report.verdict == Verdict::Fail;
    if failed {
        // The seed and the command that replays it come first, before anything that could be lost.
        print_failure_header(&scenario.file, &report);
    }
    if json {
        println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        if trace {
            print!("{}", sluice_sim::trace::render(&report.trace));
        }
        let canaries = if report.canaries.is_empty() { "none".to_string() } else { report.canaries.join(", ") };
        println!("scenario {}  seed {}  canaries: {canaries}", report.scenario, report.seed);
        println!("verdict: {}", if failed { "FAIL" } else { "pass" });
        for v in &report.violations {
            println!("  {v}");
        }
        let mut status = report.status.map_or("unknown".to_string(), |s| s.to_string());
        if report.drained_on_pause {
            status.push_str(" (drained on pause)");
        }
        println!(
            "status {status}  produced {}  delivered {}  sim {} ms  wall {} ms  trace_hash {}",
            report.produced, report.delivered, report.sim_ms, report.wall_ms, report.trace_hash
        );
    }
    Ok(!failed)
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
    Ok(files)
}

fn cmd_explore(
    paths: &[PathBuf],
    seeds: u64,
    first_seed: u64,
    canary_names: &[String],
    threads: Option<usize>,
    json: bool,
) -> Result<bool, UsageError> {
    let canaries = parse_canaries(canary_names)?;
    if seeds == 0 {
        return Err(UsageError("--seeds must be positive".into()));
    }
    if threads == Some(0) {
        return Err(UsageError("--threads must be positive".into()));
    }
    // Every scenario is validated before anything runs.
    let scenarios = scenario_files(paths)?.iter().map(|f| load(f)).collect::<Result<Vec<_>, _>>()?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sweep = Sweep { seeds, first_seed, canaries, threads };
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(scenarios.len() as u64 * seeds);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {per_sec}  eta {eta}  {msg}")
                .expect("progress template"),
        );
        bar
    });
    let on_failure = |scenario: &Scenario, report: &RunReport| {
        let line = format!(
            "FAIL {} seed {}: {}\n  replay: {}",
            report.scenario,
            report.seed,
            report.violations.first().map(|v| v.to_string()).unwrap_or_default(),
            replay_command(&scenario.file, report.seed, &report.canaries)
        );
        match &bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    };
    let on_progress = |done: u64, _total: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let report = explore(&scenarios, &sweep, &on_failure, &on_progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        println!(
            "{} scenarios x {} seeds = {} runs: {} failed  ({:.0} runs/s, simulated/wall {:.0}x, {} ms)",
            report.scenarios,
            report.seeds,
            report.runs,
            report.failures,
            report.seeds_per_sec,
            report.sim_to_wall,
            report.wall_ms
        );
        for f in &report.failing {
            println!("  {} seed {}: {}", f.scenario, f.seed, f.invariant);
        }
    }
    Ok(report.failures == 0)
}

fn cmd_canaries(json: bool) {
    if json {
        let list: Vec<serde_json::Value> = Canary::ALL
            .iter()
            .map(|c| serde_json::json!({"name": c.name(), "class": format!("{:?}", c.class()), "description": c.description()}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for c in Canary::ALL {
            println!("{:<28} class {:?}  {}", c.name(), c.class(), c.description());
        }
    }
}
