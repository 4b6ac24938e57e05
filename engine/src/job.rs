//! What the engine is asked to run: the job (a chain of vertices), its restart strategy, and the cluster's timings.
//!
//! The sim builds a [`JobSpec`] from a scenario; the engine knows nothing of scenarios.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Batch jobs read finite sources and end FINISHED; streaming jobs run until stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Batch,
    Streaming,
}

/// The sink's delivery guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    ExactlyOnce,
    AtLeastOnce,
}

/// What a vertex does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VertexKind {
    Source,
    Map,
    Sink,
}

/// One vertex of the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VertexSpec {
    pub name: String,
    pub kind: VertexKind,
    /// Partitions of this vertex's buffer (NumaFlow's per-vertex `partitions`); for the source, its own partitions
    /// (the job's). A record with key `k` is in partition `k % partitions` of every buffer it crosses.
    pub partitions: u32,
    /// Replicas deployed; each owns the buffer partitions `b` with `b % replicas == replica`.
    pub replicas: u16,
    /// The autoscaler keeps `replicas` within `[scale_min, scale_max]`; a pause overrides the minimum.
    pub scale_min: u16,
    pub scale_max: u16,
    /// Source: records in each source partition (batch); `u64::MAX` for a streaming partition with data.
    pub partition_records: Vec<u64>,
    /// Source: records emitted per second, per partition (pacing in simulated time; 0 = unpaced in batch).
    pub partition_rates: Vec<u64>,
    /// Sink: records per batch written to the store.
    pub batch_size: u32,
}

/// The restart strategy (Flink semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "strategy")]
pub enum RestartSpec {
    /// The first failure is final.
    None,
    /// Up to `attempts` restarts, `delay_ms` apart.
    FixedDelay { attempts: u32, delay_ms: u64 },
    /// A restart is refused iff more than `max_failures_per_interval` failures fall within the interval.
    FailureRate { max_failures_per_interval: u32, failure_rate_interval_ms: u64, delay_ms: u64 },
    /// Flink 1.19+'s exponential-delay (FLIP-364): the n-th restart since the last reset waits
    /// `initial × multiplier^n` (± jitter), clamped to `[initial, max]`. Fractions are in thousandths.
    ExponentialDelay {
        initial_backoff_ms: u64,
        max_backoff_ms: u64,
        /// The multiplier × 1000 (1.5 is 1500); above 1000.
        backoff_multiplier_milli: u32,
        reset_backoff_threshold_ms: u64,
        /// The jitter factor × 1000 (0..=1000).
        jitter_factor_milli: u32,
        /// Restarts allowed until the backoff resets; `None`: unlimited.
        attempts_before_reset_backoff: Option<u32>,
    },
}

/// Checkpointing (absent: off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failed checkpoints tolerated; one more fails the job over.
    pub tolerable_failures: u32,
}

/// What the platform does when its checkpoint-failure policy fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum PolicyAction {
    Restart,
    Alert,
}

/// The platform's checkpoint-failure policy (StreamPark's role): enforced outside the engine, by polling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    pub window_ms: u64,
    pub max_failures: u32,
    pub action: PolicyAction,
    pub poll_ms: u64,
}

/// Timings of the engine's own protocols. All bounded; none is infinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Workers report their executions this often.
    pub heartbeat_ms: u64,
    /// A worker silent this long is considered lost.
    pub worker_timeout_ms: u64,
    /// The coordinator re-evaluates and re-sends its intents this often.
    pub tick_ms: u64,
    /// A sink flushes a partial batch after this long.
    pub flush_ms: u64,
    /// Records in flight on one data stream (credits).
    pub stream_window: u32,
    /// How long a data-stream connection waits for its task to appear on the worker.
    pub connect_wait_ms: u64,
    /// How long a sink waits for one batch's responses before it fails.
    pub store_response_timeout_ms: u64,
    /// How long the coordinator waits for workers to confirm a cancellation before it goes on (fenced).
    pub cancel_timeout_ms: u64,
    /// The autoscaler looks at the backlog this often.
    pub autoscale_period_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            heartbeat_ms: 100,
            worker_timeout_ms: 1_000,
            tick_ms: 50,
            flush_ms: 50,
            stream_window: 32,
            connect_wait_ms: 2_000,
            store_response_timeout_ms: 5_000,
            cancel_timeout_ms: 10_000,
            autoscale_period_ms: 2_000,
        }
    }
}

