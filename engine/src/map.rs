//! The map operator: a pass-through stage with its own replicas. Reads the partitions it owns, forwards every record,
//! EOT and barrier to the next vertex's owner of that partition, and returns a credit upstream once a record is
//! forwarded. Partitions map 1:1, so barriers pass through per partition and the sink aligns them; the map
//! acknowledges a checkpoint once its barrier went through on every partition it owns.

use crate::canary::Canary;
use crate::event::Tracer;
use crate::net::{Deployment, TaskControl};
use crate::source::TaskIo;
use crate::stream::{Inbound, InputEvent, Inputs, Output, Scope, StreamError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;

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
    let opened = futures::future::try_join_all(opens).await?;
    assert_eq!(opened.len(), owned.len(), "one output per owned partition");
    let mut outputs: BTreeMap<u32, Output> = owned.iter().copied().zip(opened).collect();
    let (mut inputs, mut input_rx) = Inputs::new(&owned, spec.timings.stream_window);
    let mut ended: BTreeSet<u32> = BTreeSet::new();
    let mut barriers: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    let mut finals: BTreeSet<u64> = BTreeSet::new();
    let mut last_acked = dep.restored_epoch;
    let (acked_tx, mut acked_rx) = mpsc::channel::<u64>(4);
    let (mut final_complete, mut final_acked) = (false, false);
    let early_finish = io.canaries.has(Canary::FinishedBeforeFinalCommit);
    let mut paused: BTreeSet<u32> = BTreeSet::new();
    loop {
        // An input whose stream never opened is quiet too: a producer sends nothing before its stream is accepted.
        let quiet = owned.iter().all(|p| ended.contains(p) || paused.contains(p) || !inputs.opened(*p));
        {
            // What the pause controller and the autoscaler read: quiet inputs, records read and not forwarded.
            let mut report = io.report.lock().expect("report lock");
            (report.inputs_quiet, report.pending) = (quiet, inputs.queued());
        }
        let committed = !spec.final_checkpoint() || final_complete || (final_acked && early_finish);
        if ended.len() == owned.len() && committed {
            return Ok(());
        }
        let mut ack = None;
        tokio::select! {
            biased;
            Some(inb) = inbound.recv() => inputs.accept(inb, &mut scope).await?,
            Some(control) = io.control.recv() => match control {
                TaskControl::Trigger { epoch, is_final, .. } => {
                    if is_final {
                        finals.insert(epoch);
                    }
                    if owned.is_empty() && epoch > last_acked {
                        ack = Some(epoch);
                    }
                }
                TaskControl::Complete { is_final: true, .. } => final_complete = true,
                TaskControl::Complete { .. } | TaskControl::Pause => {}
            },
            Some(_) = acked_rx.recv() => final_acked = true,
            Some((partition, event)) = input_rx.recv() => match event {
                InputEvent::Data(record) => {
                    let out = outputs.get_mut(&partition).expect("an output per owned partition");
                    out.send(record).await?;
                    inputs.done_with(1);
                    inputs.credit(partition, 1).await;
                }
                InputEvent::Eot { partition: p } => {
                    if p != partition {
                        return Err(StreamError::Protocol { partition, why: format!("EOT of partition {p}") });
                    }
                    // The EOT goes downstream every time it comes: a duplicate is the consumer's to handle, and a
                    // consumer that finished after the first one no longer reads (then the duplicate is dropped).
                    let first = ended.insert(partition);
                    let sent = outputs.get_mut(&partition).expect("an output per owned partition").send_eot().await;
                    if first {
                        sent?;
                    }
                }
                InputEvent::Barrier { epoch, is_final } => {
                    if is_final {
                        finals.insert(epoch);
                    }
                    let out = outputs.get_mut(&partition).expect("an output per owned partition");
                    out.send_barrier(epoch, is_final).await?;
                    let through = barriers.entry(epoch).or_default();
                    assert!(through.insert(partition), "input {partition} delivered two barriers of checkpoint {epoch}");
                    if through.len() == owned.len() && epoch > last_acked {
                        ack = Some(epoch);
                    }
                }
                InputEvent::Pause { partition: p } => {
                    if p != partition {
                        return Err(StreamError::Protocol { partition, why: format!("pause of partition {p}") });
                    }
                    outputs.get_mut(&partition).expect("an output per owned partition").send_pause().await?;
                    paused.insert(partition);
                }
                InputEvent::Closed { partition, error } => {
                    if !ended.contains(&partition) && !paused.contains(&partition) {
                        return Err(error);
                    }
                }
            },
        }
        if let Some(epoch) = ack {
            last_acked = epoch;
            barriers.retain(|e, _| *e > epoch);
            let is_final = finals.contains(&epoch);
            let acked = acked_tx.clone();
            io.ack_later(&mut scope, &tracer, &dep, epoch, is_final, Vec::new(), move || {
                if is_final {
                    let _ = acked.try_send(epoch);
                }
            });
        }
    }
}
