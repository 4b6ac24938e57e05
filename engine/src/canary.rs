//! Canaries: deliberately reintroduced historical bugs.
//!
//! Each canary switches the smallest piece of engine code that the original bug lived in back to its buggy form. It
//! is never a separate code path that fakes a symptom: the harness has to find the consequences on its own.

use serde::{Deserialize, Serialize};

/// The bug classes of `docs/bug-classes.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BugClass {
    /// A: batch job reports FAILED although every record was delivered (SeaTunnel).
    A,
    /// B: a configured checkpoint-failure policy never restarts the job (StreamPark).
    B,
    /// C: a sink reading several partitions stops after an EOT (NumaFlow).
    C,
    /// D: a pipeline paused with no data never reports drained (NumaFlow).
    D,
    /// Generic: any engine of this kind can grow it.
    Generic,
}

/// A deliberately reintroduced historical bug. Off by default; switched on per run. Its kebab-case name (command
/// line, JSON) comes from `Display` / `FromStr` / `IntoStaticStr`.
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
pub enum Canary {
    /// The sink's input loop leaves at the first EOT it reads, as if that partition's end were the end of input.
    SinkStopsAtFirstEot,
    /// All partition forwarders of a sink replica share one stream to the store (NumaFlow before #2517).
    SharedPartitionStream,
    /// The sink counts EOT markers instead of tracking which partitions ended; a duplicated EOT ends it early.
    EotCountedNotTracked,
    /// In batch mode one failed checkpoint fails the checkpoint coordinator, and the job's end state follows it.
    BatchFinalCheckpointFailsJob,
    /// Recovery redeploys under the same location with no attempt number: nothing is fenced, nothing is awaited.
    RedeployWithoutFencing,
    /// The platform's poller reads only the latest completed checkpoint and drops the failed ones.
    PolicyIgnoresFailedCheckpoints,
    /// The platform counts polls that see a failed checkpoint, not distinct failed checkpoint ids.
    PolicyCountsPollsNotCheckpoints,
    /// The platform never resets its failure window: old failures keep counting.
    PolicyWindowNeverResets,
    /// The platform tests the count before it counts the new failure, so it fires one failure after the threshold.
    PolicyFiresOneObservationLate,
    /// The platform's window is anchored at the first counted failure and compared in whole minutes.
    PolicyWindowWholeMinutes,
    /// Tasks finish once they acknowledged the final checkpoint, before its commit is confirmed.
    FinishedBeforeFinalCommit,
    /// The exactly-once sink commits each write at once instead of when the checkpoint completes.
    CommitBeforeCheckpointComplete,
    /// The replica computation clamps the desired replicas into [scale.min, scale.max], even the 0 a pause asks for.
    PauseClampedToScaleMin,
    /// Resuming leaves `drained_on_pause` set.
    DrainedFlagKeptOnResume,
}

impl Canary {
    /// Every canary, in a stable order (declaration order).
    pub const ALL: &'static [Canary] = <Canary as strum::VariantArray>::VARIANTS;

