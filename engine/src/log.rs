//! Logs for people: every typed event the engine emits also goes to `tracing`, at a level that says how much it
//! matters and under the target of the part of the engine that decided it, so `RUST_LOG` filters them as usual
//! (`sluice_engine=debug`, `sluice_engine::checkpoint=trace`, ...).
//!
//! - `info`: decisions about the job: status changes, deploys, failures detected, restarts scheduled or refused,
//!   fences, cancels, checkpoints completed or failed, pauses, resumes, rescales, policy firings, node starts.
//! - `debug`: their steps: executions started and ended, checkpoint triggers, acknowledgements, declines and
//!   expiries, drain checks, EOTs sent and read, batches acknowledged, rejected writes, buggify firings.
//! - `trace`: per record: emitted, written, answered, committed.
//!
//! Nodes, executions and their tasks run inside spans (`node` with the node's name, then `execution` with `task` and
//! `attempt`; every spawned task inherits its spawner's), so a log line says where it happened. The typed trace stays the checkers' oracle; nothing here feeds back into a run (no
//! clock, no randomness), and with no subscriber installed a log call is one disabled-callsite check.

use crate::event::Event;

/// Emits one `tracing` event at a constant target and level (both must be constants of the callsite).
macro_rules! log_at {
    ($target:literal, $level:ident, $event:expr) => {
        tracing::event!(target: $target, tracing::Level::$level, "{:?}", $event)
    };
}

/// Logs `event`. The node that emitted it is the `node` span's (every task of a node runs inside it).
pub fn event(event: &Event) {
    use Event as E;
    match event {
        E::StatusChanged { .. }
        | E::AttemptDeployed { .. }
        | E::FailureDetected { .. }
        | E::RestartScheduled { .. }
        | E::RestartRefused { .. }
        | E::Restored { .. }
        | E::CancelRequested { .. }
        | E::CancelUnconfirmed { .. }
        | E::RestartRequested { .. } => log_at!("sluice_engine::coordinator", INFO, event),
        E::CheckpointCompleted { .. } | E::CheckpointFailed { .. } => {
            log_at!("sluice_engine::checkpoint", INFO, event)
        }
        E::CheckpointTriggered { .. }
        | E::CheckpointAcked { .. }
        | E::CheckpointDeclined { .. }
        | E::CheckpointAckWithheld { .. }
        | E::CheckpointAckDelayed { .. }
        | E::CheckpointStored { .. }
        | E::CheckpointStorageFailed { .. } => log_at!("sluice_engine::checkpoint", DEBUG, event),
        E::PauseRequested | E::ResumeRequested | E::ReplicasChanged { .. } | E::DrainedFlag { .. } => {
            log_at!("sluice_engine::lifecycle", INFO, event)
        }
        E::AutoscaleSampled { .. } | E::DrainChecked { .. } => log_at!("sluice_engine::lifecycle", DEBUG, event),
        E::NodeStarted { .. } => log_at!("sluice_engine::worker", INFO, event),
        E::ExecutionStarted { .. } | E::ExecutionEnded { .. } | E::CancelDelayed { .. } => {
            log_at!("sluice_engine::worker", DEBUG, event)
        }
        E::SourceEot { .. } | E::EotDuplicated { .. } => log_at!("sluice_engine::source", DEBUG, event),
        E::Emitted { .. } => log_at!("sluice_engine::source", TRACE, event),
        E::SinkFinished { .. } => log_at!("sluice_engine::sink", INFO, event),
        E::SinkEotReceived { .. } | E::SinkBatchAcked { .. } => log_at!("sluice_engine::sink", DEBUG, event),
        E::SinkBatchSent { .. } | E::SinkResponse { .. } => log_at!("sluice_engine::sink", TRACE, event),
        E::Fenced { .. } | E::TransactionsAborted { .. } => log_at!("sluice_engine::store", INFO, event),
        E::WriteRejected { .. } => log_at!("sluice_engine::store", DEBUG, event),
        E::Committed { .. } | E::StoreBatchServed { .. } => log_at!("sluice_engine::store", TRACE, event),
        E::PolicyFired { .. } | E::AlertRaised { .. } => log_at!("sluice_engine::platform", INFO, event),
        E::PolicyFailureCounted { .. } => log_at!("sluice_engine::platform", DEBUG, event),
        E::ControlDelayed { .. } => log_at!("sluice_engine::net", DEBUG, event),
        E::Buggified { .. } => log_at!("sluice_engine::buggify", DEBUG, event),
    }
}
