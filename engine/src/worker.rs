//! A worker node: runs executions of task-group locations, reports them in heartbeats, and never keeps two live
//! executions of one location: a deploy of a newer attempt replaces the older one, an older attempt's deploy is
//! ignored. Cancellation may be slow (the fault plane says how slow): the execution then runs on until it stops.

use crate::buggify::BuggifyPoint;
use crate::coverage::Point;
use crate::event::{Event, ExecOutcome, Tracer};
use crate::job::{TaskId, VertexKind};
use crate::net::{CheckpointReport, Ctrl, CtrlEndpoint, Deployment, ExecReport, ExecState, NodeName, TaskControl};
use crate::node::NodeContext;
use crate::source::{TaskEnd, TaskIo};
use crate::stream::{accept_loop, Registry, StreamError};
use crate::timer::Deadline;
use crate::{sink, source};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Checkpoint messages queued for one execution at most (the coordinator re-sends what is dropped).
const CONTROL_QUEUE: usize = 16;

/// Executions being cancelled slowly: (location, attempt, state); they still run, so they are still reported.
type Stopping = Arc<Mutex<Vec<(TaskId, u32, Arc<Mutex<ExecState>>)>>>;

struct Execution {
    attempt: u32,
    deploy_seq: u64,
    /// Set when a second deployment of this location and attempt was refused (reported instead of the state).
    refused: Option<String>,
    state: Arc<Mutex<ExecState>>,
    report: Arc<Mutex<CheckpointReport>>,
    control: mpsc::Sender<TaskControl>,
    handle: Arc<JoinHandle<()>>,
}