    /// The kebab-case name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// One line on what the canary reintroduces.
    pub fn description(self) -> &'static str {
        match self {
            Canary::SinkStopsAtFirstEot => {
                "the sink's input loop stops consuming at the first partition EOT it reads"
            }
            Canary::SharedPartitionStream => {
                "a sink replica's per-partition forwarders share one stream to the store, take each other's responses and wait indefinitely"
            }
            Canary::EotCountedNotTracked => {
                "the sink counts EOT markers instead of tracking which partitions ended; a duplicated EOT ends it early"
            }
            Canary::BatchFinalCheckpointFailsJob => {
                "batch: one failed checkpoint fails the checkpoint coordinator, which makes the job FAILED over a complete delivery"
            }
            Canary::RedeployWithoutFencing => {
                "recovery redeploys under the same location without an attempt number: old executions are neither fenced nor awaited"
            }
            Canary::PolicyIgnoresFailedCheckpoints => {
                "the platform's poller reads only the latest completed checkpoint, so its failure branch never runs"
            }
            Canary::PolicyCountsPollsNotCheckpoints => {
                "the platform counts every poll that sees a failed checkpoint, so one failure counts several times"
            }
            Canary::PolicyWindowNeverResets => {
                "the platform anchors its failure window at the first counted failure and never moves it, so after an old failure a burst never fires"
            }
            Canary::PolicyFiresOneObservationLate => {
                "the platform tests count >= max before it counts the new failure (StreamPark 2.1.x), so it fires on the failure after the one that reached max"
            }
            Canary::PolicyWindowWholeMinutes => {
                "the platform's window is anchored at the first counted failure and compared in whole minutes (StreamPark), so a 1-minute window holds failures up to 119 s after the first"
            }
            Canary::FinishedBeforeFinalCommit => {
                "tasks finish once they acknowledged the final checkpoint, so FINISHED comes before the final commit"
            }
            Canary::CommitBeforeCheckpointComplete => {
                "the exactly-once sink commits each write at once, so a failover replays committed records"
            }
            Canary::PauseClampedToScaleMin => {
                "pausing scales the source to 0, but the replica computation clamps that to scale.min (NumaFlow #2398, reported as #2413), so it never drains"
            }
            Canary::DrainedFlagKeptOnResume => "resuming leaves drained_on_pause set while the job runs again",
        }
    }

    /// The bug class the canary comes from.
    pub fn class(self) -> BugClass {
        match self {
            Canary::SinkStopsAtFirstEot | Canary::SharedPartitionStream | Canary::EotCountedNotTracked => BugClass::C,
            Canary::BatchFinalCheckpointFailsJob | Canary::RedeployWithoutFencing => BugClass::A,
            Canary::PolicyIgnoresFailedCheckpoints
            | Canary::PolicyCountsPollsNotCheckpoints
            | Canary::PolicyWindowNeverResets
            | Canary::PolicyFiresOneObservationLate
            | Canary::PolicyWindowWholeMinutes => BugClass::B,
            Canary::FinishedBeforeFinalCommit | Canary::CommitBeforeCheckpointComplete => BugClass::Generic,
            Canary::PauseClampedToScaleMin | Canary::DrainedFlagKeptOnResume => BugClass::D,
        }
    }

    /// Looks a canary up by its kebab-case name.
    pub fn from_name(name: &str) -> Option<Canary> {
        name.parse().ok()
    }
}

/// The set of canaries switched on for one run. Cheap to copy and to test on a hot path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Canaries(u64);

impl Canaries {
    /// No canary: the fixed engine.
    pub const NONE: Canaries = Canaries(0);

    fn bit(c: Canary) -> u64 {
        let index = Canary::ALL.iter().position(|x| *x == c).expect("canary in ALL");
        1 << index
    }

    /// Whether `c` is switched on.
    pub fn has(self, c: Canary) -> bool {
        self.0 & Self::bit(c) != 0
    }

    /// This set with `c` switched on.
    pub fn with(self, c: Canary) -> Canaries {
        Canaries(self.0 | Self::bit(c))
    }

    /// The canaries switched on, in `Canary::ALL` order.
    pub fn list(self) -> Vec<Canary> {
        Canary::ALL.iter().copied().filter(|c| self.has(*c)).collect()
    }
}

impl FromIterator<Canary> for Canaries {
    fn from_iter<I: IntoIterator<Item = Canary>>(iter: I) -> Self {
        iter.into_iter().fold(Canaries::NONE, Canaries::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for &c in Canary::ALL {
            assert_eq!(Canary::from_name(c.name()), Some(c));
            assert!(!c.description().is_empty());
        }
        let set: Canaries = Canary::ALL.iter().copied().collect();
        assert_eq!(set.list(), Canary::ALL.to_vec());
        assert!(!Canaries::NONE.has(Canary::SinkStopsAtFirstEot));
        assert_eq!(Canary::from_name("no-such-canary"), None);
    }
}
