//! `solana-rpc-failover` probing 20 endpoints of the Solana simulator
//! (`tests/solana_sim`, HTTP on 127.0.0.1) per run: run time and CPU per
//! run, in the agent's runtime.
//!
//! Each run sends 7 calls per endpoint in the first round (the genesis
//! hash only in the first run) and `getBlockTime` in the second, all
//! concurrently. Run with `cargo bench -p warden --bench solana_failover`;
//! `WARDEN_BENCH_RUNS` (default 200) sets the number of measured runs.
//! Figures go to `docs/BENCHMARKS.md`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

mod common;
#[path = "../../tests/solana_sim/mod.rs"]
mod solana_sim;

use common::{cpu_seconds, pct};
use solana_sim::{Node, TOKEN_ACCOUNT};
use warden_runtime::{Allow, Grants};
use warden_runtime::{Origin, RunRequest, Runtime, RuntimeOptions};

const ENDPOINTS: usize = 20;

fn main() {
    let runs: usize = std::env::var("WARDEN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let nodes = Arc::new(Mutex::new(
        (0..ENDPOINTS)
            .map(|i| Node::healthy(300_000_000 - (i as u64 % 5)))
            .collect::<Vec<_>>(),
    ));
    let ports: Vec<u16> = (0..ENDPOINTS)
        .map(|i| solana_sim::serve(nodes.clone(), i))
        .collect();
    let endpoints: Vec<serde_json::Value> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            serde_json::json!({
                "name": format!("rpc{i}"),
                "url": format!("http://127.0.0.1:{p}/"),
                "role": if i < 2 { "primary" } else { "backup" },
            })
        })
        .collect();
    let config = serde_json::json!({
        "endpoints": endpoints,
        "cluster": "mainnet-beta",
        "token_account": TOKEN_ACCOUNT,
    })
    .to_string();
    let hosts: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let state = tempfile::tempdir().unwrap();
    let store = warden::store::Store::open(&state.path().join("warden.db")).expect("store");
    let runtime = Runtime::new(RuntimeOptions {
        state: Some(std::sync::Arc::new(store)),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let wasm =
        std::fs::read(Path::new(env!("WARDEN_WASM_DIR")).join("solana_rpc_failover.wasm")).unwrap();
    let plugin = rt
        .block_on(runtime.load(&wasm, Origin::Embedded("solana-rpc-failover".into())))
        .expect("load");
    let request = RunRequest {
        check: "bench".into(),
        config,
        scheduled: SystemTime::now(),
        attempt: 1,
        timeout: Duration::from_secs(30),
        memory: 64 << 20,
        grants: Grants::parse(&Allow::default().with("hosts", &hosts)).expect("grants"),
        state_quota: Default::default(),
        action: None,
    };
    // Warm-up (the first run also checks every genesis hash).
    let first = rt.block_on(runtime.run(&plugin, &request));
    assert_eq!(
        first.status,
        warden_runtime::Status::Ok,
        "{}",
        first.summary
    );

    let mut walls = Vec::with_capacity(runs);
    let cpu0 = cpu_seconds("self");
    let t0 = Instant::now();
    for _ in 0..runs {
        for n in nodes.lock().unwrap().iter_mut() {
            n.slot += 2;
        }
        let t = Instant::now();
        let outcome = rt.block_on(runtime.run(&plugin, &request));
        walls.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(
            outcome.status,
            warden_runtime::Status::Ok,
            "{}",
            outcome.summary
        );
        assert_eq!(outcome.http_requests as usize, ENDPOINTS * 7);
    }
    let total = t0.elapsed().as_secs_f64();
    // The simulator runs in this process: its CPU is counted too (an
    // upper bound for the agent's share).
    let cpu = cpu_seconds("self") - cpu0;
    walls.sort_by(f64::total_cmp);
    let calls = nodes
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.calls.values().sum::<u64>())
        .sum::<u64>();
    println!(
        "{ENDPOINTS} endpoints, {runs} runs ({calls} JSON-RPC calls answered): run time median {:.1} ms, p90 {:.1} ms, p99 {:.1} ms; CPU {:.1} ms per run (agent + simulator); {:.1} runs/s back to back",
        pct(&walls, 0.5),
        pct(&walls, 0.9),
        pct(&walls, 0.99),
        cpu / runs as f64 * 1e3,
        runs as f64 / total
    );
}
