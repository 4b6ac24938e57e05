//! Shrinking: the smallest scenario that still fails the same invariant under the same seed and canaries.
//!
//! The shrinker edits the scenario's TOML text (comments and layout survive) and keeps an edit only if the edited
//! scenario validates and its run fails with the same first invariant. Passes repeat until one changes nothing or the
//! run budget is spent:
//! 1. drop faults: all at once, then one at a time from the last;
//! 2. move each fault earlier (halve `at_ms`) and shorten it (halve `restart_after_ms`, `heal_after_ms`, `by_ms`;
//!    one checkpoint fewer for `count`);
//! 3. shrink the job: fewer workers, partitions, records, replicas, map vertices; a shorter `duration_ms`.
//!
//! Faults are explicit in the text (swarm faults were materialized when the failure was found) and the seed is kept,
//! so dropping one fault leaves the others as they were; only madsim's scheduling randomness (a function of the same
//! seed) follows the new timeline. The budget counts runs, not seconds, so a shrink is itself deterministic.
//!
//! A failure with canaries on that passes with them off is shrunk into one that still does: an edit is kept only if
//! the fixed engine still passes it, so the minimal scenario tells the bug from its fix.

use crate::failure::Failure;
use crate::runner::run_as_is;
use crate::scenario::Scenario;
use serde::Serialize;
use sluice_engine::Canary;
use toml_edit::{DocumentMut, Item, Value};

/// Default run budget of a shrink.
pub const DEFAULT_MAX_RUNS: u64 = 2_000;

/// The size of a scenario, as the shrinker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Size {
    pub faults: usize,
    pub records: u64,
    pub partitions: u32,
    pub workers: u16,
    /// Replicas of every vertex at the start, summed.
    pub replicas: u32,
    pub vertices: usize,
    pub duration_ms: u64,
}

impl Size {
    pub fn of(s: &Scenario) -> Size {
        let source = &s.job.vertices[0];
        let records = if s.job.mode == sluice_engine::Mode::Batch {
            source.partition_records.iter().sum()
        } else {
            source.partition_rates.iter().sum()
        };
        Size {
            faults: s.faults.len(),
            records,
            partitions: s.job.partitions,
            workers: s.job.workers,
            replicas: s.job.vertices.iter().map(|v| u32::from(v.replicas)).sum(),
            vertices: s.job.vertices.len(),
            duration_ms: s.duration_ms,
        }
    }

    /// Rows for a before/after table.
    pub fn rows(&self) -> [(&'static str, u64); 7] {
        [
            ("faults", self.faults as u64),
            ("records", self.records),
            ("partitions", u64::from(self.partitions)),
            ("workers", u64::from(self.workers)),
            ("replicas", u64::from(self.replicas)),
            ("vertices", self.vertices as u64),
            ("duration_ms", self.duration_ms),
        ]
    }
}

/// A finished shrink.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub before: Size,
    pub after: Size,
    /// The minimal failure (its scenario text, detail and `trace_hash` updated).
    pub failure: Failure,
    pub runs: u64,
    pub accepted: u64,
    /// The budget ran out before a pass changed nothing.
    pub budget_spent: bool,
}

/// Why a failure cannot be shrunk.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    #[error("the failure does not reproduce: seed {seed} {now} (expected {expected}); nothing to shrink")]
    DoesNotReproduce { seed: u64, now: String, expected: String },
}

/// One edit of the scenario text; `None` when it does not apply.
type Edit = Box<dyn Fn(&mut DocumentMut) -> Option<()>>;

fn int(item: &Item) -> Option<i64> {
    item.as_integer()
}

fn set_int(item: &mut Item, v: i64) {
    *item = toml_edit::value(v);
}

/// Halves an integer key of a table, if it is there and can shrink.
fn halve(table: &mut toml_edit::Table, key: &str, floor: i64) -> Option<()> {
    let v = int(table.get(key)?)?;
    let half = (v / 2).max(floor);
    (half < v).then(|| set_int(&mut table[key], half))
}

