//! Guided seeds (`sluice explore --swarm --guided`): favour the knob settings that reached rarely covered points.
//!
//! The sweep runs in generations of [`GENERATION_SEEDS`] seeds per scenario. After each generation the guide learns,
//! per scenario, which coverage points its runs reached and how often each has been reached so far in this sweep
//! (this shard); it keeps as parents the [`ELITE_SIZE`] knob settings whose rarest reached point is the rarest so
//! far. In the next generation each seed runs, half the time, with the knobs drawn from it as usual; otherwise with a
//! parent's knobs (chosen by the seed), each knob and each timing knob replaced by the seed's own draw with chance
//! 1/4. Network, timings and faults are then drawn from the seed with those knobs, as always.
//!
//! The knobs a seed gets therefore depend on earlier generations of the same sweep: a guided seed is not a function
//! of the seed alone. What stays exact: a generation learns only once all of it ran, from its runs in seed order, so a
//! guided sweep is the same sweep whatever the thread count; and every failure file holds the faults, network and
//! timings as drawn, so replay and shrink reproduce it. The report says `guided`; `merge` refuses to join a guided
//! report with an unguided one. Without `--guided` nothing here runs.

use crate::swarm::Swarm;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_engine::Point;
use std::collections::BTreeMap;

/// Seeds per scenario in one generation.
pub const GENERATION_SEEDS: u64 = 16;
/// Parents kept per scenario.
pub const ELITE_SIZE: usize = 8;
/// The seed's ChaCha stream for the guide's choices (the swarm uses 1 to 4).
const GUIDE_STREAM: u64 = 5;

/// One seed's knobs and what its run reached: what a generation teaches, and what a parent keeps.
#[derive(Clone, Debug)]
pub struct Lesson {
    /// The seed's index in the sweep (the order of learning).
    pub order: u64,
    pub knobs: Swarm,
    pub reached: Vec<Point>,
}

#[derive(Clone, Debug, Default)]
struct ScenarioGuide {
    /// Runs that reached each point so far.
    counts: BTreeMap<Point, u64>,
    /// The parents: lessons whose rarest reached point is rarest.
    elite: Vec<Lesson>,
}

/// The guide of one sweep (one shard): a row per scenario.
#[derive(Clone, Debug)]
pub struct Guide {
    scenarios: Vec<ScenarioGuide>,
}

impl Guide {
    pub fn new(scenarios: usize) -> Guide {
        Guide { scenarios: vec![ScenarioGuide::default(); scenarios] }
    }

    /// The knobs seed `seed` of scenario `scenario` runs with, given the knobs drawn from it (`fresh`), and whether
    /// they came from a parent.
    pub fn knobs(&self, scenario: usize, fresh: &Swarm, seed: u64) -> (Swarm, bool) {
        let row = &self.scenarios[scenario];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(GUIDE_STREAM);
        if row.elite.is_empty() || rng.gen_bool(0.5) {
            return (fresh.clone(), false);
        }
        let parent = &row.elite[rng.gen_range(0..row.elite.len())].knobs;
        let mut child = fresh.clone();
        for (name, value) in child.knobs.iter_mut() {
            if !rng.gen_bool(0.25) {
                *value = parent.knobs.get(name).copied().unwrap_or(0.0);
            }
        }
        for range in crate::scenario::timings::TIMINGS.iter() {
            if !rng.gen_bool(0.25) {
                match parent.timings.get(&range.name) {
                    Some(r) => child.timings.insert(range.name, *r),
                    None => child.timings.remove(&range.name),
                };
            }
        }
        (child, true)
    }

    /// Learns from one generation of a scenario: its lessons in seed order (the caller sorts them).
    pub fn learn(&mut self, scenario: usize, lessons: &[Lesson]) {
        assert!(lessons.windows(2).all(|w| w[0].order < w[1].order), "lessons come in seed order");
        let row = &mut self.scenarios[scenario];
        row.elite.extend(lessons.iter().filter(|l| !l.reached.is_empty()).cloned());
        for lesson in lessons {
            for p in &lesson.reached {
                *row.counts.entry(*p).or_default() += 1;
            }
        }
        let mut ranked: Vec<(u64, u64, Lesson)> =
            row.elite.drain(..).map(|p| (row_rarity(&row.counts, &p.reached), p.order, p)).collect();
        ranked.sort_by_key(|(rarity, order, _)| (*rarity, *order));
        ranked.truncate(ELITE_SIZE);
        row.elite = ranked.into_iter().map(|(_, _, p)| p).collect();
        assert!(row.elite.len() <= ELITE_SIZE);
    }

    /// The parents of a scenario, rarest first: (seed order, rarity).
    pub fn parents(&self, scenario: usize) -> Vec<(u64, u64)> {
        let row = &self.scenarios[scenario];
        row.elite.iter().map(|p| (p.order, row_rarity(&row.counts, &p.reached))).collect()
    }
}

/// How rare a parent is now: the count of its rarest point (lower is rarer).
fn row_rarity(counts: &BTreeMap<Point, u64>, reached: &[Point]) -> u64 {
    reached.iter().map(|p| counts.get(p).copied().unwrap_or(0)).min().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swarm(knob: f64) -> Swarm {
        Swarm {
            knobs: BTreeMap::from([("worker_crash_probability".to_string(), knob)]),
            window_ms: (0, 1_000),
            step_ms: 100,
            max_faults: 4,
            fault_ms: (10, 100),
            timings: BTreeMap::new(),
        }
    }

    #[test]
    fn without_lessons_every_seed_keeps_its_own_knobs() {
        let guide = Guide::new(1);
        for seed in 0..20 {
            assert_eq!(guide.knobs(0, &swarm(0.1), seed), (swarm(0.1), false));
        }
    }

    #[test]
    fn the_rarest_reaching_knobs_become_parents_and_are_reused() {
        let mut guide = Guide::new(1);
        let common = |order| Lesson { order, knobs: swarm(0.1), reached: vec![Point::ZombieExecutionRecanceled] };
        let mut lessons: Vec<Lesson> = (0..10).map(common).collect();
        lessons.push(Lesson { order: 10, knobs: swarm(0.9), reached: vec![Point::PolicyFailureAgedOut] });
        lessons.push(Lesson { order: 11, knobs: swarm(0.5), reached: vec![] });
        guide.learn(0, &lessons);
        assert_eq!(guide.parents(0)[0], (10, 1), "the rare point's knobs rank first");
        assert_eq!(guide.parents(0).len(), ELITE_SIZE);
        let (mut from_parents, mut kept_rare) = (0, 0);
        for seed in 0..200 {
            let (knobs, guided) = guide.knobs(0, &swarm(0.3), seed);
            from_parents += usize::from(guided);
            kept_rare += usize::from(knobs.knobs["worker_crash_probability"] == 0.9);
        }
        assert!((60..140).contains(&from_parents), "about half the seeds take a parent: {from_parents}");
        assert!(kept_rare > 5, "the rare parent's knob is inherited: {kept_rare}");
    }
}
