//! The management platform (StreamPark's role). It does not hand its checkpoint-failure policy to the engine: it
//! polls the coordinator's checkpoint statistics every `poll_ms` and enforces the policy itself. When the failed
//! checkpoints (distinct ids) within the trailing window reach `max_failures`, it restarts the job through the
//! coordinator's API, or raises an alert (kept in its alert log, which its API serves: `GetAlerts`); then the count
//! starts over.
//!
//! Canaries living here: `policy-ignores-failed-checkpoints` (only the latest completed checkpoint is read),
//! `policy-counts-polls-not-checkpoints` (every poll that sees a failure counts), `policy-window-never-resets`,
//! `policy-fires-one-observation-late` (the threshold tested before the new failure counts) and
//! `policy-window-whole-minutes` (the window anchored at the first failure, in whole minutes).

use crate::canary::{Canaries, Canary};
use crate::coverage::Point;
use crate::event::{Event, Tracer};
use crate::job::{PolicyAction, PolicySpec};
use crate::net::{Alert, CheckpointStats, Ctrl, CtrlEndpoint, NodeName};
use crate::node::NodeContext;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Times a restart request is sent (it is idempotent per request id).
const RESTART_SENDS: u32 = 5;

/// The policy's own model of failed checkpoints.
pub struct Policy {
    spec: PolicySpec,
    canaries: Canaries,
    /// Failed checkpoints counted, by id, with their failure time.
    counted: BTreeMap<u64, u64>,
    /// Every failed checkpoint id ever counted: an id counts once, however many polls see it.
    seen: BTreeSet<u64>,
    /// Canary `policy-counts-polls-not-checkpoints`: a per-application counter.
    poll_count: u32,
    /// Ids seen by the canary's counter (only to report them).
    poll_ids: Vec<u64>,
    /// A counted failure left the window before the policy fired (coverage: `policy-failure-aged-out`).
    aged_out: bool,
}

/// What the policy decided after one poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    pub action: PolicyAction,
    pub epochs: Vec<u64>,
}

impl Policy {
    pub fn new(spec: PolicySpec, canaries: Canaries) -> Policy {
        let (counted, seen) = (BTreeMap::new(), BTreeSet::new());
        Policy { spec, canaries, counted, seen, poll_count: 0, poll_ids: Vec::new(), aged_out: false }
    }

    /// Takes one poll's statistics; returns the counted failures (id, count after it) and the firings, in order.
    pub fn observe(&mut self, stats: &CheckpointStats) -> (Vec<(u64, u32)>, Vec<Firing>) {
        let (mut counted, mut firings) = (Vec::new(), Vec::new());
        if self.canaries.has(Canary::PolicyCountsPollsNotCheckpoints) {
            // StreamPark 2.1.x (before #4085 and still in its fixed release, #4104): a per-application counter bumped by
            // every poll that sees a failed checkpoint.
            if let Some((epoch, _, _)) = stats.recent_failed.last() {
                self.poll_count += 1;
                self.poll_ids.push(*epoch);
                counted.push((*epoch, self.poll_count));
                if self.poll_count >= self.spec.max_failures {
                    self.poll_count = 0;
                    firings.push(Firing { action: self.spec.action, epochs: std::mem::take(&mut self.poll_ids) });
                }
            }
            return (counted, firings);
        }
        // StreamPark 2.1.4 read the latest completed checkpoint only: the failed ones never reached the policy.
        let failed: &[(u64, u64, String)] =
            if self.canaries.has(Canary::PolicyIgnoresFailedCheckpoints) { &[] } else { &stats.recent_failed };
        let never_resets = self.canaries.has(Canary::PolicyWindowNeverResets);
        let fires_late_canary = self.canaries.has(Canary::PolicyFiresOneObservationLate);
        let whole_minutes_canary = self.canaries.has(Canary::PolicyWindowWholeMinutes);
        for (epoch, at_ms, _) in failed {
            if !self.seen.insert(*epoch) {
                continue; // a failure counts once, however many polls see it
            }
            if fires_late_canary && self.canary_fires_late(*at_ms) {
                // StreamPark 2.1.x: `if (count >= cpMaxFailureInterval) fire else count++`: the failure that finds
                // the count at the threshold fires, and is not counted itself.
                firings.push(Firing { action: self.spec.action, epochs: self.counted.keys().copied().collect() });
                self.counted.clear();
                continue;
            }
            // A failure counted earlier has left the trailing window by this one without the policy firing: the state
            // in which a window that never moves, or moves in whole minutes, goes wrong.
            self.aged_out |= self.counted.values().any(|t| *t + self.spec.window_ms <= *at_ms);
            self.counted.insert(*epoch, *at_ms);
            // The trailing window ends at this failure: older ones leave it.
            let within_window = if never_resets {
                self.canary_window_never_resets(*at_ms)
            } else if whole_minutes_canary {
                self.canary_window_whole_minutes(*epoch, *at_ms);
                true
            } else {
                self.counted.retain(|_, t| *t + self.spec.window_ms > *at_ms);
                true
            };
            let count = self.counted.len() as u32;
            counted.push((*epoch, count));
            if count >= self.spec.max_failures && within_window && !fires_late_canary {
                firings.push(Firing { action: self.spec.action, epochs: self.counted.keys().copied().collect() });
                self.counted.clear(); // the count starts over
            }
        }
        (counted, firings)
    }