/// Everything the engine needs to run one job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub mode: Mode,
    pub delivery: Delivery,
    /// Partitions of the source. Records stream from task to task on one channel per source partition, in order; a
    /// vertex's own [`VertexSpec::partitions`] group those channels (see [`JobSpec::buffer_partition`]).
    pub partitions: u32,
    pub vertices: Vec<VertexSpec>,
    pub restart: RestartSpec,
    pub checkpoint: Option<CheckpointSpec>,
    /// The platform's policy, when a platform node runs.
    pub policy: Option<PolicySpec>,
    /// Pause: how long the controller waits for the buffers to drain before it pauses anyway.
    pub pause_grace_period_ms: u64,
    /// Worker node names, `worker-1..N`.
    pub workers: u16,
    pub timings: Timings,
    /// Buggify points the engine may fire (`None`: off, nothing drawn).
    #[serde(default)]
    pub buggify: Option<crate::buggify::BuggifySpec>,
}

impl JobSpec {
    /// Every task of the job, vertex by vertex.
    pub fn tasks(&self) -> Vec<TaskId> {
        let mut tasks = Vec::new();
        for (v, vertex) in self.vertices.iter().enumerate() {
            for r in 0..vertex.replicas {
                tasks.push(TaskId { vertex: v as u16, replica: r });
            }
        }
        tasks
    }

    /// Whether the autoscaler has anything to decide (some vertex may change its replicas).
    pub fn autoscaled(&self) -> bool {
        self.vertices.iter().any(|v| v.scale_min < v.scale_max)
    }

    /// The partition of `vertex`'s buffer that the channel of source partition `channel` feeds: records are keyed by
    /// their source partition, and a buffer of `n` partitions takes key `k` into partition `k % n`.
    pub fn buffer_partition(&self, vertex: u16, channel: u32) -> u32 {
        assert!(channel < self.partitions, "channel {channel} of {} source partitions", self.partitions);
        route(Record::at(channel, 0).key, self.vertices[vertex as usize].partitions)
    }

    /// The replica of `vertex` that reads the channel of source partition `channel`: the owner of the buffer partition
    /// it feeds.
    pub fn owner(&self, vertex: u16, channel: u32) -> TaskId {
        let replicas = self.vertices[vertex as usize].replicas as u32;
        assert!(replicas > 0, "vertex {vertex} has no replica");
        TaskId { vertex, replica: (self.buffer_partition(vertex, channel) % replicas) as u16 }
    }

    /// The channels (source partitions) a task reads: as a consumer, or as a source reader.
    pub fn owned_partitions(&self, task: TaskId) -> Vec<u32> {
        (0..self.partitions).filter(|p| self.owner(task.vertex, *p) == task).collect()
    }

    /// Whether sinks write in transactions committed by checkpoints (two-phase commit).
    pub fn two_phase(&self) -> bool {
        self.delivery == Delivery::ExactlyOnce && self.checkpoint.is_some()
    }

    /// Whether tasks wait for the final checkpoint before they finish: whenever checkpoints are on, in both modes (a
    /// streaming job whose partitions all ended finishes too, and its exactly-once sinks commit only on checkpoints;
    /// Flink's FLIP-147).
    pub fn final_checkpoint(&self) -> bool {
        self.checkpoint.is_some()
    }
}

/// The buffer partition a record with this key goes to.
pub fn route(key: u64, partitions: u32) -> u32 {
    (key % partitions as u64) as u32
}

/// A task-group location: one replica of one vertex. Executions of it are told apart by attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub vertex: u16,
    pub replica: u16,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}#{}", self.vertex, self.replica)
    }
}

/// A record's identity: the source partition it came from and its offset there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId {
    pub partition: u32,
    pub offset: u64,
}

/// A record in flight. Its key routes it; its id lets the ledger tell loss from duplication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: RecordId,
    pub key: u64,
}

impl Record {
    /// The deterministic content of the external source: record `offset` of source partition `partition`.
    pub fn at(partition: u32, offset: u64) -> Record {
        Record { id: RecordId { partition, offset }, key: partition as u64 }
    }
}

