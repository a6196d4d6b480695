//! Agent benchmark: the real scheduler, sandbox, store and API in one
//! process, with the `hostile` test plugin in its trivial `ok` mode.
//!
//! 1. schedule: 1,000 checks `@every 1s` for `WARDEN_BENCH_SECS` (default
//!    60) seconds: missed and duplicate dispatches, lateness percentiles
//!    (from the stored runs), while a client measures `GET /v1/checks`.
//! 2. throughput: 2,000 checks `@every 200ms` (10,000 runs/s offered) for
//!    20 s: completed runs per second, all recorded in SQLite.
//!
//! Run with `cargo bench -p warden --bench agent`; figures go to
//! `docs/BENCHMARKS.md`.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{cpu_seconds, pct};
use warden::Agent;
use warden::config::Config;

fn config(dir: &Path, port: u16, checks: usize, schedule: &str, concurrency: usize) -> Config {
    let mut text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nmax_concurrent_runs = {concurrency}\nkeep_runs = 1000000\n"
    );
    for i in 0..checks {
        text.push_str(&format!(
            "[[check]]\nname = \"c{i:04}\"\nplugin = \"hostile\"\nschedule = \"{schedule}\"\nconfig = {{ mode = \"ok\" }}\n"
        ));
    }
    Config::parse(&text, "bench.toml", dir).expect("bench config")
}

fn prepare(dir: &Path) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let wasm = Path::new(env!("WARDEN_WASM_DIR")).join("hostile.wasm");
    std::fs::copy(wasm, dir.join("plugins/hostile.wasm")).unwrap();
}

fn get_checks(port: u16) -> (Duration, usize) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /v1/checks HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::with_capacity(1 << 20);
    s.read_to_end(&mut buf).unwrap();
    (t0.elapsed(), buf.len())
}

