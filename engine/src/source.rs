//! The source operator and the external system it reads.
//!
//! [`ExternalSource`] stands for the system outside the cluster (a topic, a table): partition `p` holds a fixed number
//! of records, and lives across node crashes and job attempts. Faults act on it the way they would on the real thing:
//! a partition can be ended early (sealed at what has been read), or deliver its end marker twice.

use crate::canary::{Canaries, Canary};
use crate::coverage::Point;
use crate::event::{Event, Tracer};
use crate::faults::{FailReason, FaultPlane};
use crate::job::{route, Mode, Record};
use crate::net::{CheckpointReport, Deployment, TaskControl};
use crate::stream::{Output, Scope, StreamError};
use crate::timer::Deadline;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

#[derive(Debug)]
struct ExternalState {
    /// Records in each partition (lowered by an early end).
    lens: Vec<u64>,
    /// Highest offset + 1 ever read from each partition.
    read_upto: Vec<u64>,
    /// End markers still to be delivered again, per partition.
    extra_eots: Vec<u32>,
}

/// The external source system. Shared by every attempt; outlives node crashes.
#[derive(Debug)]
pub struct ExternalSource {
    state: Mutex<ExternalState>,
    /// Woken when a fault changes a partition (an early end, a duplicate EOT): an ended emitter waits for it.
    changed: Notify,
}

impl ExternalSource {
    pub fn new(lens: Vec<u64>) -> Arc<ExternalSource> {
        let n = lens.len();
        Arc::new(ExternalSource {
            state: Mutex::new(ExternalState { lens, read_upto: vec![0; n], extra_eots: vec![0; n] }),
            changed: Notify::new(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut ExternalState) -> T) -> T {
        f(&mut self.state.lock().expect("external source lock"))
    }

    /// Reads record `offset` of `partition`; `None` is the end of the partition.
    pub fn read(&self, partition: u32, offset: u64) -> Option<Record> {
        self.with(|s| {
            let p = partition as usize;
            if offset < s.lens[p] {
                s.read_upto[p] = s.read_upto[p].max(offset + 1);
                Some(Record::at(partition, offset))
            } else {
                None
            }
        })
    }

    /// Ends `partition` now: it keeps only what has been read so far.
    pub fn end_partition(&self, partition: u32) {
        self.with(|s| {
            let p = partition as usize;
            s.lens[p] = s.lens[p].min(s.read_upto[p]);
        });
        self.changed.notify_waiters();
    }

    /// The partition's end marker will be delivered once more (now, if it has already been delivered).
    pub fn duplicate_eot(&self, partition: u32) {
        self.with(|s| s.extra_eots[partition as usize] += 1);
        self.changed.notify_waiters();
    }

    fn take_extra_eots(&self, partition: u32) -> u32 {
        self.with(|s| std::mem::take(&mut s.extra_eots[partition as usize]))
    }

    /// Records currently in `partition`.
    pub fn len(&self, partition: u32) -> u64 {
        self.with(|s| s.lens[partition as usize])
    }
}

/// What a task needs besides its deployment: the checkpoint control channel, its report, the fault plane.
pub struct TaskIo {
    pub control: mpsc::Receiver<TaskControl>,
    pub report: Arc<Mutex<CheckpointReport>>,
    pub faults: Arc<FaultPlane>,
    pub canaries: Canaries,
}

impl TaskIo {
    /// Acknowledges checkpoint `epoch` with `snapshot`, as late as the fault plane says, then calls `then`.
    #[allow(clippy::too_many_arguments)]
    pub fn ack_later(
        &self,
        scope: &mut Scope,
        tracer: &Tracer,
        dep: &Deployment,
        epoch: u64,
        is_final: bool,
        snapshot: Vec<(u32, u64)>,
        then: impl FnOnce() + Send + 'static,
    ) {
        let delay_ms = self.faults.ack_delay_ms(epoch, is_final);
        let (report, tracer, attempt, task) = (self.report.clone(), tracer.clone(), dep.attempt, dep.task);
        if delay_ms > 0 {
            tracer.emit(Event::CheckpointAckDelayed { attempt, task, epoch, by_ms: delay_ms });
        }
        scope.spawn(async move {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            report.lock().expect("report lock").ack(epoch, snapshot);
            tracer.emit(Event::CheckpointAcked { attempt, task, epoch });
            then();
        });
    }
}

/// A source replica's acknowledgement of a checkpoint: (epoch, is final, snapshot of `(partition, next offset)`).
type SourceAck = (u64, bool, Vec<(u32, u64)>);

/// What the control loop tells the emitters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SourceControl {
    /// The latest checkpoint to inject: (epoch, is_final).
    trigger: Option<(u64, bool)>,
    /// The final checkpoint completed: the source may finish.
    may_finish: bool,
    /// The job pauses: emitters send `Pause` and stop.
    pause: bool,
}

/// How a task ended well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskEnd {
    Finished,
    /// Stopped by a pause (sources only).
    Paused,
}

