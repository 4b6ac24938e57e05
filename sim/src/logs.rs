//! Logs on stderr for a person replaying a run: the engine's and the harness's `tracing` events (see
//! `sluice_engine::log`), each stamped with the simulated time of the run it belongs to, filtered with `EnvFilter`'s
//! syntax (`--log FILTER` on `run` and `replay`, else `RUST_LOG`). Nothing is installed unless asked, so sweeps pay
//! one disabled-callsite check per event. Installing a subscriber changes no run: it reads the simulated clock and
//! never its randomness (a test compares `trace_hash` with and without logs).

use thiserror::Error;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// A filter that does not parse.
#[derive(Debug, Error)]
#[error("log filter {filter:?}: {why} (EnvFilter syntax, e.g. `sluice_engine=debug,sluice_sim=info`)")]
pub struct LogFilterError {
    pub filter: String,
    pub why: String,
}

/// Stamps a line with the simulated time of the run in progress (milliseconds since it started), or `-` outside a
/// run.
struct SimTime;

impl FormatTime for SimTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match madsim::time::TimeHandle::try_current() {
            Some(time) => write!(w, "{:>10.3} ms", time.elapsed().as_micros() as f64 / 1000.0),
            None => write!(w, "{:>13}", "-"),
        }
    }
}

/// Installs the stderr logger with `filter`, or `RUST_LOG` when there is none; returns whether one was installed
/// (neither given: none, and logs cost nothing).
pub fn install(filter: Option<&str>) -> Result<bool, LogFilterError> {
    let from_env = std::env::var("RUST_LOG").ok().filter(|f| !f.trim().is_empty());
    let Some(filter) = filter.map(str::to_string).or(from_env) else {
        return Ok(false);
    };
    let parsed = EnvFilter::builder()
        .parse(&filter)
        .map_err(|e| LogFilterError { filter: filter.clone(), why: e.to_string() })?;
    let installed = tracing_subscriber::fmt()
        .with_env_filter(parsed)
        .with_timer(SimTime)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .try_init();
    // A second install in one process (tests) keeps the first: logs still go somewhere.
    Ok(installed.is_ok())
}
