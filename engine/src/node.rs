//! What every node of one run shares: the job, the canaries, the recorder, and the external systems (the source and
//! the store's ledger), which outlive node crashes.

use crate::canary::Canaries;
use crate::event::{Recorder, Tracer};
use crate::faults::FaultPlane;
use crate::job::JobSpec;
use crate::source::ExternalSource;
use crate::store::Ledger;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct NodeContext {
    pub spec: Arc<JobSpec>,
    pub canaries: Canaries,
    pub recorder: Arc<dyn Recorder>,
    pub external: Arc<ExternalSource>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub faults: Arc<FaultPlane>,
}

impl NodeContext {
    /// A fresh context: the external source holds the spec's records, the ledger is empty.
    pub fn new(spec: JobSpec, canaries: Canaries, recorder: Arc<dyn Recorder>) -> NodeContext {
        let external = ExternalSource::new(spec.vertices[0].partition_records.clone());
        let ledger = Ledger::new(spec.partitions);
        NodeContext { spec: Arc::new(spec), canaries, recorder, external, ledger, faults: Arc::default() }
    }

    pub fn tracer(&self, node: &str) -> Tracer {
        Tracer::new(node, self.recorder.clone()).with_buggify(self.spec.buggify.clone().map(Arc::new))
    }
}