/// Splits `total` records over partitions by relative `weights` (largest remainder, ties to the lower partition).
/// Computed in `u128`: any `u64` total and weights split without overflow.
pub fn split_records(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    assert!(sum > 0, "weights must not all be zero");
    let scaled = |w: u64| u128::from(total) * u128::from(w);
    // Each share is at most `total` (w / sum ≤ 1), so it fits in a u64.
    let mut shares: Vec<u64> = weights.iter().map(|w| (scaled(*w) / sum) as u64).collect();
    let mut left = u128::from(total) - shares.iter().map(|s| u128::from(*s)).sum::<u128>();
    // The leftover is the sum of the shares' fractions, each below 1, so at most the number of partitions with a
    // fraction: only those (they have a weight) are ever reached in remainder order.
    assert!(
        left <= weights.iter().filter(|w| scaled(**w) % sum > 0).count() as u128,
        "{left} records left over, more than the shares with a fraction"
    );
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|i| (std::cmp::Reverse(scaled(weights[*i]) % sum), *i));
    for i in order {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    assert_eq!(shares.iter().map(|s| u128::from(*s)).sum::<u128>(), u128::from(total), "records lost in the split");
    assert!(weights.iter().zip(&shares).all(|(w, s)| *w > 0 || *s == 0), "a partition without weight got records");
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_exact_and_respects_zero_weights() {
        assert_eq!(split_records(300, &[8, 1, 1]), vec![240, 30, 30]);
        assert_eq!(split_records(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(split_records(10, &[1, 0, 1]), vec![5, 0, 5]);
        assert_eq!(split_records(0, &[1, 2]), vec![0, 0]);
        assert_eq!(split_records(7, &[0, 3]), vec![0, 7]);
        let huge = split_records(10_000_000, &[2_000_000_000_000, 1]);
        assert_eq!(huge, vec![10_000_000, 0], "huge weights do not overflow");
        assert_eq!(split_records(u64::MAX, &[u64::MAX, u64::MAX]), vec![u64::MAX / 2 + 1, u64::MAX / 2]);
    }

    #[test]
    fn ownership_is_round_robin() {
        let v = |replicas| VertexSpec {
            name: "x".into(),
            kind: VertexKind::Sink,
            partitions: 5,
            replicas,
            scale_min: replicas,
            scale_max: replicas,
            partition_records: vec![],
            partition_rates: vec![],
            batch_size: 1,
        };
        let spec = JobSpec {
            mode: Mode::Batch,
            delivery: Delivery::ExactlyOnce,
            partitions: 5,
            vertices: vec![v(1), v(2)],
            restart: RestartSpec::None,
            checkpoint: None,
            policy: None,
            pause_grace_period_ms: 30_000,
            workers: 1,
            timings: Timings::default(),
            buggify: None,
        };
        assert_eq!(spec.owned_partitions(TaskId { vertex: 1, replica: 0 }), vec![0, 2, 4]);
        assert_eq!(spec.owned_partitions(TaskId { vertex: 1, replica: 1 }), vec![1, 3]);
        assert_eq!(spec.tasks().len(), 3);
        // A sink buffer of 2 partitions groups the 5 channels by key: partition 0 takes 0, 2, 4; partition 1 takes 1, 3.
        let mut two = spec.clone();
        two.vertices[1].partitions = 2;
        assert_eq!((0..5).map(|c| two.buffer_partition(1, c)).collect::<Vec<_>>(), vec![0, 1, 0, 1, 0]);
        two.vertices[1].replicas = 1;
        assert_eq!(two.owned_partitions(TaskId { vertex: 1, replica: 0 }), vec![0, 1, 2, 3, 4]);
        // Three sink partitions over two replicas: replica 0 owns partitions 0 and 2 and so reads channels 0, 2, 3.
        let mut three = spec.clone();
        three.vertices[1].partitions = 3;
        assert_eq!(three.owned_partitions(TaskId { vertex: 1, replica: 0 }), vec![0, 2, 3]);
        assert_eq!(three.owned_partitions(TaskId { vertex: 1, replica: 1 }), vec![1, 4]);
    }
}
