//! Faults: what a scenario injects (validated by `scenario::faults`), unrolled into a timeline of actions.
//!
//! Fault verbs come in pairs: `crash`/`restart`, `isolate`/`heal`, `clog`/`unclog`, `slow`/`unslow`. A
//! `restart_after_ms` or `heal_after_ms` on the first verb schedules the second. `end-partition` and `duplicate-eot` act on the external
//! source system.

use serde::Serialize;
use sluice_engine::faults::{AckTarget, FailReason};
use sluice_engine::net::NodeName;
use std::collections::BTreeSet;

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