/// Shared by the emitters of one source replica.
struct Shared {
    owned: usize,
    /// Partitions still before their EOT.
    running: AtomicUsize,
    /// Woken when a partition sends its EOT: its ended siblings may be done.
    partition_ended: Notify,
    /// Offsets recorded at each barrier, by epoch.
    snapshots: Mutex<BTreeMap<u64, Vec<(u32, u64)>>>,
    report: Arc<Mutex<CheckpointReport>>,
}

/// Runs one source replica: one emitter per owned partition, each paced at its rate; barriers on triggers.
pub async fn run(
    dep: Arc<Deployment>,
    tracer: Tracer,
    external: Arc<ExternalSource>,
    mut io: TaskIo,
) -> Result<TaskEnd, StreamError> {
    let owned = dep.spec.owned_partitions(dep.task);
    let shared = Arc::new(Shared {
        owned: owned.len(),
        running: AtomicUsize::new(owned.len()),
        partition_ended: Notify::new(),
        snapshots: Mutex::default(),
        report: io.report.clone(),
    });
    if owned.is_empty() {
        io.report.lock().expect("report lock").input_ended = true;
    }
    let (control_tx, mut control_rx) = watch::channel(SourceControl::default());
    let control_tx = Arc::new(control_tx);
    let (acks_tx, mut acks_rx) = mpsc::channel::<SourceAck>(owned.len() + 4);
    let emitters = owned
        .iter()
        .map(|p| emit_partition(&dep, &tracer, &external, *p, &shared, control_tx.subscribe(), acks_tx.clone()));
    let mut emitters = std::pin::pin!(crate::join::try_join_in_order(emitters));
    let mut scope = Scope::default();
    let mut last_trigger = 0;
    let mut expired: BTreeMap<u64, bool> = BTreeMap::new();
    let early_finish = io.canaries.has(Canary::FinishedBeforeFinalCommit);
    loop {
        // With no partition there is nothing to emit: done at once, or once the final checkpoint allows it.
        if owned.is_empty() && control_rx.borrow().pause {
            return Ok(TaskEnd::Paused);
        }
        if owned.is_empty()
            && dep.spec.mode == Mode::Batch
            && (!dep.spec.final_checkpoint() || control_rx.borrow().may_finish)
        {
            return Ok(TaskEnd::Finished);
        }
        let ack = tokio::select! {
            biased;
            // A replica that owns no partition has no emitter: it runs until a pause, or (batch) until it may finish.
            done = &mut emitters, if !owned.is_empty() => {
                done?;
                return Ok(if control_rx.borrow().pause { TaskEnd::Paused } else { TaskEnd::Finished });
            }
            Some(ack) = acks_rx.recv() => Some(ack),
            Some(control) = io.control.recv() => match control {
                TaskControl::Trigger { epoch, is_final, triggered_ms } if epoch > last_trigger => {
                    last_trigger = epoch;
                    let fate = io.faults.checkpoint_fate(epoch, triggered_ms);
                    if let Some(reason) = fate.filter(|r| r.is_decline()) {
                        let why = format!("source {} declined ({reason})", dep.task);
                        io.report.lock().expect("report lock").decline(epoch, reason, why);
                        tracer.emit(Event::CheckpointDeclined { attempt: dep.attempt, task: dep.task, epoch, reason });
                        None
                    } else {
                        expired.insert(epoch, fate == Some(FailReason::Expired));
                        control_tx.send_modify(|c| c.trigger = Some((epoch, is_final)));
                        owned.is_empty().then(|| (epoch, is_final, Vec::new()))
                    }
                }
                TaskControl::Complete { is_final: true, .. } => {
                    control_tx.send_modify(|c| c.may_finish = true);
                    None
                }
                TaskControl::Pause => {
                    control_tx.send_modify(|c| c.pause = true);
                    None
                }
                _ => None,
            },
            _ = control_rx.changed() => None,
        };
        // An expiring checkpoint is never acknowledged; the others are, as late as the fault plane says.
        if let Some((epoch, is_final, snapshot)) = ack {
            if expired.remove(&epoch).unwrap_or(false) {
                tracer.emit(Event::CheckpointAckWithheld { attempt: dep.attempt, task: dep.task, epoch });
            } else {
                let control = control_tx.clone();
                io.ack_later(&mut scope, &tracer, &dep, epoch, is_final, snapshot, move || {
                    if is_final && early_finish {
                        control.send_modify(|c| c.may_finish = true);
                    }
                });
            }
        }
    }
}

