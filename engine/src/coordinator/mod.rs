//! The coordinator (job master): deploys attempts, watches workers through their heartbeats, owns the job status,
//! the checkpoint coordinator and the restart strategy, and answers the API (status, checkpoint statistics, restart).
//!
//! An attempt goes: fence the store (writes of older attempts are refused from now on, their staged transactions
//! aborted; the committed offsets and the latest checkpoint come back) → deploy every task, restored from that
//! checkpoint → RUNNING → checkpoints → FINISHED once every task finished. A failed execution, a lost or restarted
//! worker, a refused deploy or too many failed checkpoints fail the attempt: the old executions are cancelled and
//! awaited (bounded; they are fenced anyway), then the restart strategy starts a new attempt or the job ends FAILED
//! with the store fenced; after failed checkpoints alone, a batch job settles instead (`checkpoints.rs`): it ends
//! FINISHED if its delivery completes and the store has committed every record, FAILED otherwise.
//! Canary `redeploy-without-fencing` takes the attempt number away.
//!
//! - `checkpoints.rs`: driving checkpoints while an attempt runs; settling a batch job after failed checkpoints.
//! - `pausing.rs`: pause, drain, resume and the autoscaler.

mod checkpoints;
mod pausing;

use crate::buggify::BuggifyPoint;
use crate::canary::Canary;
use crate::checkpoint::CheckpointCoordinator;
use crate::coverage::Point;
use crate::event::{Event, FailureCause, Tracer};
use crate::job::{JobSpec, Mode, TaskId};
use crate::lifecycle::Lifecycle;
use crate::net::{Ctrl, CtrlEndpoint, Deployment, ExecReport, ExecState, NodeName, SavedCheckpoint};
use crate::node::NodeContext;
use crate::restart::RestartTracker;
use crate::status::{JobStatus, StatusMachine};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Ticks the coordinator keeps re-sending cancels and the fence after a terminal status.
const TERMINAL_RESEND_TICKS: u32 = 40;

struct WorkerView {
    incarnation: u64,
    last_seen_ms: u64,
    executions: Vec<ExecReport>,
}

impl WorkerView {
    /// Whether the worker's last report shows a running execution of an attempt below `below` (one to cancel).
    fn runs_below(&self, below: u32) -> bool {
        self.executions.iter().any(|e| e.attempt < below && e.state == ExecState::Running)
    }
}

/// What comes after the old executions are cancelled.
#[derive(Clone, Debug)]
enum Then {
    Restart {
        delay_ms: u64,
    },
    Fail {
        cause: String,
    },
    /// Failed checkpoints and no restart: the end state follows the delivery. FINISHED if the store, once fenced,
    /// has committed every source partition up to `ends` (its end offsets); FAILED otherwise.
    Settle {
        cause: String,
        ends: Vec<u64>,
        /// The store's committed offsets, from its answer to the fence.
        committed: Option<Vec<u64>>,
    },
    /// A pause completed: report PAUSED with this `drained_on_pause`.
    Pause {
        drained: bool,
        cause: String,
    },
}

enum Phase {
    /// Waiting for workers to report, since the coordinator started.
    Gathering,
    /// Waiting for the store to confirm the fence of the current attempt.
    Fencing,
    /// The current attempt is deployed.
    Deployed { deployments: Vec<Arc<Deployment>> },
    /// A batch attempt whose failed checkpoints the strategy will not restart: it runs on, without checkpoints, until
    /// its sinks report everything delivered or `deadline_ms` passes; then it is cancelled and its end state settled.
    Settling { deployments: Vec<Arc<Deployment>>, cause: String, deadline_ms: u64 },
    /// Waiting (until `deadline_ms`) for the workers to confirm that executions below `below` are gone.
    Canceling { below: u32, deadline_ms: u64, then: Then, fenced: bool },
    /// The restart strategy asked for a delay before the next attempt.
    Delaying { until_ms: u64 },
    /// Terminal; cancels and the final fence are re-sent a bounded number of times.
    Terminal { resends_left: u32 },
    /// Paused: nothing runs until a resume.
    Paused,
}

