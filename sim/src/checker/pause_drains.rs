//! `pause-drains` (class D):
//! - D1: a pause requested at t0 with nothing in flight ⇒ by t0 + grace, PAUSED with `drained_on_pause = true`
//!   (unless a crash, isolation or clog of the store, the coordinator or a worker that runs the current attempt, or a
//!   failover, intervenes, or a resume comes first); and, with data or without, once a pause in progress has no
//!   source execution of the current attempt running and every record it emitted acknowledged by the store, a drain
//!   check finds it drained within `bounds.drain_check_bound_ms` (under the same excuses), unless the grace period
//!   of PAUSING ends first: then the pause is decided undrained (NumaFlow pauses once the grace period has passed or
//!   the drain completed, whichever comes first);
//! - D2: `drained_on_pause = true` ⇒ at that instant no source execution runs and every record emitted was
//!   acknowledged by the store, and a drain check since the pause request found no source running and nothing pending
//!   or awaiting acknowledgement; a drain check is made only once no source replica runs (as it counts them, and as
//!   the trace shows the current attempt's source executions); a drain check that finds the buffers drained finds
//!   what the trace shows: every record the attempt emitted acknowledged by the store (unless a fault or failover of
//!   the pause excuses it); the flag is false whenever the job is RUNNING again (as the coordinator reports it and as
//!   the API shows it);
//! - D3: while a pause is desired, the source runs no replica (whatever `scale.min` says) once the pause had time to
//!   reach it: within a bound of the pause, or of the heal of the node that holds the replica if it was cut off (an
//!   isolated worker's executions cannot be told to stop until it is reachable again), or of the end of its
//!   worker's announced cancellation delay (`cancel-delayed`, an injected `slow-cancel`: it runs on meanwhile);
//! - D4: a pause in progress ends, drained or not: PAUSED (or out of PAUSING another way) within the grace period of
//!   PAUSING, + slack, + the cancel bound when the coordinator ↔ worker path was disrupted (its own model, in
//!   `pause_grace.rs`); and PAUSING ends in an undrained PAUSED no sooner than its grace period (counted from when
//!   the job last entered PAUSING; a pause decided while restarting never was PAUSING and is not bound).

