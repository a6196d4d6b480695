//! Isolation storm: 40 misbehaving checks beside one trivial check, in the
//! real `warden run` binary, on whatever cores the machine has.
//!
//! The storm, every check `@every 2s` with a 5 s timeout: 10 busy loops,
//! 10 reads of a FIFO in a granted directory (no writer, ever), 8 memory
//! bombs (allocate until the 64 MiB limit), 4 state bombs (1 GiB of plugin
//! state offered), 8 stdout floods (10 MiB each). Beside them, `trivial`
//! (`ok`) `@every 1s`. For `WARDEN_BENCH_SECS` (default 60) seconds a
//! client asks `GET /health` every 100 ms (2 s timeout) and the agent's
//! RSS is sampled every 250 ms; then SIGTERM (5 s `shutdown_grace`).
//!
//! Reported: the trivial check's runs against its due times (missed due
//! times, lateness p50/p99/max from the stored runs), `/health` latency
//! p50/p99/max and failures, peak RSS against the bound (running checks'
//! memory limits + 150 MiB), SIGTERM-to-exit. Twice: on a fresh state
//! directory (no check's cost is known yet), then restarted on it.
//!
//! `cargo bench -p warden --bench isolation`; `WARDEN_BENCH_BIN=path`
//! runs another `warden` binary (an older build, for before/after);
//! `WARDEN_BENCH_TRIVIAL_LAST=1` lists the trivial check after the storm
//! (runs due at once are dispatched in config order).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::pct;

const GRACE_SECS: u64 = 5;
const CONCURRENCY: u64 = 16;
const MEMORY_MIB: u64 = 64;

/// The storm's config; the trivial check first or, with `trivial_last`,
/// after the 40 others (runs due together are dispatched in config order).
fn config(port: u16, fifo_dir: &Path, trivial_last: bool) -> String {
    let trivial = "\n[[check]]\nname = \"trivial\"\nplugin = \"hostile\"\nschedule = \"@every 1s\"\nsplay = \"0s\"\nconfig = { mode = \"ok\" }\n";
    let mut text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"{GRACE_SECS}s\"\nmax_concurrent_runs = {CONCURRENCY}\n"
    );
    if !trivial_last {
        text.push_str(trivial);
    }
    let fifo = fifo_dir.join("pipe");
    let storm: [(&str, usize, String); 5] = [
        ("loop", 10, "{ mode = \"loop\" }".into()),
        (
            "fifo",
            10,
            format!(
                "{{ mode = \"read\", path = {:?} }}",
                fifo.display().to_string()
            ),
        ),
        ("alloc", 8, "{ mode = \"alloc\" }".into()),
        ("state", 4, "{ mode = \"state-bomb\" }".into()),
        ("flood", 8, "{ mode = \"flood\" }".into()),
    ];
    for (kind, n, cfg) in storm {
        for i in 0..n {
            text.push_str(&format!(
                "\n[[check]]\nname = \"{kind}-{i}\"\nplugin = \"hostile\"\nschedule = \"@every 2s\"\nsplay = \"0s\"\ntimeout = \"5s\"\nconfig = {cfg}\n"
            ));
            if kind == "fifo" {
                text.push_str(&format!(
                    "allow.read_dirs = [{:?}]\n",
                    fifo_dir.display().to_string()
                ));
            }
        }
    }
    if trivial_last {
        text.push_str(trivial);
    }
    text
}

/// One HTTP/1.1 GET with a timeout: (status, body) or an error.
fn get(port: u16, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "no status line".to_string())?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let secs: u64 = std::env::var("WARDEN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let bin =
        std::env::var("WARDEN_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_warden").into());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let wasm = Path::new(env!("WARDEN_WASM_DIR")).join("hostile.wasm");
    std::fs::copy(wasm, dir.path().join("plugins/hostile.wasm")).unwrap();
    let fifo_dir = dir.path().join("fifo");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(fifo_dir.join("pipe"))
            .status()
            .unwrap()
            .success()
    );
    // First on a fresh state directory (no check has a measured cost yet),
    // then restarted on the state that run left (costs known from the
    // store), as an agent that is upgraded or rebooted would be.
    let port = 18_000 + (std::process::id() % 1000) as u16;
    storm(&bin, dir.path(), &fifo_dir, port, secs, "fresh state");
    println!();
    storm(&bin, dir.path(), &fifo_dir, port + 1, secs, "restarted");
}

