//! The coordinator (job master): deploys attempts, watches workers through their heartbeats, owns the job status and
//! the restart strategy, and answers status reads.
//!
//! An attempt goes: fence the store (writes of older attempts are refused from now on, and the committed offsets come
//! back) → deploy every task with those offsets → RUNNING → FINISHED once every task finished. A failed execution, a
//! lost worker or a restarted worker fails the attempt; the restart strategy then restarts it as a new attempt, or
//! the job ends FAILED with the store fenced so nothing more commits.

use crate::event::{Event, Tracer};
use crate::job::{JobSpec, TaskId};
use crate::net::{Ctrl, CtrlEndpoint, Deployment, ExecReport, ExecState, NodeName};
use crate::node::NodeContext;
use crate::restart::RestartTracker;
use crate::status::{JobStatus, StatusMachine};
use std::collections::BTreeMap;
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

enum Phase {
    /// Waiting for workers to report, since the coordinator started.
    Gathering,
    /// Waiting for the store to confirm the fence of the current attempt.
    Fencing,
    /// The current attempt is deployed.
    Deployed { deployments: Vec<Arc<Deployment>> },
    /// The restart strategy asked for a delay before the next attempt.
    Delaying { until_ms: u64 },
    /// Terminal; cancels and the final fence are re-sent a bounded number of times.
    Terminal { resends_left: u32 },
}

struct Coordinator {
    spec: Arc<JobSpec>,
    tracer: Tracer,
    ctrl: CtrlEndpoint,
    start: tokio::time::Instant,
    status: StatusMachine,
    attempt: u32,
    phase: Phase,
    workers: BTreeMap<u16, WorkerView>,
    restart: RestartTracker,
}

/// Runs the coordinator node.
pub async fn run(ctx: NodeContext) {
    let ctrl = CtrlEndpoint::bind().await.expect("coordinator control port is free");
    let spec = ctx.spec.clone();
    let mut c = Coordinator {
        tracer: ctx.tracer("coordinator"),
        restart: RestartTracker::new(spec.restart),
        spec,
        ctrl,
        start: tokio::time::Instant::now(),
        status: StatusMachine::default(),
        attempt: 0,
        phase: Phase::Gathering,
        workers: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(c.spec.timings.tick_ms));
    loop {
        tokio::select! {
            biased;
            msg = c.ctrl.recv() => match msg {
                Ok((msg, from)) => c.on_message(msg, from).await,
                Err(_) => return,
            },
            _ = tick.tick() => c.on_tick().await,
        }
    }
}

impl Coordinator {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn set_status(&mut self, to: JobStatus, cause: &str) {
        let at_ms = self.now_ms();
        if let Some(change) = self.status.transition(to, at_ms, cause) {
            self.tracer.emit(Event::StatusChanged { from: change.from, to: change.to, cause: change.cause });
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
            Ctrl::Fenced { attempt, next_offsets }
                if attempt == self.attempt && matches!(self.phase, Phase::Fencing) =>
            {
                self.deploy(next_offsets).await;
            }
            Ctrl::GetStatus { request } if from.ip() == NodeName::Client.ip() => {
                let status = self.status.current();
                self.ctrl.send(NodeName::Client, Ctrl::Status { request, status }).await;
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
                    let cause = format!("worker-{worker} restarted and lost its executions");
                    self.fail_attempt(cause);
                }
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = self.now_ms();
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
            Phase::Deployed { .. } => self.watch_attempt().await,
            Phase::Terminal { resends_left } => {
                if *resends_left > 0 {
                    *resends_left -= 1;
                    self.cancel_everywhere(self.attempt + 1).await;
                    let msg = Ctrl::Fence { attempt: self.attempt + 1, partitions: self.spec.partitions };
                    if self.status.current() != JobStatus::Finished {
                        self.ctrl.send(NodeName::Store, msg).await;
                    }
                }
            }
        }
    }

    fn begin_attempt(&mut self) {
        self.attempt += 1;
        self.phase = Phase::Fencing;
    }