struct Coordinator {
    ctx: NodeContext,
    spec: Arc<JobSpec>,
    tracer: Tracer,
    ctrl: CtrlEndpoint,
    start: tokio::time::Instant,
    status: StatusMachine,
    attempt: u32,
    deploy_seq: u64,
    phase: Phase,
    workers: BTreeMap<u16, WorkerView>,
    restart: RestartTracker,
    checkpoints: Option<CheckpointCoordinator>,
    /// Restart requests already obeyed (the platform re-sends).
    restart_requests: BTreeSet<u64>,
    lifecycle: Lifecycle,
    /// Replicas each vertex runs in the next attempt (the autoscaler changes them).
    replicas: Vec<u16>,
    /// The autoscaler's last wish and how many periods in a row it held: (replicas, periods).
    autoscale_wish: Option<(Vec<u16>, u32)>,
    next_autoscale_ms: u64,
    /// When the pending checkpoint was triggered, on the fault plane's clock.
    trigger_fault_clock_ms: u64,
}

/// Runs the coordinator node.
pub async fn run(ctx: NodeContext) {
    let ctrl = CtrlEndpoint::bind(NodeName::Coordinator, ctx.faults.clone(), ctx.tracer("coordinator"))
        .await
        .expect("coordinator control port is free");
    let spec = ctx.spec.clone();
    let batch = spec.mode == Mode::Batch;
    let (ctx_canaries, grace_ms) = (ctx.canaries, spec.pause_grace_period_ms);
    let initial_replicas: Vec<u16> = spec.vertices.iter().map(|v| v.replicas).collect();
    let mut c = Coordinator {
        tracer: ctx.tracer("coordinator"),
        restart: RestartTracker::new(spec.restart),
        checkpoints: spec.checkpoint.map(|cp| CheckpointCoordinator::new(cp, batch, ctx.canaries)),
        ctx,
        spec,
        ctrl,
        start: crate::timer::now(),
        status: StatusMachine::default(),
        attempt: 0,
        deploy_seq: 0,
        phase: Phase::Gathering,
        workers: BTreeMap::new(),
        restart_requests: BTreeSet::new(),
        lifecycle: Lifecycle::new(ctx_canaries, grace_ms),
        replicas: initial_replicas,
        autoscale_wish: None,
        next_autoscale_ms: 0,
        trigger_fault_clock_ms: 0,
    };
    // A tick at once, then every `tick_ms` (late ones caught up at once, as an interval bursts); one deadline, polled
    // on every message, puts one timer per tick into the runtime, not one per poll.
    let tick_every = Duration::from_millis(c.spec.timings.tick_ms);
    let mut tick = crate::timer::Deadline::after(Duration::ZERO);
    loop {
        tokio::select! {
            biased;
            msg = c.ctrl.recv() => match msg {
                Ok((msg, from)) => c.on_message(msg, from).await,
                Err(_) => return,
            },
            _ = &mut tick => {
                tick.reset(tick.deadline() + tick_every);
                if !c.tracer.buggify(BuggifyPoint::TickSkipped) {
                    c.on_tick().await;
                }
            }
        }
    }
}

impl Coordinator {
    fn now_ms(&self) -> u64 {
        crate::timer::now().duration_since(self.start).as_millis() as u64
    }

    fn set_status(&mut self, to: JobStatus, cause: &str) {
        let at_ms = self.now_ms();
        if let Some(change) = self.status.transition(to, at_ms, cause) {
            self.tracer.emit(Event::StatusChanged { from: change.from, to: change.to, cause: change.cause });
        }
    }

    /// The attempt number of the next deployment. Canary `redeploy-without-fencing`: there is none, so the same
    /// location is redeployed under the same number and nothing older can be told apart, cancelled or fenced.
    fn next_attempt(&self) -> u32 {
        if self.ctx.canaries.has(Canary::RedeployWithoutFencing) {
            self.attempt.max(1)
        } else {
            self.attempt + 1
        }
    }

