//! Joining many futures deterministically.
//!
//! `futures::future::try_join_all` joins up to 30 futures by polling all of them on every wake, and more than 30
//! through `FuturesUnordered`. Under madsim the second path is not deterministic: a source replica owning 31
//! partitions or more ran differently from one run to the next with the same seed (found with `--check-determinism`
//! on a 31-partition job; 30 partitions never diverged; the same job with this join never does). [`try_join_in_order`]
//! keeps every future in its slot and polls only those woken since the last turn, in slot order: one poll per wake
//! however many are joined, and the order is the futures', never the allocator's or a queue's.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Slots woken since the last turn, each once (a wake allocates nothing: the buffers are reused turn after turn).
#[derive(Default)]
struct WokenSlots {
    list: Vec<usize>,
    flagged: Vec<bool>,
}

impl WokenSlots {
    fn wake(&mut self, slot: usize) {
        if !self.flagged[slot] {
            self.flagged[slot] = true;
            self.list.push(slot);
        }
    }

    /// Moves the woken slots, in slot order, into `turn` (emptied first).
    fn take_into(&mut self, turn: &mut Vec<usize>) {
        turn.clear();
        std::mem::swap(&mut self.list, turn);
        turn.sort_unstable();
        for &slot in turn.iter() {
            self.flagged[slot] = false;
        }
    }
}

/// What the slots' wakers share: which slots were woken, and the task that polls the join.
#[derive(Default)]
struct Woken {
    slots: Mutex<WokenSlots>,
    parent: Mutex<Option<Waker>>,
}

/// The waker of one slot: notes the slot, then wakes the joining task.
struct SlotWaker {
    slot: usize,
    woken: Arc<Woken>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.slots.lock().expect("woken lock").wake(self.slot);
        if let Some(parent) = self.woken.parent.lock().expect("parent lock").as_ref() {
            parent.wake_by_ref();
        }
    }
}

type Slot<'a, T, E> = Option<Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>>;

/// Runs every future to its end and returns their outputs in order, or the first error (in slot order among those
/// that failed in one turn), dropping the others. Deterministic: see the module's documentation.
pub async fn try_join_in_order<'a, T, E, F>(futures: impl IntoIterator<Item = F>) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>> + Send + 'a,
    T: Send + 'a,
    E: Send + 'a,
{
    let mut slots: Vec<Slot<'a, T, E>> = futures.into_iter().map(|f| Some(Box::pin(f) as _)).collect();
    let woken = Arc::new(Woken::default());
    let wakers: Vec<Waker> =
        (0..slots.len()).map(|slot| Waker::from(Arc::new(SlotWaker { slot, woken: woken.clone() }))).collect();
    let mut outputs: Vec<Option<T>> = (0..slots.len()).map(|_| None).collect();
    let mut left = slots.len();
    // Every slot is polled once at first.
    {
        let mut woken = woken.slots.lock().expect("woken lock");
        woken.flagged = vec![false; slots.len()];
        (0..slots.len()).for_each(|slot| woken.wake(slot));
    }
    let mut turn: Vec<usize> = Vec::with_capacity(slots.len());
    std::future::poll_fn(move |cx| {
        {
            let mut parent = woken.parent.lock().expect("parent lock");
            if !parent.as_ref().is_some_and(|p| p.will_wake(cx.waker())) {
                *parent = Some(cx.waker().clone());
            }
        }
        // One turn per poll: a slot woken during the turn wakes this task again, so a future that keeps waking
        // itself yields to the runtime like any task instead of spinning here.
        woken.slots.lock().expect("woken lock").take_into(&mut turn);
        for &slot in turn.iter() {
            let Some(future) = slots[slot].as_mut() else { continue };
            match future.as_mut().poll(&mut Context::from_waker(&wakers[slot])) {
                Poll::Pending => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(value)) => {
                    slots[slot] = None;
                    outputs[slot] = Some(value);
                    left -= 1;
                }
            }
        }
        if left > 0 {
            return Poll::Pending;
        }
        let done: Vec<T> = outputs.iter_mut().map(|o| o.take().expect("every slot finished")).collect();
        Poll::Ready(Ok(done))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn outputs_come_in_order_and_the_first_error_ends_the_join() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(7, madsim::Config::default());
        runtime.block_on(async {
            // 40 futures (more than futures' small join), finishing in the reverse of their order.
            let sleepers = (0..40u64).map(|i| async move {
                tokio::time::sleep(Duration::from_millis(40 - i)).await;
                Ok::<u64, String>(i)
            });
            assert_eq!(try_join_in_order(sleepers).await, Ok((0..40).collect::<Vec<_>>()));
            let failing = (0..40u64).map(|i| async move {
                tokio::time::sleep(Duration::from_millis(i)).await;
                if i == 5 {
                    Err(format!("{i} failed"))
                } else {
                    std::future::pending::<()>().await;
                    Ok(i)
                }
            });
            assert_eq!(try_join_in_order(failing).await, Err("5 failed".to_string()));
            let none: Vec<std::future::Ready<Result<u8, ()>>> = Vec::new();
            assert_eq!(try_join_in_order(none).await, Ok(vec![]), "nothing to join: done at once");
        });
    }
}
