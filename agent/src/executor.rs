//! Where plugin code runs, apart from the agent: the [`Executor`] (its own
//! threads, never the runtime that serves the API, the scheduler, the
//! watcher and the store) and the [`FairGate`] that admits runs to it
//! under `max_concurrent_runs`, cheapest check first, with places kept for
//! quicker tiers of checks.
//!
//! Guest code yields to the executor at every epoch tick (see
//! `warden_runtime`'s sandbox), so runs admitted together share its
//! threads round-robin; the gate decides who is admitted when more are
//! due than may run. It orders waiters by each check's recent run time, so
//! a check that runs for milliseconds is never queued behind checks that
//! spin until their timeout.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// The threads plugin runs execute on.
pub struct Executor {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Executor {
    /// One worker thread per core (at least two), named `warden-plugin`.
    pub fn new() -> std::io::Result<Executor> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        // A spinning plugin's poll lasts one epoch tick (5 ms). Tokio looks
        // at newly spawned and cross-thread-woken tasks, and at I/O and
        // timers, only every 61 polls by default: 300 ms behind spinners,
        // several times per run. Every other poll keeps a short run's
        // waits to a few ticks.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("warden-plugin")
            .global_queue_interval(2)
            .event_interval(2)
            .enable_all()
            .build()?;
        Ok(Executor {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Starts `work` on the executor.
    pub fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.handle.spawn(work)
    }

    /// Runs `work` on the executor and waits for it. A panic in host code
    /// comes back as an error (the agent's fault, not the plugin's).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        self.handle.spawn(work).await.map_err(|e| {
            if e.is_panic() {
                panic_message(&*e.into_panic())
            } else {
                "the agent stopped the run".to_string()
            }
        })
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("the agent failed while running the plugin (a bug in Warden): {what}")
}

/// Awaits `work` where it is (already on the executor), a panic in it
/// coming back as an error like [`Executor::run`]'s.
pub async fn catch_panic<T>(work: impl Future<Output = T>) -> Result<T, String> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic_message(&*panic))),
        }
    })
    .await
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime from async code (even one of its own tasks,
        // which may hold the last reference to the agent) would panic, so a
        // plain thread shuts it down; runs still in flight past the
        // shutdown grace are abandoned.
        if let Some(runtime) = self.runtime.take() {
            let _ = std::thread::Builder::new()
                .name("warden-plugin-stop".into())
                .spawn(move || runtime.shutdown_background());
        }
    }
}

/// Checks are tiered by their recent mean run time: below the first bound
/// quick, below the second medium, else heavy.
pub const TIER_BOUNDS: [Duration; 2] = [Duration::from_millis(50), Duration::from_secs(1)];
/// The share of `max_concurrent_runs` that runs of at least tier 1
/// (medium or heavy) and of tier 2 (heavy) may hold, as (numerator,
/// denominator), at least one place each: so quick checks always find a
/// place however many slow checks are due, and medium ones beside heavy
/// ones that spin to their timeouts.
pub const TIER_SHARES: [(usize, usize); 2] = [(7, 8), (3, 4)];

/// Admits at most `limit` runs at once; waiters go cheapest first, and
/// slower tiers never hold the last places (see [`TIER_SHARES`]).
pub struct FairGate {
    inner: Mutex<GateInner>,
}

struct GateInner {
    free: usize,
    /// Runs held of at least tier 1 and of tier 2.
    held: [usize; 2],
    caps: [usize; 2],
    seq: u64,
    /// (recent cost in µs, arrival) → who waits.
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    waiters: HashMap<u64, (u8, oneshot::Sender<()>)>,
    /// Each check's recent run time, µs (an exponentially weighted mean).
    cost: HashMap<String, u64>,
}

/// The tier of a check whose recent mean run time is `cost_us`.
fn tier(cost_us: u64) -> u8 {
    TIER_BOUNDS
        .iter()
        .filter(|b| cost_us >= b.as_micros() as u64)
        .count() as u8
}

impl GateInner {
    fn admissible(&self, tier: u8) -> bool {
        self.free > 0 && (0..usize::from(tier)).all(|t| self.held[t] < self.caps[t])
    }

    /// Takes a place for `check` if it may have one now (its tier), else
    /// says its tier and cost for the queue.
    fn try_take(&mut self, check: &str) -> Result<u8, (u8, u64)> {
        let cost = self.cost.get(check).copied().unwrap_or(0);
        let tier = tier(cost);
        if self.admissible(tier) {
            self.take(tier);
            Ok(tier)
        } else {
            Err((tier, cost))
        }
    }

    fn take(&mut self, tier: u8) {
        self.free -= 1;
        for t in 0..usize::from(tier) {
            self.held[t] += 1;
        }
    }

    fn give_back(&mut self, tier: u8) {
        self.free += 1;
        for t in 0..usize::from(tier) {
            self.held[t] -= 1;
        }
    }

    /// Hands free places to the cheapest waiters that may take them.
    fn dispatch(&mut self) {
        let mut skipped = Vec::new();
        while self.free > 0 {
            let Some(Reverse((cost, seq))) = self.queue.pop() else {
                break;
            };
            let Some(&(tier, _)) = self.waiters.get(&seq) else {
                continue;
            };
            if !self.admissible(tier) {
                skipped.push(Reverse((cost, seq)));
                continue;
            }
            let (_, tx) = self.waiters.remove(&seq).expect("looked up above");
            self.take(tier);
            if tx.send(()).is_err() {
                self.give_back(tier);
            }
        }
        self.queue.extend(skipped);
    }
}

