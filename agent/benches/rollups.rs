//! What rollups cost and how fast they answer.
//!
//! 1. **write cost**: runs recorded through the store at 5,000 runs/s
//!    (50 checks, paced every millisecond) for `WARDEN_BENCH_SECS`
//!    (default 10) seconds, with rollups kept and without, alternating,
//!    twice each: this process's CPU per stored run.
//! 2. **read latency**: a store with 400 days of one check's history (a
//!    run every 15 minutes: 38,400 runs, 9,600 hourly and 400 daily
//!    buckets) behind a real agent's API: 1,000 requests each of
//!    `/uptime?window=90d`, `/uptime` (all four windows),
//!    `/history?resolution=1h&since=<400 days ago>` (31 days: its limit) and
//!    `/history?resolution=1d&since=<400 days ago>`, one connection each,
//!    p50 and p99.
//!
//! Run with `cargo bench -p warden --bench rollups`; figures go to
//! `docs/BENCHMARKS.md`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

mod common;

use common::{cpu_seconds, pct};
use warden::Agent;
use warden::store::{RunRecord, Store};
use warden_runtime::{Metric, RunOutcome, Status};

fn record(check: &str, at_ms: i64, i: u64) -> RunRecord {
    let mut o = RunOutcome::unknown(check, "hello", String::new(), SystemTime::now(), 1);
    o.status = if i.is_multiple_of(97) {
        Status::Critical
    } else {
        Status::Ok
    };
    o.error = None;
    o.summary = "ok".into();
    o.finished_unix_ms = at_ms as u64;
    o.duration_seconds = 0.001 * (1 + i % 50) as f64;
    o.metrics = vec![Metric {
        name: "probe_duration_seconds".into(),
        value: 0.002 * (1 + i % 40) as f64,
        unit: "seconds".into(),
        labels: vec![],
    }];
    RunRecord::plain(o)
}

/// CPU-µs per stored run at 5,000 runs/s for `secs`.
async fn write_cost(dir: &Path, rollups: bool, secs: u64) -> (f64, u64) {
    let path = dir.join(format!("w-{rollups}-{}.db", warden::store::now_ms()));
    let store = Store::open_with(&path, rollups).unwrap();
    let cpu0 = cpu_seconds("self");
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        for _ in 0..5 {
            let store = store.clone();
            let rec = record(&format!("c{:02}", n % 50), warden::store::now_ms(), n);
            tasks.spawn(async move { store.record(rec).await.unwrap() });
            n += 1;
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    store.flush();
    let cpu = cpu_seconds("self") - cpu0;
    (cpu / n as f64 * 1e6, n)
}

fn get(port: u16, path: &str) -> Duration {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&buf[..buf.len().min(300)])
    );
    t0.elapsed()
}

fn main() {
    let secs = common::env_or("WARDEN_BENCH_SECS", 10);
    common::two_threads().block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        println!("== write cost: 5,000 runs/s for {secs} s");
        let mut with = Vec::new();
        let mut without = Vec::new();
        for _ in 0..2 {
            without.push(write_cost(dir.path(), false, secs).await);
            with.push(write_cost(dir.path(), true, secs).await);
        }
        let mean = |v: &[(f64, u64)]| v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
        println!("without rollups: {:?} CPU-us per run (runs: {:?})", without.iter().map(|x| x.0.round()).collect::<Vec<_>>(), without.iter().map(|x| x.1).collect::<Vec<_>>());
        println!("with rollups:    {:?} CPU-us per run", with.iter().map(|x| x.0.round()).collect::<Vec<_>>());
        println!("rollups add {:.1}% CPU per stored run", (mean(&with) / mean(&without) - 1.0) * 100.0);

        println!("== read latency: 400 days of history");
        let state = dir.path().join("agent/.warden");
        std::fs::create_dir_all(&state).unwrap();
        let now = warden::store::now_ms();
        let start = now - 400 * 86_400_000;
        {
            let store = Store::open(&state.join("warden.db")).unwrap();
            let t0 = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..(400 * 96) {
                let store = store.clone();
                let rec = record("api", start + i as i64 * 900_000, i);
                tasks.spawn(async move { store.record(rec).await.unwrap() });
                if tasks.len() > 256 {
                    tasks.join_next().await;
                }
            }
            while tasks.join_next().await.is_some() {}
            store.flush();
            println!("generated 38,400 runs over 400 days in {:.1} s", t0.elapsed().as_secs_f64());
        }
        let port = 18_000 + (std::process::id() % 1000) as u16;
        let text = format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\nkeep_runs = 1000000\nkeep_days = 500\n[[check]]\nname = \"api\"\nplugin = \"hello\"\nschedule = \"@every 1h\"\n"
        );
        let config = warden::config::Config::parse(&text, "bench.toml", &dir.path().join("agent")).unwrap();
        let agent = Agent::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let server = tokio::spawn(axum::serve(listener, warden::api::router(agent.clone())).into_future());
        let since = (start / 1000).to_string();
        let paths = [
            "/v1/checks/api/uptime?window=90d".to_string(),
            "/v1/checks/api/uptime".to_string(),
            format!("/v1/checks/api/history?resolution=1h&since={since}"),
            format!("/v1/checks/api/history?resolution=1d&since={since}"),
        ];
        for path in paths {
            let p = path.clone();
            let mut ms: Vec<f64> = tokio::task::spawn_blocking(move || {
                (0..1000).map(|_| get(port, &p).as_secs_f64() * 1000.0).collect()
            })
            .await
            .unwrap();
            ms.sort_by(f64::total_cmp);
            println!("{path:<70} p50 {:>6.2} ms  p99 {:>6.2} ms", pct(&ms, 0.5), pct(&ms, 0.99));
        }
        server.abort();
    });
}