    async fn deploy(&mut self, start_offsets: Vec<u64>) {
        let alive = self.alive_workers();
        if alive.is_empty() {
            return; // stay fencing; the fence is re-sent and answered again once a worker is back
        }
        let tasks = self.spec.tasks();
        let placement: BTreeMap<TaskId, u16> =
            tasks.iter().enumerate().map(|(i, t)| (*t, alive[i % alive.len()])).collect();
        let placement = Arc::new(placement);
        let start_offsets = Arc::new(start_offsets);
        let deployments: Vec<Arc<Deployment>> = tasks
            .iter()
            .map(|t| {
                Arc::new(Deployment {
                    attempt: self.attempt,
                    task: *t,
                    spec: self.spec.clone(),
                    placement: placement.clone(),
                    start_offsets: start_offsets.clone(),
                })
            })
            .collect();
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

    /// The state of `task` of the current attempt, as its worker last reported it.
    fn reported(&self, d: &Deployment) -> Option<ExecState> {
        let worker = self.workers.get(d.placement.get(&d.task)?)?;
        worker.executions.iter().find(|e| e.task == d.task && e.attempt == d.attempt).map(|e| e.state.clone())
    }

    async fn watch_attempt(&mut self) {
        let Phase::Deployed { deployments } = &self.phase else {
            return;
        };
        let deployments = deployments.clone();
        let alive = self.alive_workers();
        let mut running_or_done = 0;
        let mut finished = 0;
        for d in &deployments {
            let worker = *d.placement.get(&d.task).expect("placed");
            if !alive.contains(&worker) {
                return self.fail_attempt(format!("worker-{worker} lost (no heartbeat)"));
            }
            match self.reported(d) {
                Some(ExecState::Failed(cause)) => return self.fail_attempt(format!("{} failed: {cause}", d.task)),
                Some(ExecState::Finished) => {
                    finished += 1;
                    running_or_done += 1;
                }
                Some(ExecState::Running) => running_or_done += 1,
                None => self.ctrl.send(d.worker_of(d.task), Ctrl::Deploy(d.clone())).await,
            }
        }
        // Workers still reporting executions of older attempts are told to cancel them.
        let stale: Vec<u16> = self
            .workers
            .iter()
            .filter(|(_, w)| w.executions.iter().any(|e| e.attempt < self.attempt && e.state == ExecState::Running))
            .map(|(n, _)| *n)
            .collect();
        for n in stale {
            self.ctrl.send(NodeName::Worker(n), Ctrl::CancelBelow { below_attempt: self.attempt }).await;
        }
        if finished == deployments.len() {
            self.set_status(JobStatus::Finished, "all tasks finished");
            self.phase = Phase::Terminal { resends_left: 0 };
        } else if running_or_done == deployments.len() {
            self.set_status(JobStatus::Running, "all tasks running");
        }
    }

    fn fail_attempt(&mut self, cause: String) {
        let now = self.now_ms();
        self.tracer.emit(Event::FailureDetected { attempt: self.attempt, cause: cause.clone() });
        match self.restart.on_failure(now) {
            Ok(delay_ms) => {
                self.tracer.emit(Event::RestartScheduled { attempt: self.attempt, delay_ms });
                self.set_status(JobStatus::Restarting, &cause);
                self.phase = Phase::Delaying { until_ms: now + delay_ms };
            }
            Err(why) => {
                self.tracer.emit(Event::RestartRefused { attempt: self.attempt, cause: why.clone() });
                self.set_status(JobStatus::Failed, &format!("{cause}; {why}"));
                self.phase = Phase::Terminal { resends_left: TERMINAL_RESEND_TICKS };
            }
        }
    }

    async fn cancel_everywhere(&self, below_attempt: u32) {
        for n in 1..=self.spec.workers {
            self.ctrl.send(NodeName::Worker(n), Ctrl::CancelBelow { below_attempt }).await;
        }
    }
}
