//! Buggify (FoundationDB's BUGGIFY): seeded places where the engine takes a rare path a real system sometimes takes.
//!
//! Off unless the job asks for it ([`crate::job::JobSpec::buggify`]: a scenario's `[buggify]`, or `--buggify`).
//! When on, each enabled point fires with the given probability each time the engine passes it, drawn from the
//! simulation's seeded RNG (so the same seed fires the same points at the same moments), and every firing is a trace
//! event ([`crate::Event::Buggified`]): a replay shows and reproduces it. When off, nothing is drawn: a run without
//! buggify is the run it always was.
//!
//! Every path a point takes is one the engine must survive anyway: a datagram or a response that is late, a batch
//! that is smaller than it could be, a scheduling hiccup. None of them breaks a promise the README makes; a checker
//! that fails on one has found a bug (in the engine, or in its own bounds).

use serde::{Deserialize, Serialize};

/// A buggify point. Its kebab-case name (scenarios, JSON, the trace) comes from serde and strum.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum BuggifyPoint {
    /// The store holds its answer to the end of a batch for up to [`STORE_DELAY_MAX_MS`] before sending it.
    StoreResponseDelayed,
    /// A worker skips one heartbeat (the next one comes a period later).
    HeartbeatSkipped,
    /// A sink writes a due batch as two smaller ones, in order.
    BatchSplit,
    /// The coordinator skips one tick: its re-evaluation and re-sent intents come a tick later.
    TickSkipped,
    /// A data stream's connect retries at once after a refusal instead of after its pause.
    ReconnectEarly,
}

/// The longest a buggified store response is held.
pub const STORE_DELAY_MAX_MS: u64 = 200;
/// The highest firing probability a job may ask for (a point that fires every time is a different engine).
pub const MAX_PROBABILITY: f64 = 0.5;

/// Which points are on for a run, and how often each fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuggifySpec {
    /// The enabled points, sorted, each once.
    pub points: Vec<BuggifyPoint>,
    /// The chance that an enabled point fires each time the engine passes it, in (0, [`MAX_PROBABILITY`]].
    pub probability: f64,
}

impl BuggifySpec {
    pub fn new(mut points: Vec<BuggifyPoint>, probability: f64) -> BuggifySpec {
        assert!(probability > 0.0 && probability <= MAX_PROBABILITY, "validated before: {probability}");
        points.sort();
        points.dedup();
        BuggifySpec { points, probability }
    }

    /// Whether `point` fires now: a draw from the simulation's seeded RNG, made only for an enabled point.
    pub fn fires(&self, point: BuggifyPoint) -> bool {
        self.points.binary_search(&point).is_ok()
            && madsim::rand::Rng::gen_bool(&mut madsim::rand::thread_rng(), self.probability)
    }

    /// A draw in `1..=most` from the simulation's seeded RNG (how long a delay lasts).
    pub fn draw_ms(most: u64) -> u64 {
        assert!(most >= 1);
        madsim::rand::Rng::gen_range(&mut madsim::rand::thread_rng(), 1..=most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn points_are_kebab_case_and_parse_back() {
        for p in <BuggifyPoint as strum::VariantArray>::VARIANTS {
            let name: &str = p.into();
            assert_eq!(BuggifyPoint::from_str(name).ok(), Some(*p));
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{name}");
        }
        assert_eq!(BuggifyPoint::StoreResponseDelayed.to_string(), "store-response-delayed");
    }

    #[test]
    fn a_spec_keeps_each_point_once_in_order() {
        let spec =
            BuggifySpec::new(vec![BuggifyPoint::TickSkipped, BuggifyPoint::BatchSplit, BuggifyPoint::TickSkipped], 0.1);
        assert_eq!(spec.points, vec![BuggifyPoint::BatchSplit, BuggifyPoint::TickSkipped]);
    }
}