    fn alive_workers(&self) -> Vec<u16> {
        let now = self.now_ms();
        let timeout = self.spec.timings.worker_timeout_ms;
        self.workers.iter().filter(|(_, w)| now - w.last_seen_ms <= timeout).map(|(n, _)| *n).collect()
    }

    async fn on_message(&mut self, msg: Ctrl, from: SocketAddr) {
        match msg {
            Ctrl::Heartbeat { worker, incarnation, executions } => self.on_heartbeat(worker, incarnation, executions),
            // The coordinator never asks to fence beyond the attempt after its current one.
            Ctrl::Fenced { attempt, .. } if attempt > self.next_attempt() => {
                panic!("the store fenced attempt {attempt}, beyond anything asked (attempt {})", self.attempt)
            }
            Ctrl::Fenced { attempt, next_offsets, latest } => match &mut self.phase {
                Phase::Fencing if attempt == self.attempt => self.deploy(next_offsets, latest).await,
                Phase::Canceling { below, fenced, then, .. } if attempt == *below => {
                    *fenced = true;
                    if let Then::Settle { committed, .. } = then {
                        *committed = Some(next_offsets);
                    }
                }
                _ if attempt < self.attempt => self.tracer.reach(Point::FenceReplyAfterNextAttempt),
                _ => {}
            },
            Ctrl::CheckpointSaved { attempt, .. } if attempt > self.attempt => {
                panic!("checkpoint storage answered attempt {attempt}, beyond the current {}", self.attempt)
            }
            Ctrl::CheckpointSaved { attempt, epoch, result } if attempt == self.attempt => {
                self.on_checkpoint_saved(epoch, result).await;
            }
            Ctrl::GetStatus { request } => {
                assert_eq!(from.ip(), NodeName::Client.ip(), "only the client reads the status");
                let (status, drained_on_pause) = (self.status.current(), self.lifecycle.drained_on_pause);
                self.ctrl.send(NodeName::Client, Ctrl::Status { request, status, drained_on_pause }).await;
            }
            Ctrl::SetPhase { request, pause } => {
                assert_eq!(from.ip(), NodeName::Client.ip(), "only the client pauses and resumes");
                if self.lifecycle.request(request, pause) {
                    if pause && self.checkpoints.as_ref().is_some_and(|c| c.pending.is_some()) {
                        self.tracer.reach(Point::PauseWhileCheckpointPending);
                    }
                    self.tracer.emit(if pause { Event::PauseRequested } else { Event::ResumeRequested });
                }
                self.ctrl.send(NodeName::Client, Ctrl::PhaseAck { request }).await;
            }
            Ctrl::GetCheckpointStats { request } => {
                assert_eq!(from.ip(), NodeName::Platform.ip(), "only the platform reads checkpoint statistics");
                let stats = self.checkpoints.as_ref().map(|c| c.stats.clone()).unwrap_or_default();
                self.ctrl.send(NodeName::Platform, Ctrl::CheckpointStats { request, stats }).await;
            }
            // A request is obeyed once, however often the platform sends it.
            Ctrl::RestartJob { request, cause } if self.restart_requests.insert(request) => {
                assert_eq!(from.ip(), NodeName::Platform.ip(), "only the platform restarts the job");
                self.tracer.emit(Event::RestartRequested { cause: cause.clone() });
                if matches!(self.phase, Phase::Deployed { .. }) {
                    self.fail_attempt(FailureCause::RestartRequested { why: cause }, Decide::Restart);
                }
            }
            _ => {}
        }
    }