/// One admitted run; dropping it admits the next waiter.
pub struct Permit {
    gate: Arc<FairGate>,
    tier: u8,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release(self.tier);
    }
}

impl FairGate {
    pub fn new(limit: usize) -> FairGate {
        let caps = TIER_SHARES.map(|(n, d)| (limit * n / d).max(1));
        FairGate {
            inner: Mutex::new(GateInner {
                free: limit,
                held: [0; 2],
                caps,
                seq: 0,
                queue: BinaryHeap::new(),
                waiters: HashMap::new(),
                cost: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for `check` now, if one is free and nobody it must let go
    /// first waits.
    pub fn try_acquire(self: &Arc<Self>, check: &str) -> Option<Permit> {
        let tier = self.lock().try_take(check).ok()?;
        Some(Permit {
            gate: self.clone(),
            tier,
        })
    }

    /// Waits until `check` may run.
    pub async fn acquire(self: Arc<Self>, check: &str) -> Permit {
        let (rx, tier) = {
            let mut g = self.lock();
            let (tier, cost) = match g.try_take(check) {
                Ok(tier) => {
                    drop(g);
                    return Permit { gate: self, tier };
                }
                Err(waits) => waits,
            };
            g.seq += 1;
            let seq = g.seq;
            let (tx, rx) = oneshot::channel();
            g.queue.push(Reverse((cost, seq)));
            g.waiters.insert(seq, (tier, tx));
            (rx, tier)
        };
        let mut waiting = Waiting {
            gate: &self,
            rx,
            tier,
            admitted: false,
        };
        // The sender is dropped only with the gate, which outlives us.
        let _ = (&mut waiting.rx).await;
        waiting.admitted = true;
        drop(waiting);
        Permit { gate: self, tier }
    }

    /// Records how long one of `check`'s runs took.
    pub fn record(&self, check: &str, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let mut g = self.lock();
        match g.cost.get_mut(check) {
            Some(cost) => *cost = *cost / 2 + us / 2,
            None => {
                g.cost.insert(check.to_string(), us);
            }
        }
    }

    fn release(&self, tier: u8) {
        let mut g = self.lock();
        g.give_back(tier);
        g.dispatch();
    }
}

/// A waiter that may be dropped before or after it was admitted.
struct Waiting<'a> {
    gate: &'a FairGate,
    rx: oneshot::Receiver<()>,
    tier: u8,
    admitted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        // Cancelled: if the place was already handed over, pass it on.
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.gate.release(self.tier);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cheapest_waiter_is_admitted_first() {
        let gate = Arc::new(FairGate::new(1));
        gate.record("spinner", Duration::from_secs(10));
        gate.record("trivial", Duration::from_millis(1));
        let first = gate.clone().acquire("spinner").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for name in ["spinner", "spinner", "trivial"] {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = gate.acquire(name).await;
                order.lock().unwrap().push(name);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["trivial", "spinner", "spinner"]);
    }

    #[tokio::test]
    async fn slow_tiers_leave_places_to_quick_checks() {
        let gate = Arc::new(FairGate::new(4));
        gate.record("spinner", Duration::from_secs(5));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(gate.clone().acquire("spinner").await);
        }
        // The fourth place is not for a heavy check...
        let g = gate.clone();
        let mut heavy = tokio::spawn(async move {
            let _p = g.acquire("spinner").await;
        });
        tokio::task::yield_now().await;
        assert!(futures_poll_pending(&mut heavy).await);
        // ...but a light one gets it at once.
        assert_eq!((tier(1_000), tier(100_000), tier(5_000_000)), (0, 1, 2));
        let light = tokio::time::timeout(Duration::from_secs(5), gate.clone().acquire("trivial"))
            .await
            .expect("a light check is admitted beside three heavy ones");
        drop(light);
        drop(held.pop());
        tokio::time::timeout(Duration::from_secs(5), heavy)
            .await
            .expect("the heavy waiter runs once a heavy place frees")
            .unwrap();
    }

    /// Whether `task` is still pending after a moment.
    async fn futures_poll_pending(task: &mut tokio::task::JoinHandle<()>) -> bool {
        tokio::time::timeout(Duration::from_millis(100), task)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_cancelled_waiter_passes_its_permit_on() {
        let gate = Arc::new(FairGate::new(1));
        let held = gate.clone().acquire("a").await;
        let g = gate.clone();
        let cancelled = tokio::spawn(async move {
            let _p = g.acquire("b").await;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        cancelled.abort();
        let _ = cancelled.await;
        drop(held);
        // Were the permit lost, this would wait forever.
        tokio::time::timeout(Duration::from_secs(5), gate.clone().acquire("c"))
            .await
            .expect("the permit came back");
    }

    #[tokio::test]
    async fn a_panic_in_host_code_is_an_error_not_a_crash() {
        let executor = Executor::new().unwrap();
        let err = executor.run(async { panic!("boom") }).await;
        assert!(matches!(err, Err(e) if e.contains("boom")));
        assert_eq!(executor.run(async { 7 }).await, Ok(7));
        let err = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("bang")
        })
        .await;
        assert!(matches!(err, Err(e) if e.contains("bang")));
    }
}
