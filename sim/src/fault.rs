//! Faults: what a scenario injects, validated, and unrolled into a timeline of actions.
//!
//! Fault verbs come in pairs: `crash`/`restart`, `isolate`/`heal`, `clog`/`unclog`, `slow`/`unslow`. A
//! `restart_after_ms` or `heal_after_ms` on the first verb schedules the second. `end-partition` and `duplicate-eot` act on the external
//! source system.

use crate::scenario::{kind_list, node_of, Ctx, RawFault, Scenario, ScenarioError};
use serde::Serialize;
use sluice_engine::faults::{AckTarget, FailReason};
use sluice_engine::net::NodeName;
use sluice_engine::VertexKind;
use std::collections::BTreeSet;
use strum::VariantNames;

/// The longest a slowed link delays a datagram (the network's own latency is bounded the same way).
pub const MAX_SLOW_MS: u64 = 60_000;

/// A validated fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at_ms: u64,
    pub kind: FaultKind,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The source ends that partition now: it keeps what has been read, and its EOT goes out.
    EndPartition {
        vertex: u16,
        partition: u32,
    },
    /// The partition's EOT is delivered once more (now, if it was already delivered).
    DuplicateEot {
        vertex: u16,
        partition: u32,
    },
    Crash {
        node: NodeName,
        restart_after_ms: Option<u64>,
    },
    Restart {
        node: NodeName,
    },
    Isolate {
        nodes: Vec<NodeName>,
        heal_after_ms: Option<u64>,
    },
    Heal {
        nodes: Vec<NodeName>,
    },
    Clog {
        from: NodeName,
        to: NodeName,
        heal_after_ms: Option<u64>,
    },
    Unclog {
        from: NodeName,
        to: NodeName,
    },
    /// Control datagrams on the one-way link leave `by_ms` late.
    Slow {
        from: NodeName,
        to: NodeName,
        by_ms: u64,
        heal_after_ms: Option<u64>,
    },
    Unslow {
        from: NodeName,
        to: NodeName,
    },
    /// The next `count` checkpoints triggered at or after the fault fail with `reason`.
    FailCheckpoint {
        reason: FailReason,
        count: u32,
    },
    /// The acknowledgements of that checkpoint arrive `by_ms` late.
    DelayCheckpointAck {
        checkpoint: AckTarget,
        by_ms: u64,
    },
    /// The worker takes `by_ms` to carry out each cancellation.
    SlowCancel {
        worker: u16,
        by_ms: u64,
    },
    /// An operator pauses the job through the coordinator's API.
    Pause,
    /// An operator resumes it.
    Resume,
}

impl FaultKind {
    pub const NAMES: &'static str = "end-partition, duplicate-eot, crash, restart, isolate, heal, clog, unclog, \
                                     slow, unslow, fail-checkpoint, delay-checkpoint-ack, slow-cancel, pause, resume";
}