    /// Canary `policy-window-never-resets` (streampark#4255): the window is anchored at the first counted failure and
    /// never moves on; once that failure is older than the window, the count grows but the policy never fires again.
    fn canary_window_never_resets(&self, at_ms: u64) -> bool {
        self.counted.values().min().is_some_and(|first| first + self.spec.window_ms > at_ms)
    }

    /// Canary `policy-fires-one-observation-late`: whether the count of failures still within the trailing window
    /// ending at `at_ms` has already reached the threshold when this failure is observed.
    fn canary_fires_late(&mut self, at_ms: u64) -> bool {
        self.counted.retain(|_, t| *t + self.spec.window_ms > at_ms);
        self.counted.len() as u32 >= self.spec.max_failures
    }

    /// Canary `policy-window-whole-minutes`: StreamPark's window (after #4255) starts at the first counted failure
    /// and holds a failure while `(now - first) / 60 s <= window in whole minutes`; a failure past it starts the
    /// count over from itself.
    fn canary_window_whole_minutes(&mut self, epoch: u64, at_ms: u64) {
        let first = self.counted.values().min().copied().unwrap_or(at_ms);
        if at_ms.saturating_sub(first) / 60_000 > self.spec.window_ms / 60_000 {
            self.counted.clear();
            self.counted.insert(epoch, at_ms);
        }
    }
}

/// The alerts raised, as the platform's API shows them (StreamPark keeps them in its alert table).
#[derive(Default)]
struct Alerts {
    raised: Vec<Alert>,
}

impl Alerts {
    /// Alerts kept; beyond, the oldest are dropped (a reader that far behind has lost them, as with any bounded log).
    const KEEP: usize = 256;

    fn raise(&mut self, epochs: Vec<u64>, tracer: &Tracer) {
        let id = self.raised.last().map_or(1, |a| a.id + 1);
        assert!(self.raised.iter().all(|a| a.id < id), "alert ids move forward");
        tracer.emit(Event::AlertRaised { id, epochs: epochs.clone() });
        crate::history::push_bounded(&mut self.raised, Alert { id, epochs }, Self::KEEP);
    }

    /// The alerts after alert `after`, oldest first, at most a page.
    fn after(&self, after: u64) -> Vec<Alert> {
        self.raised.iter().filter(|a| a.id > after).take(Alert::PAGE).cloned().collect()
    }
}

/// Runs the platform node.
pub async fn run(ctx: NodeContext) {
    let Some(spec) = ctx.spec.policy else { return };
    let tracer: Tracer = ctx.tracer("platform");
    let ctrl = CtrlEndpoint::bind(NodeName::Platform, ctx.faults.clone(), tracer.clone())
        .await
        .expect("platform control port is free");
    let mut policy = Policy::new(spec, ctx.canaries);
    let mut request = 0u64;
    let mut restart: Option<(u64, String, u32)> = None;
    // A poll at once, then every `poll_ms`, on one deadline (one simulated timer per poll, not one per message).
    let poll_every = Duration::from_millis(spec.poll_ms);
    let mut poll = crate::timer::Deadline::after(Duration::ZERO);
    let mut alerts = Alerts::default();
    // The statistics read in flight, and until when its answer is taken.
    let mut awaiting: Option<(u64, tokio::time::Instant)> = None;
    loop {
        tokio::select! {
            biased;
            _ = &mut poll => {
                poll.reset(poll.deadline() + poll_every);
                if let Some((id, cause, left)) = restart.as_mut() {
                    ctrl.send(NodeName::Coordinator, Ctrl::RestartJob { request: *id, cause: cause.clone() }).await;
                    *left -= 1;
                    assert!(*left < RESTART_SENDS, "a restart request is sent at most {RESTART_SENDS} times");
                    if *left == 0 {
                        restart = None;
                    }
                }
                request += 1;
                ctrl.send(NodeName::Coordinator, Ctrl::GetCheckpointStats { request }).await;
                let deadline = crate::timer::now() + Duration::from_millis(spec.poll_ms.min(1_000));
                awaiting = Some((request, deadline));
            }
            received = ctrl.recv() => match received {
                Ok((Ctrl::CheckpointStats { request: r, stats }, _))
                    if awaiting.is_some_and(|(a, until)| a == r && crate::timer::now() <= until) =>
                {
                    awaiting = None;
                    let firings = observe(&mut policy, &stats, &tracer);
                    for f in firings {
                        if f.action == PolicyAction::Alert {
                            alerts.raise(f.epochs, &tracer);
                            continue;
                        }
                        let previous = request;
                        request += 1;
                        assert!(request > previous, "restart request ids move forward");
                        let cause = format!("checkpoint-failure policy: checkpoints {:?} failed", f.epochs);
                        ctrl.send(NodeName::Coordinator, Ctrl::RestartJob { request, cause: cause.clone() }).await;
                        restart = Some((request, cause, RESTART_SENDS));
                    }
                }
                // The platform's API answers whenever it is asked.
                Ok((Ctrl::GetAlerts { request: r, after }, from)) => {
                    assert_eq!(from.ip(), NodeName::Client.ip(), "only the client reads alerts");
                    ctrl.send(NodeName::Client, Ctrl::Alerts { request: r, alerts: alerts.after(after) }).await;
                }
                Ok(_) => {}
                // This node's network is gone: nothing to read for a while.
                Err(_) => tokio::time::sleep(Duration::from_millis(spec.poll_ms.min(1_000))).await,
            },
        }
    }
}

