//! The lifecycle controller's state: desired phase, the pause in progress, `drained_on_pause`, and the replica
//! computation shared with the autoscaler. A pure state machine; the coordinator does the I/O.
//!
//! Pausing follows NumaFlow's controller: PAUSING; scale the sources to 0; once no source replica runs, check that
//! every buffer has nothing pending and nothing awaiting acknowledgement; drained, or the grace period passed ⇒ scale
//! everything to 0 and report PAUSED, with `drained_on_pause = true` only if drained. Resume clears the flag.
//!
//! Canaries living here: `pause-clamped-to-scale-min` (the replica computation clamps the pause's 0 into
//! [scale.min, scale.max]) and `drained-flag-kept-on-resume`.

use crate::canary::{Canaries, Canary};

/// A pause in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pausing {
    pub since_ms: u64,
    /// The last drain check reported: (sources running, pending, ack-pending, drained).
    pub last_check: Option<(u16, u64, u64, bool)>,
}

#[derive(Debug)]
pub struct Lifecycle {
    canaries: Canaries,
    pub grace_ms: u64,
    pub desired_paused: bool,
    pub drained_on_pause: bool,
    pub pausing: Option<Pausing>,
    /// The newest request taken (requests are numbered by their sender).
    latest_request: u64,
}

/// What a drain check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseStep {
    /// Keep waiting.
    Wait,
    /// Scale everything to 0 and report PAUSED, drained or not.
    Pause { drained: bool },
}

impl Lifecycle {
    pub fn new(canaries: Canaries, grace_ms: u64) -> Lifecycle {
        Lifecycle {
            canaries,
            grace_ms,
            desired_paused: false,
            drained_on_pause: false,
            pausing: None,
            latest_request: 0,
        }
    }

    /// Takes a request to set the desired phase; the newest request wins. `false` when it was taken before
    /// (requests are re-sent) or a newer one was (it was overtaken on the network): it changes nothing.
    pub fn request(&mut self, request: u64, pause: bool) -> bool {
        if request <= self.latest_request {
            return false;
        }
        self.latest_request = request;
        if !pause {
            // A pause no longer desired has no grace period running, whatever phase the job is in: a pause cut
            // short by a failover and resumed while restarting must not lend its start to the next pause.
            self.pausing = None;
        }
        self.desired_paused = pause;
        true
    }

    /// The replicas a source vertex with scale [min, max] runs while a pause is desired: 0, whatever `scale.min`
    /// says (NumaFlow #2412). NumaFlow 1.4.3-rc2 (#2398) clamped the pause's 0 into [min, max], so it came back as
    /// `scale.min`: the `pause-clamped-to-scale-min` canary.
    pub fn paused_source_replicas(&self, min: u16, max: u16) -> u16 {
        assert!(self.desired_paused, "asked for a paused source's replicas while no pause is desired");
        assert!(min <= max, "scale min {min} above max {max}");
        if self.canaries.has(Canary::PauseClampedToScaleMin) {
            return 0u16.clamp(min, max);
        }
        0
    }

    /// One step of a pause at `now_ms`: `sources_running` replicas still run; the buffers hold `pending` and
    /// `ack_pending` records; `quiet`: every input delivered its pause or end.
    pub fn step(
        &mut self,
        now_ms: u64,
        sources_running: u16,
        quiet: bool,
        pending: u64,
        ack_pending: u64,
    ) -> (PauseStep, bool) {
        let p = self.pausing.get_or_insert(Pausing { since_ms: now_ms, last_check: None });
        // The drain check runs only once no source replica runs.
        let drained = sources_running == 0 && quiet && pending == 0 && ack_pending == 0;
        let check = (sources_running, pending, ack_pending, drained);
        let changed = p.last_check != Some(check);
        p.last_check = Some(check);
        let step = if drained {
            PauseStep::Pause { drained: true }
        } else if now_ms >= p.since_ms + self.grace_ms {
            PauseStep::Pause { drained: false }
        } else {
            PauseStep::Wait
        };
        (step, changed)
    }

    /// The pause completed: PAUSED with this flag.
    pub fn paused(&mut self, drained: bool) {
        self.pausing = None;
        self.drained_on_pause = drained;
    }

    /// The job leaves PAUSED (or gives up PAUSING): returns whether the flag changed.
    pub fn resumed(&mut self) -> bool {
        self.pausing = None;
        if self.canaries.has(Canary::DrainedFlagKeptOnResume) {
            return false;
        }
        std::mem::replace(&mut self.drained_on_pause, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_takes_sources_to_zero_and_drains() {
        let mut l = Lifecycle::new(Canaries::NONE, 1_000);
        assert!(l.request(1, true));
        assert!(!l.request(1, false), "a request is taken once");
        assert!(l.request(3, true));
        assert!(!l.request(2, false), "an overtaken request changes nothing");
        assert!(l.desired_paused);
        assert_eq!(l.paused_source_replicas(3, 6), 0, "pause overrides scale.min");
        assert_eq!(l.step(0, 3, false, 0, 0).0, PauseStep::Wait);
        assert_eq!(l.step(10, 0, true, 0, 0).0, PauseStep::Pause { drained: true });
        l.paused(true);
        assert!(l.resumed(), "resume clears the flag");
        assert!(!l.drained_on_pause);
    }

    #[test]
    fn a_resume_ends_the_grace_period_of_a_pause_in_progress_whatever_the_phase() {
        let mut l = Lifecycle::new(Canaries::NONE, 1_000);
        l.request(1, true);
        assert_eq!(l.step(0, 1, false, 5, 0).0, PauseStep::Wait, "pausing since 0");
        // A failover interrupts the pause and the resume comes while restarting: `resumed` is never called.
        l.request(2, false);
        l.request(3, true);
        assert_eq!(l.step(5_000, 1, false, 5, 0).0, PauseStep::Wait, "the new pause's grace starts at 5000");
        assert_eq!(l.step(6_000, 1, false, 5, 0).0, PauseStep::Pause { drained: false }, "and ends at 6000");
    }

    #[test]
    fn the_canaries_break_their_parts() {
        let mut clamp = Lifecycle::new(Canaries::NONE.with(Canary::PauseClampedToScaleMin), 1_000);
        clamp.request(1, true);
        assert_eq!(clamp.paused_source_replicas(3, 6), 3);
        assert_eq!(clamp.step(0, 3, true, 0, 0).0, PauseStep::Wait, "3 source replicas still run: no drain check");
        assert_eq!(
            clamp.step(1_000, 3, true, 0, 0).0,
            PauseStep::Pause { drained: false },
            "grace passed, never drained"
        );
        let mut kept = Lifecycle::new(Canaries::NONE.with(Canary::DrainedFlagKeptOnResume), 1_000);
        kept.paused(true);
        assert!(!kept.resumed());
        assert!(kept.drained_on_pause);
    }
}
