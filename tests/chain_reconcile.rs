//! `chain-reconcile` in the real agent: composed with `solana-rpc-failover`
//! through an output reference (the reconcile check reads its RPC URL from
//! the failover check's published `SOLANA_RPC_URL`), and reading the
//! application's paginated API over HTTP (`tests/app_fixture`).

mod app_fixture;
mod common;
mod solana_sim;

use std::sync::{Arc, Mutex};

use common::{AgentProcess, http};
use solana_sim::{Node, SimAccount, SimToken, TOKEN_ACCOUNT, TOKEN_PROGRAM};

const USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

#[test]
fn reconcile_follows_the_failover_choice() {
    let mut node = Node::healthy(9_000);
    node.accounts.insert(
        "Escrow1".into(),
        SimAccount {
            lamports: 2_039_280,
            owner: TOKEN_PROGRAM.into(),
            space: 165,
            token: Some(SimToken {
                mint: USDC.into(),
                amount: 400_000,
                decimals: 6,
                frozen: false,
            }),
        },
    );
    let nodes = Arc::new(Mutex::new(vec![node]));
    let port = solana_sim::serve(nodes.clone(), 0);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("app");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("expected.json"),
        r#"[{"id": "c-1", "escrow": "Escrow1", "mint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "expected": "0.5"}]"#,
    )
    .unwrap();
    let config = format!(
        r#"[agent]
listen = "127.0.0.1:{{PORT}}"

[[check]]
name = "solana-rpc"
plugin = "solana-rpc-failover"
schedule = "@yearly"
allow.hosts = ["http://127.0.0.1:{port}"]
config = {{ cluster = "mainnet-beta", token_account = "{TOKEN_ACCOUNT}", endpoints = [{{ name = "sim", url = "http://127.0.0.1:{port}/", role = "primary" }}] }}

[[check]]
name = "escrows"
plugin = "chain-reconcile"
schedule = "@yearly"
allow.hosts = ["http://127.0.0.1:{port}"]
allow.read_dirs = ["{{DIR}}/app"]
config = {{ rpc_url = "${{output:solana-rpc.SOLANA_RPC_URL}}", source = {{ file = "{{DIR}}/app/expected.json" }}, fields = {{ account = "escrow", mint = "mint", amount = "expected", amount_unit = "whole", id = "id" }} }}
"#
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let run = |check: &str| {
        let r = http(
            agent.port,
            "POST",
            &format!("/v1/checks/{check}/run"),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let r = run("escrows");
    assert_eq!(r["status"], "unknown", "{r}");
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .contains("solana-rpc.SOLANA_RPC_URL"),
        "{r}"
    );
    assert_eq!(run("solana-rpc")["status"], "ok");
    let r = run("escrows");
    assert_eq!(r["status"], "critical", "{r}");
    let f = &r["findings"][0];
    assert_eq!(f["fingerprint"], "Escrow1:underfunded", "{r}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("400000 < expected 500000"),
        "{r}"
    );
    assert!(nodes.lock().unwrap()[0].calls("getMultipleAccounts") == 1);
    agent.terminate();
}

#[test]
fn the_application_api_over_http_paginates_and_fails() {
    let mut node = Node::healthy(50_000);
    let mut pages = Vec::new();
    for p in 0..3 {
        let mut page = Vec::new();
        for i in 0..150 {
            let key = format!("E{p}x{i}");
            node.accounts.insert(
                key.clone(),
                SimAccount {
                    lamports: 2_039_280,
                    owner: solana_sim::TOKEN_2022_PROGRAM.into(),
                    space: 165,
                    token: Some(SimToken {
                        mint: USDC.into(),
                        amount: 1_000,
                        decimals: 6,
                        frozen: false,
                    }),
                },
            );
            page.push(
                serde_json::json!({"id": key, "escrow": key, "mint": USDC, "expected": 1000}),
            );
        }
        pages.push(serde_json::json!(page));
    }
    let nodes = Arc::new(Mutex::new(vec![node]));
    let rpc = solana_sim::serve(nodes.clone(), 0);
    let app = Arc::new(Mutex::new(app_fixture::App {
        pages,
        token: "t0ken-for-the-app".into(),
        ..Default::default()
    }));
    let app_port = app_fixture::serve(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[agent]
listen = "127.0.0.1:{{PORT}}"

[[check]]
name = "escrows"
plugin = "chain-reconcile"
schedule = "@yearly"
allow.hosts = ["http://127.0.0.1:{rpc}", "http://127.0.0.1:{app_port}"]
allow.env = ["APP_TOKEN"]
config = {{ rpc_url = "http://127.0.0.1:{rpc}/", source = {{ url = "http://127.0.0.1:{app_port}/api/commitments", token_env = "APP_TOKEN", items = "data.commitments", next = "next_cursor" }}, fields = {{ account = "escrow", mint = "mint", amount = "expected", id = "id" }} }}
"#
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("APP_TOKEN", "t0ken-for-the-app")]);
    let run = || {
        let r = http(agent.port, "POST", "/v1/checks/escrows/run", &[], b"");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let r = run();
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(app.lock().unwrap().calls, 3);
    assert_eq!(
        nodes.lock().unwrap()[0].calls("getMultipleAccounts"),
        5,
        "⌈450/100⌉"
    );
    app.lock().unwrap().fail_page = Some(1);
    let r = run();
    assert_eq!(r["status"], "unknown", "{r}");
    assert!(
        r["summary"].as_str().unwrap().contains("page 2: HTTP 500"),
        "{r}"
    );
    let log = agent.log();
    agent.terminate();
    assert!(!log.contains("t0ken-for-the-app"));
}

#[test]
fn the_example_config_validates_with_the_failover_check() {
    let dir = tempfile::tempdir().unwrap();
    let examples = format!("{}/../examples", env!("CARGO_MANIFEST_DIR"));
    // The reference needs the failover check: both files together.
    let text = format!(
        "{}\n{}",
        std::fs::read_to_string(format!("{examples}/solana-rpc.toml")).unwrap(),
        std::fs::read_to_string(format!("{examples}/chain-reconcile.toml")).unwrap()
    );
    let both = dir.path().join("both.toml");
    std::fs::write(&both, &text).unwrap();
    let r = common::warden(dir.path(), &["validate", "-c", both.to_str().unwrap()], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // Alone, the reference names a check that does not exist.
    let r = common::warden(
        dir.path(),
        &[
            "validate",
            "-c",
            &format!("{examples}/chain-reconcile.toml"),
        ],
        &[],
    );
    assert_ne!(r.code, 0);
    assert!(format!("{}{}", r.stdout, r.stderr).contains("solana-rpc.SOLANA_RPC_URL"));
}
