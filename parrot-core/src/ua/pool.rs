//! The handler futures the driver polls itself ([`Pool`]), instead of each
//! becoming a tokio task.
//!
//! A call we answer keeps a future for its whole dialog: it waits for the
//! ACK, the BYE, the handle's commands, the media's events. Almost all of
//! that arrives through the driver (the core hands the ACK and the BYE to
//! the call), and as tasks, each such hand-over was a task woken from the
//! driver: with two runtime workers, tokio puts it where the idle worker is
//! woken to take it, about one more thread switch per message (see
//! BENCHMARKS.md, cps). Kept here, a future the driver wakes during its turn
//! is only queued, and polled on the same thread a moment later.
//!
//! The price is that handler code runs on the driver's task, which must not
//! be held up: a future whose poll takes longer than [`Pool::new`]'s `slow`
//! moves to a task of its own from then on (it is `Send`, and a future may
//! be polled from anywhere between polls), as does every future still here
//! when the driver stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Futures polled by their owner (the driver) when woken.
pub(crate) struct Pool<T> {
    slots: Vec<Slot<T>>,
    /// Indices of empty slots.
    free: Vec<u32>,
    live: usize,
    shared: Arc<Shared>,
    slow: Duration,
}

struct Slot<T> {
    /// Bumped each time the slot is emptied: a wake-up naming an older
    /// generation is for a future gone (done, or moved to a task).
    generation: u32,
    entry: Option<Entry<T>>,
}

struct Entry<T> {
    task: T,
    flag: Arc<SlotWaker>,
    waker: Waker,
}

/// What wakers on any thread share with the owner.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Woken futures, as (slot, generation), in the order they were woken.
    ready: Vec<(u32, u32)>,
    /// The owner's task, while it waits in [`Pool::ready`].
    owner: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing run under the lock can panic; a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The waker of one future in the pool.
struct SlotWaker {
    shared: Arc<Shared>,
    at: (u32, u32),
    /// Already in `ready` (cleared just before the future is polled).
    queued: AtomicBool,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let owner = {
            let mut s = self.shared.lock();
            s.ready.push(self.at);
            // Taken: the owner is woken once, however many futures wake
            // before it runs; it sets its waker again when it next waits.
            s.owner.take()
        };
        if let Some(w) = owner {
            w.wake();
        }
    }
}

