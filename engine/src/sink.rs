//! The sink operator: reads its channels' streams, aligns checkpoint barriers, and hands records to the forwarders
//! that write them to the store (`forwarder.rs`, class C's protocol). It finishes once every owned partition has
//! delivered its EOT and everything before it is acknowledged (and, with a final checkpoint, committed).
//!
//! Canaries living here:
//! - `sink-stops-at-first-eot`: the consume loop is left at the first EOT read.
//! - `eot-counted-not-tracked`: the end of input is decided by counting EOTs, not by which partitions ended.

use crate::canary::{Canaries, Canary};
use crate::coverage::Point;
use crate::event::{Event, Tracer};
use crate::forwarder::{Forwarders, FromForwarder, ToForwarder};
use crate::job::Record;
use crate::net::{Deployment, TaskControl};
use crate::source::TaskIo;
use crate::stream::{Inbound, InputEvent, Inputs, Scope, StreamError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The consume loop's view of the input.
struct InputState {
    owned: Vec<u32>,
    canaries: Canaries,
    /// Partitions whose EOT was read.
    ended: BTreeSet<u32>,
    /// EOT markers read (duplicates included).
    eots_read: usize,
}

impl InputState {
    /// Whether the consume loop has read all its input.
    fn done(&self) -> bool {
        if self.canaries.has(Canary::SinkStopsAtFirstEot) && self.eots_read > 0 {
            return true;
        }
        if self.canaries.has(Canary::EotCountedNotTracked) {
            return self.eots_read >= self.owned.len();
        }
        self.ended.len() == self.owned.len()
    }
}

/// Barrier alignment: inputs that delivered the barrier of `epoch` wait until every input has.
#[derive(Default)]
struct Alignment {
    /// The checkpoint being aligned, and the partitions whose barrier arrived.
    current: Option<(u64, BTreeSet<u32>)>,
    /// Everything read from a blocked partition since its barrier, in order.
    blocked: BTreeMap<u32, VecDeque<InputEvent>>,
    /// Aligned and flushing: the ack goes out once nothing is pending.
    aligned: Option<u64>,
    /// The latest checkpoint this sink acknowledged (or restored from).
    last: u64,
}

/// One sink replica's consume side: what it read, aligns and owes, and the handlers of what comes in. Each handler
/// does one thing; [`run`] only chooses what to handle next.
///
/// Fields drop in order, and the order reaches the simulation (a dropped stream or channel wakes its peer): the
/// inputs' streams close first, the forwarders' channels last.
struct Sink {
    inputs: Inputs,
    dep: Arc<Deployment>,
    tracer: Tracer,
    canaries: Canaries,
    owned: Vec<u32>,
    /// Two-phase commit: writes are staged in the transaction of the checkpoint they precede, committed when it
    /// completes. The `commit-before-checkpoint-complete` canary commits each write at once.
    transactional: bool,
    input: InputState,
    align: Alignment,
    /// Events read from inputs a finished alignment let go, to handle before reading on.
    replay: VecDeque<(u32, InputEvent)>,
    /// Records handed to forwarders and not yet answered by the store.
    pending: u64,
    finals: BTreeSet<u64>,
    final_complete: bool,
    final_acked: bool,
    /// Partitions whose producer paused: quiet, not ended, not failed.
    paused: BTreeSet<u32>,
    /// What was last written into the checkpoint report (it is written only when it changes).
    reported: (u64, u64, bool, bool, u64),
    forwarders: Forwarders,
}

impl Sink {
    /// Writes what the pause controller and the autoscaler read, when it changed: records not yet written (queued,
    /// held by an alignment, or handed on and not sent), records awaiting the store, quiet inputs, input ended.
    fn report_progress(&mut self, io: &TaskIo) {
        let ack_pending = self.forwarders.in_flight.load(Ordering::SeqCst);
        let queued = self.inputs.queued();
        let (input, paused, inputs) = (&self.input, &self.paused, &self.inputs);
        // An input whose stream never opened is quiet too: a producer sends nothing before its stream is accepted.
        let quiet = self.owned.iter().all(|p| input.ended.contains(p) || paused.contains(p) || !inputs.opened(*p));
        let input_done = input.done();
        let now = (self.pending, ack_pending, quiet, input_done, queued);
        if self.reported != now {
            self.reported = now;
            let mut r = io.report.lock().expect("report lock");
            let not_written = self.pending.saturating_sub(ack_pending) + queued;
            (r.pending, r.ack_pending, r.inputs_quiet) = (not_written, ack_pending, quiet);
            r.input_ended = input_done;
        }
    }

    /// Whether the replica reads its inputs: until they are done, or for ever once checkpoints may come (a
    /// `sink-stops-at-first-eot` sink stops at its first EOT).
    fn reading(&self) -> bool {
        let stopped = self.canaries.has(Canary::SinkStopsAtFirstEot) && self.input.eots_read > 0;
        if self.dep.spec.checkpoint.is_some() {
            !stopped
        } else {
            !self.input.done()
        }
    }

    /// Whether the replica is done: all input read and written, no alignment open, and (with a final checkpoint)
    /// that checkpoint committed it.
    fn finished(&self) -> bool {
        if !self.input.done() || self.pending > 0 || self.align.aligned.is_some() {
            return false;
        }
        let early = self.final_acked && self.canaries.has(Canary::FinishedBeforeFinalCommit);
        !self.dep.spec.final_checkpoint() || self.final_complete || early
    }

    /// Aligned and everything before the barrier is staged: acknowledges, then lets the blocked inputs go on.
    /// Returns whether it did.
    fn ack_if_aligned(&mut self, io: &TaskIo, scope: &mut Scope, acked: &mpsc::Sender<u64>) -> bool {
        let (Some(epoch), 0) = (self.align.aligned, self.pending) else {
            return false;
        };
        self.align.aligned = None;
        self.align.last = epoch;
        let is_final = self.finals.contains(&epoch);
        let acked = acked.clone();
        io.ack_later(scope, &self.tracer, &self.dep, epoch, is_final, Vec::new(), move || {
            if is_final {
                let _ = acked.try_send(epoch);
            }
        });
        self.release_blocked();
        true
    }

    /// Everything read from blocked inputs is handled next, in order.
    fn release_blocked(&mut self) {
        for (p, queue) in std::mem::take(&mut self.align.blocked) {
            self.replay.extend(queue.into_iter().map(|e| (p, e)));
        }
    }

    /// A forwarder's batch was answered (credits go back upstream) or failed (so does the replica).
    async fn on_forwarder(&mut self, report: FromForwarder) -> Result<(), StreamError> {
        match report {
            FromForwarder::Acked { partition, count } => {
                assert!(self.pending >= count as u64, "{count} records answered, {} pending", self.pending);
                self.pending -= count as u64;
                self.inputs.credit(partition, count).await;
                Ok(())
            }
            FromForwarder::Failed(e) => Err(e),
        }
    }

    fn on_control(&mut self, control: TaskControl) {
        match control {
            TaskControl::Trigger { epoch, is_final, .. } => {
                if is_final {
                    self.finals.insert(epoch);
                }
                if self.owned.is_empty() && epoch > self.align.last {
                    // No input, so no barrier will come: this replica has nothing to stage.
                    self.align.aligned = Some(epoch);
                }
            }
            TaskControl::Complete { is_final: true, .. } => self.final_complete = true,
            _ => {}
        }
    }

    /// Handles one event read from `partition`, or holds it back while that input is blocked by an alignment.
    async fn on_event(&mut self, partition: u32, event: InputEvent) -> Result<(), StreamError> {
        if let Some(queue) = self.align.blocked.get_mut(&partition) {
            queue.push_back(event);
            return Ok(());
        }
        match event {
            InputEvent::Data(record) => self.on_data(partition, record).await,
            InputEvent::Eot { partition: p } => self.on_eot(partition, p).await,
            InputEvent::Barrier { epoch, is_final } => {
                self.on_barrier(partition, epoch, is_final).await;
                Ok(())
            }
            InputEvent::Pause { partition: p } => self.on_pause(partition, p).await,
            InputEvent::Closed { partition, error } => {
                let fine = self.input.ended.contains(&partition) || self.paused.contains(&partition);
                if fine {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn on_data(&mut self, partition: u32, record: Record) -> Result<(), StreamError> {
        if record.id.partition != partition || self.input.ended.contains(&partition) {
            return Err(StreamError::Protocol {
                partition,
                why: format!("unexpected record {} of partition {}", record.id.offset, record.id.partition),
            });
        }
        self.pending += 1;
        self.inputs.done_with(1);
        let txn = self.transactional.then_some(self.align.last + 1);
        self.forwarders.forward(partition, ToForwarder::Record(record, txn)).await
    }

    async fn on_eot(&mut self, partition: u32, eot_of: u32) -> Result<(), StreamError> {
        if eot_of != partition {
            return Err(StreamError::Protocol { partition, why: format!("EOT of partition {eot_of}") });
        }
        let (attempt, task) = (self.dep.attempt, self.dep.task);
        self.tracer.emit(Event::SinkEotReceived { attempt, task, partition });
        self.input.eots_read += 1;
        if self.input.ended.insert(partition) {
            self.forwarders.forward(partition, ToForwarder::Flush).await?;
        } else if self.input.ended.len() < self.owned.len() {
            self.tracer.reach(Point::DuplicateEotWhileSiblingOpen);
        }
        if self.input.done() {
            // Whatever is buffered but not yet handed to a forwarder is flushed with what it has.
            self.forwarders.flush_all().await;
        }
        Ok(())
    }

    async fn on_barrier(&mut self, partition: u32, epoch: u64, is_final: bool) {
        if is_final {
            self.finals.insert(epoch);
        }
        let current = self.align.current.as_ref().map(|(e, _)| *e);
        if epoch <= self.align.last || current.is_some_and(|c| epoch < c) {
            self.tracer.reach(Point::StaleBarrierIgnored);
            return; // a barrier of a checkpoint that was given up
        }
        if current.is_some_and(|c| epoch > c) {
            self.tracer.reach(Point::BarrierSupersedesAligning);
            // A newer checkpoint subsumes the one being aligned: let the blocked inputs go.
            self.release_blocked();
            self.align.current = None;
        }
        let (_, arrived) = self.align.current.get_or_insert_with(|| (epoch, BTreeSet::new()));
        assert!(arrived.insert(partition), "input {partition} delivered two barriers of checkpoint {epoch}");
        if arrived.len() == self.owned.len() {
            self.align.current = None;
            self.align.aligned = Some(epoch);
            self.forwarders.flush_all().await;
        } else {
            self.align.blocked.insert(partition, VecDeque::new());
        }
    }

    async fn on_pause(&mut self, partition: u32, pause_of: u32) -> Result<(), StreamError> {
        if pause_of != partition {
            return Err(StreamError::Protocol { partition, why: format!("pause of partition {pause_of}") });
        }
        self.paused.insert(partition);
        self.forwarders.forward(partition, ToForwarder::Flush).await
    }
}

/// Runs one sink replica until every owned partition has delivered its EOT and everything before it is acknowledged
/// (and, in a batch job with checkpoints, the final checkpoint committed it). The loop only chooses: a replayed
/// event first, else whatever comes first of a forwarder's report, the control, the final acknowledgement, a new
/// stream and the inputs (the last two only while reading, the inputs not while an alignment is being acknowledged).
pub async fn run(
    dep: Arc<Deployment>,
    tracer: Tracer,
    mut io: TaskIo,
    mut inbound: mpsc::Receiver<Inbound>,
) -> Result<(), StreamError> {
    let spec = dep.spec.clone();
    let canaries = io.canaries;
    let owned = spec.owned_partitions(dep.task);
    let mut scope = Scope::default();
    let (report_tx, mut report_rx) = mpsc::channel::<FromForwarder>(owned.len().max(1) * 4);
    let forwarders = Forwarders::start(&dep, &tracer, canaries, &mut scope, &report_tx).await?;
    let (inputs, input_rx) = Inputs::new(&owned, spec.timings.stream_window);
    let mut sink = Sink {
        transactional: spec.two_phase() && !canaries.has(Canary::CommitBeforeCheckpointComplete),
        input: InputState { owned: owned.clone(), canaries, ended: BTreeSet::new(), eots_read: 0 },
        align: Alignment { last: dep.restored_epoch, ..Alignment::default() },
        dep: dep.clone(),
        tracer: tracer.clone(),
        canaries,
        owned,
        forwarders,
        inputs,
        replay: VecDeque::new(),
        pending: 0,
        finals: BTreeSet::new(),
        final_complete: false,
        final_acked: false,
        paused: BTreeSet::new(),
        reported: (u64::MAX, u64::MAX, false, false, u64::MAX),
    };
    // Dropped before the sink, and the scope last (see `Sink`).
    let mut input_rx = input_rx;
    let (acked_tx, mut acked_rx) = mpsc::channel::<u64>(4);
    loop {
        sink.report_progress(&io);
        let reading = sink.reading();
        if sink.finished() {
            break;
        }
        if sink.ack_if_aligned(&io, &mut scope, &acked_tx) {
            continue;
        }
        let taking = reading && sink.align.aligned.is_none();
        let next = if taking { sink.replay.pop_front() } else { None };
        let (partition, event) = match next {
            Some(next) => next,
            None => tokio::select! {
                biased;
                report = report_rx.recv() => {
                    sink.on_forwarder(report.expect("forwarders outlive the loop")).await?;
                    continue;
                }
                Some(control) = io.control.recv() => {
                    sink.on_control(control);
                    continue;
                }
                Some(_) = acked_rx.recv() => {
                    sink.final_acked = true;
                    continue;
                }
                Some(inb) = inbound.recv(), if reading => {
                    sink.inputs.accept(inb, &mut scope).await?;
                    continue;
                }
                Some(next) = input_rx.recv(), if taking => next,
            },
        };
        sink.on_event(partition, event).await?;
    }
    tracer.emit(Event::SinkFinished { attempt: dep.attempt, task: dep.task, partitions: sink.owned.clone() });
    Ok(())
}