/// One step of the timeline: what the sim does at an instant. Recorded in the trace as a typed event, so checkers
/// match on variants (never on text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// The external source ends this partition now.
    EndPartition {
        partition: u32,
    },
    /// The external source delivers this partition's EOT once more.
    DuplicateEot {
        partition: u32,
    },
    /// Kill the node: all its tasks and sockets.
    Crash {
        node: NodeName,
    },
    /// Start the node again with empty memory (a live node is killed first).
    Restart {
        node: NodeName,
    },
    /// Clog every link of the node, both ways.
    Isolate {
        node: NodeName,
    },
    Heal {
        node: NodeName,
    },
    /// Clog the one-way link.
    Clog {
        from: NodeName,
        to: NodeName,
    },
    Unclog {
        from: NodeName,
        to: NodeName,
    },
    /// Control datagrams on the one-way link leave `by_ms` late.
    Slow {
        from: NodeName,
        to: NodeName,
        by_ms: u64,
    },
    Unslow {
        from: NodeName,
        to: NodeName,
    },
    FailCheckpoints {
        reason: FailReason,
        count: u32,
    },
    DelayAcks {
        checkpoint: AckTarget,
        by_ms: u64,
    },
    SlowCancel {
        worker: u16,
        by_ms: u64,
    },
    /// Ask the coordinator, through the client, to pause.
    Pause,
    /// Ask the coordinator, through the client, to resume.
    Resume,
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::EndPartition { partition } => format!("end-partition {partition}"),
            Action::DuplicateEot { partition } => format!("duplicate-eot {partition}"),
            Action::Crash { node } => format!("crash {}", node.label()),
            Action::Restart { node } => format!("restart {}", node.label()),
            Action::Isolate { node } => format!("isolate {}", node.label()),
            Action::Heal { node } => format!("heal {}", node.label()),
            Action::Clog { from, to } => format!("clog {} -> {}", from.label(), to.label()),
            Action::Unclog { from, to } => format!("unclog {} -> {}", from.label(), to.label()),
            Action::Slow { from, to, by_ms } => format!("slow {} -> {} by {by_ms} ms", from.label(), to.label()),
            Action::Unslow { from, to } => format!("unslow {} -> {}", from.label(), to.label()),
            Action::FailCheckpoints { reason, count } => format!("fail-checkpoint {reason} x{count}"),
            Action::DelayAcks { checkpoint, by_ms } => match checkpoint {
                AckTarget::Final => format!("delay-checkpoint-ack final by {by_ms} ms"),
                AckTarget::Epoch(n) => format!("delay-checkpoint-ack {n} by {by_ms} ms"),
            },
            Action::SlowCancel { worker, by_ms } => format!("slow-cancel worker-{worker} by {by_ms} ms"),
            Action::Pause => "pause".into(),
            Action::Resume => "resume".into(),
        }
    }

    /// The nodes this action crashes, restarts, cuts off, slows or reconnects (none for the other faults).
    pub fn nodes(&self) -> Vec<NodeName> {
        match self {
            Action::Crash { node } | Action::Restart { node } | Action::Isolate { node } | Action::Heal { node } => {
                vec![*node]
            }
            Action::Clog { from, to }
            | Action::Unclog { from, to }
            | Action::Slow { from, to, .. }
            | Action::Unslow { from, to } => vec![*from, *to],
            _ => Vec::new(),
        }
    }

    /// Whether the action disrupts nodes or links (a crash, restart, isolation, heal, clog, unclog, slow or unslow).
    pub fn is_disruptive(&self) -> bool {
        !self.nodes().is_empty()
    }
}

