//! The fault plane: where injected faults enter the engine, at the places real ones would arise.
//!
//! The sim arms faults here at their scenario time; the engine asks at the exact spot a real fault would come from:
//! a source task decides whether it declines or never acknowledges a checkpoint, the store's checkpoint storage
//! whether a write fails, a task how late its acknowledgement is, a worker how slowly it cancels, a node's control
//! endpoint how late a datagram leaves on a slowed link. Nothing else in the engine knows that faults exist.

use crate::net::NodeName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// The clock faults are armed on: simulated ms since the run started (the same for every node; a node's own
/// `Instant`s start when the node does).
pub fn fault_clock_ms() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_millis() as u64
}

/// Why a checkpoint fails (Flink's `CheckpointFailureReason`s). Its kebab-case name comes from `Display` and is
/// parsed with `FromStr`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::VariantNames,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum FailReason {
    /// Not every acknowledgement arrived within the timeout (`CHECKPOINT_EXPIRED`).
    Expired,
    /// A task declined the checkpoint (`CHECKPOINT_DECLINED`).
    Declined,
    /// Checkpoint storage failed to write it (`IO_EXCEPTION`).
    IoError,
    /// A task declined it because a newer checkpoint subsumed it (`CHECKPOINT_DECLINED_SUBSUMED`).
    Subsumed,
    /// A task declined it because it was not ready to take it (`CHECKPOINT_DECLINED_TASK_NOT_READY`).
    TaskNotReady,
}

impl FailReason {
    /// Whether a task declines the checkpoint for this reason (the others arise at the coordinator or the storage).
    pub fn is_decline(self) -> bool {
        matches!(self, FailReason::Declined | FailReason::Subsumed | FailReason::TaskNotReady)
    }
}

/// Which checkpoint's acknowledgements a delay applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckTarget {
    /// The first final checkpoint of a batch job.
    Final,
    Epoch(u64),
}

#[derive(Debug, Default)]
struct State {
    /// Armed failures: from `since_ms`, the next `count` checkpoints triggered fail with `reason`.
    armed: VecDeque<(u64, FailReason, u32)>,
    /// Decided fates, by checkpoint id (`None`: no fault).
    fates: BTreeMap<u64, Option<FailReason>>,
    ack_delays: Vec<(AckTarget, u64)>,
    first_final: Option<u64>,
    cancel_delay_ms: BTreeMap<u16, u64>,
    /// Slowed one-way links: the extra delay of each control datagram.
    link_delays: BTreeMap<(NodeName, NodeName), u64>,
}

/// Shared by every node of a run; outlives node crashes.
#[derive(Debug, Default)]
pub struct FaultPlane {
    state: Mutex<State>,
}