/// Runs worker `number` (`worker-N`). Everything it holds is lost when the node is killed.
pub async fn run(ctx: NodeContext, number: u16) {
    let tracer = ctx.tracer(&NodeName::Worker(number).label());
    let incarnation: u64 = madsim::rand::random();
    tracer.emit(Event::NodeStarted { incarnation });
    let ctrl = CtrlEndpoint::bind(NodeName::Worker(number), ctx.faults.clone(), tracer.clone())
        .await
        .expect("worker control port is free");
    let registry: Registry = Arc::default();
    let timings = ctx.spec.timings;
    let acceptor = tokio::spawn(accept_loop(registry.clone(), timings.connect_wait_ms).in_current_span());
    let mut executions: BTreeMap<TaskId, Execution> = BTreeMap::new();
    let stopping: Stopping = Arc::default();
    // A heartbeat at once, then every `heartbeat_ms` (a late one is caught up at once, as an interval bursts); one
    // deadline, polled on every message, puts one timer per heartbeat into the runtime, not one per poll.
    let heartbeat_every = Duration::from_millis(timings.heartbeat_ms);
    let mut heartbeat = Deadline::after(Duration::ZERO);
    // The newest "cancel below" heard in this incarnation: attempts below it are never started here.
    let mut canceled_below = 0u32;
    loop {
        tokio::select! {
            biased;
            msg = ctrl.recv() => match msg {
                // A deploy of an attempt this worker was already told is superseded arrived late: not started.
                Ok((Ctrl::Deploy(dep), _)) if dep.attempt < canceled_below => tracer.reach(Point::LateDeployDropped),
                Ok((Ctrl::Deploy(dep), _)) => deploy(&ctx, &tracer, &registry, &mut executions, &stopping, number, dep),
                Ok((Ctrl::CancelBelow { below_attempt }, _)) => {
                    canceled_below = canceled_below.max(below_attempt);
                    let stale: Vec<TaskId> =
                        executions.iter().filter(|(_, e)| e.attempt < below_attempt).map(|(t, _)| *t).collect();
                    for task in stale {
                        let e = executions.remove(&task).expect("listed above");
                        let why = format!("canceled: attempt {below_attempt} supersedes it");
                        stop(&ctx, &tracer, &registry, &stopping, number, task, e, why);
                    }
                }
                Ok((Ctrl::ToTasks { attempt, control }, _)) => {
                    for e in executions.values().filter(|e| e.attempt == attempt) {
                        // A full queue drops the message; the coordinator sends it again.
                        let _ = e.control.try_send(control);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            },
            _ = &mut heartbeat => {
                heartbeat.reset(heartbeat.deadline() + heartbeat_every);
                if tracer.buggify(BuggifyPoint::HeartbeatSkipped) {
                    continue;
                }
                let mut reports: Vec<ExecReport> = executions
                    .iter()
                    .map(|(task, e)| ExecReport {
                        task: *task,
                        attempt: e.attempt,
                        state: match &e.refused {
                            Some(why) => ExecState::Refused(why.clone()),
                            None => e.state.lock().expect("exec state lock").clone(),
                        },
                        checkpoints: e.report.lock().expect("report lock").clone(),
                    })
                    .collect();
                for (task, attempt, state) in stopping.lock().expect("stopping lock").iter() {
                    let state = state.lock().expect("exec state lock").clone();
                    reports.push(ExecReport { task: *task, attempt: *attempt, state, checkpoints: CheckpointReport::default() });
                }
                let msg = Ctrl::Heartbeat { worker: number, incarnation, executions: reports };
                ctrl.send(NodeName::Coordinator, msg).await;
            }
        }
    }
    acceptor.abort();
}

/// Stops an execution, at once or as slowly as the fault plane says.
#[allow(clippy::too_many_arguments)]
fn stop(
    ctx: &NodeContext,
    tracer: &Tracer,
    registry: &Registry,
    stopping: &Stopping,
    worker: u16,
    task: TaskId,
    e: Execution,
    why: String,
) {
    let live = matches!(*e.state.lock().expect("exec state lock"), ExecState::Running);
    let delay_ms = if live { ctx.faults.cancel_delay_ms(worker) } else { 0 };
    let finish = {
        let (tracer, registry, stopping, state) = (tracer.clone(), registry.clone(), stopping.clone(), e.state.clone());
        move || {
            e.handle.abort();
            registry.unregister(task, e.attempt, e.deploy_seq);
            stopping.lock().expect("stopping lock").retain(|(t, a, _)| !(*t == task && *a == e.attempt));
            let still_live = matches!(*state.lock().expect("exec state lock"), ExecState::Running);
            if still_live {
                tracer.emit(Event::ExecutionEnded { task, attempt: e.attempt, outcome: ExecOutcome::Canceled(why) });
            }
        }
    };
    if delay_ms == 0 {
        finish();
    } else {
        stopping.lock().expect("stopping lock").push((task, e.attempt, e.state.clone()));
        tracer.emit(Event::CancelDelayed { task, attempt: e.attempt, by_ms: delay_ms });
        tokio::spawn(
            async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                finish();
            }
            .in_current_span(),
        );
    }
}

fn deploy(
    ctx: &NodeContext,
    tracer: &Tracer,
    registry: &Registry,
    executions: &mut BTreeMap<TaskId, Execution>,
    stopping: &Stopping,
    worker: u16,
    dep: Arc<Deployment>,
) {
    let task = dep.task;
    if let Some(existing) = executions.get_mut(&task) {
        if existing.attempt == dep.attempt && existing.deploy_seq != dep.deploy_seq {
            // Another deployment of the same location and attempt: it cannot be told from the running one.
            existing.refused = Some(format!("task group location {task} attempt {} already exists", dep.attempt));
            return;
        }
        if existing.attempt >= dep.attempt {
            return; // idempotent re-send, or a stale deploy of an older attempt
        }
        let old = executions.remove(&task).expect("checked above");
        stop(ctx, tracer, registry, stopping, worker, task, old, format!("replaced by attempt {}", dep.attempt));
    }
    assert!(!executions.contains_key(&task), "a second live execution of {task} on one worker");
    let state = Arc::new(Mutex::new(ExecState::Running));
    let report = Arc::new(Mutex::new(CheckpointReport::default()));
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let io = TaskIo { control: control_rx, report: report.clone(), faults: ctx.faults.clone(), canaries: ctx.canaries };
    let kind = dep.spec.vertices[task.vertex as usize].kind;
    let inbound = if kind == VertexKind::Source {
        None
    } else {
        let (tx, rx) = mpsc::channel(dep.spec.partitions as usize + 1);
        registry.register(task, dep.attempt, dep.deploy_seq, tx);
        Some(rx)
    };
    tracer.emit(Event::ExecutionStarted { task, attempt: dep.attempt });
    let handle = {
        let (ctx, tracer, state, registry, dep) =
            (ctx.clone(), tracer.clone(), state.clone(), registry.clone(), dep.clone());
        let span = tracing::info_span!("execution", %task, attempt = dep.attempt);
        let execution = async move {
            let (attempt, deploy_seq) = (dep.attempt, dep.deploy_seq);
            let result: Result<TaskEnd, StreamError> = match (kind, inbound) {
                (VertexKind::Source, _) => source::run(dep, tracer.clone(), ctx.external.clone(), io).await,
                (VertexKind::Sink, Some(inbound)) => {
                    sink::run(dep, tracer.clone(), io, inbound).await.map(|()| TaskEnd::Finished)
                }
                (VertexKind::Map, Some(inbound)) => {
                    crate::map::run(dep, tracer.clone(), io, inbound).await.map(|()| TaskEnd::Finished)
                }
                (_, None) => unreachable!("only sources have no input"),
            };
            registry.unregister(task, attempt, deploy_seq);
            let (exec_state, outcome) = match result {
                Ok(TaskEnd::Finished) => (ExecState::Finished, ExecOutcome::Finished),
                Ok(TaskEnd::Paused) => (ExecState::Paused, ExecOutcome::Paused),
                Err(e) => (ExecState::Failed(e.to_string()), ExecOutcome::Failed(e.to_string())),
            };
            *state.lock().expect("exec state lock") = exec_state;
            tracer.emit(Event::ExecutionEnded { task, attempt, outcome });
        };
        tokio::spawn(execution.instrument(span))
    };
    executions.insert(
        task,
        Execution {
            attempt: dep.attempt,
            deploy_seq: dep.deploy_seq,
            refused: None,
            state,
            report,
            control: control_tx,
            handle: Arc::new(handle),
        },
    );
}
