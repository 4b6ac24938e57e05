//! `sluice bench`: how many seeds a CPU-second buys. Runs, in one process and one sitting, a fixed set of shipped
//! scenarios (compiled in, so the figures do not depend on the working directory) and, for each, a raw-madsim
//! baseline of the same message volume: two nodes passing boxed frames both ways over one reliable stream, as many
//! as the scenario's runs carried on average. For each it reports seeds/s on one thread and on `threads`, the
//! scaling between them, simulated-to-wall, records delivered per wall second, network messages per run, heap
//! allocations per record (when the binary counts them, see [`AllocCounter`]), and the ratio of the scenario's time
//! per seed to the baseline's.
//!
//! A bench measures wall time: its figures go into the README, never into a test's assertion.

use crate::explore::{explore_with, Sweep};
use crate::runner::{run_as_is_keeping, RunReport};
use crate::scenario::Scenario;
use crate::swarm::SwarmMode;
use crate::trace::TraceKeep;
use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};
use serde::Serialize;
use sluice_engine::Canary;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most seeds a bench runs per case and thread count.
pub const MAX_BENCH_SEEDS: u64 = 1_000_000;

/// One benchmarked scenario, as shipped.
pub struct BenchCase {
    pub file: &'static str,
    pub text: &'static str,
    /// Whether its knobs are drawn from the seed (`--swarm`).
    pub swarm: bool,
}

/// The fixed set: the EOT scenario (small and message-bound), the checkpoint-failure policy (long simulated time,
/// few messages) and a swarm scenario (faults drawn per seed).
pub const CASES: &[BenchCase] = &[
    BenchCase {
        file: "multi-partition-eot.toml",
        text: include_str!("../../scenarios/multi-partition-eot.toml"),
        swarm: false,
    },
    BenchCase {
        file: "checkpoint-failure-policy.toml",
        text: include_str!("../../scenarios/checkpoint-failure-policy.toml"),
        swarm: false,
    },
    BenchCase {
        file: "swarm-streaming-exactly-once.toml",
        text: include_str!("../../scenarios/swarm-streaming-exactly-once.toml"),
        swarm: true,
    },
];

/// Counts heap allocations when the binary installs it as its global allocator and a bench switches it on; off, it
/// costs one relaxed load per allocation. It allocates with mimalloc: a sweep allocates and frees small blocks all
/// the time, and mimalloc takes 5 % fewer instructions over a sweep than the system's allocator (callgrind,
/// `multi-partition-eot`). Where memory lies never reaches a run's behaviour.
pub struct AllocCounter {
    on: std::sync::atomic::AtomicBool,
    count: AtomicU64,
}

impl AllocCounter {
    pub const fn new() -> AllocCounter {
        AllocCounter { on: std::sync::atomic::AtomicBool::new(false), count: AtomicU64::new(0) }
    }

