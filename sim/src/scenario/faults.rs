//! Validation of `[[faults]]`: each raw fault checked against the scenario (nodes, vertices, partitions, keys its
//! kind takes, bounds) into a typed [`Fault`], with its file, line and key on refusal. Part of the scenario module,
//! which owns all validation; `fault` holds the types and the timeline.

use super::build::refuse_keys_not_taken;
use super::{node_of, Ctx, RawFault, Scenario, ScenarioError};
use crate::fault::{Fault, FaultKind, MAX_SLOW_MS};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use sluice_engine::faults::AckTarget;
use sluice_engine::net::NodeName;
use sluice_engine::VertexKind;

/// `kind` of a `[[faults]]` entry: the fault verbs, in pairs where they have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub(crate) enum FaultName {
    EndPartition,
    DuplicateEot,
    Crash,
    Restart,
    Isolate,
    Heal,
    Clog,
    Unclog,
    Slow,
    Unslow,
    FailCheckpoint,
    DelayCheckpointAck,
    SlowCancel,
    Pause,
    Resume,
}

impl FaultName {
    /// The keys a fault of this kind takes besides `at_ms` and `kind`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            FaultName::EndPartition | FaultName::DuplicateEot => &["vertex", "partition"],
            FaultName::Crash => &["node", "restart_after_ms"],
            FaultName::Restart => &["node"],
            FaultName::Isolate => &["nodes", "heal_after_ms"],
            FaultName::Heal => &["nodes"],
            FaultName::Clog => &["from", "to", "heal_after_ms"],
            FaultName::Unclog | FaultName::Unslow => &["from", "to"],
            FaultName::Slow => &["from", "to", "by_ms", "heal_after_ms"],
            FaultName::FailCheckpoint => &["reason", "count"],
            FaultName::DelayCheckpointAck => &["checkpoint", "by_ms"],
            FaultName::SlowCancel => &["node", "by_ms"],
            FaultName::Pause | FaultName::Resume => &[],
        }
    }
}

/// `checkpoint` of a `delay-checkpoint-ack`: `"final"` or a checkpoint number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint(pub AckTarget);

