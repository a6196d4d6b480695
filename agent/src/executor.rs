//! Where plugin code runs, apart from the agent: the [`Executor`] (its own
//! threads, never the runtime that serves the API, the scheduler, the
//! watcher and the store) and the [`FairGate`] that admits runs to it
//! under `max_concurrent_runs`, cheapest check first.
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
use std::sync::Mutex;
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("warden-plugin")
            .enable_all()
            .build()?;
        Ok(Executor {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on the executor and waits for it. A panic in host code
    /// comes back as an error (the agent's fault, not the plugin's).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        self.handle.spawn(work).await.map_err(|e| {
            if e.is_panic() {
                let panic = e.into_panic();
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("the agent failed while running the plugin (a bug in Warden): {what}")
            } else {
                "the agent stopped the run".to_string()
            }
        })
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime from async code would panic; runs still in
        // flight past the shutdown grace are abandoned.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Admits at most `limit` runs at once; waiters go cheapest first.
pub struct FairGate {
    inner: Mutex<GateInner>,
}

struct GateInner {
    free: usize,
    seq: u64,
    /// (recent cost in µs, arrival) → who waits.
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    waiters: HashMap<u64, oneshot::Sender<()>>,
    /// Each check's recent run time, µs (an exponentially weighted mean).
    cost: HashMap<String, u64>,
}

/// One admitted run; dropping it admits the next waiter.
pub struct Permit<'a> {
    gate: &'a FairGate,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.release();
    }
}

impl FairGate {
    pub fn new(limit: usize) -> FairGate {
        FairGate {
            inner: Mutex::new(GateInner {
                free: limit,
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

    /// Waits until `check` may run.
    pub async fn acquire(&self, check: &str) -> Permit<'_> {
        let rx = {
            let mut g = self.lock();
            if g.free > 0 && g.queue.is_empty() {
                g.free -= 1;
                return Permit { gate: self };
            }
            let cost = g.cost.get(check).copied().unwrap_or(0);
            g.seq += 1;
            let seq = g.seq;
            let (tx, rx) = oneshot::channel();
            g.queue.push(Reverse((cost, seq)));
            g.waiters.insert(seq, tx);
            rx
        };
        let mut waiting = Waiting {
            gate: self,
            rx,
            admitted: false,
        };
        // The sender is dropped only with the gate, which outlives us.
        let _ = (&mut waiting.rx).await;
        waiting.admitted = true;
        Permit { gate: self }
    }

    /// Records how long one of `check`'s runs took.
    pub fn record(&self, check: &str, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let mut g = self.lock();
        let cost = g.cost.entry(check.to_string()).or_insert(us);
        *cost = *cost / 2 + us / 2;
    }

    fn release(&self) {
        let mut g = self.lock();
        while let Some(Reverse((_, seq))) = g.queue.pop() {
            if let Some(tx) = g.waiters.remove(&seq)
                && tx.send(()).is_ok()
            {
                return;
            }
        }
        g.free += 1;
    }
}

/// A waiter that may be dropped before or after it was admitted.
struct Waiting<'a> {
    gate: &'a FairGate,
    rx: oneshot::Receiver<()>,
    admitted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        // Cancelled: if the permit was already handed over, pass it on.
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_cheapest_waiter_is_admitted_first() {
        let gate = Arc::new(FairGate::new(1));
        gate.record("spinner", Duration::from_secs(10));
        gate.record("trivial", Duration::from_millis(1));
        let first = gate.acquire("spinner").await;
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
    async fn a_cancelled_waiter_passes_its_permit_on() {
        let gate = Arc::new(FairGate::new(1));
        let held = gate.acquire("a").await;
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
        tokio::time::timeout(Duration::from_secs(5), gate.acquire("c"))
            .await
            .expect("the permit came back");
    }

    #[tokio::test]
    async fn a_panic_in_host_code_is_an_error_not_a_crash() {
        let executor = Executor::new().unwrap();
        let err = executor.run(async { panic!("boom") }).await;
        assert!(matches!(err, Err(e) if e.contains("boom")));
        assert_eq!(executor.run(async { 7 }).await, Ok(7));
    }
}
