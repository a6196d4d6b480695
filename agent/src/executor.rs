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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// The threads plugin runs execute on: one lane per core, each a
/// single-threaded tokio runtime on its own thread, and a pool apart for
/// compiling plugins.
///
/// A run stays on the lane it started on, with the tasks it spawns (the
/// HTTP client's connection, its body); a new run goes to the lane with
/// the fewest runs in flight. So a probe's steps wake only its own thread,
/// where a work-stealing pool woke an idle worker for each spawned task
/// and handed the response across threads (profile and figures in
/// docs/BENCHMARKS.md, issue 15).
pub struct Executor {
    lanes: Arc<[Lane]>,
    loads: Option<tokio::runtime::Runtime>,
    /// Dropped with the executor, which ends every lane.
    _stop: tokio::sync::watch::Sender<()>,
}

struct Lane {
    handle: tokio::runtime::Handle,
    /// Runs started here and not yet ended.
    load: AtomicUsize,
}

/// Takes a run off its lane's count when it ends (or is dropped).
struct Counted(Arc<[Lane]>, usize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0[self.1].load.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Executor {
    /// One lane per core (at least two), named `warden-plugin`, and as
    /// many compiling threads, named `warden-load`.
    pub fn new() -> std::io::Result<Executor> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let (stop, stopped) = tokio::sync::watch::channel(());
        let mut lanes = Vec::with_capacity(threads);
        for _ in 0..threads {
            // A spinning plugin's poll lasts one epoch tick (5 ms). Tokio
            // looks at tasks woken from other threads, and at I/O and
            // timers, only every 31 and 61 polls by default: a
            // short run would wait 150-300 ms behind spinners, several
            // times per run. Every other poll keeps its waits to a few
            // ticks.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .global_queue_interval(2)
                .event_interval(2)
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let mut stopped = stopped.clone();
            std::thread::Builder::new()
                .name("warden-plugin".into())
                .spawn(move || {
                    // Runs still in flight when the executor goes are
                    // dropped with the runtime, here, outside any task.
                    runtime.block_on(async move { while stopped.changed().await.is_ok() {} });
                })?;
            lanes.push(Lane {
                handle,
                load: AtomicUsize::new(0),
            });
        }
        let loads = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("warden-load")
            .enable_all()
            .build()?;
        Ok(Executor {
            lanes: lanes.into(),
            loads: Some(loads),
            _stop: stop,
        })
    }

    /// How many lanes it has (the default `shards` of a run).
    pub fn threads(&self) -> u32 {
        self.lanes.len() as u32
    }

    /// Starts `work` on the lane with the fewest runs in flight.
    pub fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        let lane = (0..self.lanes.len())
            .min_by_key(|&i| self.lanes[i].load.load(Ordering::Relaxed))
            .unwrap_or(0);
        self.lanes[lane].load.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(self.lanes.clone(), lane);
        self.lanes[lane].handle.spawn(async move {
            let _counted = counted;
            work.await
        })
    }

    /// Where the shards of a run go: each call the next lane, so the
    /// shards of one run spread over the cores.
    pub fn shard_placer(&self) -> impl Fn() -> tokio::runtime::Handle + Send + Sync + 'static {
        let (lanes, next) = (self.lanes.clone(), AtomicUsize::new(0));
        move || {
            lanes[next.fetch_add(1, Ordering::Relaxed) % lanes.len()]
                .handle
                .clone()
        }
    }

    /// Runs `work` on a lane and waits for it. A panic in host code comes
    /// back as an error (the agent's fault, not the plugin's).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        joined(self.spawn(work).await)
    }

    /// Runs `work` (loading a plugin: compiling takes a core for a while)
    /// on the compiling threads, never on a lane, and waits for it.
    pub async fn load<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        match &self.loads {
            Some(loads) => joined(loads.spawn(work).await),
            None => Err("the agent stopped the run".to_string()),
        }
    }
}

fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, String> {
    result.map_err(|e| {
        if e.is_panic() {
            panic_message(&*e.into_panic())
        } else {
            "the agent stopped the run".to_string()
        }
    })
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
        // The lanes stop on their own threads (`_stop` goes with the
        // executor). Dropping a runtime from async code (even one of its
        // own tasks, which may hold the last reference to the agent) would
        // panic, so a plain thread shuts the compiling pool down; runs
        // still in flight past the shutdown grace are abandoned.
        if let Some(runtime) = self.loads.take() {
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
/// denominator), rounded up: so quick checks always find a place however
/// many slow checks are due, and medium ones beside heavy ones that spin
/// to their timeouts. Rounded up, a small limit keeps no places back (of
/// 2 or 4 places a medium check may take all; of 16, 14).
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
    /// (tier, arrival) → who waits: quicker tiers first, and within a
    /// tier first come, first served (ordering by the cost itself would
    /// starve checks a few µs dearer than their peers under saturation).
    queue: BinaryHeap<Reverse<(u8, u64)>>,
    waiters: HashMap<u64, Waiter>,
    /// Each check's recent run time, µs (an exponentially weighted mean).
    cost: HashMap<String, u64>,
}

/// Work that runs once it has its place.
type Work = Box<dyn FnOnce(Permit) + Send>;

/// What a waiter gets its place through.
enum Waiter {
    /// A task awaiting [`FairGate::acquire`].
    Task(oneshot::Sender<()>),
    /// Work queued by [`FairGate::admit`], started by whoever frees the
    /// place (on the executor, when a run ends: no hop back to the agent).
    Work(Work),
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
    /// says its tier for the queue.
    fn try_take(&mut self, check: &str) -> Result<u8, u8> {
        // Not yet measured: medium, so a check that turns out to spin
        // cannot take the places kept for quick ones.
        let tier = self.cost.get(check).map_or(1, |&cost| tier(cost));
        if self.admissible(tier) {
            self.take(tier);
            Ok(tier)
        } else {
            Err(tier)
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

    /// Hands free places to the cheapest waiters that may take them; the
    /// queued work admitted is returned, to start once the lock is let go.
    fn dispatch(&mut self) -> Vec<(u8, Work)> {
        let mut skipped = Vec::new();
        let mut started = Vec::new();
        while self.free > 0 {
            let Some(Reverse((tier, seq))) = self.queue.pop() else {
                break;
            };
            if !self.admissible(tier) {
                skipped.push(Reverse((tier, seq)));
                continue;
            }
            let Some(waiter) = self.waiters.remove(&seq) else {
                continue;
            };
            self.take(tier);
            match waiter {
                Waiter::Task(tx) => {
                    if tx.send(()).is_err() {
                        self.give_back(tier);
                    }
                }
                Waiter::Work(work) => started.push((tier, work)),
            }
        }
        self.queue.extend(skipped);
        started
    }

    /// Queues a waiter of `tier`.
    fn wait(&mut self, tier: u8, waiter: Waiter) {
        self.seq += 1;
        let seq = self.seq;
        self.queue.push(Reverse((tier, seq)));
        self.waiters.insert(seq, waiter);
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
        let caps = TIER_SHARES.map(|(n, d)| (limit * n).div_ceil(d).max(1));
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

    /// Starts `work` with `check`'s place: here and now if the place is
    /// free, else wherever the place frees (on the executor, in the thread
    /// whose run ended). `work` must not block.
    pub fn admit(self: &Arc<Self>, check: &str, work: impl FnOnce(Permit) + Send + 'static) {
        let mut g = self.lock();
        match g.try_take(check) {
            Ok(tier) => {
                drop(g);
                work(Permit {
                    gate: self.clone(),
                    tier,
                });
            }
            Err(tier) => g.wait(tier, Waiter::Work(Box::new(work))),
        }
    }

    /// Waits until `check` may run.
    pub async fn acquire(self: Arc<Self>, check: &str) -> Permit {
        let (rx, tier) = {
            let mut g = self.lock();
            let tier = match g.try_take(check) {
                Ok(tier) => {
                    drop(g);
                    return Permit { gate: self, tier };
                }
                Err(waits) => waits,
            };
            let (tx, rx) = oneshot::channel();
            g.wait(tier, Waiter::Task(tx));
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

    /// Up to `n` more places for a run of `check` that can use them (a
    /// sharded run), taken now or not at all: only places no waiter is
    /// queued for, within the check's tier. Never waits, so a run never
    /// holds places while it waits for more.
    pub fn try_more(self: &Arc<Self>, check: &str, n: usize) -> Vec<Permit> {
        let mut g = self.lock();
        let mut more = Vec::new();
        while more.len() < n && g.queue.is_empty() {
            let Ok(tier) = g.try_take(check) else {
                break;
            };
            more.push(Permit {
                gate: self.clone(),
                tier,
            });
        }
        more
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

    fn release(self: &Arc<Self>, tier: u8) {
        let started = {
            let mut g = self.lock();
            g.give_back(tier);
            g.dispatch()
        };
        for (tier, work) in started {
            work(Permit {
                gate: self.clone(),
                tier,
            });
        }
    }
}

/// A waiter that may be dropped before or after it was admitted.
struct Waiting<'a> {
    gate: &'a Arc<FairGate>,
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
    async fn a_sharded_run_takes_only_places_no_one_waits_for() {
        let gate = Arc::new(FairGate::new(4));
        gate.record("scan", Duration::from_secs(10));
        let first = gate.clone().acquire("scan").await;
        // Heavy checks may hold three of four places: two more, not three.
        let more = gate.try_more("scan", 8);
        assert_eq!(more.len(), 2);
        drop(more);
        // With someone queued, no extra place is taken, however many are
        // free: the waiter comes first.
        let held: Vec<Permit> = gate.try_more("scan", 2);
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.acquire("scan").await })
        };
        tokio::task::yield_now().await;
        assert!(gate.try_more("quick", 1).is_empty());
        assert!(gate.try_more("scan", 1).is_empty());
        drop(held);
        drop(first);
        drop(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn unmeasured_checks_leave_the_quick_places_alone() {
        let gate = Arc::new(FairGate::new(8));
        gate.record("quick", Duration::from_millis(1));
        // Seven of eight places (medium's share) to checks never measured...
        let mut held = Vec::new();
        for i in 0..7 {
            held.push(gate.clone().acquire(&format!("new-{i}")).await);
        }
        let started = Arc::new(Mutex::new(Vec::new()));
        let s = started.clone();
        gate.admit("new-7", move |p| s.lock().unwrap().push(("new-7", p)));
        assert!(
            started.lock().unwrap().is_empty(),
            "the last place is not for an unmeasured check"
        );
        // ...and the last to a check known to be quick.
        let s = started.clone();
        gate.admit("quick", move |p| s.lock().unwrap().push(("quick", p)));
        assert_eq!(started.lock().unwrap().len(), 1);
        assert_eq!(started.lock().unwrap()[0].0, "quick");
    }

    #[tokio::test]
    async fn a_small_limit_keeps_no_places_back() {
        let gate = Arc::new(FairGate::new(2));
        gate.record("medium", Duration::from_millis(400));
        let first = gate.clone().acquire("medium").await;
        let second = tokio::time::timeout(Duration::from_secs(5), gate.clone().acquire("medium"))
            .await
            .expect("both of two places go to medium checks");
        drop((first, second));
    }

    #[tokio::test]
    async fn within_a_tier_first_come_first_served() {
        let gate = Arc::new(FairGate::new(1));
        // Both quick; "b" measured a little cheaper, "a" came first.
        gate.record("a", Duration::from_micros(300));
        gate.record("b", Duration::from_micros(200));
        let held = gate.clone().acquire("x").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        for name in ["a", "b", "a"] {
            let order = order.clone();
            gate.admit(name, move |_permit| order.lock().unwrap().push(name));
        }
        assert!(
            order.lock().unwrap().is_empty(),
            "queued while the place is held"
        );
        drop(held);
        assert_eq!(*order.lock().unwrap(), ["a", "b", "a"]);
    }

    #[tokio::test]
    async fn queued_work_starts_where_the_place_frees() {
        let gate = Arc::new(FairGate::new(1));
        let (tx, rx) = std::sync::mpsc::channel();
        // Free now: started at once, here.
        let t = tx.clone();
        gate.admit("a", move |p| {
            t.send((std::thread::current().id(), p)).unwrap()
        });
        let (here, first) = rx.recv().unwrap();
        assert_eq!(here, std::thread::current().id());
        gate.admit("b", move |p| {
            tx.send((std::thread::current().id(), p)).unwrap()
        });
        assert!(rx.try_recv().is_err(), "the only place is held");
        // The thread that frees the place starts the queued work.
        let freer = std::thread::spawn(move || drop(first));
        let freer_id = freer.thread().id();
        freer.join().unwrap();
        let (started_on, _second) = rx.recv().unwrap();
        assert_eq!(started_on, freer_id);
    }

    #[tokio::test]
    async fn slow_tiers_leave_places_to_quick_checks() {
        let gate = Arc::new(FairGate::new(4));
        gate.record("spinner", Duration::from_secs(5));
        gate.record("trivial", Duration::from_millis(1));
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
    async fn runs_spread_over_the_lanes_and_keep_their_tasks_on_their_own() {
        let executor = Executor::new().unwrap();
        assert!(executor.threads() >= 2);
        // Two runs in flight at once go to two lanes; what each spawns
        // runs on its own lane's thread.
        let (release, held) = tokio::sync::watch::channel(false);
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let mut held = held.clone();
                executor.spawn(async move {
                    let me = std::thread::current().id();
                    let child = tokio::spawn(async { std::thread::current().id() });
                    let _ = held.wait_for(|go| *go).await;
                    (me, child.await.unwrap())
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        let mut lanes = Vec::new();
        for run in runs {
            let (me, child) = run.await.unwrap();
            assert_eq!(me, child, "a run's task left its lane");
            lanes.push(me);
        }
        assert_ne!(lanes[0], lanes[1], "two runs at once shared a lane");
        assert!(
            executor
                .lanes
                .iter()
                .all(|l| l.load.load(Ordering::Relaxed) == 0)
        );
        // Shards go to the lanes in turn.
        let place = executor.shard_placer();
        let a = place()
            .spawn(async { std::thread::current().id() })
            .await
            .unwrap();
        let b = place()
            .spawn(async { std::thread::current().id() })
            .await
            .unwrap();
        assert_ne!(a, b);
        // Loading runs on neither lane.
        let loaded = executor
            .load(async { std::thread::current().id() })
            .await
            .unwrap();
        assert!(!lanes.contains(&loaded));
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
