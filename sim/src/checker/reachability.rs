//! A small model of node and link faults shared by the checkers that must excuse what a fault explains: which nodes
//! are down (crashed, not restarted) or cut off (isolated, or an end of a clogged or slowed link) now, when each was last
//! reachable again, and when a disruptive action last named each. Built from the typed fault actions in the trace.

use crate::fault::Action;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Reachability {
    down: BTreeSet<String>,
    /// Isolations and clogged links in force, per node (an isolation and a clog of one node add up).
    cut: BTreeMap<String, u32>,
    reachable_ms: BTreeMap<String, u64>,
    touched_ms: BTreeMap<String, u64>,
    last_disruption_ms: Option<u64>,
    /// Slowed links in force and their delay: what a slowed link carried arrives up to that long after it heals.
    slowed: BTreeMap<(String, String), u64>,
}

impl Reachability {
    /// Follows one fault action at `at_ms`.
    pub fn apply(&mut self, action: &Action, at_ms: u64) {
        let nodes = action.nodes();
        // An unslow takes effect when the last datagram the slowed link delayed has arrived.
        let at_ms = match action {
            Action::Slow { from, to, by_ms } => {
                self.slowed.insert((from.label(), to.label()), *by_ms);
                at_ms
            }
            Action::Unslow { from, to } => at_ms + self.slowed.remove(&(from.label(), to.label())).unwrap_or(0),
            _ => at_ms,
        };
        for n in &nodes {
            self.touched_ms.insert(n.label(), at_ms);
            self.last_disruption_ms = Some(at_ms);
        }
        match action {
            Action::Crash { node } => {
                self.down.insert(node.label());
            }
            Action::Restart { node } => {
                self.down.remove(&node.label());
                self.reachable_ms.insert(node.label(), at_ms);
            }
            // A slowed link is treated as cut: what it delays may time out like what a clog drops.
            Action::Isolate { .. } | Action::Clog { .. } | Action::Slow { .. } => {
                for n in &nodes {
                    *self.cut.entry(n.label()).or_default() += 1;
                }
            }
            Action::Heal { .. } | Action::Unclog { .. } | Action::Unslow { .. } => {
                for n in &nodes {
                    let count = self.cut.entry(n.label()).or_default();
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.reachable_ms.insert(n.label(), at_ms);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `node` is isolated or an end of a clogged link now.
    pub fn cut_off(&self, node: &str) -> bool {
        self.cut.get(node).is_some_and(|n| *n > 0)
    }

    /// Whether `node` is down or cut off now.
    pub fn disrupted(&self, node: &str) -> bool {
        self.down.contains(node) || self.cut_off(node)
    }

    /// Whether any node is down or cut off now.
    pub fn any_disrupted(&self) -> bool {
        !self.down.is_empty() || self.cut.values().any(|n| *n > 0)
    }

    /// When `node` was last reachable again after being cut off or down (0: never cut off); after a slowed link, when
    /// the last datagram it delayed arrived (possibly later than now).
    pub fn reachable_since_ms(&self, node: &str) -> u64 {
        self.reachable_ms.get(node).copied().unwrap_or(0)
    }

    /// Whether `node` is disrupted now, or a disruptive action named it within `window_ms` before `now_ms`.
    pub fn touched_within(&self, node: &str, now_ms: u64, window_ms: u64) -> bool {
        self.disrupted(node) || self.touched_ms.get(node).is_some_and(|t| now_ms <= t + window_ms)
    }

    /// Whether some node is disrupted now, or any disruptive action came at or after `since_ms`.
    pub fn disturbed_since(&self, since_ms: u64) -> bool {
        self.any_disrupted() || self.last_disruption_ms.is_some_and(|t| t >= since_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::net::NodeName;

    #[test]
    fn follows_cuts_crashes_and_heals() {
        let (w1, store) = (NodeName::Worker(1), NodeName::Store);
        let mut r = Reachability::default();
        r.apply(&Action::Isolate { node: w1 }, 100);
        r.apply(&Action::Clog { from: w1, to: store }, 200);
        r.apply(&Action::Heal { node: w1 }, 300);
        assert!(r.cut_off("worker-1") && r.cut_off("store"), "still an end of the clogged link");
        r.apply(&Action::Unclog { from: w1, to: store }, 400);
        assert!(!r.any_disrupted());
        assert_eq!(r.reachable_since_ms("worker-1"), 400);
        assert!(r.touched_within("store", 1_000, 600) && !r.touched_within("store", 1_001, 600));
        r.apply(&Action::Crash { node: store }, 500);
        assert!(r.disrupted("store") && !r.cut_off("store"));
        assert!(r.disturbed_since(10_000), "a crash in force disturbs");
        r.apply(&Action::Restart { node: store }, 900);
        assert!(!r.disturbed_since(901) && r.disturbed_since(900));
        r.apply(&Action::Slow { from: store, to: w1, by_ms: 700 }, 1_000);
        assert!(r.cut_off("store") && r.cut_off("worker-1"), "a slowed link counts as cut");
        r.apply(&Action::Unslow { from: store, to: w1 }, 1_100);
        assert!(!r.any_disrupted());
        assert_eq!(r.reachable_since_ms("worker-1"), 1_800, "what it delayed arrives by the heal + 700 ms");
        assert!(r.disturbed_since(1_800) && !r.disturbed_since(1_801));
    }
}
