//! The time bounds the checkers judge by, derived from the scenario's `[timings]` (README, "Timings").
//!
//! Each bound is the sum of what the documented mechanism needs (so many heartbeats, ticks, connect waits) and a
//! fixed room for latency, scheduling and a lossy network. The fixed room is chosen so that at the default timings
//! every bound is the value the checkers used before timings could change; a drawn timing moves each bound that
//! depends on it, and only those. The formulas read the scenario's values: no engine code says what they mean.

use sluice_engine::Timings;

/// Every bound a checker needs from the timings, in ms unless named otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// A worker silent this long is lost; the first attempt waits this long at most for every worker to report.
    pub worker_timeout_ms: u64,
    /// A worker reports (its executions, their checkpoint acknowledgements) this often.
    pub heartbeat_ms: u64,
    /// From a crash to the coordinator noticing it: the worker timeout after the last heartbeat, and a tick.
    pub down_noticed_ms: u64,
    /// The store's fence before the first deploy, and a tick.
    pub first_deploy_slack_ms: u64,
    /// The autoscaler looks at the backlog this often.
    pub autoscale_period_ms: u64,
    /// The autoscaler's rule: one replica per this many records of backlog (half a stream window, at least 1).
    pub records_per_replica: u64,
    /// How late a due autoscaler sample may come: a tick and a report's round trip (a heartbeat).
    pub sample_slack_ms: u64,
    /// A pause request reaches the coordinator and the sources stop (a tick, a heartbeat).
    pub stop_bound_ms: u64,
    /// Slack on the pause's grace period: the client's poll, a tick, the cancellation's confirmation (a heartbeat).
    pub grace_slack_ms: u64,
    /// Tasks report what they hold with heartbeats; the controller checks every tick.
    pub drain_check_bound_ms: u64,
    /// Heartbeats a worker may miss in a row before it is lost (the worker timeout over the heartbeat period).
    pub heartbeats_per_timeout: u64,
    /// A worker lost this long after a fault that touched it is explained by the fault.
    pub lost_window_ms: u64,
    /// A task failing this long after a fault is explained by it: streams retry their connects and hellos, and
    /// store responses wait out their timeout, more than once.
    pub task_window_ms: u64,
    /// A checkpoint in flight when a fault on the data path came may expire for it (streams reconnect).
    pub checkpoint_window_ms: u64,
    /// Each vertex a barrier crosses may hold it this long: the barrier waits behind the records ahead of it, and a
    /// sink writes a partial batch (returning its credits upstream) only after its flush interval.
    pub barrier_hop_ms: u64,
    /// The coordinator hears a task's acknowledgement with its heartbeat and looks at it on a tick.
    pub ack_heard_ms: u64,
    /// A fault of the control path only costs a few ticks and heartbeats.
    pub control_window_ms: u64,
    /// The client re-sends a request until the coordinator (every tick) acknowledges it.
    pub phase_bound_ms: u64,
    /// A slowed link shows in the trace within a heartbeat and room.
    pub slow_bound_ms: u64,
    /// A checkpoint decline reaches the coordinator with the next heartbeat and a tick: a shorter checkpoint
    /// timeout may win the race.
    pub decline_race_ms: u64,
    /// A checkpoint's outcome is known a tick and a heartbeat after its timeout.
    pub outcome_slack_ms: u64,
    /// After the pause's grace period: a tick, the cancel, two heartbeats saying the executions stopped.
    pub paused_slack_ms: u64,
    /// After a heal, the coordinator hears a worker's heartbeat again within this.
    pub settle_ms: u64,
    /// A cancelled execution on a reachable worker ends within this: a heartbeat, a tick, a re-sent cancel.
    pub cancel_bound_ms: u64,
    /// How old the coordinator's view of a worker's executions may be (its last heartbeat, and its travel).
    pub report_stale_ms: u64,
    /// How long the coordinator waits for workers to confirm a cancellation (README: the cancel bound).
    pub cancel_wait_ms: u64,
    /// Past the cancel bound: its ticks, the fence's round trip and a heartbeat.
    pub give_up_slack_ms: u64,
}