/// One owned partition's emitter: reads the external partition into its output stream at the partition's pace,
/// injects barriers, stops at a pause, ends with the partition's EOT and then delivers the duplicate EOTs a fault
/// asks for. Each handler does one thing; [`emit_partition`] chooses what to do next.
struct Emitter<'a> {
    dep: &'a Deployment,
    tracer: &'a Tracer,
    external: &'a ExternalSource,
    shared: &'a Shared,
    partition: u32,
    out: Output,
    /// The next offset to read.
    offset: u64,
    /// The latest checkpoint whose barrier went out (or that the attempt restored).
    injected: u64,
    eot_sent: bool,
    pace: Option<Duration>,
    /// A streaming partition with no rate emits nothing while it has data (it is paused with no data flowing).
    rateless_streaming: bool,
    /// When the next record may go out (paced sources); a barrier or a pause does not wait for it.
    next_emit: Option<tokio::time::Instant>,
    acks: mpsc::Sender<SourceAck>,
}

impl Emitter<'_> {
    /// Sends the barrier of `epoch` after everything emitted so far and records the offset it stands for (where a
    /// restore resumes); the replica acknowledges once every owned partition did.
    async fn inject_barrier(&mut self, epoch: u64, is_final: bool) -> Result<(), StreamError> {
        self.injected = epoch;
        self.out.send_barrier(epoch, is_final).await?;
        let complete = {
            let mut snaps = self.shared.snapshots.lock().expect("snapshot lock");
            let snap = snaps.entry(epoch).or_default();
            snap.push((self.partition, self.offset));
            (snap.len() == self.shared.owned).then(|| {
                let mut snap = snaps.remove(&epoch).expect("present");
                snap.sort();
                snap
            })
        };
        if let Some(snapshot) = complete {
            let _ = self.acks.send((epoch, is_final, snapshot)).await;
        }
        Ok(())
    }

    /// Stops for a pause: everything emitted so far precedes the `Pause` on the stream, so downstream can tell
    /// drained from lost (an ended partition has nothing to pause).
    async fn pause(&mut self) -> Result<(), StreamError> {
        if !self.eot_sent {
            self.out.send_pause().await?;
        }
        Ok(())
    }

    /// When a paced partition may emit next, if that is still ahead.
    fn paced_until(&self) -> Option<tokio::time::Instant> {
        self.next_emit.filter(|at| !self.eot_sent && *at > crate::timer::now())
    }

    /// Whether the partition emits now: not ended, and not a rateless streaming partition that has data.
    fn emitting(&self) -> bool {
        let quiet = self.rateless_streaming && self.external.len(self.partition) > self.offset;
        !self.eot_sent && !quiet
    }

    /// Sends `record` on the credit the caller reserved, and schedules the next one after the pace.
    async fn emit(&mut self, record: Record) -> Result<(), StreamError> {
        debug_assert_eq!(route(record.key, self.dep.spec.partitions), self.out.partition);
        self.out.send(record).await?;
        self.tracer.emit(Event::Emitted { attempt: self.dep.attempt, id: record.id });
        self.offset += 1;
        self.next_emit = self.pace.map(|pace| crate::timer::now() + pace);
        Ok(())
    }

    /// Ends the partition: its EOT goes out after its last record, and the replica learns its input ended once
    /// every owned partition did.
    async fn end(&mut self) -> Result<(), StreamError> {
        let (attempt, task, partition) = (self.dep.attempt, self.dep.task, self.partition);
        self.out.send_eot().await?;
        self.tracer.emit(Event::SourceEot { attempt, task, partition, end_offset: self.offset });
        self.eot_sent = true;
        let mut report = self.shared.report.lock().expect("report lock");
        report.ended_at.push((partition, self.offset));
        if self.shared.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            report.input_ended = true;
        }
        self.shared.partition_ended.notify_waiters();
        Ok(())
    }

    /// Delivers the duplicate EOTs a fault asked for since the last look.
    async fn deliver_extra_eots(&mut self) {
        let (attempt, task, partition) = (self.dep.attempt, self.dep.task, self.partition);
        for _ in 0..self.external.take_extra_eots(partition) {
            // The consumer may be gone once it read the first EOT: a duplicate it can no longer read is no failure.
            let delivered = self.out.send_eot().await.is_ok();
            if delivered {
                self.tracer.reach(Point::EotDuplicatedAfterEnd);
            }
            let end_offset = self.offset;
            self.tracer.emit(Event::EotDuplicated { attempt, task, partition, end_offset, delivered });
        }
    }
}

