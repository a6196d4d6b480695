//! `chain-reconcile` in the real agent, composed with `solana-rpc-failover`
//! through an output reference: the reconcile check reads its RPC URL from
//! the failover check's published `SOLANA_RPC_URL`.

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
config = {{ rpc_url = "${{output:solana-rpc.SOLANA_RPC_URL}}", source = {{ file = "{{DIR}}/app/expected.json" }}, fields = {{ account = "escrow", mint = "mint", amount = "expected", id = "id" }} }}
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