impl FaultPlane {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fault plane lock"))
    }

    /// The next `count` checkpoints triggered at or after `since_ms` fail with `reason`.
    pub fn fail_checkpoints(&self, since_ms: u64, reason: FailReason, count: u32) {
        self.with(|s| s.armed.push_back((since_ms, reason, count)));
    }

    /// The acknowledgements of `target` arrive `by_ms` late.
    pub fn delay_acks(&self, target: AckTarget, by_ms: u64) {
        self.with(|s| s.ack_delays.push((target, by_ms)));
    }

    /// `worker-N` takes `by_ms` to carry out each cancellation from now on.
    pub fn slow_cancel(&self, worker: u16, by_ms: u64) {
        self.with(|s| {
            s.cancel_delay_ms.insert(worker, by_ms);
        });
    }

    /// Control datagrams on the one-way link `from → to` leave `by_ms` late from now on (until `unslow_link`).
    pub fn slow_link(&self, from: NodeName, to: NodeName, by_ms: u64) {
        assert!(by_ms > 0, "a slow link delays by a positive amount");
        self.with(|s| {
            s.link_delays.insert((from, to), by_ms);
        });
    }

    /// The link `from → to` is back to its normal latency.
    pub fn unslow_link(&self, from: NodeName, to: NodeName) {
        self.with(|s| {
            s.link_delays.remove(&(from, to));
        });
    }

    /// How late a control datagram on `from → to` leaves now, if the link is slowed.
    pub fn link_delay_ms(&self, from: NodeName, to: NodeName) -> Option<u64> {
        self.with(|s| s.link_delays.get(&(from, to)).copied())
    }

    /// The fate of checkpoint `epoch`, triggered at `triggered_ms`: decided once, the same for every asker.
    pub fn checkpoint_fate(&self, epoch: u64, triggered_ms: u64) -> Option<FailReason> {
        self.with(|s| {
            if let Some(f) = s.fates.get(&epoch) {
                return *f;
            }
            let mut fate = None;
            if let Some((since, reason, count)) = s.armed.front_mut() {
                if triggered_ms >= *since {
                    fate = Some(*reason);
                    *count -= 1;
                    if *count == 0 {
                        s.armed.pop_front();
                    }
                }
            }
            s.fates.insert(epoch, fate);
            fate
        })
    }

    /// How late the acknowledgement of checkpoint `epoch` is.
    pub fn ack_delay_ms(&self, epoch: u64, is_final: bool) -> u64 {
        self.with(|s| {
            if is_final && s.first_final.is_none() {
                s.first_final = Some(epoch);
            }
            s.ack_delays
                .iter()
                .filter(|(t, _)| match t {
                    AckTarget::Final => s.first_final == Some(epoch),
                    AckTarget::Epoch(n) => *n == epoch,
                })
                .map(|(_, d)| *d)
                .max()
                .unwrap_or(0)
        })
    }

    /// How long `worker-N` takes to carry out a cancellation.
    pub fn cancel_delay_ms(&self, worker: u16) -> u64 {
        self.with(|s| s.cancel_delay_ms.get(&worker).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_failures_hit_the_next_checkpoints_once_each() {
        let f = FaultPlane::default();
        assert_eq!(f.checkpoint_fate(1, 0), None);
        f.fail_checkpoints(1_000, FailReason::IoError, 2);
        assert_eq!(f.checkpoint_fate(2, 900), None, "triggered before the fault");
        assert_eq!(f.checkpoint_fate(3, 1_000), Some(FailReason::IoError));
        assert_eq!(f.checkpoint_fate(3, 1_000), Some(FailReason::IoError), "asked twice, decided once");
        assert_eq!(f.checkpoint_fate(4, 2_000), Some(FailReason::IoError));
        assert_eq!(f.checkpoint_fate(5, 3_000), None);
    }

    #[test]
    fn final_ack_delay_applies_to_the_first_final_checkpoint_only() {
        let f = FaultPlane::default();
        f.delay_acks(AckTarget::Final, 5_000);
        assert_eq!(f.ack_delay_ms(3, false), 0);
        assert_eq!(f.ack_delay_ms(4, true), 5_000);
        assert_eq!(f.ack_delay_ms(4, true), 5_000);
        assert_eq!(f.ack_delay_ms(5, true), 0);
    }

    #[test]
    fn a_slowed_link_delays_one_direction_until_unslowed() {
        let (a, b) = (NodeName::Store, NodeName::Coordinator);
        let f = FaultPlane::default();
        assert_eq!(f.link_delay_ms(a, b), None);
        f.slow_link(a, b, 700);
        assert_eq!(f.link_delay_ms(a, b), Some(700));
        assert_eq!(f.link_delay_ms(a, b), Some(700), "every datagram, not the first only");
        assert_eq!(f.link_delay_ms(b, a), None, "one-way");
        f.unslow_link(a, b);
        assert_eq!(f.link_delay_ms(a, b), None);
        f.slow_link(a, b, 50);
        assert_eq!(f.link_delay_ms(a, b), Some(50), "a new slowing has its own delay");
    }
}
