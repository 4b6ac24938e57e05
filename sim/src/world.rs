//! The world: one seeded madsim runtime with the engine's nodes on a simulated network, the fault timeline, and the
//! client that reads the job status through the coordinator's API and carries the operator's pause and resume.

use crate::fault::{timeline, Action};
use crate::scenario::Scenario;
use crate::trace::{TraceEvent, TraceRecorder};
use madsim::runtime::{Handle, NodeHandle, Runtime};
use sluice_engine::net::{Ctrl, CtrlEndpoint, NodeName};
use sluice_engine::store::Commit;
use sluice_engine::timer::Deadline;
use sluice_engine::{
    coordinator, platform, store, worker, Canaries, JobStatus, Mode, NodeContext, Point, PolicyAction,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// How often the client reads the job status.
pub const STATUS_POLL_MS: u64 = 100;
/// How long a batch run goes on after the client first reads a terminal status, beyond the quiescence bound (late
/// writes and zombies show here).
pub const SETTLE_MS: u64 = 2_000;

/// What a simulation leaves behind.
pub struct Outcome {
    pub ledger: Vec<Commit>,
    /// The last status the client read, if it ever read one.
    pub status: Option<JobStatus>,
    /// The `drained_on_pause` flag read with it.
    pub drained_on_pause: bool,
    pub sim_ms: u64,
    /// When the client first read a terminal status, if it did.
    pub first_terminal_ms: Option<u64>,
    /// Messages the simulated network carried (stream frames and datagrams that got through): the run's volume.
    pub messages: u64,
}

/// What the client knows and what it has to ask: shared by the supervisor and the client node.
#[derive(Default)]
struct Client {
    /// The last status read through the API, with its `drained_on_pause`.
    observed: Option<(JobStatus, bool)>,
    first_terminal_ms: Option<u64>,
    /// Pause (`true`) / resume requests not yet acknowledged, by request id; re-sent every poll.
    requests: Vec<(u64, bool)>,
    next_request: u64,
}

fn net_config(s: &Scenario) -> madsim::Config {
    let mut config = madsim::Config::default();
    let (lo, hi) = s.network.latency_ms;
    config.net.send_latency = Duration::from_millis(lo)..Duration::from_millis(hi + 1);
    config.net.packet_loss_rate = s.network.loss;
    config
}

/// Runs `scenario` under `seed` with `canaries` switched on, recording into `recorder` (which holds the trace and
/// feeds the checkers). Panics of the engine propagate to the caller; what was recorded up to the panic stays in
/// `recorder`.
pub fn simulate(scenario: &Scenario, seed: u64, canaries: Canaries, recorder: Arc<TraceRecorder>) -> Outcome {
    let ctx = NodeContext::new(scenario.job.clone(), canaries, recorder.clone());
    let ledger = ctx.ledger.clone();
    let rt = Runtime::with_seed_and_config(seed, net_config(scenario));
    let client: Arc<Mutex<Client>> = Arc::default();
    let (sim_ms, messages) = rt.block_on(supervise(scenario.clone(), ctx, recorder.clone(), client.clone()));
    drop(rt);
    let ledger = ledger.lock().expect("ledger lock").commits().to_vec();
    let (observed, first_terminal_ms) = {
        let c = client.lock().expect("client lock");
        (c.observed, c.first_terminal_ms)
    };
    Outcome {
        ledger,
        status: observed.map(|(s, _)| s),
        drained_on_pause: observed.is_some_and(|(_, d)| d),
        sim_ms,
        first_terminal_ms,
        messages,
    }
}

/// Every node of the world has an address of its own: madsim accepts two nodes on one address (a sweep with workers
/// on the store's address ran without a complaint), and which of them a datagram reaches is then not the scenario's
/// choice. A clash is the engine's addressing at fault: the run's `engine-assertion`.
fn assert_distinct_addresses(names: &[NodeName]) {
    let mut seen: BTreeMap<std::net::IpAddr, NodeName> = BTreeMap::new();
    for name in names {
        if let Some(other) = seen.insert(name.ip(), *name) {
            panic!("{} and {} share the address {}", other.label(), name.label(), name.ip());
        }
    }
}

fn node(
    handle: &Handle,
    name: NodeName,
    init: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync + 'static,
) -> NodeHandle {
    // Every node runs in a span of its name (log lines say where they happened; see `sluice_engine::log`).
    let label = name.label();
    let span = tracing::info_span!(target: "sluice_engine::node", "node", node = %label);
    let init = move || {
        Box::pin(init().instrument(span.clone())) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    };
    handle.create_node().name(name.label()).ip(name.ip()).init(init).build()
}

async fn supervise(
    scenario: Scenario,
    ctx: NodeContext,
    recorder: Arc<TraceRecorder>,
    client: Arc<Mutex<Client>>,
) -> (u64, u64) {
    let handle = Handle::current();
    let mut names = vec![NodeName::Store, NodeName::Coordinator, NodeName::Client];
    names.extend((1..=scenario.job.workers).map(NodeName::Worker));
    if scenario.job.policy.is_some() {
        names.push(NodeName::Platform);
    }
    assert_distinct_addresses(&names);
    let mut nodes: BTreeMap<NodeName, NodeHandle> = BTreeMap::new();
    {
        let (ledger, tracer, faults) = (ctx.ledger.clone(), ctx.tracer("store"), ctx.faults.clone());
        let init = move || Box::pin(store::run(ledger.clone(), tracer.clone(), faults.clone())) as _;
        nodes.insert(NodeName::Store, node(&handle, NodeName::Store, init));
    }
    for n in 1..=scenario.job.workers {
        let c = ctx.clone();
        nodes.insert(
            NodeName::Worker(n),
            node(&handle, NodeName::Worker(n), move || Box::pin(worker::run(c.clone(), n))),
        );
    }
    {
        let c = ctx.clone();
        nodes.insert(
            NodeName::Coordinator,
            node(&handle, NodeName::Coordinator, move || Box::pin(coordinator::run(c.clone()))),
        );
    }
    if scenario.job.policy.is_some() {
        let c = ctx.clone();
        nodes.insert(NodeName::Platform, node(&handle, NodeName::Platform, move || Box::pin(platform::run(c.clone()))));
    }
    {
        let (recorder, client, c) = (recorder.clone(), client.clone(), ctx.clone());
        // A node exits when its init task ends: the client's init is its loop.
        let init = move || Box::pin(run_client(recorder.clone(), client.clone(), c.clone())) as _;
        nodes.insert(NodeName::Client, node(&handle, NodeName::Client, init));
    }

    let start = madsim::time::Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let actions = timeline(&scenario.faults);
    let mut next = 0;
    let batch = scenario.job.mode == Mode::Batch;
    loop {
        let now = now_ms();
        while next < actions.len() && actions[next].0 <= now {
            let action = &actions[next].1;
            tracing::info!(target: "sluice_sim::fault", "FAULT {}", action.describe());
            apply(action, &handle, &nodes, &ctx, &client);
            recorder.push("sim", TraceEvent::Fault(action.clone()));
            next += 1;
        }
        let settle_ms = SETTLE_MS + scenario.expect.quiescent_within_ms;
        let settled = client.lock().expect("client lock").first_terminal_ms.is_some_and(|t| now >= t + settle_ms);
        if now >= scenario.duration_ms || (batch && settled) {
            // Kill every node: madsim does not cancel pending tasks when a runtime is dropped, and a task parked on
            // a channel it owns would keep itself (and its node's state) alive. Killed tasks are woken and dropped.
            for n in nodes.values() {
                handle.kill(n.id());
            }
            return (now, madsim::net::NetSim::current().stat().msg_count);
        }
        let next_action = actions.get(next).map(|a| a.0).unwrap_or(u64::MAX);
        let wake = next_action.min(now + STATUS_POLL_MS).min(scenario.duration_ms);
        madsim::time::sleep_until(start + Duration::from_millis(wake)).await;
    }
}

fn apply(
    action: &Action,
    handle: &Handle,
    nodes: &BTreeMap<NodeName, NodeHandle>,
    ctx: &NodeContext,
    client: &Mutex<Client>,
) {
    let id = |n: &NodeName| nodes.get(n).expect("validated node").id();
    let net = madsim::net::NetSim::current();
    match action {
        Action::EndPartition { partition } => ctx.external.end_partition(*partition),
        Action::DuplicateEot { partition } => ctx.external.duplicate_eot(*partition),
        Action::Crash { node } => handle.kill(id(node)),
        Action::Restart { node } => {
            // madsim's restart keeps a live node's sockets bound; a kill first makes it a crash and a fresh start.
            handle.kill(id(node));
            handle.restart(id(node));
        }
        Action::Isolate { node } => net.clog_node(id(node)),
        Action::Heal { node } => net.unclog_node(id(node)),
        Action::Clog { from, to } => net.clog_link(id(from), id(to)),
        Action::Unclog { from, to } => net.unclog_link(id(from), id(to)),
        Action::FailCheckpoints { reason, count } => {
            ctx.faults.fail_checkpoints(sluice_engine::faults::fault_clock_ms(), *reason, *count)
        }
        Action::DelayAcks { checkpoint, by_ms } => ctx.faults.delay_acks(*checkpoint, *by_ms),
        Action::SlowCancel { worker, by_ms } => ctx.faults.slow_cancel(*worker, *by_ms),
        Action::Slow { from, to, by_ms } => ctx.faults.slow_link(*from, *to, *by_ms),
        Action::Unslow { from, to } => ctx.faults.unslow_link(*from, *to),
        Action::Pause | Action::Resume => {
            let mut c = client.lock().expect("client lock");
            if c.observed.is_some_and(|(s, _)| s == JobStatus::Restarting) {
                let point =
                    if *action == Action::Pause { Point::PauseWhileRestarting } else { Point::ResumeWhileRestarting };
                ctx.tracer("client").reach(point);
            }
            c.next_request += 1;
            let id = c.next_request;
            c.requests.push((id, *action == Action::Pause));
        }
    }
}

/// The client: reads the status through the coordinator's API, as a user would, and carries the operator's pause
/// and resume requests (re-sent until the coordinator acknowledges them).
async fn run_client(recorder: Arc<TraceRecorder>, client: Arc<Mutex<Client>>, ctx: NodeContext) {
    let ctrl = CtrlEndpoint::bind(NodeName::Client, ctx.faults.clone(), ctx.tracer("client"))
        .await
        .expect("client control port is free");
    let start = madsim::time::Instant::now();
    let mut request = 0u64;
    // The newest read answered: replies overtaken on the network (an older read answered later) are dropped.
    let mut answered = 0u64;
    // With a policy that alerts, the client also reads the platform's alerts, from the last one it has.
    let reads_alerts = ctx.spec.policy.is_some_and(|p| p.action == PolicyAction::Alert);
    let mut last_alert = 0u64;
    loop {
        let pending = client.lock().expect("client lock").requests.clone();
        for (id, pause) in pending {
            ctrl.send(NodeName::Coordinator, Ctrl::SetPhase { request: id, pause }).await;
        }
        request += 1;
        ctrl.send(NodeName::Coordinator, Ctrl::GetStatus { request }).await;
        if reads_alerts {
            ctrl.send(NodeName::Platform, Ctrl::GetAlerts { request, after: last_alert }).await;
        }
        // One deadline for the poll's window: a `timeout` per answer left a timer behind for each.
        let mut window = Deadline::after(Duration::from_millis(STATUS_POLL_MS));
        loop {
            let received = tokio::select! {
                biased;
                received = ctrl.recv() => received,
                _ = &mut window => break,
            };
            let Ok((msg, _)) = received else { break };
            let mut c = client.lock().expect("client lock");
            match msg {
                Ctrl::PhaseAck { request: id } => c.requests.retain(|(r, _)| *r != id),
                // Alerts come oldest first; one already read (in an answer overtaken on the network) is dropped.
                Ctrl::Alerts { alerts, .. } => {
                    for alert in alerts {
                        if alert.id <= last_alert {
                            continue;
                        }
                        last_alert = alert.id;
                        recorder.push("client", TraceEvent::Alerted { id: alert.id, epochs: alert.epochs });
                    }
                }
                // An answer older than one already read is dropped; a late answer to a recent read is taken (on a
                // slow network every answer comes after the next read was sent).
                Ctrl::Status { request: r, status, drained_on_pause } if r > answered => {
                    answered = r;
                    if c.observed != Some((status, drained_on_pause)) {
                        tracing::debug!(target: "sluice_sim::client", %status, drained_on_pause, "client reads");
                        recorder.push("client", TraceEvent::Observed { status, drained_on_pause });
                        c.observed = Some((status, drained_on_pause));
                    }
                    if status.is_terminal() && c.first_terminal_ms.is_none() {
                        c.first_terminal_ms = Some(start.elapsed().as_millis() as u64);
                    }
                }
                _ => {}
            }
        }
        (&mut window).await;
    }
}
