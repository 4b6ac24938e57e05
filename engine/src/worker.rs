//! A worker node: runs executions of task-group locations, reports them in heartbeats, and never keeps two live
//! executions of one location: a deploy of a newer attempt replaces the older one, an older attempt's deploy is
//! ignored.

use crate::event::{Event, ExecOutcome, Tracer};
use crate::job::{TaskId, VertexKind};
use crate::net::{Ctrl, CtrlEndpoint, Deployment, ExecReport, ExecState, NodeName};
use crate::node::NodeContext;
use crate::stream::{accept_loop, Registry, StreamError};
use crate::{sink, source};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

struct Execution {
    attempt: u32,
    state: Arc<Mutex<ExecState>>,
    handle: JoinHandle<()>,
}

/// Runs worker `number` (`worker-N`). Everything it holds is lost when the node is killed.
pub async fn run(ctx: NodeContext, number: u16) {
    let tracer = ctx.tracer(&NodeName::Worker(number).label());
    let incarnation: u64 = madsim::rand::random();
    let ctrl = CtrlEndpoint::bind().await.expect("worker control port is free");
    let registry: Registry = Arc::default();
    let timings = ctx.spec.timings;
    let acceptor = tokio::spawn(accept_loop(registry.clone(), timings.connect_wait_ms));
    let mut executions: BTreeMap<TaskId, Execution> = BTreeMap::new();
    let mut heartbeat = tokio::time::interval(Duration::from_millis(timings.heartbeat_ms));
    loop {
        tokio::select! {
            biased;
            msg = ctrl.recv() => match msg {
                Ok((Ctrl::Deploy(dep), _)) => deploy(&ctx, &tracer, &registry, &mut executions, dep),
                Ok((Ctrl::CancelBelow { below_attempt }, _)) => {
                    let stale: Vec<TaskId> =
                        executions.iter().filter(|(_, e)| e.attempt < below_attempt).map(|(t, _)| *t).collect();
                    for task in stale {
                        let e = executions.remove(&task).expect("listed above");
                        stop(&tracer, &registry, task, e, format!("canceled: attempt {below_attempt} supersedes it"));
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            },
            _ = heartbeat.tick() => {
                let reports = executions
                    .iter()
                    .map(|(task, e)| ExecReport {
                        task: *task,
                        attempt: e.attempt,
                        state: e.state.lock().expect("exec state lock").clone(),
                    })
                    .collect();
                ctrl.send(NodeName::Coordinator, Ctrl::Heartbeat { worker: number, incarnation, executions: reports }).await;
            }
        }
    }
    acceptor.abort();
}

fn stop(tracer: &Tracer, registry: &Registry, task: TaskId, e: Execution, why: String) {
    let live = matches!(*e.state.lock().expect("exec state lock"), ExecState::Running);
    e.handle.abort();
    registry.lock().expect("registry lock").remove(&(task, e.attempt));
    if live {
        tracer.emit(Event::ExecutionEnded { task, attempt: e.attempt, outcome: ExecOutcome::Canceled(why) });
    }
}

fn deploy(
    ctx: &NodeContext,
    tracer: &Tracer,
    registry: &Registry,
    executions: &mut BTreeMap<TaskId, Execution>,
    dep: Arc<Deployment>,
) {
    let task = dep.task;
    if let Some(existing) = executions.get(&task) {
        if existing.attempt >= dep.attempt {
            return; // idempotent re-send, or a stale deploy of an older attempt
        }
        let old = executions.remove(&task).expect("checked above");
        stop(tracer, registry, task, old, format!("replaced by attempt {}", dep.attempt));
    }
    assert!(!executions.contains_key(&task), "a second live execution of {task} on one worker");
    let state = Arc::new(Mutex::new(ExecState::Running));
    let kind = dep.spec.vertices[task.vertex as usize].kind;
    let inbound = if kind == VertexKind::Source {
        None
    } else {
        let (tx, rx) = mpsc::channel(dep.spec.partitions as usize + 1);
        registry.lock().expect("registry lock").insert((task, dep.attempt), tx);
        Some(rx)
    };
    tracer.emit(Event::ExecutionStarted { task, attempt: dep.attempt });
    let handle = {
        let (ctx, tracer, state, registry, dep) =
            (ctx.clone(), tracer.clone(), state.clone(), registry.clone(), dep.clone());
        tokio::spawn(async move {
            let attempt = dep.attempt;
            let result: Result<(), StreamError> = match (kind, inbound) {
                (VertexKind::Source, _) => source::run(dep, tracer.clone(), ctx.external.clone()).await,
                (VertexKind::Sink, Some(inbound)) => sink::run(dep, tracer.clone(), ctx.canaries, inbound).await,
                (VertexKind::Map, Some(inbound)) => crate::map::run(dep, tracer.clone(), inbound).await,
                (_, None) => unreachable!("only sources have no input"),
            };
            registry.lock().expect("registry lock").remove(&(task, attempt));
            let (exec_state, outcome) = match result {
                Ok(()) => (ExecState::Finished, ExecOutcome::Finished),
                Err(e) => (ExecState::Failed(e.to_string()), ExecOutcome::Failed(e.to_string())),
            };
            *state.lock().expect("exec state lock") = exec_state;
            tracer.emit(Event::ExecutionEnded { task, attempt, outcome });
        })
    };
    executions.insert(task, Execution { attempt: dep.attempt, state, handle });
}
