//! The source operator and the external system it reads.
//!
//! [`ExternalSource`] stands for the system outside the cluster (a topic, a table): partition `p` holds a fixed number
//! of records, and lives across node crashes and job attempts. Faults act on it the way they would on the real thing:
//! a partition can be ended early (sealed at what has been read), or deliver its end marker twice.

use crate::event::{Event, Tracer};
use crate::job::{route, Record};
use crate::net::Deployment;
use crate::stream::{Output, StreamError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

impl ExternalSource {
    pub fn new(lens: Vec<u64>) -> Arc<ExternalSource> {
        let n = lens.len();
        Arc::new(ExternalSource {
            state: Mutex::new(ExternalState { lens, read_upto: vec![0; n], extra_eots: vec![0; n] }),
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
        })
    }

    /// The partition's end marker will be delivered once more (now, if it has already been delivered).
    pub fn duplicate_eot(&self, partition: u32) {
        self.with(|s| s.extra_eots[partition as usize] += 1);
    }

    fn take_extra_eots(&self, partition: u32) -> u32 {
        self.with(|s| std::mem::take(&mut s.extra_eots[partition as usize]))
    }

    /// Records currently in `partition`.
    pub fn len(&self, partition: u32) -> u64 {
        self.with(|s| s.lens[partition as usize])
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.with(|s| s.lens.len() as u32)
    }
}

/// Runs one source replica: one emitter per owned partition, each paced at the vertex's rate.
pub async fn run(dep: Arc<Deployment>, tracer: Tracer, external: Arc<ExternalSource>) -> Result<(), StreamError> {
    let owned = dep.spec.owned_partitions(dep.task);
    let running = Arc::new(AtomicUsize::new(owned.len()));
    let emitters = owned.into_iter().map(|p| emit_partition(&dep, &tracer, &external, p, &running));
    futures::future::try_join_all(emitters).await?;
    Ok(())
}

async fn emit_partition(
    dep: &Deployment,
    tracer: &Tracer,
    external: &ExternalSource,
    partition: u32,
    running: &AtomicUsize,
) -> Result<(), StreamError> {
    let spec = &dep.spec;
    let rate = spec.vertices[dep.task.vertex as usize].rate_per_sec;
    let pace = (rate > 0).then(|| Duration::from_micros(1_000_000 / rate));
    let buffer_partition = route(Record::at(partition, 0).key, spec.partitions);
    let downstream = spec.owner(dep.task.vertex + 1, buffer_partition);
    let mut out = Output::open(dep, downstream, buffer_partition).await?;
    let attempt = dep.attempt;
    let mut offset = dep.start_offsets[partition as usize];
    while let Some(record) = external.read(partition, offset) {
        debug_assert_eq!(route(record.key, spec.partitions), buffer_partition);
        out.send(record).await?;
        tracer.emit(Event::Emitted { attempt, id: record.id });
        offset += 1;
        if let Some(pace) = pace {
            tokio::time::sleep(pace).await;
        }
    }
    out.send_eot().await?;
    tracer.emit(Event::SourceEot { attempt, partition, end_offset: offset });
    let left = running.fetch_sub(1, Ordering::SeqCst) - 1;
    // While sibling partitions still run, the external system may deliver this partition's end marker again.
    let poll = pace.unwrap_or(Duration::from_millis(10));
    loop {
        for _ in 0..external.take_extra_eots(partition) {
            out.send_eot().await?;
            tracer.emit(Event::SourceEot { attempt, partition, end_offset: offset });
        }
        if left == 0 || running.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        tokio::time::sleep(poll).await;
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