impl<T> Pool<T>
where
    T: Future<Output = ()> + Unpin + Send + 'static,
{
    /// An empty pool; a poll longer than `slow` moves its future to a task.
    pub(crate) fn new(slow: Duration) -> Self {
        Pool {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            shared: Arc::default(),
            slow,
        }
    }

    /// How many futures are kept here.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Polls `task` for the first time, and keeps it if it is pending.
    pub(crate) fn add(&mut self, task: T) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                // Far below u32::MAX: one slot per live future.
                (self.slots.len() - 1) as u32
            }
        };
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        let flag = Arc::new(SlotWaker {
            shared: self.shared.clone(),
            at: (index, slot.generation),
            queued: AtomicBool::new(false),
        });
        let waker = Waker::from(flag.clone());
        slot.entry = Some(Entry { task, flag, waker });
        self.live += 1;
        self.poll_slot(index);
    }

    /// Polls every future woken since the last call (those woken meanwhile
    /// wait for the next); returns how many were polled.
    pub(crate) fn run_ready(&mut self) -> usize {
        let woken = std::mem::take(&mut self.shared.lock().ready);
        let mut polled = 0;
        for (index, generation) in woken {
            let current = self
                .slots
                .get(index as usize)
                .is_some_and(|s| s.generation == generation && s.entry.is_some());
            if current {
                self.poll_slot(index);
                polled += 1;
            }
        }
        polled
    }

    fn poll_slot(&mut self, index: u32) {
        let slow = self.slow;
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        let Some(entry) = slot.entry.as_mut() else {
            return;
        };
        // Before the poll: a wake-up during it queues the future again.
        entry.flag.queued.store(false, Ordering::Release);
        let started = Instant::now();
        let mut cx = Context::from_waker(&entry.waker);
        let done = Pin::new(&mut entry.task).poll(&mut cx).is_ready();
        let took = started.elapsed();
        if !done && took <= slow {
            return;
        }
        let gone = slot.entry.take();
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.live -= 1;
        if let (false, Some(entry)) = (done, gone) {
            tracing::debug!(
                took_us = took.as_micros() as u64,
                "handler poll too slow for the driver: moved to a task"
            );
            tokio::spawn(entry.task);
        }
    }

    /// Waits until a future here is woken. The owner calls
    /// [`Pool::disarm`] when it runs again for any other reason.
    pub(crate) fn ready(&self) -> impl Future<Output = ()> + '_ {
        // Only the shared part: the futures kept here need not be `Sync`.
        let shared: &Shared = &self.shared;
        std::future::poll_fn(move |cx| {
            let mut s = shared.lock();
            if s.ready.is_empty() {
                match &s.owner {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.owner = Some(cx.waker().clone()),
                }
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
    }

    /// The owner is running: a future woken now (by the owner's own work,
    /// most often) is only queued, not a wake-up of the running owner, which
    /// tokio would answer by scheduling it again and waking an idle worker.
    pub(crate) fn disarm(&self) {
        drop(self.shared.lock().owner.take());
    }

    /// Every future still here, moved to a task of its own (the owner stops).
    pub(crate) fn spawn_all(&mut self) {
        for slot in &mut self.slots {
            if let Some(entry) = slot.entry.take() {
                slot.generation = slot.generation.wrapping_add(1);
                tokio::spawn(entry.task);
            }
        }
        self.free.clear();
        self.slots.clear();
        self.live = 0;
    }
}

impl<T> Drop for Pool<T> {
    /// The driver itself was dropped (its runtime shut down) with futures
    /// still here. As tokio does for a task's future, each is dropped inside
    /// a guard: a handler's `Drop` that panics must not take the process
    /// down, which a second panic while the slots unwind would.
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(entry) = slot.entry.take() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(entry)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; done when `finish` is set.
    struct Probe {
        polls: Arc<AtomicUsize>,
        finish: Arc<AtomicBool>,
        wakers: Wakers,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.finish.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            self.wakers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cx.waker().clone());
            Poll::Pending
        }
    }

    type Wakers = Arc<Mutex<Vec<Waker>>>;

    /// A probe, its poll count, its "finish" switch and the wakers it was given.
    fn probe() -> (Probe, Arc<AtomicUsize>, Arc<AtomicBool>, Wakers) {
        let polls = Arc::new(AtomicUsize::new(0));
        let finish = Arc::new(AtomicBool::new(false));
        let wakers = Wakers::default();
        let p = Probe {
            polls: polls.clone(),
            finish: finish.clone(),
            wakers: wakers.clone(),
        };
        (p, polls, finish, wakers)
    }

    fn wake_last(w: &Mutex<Vec<Waker>>) {
        let last = w.lock().unwrap_or_else(|e| e.into_inner()).last().cloned();
        last.expect("registered a waker").wake();
    }

    #[tokio::test]
    async fn a_woken_future_is_polled_once_by_its_owner_and_leaves_when_done() {
        let mut pool = Pool::new(Duration::from_secs(60));
        let (p, polls, finish, wakers) = probe();
        pool.add(p);
        assert_eq!((polls.load(Ordering::SeqCst), pool.len()), (1, 1));
        // Nothing woken: nothing polled.
        assert_eq!(pool.run_ready(), 0);
        // Woken twice before the owner runs: polled once.
        wake_last(&wakers);
        wake_last(&wakers);
        assert_eq!(pool.run_ready(), 1);
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        finish.store(true, Ordering::SeqCst);
        wake_last(&wakers);
        assert_eq!(pool.run_ready(), 1);
        assert_eq!(pool.len(), 0);
        // A waker of the future gone (its slot reused) polls nothing.
        let (q, q_polls, _, _) = probe();
        pool.add(q);
        wake_last(&wakers);
        assert_eq!(pool.run_ready(), 0);
        assert_eq!(q_polls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_owner_is_woken_only_while_it_waits() {
        let mut pool = Pool::new(Duration::from_secs(60));
        let (p, _, _, wakers) = probe();
        pool.add(p);
        // Waiting: a wake-up from another thread ends the wait.
        let w = wakers.clone();
        let waker_thread = std::thread::spawn(move || wake_last(&w));
        pool.ready().await;
        let _ = waker_thread.join();
        assert_eq!(pool.run_ready(), 1);
        // Disarmed (the owner runs): a wake-up is only queued; the next wait ends at once.
        let owner_wakes = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let owner = Waker::from(Arc::new(Count(owner_wakes.clone())));
        let mut cx = Context::from_waker(&owner);
        let mut wait = Box::pin(pool.ready());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        drop(wait);
        pool.disarm();
        wake_last(&wakers);
        assert_eq!(owner_wakes.load(Ordering::SeqCst), 0);
        let mut wait = Box::pin(pool.ready());
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        drop(wait);
        assert_eq!(pool.run_ready(), 1);
        // Armed again: the next wake-up wakes the owner, once.
        let mut wait = Box::pin(pool.ready());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        drop(wait);
        wake_last(&wakers);
        wake_last(&wakers);
        assert_eq!(owner_wakes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_slow_future_moves_to_a_task_that_its_wakers_reach() {
        // Every poll is "slow" with a zero limit.
        let mut pool = Pool::new(Duration::ZERO);
        let (p, polls, finish, wakers) = probe();
        pool.add(p);
        assert_eq!(pool.len(), 0);
        // The task polls it again (registering the task's waker), then this wakes it.
        while polls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        finish.store(true, Ordering::SeqCst);
        wake_last(&wakers);
        while polls.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run_ready(), 0);
    }

    /// Pending forever; panics when dropped, counting the drops first.
    struct PanicsOnDrop(Arc<AtomicUsize>);

    impl Future for PanicsOnDrop {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("a handler's Drop panics");
        }
    }

    #[tokio::test]
    async fn dropping_the_pool_survives_futures_that_panic_when_dropped() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut pool = Pool::new(Duration::from_secs(1));
        pool.add(PanicsOnDrop(drops.clone()));
        pool.add(PanicsOnDrop(drops.clone()));
        assert_eq!(pool.len(), 2);
        // Unguarded, the second panic during the first's unwinding aborts the
        // process; guarded, both are dropped and this returns.
        drop(pool);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }
}