/// The faults of a scenario as timed actions, in time order (file order for equal times).
pub fn timeline(faults: &[Fault]) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    for f in faults {
        let t = f.at_ms;
        match &f.kind {
            FaultKind::EndPartition { partition, .. } => out.push((t, Action::EndPartition { partition: *partition })),
            FaultKind::DuplicateEot { partition, .. } => out.push((t, Action::DuplicateEot { partition: *partition })),
            FaultKind::Crash { node, restart_after_ms } => {
                out.push((t, Action::Crash { node: *node }));
                if let Some(after) = restart_after_ms {
                    out.push((t + after, Action::Restart { node: *node }));
                }
            }
            FaultKind::Restart { node } => out.push((t, Action::Restart { node: *node })),
            FaultKind::Isolate { nodes, heal_after_ms } => {
                out.extend(nodes.iter().map(|n| (t, Action::Isolate { node: *n })));
                if let Some(after) = heal_after_ms {
                    out.extend(nodes.iter().map(|n| (t + after, Action::Heal { node: *n })));
                }
            }
            FaultKind::Heal { nodes } => out.extend(nodes.iter().map(|n| (t, Action::Heal { node: *n }))),
            FaultKind::Clog { from, to, heal_after_ms } => {
                out.push((t, Action::Clog { from: *from, to: *to }));
                if let Some(after) = heal_after_ms {
                    out.push((t + after, Action::Unclog { from: *from, to: *to }));
                }
            }
            FaultKind::Unclog { from, to } => out.push((t, Action::Unclog { from: *from, to: *to })),
            FaultKind::Slow { from, to, by_ms, heal_after_ms } => {
                out.push((t, Action::Slow { from: *from, to: *to, by_ms: *by_ms }));
                if let Some(after) = heal_after_ms {
                    out.push((t + after, Action::Unslow { from: *from, to: *to }));
                }
            }
            FaultKind::Unslow { from, to } => out.push((t, Action::Unslow { from: *from, to: *to })),
            FaultKind::FailCheckpoint { reason, count } => {
                out.push((t, Action::FailCheckpoints { reason: *reason, count: *count }))
            }
            FaultKind::DelayCheckpointAck { checkpoint, by_ms } => {
                out.push((t, Action::DelayAcks { checkpoint: *checkpoint, by_ms: *by_ms }))
            }
            FaultKind::SlowCancel { worker, by_ms } => {
                out.push((t, Action::SlowCancel { worker: *worker, by_ms: *by_ms }))
            }
            FaultKind::Pause => out.push((t, Action::Pause)),
            FaultKind::Resume => out.push((t, Action::Resume)),
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// When the liveness phase starts: the time from which the cluster stays able to make progress (coordinator and
/// store up and reachable, no clogged or slowed link, at least one worker up and reachable). `None`: it never is.
pub fn liveness_start_ms(actions: &[(u64, Action)], workers: u16) -> Option<u64> {
    let mut down: BTreeSet<NodeName> = BTreeSet::new();
    let mut isolated: BTreeSet<NodeName> = BTreeSet::new();
    let mut clogged: BTreeSet<(NodeName, NodeName)> = BTreeSet::new();
    let mut slowed_by_ms: std::collections::BTreeMap<(NodeName, NodeName), u64> = Default::default();
    let healthy = |down: &BTreeSet<NodeName>, isolated: &BTreeSet<NodeName>, clogged: &BTreeSet<_>| {
        let ok = |n: &NodeName| !down.contains(n) && !isolated.contains(n);
        ok(&NodeName::Coordinator)
            && ok(&NodeName::Store)
            && clogged.is_empty()
            && (1..=workers).any(|w| ok(&NodeName::Worker(w)))
    };
    let mut start = Some(0);
    let mut was_healthy = true;
    for (t, a) in actions {
        match a {
            Action::Crash { node } => {
                down.insert(*node);
            }
            Action::Restart { node } => {
                down.remove(node);
            }
            Action::Isolate { node } => {
                isolated.insert(*node);
            }
            Action::Heal { node } => {
                isolated.remove(node);
            }
            Action::Clog { from, to } => {
                clogged.insert((*from, *to));
            }
            Action::Slow { from, to, by_ms } => {
                clogged.insert((*from, *to));
                slowed_by_ms.insert((*from, *to), *by_ms);
            }
            Action::Unclog { from, to } | Action::Unslow { from, to } => {
                clogged.remove(&(*from, *to));
            }
            _ => {}
        }
        // What a slowed link delayed arrives up to its delay after the unslow: the disruption lasts until then.
        let settled_ms = match a {
            Action::Unslow { from, to } => t + slowed_by_ms.remove(&(*from, *to)).unwrap_or(0),
            _ => *t,
        };
        let now_healthy = healthy(&down, &isolated, &clogged);
        if now_healthy && a.is_disruptive() {
            // Any disruption (even one the cluster survives, like losing a worker) restarts the liveness clock.
            start = Some(start.map_or(settled_ms, |s| s.max(settled_ms)));
        } else if !now_healthy {
            start = None;
        }
        was_healthy = now_healthy;
    }
    debug_assert!(was_healthy || start.is_none());
    start
}

pub(crate) fn validate(f: &RawFault, i: usize, s: &Scenario, ctx: &Ctx) -> Result<Fault, ScenarioError> {
    let key = |k: &str| format!("faults[{i}].{k}");
    if f.at_ms >= s.duration_ms {
        return Err(ctx.err(&key("at_ms"), format!("{} is not before duration_ms {}", f.at_ms, s.duration_ms)));
    }
    let allowed: &[&str] = match f.kind.as_str() {
        "end-partition" | "duplicate-eot" => &["vertex", "partition"],
        "crash" => &["node", "restart_after_ms"],
        "restart" => &["node"],
        "isolate" => &["nodes", "heal_after_ms"],
        "heal" => &["nodes"],
        "clog" => &["from", "to", "heal_after_ms"],
        "unclog" => &["from", "to"],
        "slow" => &["from", "to", "by_ms", "heal_after_ms"],
        "unslow" => &["from", "to"],
        "fail-checkpoint" => &["reason", "count"],
        "delay-checkpoint-ack" => &["checkpoint", "by_ms"],
        "slow-cancel" => &["node", "by_ms"],
        "pause" | "resume" => &[],
        other => {
            return Err(ctx.err(&key("kind"), format!("unknown fault kind {other:?}; expected one of {}", kind_list())))
        }
    };
    let present = [
        ("vertex", f.vertex.is_some()),
        ("partition", f.partition.is_some()),
        ("node", f.node.is_some()),
        ("nodes", f.nodes.is_some()),
        ("from", f.from.is_some()),
        ("to", f.to.is_some()),
        ("restart_after_ms", f.restart_after_ms.is_some()),
        ("heal_after_ms", f.heal_after_ms.is_some()),
        ("reason", f.reason.is_some()),
        ("count", f.count.is_some()),
        ("checkpoint", f.checkpoint.is_some()),
        ("by_ms", f.by_ms.is_some()),
    ];
    for (k, is) in present {
        if is && !allowed.contains(&k) {
            return Err(
                ctx.err(&key(k), format!("a {:?} fault takes no `{k}` (it takes: {})", f.kind, allowed.join(", ")))
            );
        }
    }
    let workers = s.job.workers;
    let node = |k: &str, name: Option<&String>| -> Result<NodeName, ScenarioError> {
        let name = name.ok_or_else(|| ctx.err(&key(k), format!("a {:?} fault needs `{k}`", f.kind)))?;
        let platform = s.job.policy.is_some();
        node_of(name, workers, platform).ok_or_else(|| {
            let extra = if platform { ", platform" } else { "" };
            ctx.err(
                &key(k),
                format!("no node named {name:?}; nodes are coordinator, store{extra}, worker-1..worker-{workers}"),
            )
        })
    };
    let nodes = || -> Result<Vec<NodeName>, ScenarioError> {
        let names =
            f.nodes.as_ref().ok_or_else(|| ctx.err(&key("nodes"), format!("a {:?} fault needs `nodes`", f.kind)))?;
        if names.is_empty() {
            return Err(ctx.err(&key("nodes"), "must name at least one node"));
        }
        names.iter().enumerate().map(|(j, n)| node(&format!("nodes[{j}]"), Some(n))).collect()
    };
    let positive = |k: &str, v: Option<u64>| -> Result<Option<u64>, ScenarioError> {
        match v {
            Some(0) => Err(ctx.err(&key(k), "must be positive")),
            v => Ok(v),
        }
    };
    let kind = match f.kind.as_str() {
        "end-partition" | "duplicate-eot" => {
            let name = f
                .vertex
                .as_ref()
                .ok_or_else(|| ctx.err(&key("vertex"), format!("a {:?} fault needs `vertex`", f.kind)))?;
            let vertex = s.vertex_index(name).ok_or_else(|| {
                let names: Vec<&str> = s.job.vertices.iter().map(|v| v.name.as_str()).collect();
                ctx.err(&key("vertex"), format!("no vertex named {name:?} (vertices: {})", names.join(", ")))
            })?;
            if s.job.vertices[vertex as usize].kind != VertexKind::Source {
                return Err(ctx.err(&key("vertex"), format!("vertex {name:?} is not a source")));
            }
            let partition = f
                .partition
                .ok_or_else(|| ctx.err(&key("partition"), format!("a {:?} fault needs `partition`", f.kind)))?;
            if partition >= s.job.partitions {
                return Err(ctx.err(
                    &key("partition"),
                    format!("partition {partition} does not exist (partitions: {})", s.job.partitions),
                ));
            }
            if f.kind == "end-partition" {
                FaultKind::EndPartition { vertex, partition }
            } else {
                FaultKind::DuplicateEot { vertex, partition }
            }
        }
        "crash" | "restart" => {
            let n = node("node", f.node.as_ref())?;
            if n == NodeName::Coordinator {
                return Err(ctx.err(
                    &key("node"),
                    "crashing the coordinator is not supported yet (it keeps no durable job state)",
                ));
            }
            if f.kind == "crash" {
                FaultKind::Crash { node: n, restart_after_ms: positive("restart_after_ms", f.restart_after_ms)? }
            } else {
                FaultKind::Restart { node: n }
            }
        }
        "isolate" => FaultKind::Isolate { nodes: nodes()?, heal_after_ms: positive("heal_after_ms", f.heal_after_ms)? },
        "heal" => FaultKind::Heal { nodes: nodes()? },
        "clog" | "unclog" => {
            let (from, to) = (node("from", f.from.as_ref())?, node("to", f.to.as_ref())?);
            if from == to {
                return Err(ctx.err(&key("to"), "a link joins two different nodes"));
            }
            if f.kind == "clog" {
                FaultKind::Clog { from, to, heal_after_ms: positive("heal_after_ms", f.heal_after_ms)? }
            } else {
                FaultKind::Unclog { from, to }
            }
        }
        "slow" | "unslow" => {
            let (from, to) = (node("from", f.from.as_ref())?, node("to", f.to.as_ref())?);
            if from == to {
                return Err(ctx.err(&key("to"), "a link joins two different nodes"));
            }
            if f.kind == "unslow" {
                FaultKind::Unslow { from, to }
            } else {
                let by_ms = positive("by_ms", f.by_ms)?
                    .ok_or_else(|| ctx.err(&key("by_ms"), "a \"slow\" fault needs `by_ms`"))?;
                if by_ms > MAX_SLOW_MS {
                    return Err(ctx.err(&key("by_ms"), format!("{by_ms} is above {MAX_SLOW_MS} (one minute)")));
                }
                FaultKind::Slow { from, to, by_ms, heal_after_ms: positive("heal_after_ms", f.heal_after_ms)? }
            }
        }
        "fail-checkpoint" | "delay-checkpoint-ack" if s.job.checkpoint.is_none() => {
            return Err(ctx.err(&key("kind"), format!("a {:?} fault needs [job.checkpoint]", f.kind)));
        }
        "fail-checkpoint" => {
            let reason = match f.reason.as_deref().map(str::parse::<FailReason>) {
                Some(Ok(reason)) => reason,
                Some(Err(_)) => {
                    let other = f.reason.as_deref().unwrap_or_default();
                    let expected = FailReason::VARIANTS.join(", ");
                    return Err(
                        ctx.err(&key("reason"), format!("unknown reason {other:?}; expected one of {expected}"))
                    );
                }
                None => return Err(ctx.err(&key("reason"), "a \"fail-checkpoint\" fault needs `reason`")),
            };
            let count = f.count.unwrap_or(1);
            if count == 0 {
                return Err(ctx.err(&key("count"), "must be positive"));
            }
            FaultKind::FailCheckpoint { reason, count }
        }
        "delay-checkpoint-ack" => {
            let checkpoint = match &f.checkpoint {
                Some(toml::Value::String(s)) if s == "final" => AckTarget::Final,
                Some(toml::Value::Integer(n)) if *n > 0 => AckTarget::Epoch(*n as u64),
                Some(_) => {
                    return Err(ctx.err(&key("checkpoint"), "must be \"final\" or a checkpoint number (1, 2, ...)"))
                }
                None => return Err(ctx.err(&key("checkpoint"), "a \"delay-checkpoint-ack\" fault needs `checkpoint`")),
            };
            let by_ms = positive("by_ms", f.by_ms)?
                .ok_or_else(|| ctx.err(&key("by_ms"), "a \"delay-checkpoint-ack\" fault needs `by_ms`"))?;
            FaultKind::DelayCheckpointAck { checkpoint, by_ms }
        }
        "slow-cancel" => {
            let NodeName::Worker(worker) = node("node", f.node.as_ref())? else {
                return Err(ctx.err(&key("node"), "only a worker cancels executions"));
            };
            let by_ms = positive("by_ms", f.by_ms)?
                .ok_or_else(|| ctx.err(&key("by_ms"), "a \"slow-cancel\" fault needs `by_ms`"))?;
            FaultKind::SlowCancel { worker, by_ms }
        }
        "pause" => FaultKind::Pause,
        "resume" => FaultKind::Resume,
        _ => unreachable!("kinds checked above"),
    };
    Ok(Fault { at_ms: f.at_ms, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_starts_after_the_last_heal() {
        let w1 = NodeName::Worker(1);
        let acts = vec![
            (100, Action::Crash { node: w1 }),
            (500, Action::Restart { node: w1 }),
            (700, Action::EndPartition { partition: 0 }),
        ];
        assert_eq!(liveness_start_ms(&acts, 2), Some(500));
        assert_eq!(liveness_start_ms(&acts[..1], 2), Some(100), "losing one of two workers is survivable");
        assert_eq!(liveness_start_ms(&acts[..1], 1), None, "losing the only worker is not");
        let iso = vec![(10, Action::Isolate { node: NodeName::Store })];
        assert_eq!(liveness_start_ms(&iso, 2), None);
        assert_eq!(liveness_start_ms(&[], 1), Some(0));
        let (c, st) = (NodeName::Coordinator, NodeName::Store);
        let slow = vec![
            (100, Action::Slow { from: st, to: c, by_ms: 900 }),
            (200, Action::Unslow { from: st, to: c }),
            (300, Action::Crash { node: w1 }),
        ];
        assert_eq!(liveness_start_ms(&slow[..1], 2), None, "a slowed link in force");
        assert_eq!(liveness_start_ms(&slow[..2], 2), Some(1_100), "what it delayed arrives by then");
        assert_eq!(liveness_start_ms(&slow, 2), Some(1_100), "a later disruption does not move it back");
    }
}