impl<'de> Deserialize<'de> for Checkpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Checkpoint, D::Error> {
        struct Expected;
        impl Visitor<'_> for Expected {
            type Value = Checkpoint;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"final\" or a checkpoint number (1, 2, ...)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Checkpoint, E> {
                match v {
                    "final" => Ok(Checkpoint(AckTarget::Final)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Checkpoint, E> {
                match u64::try_from(v) {
                    Ok(n) if n > 0 => Ok(Checkpoint(AckTarget::Epoch(n))),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Checkpoint, E> {
                match v {
                    0 => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                    n => Ok(Checkpoint(AckTarget::Epoch(n))),
                }
            }
        }
        d.deserialize_any(Expected)
    }
}

pub(crate) fn validate(f: &RawFault, i: usize, s: &Scenario, ctx: &Ctx) -> Result<Fault, ScenarioError> {
    let key = |k: &str| format!("faults[{i}].{k}");
    let kind_name: &str = f.kind.into();
    if f.at_ms >= s.duration_ms {
        return Err(ctx.err(&key("at_ms"), format!("{} is not before duration_ms {}", f.at_ms, s.duration_ms)));
    }
    let takes: Vec<&str> = ["at_ms", "kind"].into_iter().chain(f.kind.keys().iter().copied()).collect();
    refuse_keys_not_taken(ctx, &format!("faults[{i}]"), kind_name, "a fault of kind", &takes)?;
    let workers = s.job.workers;
    let node = |k: &str, name: Option<&String>| -> Result<NodeName, ScenarioError> {
        let name = name.ok_or_else(|| ctx.err(&key(k), format!("a {kind_name:?} fault needs `{k}`")))?;
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
            f.nodes.as_ref().ok_or_else(|| ctx.err(&key("nodes"), format!("a {kind_name:?} fault needs `nodes`")))?;
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
    let link = || -> Result<(NodeName, NodeName), ScenarioError> {
        let (from, to) = (node("from", f.from.as_ref())?, node("to", f.to.as_ref())?);
        if from == to {
            return Err(ctx.err(&key("to"), "a link joins two different nodes"));
        }
        Ok((from, to))
    };
    let needs_checkpoints = matches!(f.kind, FaultName::FailCheckpoint | FaultName::DelayCheckpointAck);
    if needs_checkpoints && s.job.checkpoint.is_none() {
        return Err(ctx.err(&key("kind"), format!("a {kind_name:?} fault needs [job.checkpoint]")));
    }
    let kind = match f.kind {
        FaultName::EndPartition | FaultName::DuplicateEot => {
            let (vertex, partition) = source_partition(f, i, s, ctx)?;
            if f.kind == FaultName::EndPartition {
                FaultKind::EndPartition { vertex, partition }
            } else {
                FaultKind::DuplicateEot { vertex, partition }
            }
        }
        FaultName::Crash | FaultName::Restart => {
            let n = node("node", f.node.as_ref())?;
            if n == NodeName::Coordinator {
                return Err(ctx.err(
                    &key("node"),
                    "crashing the coordinator is not supported yet (it keeps no durable job state)",
                ));
            }
            if f.kind == FaultName::Crash {
                FaultKind::Crash { node: n, restart_after_ms: positive("restart_after_ms", f.restart_after_ms)? }
            } else {
                FaultKind::Restart { node: n }
            }
        }
        FaultName::Isolate => {
            FaultKind::Isolate { nodes: nodes()?, heal_after_ms: positive("heal_after_ms", f.heal_after_ms)? }
        }
        FaultName::Heal => FaultKind::Heal { nodes: nodes()? },
        FaultName::Clog => {
            let (from, to) = link()?;
            FaultKind::Clog { from, to, heal_after_ms: positive("heal_after_ms", f.heal_after_ms)? }
        }
        FaultName::Unclog => {
            let (from, to) = link()?;
            FaultKind::Unclog { from, to }
        }
        FaultName::Unslow => {
            let (from, to) = link()?;
            FaultKind::Unslow { from, to }
        }
        FaultName::Slow => {
            let (from, to) = link()?;
            let by_ms =
                positive("by_ms", f.by_ms)?.ok_or_else(|| ctx.err(&key("by_ms"), "a \"slow\" fault needs `by_ms`"))?;
            if by_ms > MAX_SLOW_MS {
                return Err(ctx.err(&key("by_ms"), format!("{by_ms} is above {MAX_SLOW_MS} (one minute)")));
            }
            FaultKind::Slow { from, to, by_ms, heal_after_ms: positive("heal_after_ms", f.heal_after_ms)? }
        }
        FaultName::FailCheckpoint => {
            let reason =
                f.reason.ok_or_else(|| ctx.err(&key("reason"), "a \"fail-checkpoint\" fault needs `reason`"))?;
            let count = f.count.unwrap_or(1);
            if count == 0 {
                return Err(ctx.err(&key("count"), "must be positive"));
            }
            FaultKind::FailCheckpoint { reason, count }
        }
        FaultName::DelayCheckpointAck => {
            let Checkpoint(checkpoint) = f
                .checkpoint
                .ok_or_else(|| ctx.err(&key("checkpoint"), "a \"delay-checkpoint-ack\" fault needs `checkpoint`"))?;
            let by_ms = positive("by_ms", f.by_ms)?
                .ok_or_else(|| ctx.err(&key("by_ms"), "a \"delay-checkpoint-ack\" fault needs `by_ms`"))?;
            FaultKind::DelayCheckpointAck { checkpoint, by_ms }
        }
        FaultName::SlowCancel => {
            let NodeName::Worker(worker) = node("node", f.node.as_ref())? else {
                return Err(ctx.err(&key("node"), "only a worker cancels executions"));
            };
            let by_ms = positive("by_ms", f.by_ms)?
                .ok_or_else(|| ctx.err(&key("by_ms"), "a \"slow-cancel\" fault needs `by_ms`"))?;
            FaultKind::SlowCancel { worker, by_ms }
        }
        FaultName::Pause => FaultKind::Pause,
        FaultName::Resume => FaultKind::Resume,
    };
    Ok(Fault { at_ms: f.at_ms, kind })
}

/// The source vertex and partition an `end-partition` or `duplicate-eot` names.
fn source_partition(f: &RawFault, i: usize, s: &Scenario, ctx: &Ctx) -> Result<(u16, u32), ScenarioError> {
    let key = |k: &str| format!("faults[{i}].{k}");
    let kind_name: &str = f.kind.into();
    let name =
        f.vertex.as_ref().ok_or_else(|| ctx.err(&key("vertex"), format!("a {kind_name:?} fault needs `vertex`")))?;
    let vertex = s.vertex_index(name).ok_or_else(|| {
        let names: Vec<String> = s.job.vertices.iter().map(|v| format!("{:?}", v.name)).collect();
        ctx.err(&key("vertex"), format!("no vertex named {name:?} (vertices: {})", names.join(", ")))
    })?;
    if s.job.vertices[vertex as usize].kind != VertexKind::Source {
        return Err(ctx.err(&key("vertex"), format!("vertex {name:?} is not a source")));
    }
    let partition =
        f.partition.ok_or_else(|| ctx.err(&key("partition"), format!("a {kind_name:?} fault needs `partition`")))?;
    if partition >= s.job.partitions {
        return Err(ctx.err(
            &key("partition"),
            format!("partition {partition} does not exist (partitions: {})", s.job.partitions),
        ));
    }
    Ok((vertex, partition))
}
