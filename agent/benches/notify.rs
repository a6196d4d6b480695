//! Notification bench: 1,000 checks change state in one burst and every
//! notification goes to a local webhook, while the schedule keeps going.
//!
//! 1,000 checks (`hostile`, mode `read` of one file) `@every 1s`,
//! `failure_threshold = 1`, all routed to one webhook notifier pointing at
//! an HTTP server on 127.0.0.1 in its own thread (answers 200 at once).
//! After 5 s of OK runs the file is removed: the next round turns every
//! check `unknown` (1,000 firing notifications); once they are delivered the
//! file comes back (1,000 resolved). Reported per burst: notifications
//! delivered, delivery rate, delay from queued to delivered (p50/p99/max),
//! and the scheduling lateness of every run in the burst (p50/p99/max).
//!
//! `cargo bench -p warden --bench notify`; figures in docs/BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::pct;
use warden::Agent;
use warden::config::Config;
use warden::store::{RunFilter, now_ms};

const CHECKS: usize = 1000;

/// A webhook that answers 200 to every POST, counting them.
fn receiver() -> (u16, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let c = count.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |_body: axum::body::Bytes| {
                    let c = c.clone();
                    async move {
                        c.fetch_add(1, Ordering::Relaxed);
                        "{}"
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (port, count)
}

fn config(dir: &Path, port: u16, hook: u16) -> Config {
    let data = dir.join("data");
    let mut text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nmax_concurrent_runs = 64\n\
         [alerting]\nnotify = [\"hook\"]\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/hook\"\n"
    );
    for i in 0..CHECKS {
        text.push_str(&format!(
            "[[check]]\nname = \"c{i:04}\"\nplugin = \"hostile\"\nschedule = \"@every 1s\"\nfailure_threshold = 1\n\
             allow.read_dirs = [{:?}]\nconfig = {{ mode = \"read\", path = {:?} }}\n",
            data.display().to_string(),
            data.join("up").display().to_string()
        ));
    }
    Config::parse(&text, "bench.toml", dir).expect("bench config")
}

/// Waits until `count` reaches `n` (or 60 s); the time it took.
async fn delivered(count: &AtomicU64, n: u64) -> Duration {
    let t0 = Instant::now();
    while count.load(Ordering::Relaxed) < n && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

fn report(
    agent: &Agent,
    label: &str,
    from_ms: i64,
    to_ms: i64,
    took: Duration,
    expected: u64,
    got: u64,
) {
    let notes = agent.store.notifications(None, 10_000).unwrap();
    let mut delay: Vec<f64> = notes
        .iter()
        .filter(|n| n.created_unix_ms >= from_ms && n.created_unix_ms <= to_ms)
        .filter_map(|n| n.delivered_unix_ms.map(|d| (d - n.created_unix_ms) as f64))
        .collect();
    delay.sort_by(f64::total_cmp);
    // From the first notification queued to the last delivered.
    let in_burst = || {
        notes
            .iter()
            .filter(|n| n.created_unix_ms >= from_ms && n.created_unix_ms <= to_ms)
    };
    let first = in_burst().map(|n| n.created_unix_ms).min().unwrap_or(0);
    let last = in_burst()
        .filter_map(|n| n.delivered_unix_ms)
        .max()
        .unwrap_or(0);
    let span = Duration::from_millis((last - first).max(1) as u64);
    let mut lateness: Vec<f64> = Vec::new();
    let mut before = None;
    loop {
        let page = agent
            .store
            .runs(&RunFilter {
                since_ms: Some(from_ms),
                before_id: before,
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.id);
        lateness.extend(
            page.iter()
                .filter(|r| {
                    (r.run.scheduled_unix_ms as i64) >= from_ms
                        && (r.run.scheduled_unix_ms as i64) <= to_ms
                })
                .map(|r| {
                    r.run
                        .started_unix_ms
                        .saturating_sub(r.run.scheduled_unix_ms) as f64
                }),
        );
    }
    lateness.sort_by(f64::total_cmp);
    println!("== {label}: {CHECKS} checks change state at once");
    println!(
        "notifications delivered   {got} of {expected}; first queued to last delivered {:.3} s ({:.0}/s); {:.2} s from the change",
        span.as_secs_f64(),
        delay.len() as f64 / span.as_secs_f64(),
        took.as_secs_f64()
    );
    println!(
        "queued -> delivered ms    n={} p50={:.0} p99={:.0} max={:.0}",
        delay.len(),
        pct(&delay, 0.5),
        pct(&delay, 0.99),
        delay.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "run lateness ms           n={} p50={:.0} p99={:.0} max={:.0}",
        lateness.len(),
        pct(&lateness, 0.5),
        pct(&lateness, 0.99),
        lateness.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() {
    common::two_threads().block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::copy(
            Path::new(env!("WARDEN_WASM_DIR")).join("hostile.wasm"),
            dir.path().join("plugins/hostile.wasm"),
        )
        .unwrap();
        std::fs::write(dir.path().join("data/up"), "up").unwrap();
        let (hook, count) = receiver();
        let port = 19_000 + (std::process::id() % 1000) as u16;
        // On a warm compiled-code cache, as a running agent is.
        {
            let first = Agent::start(config(dir.path(), port, hook)).await.unwrap();
            first.registry.wait_all().await;
        }
        let agent = Agent::start(config(dir.path(), port, hook)).await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(agent.clone().run_scheduler(stopped.clone()));
        tokio::spawn(warden::alerting::deliver(
            agent.alerting.clone(),
            agent.store.clone(),
            stopped,
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(count.load(Ordering::Relaxed), 0, "all OK so far");

        let t = now_ms();
        std::fs::remove_file(dir.path().join("data/up")).unwrap();
        let took = delivered(&count, CHECKS as u64).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        report(
            &agent,
            "firing",
            t,
            now_ms(),
            took,
            CHECKS as u64,
            count.load(Ordering::Relaxed),
        );

        let t = now_ms();
        std::fs::write(dir.path().join("data/up"), "up").unwrap();
        let took = delivered(&count, 2 * CHECKS as u64).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!();
        report(
            &agent,
            "resolved",
            t,
            now_ms(),
            took,
            CHECKS as u64,
            count.load(Ordering::Relaxed) - CHECKS as u64,
        );
        let _ = stop.send(true);
        agent.drain(Duration::from_secs(10)).await;
    });
}