    fn on_heartbeat(&mut self, worker: u16, incarnation: u64, executions: Vec<ExecReport>) {
        let now = self.now_ms();
        let restarted = matches!(self.workers.get(&worker), Some(w) if w.incarnation != incarnation);
        self.workers.insert(worker, WorkerView { incarnation, last_seen_ms: now, executions });
        if restarted {
            if let Phase::Deployed { deployments } = &self.phase {
                if deployments.iter().any(|d| d.placement.get(&d.task) == Some(&worker)) {
                    self.fail_attempt(FailureCause::WorkerRestarted { worker }, Decide::Strategy);
                }
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = self.now_ms();
        if let Some(below) = self.stale_below() {
            // Whatever the phase, a worker that reports an execution of a stale attempt (it was cut off when the
            // cancel went out, or its cancel was lost) is told again: fenced or not, a zombie must end.
            self.cancel_stale(below).await;
        }
        match &mut self.phase {
            Phase::Gathering => {
                let seen = self.alive_workers().len();
                if seen == self.spec.workers as usize || (seen > 0 && now >= self.spec.timings.worker_timeout_ms) {
                    self.begin_attempt();
                }
            }
            Phase::Fencing => {
                let msg = Ctrl::Fence { attempt: self.attempt, partitions: self.spec.partitions };
                self.ctrl.send(NodeName::Store, msg).await;
            }
            Phase::Delaying { until_ms } => {
                if now >= *until_ms {
                    self.begin_attempt();
                }
            }
            Phase::Canceling { .. } => self.watch_cancel().await,
            Phase::Settling { .. } => self.watch_settling(),
            Phase::Paused => {
                if !self.lifecycle.desired_paused {
                    self.resume();
                }
            }
            Phase::Deployed { .. } => self.watch_attempt().await,
            Phase::Terminal { resends_left } => {
                if *resends_left > 0 {
                    *resends_left -= 1;
                    let next = self.next_attempt();
                    self.cancel_everywhere(next).await;
                    if self.status.current() != JobStatus::Finished {
                        self.ctrl
                            .send(NodeName::Store, Ctrl::Fence { attempt: next, partitions: self.spec.partitions })
                            .await;
                    }
                }
            }
        }
    }

    fn begin_attempt(&mut self) {
        let next = self.next_attempt();
        // Attempts only move forward; only the canary that takes the attempt number away redeploys under the same one.
        assert!(
            next > self.attempt || self.ctx.canaries.has(Canary::RedeployWithoutFencing),
            "attempt {next} after {}",
            self.attempt
        );
        self.attempt = next;
        self.phase = Phase::Fencing;
    }

    async fn deploy(&mut self, next_offsets: Vec<u64>, latest: Option<SavedCheckpoint>) {
        if self.lifecycle.desired_paused {
            // Paused while (re)starting: nothing is deployed; nothing was drained either.
            self.enter_paused(false, "pause requested while the job was not running");
            return;
        }
        let alive = self.alive_workers();
        if alive.is_empty() {
            return; // stay fencing; the fence is re-sent and answered again once a worker is back
        }
        // Each attempt runs the replicas decided for it (by the autoscaler, or the initial ones).
        let mut attempt_spec = (*self.spec).clone();
        for (v, r) in attempt_spec.vertices.iter_mut().zip(&self.replicas) {
            v.replicas = *r;
        }
        let attempt_spec = Arc::new(attempt_spec);
        // With checkpoints, sources rewind to the latest saved checkpoint; without, to the committed offsets.
        let (start_offsets, restored_epoch) = match (&self.checkpoints, latest) {
            (Some(_), Some(cp)) => (cp.offsets, cp.epoch),
            (Some(_), None) => (vec![0; self.spec.partitions as usize], 0),
            (None, _) => (next_offsets, 0),
        };
        let now = self.now_ms();
        if let Some(c) = self.checkpoints.as_mut() {
            c.restart(now, restored_epoch);
        }
        let tasks = attempt_spec.tasks();
        let placement: BTreeMap<TaskId, u16> =
            tasks.iter().enumerate().map(|(i, t)| (*t, alive[i % alive.len()])).collect();
        let placement = Arc::new(placement);
        let start_offsets = Arc::new(start_offsets);
        self.deploy_seq += 1;
        let deployments: Vec<Arc<Deployment>> = tasks
            .iter()
            .map(|t| {
                Arc::new(Deployment {
                    attempt: self.attempt,
                    deploy_seq: self.deploy_seq,
                    task: *t,
                    spec: attempt_spec.clone(),
                    placement: placement.clone(),
                    start_offsets: start_offsets.clone(),
                    restored_epoch,
                })
            })
            .collect();
        if self.checkpoints.is_some() {
            self.tracer.emit(Event::Restored { attempt: self.attempt, epoch: restored_epoch });
        }
        self.tracer.emit(Event::AttemptDeployed {
            attempt: self.attempt,
            start_offsets: start_offsets.to_vec(),
            placement: placement.iter().map(|(t, w)| (*t, *w)).collect(),
        });
        for d in &deployments {
            self.ctrl.send(d.worker_of(d.task), Ctrl::Deploy(d.clone())).await;
        }
        self.phase = Phase::Deployed { deployments };
        let cause = format!("attempt {} deployed", self.attempt);
        self.set_status(JobStatus::Scheduled, &cause);
    }

    /// The report of `d`'s execution, as its worker last sent it.
    fn reported(&self, d: &Deployment) -> Option<&ExecReport> {
        let worker = self.workers.get(d.placement.get(&d.task)?)?;
        worker.executions.iter().find(|e| e.task == d.task && e.attempt == d.attempt)
    }

    async fn watch_attempt(&mut self) {
        let Phase::Deployed { deployments } = &self.phase else { return };
        let deployments = deployments.clone();
        let alive = self.alive_workers();
        let mut running_or_done = 0;
        let mut finished = 0;
        for d in &deployments {
            let worker = *d.placement.get(&d.task).expect("placed");
            if !alive.contains(&worker) {
                return self.fail_attempt(FailureCause::WorkerLost { worker }, Decide::Strategy);
            }
            match self.reported(d).map(|r| r.state.clone()) {
                Some(ExecState::Failed(why)) => {
                    return self.fail_attempt(FailureCause::TaskFailed { task: d.task, why }, Decide::Strategy);
                }
                Some(ExecState::Refused(why)) => {
                    return self.fail_attempt(FailureCause::DeployRefused { task: d.task, why }, Decide::Strategy);
                }
                Some(ExecState::Finished) => {
                    finished += 1;
                    running_or_done += 1;
                }
                Some(ExecState::Running) => running_or_done += 1,
                Some(ExecState::Paused) => {}
                None => self.ctrl.send(d.worker_of(d.task), Ctrl::Deploy(d.clone())).await,
            }
        }
        if finished == deployments.len() {
            self.set_status(JobStatus::Finished, "all tasks finished");
            self.phase = Phase::Terminal { resends_left: 0 };
            return;
        }
        let pausing = self.status.current() == JobStatus::Pausing;
        if self.lifecycle.desired_paused {
            return self.drive_pause(&deployments).await;
        }
        if pausing {
            // Resumed before the pause completed: the pause is given up; a new attempt restores and runs.
            self.tracer.reach(Point::ResumeBeforePauseCompleted);
            let changed = self.lifecycle.resumed();
            self.emit_drained_flag(changed);
            self.tracer.emit(Event::CancelRequested { below_attempt: self.next_attempt() });
            self.set_status(JobStatus::Restarting, "resumed before the pause completed");
            let now = self.now_ms();
            let (below, deadline_ms) = (self.next_attempt(), now + self.spec.timings.cancel_timeout_ms);
            self.phase = Phase::Canceling { below, deadline_ms, then: Then::Restart { delay_ms: 0 }, fenced: true };
            return;
        }
        if running_or_done == deployments.len() {
            self.set_status(JobStatus::Running, "all tasks running");
            self.drive_checkpoints(&deployments).await;
            self.autoscale(&deployments).await;
        }
    }

    /// Fails the current attempt: the old executions are cancelled and awaited, then the job restarts or fails.
    fn fail_attempt(&mut self, failure: FailureCause, decide: Decide) {
        let now = self.now_ms();
        let cause = failure.to_string();
        self.tracer.emit(Event::FailureDetected { attempt: self.attempt, cause: failure });
        let decision = match decide {
            Decide::Strategy | Decide::Checkpoints => {
                // Jitter comes from the seeded runtime: the same seed draws the same backoffs.
                let mut draw = |n: u64| madsim::rand::Rng::gen_range(&mut madsim::rand::thread_rng(), 0..n);
                self.restart.on_failure(now, &mut draw)
            }
            Decide::Restart => {
                // StreamPark's RESTART is a resubmission (cancel, then start): a new Flink job with a fresh restart
                // strategy and a fresh checkpoint failure counter.
                self.restart = RestartTracker::new(self.spec.restart);
                if let Some(cc) = self.checkpoints.as_mut() {
                    cc.resubmitted();
                }
                Ok(0)
            }
            Decide::Fail => Err("the job's end state follows the failed checkpoint coordinator".into()),
        };
        let below = self.next_attempt();
        let deadline_ms = now + self.spec.timings.cancel_timeout_ms;
        match decision {
            Ok(delay_ms) => {
                self.tracer.emit(Event::CancelRequested { below_attempt: below });
                self.tracer.emit(Event::RestartScheduled { attempt: self.attempt, delay_ms });
                self.set_status(JobStatus::Restarting, &cause);
                self.phase = Phase::Canceling { below, deadline_ms, then: Then::Restart { delay_ms }, fenced: true };
            }
            Err(why) => {
                self.tracer.emit(Event::RestartRefused { attempt: self.attempt, cause: why.clone() });
                self.set_status(JobStatus::Failing, &cause);
                let cause = format!("{cause}; {why}");
                match &self.phase {
                    // Failed checkpoints alone do not fail a batch job's delivery: it settles first.
                    Phase::Deployed { deployments }
                        if decide == Decide::Checkpoints && self.spec.mode == Mode::Batch =>
                    {
                        let deployments = deployments.clone();
                        self.phase = Phase::Settling { deployments, cause, deadline_ms };
                        self.watch_settling();
                    }
                    _ => {
                        self.tracer.emit(Event::CancelRequested { below_attempt: below });
                        let then = Then::Fail { cause };
                        self.phase = Phase::Canceling { below, deadline_ms, then, fenced: false };
                    }
                }
            }
        }
    }

    /// While cancelling: re-send cancels (and, before FAILED, the fence) until the workers confirm or time is up.
    async fn watch_cancel(&mut self) {
        let Phase::Canceling { below, deadline_ms, then, fenced } = &self.phase else { return };
        let (below, deadline_ms, then, fenced) = (*below, *deadline_ms, then.clone(), *fenced);
        let now = self.now_ms();
        let alive = self.alive_workers();
        let holding: Vec<u16> =
            self.workers.iter().filter(|(n, w)| alive.contains(n) && w.runs_below(below)).map(|(n, _)| *n).collect();
        for n in &holding {
            self.ctrl.send(NodeName::Worker(*n), Ctrl::CancelBelow { below_attempt: below }).await;
        }
        if !fenced {
            self.ctrl.send(NodeName::Store, Ctrl::Fence { attempt: below, partitions: self.spec.partitions }).await;
        }
        if !fenced {
            if now >= deadline_ms + self.spec.timings.cancel_timeout_ms {
                // The store cannot be reached to fence: the job fails all the same, and says so.
                self.finish_failure(
                    then,
                    format!("store not fenced within {} ms", 2 * self.spec.timings.cancel_timeout_ms),
                );
            }
            return;
        }
        if !holding.is_empty() && now < deadline_ms {
            return;
        }
        if !holding.is_empty() {
            self.tracer.reach(Point::CancelUnconfirmed);
            self.tracer.emit(Event::CancelUnconfirmed { below_attempt: below, workers: holding });
        }
        match then {
            Then::Restart { delay_ms }
                if delay_ms > 0 && now - (deadline_ms - self.spec.timings.cancel_timeout_ms) > delay_ms =>
            {
                self.tracer.reach(Point::CancelOutlastsRestartDelay);
            }
            _ => {}
        }
        self.finish_failure(then, String::new());
    }

    fn finish_failure(&mut self, then: Then, note: String) {
        let now = self.now_ms();
        match then {
            Then::Pause { drained, cause } if self.lifecycle.desired_paused => self.enter_paused(drained, &cause),
            Then::Pause { .. } => {
                self.tracer.reach(Point::ResumeBeforePauseCompleted);
                // Resumed while the pause's cancellations were being confirmed: the pause is given up, as a resume
                // before PAUSED always is; the new attempt restores where the drained one stopped.
                let changed = self.lifecycle.resumed();
                self.emit_drained_flag(changed);
                self.set_status(JobStatus::Restarting, "resumed before the pause completed");
                self.begin_attempt();
            }
            Then::Restart { delay_ms } => self.phase = Phase::Delaying { until_ms: now + delay_ms },
            Then::Fail { cause } => {
                let cause = if note.is_empty() { cause } else { format!("{cause}; {note}") };
                self.set_status(JobStatus::Failed, &cause);
                self.phase = Phase::Terminal { resends_left: TERMINAL_RESEND_TICKS };
            }
            Then::Settle { cause, ends, committed } => {
                let complete = committed.is_some_and(|c| c.iter().zip(&ends).all(|(have, end)| have >= end));
                if complete {
                    self.tracer.reach(Point::FailedCheckpointsSettledFinished);
                    let cause = format!(
                        "every record was committed; the failed checkpoints did not fail the delivery ({cause})"
                    );
                    self.set_status(JobStatus::Finished, &cause);
                    self.phase = Phase::Terminal { resends_left: TERMINAL_RESEND_TICKS };
                } else {
                    self.finish_failure(Then::Fail { cause }, note);
                }
            }
        }
    }

    /// Executions of attempts below this are stale in the current phase: `None` while gathering (nothing ran yet) and
    /// while cancelling (the phase itself re-sends its cancels).
    fn stale_below(&self) -> Option<u32> {
        match self.phase {
            Phase::Gathering | Phase::Canceling { .. } => None,
            Phase::Fencing | Phase::Deployed { .. } | Phase::Settling { .. } => Some(self.attempt),
            Phase::Delaying { .. } | Phase::Paused | Phase::Terminal { .. } => Some(self.next_attempt()),
        }
    }

    /// Workers still reporting running executions of attempts below `below` are told to cancel them.
    async fn cancel_stale(&self, below: u32) {
        let stale: Vec<u16> = self.workers.iter().filter(|(_, w)| w.runs_below(below)).map(|(n, _)| *n).collect();
        if !stale.is_empty() {
            self.tracer.reach(Point::ZombieExecutionRecanceled);
        }
        for n in stale {
            self.ctrl.send(NodeName::Worker(n), Ctrl::CancelBelow { below_attempt: below }).await;
        }
    }

    async fn cancel_everywhere(&self, below_attempt: u32) {
        for n in 1..=self.spec.workers {
            self.ctrl.send(NodeName::Worker(n), Ctrl::CancelBelow { below_attempt }).await;
        }
    }
}

/// Who decides whether a failed attempt restarts, and what a refusal ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decide {
    /// The configured restart strategy.
    Strategy,
    /// The configured restart strategy, after failed checkpoints: when it refuses, a batch job settles (it ends
    /// FINISHED if every record gets committed: its end state follows its delivery, not its checkpoint coordinator).
    Checkpoints,
    /// A restart asked through the API: always.
    Restart,
    /// Never (the canary's failed checkpoint coordinator).
    Fail,
}