/// One storm of `secs` seconds against the agent `bin` in `dir`; prints
/// its figures.
fn storm(bin: &str, dir: &Path, fifo_dir: &Path, port: u16, secs: u64, phase: &str) {
    let config_path = dir.join("warden.toml");
    let trivial_last = std::env::var_os("WARDEN_BENCH_TRIVIAL_LAST").is_some();
    std::fs::write(&config_path, config(port, fifo_dir, trivial_last)).unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&config_path)
        .env("WARDEN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting warden");
    let pid = child.id();
    let order = if trivial_last { "last" } else { "first" };
    println!(
        "isolation storm ({phase}): {bin}, {secs} s, 40 misbehaving checks + trivial @every 1s (listed {order})"
    );

    // Ready (plugins compiled) within 120 s, else report that.
    let t_ready = Instant::now();
    while get(port, "/readyz", Duration::from_secs(2)).map(|r| r.0) != Ok(200) {
        if t_ready.elapsed() > Duration::from_secs(120) || child.try_wait().unwrap().is_some() {
            println!("agent never became ready");
            let _ = child.kill();
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let start_ms = now_ms();

    let stop = Arc::new(AtomicBool::new(false));
    let health: Arc<Mutex<(Vec<f64>, usize)>> = Arc::default();
    let rss: Arc<Mutex<f64>> = Arc::default();
    let mut threads = Vec::new();
    {
        let (stop, health) = (stop.clone(), health.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = matches!(get(port, "/health", Duration::from_secs(2)), Ok((200, _)));
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                let mut h = health.lock().unwrap();
                h.0.push(ms);
                h.1 += usize::from(!ok);
                drop(h);
                std::thread::sleep(Duration::from_millis(100).saturating_sub(t0.elapsed()));
            }
        }));
    }
    {
        let (stop, rss) = (stop.clone(), rss.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(m) = rss_mib(pid) {
                    let mut r = rss.lock().unwrap();
                    *r = r.max(m);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    let end_ms = now_ms();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }

    // The trivial check's runs, from the store.
    let runs = get(
        port,
        "/v1/runs?check=trivial&limit=1000",
        Duration::from_secs(10),
    );
    let mut lateness = Vec::new();
    let mut durations = Vec::new();
    let mut scheduled = std::collections::BTreeSet::new();
    if let Ok((200, body)) = &runs {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        for r in v["runs"].as_array().into_iter().flatten() {
            let (due, started) = (
                r["scheduled_unix_ms"].as_i64(),
                r["started_unix_ms"].as_i64(),
            );
            if let (Some(due), Some(started), Some(false)) = (due, started, r["manual"].as_bool())
                && due >= start_ms
                && due < end_ms - 5_000
            {
                scheduled.insert(due);
                lateness.push((started - due) as f64);
                durations.push(r["duration_seconds"].as_f64().unwrap_or(f64::NAN) * 1000.0);
            }
        }
    }
    // Due times in the window (1 s apart), less the last 5 s, whose runs
    // may not be recorded yet.
    let window_due = ((end_ms - 5_000 - start_ms) / 1000).max(0) as usize;
    let missed = window_due.saturating_sub(scheduled.len());
    lateness.sort_by(f64::total_cmp);
    durations.sort_by(f64::total_cmp);
    let skipped = get(port, "/metrics", Duration::from_secs(10))
        .ok()
        .and_then(|(_, m)| {
            m.lines().find_map(|l| {
                l.strip_prefix("warden_check_skipped_runs_total{check=\"trivial\",")
                    .and_then(|rest| rest.rsplit(' ').next())
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| "?".into());

    let (mut hl, hfail) = health.lock().unwrap().clone();
    hl.sort_by(f64::total_cmp);
    let peak = *rss.lock().unwrap();
    let bound = (CONCURRENCY * MEMORY_MIB + 150) as f64;

    let t_term = Instant::now();
    signal(pid, "TERM");
    let exited = loop {
        if child.try_wait().unwrap().is_some() {
            break Some(t_term.elapsed());
        }
        if t_term.elapsed() > Duration::from_secs(GRACE_SECS + 30) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    println!(
        "trivial: {} of {window_due} due times run, missed {missed}; lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{}",
        scheduled.len(),
        pct(&lateness, 0.5),
        pct(&lateness, 0.99),
        lateness.last().copied().unwrap_or(f64::NAN),
        if runs.is_err() {
            " (runs unreadable: API did not answer)"
        } else {
            ""
        }
    );
    println!(
        "trivial: run time p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; skipped (agent's count) {skipped}",
        pct(&durations, 0.5),
        pct(&durations, 0.99),
        durations.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "/health: {} requests, {hfail} failed or timed out (2 s); p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        hl.len(),
        pct(&hl, 0.5),
        pct(&hl, 0.99),
        hl.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "RSS: peak {peak:.0} MiB; bound {bound:.0} MiB ({CONCURRENCY} runs x {MEMORY_MIB} MiB + 150 MiB)"
    );
    match exited {
        Some(t) => println!(
            "SIGTERM: exited after {:.2} s (grace {GRACE_SECS} s)",
            t.as_secs_f64()
        ),
        None => println!("SIGTERM: still running after {} s; killed", GRACE_SECS + 30),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}