    fn note(&self) {
        if self.on.load(Ordering::Relaxed) {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Starts counting from zero.
    pub fn start(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
    }

    /// Stops counting; returns the allocations since [`AllocCounter::start`].
    pub fn stop(&self) -> u64 {
        self.on.store(false, Ordering::Relaxed);
        self.count.load(Ordering::Relaxed)
    }
}

impl Default for AllocCounter {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is passed to mimalloc unchanged; counting touches only atomics.
unsafe impl std::alloc::GlobalAlloc for AllocCounter {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        self.note();
        // SAFETY: the caller's contract is mimalloc's, which is `GlobalAlloc`'s.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `alloc` or `realloc` above, which are mimalloc's.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// One case's figures.
#[derive(Clone, Debug, Serialize)]
pub struct CaseFigures {
    pub scenario: String,
    pub swarm: bool,
    pub seeds: u64,
    pub seeds_per_sec_one_thread: f64,
    pub seeds_per_sec: f64,
    pub threads: usize,
    /// `seeds_per_sec` over `seeds_per_sec_one_thread`.
    pub scaling: f64,
    pub sim_to_wall: f64,
    pub records_per_sec: f64,
    pub messages_per_run: f64,
    /// Heap allocations per delivered record, on one thread (`null` when the binary does not count them).
    pub allocations_per_record: Option<f64>,
    pub failures: u64,
    /// The raw-madsim baseline of `messages_per_run` frames per seed, on one thread.
    pub baseline_seeds_per_sec: f64,
    /// Time per seed of the scenario over the baseline's, both on one thread (1.0: as fast as raw madsim).
    pub ratio_to_baseline: f64,
}

/// What `sluice bench --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub cases: Vec<CaseFigures>,
    /// The process's peak resident set, in KiB, after every case (`null` where the OS does not say).
    pub max_rss_kib: Option<u64>,
}

/// Why a bench cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("a shipped bench scenario does not parse: {0}")]
    Scenario(#[from] crate::scenario::ScenarioError),
    #[error("--seeds must be between 1 and {MAX_BENCH_SEEDS}, not {0}")]
    Seeds(u64),
}

/// What one sweep of a case measured.
#[derive(Clone, Copy)]
struct Measured {
    seeds_per_sec: f64,
    sim_to_wall: f64,
    records: u64,
    messages: u64,
    wall_s: f64,
    failures: u64,
}

fn sweep_case(scenario: &Scenario, swarm: bool, seeds: u64, threads: usize) -> Measured {
    let records = AtomicU64::new(0);
    let messages = AtomicU64::new(0);
    let run = |s: &Scenario, seed: u64, canaries: &[Canary], keep: TraceKeep| -> RunReport {
        let report = run_as_is_keeping(s, seed, canaries, keep);
        records.fetch_add(report.delivered, Ordering::Relaxed);
        messages.fetch_add(report.messages, Ordering::Relaxed);
        report
    };
    let mut sweep = Sweep::new(seeds, 0, Vec::new(), threads);
    sweep.swarm = if swarm { SwarmMode::DrawKnobs } else { SwarmMode::AsWritten };
    let report = explore_with(std::slice::from_ref(scenario), &sweep, &run, &|_| {}, &|_, _| {});
    Measured {
        seeds_per_sec: report.seeds_per_sec,
        sim_to_wall: report.sim_to_wall,
        records: records.into_inner(),
        messages: messages.into_inner(),
        wall_s: report.wall_ms.max(1) as f64 / 1000.0,
        failures: report.failures,
    }
}

/// Benchmarks every case: `seeds` seeds on one thread (allocations counted when `counter` is given), then on
/// `threads`, then the baseline; `on_case` hears each case's figures as they come.
pub fn bench(
    seeds: u64,
    threads: usize,
    counter: Option<&AllocCounter>,
    on_case: &dyn Fn(&CaseFigures),
) -> Result<BenchReport, BenchError> {
    if seeds == 0 || seeds > MAX_BENCH_SEEDS {
        return Err(BenchError::Seeds(seeds));
    }
    let threads = threads.max(1);
    let mut cases = Vec::new();
    for case in CASES {
        let name = case.file.trim_end_matches(".toml");
        let scenario = Scenario::parse(case.text, &format!("scenarios/{}", case.file), name)?;
        if let Some(c) = counter {
            c.start();
        }
        let one = sweep_case(&scenario, case.swarm, seeds, 1);
        let allocations = counter.map(AllocCounter::stop);
        let many = if threads > 1 { sweep_case(&scenario, case.swarm, seeds, threads) } else { one };
        let messages_per_run = one.messages as f64 / seeds as f64;
        let baseline_seeds_per_sec = baseline(seeds, (messages_per_run / 2.0).ceil() as u64);
        let figures = CaseFigures {
            scenario: scenario.name.clone(),
            swarm: case.swarm,
            seeds,
            seeds_per_sec_one_thread: one.seeds_per_sec,
            seeds_per_sec: many.seeds_per_sec,
            threads,
            scaling: many.seeds_per_sec / one.seeds_per_sec.max(1e-9),
            sim_to_wall: many.sim_to_wall,
            records_per_sec: one.records as f64 / one.wall_s,
            messages_per_run,
            allocations_per_record: allocations.map(|a| a as f64 / one.records.max(1) as f64),
            failures: one.failures + many.failures,
            baseline_seeds_per_sec,
            ratio_to_baseline: baseline_seeds_per_sec / one.seeds_per_sec.max(1e-9),
        };
        on_case(&figures);
        cases.push(figures);
    }
    Ok(BenchReport { cases, max_rss_kib: max_rss_kib() })
}

/// Seeds per second of raw madsim: per seed, a runtime with two nodes that pass `frames` boxed frames each way over
/// one reliable stream (each frame sent is answered by one), on one thread.
pub fn baseline(seeds: u64, frames: u64) -> f64 {
    let wall = Instant::now();
    for seed in 0..seeds {
        let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
        let echoed = rt.block_on(ping_pong(frames));
        assert_eq!(echoed, frames, "the baseline's stream lost frames");
    }
    seeds as f64 / wall.elapsed().as_secs_f64().max(1e-9)
}

async fn ping_pong(frames: u64) -> u64 {
    let handle = Handle::current();
    let server_ip = IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1));
    let addr = SocketAddr::new(server_ip, 9000);
    let server = handle.create_node().name("server").ip(server_ip).build();
    let client = handle.create_node().name("client").ip(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2))).build();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let echo = server.spawn(async move {
        let ep = Endpoint::bind(addr).await.expect("the baseline's server binds");
        let _ = ready_tx.send(());
        let (tx, mut rx, _) = ep.accept1().await.expect("the baseline's client connects");
        for _ in 0..frames {
            let frame = rx.recv().await.expect("a frame");
            tx.send(frame).await.expect("an echo");
        }
    });
    let pinger = client.spawn(async move {
        ready_rx.await.expect("the server is ready");
        let ep = Endpoint::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)).await.expect("an ephemeral port");
        let (tx, mut rx) = ep.connect1(addr).await.expect("the baseline connects");
        let sender = async {
            for i in 0..frames {
                tx.send(Box::new(i)).await.expect("a frame goes out");
            }
        };
        let receiver = async {
            let mut echoed = 0;
            for _ in 0..frames {
                let frame = rx.recv().await.expect("an echo comes back");
                assert!(frame.downcast::<u64>().is_ok(), "the echo is the frame sent");
                echoed += 1;
            }
            echoed
        };
        let ((), echoed) = tokio::join!(sender, receiver);
        echoed
    });
    echo.await.expect("the echo task ends");
    let echoed = pinger.await.expect("the ping task ends");
    madsim::time::sleep(Duration::from_millis(1)).await;
    echoed
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), where the OS reports it.
fn max_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
