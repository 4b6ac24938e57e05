//! `faults-take-effect`: a scheduled fault did what it says, where it must have. Faults enter the trace as typed
//! actions; the component that experiences one emits a typed effect event. Each rule below is written from the
//! fault's documented meaning (README, "Faults"), and requires an effect only where nothing else can excuse its
//! absence:
//! - `crash N`: N emits nothing until it is restarted; a `restart` of a worker or the store is followed by its
//!   `node-started` within [`START_BOUND_MS`].
//! - `duplicate-eot p`: once a source execution has sent p's EOT and runs on for [`DUPLICATE_BOUND_MS`] with no
//!   network or node fault anywhere, an `eot-duplicated` of p has come; and never more `eot-duplicated` of p than
//!   `duplicate-eot p` faults asked for (the external system delivers each duplicate once).
//! - `fail-checkpoint reason × count`: the next `count` checkpoints triggered at or after the fault never complete
//!   (a model of the armed failures, in trigger order: a checkpoint given up before its fate was decided makes the
//!   model fail a checkpoint early, never late); an injected decline (declined, subsumed, task-not-ready) is the
//!   failure's reason, with the reason injected, unless a node or network fault came in between or the timeout is
//!   too short for a heartbeat to carry it.
//! - `delay-checkpoint-ack target by_ms`: no task acknowledges that checkpoint (the first final one, or number n)
//!   sooner than `by_ms` after it was triggered, if it was triggered after the fault; and a `checkpoint-ack-delayed`
//!   names a checkpoint some such fault targets (number n, or a final checkpoint) and one of their `by_ms`.
//! - `slow-cancel worker by_ms`: from then on, every cancellation of a live execution on that worker is announced
//!   (`cancel-delayed`) and its execution ends `by_ms` later, not sooner.
//! - `slow from to by_ms` / `unslow`: a `control-delayed` (one per delayed datagram) from a node to another names a
//!   link slowed now, by that amount, so a link still slowed after its `unslow` shows with its next datagram; a
//!   node that sends on its own every 100 ms (a worker's heartbeat, the client's status read, both to the
//!   coordinator) shows the delay within `bounds.slow_bound_ms` of the fault or of its restart, while it is up; and the
//!   store, which answers the coordinator's fences and checkpoint saves at once, shows it with its first answer
//!   (`fenced`, `checkpoint-stored`, `checkpoint-storage-failed`) after the slow, in the same millisecond.
//! - `end-partition p`: unless p's EOT was already sent, a source sends it within [`END_BOUND_MS`] of its last record
//!   of p (an attempt restored from a checkpoint replays up to the cut first) while the job runs with no node or link
//!   fault;
//! - `pause` / `resume`: the coordinator takes the request (`pause-requested` / `resume-requested`) within
//!   `bounds.phase_bound_ms` of the fault or of the coordinator's heal, unless a newer request overtook it.

