//! The map operator: a pass-through stage with its own replicas. Reads the partitions it owns, forwards every record,
//! EOT and barrier to the next vertex's owner of that partition, and returns a credit upstream once a record is
//! forwarded. Partitions map 1:1, so barriers pass through per partition and the sink aligns them; the map
//! acknowledges a checkpoint once its barrier went through on every partition it owns.
//!
//! Partitions flow independently: a record whose output has no credit waits in its partition's backlog (bounded by
//! the stream window, since the upstream only sends on a credit) while the other partitions go on. Waiting for one
//! output's credit with the whole replica would deadlock an aligning sink: it holds back the partition whose barrier
//! came first, so that partition's credits stop, while the barriers it waits for sit behind it in this replica.

use crate::canary::Canary;
use crate::event::Tracer;
use crate::net::{Deployment, TaskControl};
use crate::source::TaskIo;
use crate::stream::{Inbound, InputEvent, Inputs, Output, Scope, StreamError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

/// One map replica's view of its partitions.
struct MapState {
    owned: Vec<u32>,
    outputs: BTreeMap<u32, Output>,
    inputs: Inputs,
    /// Events read and not yet forwarded, per partition, in arrival order.
    backlog: BTreeMap<u32, VecDeque<InputEvent>>,
    ended: BTreeSet<u32>,
    paused: BTreeSet<u32>,
    /// Per checkpoint, the partitions its barrier went through.
    barriers: BTreeMap<u64, BTreeSet<u32>>,
    finals: BTreeSet<u64>,
    last_acked: u64,
}

impl MapState {
    /// The oldest backlogged event that can go out now: a record whose output has a credit, or any other frame.
    fn next_ready(&mut self) -> Option<(u32, InputEvent)> {
        let outputs = &mut self.outputs;
        let (&partition, queue) = self.backlog.iter_mut().find(|(p, queue)| match queue.front() {
            Some(InputEvent::Data(_)) => outputs.get_mut(p).expect("an output per owned partition").try_reserve(),
            Some(_) => true,
            None => false,
        })?;
        let event = queue.pop_front().expect("the found backlog has a front");
        if queue.is_empty() {
            self.backlog.remove(&partition);
        }
        Some((partition, event))
    }

    /// Waits until an output with a record waiting for it has a credit (kept for the next send).
    async fn credit_for_backlog(&mut self) -> Result<(), StreamError> {
        let backlog = &self.backlog;
        let waits: Vec<_> = self
            .outputs
            .iter_mut()
            .filter(|(p, _)| backlog.contains_key(p))
            .map(|(_, out)| Box::pin(out.reserve()))
            .collect();
        assert!(!waits.is_empty(), "waiting for a credit with nothing backlogged");
        futures::future::select_all(waits).await.0
    }

    /// Sends every output's buffered records: the replica is about to wait.
    async fn flush_all(&mut self) -> Result<(), StreamError> {
        for out in self.outputs.values_mut().filter(|out| out.buffered()) {
            out.flush().await?;
        }
        Ok(())
    }

    /// Forwards one event of `partition`; returns the checkpoint to acknowledge, if this completed one.
    async fn forward(&mut self, partition: u32, event: InputEvent) -> Result<Option<u64>, StreamError> {
        let out = self.outputs.get_mut(&partition).expect("an output per owned partition");
        match event {
            InputEvent::Data(record) => {
                out.send(record).await?;
                self.inputs.done_with(1);
                self.inputs.credit(partition, 1).await;
            }
            InputEvent::Eot { partition: p } => {
                if p != partition {
                    return Err(StreamError::Protocol { partition, why: format!("EOT of partition {p}") });
                }
                // The EOT goes downstream every time it comes: a duplicate is the consumer's to handle, and a
                // consumer that finished after the first one no longer reads (then the duplicate is dropped).
                let first = self.ended.insert(partition);
                let sent = out.send_eot().await;
                if first {
                    sent?;
                }
            }
            InputEvent::Barrier { epoch, is_final } => {
                if is_final {
                    self.finals.insert(epoch);
                }
                out.send_barrier(epoch, is_final).await?;
                let through = self.barriers.entry(epoch).or_default();
                assert!(through.insert(partition), "input {partition} delivered two barriers of checkpoint {epoch}");
                if through.len() == self.owned.len() && epoch > self.last_acked {
                    return Ok(Some(epoch));
                }
            }
            InputEvent::Pause { partition: p } => {
                if p != partition {
                    return Err(StreamError::Protocol { partition, why: format!("pause of partition {p}") });
                }
                out.send_pause().await?;
                self.paused.insert(partition);
            }
            InputEvent::Closed { partition, error } => {
                if !self.ended.contains(&partition) && !self.paused.contains(&partition) {
                    return Err(error);
                }
            }
        }
        Ok(None)
    }
}

/// Runs one map replica until every owned partition has delivered its EOT downstream (and, in a batch job with
/// checkpoints, the final checkpoint completed).
pub async fn run(
    dep: Arc<Deployment>,
    tracer: Tracer,
    mut io: TaskIo,
    mut inbound: mpsc::Receiver<Inbound>,
) -> Result<(), StreamError> {
    let spec = dep.spec.clone();
    let owned = spec.owned_partitions(dep.task);
    let mut scope = Scope::default();
    // Outputs open concurrently: one after the other, a replica owning 1024 partitions waits 1024 round trips
    // before its first record, longer than a checkpoint timeout.
    let opens = owned.iter().map(|&p| Output::open(&dep, spec.owner(dep.task.vertex + 1, p), p, &tracer));
    let opened = crate::join::try_join_in_order(opens).await?;
    assert_eq!(opened.len(), owned.len(), "one output per owned partition");
    let outputs: BTreeMap<u32, Output> = owned.iter().copied().zip(opened).collect();
    let (inputs, mut input_rx) = Inputs::new(&owned, spec.timings.stream_window);
    let mut state = MapState {
        owned: owned.clone(),
        outputs,
        inputs,
        backlog: BTreeMap::new(),
        ended: BTreeSet::new(),
        paused: BTreeSet::new(),
        barriers: BTreeMap::new(),
        finals: BTreeSet::new(),
        last_acked: dep.restored_epoch,
    };
    let (acked_tx, mut acked_rx) = mpsc::channel::<u64>(4);
    let (mut final_complete, mut final_acked) = (false, false);
    let early_finish = io.canaries.has(Canary::FinishedBeforeFinalCommit);
    loop {
        // An input whose stream never opened is quiet too: a producer sends nothing before its stream is accepted.
        let (ended, paused, inputs) = (&state.ended, &state.paused, &state.inputs);
        let quiet = owned.iter().all(|p| ended.contains(p) || paused.contains(p) || !inputs.opened(*p));
        {
            // What the pause controller and the autoscaler read: quiet inputs, records read and not forwarded.
            let mut report = io.report.lock().expect("report lock");
            (report.inputs_quiet, report.pending) = (quiet, inputs.queued());
        }
        let committed = !spec.final_checkpoint() || final_complete || (final_acked && early_finish);
        if state.ended.len() == owned.len() && state.backlog.is_empty() && committed {
            return Ok(());
        }
        let mut ack = None;
        if let Some((partition, event)) = state.next_ready() {
            ack = state.forward(partition, event).await?;
        } else {
            state.flush_all().await?;
            let backlogged = !state.backlog.is_empty();
            tokio::select! {
                biased;
                Some(inb) = inbound.recv() => state.inputs.accept(inb, &mut scope).await?,
                Some(control) = io.control.recv() => match control {
                    TaskControl::Trigger { epoch, is_final, .. } => {
                        if is_final {
                            state.finals.insert(epoch);
                        }
                        if owned.is_empty() && epoch > state.last_acked {
                            ack = Some(epoch);
                        }
                    }
                    TaskControl::Complete { is_final: true, .. } => final_complete = true,
                    TaskControl::Complete { .. } | TaskControl::Pause => {}
                },
                Some(_) = acked_rx.recv() => final_acked = true,
                Some((partition, event)) = input_rx.recv() => state.backlog.entry(partition).or_default().push_back(event),
                credit = state.credit_for_backlog(), if backlogged => credit?,
            }
        }
        if let Some(epoch) = ack {
            state.last_acked = epoch;
            state.barriers.retain(|e, _| *e > epoch);
            let is_final = state.finals.contains(&epoch);
            let acked = acked_tx.clone();
            io.ack_later(&mut scope, &tracer, &dep, epoch, is_final, Vec::new(), move || {
                if is_final {
                    let _ = acked.try_send(epoch);
                }
            });
        }
    }
}
