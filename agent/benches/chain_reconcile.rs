//! `chain-reconcile` over 10,000 accounts: the plugin in the agent's
//! runtime reading the application fixture's paginated API
//! (`tests/app_fixture`) and the Solana simulator (`tests/solana_sim`),
//! both over HTTP on 127.0.0.1. Wall time, RPC calls (`getMultipleAccounts`
//! must be ⌈N/100⌉) and CPU per reconciliation.
//!
//! Run with `cargo bench -p warden --bench chain_reconcile`;
//! `WARDEN_BENCH_ACCOUNTS` (default 10000) and `WARDEN_BENCH_RUNS` (default
//! 5) size it. Figures go to `docs/BENCHMARKS.md`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[path = "../../tests/app_fixture/mod.rs"]
mod app_fixture;
mod common;
#[path = "../../tests/solana_sim/mod.rs"]
mod solana_sim;

use common::cpu_seconds;
use solana_sim::{Node, SimAccount, SimToken, TOKEN_PROGRAM};
use warden_runtime::{Allow, Grants};
use warden_runtime::{Origin, RunRequest, Runtime, RuntimeOptions};

const USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env("WARDEN_BENCH_ACCOUNTS", 10_000);
    let runs = env("WARDEN_BENCH_RUNS", 5);
    let mut node = Node::healthy(310_000_000);
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        // Base58-like 44-character addresses.
        let key = format!("{:0>44}", format!("Esc{i}"));
        node.accounts.insert(
            key.clone(),
            SimAccount {
                lamports: 2_039_280,
                owner: TOKEN_PROGRAM.into(),
                space: 165,
                token: Some(SimToken {
                    mint: USDC.into(),
                    // One in a hundred underfunded.
                    amount: if i % 100 == 7 { 10 } else { 1_000_000 },
                    decimals: 6,
                    frozen: false,
                }),
            },
        );
        records.push(serde_json::json!({"id": format!("c{i}"), "escrow": key, "mint": USDC, "expected": "1.0"}));
    }
    let nodes = Arc::new(Mutex::new(vec![node]));
    let rpc = solana_sim::serve(nodes.clone(), 0);
    let app = Arc::new(Mutex::new(app_fixture::App {
        pages: records.chunks(1000).map(|c| serde_json::json!(c)).collect(),
        token: "bench".into(),
        ..Default::default()
    }));
    let app_port = app_fixture::serve(app.clone());
    let config = serde_json::json!({
        "rpc_url": format!("http://127.0.0.1:{rpc}/"),
        "source": {"url": format!("http://127.0.0.1:{app_port}/api/commitments"), "token_env": "APP_TOKEN",
                   "items": "data.commitments", "next": "next_cursor"},
        "fields": {"account": "escrow", "mint": "mint", "amount": "expected", "id": "id"},
    })
    .to_string();
    // SAFETY: set before any thread reads the environment.
    unsafe { std::env::set_var("APP_TOKEN", "bench") };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let wasm =
        std::fs::read(Path::new(env!("WARDEN_WASM_DIR")).join("chain_reconcile.wasm")).unwrap();
    let plugin = rt
        .block_on(runtime.load(&wasm, Origin::Embedded("chain-reconcile".into())))
        .expect("load");
    let request = RunRequest {
        check: "bench".into(),
        config,
        scheduled: SystemTime::now(),
        attempt: 1,
        timeout: Duration::from_secs(300),
        memory: 256 << 20,
        grants: Grants::parse(
            &Allow::default()
                .with(
                    "hosts",
                    &[
                        format!("http://127.0.0.1:{rpc}"),
                        format!("http://127.0.0.1:{app_port}"),
                    ],
                )
                .with("env", &["APP_TOKEN"]),
        )
        .expect("grants"),
        state_quota: Default::default(),
        action: None,
    };
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..runs {
        let before = nodes.lock().unwrap()[0].calls("getMultipleAccounts");
        let cpu0 = cpu_seconds("self");
        let t0 = Instant::now();
        let outcome = rt.block_on(runtime.run(&plugin, &request));
        walls.push(t0.elapsed().as_secs_f64());
        cpus.push(cpu_seconds("self") - cpu0);
        assert!(
            outcome.error.is_none(),
            "{:?} {}",
            outcome.error,
            outcome.summary
        );
        assert_eq!(
            outcome.findings.len(),
            n.div_ceil(100),
            "{}",
            outcome.summary
        );
        let batches = nodes.lock().unwrap()[0].calls("getMultipleAccounts") - before;
        assert_eq!(batches as usize, n.div_ceil(100));
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let calls: u64 = nodes.lock().unwrap()[0].calls.values().sum();
    println!(
        "{n} accounts, {runs} runs: wall median {:.2} s (min {:.2}); CPU median {:.2} s (agent + simulator + app fixture, one process); getMultipleAccounts per run {} (⌈N/100⌉); RPC calls per run {}; app pages per run {}",
        walls[runs / 2],
        walls[0],
        cpus[runs / 2],
        n.div_ceil(100),
        calls / runs as u64,
        app.lock().unwrap().calls / runs as u64
    );
}
