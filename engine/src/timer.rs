//! A deadline that puts one timer into the simulated runtime, not one per poll.
//!
//! madsim's `Sleep` adds a timer to the runtime's heap every time it is polled while pending, and a timer is never
//! taken out: a sleep inside a `select!` loop that wakes for other reasons piles timers up, and a `timeout` that
//! completes early leaves its timer behind, to fire later as a spurious wakeup of its task. A [`Deadline`] registers
//! a timer only when none of its own is pending that fires at or before the deadline, so a loop can keep one
//! deadline, [`Deadline::reset`] it as often as it likes, and poll it on every turn.
//!
//! It is cancel-safe and `Unpin`: `&mut deadline` goes into a `select!` branch as is.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio::time::{Instant, Sleep};

/// The simulated clock, read straight from the runtime. `Instant::now` gets the same value through madsim's
/// interposed `clock_gettime`, converting it to a `timespec` and back: twice the instructions, on paths that read the
/// clock once per record.
pub fn now() -> Instant {
    madsim::time::TimeHandle::current().now_instant()
}

/// What a registered timer wakes: it notes that it rang, then wakes the task that waits. A poll covered by a timer
/// that has not rung needs no look at the clock (reading the simulated clock takes the runtime's clock lock, which a
/// busy loop pays for on every poll).
struct Alarm {
    rung: AtomicBool,
    waker: Mutex<Waker>,
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.rung.store(true, Ordering::SeqCst);
        self.waker.lock().expect("alarm lock").wake_by_ref();
    }
}

/// A point in simulated time to wait for; see the module's documentation.
pub struct Deadline {
    at: Instant,
    sleep: Pin<Box<Sleep>>,
    /// The timer registered last: when it rings, and its alarm.
    armed: Option<(Instant, Arc<Alarm>)>,
}

impl Deadline {
    /// A deadline at `at` (in the past: ready at once).
    pub fn at(at: Instant) -> Deadline {
        Deadline { at, sleep: Box::pin(tokio::time::sleep_until(at)), armed: None }
    }

    /// A deadline `duration` from now.
    pub fn after(duration: std::time::Duration) -> Deadline {
        Deadline::at(now() + duration)
    }

    /// Moves the deadline; registers nothing until it is polled.
    pub fn reset(&mut self, at: Instant) {
        self.at = at;
    }

    /// When it is due.
    pub fn deadline(&self) -> Instant {
        self.at
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // A timer of ours that has not rung and rings by the deadline will wake this task: nothing to do but make
        // sure it wakes the task polling now.
        if let Some((rings, alarm)) = &this.armed {
            if *rings <= this.at && !alarm.rung.load(Ordering::SeqCst) {
                let mut waker = alarm.waker.lock().expect("alarm lock");
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                return Poll::Pending;
            }
        }
        if now() >= this.at {
            return Poll::Ready(());
        }
        let alarm = Arc::new(Alarm { rung: AtomicBool::new(false), waker: Mutex::new(cx.waker().clone()) });
        let waker = Waker::from(alarm.clone());
        this.sleep.as_mut().reset(this.at);
        let polled = this.sleep.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending(), "a sleep until a deadline still ahead is pending");
        this.armed = Some((this.at, alarm));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deadline_is_due_at_its_time_however_often_it_is_polled_or_reset() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        runtime.block_on(async {
            let start = Instant::now();
            let mut deadline = Deadline::after(Duration::from_millis(100));
            let mut ticks = tokio::time::interval(Duration::from_millis(7));
            let mut turns = 0;
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = ticks.tick() => turns += 1,
                }
            }
            assert_eq!(start.elapsed().as_millis(), 100, "due at its time, not a tick later");
            assert!(turns >= 14, "polled on every tick meanwhile: {turns}");
            // Moved later while pending: it waits for the new time, not the old one.
            let start = Instant::now();
            let mut deadline = Deadline::after(Duration::from_millis(50));
            tokio::select! {
                biased;
                _ = &mut deadline => panic!("not due yet"),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            deadline.reset(start + Duration::from_millis(80));
            (&mut deadline).await;
            assert_eq!(start.elapsed().as_millis(), 80);
            // Moved earlier: the earlier time counts.
            let start = Instant::now();
            let mut deadline = Deadline::after(Duration::from_millis(500));
            tokio::select! {
                biased;
                _ = &mut deadline => panic!("not due yet"),
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            deadline.reset(start + Duration::from_millis(20));
            (&mut deadline).await;
            assert_eq!(start.elapsed().as_millis(), 20);
        });
    }
}