/// Feeds one poll's statistics to the policy and traces what it counted and how it fired.
fn observe(policy: &mut Policy, stats: &CheckpointStats, tracer: &Tracer) -> Vec<Firing> {
    let (counted, firings) = policy.observe(stats);
    if std::mem::take(&mut policy.aged_out) {
        tracer.reach(Point::PolicyFailureAgedOut);
    }
    for (epoch, count) in counted {
        tracer.emit(Event::PolicyFailureCounted { epoch, count });
    }
    for f in &firings {
        tracer.emit(Event::PolicyFired { action: f.action, epochs: f.epochs.clone() });
    }
    firings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(failed: &[(u64, u64)]) -> CheckpointStats {
        CheckpointStats {
            latest_completed: None,
            recent_failed: failed.iter().map(|(e, t)| (*e, *t, "x".into())).collect(),
        }
    }

    fn policy(canaries: Canaries) -> Policy {
        Policy::new(
            PolicySpec { window_ms: 1_000, max_failures: 2, action: PolicyAction::Restart, poll_ms: 100 },
            canaries,
        )
    }

    #[test]
    fn fires_on_distinct_failures_within_the_window_and_starts_over() {
        let mut p = policy(Canaries::NONE);
        assert!(p.observe(&stats(&[(1, 100)])).1.is_empty());
        assert!(p.observe(&stats(&[(1, 100)])).1.is_empty(), "one failure seen twice counts once");
        assert_eq!(p.observe(&stats(&[(1, 100), (2, 900)])).1[0].epochs, vec![1, 2]);
        assert!(p.observe(&stats(&[(1, 100), (2, 900), (3, 2_500)])).1.is_empty(), "the count started over");
        assert!(p.observe(&stats(&[(3, 2_500), (4, 4_000)])).1.is_empty(), "3 left the window");
        let mut burst = policy(Canaries::NONE);
        assert_eq!(burst.observe(&stats(&[(1, 10), (2, 20), (3, 30), (4, 40)])).1.len(), 2, "two firings in one poll");
    }

    #[test]
    fn the_alert_log_numbers_alerts_pages_them_and_stays_bounded() {
        struct Nowhere;
        impl crate::event::Recorder for Nowhere {
            fn record(&self, _node: &std::sync::Arc<str>, _event: Event) {}
        }
        let tracer = Tracer::new("platform", std::sync::Arc::new(Nowhere));
        let mut log = Alerts::default();
        assert!(log.after(0).is_empty());
        for i in 0..(Alerts::KEEP as u64 + 10) {
            log.raise(vec![i], &tracer);
        }
        assert_eq!(log.raised.len(), Alerts::KEEP, "bounded");
        let ids = |alerts: Vec<Alert>| alerts.iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(ids(log.after(0)), (11..11 + Alert::PAGE as u64).collect::<Vec<_>>(), "the oldest were dropped");
        assert_eq!(ids(log.after(263)), vec![264, 265, 266], "the last page");
        assert!(log.after(266).is_empty());
        assert_eq!(log.after(20)[0].epochs, vec![20], "alert n+1 holds the n-th firing's checkpoints");
    }

    #[test]
    fn each_canary_breaks_its_part() {
        let mut ignores = policy(Canaries::NONE.with(Canary::PolicyIgnoresFailedCheckpoints));
        assert!(ignores.observe(&stats(&[(1, 100), (2, 200)])).1.is_empty());
        let mut polls = policy(Canaries::NONE.with(Canary::PolicyCountsPollsNotCheckpoints));
        assert!(polls.observe(&stats(&[(1, 100)])).1.is_empty());
        assert_eq!(polls.observe(&stats(&[(1, 100)])).1.len(), 1, "one failure, two polls");
        // An old failure anchors the window for good: a later burst that fits the window never fires.
        let mut window = policy(Canaries::NONE.with(Canary::PolicyWindowNeverResets));
        assert!(window.observe(&stats(&[(1, 100)])).1.is_empty());
        assert!(window.observe(&stats(&[(1, 100), (2, 5_000), (3, 5_100)])).1.is_empty(), "2 and 3 should fire");
        let mut fixed = policy(Canaries::NONE);
        assert!(fixed.observe(&stats(&[(1, 100)])).1.is_empty());
        assert_eq!(fixed.observe(&stats(&[(1, 100), (2, 5_000), (3, 5_100)])).1[0].epochs, vec![2, 3]);
    }
}
