//! Validation of `[[faults]]`: each raw fault checked against the scenario (nodes, vertices, partitions, keys its
//! kind takes, bounds) into a typed [`Fault`], with its file, line and key on refusal. Part of the scenario module,
//! which owns all validation; `fault` holds the types and the timeline.

use super::{kind_list, node_of, Ctx, RawFault, Scenario, ScenarioError};
use crate::fault::{Fault, FaultKind, MAX_SLOW_MS};
use sluice_engine::faults::{AckTarget, FailReason};
use sluice_engine::net::NodeName;
use sluice_engine::VertexKind;
use strum::VariantNames;

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