fn faults(doc: &mut DocumentMut) -> Option<&mut toml_edit::ArrayOfTables> {
    doc.get_mut("faults")?.as_array_of_tables_mut()
}

fn vertices(doc: &mut DocumentMut) -> Option<&mut toml_edit::ArrayOfTables> {
    doc.get_mut("job")?.get_mut("vertices")?.as_array_of_tables_mut()
}

/// The edits of one pass over a scenario with `n_faults` faults and `n_vertices` vertices.
fn edits(n_faults: usize, n_vertices: usize) -> Vec<Edit> {
    let mut out: Vec<Edit> = Vec::new();
    if n_faults > 1 {
        out.push(Box::new(|d| {
            d.remove("faults")?;
            Some(())
        }));
    }
    for i in (0..n_faults).rev() {
        out.push(Box::new(move |d| {
            let f = faults(d)?;
            (i < f.len()).then(|| f.remove(i))
        }));
    }
    for i in 0..n_faults {
        out.push(Box::new(move |d| halve(faults(d)?.get_mut(i)?, "at_ms", 0)));
        for key in ["restart_after_ms", "heal_after_ms", "by_ms"] {
            out.push(Box::new(move |d| halve(faults(d)?.get_mut(i)?, key, 1)));
        }
        out.push(Box::new(move |d| {
            let f = faults(d)?.get_mut(i)?;
            let c = int(f.get("count")?)?;
            (c > 1).then(|| set_int(&mut f["count"], c - 1))
        }));
    }
    out.push(Box::new(|d| {
        let workers = d.get("cluster").and_then(|c| c.get("workers")).and_then(int).unwrap_or(2);
        (workers > 1).then(|| {
            if d.get("cluster").is_none() {
                d["cluster"] = toml_edit::table();
            }
            set_int(&mut d["cluster"]["workers"], workers - 1)
        })
    }));
    out.push(Box::new(|d| {
        let p = int(d.get("job")?.get("partitions")?)?;
        (p > 1).then_some(())?;
        set_int(&mut d["job"]["partitions"], p - 1);
        // A skew lists one share per partition: the last goes with it.
        for v in vertices(d)?.iter_mut() {
            if let Some(skew) = v.get_mut("skew").and_then(|s| s.as_array_mut()) {
                if !skew.is_empty() {
                    skew.remove(skew.len() - 1);
                }
            }
        }
        Some(())
    }));
    out.push(Box::new(|d| halve(vertices(d)?.get_mut(0)?, "records", 1)));
    for i in 0..n_vertices {
        out.push(Box::new(move |d| {
            let v = vertices(d)?.get_mut(i)?;
            let scale = v.get_mut("scale")?.as_inline_table_mut()?;
            let max = scale.get("max").and_then(Value::as_integer)?;
            (max > 1).then_some(())?;
            scale.insert("max", Value::from(max - 1));
            if let Some(min) = scale.get("min").and_then(Value::as_integer) {
                scale.insert("min", Value::from(min.min(max - 1)));
            }
            Some(())
        }));
    }
    for i in (1..n_vertices.saturating_sub(1)).rev() {
        out.push(Box::new(move |d| {
            let vs = vertices(d)?;
            (vs.get(i)?.get("kind")?.as_str()? == "map").then(|| vs.remove(i))
        }));
    }
    out.push(Box::new(|d| halve(d.as_table_mut(), "duration_ms", 1)));
    out
}