/// Runs the emitter of `partition` until it ends (and, with a final checkpoint, may finish) or pauses.
async fn emit_partition(
    dep: &Deployment,
    tracer: &Tracer,
    external: &ExternalSource,
    partition: u32,
    shared: &Shared,
    mut control: watch::Receiver<SourceControl>,
    acks: mpsc::Sender<SourceAck>,
) -> Result<(), StreamError> {
    let spec = &dep.spec;
    let rate = spec.vertices[dep.task.vertex as usize].partition_rates[partition as usize];
    let buffer_partition = route(Record::at(partition, 0).key, spec.partitions);
    let downstream = spec.owner(dep.task.vertex + 1, buffer_partition);
    let out = Output::open(dep, downstream, buffer_partition, tracer).await?;
    let mut em = Emitter {
        dep,
        tracer,
        external,
        shared,
        partition,
        out,
        offset: dep.start_offsets[partition as usize],
        injected: dep.restored_epoch,
        eot_sent: false,
        pace: (rate > 0).then(|| Duration::from_micros(1_000_000 / rate)),
        rateless_streaming: spec.mode == Mode::Streaming && rate == 0,
        next_emit: None,
        acks,
    };
    // The emitters of a replica are joined, and a join polls all of them whenever one wakes: one deadline, moved
    // record by record, puts one timer per record into the runtime, not one per poll.
    let mut pacing = Deadline::after(Duration::ZERO);
    loop {
        // Listening before looking: a fault or a sibling's end after the looks below still ends the wait at the
        // bottom of this turn.
        let (external_changed, sibling_ended) = (external.changed.notified(), shared.partition_ended.notified());
        let now = *control.borrow_and_update();
        if let Some((epoch, is_final)) = now.trigger.filter(|(e, _)| *e > em.injected) {
            em.inject_barrier(epoch, is_final).await?;
        }
        if now.may_finish && em.eot_sent {
            return Ok(());
        }
        if now.pause {
            return em.pause().await;
        }
        if let Some(at) = em.paced_until() {
            em.out.flush().await?;
            pacing.reset(at);
            tokio::select! {
                biased;
                changed = control.changed() => if changed.is_err() { return Ok(()); },
                _ = &mut pacing => {}
            }
            continue;
        }
        let emitting = em.emitting();
        match emitting.then(|| external.read(partition, em.offset)).flatten() {
            Some(record) => {
                // Wait for the credit while hearing the control: a source held up by backpressure (a sink that
                // cannot write) still stops on a pause, and injects a barrier, at once. The record stays unsent
                // (reading it again is the same record). What is buffered goes out before the wait.
                if !em.out.try_reserve() {
                    em.out.flush().await?;
                }
                tokio::select! {
                    biased;
                    reserved = em.out.reserve() => reserved?,
                    changed = control.changed() => {
                        if changed.is_err() {
                            return Ok(());
                        }
                        continue;
                    }
                }
                em.emit(record).await?;
                continue;
            }
            None if emitting => em.end().await?,
            None => {}
        }
        // Ended (or a streaming partition with no data): deliver extra EOTs while siblings run, follow barriers.
        if em.eot_sent {
            em.deliver_extra_eots().await;
            if shared.running.load(Ordering::SeqCst) == 0 && !spec.final_checkpoint() {
                return Ok(());
            }
        }
        // Nothing to emit until the control, the external system or a sibling changes.
        em.out.flush().await?;
        tokio::select! {
            biased;
            changed = control.changed() => if changed.is_err() { return Ok(()); },
            _ = external_changed => {}
            _ = sibling_ended => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_partition_seals_at_what_was_read() {
        let ext = ExternalSource::new(vec![5, 5]);
        assert!(ext.read(0, 0).is_some());
        assert!(ext.read(0, 1).is_some());
        ext.end_partition(0);
        assert_eq!(ext.len(0), 2);
        assert!(ext.read(0, 2).is_none());
        ext.end_partition(1);
        assert_eq!(ext.len(1), 0, "an unread partition ends empty");
        ext.duplicate_eot(1);
        assert_eq!(ext.take_extra_eots(1), 1);
        assert_eq!(ext.take_extra_eots(1), 0);
    }
}