use super::kinds::after_ms;
use super::reachability::Reachability;
use super::{Checker, End, FailureClass, Kinds, Setup, Violation};
use crate::fault::Action;
use crate::trace::{TraceEntry, TraceEvent};
use sluice_engine::faults::{AckTarget, FailReason};
use sluice_engine::net::NodeName;
use sluice_engine::{Event, EventKind, ExecOutcome, JobStatus, TaskId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub(crate) const NAME: &str = "faults-take-effect";
/// A restarted node runs its start-up at once; this much is only slack.
pub const START_BOUND_MS: u64 = 1_000;
/// A source whose EOT is out looks for more end markers at least once per pace (at most 1 s) and per 10 ms.
pub const DUPLICATE_BOUND_MS: u64 = 2_000;
/// A source reads at most one record past an `end-partition` cut, at its pace (at most 1 s), then sends the EOT.
pub const END_BOUND_MS: u64 = 2_000;

/// Armed checkpoint failures: (armed at ms, reason, checkpoints left).
type Armed = VecDeque<(u64, FailReason, u32)>;

#[derive(Debug)]
pub struct FaultsTakeEffect {
    /// The time bounds, from the scenario's timings.
    bounds: super::bounds::Bounds,
    timeout_ms: u64,
    /// Crashed nodes, since when, and whether their silence was already found broken.
    down: BTreeMap<String, (u64, bool)>,
    /// Restarted workers and store awaiting `node-started`: (node, since).
    starting: Vec<(String, u64)>,
    /// Which nodes are down or cut off, and when.
    net: Reachability,
    /// Duplicates asked for and not yet seen, per partition: the times they were asked.
    duplicates: BTreeMap<u32, VecDeque<u64>>,
    /// Per partition: duplicates asked for, and `eot-duplicated` seen, over the whole run.
    duplicates_asked: BTreeMap<u32, u32>,
    duplicates_seen: BTreeMap<u32, u32>,
    /// Source executions whose EOT of a partition is out: (node, task, attempt, partition) → when.
    eot_out: BTreeMap<(String, TaskId, u32, u32), u64>,
    armed: Armed,
    /// Each triggered checkpoint: (triggered at µs, the model's fate, outcome seen).
    checkpoints: BTreeMap<u64, (u64, Option<FailReason>, bool)>,
    /// A checkpoint was given up with no outcome: the reason rule no longer knows which fault hit which checkpoint.
    ambiguous: bool,
    /// Attempts that started a source execution (a checkpoint of an attempt without one is decided at storage).
    sourced: BTreeSet<u32>,
    delays: Vec<(u64, AckTarget, u64)>,
    first_final: Option<u64>,
    /// Every checkpoint triggered as a final one.
    finals: BTreeSet<u64>,
    /// Slow cancellation in force per worker; announced delays per (node, task, attempt): (since µs, by_ms).
    slow: BTreeMap<String, u64>,
    delayed: BTreeMap<(String, TaskId, u32), (u64, u64)>,
    /// The newest pause or resume not yet taken: (asked at ms, pause?); requests asked and taken, per kind
    /// (index 0: resume, 1: pause): each is taken at most once.
    phase_request: Option<(u64, bool)>,
    asked: [u32; 2],
    taken: [u32; 2],
    /// `end-partition` faults whose EOT has not come yet: (partition, asked at); partitions whose EOT was ever sent;
    /// since when the job runs.
    ends: Vec<(u32, u64)>,
    eot_sent: BTreeSet<u32>,
    last_emit_ms: BTreeMap<u32, u64>,
    running_since_ms: Option<u64>,
    /// Slowed links in force, (from, to) → by_ms; those whose sender must show the delay: (from, to) → by when;
    /// and those that showed it since they were slowed.
    slowed: BTreeMap<(String, String), u64>,
    slow_due: BTreeMap<(String, String), u64>,
    slow_shown: BTreeSet<(String, String)>,
    violations: Vec<Violation>,
}

impl FaultsTakeEffect {
    pub fn new(setup: &Setup) -> FaultsTakeEffect {
        FaultsTakeEffect {
            bounds: setup.bounds,
            timeout_ms: setup.checkpoint.map_or(0, |c| c.timeout_ms),
            down: BTreeMap::new(),
            starting: Vec::new(),
            net: Reachability::default(),
            duplicates: BTreeMap::new(),
            duplicates_asked: BTreeMap::new(),
            duplicates_seen: BTreeMap::new(),
            eot_out: BTreeMap::new(),
            armed: VecDeque::new(),
            checkpoints: BTreeMap::new(),
            ambiguous: false,
            sourced: BTreeSet::new(),
            delays: Vec::new(),
            first_final: None,
            finals: BTreeSet::new(),
            slow: BTreeMap::new(),
            delayed: BTreeMap::new(),
            phase_request: None,
            asked: [0; 2],
            taken: [0; 2],
            ends: Vec::new(),
            eot_sent: BTreeSet::new(),
            last_emit_ms: BTreeMap::new(),
            running_since_ms: None,
            slowed: BTreeMap::new(),
            slow_due: BTreeMap::new(),
            slow_shown: BTreeSet::new(),
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, at_ms: u64, class: FailureClass, detail: String) {
        self.violations.push(Violation::new(NAME, at_ms, class, detail));
    }

    /// The times after which `check_deadlines` and `check_slow_deadlines` act: each reports a violation once the
    /// clock is past one of these. A deadline whose window a disruption spoils is left out; only a fault (an entry
    /// this checker reads) can change that. Each kind's deadline is computed by the same helper its check uses.
    fn deadlines_ms(&self) -> impl Iterator<Item = u64> + '_ {
        let ends = self.ends.iter().filter_map(|(p, asked)| self.end_deadline_ms(*p, *asked));
        let starting = self.starting.iter().map(|(_, t)| t + START_BOUND_MS);
        let duplicates = self
            .duplicates
            .iter()
            .filter_map(|(p, asked)| Some((*p, *asked.front()?)))
            .flat_map(move |(p, first)| self.duplicate_starts_ms(p, first).map(|start| start + DUPLICATE_BOUND_MS));
        let phase = self.phase_request.and_then(|(t, _)| self.phase_deadline_ms(t));
        let slow = self.slow_due.iter().filter(|((from, _), _)| self.owes_slow(from)).map(|(_, by)| *by);
        ends.chain(starting).chain(duplicates).chain(phase).chain(slow)
    }

    /// When partition `p`'s EOT, asked for at `asked_ms`, is overdue: `END_BOUND_MS` after the latest of the job
    /// running, the ask and `p`'s last record; `None` while the job does not run or a disruption since spoils it.
    fn end_deadline_ms(&self, p: u32, asked_ms: u64) -> Option<u64> {
        let running = self.running_since_ms?;
        let start = running.max(asked_ms).max(self.last_emit_ms.get(&p).copied().unwrap_or(0));
        (!self.net.disturbed_since(start)).then_some(start + END_BOUND_MS)
    }

    /// When a duplicate EOT of `p`, first asked for at `first_ms`, may start to be owed: from each source whose EOT
    /// of `p` is out, the later of that and the ask, unless a disruption since spoils it.
    fn duplicate_starts_ms(&self, p: u32, first_ms: u64) -> impl Iterator<Item = u64> + '_ {
        let outs = self.eot_out.iter().filter(move |k| k.0 .3 == p);
        outs.map(move |(_, t)| (*t).max(first_ms)).filter(|start| !self.net.disturbed_since(*start))
    }

    /// When the coordinator must have taken a pause or resume asked at `asked_ms`: the bound from the ask or the
    /// coordinator's heal; `None` while it is down or cut off.
    fn phase_deadline_ms(&self, asked_ms: u64) -> Option<u64> {
        let coordinator = NodeName::Coordinator.label();
        let reachable_ms = self.net.reachable_since_ms(&coordinator);
        (!self.net.disrupted(&coordinator)).then_some(asked_ms.max(reachable_ms) + self.bounds.phase_bound_ms)
    }

    /// Whether the sender of a slowed link still owes the delay's showing (a node that is down sends nothing).
    fn owes_slow(&self, from: &str) -> bool {
        !self.down.contains_key(from)
    }

    fn check_deadlines(&mut self, now_ms: u64) {
        let overdue =
            self.ends.iter().position(|(p, asked)| self.end_deadline_ms(*p, *asked).is_some_and(|d| now_ms > d));
        if let Some(i) = overdue {
            let (p, asked) = self.ends.remove(i);
            let detail = format!(
                "end-partition {p} at {asked} ms: the job ran on without a fault, and partition {p} sent no EOT"
            );
            self.violation(now_ms, FailureClass::Liveness, detail);
        }
        if let Some(i) = self.starting.iter().position(|(_, t)| now_ms > t + START_BOUND_MS) {
            let (node, t) = self.starting.remove(i);
            self.violation(
                t + START_BOUND_MS,
                FailureClass::Liveness,
                format!("{node} restarted at {t} ms never started"),
            );
        }
        let missed = self.duplicates.iter().find_map(|(p, asked)| {
            let first = *asked.front()?;
            let start = self.duplicate_starts_ms(*p, first).find(|start| now_ms > start + DUPLICATE_BOUND_MS)?;
            Some((*p, first, start))
        });
        if let Some((p, asked, start)) = missed {
            self.duplicates.remove(&p);
            let detail = format!(
                "duplicate-eot of partition {p} at {asked} ms: a source ran with its EOT out from {start} ms for \
                 {DUPLICATE_BOUND_MS} ms and never delivered it again"
            );
            self.violation(start + DUPLICATE_BOUND_MS, FailureClass::Liveness, detail);
        }
        if let Some((t, pause)) = self.phase_request {
            if let Some(deadline) = self.phase_deadline_ms(t).filter(|d| now_ms > *d) {
                self.phase_request = None;
                let what = if pause { "pause" } else { "resume" };
                let detail = format!("{what} asked at {t} ms, the coordinator never took it (by {deadline} ms)");
                self.violation(deadline, FailureClass::Liveness, detail);
            }
        }
    }

    /// A sender on a slowed link that must have shown the delay by now did, unless it is down.
    fn check_slow_deadlines(&mut self, now_ms: u64) {
        let overdue = self
            .slow_due
            .iter()
            .find(|((from, _), by_ms)| now_ms > **by_ms && self.owes_slow(from))
            .map(|(k, by_ms)| (k.clone(), *by_ms));
        if let Some(((from, to), by_ms)) = overdue {
            self.slow_due.remove(&(from.clone(), to.clone()));
            self.slow_shown.insert((from.clone(), to.clone())); // found once per slowing
            let slowed = self.slowed.get(&(from.clone(), to.clone())).copied().unwrap_or_default();
            let detail =
                format!("{from} -> {to} is slowed by {slowed} ms, but {from} sent no delayed datagram by {by_ms} ms");
            self.violation(by_ms, FailureClass::Safety, detail);
        }
    }

    fn on_slow(&mut self, action: &Action, at_ms: u64) {
        match action {
            Action::Slow { from, to, by_ms } => {
                let link = (from.label(), to.label());
                let periodic = matches!(from, NodeName::Worker(_) | NodeName::Client) && *to == NodeName::Coordinator;
                if periodic {
                    self.slow_due.insert(link.clone(), at_ms + self.bounds.slow_bound_ms);
                }
                self.slow_shown.remove(&link);
                self.slowed.insert(link, *by_ms);
            }
            Action::Unslow { from, to } => {
                let link = (from.label(), to.label());
                self.slowed.remove(&link);
                self.slow_due.remove(&link);
            }
            Action::Restart { node } => {
                // A restarted sender starts afresh (its first heartbeat follows its start-up).
                for ((from, _), by_ms) in self.slow_due.iter_mut() {
                    if *from == node.label() {
                        *by_ms = at_ms + START_BOUND_MS + self.bounds.slow_bound_ms;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_control_delayed(&mut self, node: &str, to: NodeName, by_ms: u64, at_ms: u64) {
        let link = (node.to_string(), to.label());
        self.slow_due.remove(&link);
        self.slow_shown.insert(link.clone());
        let slowed = self.slowed.get(&link).copied();
        if slowed != Some(by_ms) {
            let detail = format!(
                "{node} delayed a datagram to {} by {by_ms} ms, but the link's slow is {}",
                link.1,
                slowed.map_or("not in force".to_string(), |s| format!("{s} ms"))
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }

    /// The store answered the coordinator (the reply leaves right after this event): on a slowed link, its first
    /// answer since the slow shows the delay in the same millisecond.
    fn on_store_answer(&mut self, at_ms: u64) {
        let link = (NodeName::Store.label(), NodeName::Coordinator.label());
        if self.slowed.contains_key(&link) && !self.slow_shown.contains(&link) {
            self.slow_due.entry(link).or_insert(at_ms);
        }
    }

    fn on_fault(&mut self, action: &Action, at_ms: u64) {
        self.on_slow(action, at_ms);
        self.net.apply(action, at_ms);
        if let Action::Crash { node } | Action::Restart { node } = action {
            // A killed node's executions end without a word.
            let label = node.label();
            self.eot_out.retain(|(n, ..), _| *n != label);
            self.delayed.retain(|(n, ..), _| *n != label);
        }
        match action {
            Action::Crash { node } => {
                self.down.insert(node.label(), (at_ms, false));
            }
            Action::Restart { node } => {
                self.down.remove(&node.label());
                if matches!(node, NodeName::Worker(_) | NodeName::Store) {
                    self.starting.push((node.label(), at_ms));
                }
            }
            Action::DuplicateEot { partition } => {
                self.duplicates.entry(*partition).or_default().push_back(at_ms);
                *self.duplicates_asked.entry(*partition).or_default() += 1;
            }
            Action::FailCheckpoints { reason, count } => self.armed.push_back((at_ms, *reason, *count)),
            Action::DelayAcks { checkpoint, by_ms } => self.delays.push((at_ms * 1000, *checkpoint, *by_ms)),
            Action::SlowCancel { worker, by_ms } => {
                self.slow.insert(NodeName::Worker(*worker).label(), *by_ms);
            }
            Action::Pause | Action::Resume => {
                let pause = *action == Action::Pause;
                self.phase_request = Some((at_ms, pause));
                self.asked[pause as usize] += 1;
            }
            Action::EndPartition { partition } => {
                if !self.eot_sent.contains(partition) {
                    self.ends.push((*partition, at_ms));
                }
            }
            Action::Isolate { .. }
            | Action::Heal { .. }
            | Action::Clog { .. }
            | Action::Unclog { .. }
            | Action::Slow { .. }
            | Action::Unslow { .. } => {}
        }
    }

    /// A duplicate EOT went out: one asked for is served; one more than asked for is a fault nobody injected.
    fn on_eot_duplicated(&mut self, partition: u32, at_ms: u64) {
        if let Some(asked) = self.duplicates.get_mut(&partition) {
            asked.pop_front();
        }
        let seen = self.duplicates_seen.entry(partition).or_default();
        *seen += 1;
        let (seen, asked) = (*seen, self.duplicates_asked.get(&partition).copied().unwrap_or(0));
        if seen == asked + 1 {
            let detail = format!(
                "{seen} duplicates of partition {p}'s EOT went out, but duplicate-eot asked for {asked}",
                p = partition
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }

    fn on_triggered(&mut self, epoch: u64, attempt: u32, at_us: u64) {
        let at_ms = at_us / 1000;
        if self.checkpoints.values().any(|(_, _, outcome)| !outcome) {
            self.ambiguous = true; // an earlier checkpoint was given up: its fate may or may not have been decided
        }
        for c in self.checkpoints.values_mut() {
            c.2 = true;
        }
        if !self.sourced.contains(&attempt) {
            // No source asked for this checkpoint's fate: storage decides it, whenever it is triggered.
            self.ambiguous = true;
            self.armed.clear();
        }
        let mut fate = None;
        if let Some((since, reason, left)) = self.armed.front_mut() {
            if at_ms >= *since {
                fate = Some(*reason);
                *left -= 1;
                if *left == 0 {
                    self.armed.pop_front();
                }
            }
        }
        self.checkpoints.insert(epoch, (at_us, fate, false));
    }

    fn on_checkpoint_outcome(&mut self, epoch: u64, failed: Option<FailReason>, at_ms: u64) {
        let Some((triggered_us, fate, seen)) = self.checkpoints.get_mut(&epoch) else { return };
        *seen = true;
        let (triggered_ms, fate) = (*triggered_us / 1000, *fate);
        match (fate, failed) {
            (Some(reason), None) => {
                let detail = format!(
                    "checkpoint {epoch} completed, but a fail-checkpoint ({}) armed before its trigger should have \
                     failed it",
                    reason
                );
                self.violation(at_ms, FailureClass::Safety, detail);
            }
            (Some(armed), Some(got))
                if declined_by_a_task(armed)
                    && declined_by_a_task(got)
                    && armed != got
                    && !self.ambiguous
                    && !self.net.disturbed_since(triggered_ms) =>
            {
                let detail = format!(
                    "checkpoint {epoch} was to be declined as {armed}, but the decline that failed it said {got}"
                );
                self.violation(at_ms, FailureClass::Safety, detail);
            }
            (Some(armed), Some(FailReason::Expired))
                if declined_by_a_task(armed)
                    && !self.ambiguous
                    && self.timeout_ms >= self.bounds.decline_race_ms
                    && !self.net.disturbed_since(triggered_ms) =>
            {
                let detail = format!(
                    "checkpoint {epoch} was to be declined by its source, but it expired after {} ms: the decline \
                     never reached the coordinator",
                    self.timeout_ms
                );
                self.violation(at_ms, FailureClass::Safety, detail);
            }
            _ => {}
        }
        if fate.is_some() && failed != fate {
            // The model gave this checkpoint a fate the engine did not apply (no source saw its trigger, say): the
            // engine still holds that failure for a later checkpoint, so the model's fates run ahead from here on.
            self.ambiguous = true;
        }
    }

    fn on_acked(&mut self, epoch: u64, at_us: u64) {
        let Some((triggered_us, _, _)) = self.checkpoints.get(&epoch).copied() else { return };
        let applies = |(armed_us, target, _): &&(u64, AckTarget, u64)| {
            triggered_us >= *armed_us
                && match target {
                    AckTarget::Final => self.first_final == Some(epoch),
                    AckTarget::Epoch(n) => *n == epoch,
                }
        };
        let by_ms = self.delays.iter().filter(applies).map(|(_, _, by)| *by).max();
        if let Some(by_ms) = by_ms.filter(|by| at_us < triggered_us + by * 1000) {
            let detail = format!(
                "checkpoint {epoch} acknowledged {} ms after its trigger, but its acknowledgements were delayed by \
                 {by_ms} ms",
                (at_us - triggered_us) / 1000
            );
            self.violation(at_us / 1000, FailureClass::Safety, detail);
        }
    }

    /// A delay is only ever taken for a checkpoint some `delay-checkpoint-ack` targets, by that fault's amount (the
    /// arming time is not judged here: a task may see a trigger after a fault armed later).
    fn on_ack_delayed(&mut self, epoch: u64, by_ms: u64, at_ms: u64) {
        let targets = |target: &AckTarget| match target {
            AckTarget::Final => self.finals.contains(&epoch),
            AckTarget::Epoch(n) => *n == epoch,
        };
        if !self.delays.iter().any(|(_, target, by)| targets(target) && *by == by_ms) {
            let detail = format!(
                "checkpoint {epoch}'s acknowledgement was delayed by {by_ms} ms, but no delay-checkpoint-ack targets it \
                 by that much"
            );
            self.violation(at_ms, FailureClass::Safety, detail);
        }
    }

    fn on_ended(&mut self, node: &str, task: TaskId, attempt: u32, outcome: &ExecOutcome, at_us: u64) {
        self.eot_out.retain(|(n, t, a, _), _| !(n == node && *t == task && *a == attempt));
        let announced = self.delayed.remove(&(node.to_string(), task, attempt));
        if !matches!(outcome, ExecOutcome::Canceled(_)) || !self.slow.contains_key(node) {
            return;
        }
        let detail = match announced {
            None => format!("{task} (attempt {attempt}) on {node} was canceled at once despite a slow-cancel"),
            Some((since_us, by_ms)) if at_us < since_us + by_ms * 1000 => format!(
                "{task} (attempt {attempt}) on {node} was canceled {} ms after its cancel, not {by_ms} ms",
                (at_us - since_us) / 1000
            ),
            Some(_) => return,
        };
        self.violation(at_us / 1000, FailureClass::Safety, detail);
    }

    fn on_engine(&mut self, entry: &TraceEntry, event: &Event) {
        let (at_us, at_ms, node) = (entry.at_us, entry.at_ms(), &*entry.node);
        match event {
            Event::NodeStarted { .. } => self.starting.retain(|(n, _)| n != node),
            Event::ExecutionStarted { task, attempt } if task.vertex == 0 => {
                self.sourced.insert(*attempt);
            }
            Event::StatusChanged { to, .. } => {
                self.running_since_ms = (*to == JobStatus::Running).then_some(at_ms);
            }
            Event::Emitted { id, .. } => {
                self.last_emit_ms.insert(id.partition, at_ms);
            }
            Event::SourceEot { attempt, task, partition, .. } => {
                self.eot_sent.insert(*partition);
                self.ends.retain(|(p, _)| p != partition);
                self.eot_out.entry((node.to_string(), *task, *attempt, *partition)).or_insert(at_ms);
            }
            Event::EotDuplicated { partition, .. } => self.on_eot_duplicated(*partition, at_ms),
            Event::ExecutionEnded { task, attempt, outcome } => self.on_ended(node, *task, *attempt, outcome, at_us),
            Event::CheckpointTriggered { attempt, epoch, is_final } => {
                if *is_final && self.first_final.is_none() {
                    self.first_final = Some(*epoch);
                }
                if *is_final {
                    self.finals.insert(*epoch);
                }
                self.on_triggered(*epoch, *attempt, at_us);
            }
            Event::CheckpointCompleted { epoch, .. } => self.on_checkpoint_outcome(*epoch, None, at_ms),
            Event::CheckpointFailed { epoch, reason, .. } => self.on_checkpoint_outcome(*epoch, Some(*reason), at_ms),
            Event::CheckpointAcked { epoch, .. } => self.on_acked(*epoch, at_us),
            Event::CheckpointAckDelayed { epoch, by_ms, .. } => self.on_ack_delayed(*epoch, *by_ms, at_ms),
            Event::CancelDelayed { task, attempt, by_ms } => {
                let configured = self.slow.get(node).copied();
                if configured != Some(*by_ms) {
                    let configured = configured.map_or("none".to_string(), |ms| format!("{ms} ms"));
                    let detail = format!("{node} delays a cancel by {by_ms} ms, but its slow-cancel is {configured}");
                    self.violation(at_ms, FailureClass::Safety, detail);
                }
                self.delayed.insert((node.to_string(), *task, *attempt), (at_us, *by_ms));
            }
            Event::ControlDelayed { to, by_ms } => self.on_control_delayed(node, *to, *by_ms, at_ms),
            Event::Fenced { .. } | Event::CheckpointStored { .. } | Event::CheckpointStorageFailed { .. }
                if node == NodeName::Store.label() =>
            {
                self.on_store_answer(at_ms)
            }
            Event::PauseRequested | Event::ResumeRequested => {
                let pause = matches!(event, Event::PauseRequested);
                if self.phase_request.is_some_and(|(_, p)| p == pause) {
                    self.phase_request = None;
                }
                self.taken[pause as usize] += 1;
                if self.taken[pause as usize] > self.asked[pause as usize] {
                    let what = if pause { "pause" } else { "resume" };
                    let detail = format!(
                        "the coordinator took a {what} request for the {}th time, but only {} were asked",
                        self.taken[pause as usize], self.asked[pause as usize]
                    );
                    self.violation(at_ms, FailureClass::Safety, detail);
                }
            }
            _ => {}
        }
    }
}

impl Checker for FaultsTakeEffect {
    fn on_entry(&mut self, entry: &TraceEntry) {
        let at_ms = entry.at_ms();
        self.check_deadlines(at_ms);
        self.check_slow_deadlines(at_ms);
        match &entry.event {
            TraceEvent::Fault(action) => self.on_fault(action, at_ms),
            TraceEvent::Observed { .. } | TraceEvent::Alerted { .. } => {}
            TraceEvent::Engine(event) => {
                if let Some((since, reported)) = self.down.get_mut(&*entry.node) {
                    if !*reported {
                        *reported = true;
                        let event = serde_json::to_string(event).expect("an engine event serializes");
                        let detail = format!("{} crashed at {since} ms but still emits: {event}", entry.node);
                        self.violation(at_ms, FailureClass::Safety, detail);
                    }
                }
                self.on_engine(entry, event);
            }
        }
    }

    fn kinds(&self) -> Kinds {
        Kinds::FAULT.and(Kinds::engine(&[
            EventKind::NodeStarted,
            EventKind::ExecutionStarted,
            EventKind::StatusChanged,
            EventKind::Emitted,
            EventKind::SourceEot,
            EventKind::EotDuplicated,
            EventKind::ExecutionEnded,
            EventKind::CheckpointTriggered,
            EventKind::CheckpointCompleted,
            EventKind::CheckpointFailed,
            EventKind::CheckpointAcked,
            EventKind::CheckpointAckDelayed,
            EventKind::CancelDelayed,
            EventKind::ControlDelayed,
            EventKind::Fenced,
            EventKind::CheckpointStored,
            EventKind::CheckpointStorageFailed,
            EventKind::PauseRequested,
            EventKind::ResumeRequested,
        ]))
    }

    /// Every entry while a crashed node has not been caught speaking; else the first of its deadlines.
    fn wake_at_us(&self) -> u64 {
        if self.down.values().any(|(_, reported)| !reported) {
            return 0;
        }
        let owed = !self.ends.is_empty() || !self.starting.is_empty() || !self.duplicates.is_empty();
        if !owed && self.phase_request.is_none() && self.slow_due.is_empty() {
            return u64::MAX; // the common case, without building the iterator
        }
        self.deadlines_ms().min().map_or(u64::MAX, after_ms)
    }

    fn finish(&mut self, end: &End) -> Vec<Violation> {
        self.check_deadlines(end.end_ms);
        self.check_slow_deadlines(end.end_ms);
        std::mem::take(&mut self.violations)
    }
}

/// Whether a `fail-checkpoint` of this reason is carried out by a source declining (README, "Faults": `declined`,
/// `subsumed`, `task-not-ready`); the others are a withheld acknowledgement or a refusal of checkpoint storage.
fn declined_by_a_task(reason: FailReason) -> bool {
    match reason {
        FailReason::Declined | FailReason::Subsumed | FailReason::TaskNotReady => true,
        FailReason::Expired | FailReason::IoError => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use sluice_engine::CheckpointSpec;

    fn checkpoints() -> Setup {
        let mut s = setup(vec![10]);
        s.checkpoint = Some(CheckpointSpec { interval_ms: 1_000, timeout_ms: 2_000, tolerable_failures: 9 });
        s
    }

    fn source_started(ms: u64) -> TraceEntry {
        at(ms, "worker-1", Event::ExecutionStarted { task: TaskId { vertex: 0, replica: 0 }, attempt: 1 })
    }

    fn triggered(ms: u64, epoch: u64) -> TraceEntry {
        at(ms, "coordinator", Event::CheckpointTriggered { attempt: 1, epoch, is_final: false })
    }

    fn completed(ms: u64, epoch: u64) -> TraceEntry {
        at(ms, "coordinator", Event::CheckpointCompleted { attempt: 1, epoch, is_final: false })
    }

    fn failed(ms: u64, epoch: u64, reason: FailReason) -> TraceEntry {
        let detail = String::new();
        at(ms, "coordinator", Event::CheckpointFailed { attempt: 1, epoch, reason, detail, consecutive: 1 })
    }

    fn check(setup: &Setup, trace: &[TraceEntry]) -> Vec<Violation> {
        run(&mut FaultsTakeEffect::new(setup), trace, 60_000)
    }

    #[test]
    fn an_armed_checkpoint_failure_must_fail_the_next_checkpoints() {
        let arm = fault(500, Action::FailCheckpoints { reason: FailReason::IoError, count: 2 });
        let good = vec![
            source_started(0),
            triggered(100, 1),
            completed(200, 1),
            arm.clone(),
            triggered(1_100, 2),
            failed(1_200, 2, FailReason::IoError),
            triggered(2_100, 3),
            failed(2_200, 3, FailReason::IoError),
            triggered(3_100, 4),
            completed(3_200, 4),
        ];
        assert!(check(&checkpoints(), &good).is_empty(), "{:?}", check(&checkpoints(), &good));
        let skipped = vec![source_started(0), arm, triggered(1_100, 2), completed(1_200, 2)];
        let v = check(&checkpoints(), &skipped);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("should have failed it"));
    }

    #[test]
    fn a_decline_that_turns_into_an_expiry_is_flagged() {
        let arm = fault(500, Action::FailCheckpoints { reason: FailReason::Declined, count: 1 });
        let base = vec![source_started(0), arm, triggered(1_000, 1)];
        let declined = [base.clone(), vec![failed(1_200, 1, FailReason::Declined)]].concat();
        assert!(check(&checkpoints(), &declined).is_empty());
        let expired = [base.clone(), vec![failed(3_001, 1, FailReason::Expired)]].concat();
        assert_eq!(check(&checkpoints(), &expired).len(), 1);
        let cut = fault(1_500, Action::Isolate { node: worker(1) });
        let excused = [base, vec![cut, failed(3_001, 1, FailReason::Expired)]].concat();
        assert!(check(&checkpoints(), &excused).is_empty(), "an isolation excuses the expiry");
    }

    #[test]
    fn a_decline_carries_the_injected_reason() {
        let arm = fault(500, Action::FailCheckpoints { reason: FailReason::Subsumed, count: 1 });
        let base = vec![source_started(0), arm, triggered(1_000, 1)];
        let subsumed = [base.clone(), vec![failed(1_200, 1, FailReason::Subsumed)]].concat();
        assert!(check(&checkpoints(), &subsumed).is_empty());
        let relabelled = [base.clone(), vec![failed(1_200, 1, FailReason::Declined)]].concat();
        let v = check(&checkpoints(), &relabelled);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("to be declined as subsumed"), "{v:?}");
        let expired = [base, vec![failed(3_001, 1, FailReason::Expired)]].concat();
        assert_eq!(check(&checkpoints(), &expired).len(), 1, "a lost subsumed decline is flagged like any decline");
    }

    #[test]
    fn a_duplicate_eot_must_be_delivered_by_a_source_that_runs_on() {
        let task = TaskId { vertex: 0, replica: 0 };
        let eot = at(100, "worker-1", Event::SourceEot { attempt: 1, task, partition: 0, end_offset: 5 });
        let dup = fault(200, Action::DuplicateEot { partition: 0 });
        let again = at(
            210,
            "worker-1",
            Event::EotDuplicated { attempt: 1, task, partition: 0, end_offset: 5, delivered: true },
        );
        let later = commit(5_000, 0, 0);
        assert!(check(&setup(vec![5]), &[eot.clone(), dup.clone(), again.clone(), later.clone()]).is_empty());
        let twice = [eot.clone(), dup.clone(), again.clone(), again.clone(), later.clone()];
        let v = check(&setup(vec![5]), &twice);
        assert!(v.len() == 1 && v[0].detail.contains("2 duplicates of partition 0's EOT went out"), "{v:?}");
        let v = check(&setup(vec![5]), &[eot.clone(), again, later.clone()]);
        assert!(v.len() == 1 && v[0].detail.contains("duplicate-eot asked for 0"), "unasked: {v:?}");
        let v = check(&setup(vec![5]), &[eot.clone(), dup.clone(), later.clone()]);
        assert_eq!(v.len(), 1, "{v:?}");
        let ended = at(300, "worker-1", Event::ExecutionEnded { task, attempt: 1, outcome: ExecOutcome::Finished });
        assert!(check(&setup(vec![5]), &[eot, dup, ended, later]).is_empty(), "a source that ended owes nothing");
    }

    #[test]
    fn late_acks_slow_cancels_crashes_and_requests_are_held_to_their_fault() {
        let task = TaskId { vertex: 1, replica: 0 };
        let delay = fault(0, Action::DelayAcks { checkpoint: AckTarget::Epoch(1), by_ms: 3_000 });
        let acked = |ms| at(ms, "worker-1", Event::CheckpointAcked { attempt: 1, task, epoch: 1 });
        let trace = vec![source_started(0), delay, triggered(100, 1)];
        assert!(check(&checkpoints(), &[trace.clone(), vec![acked(3_200)]].concat()).is_empty());
        assert_eq!(check(&checkpoints(), &[trace.clone(), vec![acked(500)]].concat()).len(), 1);
        let delayed =
            |epoch| at(110, "worker-1", Event::CheckpointAckDelayed { attempt: 1, task, epoch, by_ms: 3_000 });
        assert!(check(&checkpoints(), &[trace.clone(), vec![delayed(1)]].concat()).is_empty());
        let v = check(&checkpoints(), &[trace, vec![triggered(4_000, 2), delayed(2)]].concat());
        assert_eq!(v.len(), 1, "a delay no fault targets: {v:?}");
        assert!(v[0].detail.contains("no delay-checkpoint-ack targets it"));

        let slow = fault(0, Action::SlowCancel { worker: 1, by_ms: 2_000 });
        let canceled = |ms| {
            at(ms, "worker-1", Event::ExecutionEnded { task, attempt: 1, outcome: ExecOutcome::Canceled("x".into()) })
        };
        let announced = at(100, "worker-1", Event::CancelDelayed { task, attempt: 1, by_ms: 2_000 });
        assert!(check(&setup(vec![1]), &[slow.clone(), announced.clone(), canceled(2_100)]).is_empty());
        assert_eq!(check(&setup(vec![1]), &[slow.clone(), announced, canceled(1_000)]).len(), 1);
        assert_eq!(check(&setup(vec![1]), &[slow, canceled(100)]).len(), 1);

        let crash = fault(100, Action::Crash { node: worker(1) });
        let zombie = at(200, "worker-1", Event::NodeStarted { incarnation: 1 });
        assert_eq!(check(&setup(vec![1]), &[crash.clone(), zombie]).len(), 1, "a crashed node is silent");
        let restart = fault(300, Action::Restart { node: worker(1) });
        let started = at(300, "worker-1", Event::NodeStarted { incarnation: 2 });
        assert!(check(&setup(vec![1]), &[crash.clone(), restart.clone(), started]).is_empty());
        assert_eq!(check(&setup(vec![1]), &[crash, restart]).len(), 1, "a restarted node starts");

        let running = status(0, JobStatus::Scheduled, JobStatus::Running);
        let end = fault(100, Action::EndPartition { partition: 0 });
        let task = TaskId { vertex: 0, replica: 0 };
        let eot = at(150, "worker-1", Event::SourceEot { attempt: 1, task, partition: 0, end_offset: 0 });
        assert!(check(&setup(vec![1]), &[running.clone(), end.clone(), eot]).is_empty());
        assert_eq!(check(&setup(vec![1]), &[running, end]).len(), 1, "an end-partition with no EOT");

        let pause = fault(100, Action::Pause);
        let taken = at(300, "coordinator", Event::PauseRequested);
        assert!(check(&setup(vec![1]), &[pause.clone(), taken.clone()]).is_empty());
        assert_eq!(check(&setup(vec![1]), &[pause.clone(), taken.clone(), taken]).len(), 1, "a request taken twice");
        assert_eq!(check(&setup(vec![1]), &[pause]).len(), 1, "a pause nobody took");
    }

    #[test]
    fn a_slowed_link_is_held_to_its_delay_and_a_delay_to_its_slow() {
        let (w1, coordinator, store) = (worker(1), NodeName::Coordinator, NodeName::Store);
        let slow = fault(100, Action::Slow { from: w1, to: coordinator, by_ms: 700 });
        let unslow = fault(5_000, Action::Unslow { from: w1, to: coordinator });
        let delayed = |ms, by_ms| at(ms, "worker-1", Event::ControlDelayed { to: coordinator, by_ms });
        let s = setup(vec![1]);
        assert!(check(&s, &[slow.clone(), delayed(150, 700), unslow.clone()]).is_empty());
        let every = [slow.clone(), delayed(150, 700), delayed(250, 700), delayed(4_999, 700), unslow.clone()];
        assert!(check(&s, &every).is_empty(), "each delayed datagram while slowed");
        let v = check(&s, &[slow.clone(), delayed(150, 300)]);
        assert_eq!(v.len(), 1, "another amount than the slow's: {v:?}");
        assert!(v[0].detail.contains("the link's slow is 700 ms"));
        let v = check(&s, &[slow.clone(), delayed(150, 700), unslow.clone(), delayed(5_100, 700)]);
        assert_eq!(v.len(), 1, "a delay after the unslow: {v:?}");
        let v = check(&s, &[delayed(150, 700)]);
        assert_eq!(v.len(), 1, "a delay with no slow: {v:?}");
        assert!(v[0].detail.contains("not in force"));
        // A heartbeat goes out every 100 ms: a slowed worker -> coordinator link shows its delay within the bound.
        let v = check(&s, &[slow.clone(), unslow.clone()]);
        assert_eq!(v.len(), 1, "a slow that delayed nothing: {v:?}");
        assert!(v[0].detail.contains("sent no delayed datagram"));
        assert!(check(&s, &[slow.clone(), fault(500, Action::Unslow { from: w1, to: coordinator })]).is_empty());
        let crash = fault(200, Action::Crash { node: w1 });
        assert!(check(&s, &[slow.clone(), crash, unslow.clone()]).is_empty(), "a crashed sender owes nothing");
        // The store answers only when asked: its slowed link owes nothing on its own.
        let quiet = fault(100, Action::Slow { from: store, to: coordinator, by_ms: 700 });
        assert!(check(&s, std::slice::from_ref(&quiet)).is_empty());
        // ... but its first answer after the slow goes out late, and says so.
        let stored = |ms| at(ms, "store", Event::CheckpointStored { attempt: 1, epoch: 1, offsets: vec![0] });
        let store_delayed = |ms| at(ms, "store", Event::ControlDelayed { to: coordinator, by_ms: 700 });
        assert!(check(&s, &[quiet.clone(), stored(300), store_delayed(300), stored(900)]).is_empty());
        assert!(check(&s, &[stored(50), quiet.clone()]).is_empty(), "an answer before the slow left on time");
        let v = check(&s, &[quiet.clone(), stored(300), stored(900)]);
        assert!(v.len() == 1 && v[0].detail.contains("store sent no delayed datagram by 300 ms"), "{v:?}");
        let again = fault(1_000, Action::Slow { from: store, to: coordinator, by_ms: 700 });
        let v = check(&s, &[quiet, stored(300), store_delayed(300), again, stored(1_200)]);
        assert_eq!(v.len(), 1, "a new slow shows its delay anew: {v:?}");
    }
}