impl Bounds {
    /// The bounds for these timings.
    pub fn of(t: &Timings) -> Bounds {
        let (hb, tick, wto) = (t.heartbeat_ms, t.tick_ms, t.worker_timeout_ms);
        let bounds = Bounds {
            worker_timeout_ms: wto,
            heartbeat_ms: hb,
            down_noticed_ms: wto + hb + tick + 350,
            first_deploy_slack_ms: tick + 450,
            autoscale_period_ms: t.autoscale_period_ms,
            records_per_replica: (u64::from(t.stream_window) / 2).max(1),
            sample_slack_ms: hb + tick + 850,
            stop_bound_ms: hb + tick + 1_850,
            grace_slack_ms: hb + tick + 850,
            drain_check_bound_ms: 3 * hb + 2 * tick + 1_100,
            heartbeats_per_timeout: wto / hb,
            lost_window_ms: 5 * wto,
            task_window_ms: 5 * t.connect_wait_ms + 4 * t.store_response_timeout_ms,
            checkpoint_window_ms: 5 * t.connect_wait_ms,
            barrier_hop_ms: t.flush_ms,
            ack_heard_ms: hb + tick,
            control_window_ms: 5 * hb + 10 * tick,
            phase_bound_ms: tick + 1_450,
            slow_bound_ms: hb + 900,
            decline_race_ms: hb + tick + 850,
            outcome_slack_ms: hb + tick + 350,
            paused_slack_ms: 2 * hb + tick + 750,
            settle_ms: hb + 900,
            cancel_bound_ms: hb + tick + 1_850,
            report_stale_ms: hb + 900,
            cancel_wait_ms: t.cancel_timeout_ms,
            give_up_slack_ms: hb + tick + 1_350,
        };
        assert!(bounds.down_noticed_ms > bounds.worker_timeout_ms, "noticing a loss takes the timeout and more");
        assert!(bounds.records_per_replica >= 1, "the rule divides by it");
        assert!(bounds.heartbeats_per_timeout >= 1, "validation keeps the timeout above a heartbeat");
        bounds
    }
}

impl Bounds {
    /// How long a checkpoint of a job of `vertices` vertices may take with nothing injected: a checkpoint timeout
    /// shorter than this may expire on a healthy cluster (the timings, not a fault, explain it).
    pub fn checkpoint_need_ms(&self, vertices: usize) -> u64 {
        vertices as u64 * self.barrier_hop_ms + self.ack_heard_ms
    }
}

impl Default for Bounds {
    /// The bounds at the documented default timings.
    fn default() -> Bounds {
        Bounds::of(&crate::scenario::timings::default_timings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::timings::default_timings;

    #[test]
    fn at_the_default_timings_the_bounds_are_the_ones_the_checkers_always_used() {
        let b = Bounds::of(&default_timings());
        assert_eq!((b.worker_timeout_ms, b.down_noticed_ms, b.first_deploy_slack_ms), (1_000, 1_500, 500));
        assert_eq!((b.autoscale_period_ms, b.records_per_replica, b.sample_slack_ms), (2_000, 16, 1_000));
        assert_eq!((b.stop_bound_ms, b.grace_slack_ms, b.drain_check_bound_ms), (2_000, 1_000, 1_500));
        assert_eq!(b.heartbeats_per_timeout, 10);
        assert_eq!((b.checkpoint_need_ms(2), b.checkpoint_need_ms(3)), (250, 300), "below every shipped timeout");
        assert_eq!((b.lost_window_ms, b.task_window_ms, b.checkpoint_window_ms), (5_000, 30_000, 10_000));
        assert_eq!((b.control_window_ms, b.phase_bound_ms, b.slow_bound_ms), (1_000, 1_500, 1_000));
        assert_eq!((b.decline_race_ms, b.outcome_slack_ms, b.paused_slack_ms, b.settle_ms), (1_000, 500, 1_000, 1_000));
        assert_eq!(
            (b.cancel_bound_ms, b.report_stale_ms, b.cancel_wait_ms, b.give_up_slack_ms),
            (2_000, 1_000, 10_000, 1_500)
        );
    }

    #[test]
    fn each_bound_follows_the_timings_it_depends_on() {
        let base = default_timings();
        let slower = Timings { heartbeat_ms: 250, worker_timeout_ms: 3_000, ..base };
        let (a, b) = (Bounds::of(&base), Bounds::of(&slower));
        assert_eq!(b.down_noticed_ms, a.down_noticed_ms + 2_000 + 150);
        assert_eq!(b.lost_window_ms, 15_000);
        assert_eq!(b.cancel_wait_ms, a.cancel_wait_ms, "the cancel bound does not depend on heartbeats");
        let narrow = Timings { stream_window: 1, cancel_timeout_ms: 2_000, ..base };
        let c = Bounds::of(&narrow);
        assert_eq!((c.records_per_replica, c.cancel_wait_ms), (1, 2_000));
        assert_eq!(c.down_noticed_ms, a.down_noticed_ms);
    }
}
