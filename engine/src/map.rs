//! The map operator: a pass-through stage with its own replicas. Reads the partitions it owns, forwards every record
//! and EOT to the next vertex's owner of that partition, and returns a credit upstream once a record is forwarded.

use crate::event::Tracer;
use crate::net::Deployment;
use crate::stream::{read_input, send_frame, Frame, Inbound, InputEvent, Output, Scope, StreamError};
use madsim::net::Sender;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Runs one map replica until every owned partition has delivered its EOT downstream.
pub async fn run(
    dep: Arc<Deployment>,
    _tracer: Tracer,
    mut inbound: mpsc::Receiver<Inbound>,
) -> Result<(), StreamError> {
    let spec = dep.spec.clone();
    let owned = spec.owned_partitions(dep.task);
    let window = spec.timings.stream_window as usize;
    let mut scope = Scope::default();
    let (input_tx, mut input_rx) = mpsc::channel::<(u32, InputEvent)>(window * owned.len().max(1) + 16);
    let mut outputs: BTreeMap<u32, Output> = BTreeMap::new();
    for &p in &owned {
        let next = spec.owner(dep.task.vertex + 1, p);
        outputs.insert(p, Output::open(&dep, next, p).await?);
    }
    let mut credit_to: BTreeMap<u32, Sender> = BTreeMap::new();
    let mut ended: BTreeSet<u32> = BTreeSet::new();
    while ended.len() < owned.len() {
        tokio::select! {
            biased;
            Some(inb) = inbound.recv() => {
                if !owned.contains(&inb.partition) {
                    return Err(StreamError::Protocol { partition: inb.partition, why: "partition not owned".into() });
                }
                send_frame(&inb.tx, inb.partition, Frame::Credit(spec.timings.stream_window)).await?;
                credit_to.insert(inb.partition, inb.tx);
                scope.spawn(read_input(inb.rx, inb.partition, input_tx.clone()));
            }
            Some((partition, event)) = input_rx.recv() => match event {
                InputEvent::Data(record) => {
                    let out = outputs.get_mut(&partition).expect("an output per owned partition");
                    out.send(record).await?;
                    if let Some(tx) = credit_to.get(&partition) {
                        // The upstream may be gone after its EOT; a death before it shows as `Closed`.
                        let _ = send_frame(tx, partition, Frame::Credit(1)).await;
                    }
                }
                InputEvent::Eot { partition: p } => {
                    if p != partition {
                        return Err(StreamError::Protocol { partition, why: format!("EOT of partition {p}") });
                    }
                    // The EOT goes downstream every time it comes: a duplicate is the consumer's to handle.
                    outputs.get_mut(&partition).expect("an output per owned partition").send_eot().await?;
                    ended.insert(partition);
                }
                InputEvent::Closed { partition, why } => {
                    if !ended.contains(&partition) {
                        return Err(StreamError::Broken { partition, why });
                    }
                }
            },
        }
    }
    Ok(())
}