use super::kinds::{after_ms, at_ms};
use super::pause_grace::PauseGrace;
use super::reachability::Reachability;
use super::{Checker, DistinctIds, End, FailureClass, Kinds, Setup, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::{Event, EventKind, JobStatus, RecordId};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const NAME: &str = "pause-drains";

#[derive(Debug)]
pub struct PauseDrains {
    /// The time bounds, from the scenario's timings.
    bounds: super::bounds::Bounds,
    grace_ms: u64,
    /// Emitted and acknowledged by the store to the sink, in the current attempt (an older attempt's records are
    /// not in flight: its executions are gone or fenced, and a new attempt replays what it did not deliver).
    emitted: DistinctIds,
    acked: DistinctIds,
    in_flight: u64,
    /// The current attempt (the last deployed), and the workers it was placed on.
    attempt: u32,
    placed: BTreeSet<String>,
    /// Live source executions: (node, replica, attempt).
    sources: BTreeSet<(String, u16, u32)>,
    /// Source executions whose cancellation the worker announced as delayed (`slow-cancel`): until when they run on.
    slow_until_ms: BTreeMap<(String, u16, u32), u64>,
    /// D1: (requested at, deadline) of a pause requested with nothing in flight.
    d1: Option<(u64, u64)>,
    /// D1, once drained: since when the pause in progress has had nothing in flight and no source running; whether a
    /// fault of a node the job runs on excuses it until the next pause.
    drained_since: Option<u64>,
    drain_excused: bool,
    /// When the job last entered PAUSING: its grace period ends the drain clock.
    pausing_since_ms: Option<u64>,
    /// D3: when the coordinator took the pause request, until a resume.
    d3_since: Option<u64>,
    d3_flagged: bool,
    /// Which nodes are cut off, and since when each is reachable again.
    net: Reachability,
    flag: bool,
    /// Since the last pause request: whether a drain check found the buffers drained.
    drained_check: bool,
    /// The job status as the coordinator reports it.
    status: JobStatus,
    /// D4.
    grace: PauseGrace,
    violations: Vec<Violation>,
}

impl PauseDrains {
    pub fn new(setup: &Setup) -> PauseDrains {
        PauseDrains {
            bounds: setup.bounds,
            grace_ms: setup.pause_grace_period_ms,
            emitted: DistinctIds::new(),
            acked: DistinctIds::new(),
            in_flight: 0,
            attempt: 0,
            placed: BTreeSet::new(),
            sources: BTreeSet::new(),
            slow_until_ms: BTreeMap::new(),
            d1: None,
            drained_since: None,
            drain_excused: false,
            pausing_since_ms: None,
            d3_since: None,
            d3_flagged: false,
            net: Reachability::default(),
            flag: false,
            drained_check: false,
            status: JobStatus::Created,
            grace: PauseGrace::new(setup.pause_grace_period_ms, setup.bounds),
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, at_ms: u64, class: FailureClass, detail: String) {
        self.violations.push(Violation::new(NAME, at_ms, class, detail));
    }

    fn check_deadlines(&mut self, now_ms: u64) {
        if let Some(v) = self.grace.check(now_ms) {
            self.violations.push(v);
        }
        if let Some(t) = self.drained_since.filter(|t| now_ms > t + self.bounds.drain_check_bound_ms) {
            self.drained_since = None;
            self.drain_excused = true; // once per pause
            let grace_end_ms = self.pausing_since_ms.map(|p| p + self.grace_ms);
            if grace_end_ms.is_some_and(|g| g <= t + self.bounds.drain_check_bound_ms) {
                return self.check_d1_and_d3(now_ms); // the grace period decided the pause before a check was due
            }
            let drain_check_bound_ms = self.bounds.drain_check_bound_ms;
            let detail = format!(
                "pausing with no source running and nothing in flight since {t} ms, but no drain check found it drained \
                 within {drain_check_bound_ms} ms"
            );
            self.violation(t + self.bounds.drain_check_bound_ms, FailureClass::Liveness, detail);
        }
        self.check_d1_and_d3(now_ms);
    }

    /// D3: by when the source execution `key` must have stopped, for a pause desired since `since` (`None` while its
    /// node is cut off). A source whose cancellation the worker delays (an injected `slow-cancel`) runs on until that
    /// delay is over.
    fn stop_deadline_ms(&self, since: u64, key: &(String, u16, u32)) -> Option<u64> {
        let slow_until_ms = self.slow_until_ms.get(key).copied().unwrap_or(0);
        let from = since.max(self.net.reachable_since_ms(&key.0)).max(slow_until_ms);
        (!self.net.cut_off(&key.0)).then_some(from + self.bounds.stop_bound_ms)
    }

    fn check_d1_and_d3(&mut self, now_ms: u64) {
        if let Some((t0, deadline)) = self.d1.filter(|(_, d)| now_ms > *d) {
            self.d1 = None;
            let detail =
                format!("pause requested at {t0} ms with nothing in flight, not PAUSED and drained by {deadline} ms");
            self.violation(deadline, FailureClass::Liveness, detail);
        }
        let Some(since) = self.d3_since.filter(|_| !self.d3_flagged) else { return };
        // Find a late source without allocating; describe them only once one is.
        let deadline = |key: &(String, u16, u32)| self.stop_deadline_ms(since, key);
        let late = |key: &&(String, u16, u32)| deadline(key).is_some_and(|d| now_ms > d);
        let Some(first) = self.sources.iter().filter(late).filter_map(deadline).min() else { return };
        let live: Vec<String> =
            self.sources.iter().filter(late).map(|(n, r, a)| format!("replica {r} on {n} (attempt {a})")).collect();
        self.d3_flagged = true;
        let stop_bound_ms = self.bounds.stop_bound_ms;
        let detail = format!(
            "pause desired since {since} ms, but {stop_bound_ms} ms later (counted from the heal of a node that was cut \
             off, or from the end of an announced slow cancellation) the source still runs: {}",
            live.join(", ")
        );
        self.violation(first, FailureClass::Safety, detail);
    }

    /// D4's other side: PAUSING ends in an undrained PAUSED only once its grace period has passed (NumaFlow pauses
    /// when the drain completed or the grace period passed). Both clocks count whole milliseconds from different
    /// starts, hence the 1 ms of rounding.
    fn check_undrained_not_early(&mut self, at_ms: u64) {
        let Some(since_ms) = self.pausing_since_ms else { return };
        let grace_end_ms = since_ms + self.grace_ms;
        if !self.flag && at_ms + 1 < grace_end_ms {
            let detail = format!(
                "PAUSED with drained_on_pause = false at {at_ms} ms, {} ms into a pause whose grace period of {} ms \
                 runs from PAUSING at {since_ms} ms: an undrained pause waits out its grace period",
                at_ms - since_ms,
                self.grace_ms
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }
}

impl Checker for PauseDrains {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.check_deadlines(at_ms);
        self.grace.on_entry(entry);
        match &entry.event {
            TraceEvent::Fault(action) => match action {
                // D1 is about a pause that starts from RUNNING; asking again while pausing or paused is a no-op.
                // A job node cut off or slowed, or delayed datagrams still arriving, excuse D1 as a fault during
                // the pause would.
                Action::Pause if self.in_flight == 0 && self.status == JobStatus::Running && !self.unsettled(at_ms) => {
                    self.d1 = Some((at_ms, at_ms + self.grace_ms + self.bounds.grace_slack_ms));
                }
                Action::Resume => self.d1 = None,
                // A fault of a node the job runs on may legitimately end the pause undrained.
                Action::Crash { .. }
                | Action::Restart { .. }
                | Action::Isolate { .. }
                | Action::Clog { .. }
                | Action::Slow { .. }
                    if action.nodes().iter().any(|n| self.runs_on(n)) =>
                {
                    self.d1 = None;
                    self.drain_excused = true;
                }
                _ => {}
            },
            TraceEvent::Observed { status: JobStatus::Running, drained_on_pause: true } => {
                self.violation(
                    at_ms,
                    FailureClass::Safety,
                    "the API shows RUNNING with drained_on_pause = true".into(),
                );
            }
            TraceEvent::Observed { .. } | TraceEvent::Alerted { .. } => {}
            TraceEvent::Engine(event) => {
                if let Event::StatusChanged { to, .. } = event {
                    if *to == JobStatus::Paused && self.status == JobStatus::Pausing {
                        self.check_undrained_not_early(at_ms);
                    }
                    if *to == JobStatus::Pausing && self.status != JobStatus::Pausing {
                        self.pausing_since_ms = Some(at_ms);
                    }
                    self.status = *to;
                }
                self.on_engine_event(event, &entry.node, at_ms);
            }
        }
        self.track_drained(at_ms);
        // A crash ends the executions of its node.
        if let TraceEvent::Fault(action) = &entry.event {
            self.net.apply(action, at_ms);
            if let Action::Crash { node } | Action::Restart { node } = action {
                let node = node.label();
                self.sources.retain(|(n, _, _)| *n != node);
                self.slow_until_ms.retain(|(n, _, _), _| *n != node);
            }
        }
    }

    fn kinds(&self) -> Kinds {
        PauseGrace::KINDS.and(Kinds::FAULT).and(Kinds::OBSERVED).and(Kinds::engine(&[
            EventKind::StatusChanged,
            EventKind::AttemptDeployed,
            EventKind::Emitted,
            EventKind::SinkResponse,
            EventKind::ExecutionStarted,
            EventKind::ExecutionEnded,
            EventKind::CancelDelayed,
            EventKind::PauseRequested,
            EventKind::ResumeRequested,
            EventKind::FailureDetected,
            EventKind::DrainChecked,
            EventKind::DrainedFlag,
        ]))
    }

    /// The first of its deadlines, or when the drained pause it waits to time (`track_drained`) settles.
    fn wake_at_us(&self) -> u64 {
        let drained = self.drained_since.map(|t| after_ms(t + self.bounds.drain_check_bound_ms));
        let d1 = self.d1.map(|(_, deadline)| after_ms(deadline));
        let d3 = self.d3_since.filter(|_| !self.d3_flagged).and_then(|since| {
            self.sources.iter().filter_map(|key| self.stop_deadline_ms(since, key)).min().map(after_ms)
        });
        [Some(self.grace.wake_at_us()), drained, d1, d3, self.settles_drained_at_us()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX)
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_deadlines(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

impl PauseDrains {
    /// D1 once drained: starts the clock when a pause in progress has no source running and nothing in flight.
    /// When `track_drained` would start timing a drained pause that only an unsettled network holds back: the
    /// moment the last of its nodes is reachable again (`None`: nothing to time, or a node is still cut off).
    fn settles_drained_at_us(&self) -> Option<u64> {
        if !self.drained_now() || self.drain_excused || self.drained_check || self.drained_since.is_some() {
            return None;
        }
        let nodes = || ["coordinator", "store"].into_iter().chain(self.placed.iter().map(String::as_str));
        if nodes().any(|n| self.net.cut_off(n)) {
            return None;
        }
        nodes().map(|n| self.net.reachable_since_ms(n)).max().map(at_ms)
    }

    /// Pausing, with no source execution of the current attempt running and nothing in flight.
    fn drained_now(&self) -> bool {
        let current_sources = self.sources.iter().any(|(_, _, a)| *a >= self.attempt);
        self.status == JobStatus::Pausing && !current_sources && self.in_flight == 0
    }

    fn track_drained(&mut self, at_ms: u64) {
        if !self.drained_now() || self.drain_excused || self.drained_check || self.unsettled(at_ms) {
            self.drained_since = None;
        } else if self.drained_since.is_none() {
            self.drained_since = Some(at_ms);
        }
    }

    /// Whether a node the job runs on is cut off (or an end of a slowed link) now, or what a slowed link delayed
    /// may still be arriving: the drain clock waits for it.
    fn unsettled(&self, at_ms: u64) -> bool {
        // Runs on every trace entry while a pause is drained: no allocation.
        ["coordinator", "store"]
            .into_iter()
            .chain(self.placed.iter().map(String::as_str))
            .any(|n| self.net.cut_off(n) || self.net.reachable_since_ms(n) > at_ms)
    }

    /// Whether the job depends on `node` now: the store, the coordinator, or a worker of the current attempt.
    fn runs_on(&self, node: &sluice_engine::net::NodeName) -> bool {
        !matches!(node, sluice_engine::net::NodeName::Worker(_)) || self.placed.contains(&node.label())
    }

    fn on_emitted(&mut self, id: RecordId) {
        let new = self.emitted.add(id.partition, id.offset);
        if new && !self.acked.contains(id.partition, id.offset) {
            self.in_flight += 1;
        }
    }

    fn on_acked(&mut self, id: RecordId) {
        let new = self.acked.add(id.partition, id.offset);
        if new && self.emitted.contains(id.partition, id.offset) {
            self.in_flight -= 1;
        }
    }

    fn on_engine_event(&mut self, event: &Event, node: &str, at_ms: u64) {
        match event {
            Event::AttemptDeployed { attempt, placement, .. } => {
                self.attempt = *attempt;
                self.placed = placement.iter().map(|(_, w)| sluice_engine::net::NodeName::Worker(*w).label()).collect();
                self.emitted.clear();
                self.acked.clear();
                self.in_flight = 0;
            }
            // A zombie of an older attempt (cut off, not yet canceled) may still emit: its records are not in flight.
            Event::Emitted { id, attempt } if *attempt == self.attempt => self.on_emitted(*id),
            Event::SinkResponse { response: sluice_engine::StoreResponse::Ack(id), attempt, .. }
                if *attempt == self.attempt =>
            {
                self.on_acked(*id)
            }
            Event::ExecutionStarted { task, attempt } if task.vertex == 0 => {
                self.sources.insert((node.to_string(), task.replica, *attempt));
            }
            Event::ExecutionEnded { task, attempt, .. } if task.vertex == 0 => {
                let key = (node.to_string(), task.replica, *attempt);
                self.sources.remove(&key);
                self.slow_until_ms.remove(&key);
            }
            Event::CancelDelayed { task, attempt, by_ms } if task.vertex == 0 => {
                self.slow_until_ms.insert((node.to_string(), task.replica, *attempt), at_ms + by_ms);
            }
            Event::PauseRequested => {
                // Asking again while pausing or paused changes nothing: the pause in progress keeps its drain check.
                if !matches!(self.status, JobStatus::Pausing | JobStatus::Paused) {
                    self.drained_check = false;
                    self.drain_excused = false;
                }
                self.d3_since = Some(at_ms);
                self.d3_flagged = false;
            }
            Event::ResumeRequested => self.d3_since = None,
            Event::FailureDetected { .. } => {
                self.d1 = None;
                self.drain_excused = true;
            }
            Event::DrainChecked { sources_running, pending, ack_pending, drained } => {
                // README, "Lifecycle": the drain check runs once no source replica runs; the coordinator learns that
                // from the workers' reports, which come after the executions ended.
                let live = self.sources.iter().filter(|(_, _, a)| *a >= self.attempt).count();
                if *sources_running > 0 || live > 0 {
                    let detail = format!(
                        "a drain check was made while source replicas run ({sources_running} as it counts them, {live} \
                         in the trace): the check runs only once none does"
                    );
                    self.violation(at_ms, FailureClass::Safety, detail);
                }
                if *drained && (*sources_running, *pending, *ack_pending) != (0, 0, 0) {
                    let detail = format!(
                        "a drain check found {sources_running} source(s) running, {pending} pending and {ack_pending} \
                         awaiting acknowledgement, and called it drained"
                    );
                    self.violation(at_ms, FailureClass::Safety, detail);
                } else if *drained && self.in_flight > 0 && !self.drain_excused {
                    // What the check counted is the engine's; what was emitted and not acknowledged is the trace's.
                    let detail = format!(
                        "a drain check called the buffers drained while {} record(s) emitted in this attempt were not \
                         yet acknowledged by the store",
                        self.in_flight
                    );
                    self.violation(at_ms, FailureClass::Safety, detail);
                }
                self.drained_check |= *drained;
                if *drained {
                    self.drained_since = None;
                }
            }
            Event::DrainedFlag { value: true } if !self.drained_check => {
                self.flag = true;
                let detail = "drained_on_pause set with no drain check that found the buffers drained".to_string();
                self.violation(at_ms, FailureClass::Safety, detail);
            }
            Event::DrainedFlag { value } => {
                self.flag = *value;
                // Sources of the current attempt: a zombie of a superseded attempt on a cut-off worker is fenced (it
                // cannot deliver) and is D3's and single-live-execution's business.
                let running = self.sources.iter().filter(|(_, _, a)| *a >= self.attempt).count();
                if *value && (running > 0 || self.in_flight > 0) {
                    let detail = format!(
                        "drained_on_pause set while {running} source execution(s) run and {} record(s) are in flight",
                        self.in_flight
                    );
                    self.violation(at_ms, FailureClass::Safety, detail);
                }
            }
            Event::StatusChanged { to: JobStatus::Paused, .. } => {
                if let Some((t0, _)) = self.d1.take() {
                    if !self.flag {
                        let detail = format!(
                            "pause requested at {t0} ms with nothing in flight, PAUSED with drained_on_pause = false"
                        );
                        self.violation(at_ms, FailureClass::Safety, detail);
                    }
                }
            }
            Event::StatusChanged { to: JobStatus::Running, .. } if self.flag => {
                self.violation(at_ms, FailureClass::Safety, "RUNNING again with drained_on_pause still true".into());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::{ExecOutcome, TaskId};

    fn source(ms: u64, started: bool) -> TraceEntry {
        let task = TaskId { vertex: 0, replica: 0 };
        let event = if started {
            Event::ExecutionStarted { task, attempt: 1 }
        } else {
            Event::ExecutionEnded { task, attempt: 1, outcome: ExecOutcome::Paused }
        };
        at(ms, "worker-1", event)
    }

    fn paused(ms: u64) -> TraceEntry {
        status(ms, JobStatus::Pausing, JobStatus::Paused)
    }

    fn flag(ms: u64, value: bool) -> TraceEntry {
        at(ms, "coordinator", Event::DrainedFlag { value })
    }

    fn checked(ms: u64, drained: bool) -> TraceEntry {
        let event = Event::DrainChecked { sources_running: 0, pending: 0, ack_pending: 0, drained };
        at(ms, "coordinator", event)
    }

    fn requested(ms: u64) -> TraceEntry {
        at(ms, "coordinator", Event::PauseRequested)
    }

    #[test]
    fn passes_on_a_drained_pause_and_a_clean_resume() {
        let trace = vec![
            source(0, true),
            status(300, JobStatus::Scheduled, JobStatus::Running),
            fault(1_000, Action::Pause),
            requested(1_050),
            source(1_100, false),
            checked(1_200, true),
            flag(1_200, true),
            paused(1_200),
            fault(5_000, Action::Resume),
            flag(5_050, false),
            status(5_300, JobStatus::Scheduled, JobStatus::Running),
        ];
        assert!(run(&mut PauseDrains::new(&setup(vec![1])), &trace, 40_000).is_empty());
    }

    #[test]
    fn d2_a_drain_check_that_calls_it_drained_with_records_unacknowledged_fails() {
        let id = RecordId { partition: 0, offset: 0 };
        let deployed =
            at(0, "coordinator", Event::AttemptDeployed { attempt: 1, start_offsets: vec![0], placement: vec![] });
        let emitted = at(500, "worker-1", Event::Emitted { id, attempt: 1 });
        let response = sluice_engine::StoreResponse::Ack(id);
        let stream = "v1#0/p0".to_string();
        let acked = at(
            1_150,
            "worker-1",
            Event::SinkResponse { attempt: 1, task: sink(), partition: 0, stream: stream.into(), response },
        );
        let base = vec![
            deployed,
            source(0, true),
            status(300, JobStatus::Scheduled, JobStatus::Running),
            emitted,
            fault(1_000, Action::Pause),
            requested(1_050),
            source(1_100, false),
        ];
        let in_order = [base.clone(), vec![acked.clone(), checked(1_200, true), flag(1_200, true), paused(1_200)]];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &in_order.concat(), 10_000);
        assert!(v.is_empty(), "{v:?}");
        let early = [base, vec![checked(1_120, true), acked, flag(1_200, true), paused(1_200)]];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &early.concat(), 10_000);
        assert!(v.len() == 1 && v[0].detail.contains("1 record(s) emitted in this attempt"), "{v:?}");
    }

    #[test]
    fn d1_and_d3_fail_when_the_source_keeps_running_and_the_grace_expires() {
        let running = status(300, JobStatus::Scheduled, JobStatus::Running);
        let trace = vec![source(0, true), running, fault(1_000, Action::Pause), requested(1_050), paused(31_000)];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &trace, 40_000);
        assert!(v.iter().any(|v| v.detail.contains("still runs")), "D3: {v:?}");
        assert!(v.iter().any(|v| v.detail.contains("drained_on_pause = false")), "D1: {v:?}");
    }

    #[test]
    fn d3_waits_for_an_isolated_node_to_heal_and_then_holds_it_to_the_bound() {
        let running = status(300, JobStatus::Scheduled, JobStatus::Running);
        let base = vec![
            source(0, true),
            running,
            fault(900, Action::Isolate { node: worker(1) }),
            fault(1_000, Action::Pause),
            requested(1_050),
        ];
        let cut_off_long =
            [base.clone(), vec![fault(9_000, Action::Heal { node: worker(1) }), source(10_500, false)]].concat();
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &cut_off_long, 12_000);
        assert!(v.iter().all(|v| !v.detail.contains("still runs")), "stopped 1.5 s after the heal: {v:?}");
        let never_stops = [base, vec![fault(9_000, Action::Heal { node: worker(1) })]].concat();
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &never_stops, 12_000);
        let d3: Vec<_> = v.iter().filter(|v| v.detail.contains("still runs")).collect();
        assert_eq!(d3.len(), 1, "{v:?}");
        assert_eq!(d3[0].at_ms, 11_000, "the bound counts from the heal");
    }

    #[test]
    fn d3_lets_a_source_run_out_its_announced_slow_cancellation_and_no_longer() {
        let running = status(300, JobStatus::Scheduled, JobStatus::Running);
        let task = TaskId { vertex: 0, replica: 0 };
        let delayed = at(800, "worker-1", Event::CancelDelayed { task, attempt: 1, by_ms: 5_000 });
        let base = vec![source(0, true), running, delayed, fault(1_000, Action::Pause), requested(1_050)];
        let ends_then = [base.clone(), vec![source(5_800, false)]].concat();
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &ends_then, 12_000);
        assert!(v.iter().all(|v| !v.detail.contains("still runs")), "ended with its slow cancel: {v:?}");
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &base, 12_000);
        let d3: Vec<_> = v.iter().filter(|v| v.detail.contains("still runs")).collect();
        assert_eq!(d3.len(), 1, "{v:?}");
        assert_eq!(d3[0].at_ms, 7_800, "the bound counts from the end of the announced delay");
    }

    #[test]
    fn d2_counts_records_of_the_current_attempt_only() {
        let deployed = |ms, attempt| {
            at(ms, "coordinator", Event::AttemptDeployed { attempt, start_offsets: vec![0], placement: vec![] })
        };
        let emitted =
            |ms, attempt, offset| at(ms, "worker-1", Event::Emitted { attempt, id: RecordId { partition: 0, offset } });
        let trace = |zombie: u32| {
            vec![
                deployed(0, 2),
                status(300, JobStatus::Scheduled, JobStatus::Running),
                emitted(400, zombie, 7),
                fault(1_000, Action::Pause),
                checked(1_200, true),
                flag(1_200, true),
                paused(1_200),
            ]
        };
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &trace(1), 40_000);
        assert!(v.is_empty(), "a record of a superseded attempt is not in flight: {v:?}");
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &trace(2), 40_000);
        assert!(v.iter().any(|v| v.detail.contains("1 record(s) are in flight")), "{v:?}");
    }

    /// NumaFlow pauses undrained only once the grace period passed; a pause that inherits an older pause's start
    /// (one cut short by a failover) would give up at once.
    #[test]
    fn d4_an_undrained_pause_waits_out_its_grace_period() {
        let mut s = setup(vec![1]);
        s.pause_grace_period_ms = 2_000;
        let pausing = |ms| status(ms, JobStatus::Running, JobStatus::Pausing);
        let first = vec![status(300, JobStatus::Scheduled, JobStatus::Running), requested(1_000), pausing(1_000)];
        let waited = [first.clone(), vec![paused(2_999)]].concat();
        let early = |v: &Vec<Violation>| v.iter().any(|v| v.detail.contains("waits out its grace period"));
        assert!(!early(&run(&mut PauseDrains::new(&s), &waited, 40_000)), "1 ms of rounding");
        let v = run(&mut PauseDrains::new(&s), &[first.clone(), vec![paused(2_900)]].concat(), 40_000);
        assert!(v.iter().any(|v| v.detail.contains("1900 ms into a pause")), "{v:?}");
        let drained = [first.clone(), vec![checked(1_200, true), flag(1_200, true), paused(1_200)]].concat();
        assert!(!early(&run(&mut PauseDrains::new(&s), &drained, 40_000)), "a drained pause ends when it drained");
        // Cut short by a failover and resumed while restarting, then paused again: its own grace period counts.
        let again = [
            first,
            vec![
                status(1_500, JobStatus::Pausing, JobStatus::Restarting),
                status(2_000, JobStatus::Restarting, JobStatus::Running),
                pausing(5_000),
                paused(5_100),
            ],
        ]
        .concat();
        let v = run(&mut PauseDrains::new(&s), &again, 40_000);
        assert!(early(&v) && v.iter().any(|v| v.detail.contains("PAUSING at 5000 ms")), "{v:?}");
        // A pause decided while restarting never was PAUSING: nothing drained, nothing to wait for.
        let restarting = vec![status(1_500, JobStatus::Running, JobStatus::Restarting), requested(1_600)];
        let v = run(
            &mut PauseDrains::new(&s),
            &[restarting, vec![status(1_700, JobStatus::Restarting, JobStatus::Paused)]].concat(),
            40_000,
        );
        assert!(!early(&v), "{v:?}");
    }

    #[test]
    fn d1_is_excused_only_by_a_fault_of_a_node_the_job_runs_on() {
        let placement = vec![(TaskId { vertex: 0, replica: 0 }, 1)];
        let deployed = at(0, "coordinator", Event::AttemptDeployed { attempt: 1, start_offsets: vec![0], placement });
        let base = vec![deployed, status(300, JobStatus::Scheduled, JobStatus::Running), fault(1_000, Action::Pause)];
        let elsewhere = [base.clone(), vec![fault(1_100, Action::Crash { node: worker(2) }), paused(2_000)]].concat();
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &elsewhere, 40_000);
        assert!(v.iter().any(|v| v.detail.contains("drained_on_pause = false")), "{v:?}");
        let own = [base, vec![fault(1_100, Action::Crash { node: worker(1) }), paused(2_000)]].concat();
        assert!(run(&mut PauseDrains::new(&setup(vec![1])), &own, 40_000).is_empty());
    }

    #[test]
    fn d1_a_pause_that_drained_with_data_must_be_found_drained() {
        let pausing = status(1_100, JobStatus::Running, JobStatus::Pausing);
        let base = vec![source(0, true), requested(1_050), pausing, source(1_200, false)];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &base, 5_000);
        assert!(v.iter().any(|v| v.detail.contains("no drain check found it drained")), "{v:?}");
        let found = [base.clone(), vec![checked(1_400, true)]].concat();
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &found, 5_000);
        assert!(v.iter().all(|v| !v.detail.contains("no drain check")), "{v:?}");
        // A grace period that ends before a check is due decides the pause undrained; one that ends after does not.
        let mut short = setup(vec![1]);
        short.pause_grace_period_ms = 1_000;
        let v = run(&mut PauseDrains::new(&short), &base, 5_000);
        assert!(v.iter().all(|v| !v.detail.contains("no drain check")), "{v:?}");
        short.pause_grace_period_ms = 1_700;
        let v = run(&mut PauseDrains::new(&short), &base, 5_000);
        assert!(v.iter().any(|v| v.detail.contains("no drain check found it drained")), "{v:?}");
    }

    #[test]
    fn d2_a_drain_check_while_a_source_runs_fails() {
        let pausing = status(1_100, JobStatus::Running, JobStatus::Pausing);
        let base = vec![source(0, true), requested(1_050), pausing];
        let after = [base.clone(), vec![source(1_200, false), checked(1_300, false)]].concat();
        assert!(run(&mut PauseDrains::new(&setup(vec![1])), &after, 2_600).is_empty());
        let before = [base.clone(), vec![checked(1_150, false), source(1_200, false)]].concat();
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &before, 2_600);
        assert!(v.len() == 1 && v[0].detail.contains("1 in the trace"), "{v:?}");
        let counted = at(
            1_300,
            "coordinator",
            Event::DrainChecked { sources_running: 1, pending: 0, ack_pending: 0, drained: false },
        );
        let v =
            run(&mut PauseDrains::new(&setup(vec![1])), &[base, vec![source(1_200, false), counted]].concat(), 2_600);
        assert!(v.len() == 1 && v[0].detail.contains("1 as it counts them"), "{v:?}");
    }

    #[test]
    fn d2_fails_on_a_flag_set_without_a_drain_check() {
        let trace = vec![fault(1_000, Action::Pause), requested(1_050), flag(1_200, true), paused(1_200)];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &trace, 40_000);
        assert!(v.iter().any(|v| v.detail.contains("no drain check")), "{v:?}");
        let stale = vec![checked(500, true), requested(1_050), flag(1_200, true), paused(1_200)];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &stale, 40_000);
        assert!(v.iter().any(|v| v.detail.contains("no drain check")), "a check before the request: {v:?}");
    }

    #[test]
    fn d2_a_second_pause_while_pausing_keeps_the_drain_check() {
        let pausing = status(1_100, JobStatus::Running, JobStatus::Pausing);
        let trace =
            vec![requested(1_050), pausing, checked(1_200, true), requested(1_250), flag(1_300, true), paused(1_300)];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &trace, 5_000);
        assert!(v.iter().all(|v| !v.detail.contains("no drain check")), "{v:?}");
    }

    #[test]
    fn d2_fails_on_a_flag_kept_while_running() {
        let trace = vec![
            fault(1_000, Action::Pause),
            checked(1_200, true),
            flag(1_200, true),
            paused(1_200),
            fault(5_000, Action::Resume),
            status(5_300, JobStatus::Scheduled, JobStatus::Running),
        ];
        let v = run(&mut PauseDrains::new(&setup(vec![1])), &trace, 40_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("RUNNING again"));
    }
}