/// Shrinks `failure` within `max_runs` runs; `on_progress` hears (runs, accepted, size) after each accepted edit.
pub fn shrink(failure: &Failure, max_runs: u64, on_progress: &dyn Fn(u64, u64, &Size)) -> Result<Shrunk, ShrinkError> {
    let canaries: Vec<Canary> = failure.canaries();
    let seed = failure.meta.seed;
    let target = failure.meta.invariant.clone();
    let scenario = failure.scenario()?;
    let first = run_as_is(&scenario, seed, &canaries);
    if first.first_invariant() != Some(target.as_str()) {
        return Err(ShrinkError::DoesNotReproduce {
            seed,
            now: first.first_invariant().map_or("passes".into(), |i| format!("fails {i}")),
            expected: target,
        });
    }
    // A canary failure is shrunk into a scenario that still tells the bug from its fix: if the original passes with
    // the canaries off, every kept edit must too (else dropping a resume, say, could leave an expectation that fails
    // on the fixed engine as well).
    let mut runs = 1u64;
    let keep_fixed_passing = !canaries.is_empty() && {
        runs += 1;
        run_as_is(&scenario, seed, &[]).violations.is_empty()
    };
    let before = Size::of(&scenario);
    let mut best = (scenario, first);
    let mut accepted = 0u64;
    let mut budget_spent = false;
    'passes: loop {
        let mut progressed = false;
        let size = Size::of(&best.0);
        for edit in edits(size.faults, size.vertices) {
            if runs >= max_runs {
                budget_spent = true;
                break 'passes;
            }
            let mut doc: DocumentMut = best.0.text.parse().expect("a validated scenario is a TOML document");
            if edit(&mut doc).is_none() {
                continue;
            }
            let Ok(candidate) = Scenario::parse(&doc.to_string(), &best.0.file, &best.0.name) else { continue };
            runs += 1;
            let report = run_as_is(&candidate, seed, &canaries);
            let keep = report.first_invariant() == Some(target.as_str())
                && (!keep_fixed_passing || {
                    runs += 1;
                    run_as_is(&candidate, seed, &[]).violations.is_empty()
                });
            if keep {
                accepted += 1;
                progressed = true;
                best = (candidate, report);
                on_progress(runs, accepted, &Size::of(&best.0));
            }
        }
        if !progressed {
            break;
        }
    }
    let (scenario, report) = best;
    let mut minimal = Failure::of_run(&scenario, &failure.meta.source, &report);
    minimal.meta.swarm = failure.meta.swarm.clone();
    Ok(Shrunk { before, after: Size::of(&scenario), failure: minimal, runs, accepted, budget_spent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_to_the_text_and_keep_its_comments() {
        let text = "# Goal: g.  Method: m.\nduration_ms = 10_000\n[job]\nmode = \"batch\"\npartitions = 3\n\
                    [[job.vertices]]\nname = \"in\"\nkind = \"source\"\nrecords = 90\nskew = [1, 2, 3]\n\
                    [[job.vertices]]\nname = \"m\"\nkind = \"map\"\n\
                    [[job.vertices]]\nname = \"out\"\nkind = \"sink\"\nscale = { min = 2, max = 3 }\n\
                    [[faults]]\nat_ms = 800\nkind = \"crash\"\nnode = \"worker-2\"\nrestart_after_ms = 500\n";
        let s = Scenario::parse(text, "t", "t").unwrap();
        let all = edits(1, 3);
        let mut results = Vec::new();
        for e in &all {
            let mut doc: DocumentMut = text.parse().unwrap();
            if e(&mut doc).is_some() {
                let t = doc.to_string();
                assert!(t.starts_with("# Goal: g."), "comments survive");
                results.push(Scenario::parse(&t, "t", "t").map(|c| Size::of(&c)));
            }
        }
        let before = Size::of(&s);
        let sizes: Vec<Size> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert!(sizes.iter().any(|z| z.faults == 0));
        assert!(sizes.iter().any(|z| z.partitions == 2), "the skew shrinks with the partitions");
        assert!(sizes.iter().any(|z| z.records == 45));
        assert!(sizes.iter().any(|z| z.replicas == before.replicas - 1));
        assert!(sizes.iter().any(|z| z.vertices == 2), "the map goes");
        assert!(sizes.iter().any(|z| z.duration_ms == 5_000));
        // Dropping to one worker makes the crash of worker-2 invalid: that edit is refused, not applied.
        assert!(results.iter().any(|r| r.is_err()));
        assert!(sizes.iter().all(|z| z.workers == 2));
    }
}
