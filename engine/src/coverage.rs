//! Coverage points: named places where a run reaches a rare, interesting state (Antithesis's "sometimes" assertions).
//!
//! A point is reached with [`crate::Tracer::reach`] at the place the state arises. Reaching one records its name on
//! the side: it is not a trace event, it never changes what the engine does, and it does not enter `trace_hash`. The
//! check that decides whether the state holds sits on a path that is itself rare (a duplicated EOT, an expired
//! checkpoint, a fence reply out of turn), so a point that is not reached costs nothing.
//!
//! `sluice explore` counts, per scenario, the runs that reached each point; a scenario lists the points it exists
//! to reach under `[expect] reaches`, and a sweep that never reaches one reports a coverage gap.
//! Most points live in the engine; the ones marked *harness* are reached by the simulation around it (the client).

use serde::{Deserialize, Serialize};

/// A coverage point. Its kebab-case name (scenarios, JSON, the terminal table) comes from serde and strum.
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
#[repr(u8)]
pub enum Point {
    /// A sink read a second EOT of a partition that already ended while another partition it owns was still open
    /// (what a sink that counts EOTs instead of tracking partitions gets wrong).
    DuplicateEotWhileSiblingOpen,
    /// A sink read the barrier of a newer checkpoint while it was still aligning an older one (the older one was
    /// abandoned upstream).
    BarrierSupersedesAligning,
    /// A sink read the barrier of a checkpoint it had already given up or passed.
    StaleBarrierIgnored,
    /// The old executions' cancellation took longer than the restart delay the strategy asked for.
    CancelOutlastsRestartDelay,
    /// The cancellation deadline passed with workers still reporting old executions (the coordinator goes on, fenced).
    CancelUnconfirmed,
    /// The store's answer to the fence of an attempt arrived after the next attempt had begun.
    FenceReplyAfterNextAttempt,
    /// A pause was asked while a checkpoint was in flight.
    PauseWhileCheckpointPending,
    /// A resume came before the pause it gives up had completed.
    ResumeBeforePauseCompleted,
    /// The final checkpoint expired after the sinks had reported every record delivered.
    FinalCheckpointExpiredAfterDelivery,
    /// A batch job whose failed checkpoints will not be restarted settled as FINISHED: everything was committed.
    FailedCheckpointsSettledFinished,
    /// The autoscaler rescaled the job while a checkpoint was in flight (the checkpoint is abandoned).
    RescaleWhileCheckpointPending,
    /// A worker reported a running execution of a superseded attempt, and was told again to cancel it (a zombie).
    ZombieExecutionRecanceled,
    /// The platform's checkpoint-failure policy saw a new failure after an earlier counted one had left its window,
    /// without having fired (where a window that never moves, or moves in whole minutes, goes wrong).
    PolicyFailureAgedOut,
    /// A deploy of an attempt the worker already knew to be superseded arrived late and was not started.
    LateDeployDropped,
    /// The store refused a write of a fenced attempt.
    FencedWriteRejected,
    /// A source delivered a duplicated EOT after its partition had ended.
    EotDuplicatedAfterEnd,
    /// A drain check found every source stopped and nothing pending or awaiting acknowledgement, but an input still
    /// waiting for its pause marker: records or markers were still on a stream.
    DrainWaitsForMarker,
    /// A pause's drain check passed over an execution that had already finished (a sink or map replica whose
    /// partitions all ended): it has nothing to drain.
    PauseBesideFinishedExecution,
    /// *Harness*: the operator asked for a pause while the job was restarting.
    PauseWhileRestarting,
    /// *Harness*: the operator asked for a resume while the job was restarting (after a pause cut short by a failover,
    /// or one asked while restarting).
    ResumeWhileRestarting,
}

impl Point {
    /// Every point, in declaration order.
    pub const ALL: &'static [Point] = <Point as strum::VariantArray>::VARIANTS;

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// The points one run reached: a set with room for 64 points, so that reaching one allocates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached(u64);

impl Reached {
    pub fn insert(&mut self, point: Point) {
        const { assert!(<Point as strum::VariantArray>::VARIANTS.len() <= 64, "a run's points fit one u64") };
        self.0 |= 1 << point as u8;
    }

    pub fn contains(self, point: Point) -> bool {
        self.0 & (1 << point as u8) != 0
    }

    /// The points reached, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Point> {
        Point::ALL.iter().copied().filter(move |p| self.contains(*p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_set_holds_what_was_inserted() {
        for p in Point::ALL {
            assert_eq!(p.name().parse::<Point>().unwrap(), *p);
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
        let mut r = Reached::default();
        assert_eq!(r.iter().count(), 0);
        r.insert(Point::PauseWhileRestarting);
        r.insert(Point::DuplicateEotWhileSiblingOpen);
        r.insert(Point::DuplicateEotWhileSiblingOpen);
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![Point::DuplicateEotWhileSiblingOpen, Point::PauseWhileRestarting]
        );
        assert!(!r.contains(Point::CancelUnconfirmed));
    }
}