fn main() {
    let secs = common::env_or("WARDEN_BENCH_SECS", 60);
    common::two_threads().block_on(async move {
        // Phase 1: 1,000 checks on a 1 s schedule.
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let port = 17_000 + (std::process::id() % 1000) as u16;
        // Measured on a warm compiled-code cache, as a running agent is:
        // a first agent compiles the plugin, the measured one maps it.
        warm(config(dir.path(), port, 1, "@every 1h", 64)).await;
        let agent = Agent::start(config(dir.path(), port, 1000, "@every 1s", 64)).await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sched = tokio::spawn(agent.clone().run_scheduler(stopped));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let server = tokio::spawn(axum::serve(listener, warden::api::router(agent.clone())).into_future());
        let t_start = warden::store::now_ms();
        let cpu0 = cpu_seconds("self");

        // A client measuring GET /v1/checks (1,000 checks) meanwhile.
        let done = Arc::new(AtomicBool::new(false));
        let client_done = done.clone();
        let client = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            let mut lat = Vec::new();
            let mut bytes = 0;
            while !client_done.load(Ordering::Relaxed) {
                let (d, n) = get_checks(port);
                lat.push(d.as_secs_f64() * 1000.0);
                bytes = n;
                std::thread::sleep(Duration::from_millis(20));
            }
            (lat, bytes)
        });
        // Server-side cost of the same response, sampled in process.
        let mut handler_ms = Vec::new();
        let t_end_at = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < t_end_at {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let t0 = Instant::now();
            let views = agent.check_summaries();
            let bytes = serde_json::to_vec(&views).unwrap();
            handler_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(bytes);
        }
        done.store(true, Ordering::Relaxed);
        let _ = stop.send(true);
        let _ = sched.await;
        agent.drain(Duration::from_secs(10)).await;
        agent.store.flush();
        let cpu = cpu_seconds("self") - cpu0;
        let t_end = warden::store::now_ms();
        let (mut api_lat, api_bytes) = client.join().unwrap();
        server.abort();

        // Judge from what the store recorded.
        let db = dir.path().join(".warden/warden.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT check_name, scheduled_ms, started_ms, attempt, manual FROM runs")
            .unwrap();
        let rows: Vec<(String, i64, i64, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut seen: HashSet<(String, i64)> = HashSet::new();
        let mut duplicates = 0;
        let mut lateness: Vec<f64> = Vec::new();
        let mut per_check: HashMap<String, Vec<i64>> = HashMap::new();
        for (check, due, started, attempt, manual) in &rows {
            if *manual != 0 || *attempt != 1 {
                continue;
            }
            if !seen.insert((check.clone(), *due)) {
                duplicates += 1;
            }
            lateness.push((started - due) as f64);
            per_check.entry(check.clone()).or_default().push(*due);
        }
        // Missed: a due time inside the window (away from its edges) with
        // no run. Due times of a 1 s schedule are whole seconds + splay.
        let mut missed = 0;
        let mut expected = 0;
        for check in agent.checks().values() {
            let offset = check.offset.as_millis() as i64;
            let dues: HashSet<i64> = per_check.get(&check.config.name).cloned().unwrap_or_default().into_iter().collect();
            let mut t = ((t_start + 2000 - offset) / 1000 + 1) * 1000 + offset;
            while t < t_end - 2000 {
                expected += 1;
                if !dues.contains(&t) {
                    missed += 1;
                }
                t += 1000;
            }
        }
        let skipped: u64 = agent.check_summaries().iter().map(|v| v.skipped_runs).sum();
        lateness.sort_by(f64::total_cmp);
        api_lat.sort_by(f64::total_cmp);
        println!("== schedule: 1000 checks @every 1s for {secs}s (2 tokio workers, max 64 concurrent runs)");
        println!("runs recorded            {}", rows.len());
        println!("due times checked        {expected}");
        println!("missed dispatches        {missed}");
        println!("duplicate dispatches     {duplicates}");
        println!("skipped (overlap)        {skipped}");
        println!(
            "lateness ms              p50={:.1} p90={:.1} p99={:.1} max={:.1}",
            pct(&lateness, 0.5),
            pct(&lateness, 0.9),
            pct(&lateness, 0.99),
            lateness.last().copied().unwrap_or(f64::NAN)
        );
        println!("agent CPU                {:.1}s over {secs}s ({:.0}% of one core)", cpu, cpu / secs as f64 * 100.0);
        println!(
            "GET /v1/checks ms        n={} p50={:.2} p99={:.2} max={:.2} ({} bytes)",
            api_lat.len(),
            pct(&api_lat, 0.5),
            pct(&api_lat, 0.99),
            api_lat.last().copied().unwrap_or(f64::NAN),
            api_bytes
        );
        handler_ms.sort_by(f64::total_cmp);
        println!(
            "  of which views+JSON ms  n={} p50={:.2} p99={:.2}",
            handler_ms.len(),
            pct(&handler_ms, 0.5),
            pct(&handler_ms, 0.99)
        );
        drop(agent);

        // Phase 2: saturation throughput with persistence.
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        warm(config(dir.path(), port + 1, 1, "@every 1h", 64)).await;
        let agent = Agent::start(config(dir.path(), port + 1, 2000, "@every 200ms", 64)).await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sched = tokio::spawn(agent.clone().run_scheduler(stopped));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let count = |a: &Agent| -> u64 { a.check_summaries().iter().map(|v| v.runs.ok + v.runs.unknown).sum() };
        let skips = |a: &Agent| -> u64 { a.check_summaries().iter().map(|v| v.skipped_runs).sum() };
        let (n0, s0, cpu0, t0) = (count(&agent), skips(&agent), cpu_seconds("self"), Instant::now());
        tokio::time::sleep(Duration::from_secs(20)).await;
        let (n1, s1, cpu1, elapsed) = (count(&agent), skips(&agent), cpu_seconds("self"), t0.elapsed());
        let _ = stop.send(true);
        let _ = sched.await;
        agent.drain(Duration::from_secs(10)).await;
        agent.store.flush();
        let rate = (n1 - n0) as f64 / elapsed.as_secs_f64();
        println!();
        println!("== throughput: 2000 checks @every 200ms (10000 runs/s offered) for 20s");
        println!("runs completed and stored {:.0}/s", rate);
        println!("skipped (still running)   {:.0}/s", (s1 - s0) as f64 / elapsed.as_secs_f64());
        println!("agent CPU                 {:.2} cores", (cpu1 - cpu0) / elapsed.as_secs_f64());
        println!("CPU per run               {:.1} us", (cpu1 - cpu0) / (n1 - n0).max(1) as f64 * 1e6);
    });
}

/// Starts an agent on `config` until its plugins are loaded (compiled into
/// the state directory's cache), then drops it.
async fn warm(config: warden::Config) {
    let agent = Agent::start(config).await.unwrap();
    agent.registry.wait_all().await;
    agent.store.flush();
}
