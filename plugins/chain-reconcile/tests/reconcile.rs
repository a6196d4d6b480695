//! `chain-reconcile` against the tests' Solana simulator and an
//! application fixture, natively: batching and call counts with thousands
//! of accounts, every balance discrepancy class, Token-2022, `null`
//! accounts, rent-exempt reserves, a node answering from an older slot,
//! and the application API paginating and failing.

#[path = "../../../tests/solana_sim/mod.rs"]
mod solana_sim;

use std::sync::{Arc, Mutex};

use chain_reconcile::{ChainReconcile, Config};
use serde_json::{Value, json};
use solana_sim::{
    Node, SYSTEM_PROGRAM, SimAccount, SimToken, TOKEN_2022_PROGRAM, TOKEN_PROGRAM, rent_exempt,
};
use warden_plugin_sdk::http::{HttpError, Request, Response, Transport};
use warden_plugin_sdk::testing::TestContext;
use warden_plugin_sdk::{Plugin, Report, Status};

const USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const TOKEN: &str = "app-token-123";

/// The chain at `http://rpc/` and the application at `http://app/`.
struct Net {
    node: Arc<Mutex<Node>>,
    pages: Vec<Value>,
    fail_page: Option<usize>,
    app_calls: Arc<Mutex<u32>>,
}

impl Transport for Net {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        if req.url.starts_with("http://rpc/") {
            let (status, headers, body) =
                solana_sim::respond(&mut self.node.lock().unwrap(), &req.body);
            let mut r = Response::new(status, body);
            r.headers = headers;
            return Ok(r);
        }
        *self.app_calls.lock().unwrap() += 1;
        let authorized = req.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("authorization") && v == &format!("Bearer {TOKEN}")
        });
        if !authorized {
            return Ok(Response::new(401, "unauthorized"));
        }
        let page: usize = req
            .url
            .split("cursor=")
            .nth(1)
            .and_then(|c| c.trim_start_matches('p').parse().ok())
            .unwrap_or(0);
        if self.fail_page == Some(page) {
            return Ok(Response::new(500, "oops"));
        }
        let next = if page + 1 < self.pages.len() {
            json!(format!("p{}", page + 1))
        } else {
            Value::Null
        };
        Ok(Response::new(
            200,
            json!({"data": {"commitments": self.pages[page]}, "next_cursor": next}).to_string(),
        ))
    }
}

fn token(mint: &str, amount: u64, frozen: bool, program: &str) -> SimAccount {
    SimAccount {
        lamports: 2_039_280,
        owner: program.into(),
        space: 165,
        token: Some(SimToken {
            mint: mint.into(),
            amount,
            decimals: 6,
            frozen,
        }),
    }
}

fn sol(lamports: u64) -> SimAccount {
    SimAccount {
        lamports,
        owner: SYSTEM_PROGRAM.into(),
        space: 0,
        token: None,
    }
}

fn config(extra: Value) -> Config {
    let mut c = json!({
        "rpc_url": "http://rpc/",
        "source": {"url": "http://app/api/commitments", "token_env": "APP_TOKEN",
                   "items": "data.commitments", "next": "next_cursor"},
        "fields": {"account": "escrow", "kind": "kind", "mint": "mint", "amount": "expected", "id": "id"},
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    let cfg = warden_plugin_sdk::parse_config::<ChainReconcile>(&c.to_string()).unwrap();
    ChainReconcile::validate(&cfg).unwrap();
    cfg
}

fn run(cfg: Config, net: Net) -> Result<Report, String> {
    let mut ctx = TestContext::new(cfg)
        .http(net)
        .env("APP_TOKEN", TOKEN)
        .build();
    ChainReconcile::run(&mut ctx).map_err(|e| e.to_string())
}

fn metric(r: &Report, name: &str, label: Option<&str>) -> f64 {
    r.metrics
        .iter()
        .find(|m| m.name == name && label.is_none_or(|l| m.labels.iter().any(|(_, v)| v == l)))
        .map(|m| m.value)
        .unwrap_or_else(|| panic!("no metric {name} {label:?}"))
}

fn record(id: &str, escrow: &str, kind: &str, expected: Value) -> Value {
    json!({"id": id, "escrow": escrow, "kind": kind, "mint": if kind == "spl" { json!(USDC) } else { Value::Null }, "expected": expected})
}

#[test]
fn thousands_of_accounts_in_batches_of_100_at_one_slot() {
    let mut node = Node::healthy(400_000_000);
    let mut all = Vec::new();
    for i in 0..2_550 {
        let key = format!("Escrow{i:05}");
        if i % 2 == 0 {
            node.accounts.insert(
                key.clone(),
                token(USDC, 1_000_000 + i, false, TOKEN_PROGRAM),
            );
            all.push(record(
                &format!("c{i}"),
                &key,
                "spl",
                json!(format!("1.{i:06}")),
            ));
        } else {
            node.accounts
                .insert(key.clone(), sol(rent_exempt(0) + 5_000_000_000));
            all.push(record(&format!("c{i}"), &key, "sol", json!("5.0")));
        }
    }
    let node = Arc::new(Mutex::new(node));
    let pages: Vec<Value> = all.chunks(1000).map(|c| json!(c)).collect();
    let app_calls = Arc::new(Mutex::new(0));
    let r = run(
        config(json!({"fields": {"account": "escrow", "kind": "kind", "mint": "mint", "amount": "expected", "id": "id", "amount_unit": "whole"}})),
        Net {
            node: node.clone(),
            pages,
            fail_page: None,
            app_calls: app_calls.clone(),
        },
    )
    .unwrap();
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
    assert_eq!(*app_calls.lock().unwrap(), 3, "three pages followed");
    let n = node.lock().unwrap();
    assert_eq!(n.calls("getMultipleAccounts"), 26, "⌈2550/100⌉ batches");
    assert_eq!(n.calls("getMinimumBalanceForRentExemption"), 1, "one size");
    assert_eq!(metric(&r, "reconcile_accounts_checked", None), 2550.0);
    assert_eq!(n.calls("getBlockTime"), 1, "chain time of the snapshot");
    assert_eq!(metric(&r, "reconcile_rpc_calls", None), 28.0);
    assert_eq!(
        metric(&r, "reconcile_expected_total", None),
        metric(&r, "reconcile_actual_total", None)
    );
}

#[test]
fn every_balance_class_with_numbers_and_token_2022() {
    let mut node = Node::healthy(1000);
    let a = |node: &mut Node, k: &str, acc: SimAccount| {
        node.accounts.insert(k.to_string(), acc);
    };
    a(
        &mut node,
        "Ok2022",
        token(USDC, 1_500_000, false, TOKEN_2022_PROGRAM),
    );
    a(
        &mut node,
        "Under",
        token(USDC, 900_000, false, TOKEN_PROGRAM),
    );
    a(
        &mut node,
        "Over",
        token(USDC, 1_200_000, false, TOKEN_PROGRAM),
    );
    a(
        &mut node,
        "WithinTol",
        token(USDC, 1_000_005, false, TOKEN_PROGRAM),
    );
    a(
        &mut node,
        "OtherMint",
        token(
            "So11111111111111111111111111111111111111112",
            1,
            false,
            TOKEN_PROGRAM,
        ),
    );
    a(
        &mut node,
        "Frozen",
        token(USDC, 1_000_000, true, TOKEN_PROGRAM),
    );
    a(&mut node, "NotToken", sol(5));
    a(&mut node, "SolOk", sol(rent_exempt(0) + 2_000_000_000));
    a(&mut node, "SolShort", sol(2_000_000_000)); // the reserve is not funding
    let records = json!([
        record("ok-2022", "Ok2022", "spl", json!(1_500_000)),
        record("under", "Under", "spl", json!(1_000_000)),
        record("over", "Over", "spl", json!(1_000_000)),
        record("tol", "WithinTol", "spl", json!(1_000_000)),
        record("mint", "OtherMint", "spl", json!(1)),
        record("frozen", "Frozen", "spl", json!(1_000_000)),
        record("owner", "NotToken", "spl", json!(5)),
        record("missing", "Nowhere", "spl", json!(1)),
        record("sol-ok", "SolOk", "sol", json!(2_000_000_000)),
        record("sol-short", "SolShort", "sol", json!(2_000_000_000)),
    ]);
    let r = run(
        config(json!({"tolerance": 10})),
        Net {
            node: Arc::new(Mutex::new(node)),
            pages: vec![records],
            fail_page: None,
            app_calls: Arc::new(Mutex::new(0)),
        },
    )
    .unwrap();
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    let got: Vec<&str> = r.findings.iter().map(|f| f.fingerprint.as_str()).collect();
    assert_eq!(
        got,
        [
            "Under:underfunded",
            "Over:overfunded",
            "OtherMint:wrong_mint",
            "Frozen:frozen",
            "NotToken:wrong_owner",
            "Nowhere:missing_account",
            "SolShort:underfunded",
        ],
        "{}",
        r.summary
    );
    let under = &r.findings[0];
    assert!(
        under
            .attributes
            .contains(&("expected".into(), "1000000".into()))
    );
    assert!(
        under
            .attributes
            .contains(&("actual".into(), "900000".into()))
    );
    assert_eq!(
        metric(&r, "reconcile_discrepancies", Some("underfunded")),
        2.0
    );
    assert_eq!(
        metric(&r, "reconcile_discrepancies", Some("overfunded")),
        1.0
    );

    // Only warnings: warning status.
    let mut node = Node::healthy(1000);
    node.accounts
        .insert("Over".into(), token(USDC, 2, false, TOKEN_PROGRAM));
    let r = run(
        config(json!({})),
        Net {
            node: Arc::new(Mutex::new(node)),
            pages: vec![json!([record("over", "Over", "spl", json!(1))])],
            fail_page: None,
            app_calls: Arc::new(Mutex::new(0)),
        },
    )
    .unwrap();
    assert_eq!(r.status, Status::Warning);
}

#[test]
fn a_batch_from_an_older_slot_is_refused() {
    let mut node = Node::healthy(10_000);
    let mut records = Vec::new();
    for i in 0..250 {
        let k = format!("E{i}");
        node.accounts
            .insert(k.clone(), token(USDC, 1, false, TOKEN_PROGRAM));
        records.push(record("x", &k, "spl", json!(1)));
    }
    node.stale_by = 64;
    node.stale_after = 1;
    let e = run(
        config(json!({})),
        Net {
            node: Arc::new(Mutex::new(node)),
            pages: vec![json!(records)],
            fail_page: None,
            app_calls: Arc::new(Mutex::new(0)),
        },
    )
    .unwrap_err();
    assert!(e.contains("batch 2") && e.contains("-32016"), "{e}");
}

#[test]
fn the_application_api_paginates_fails_and_needs_its_token() {
    let node = || {
        let mut n = Node::healthy(100);
        n.accounts
            .insert("A".into(), token(USDC, 1, false, TOKEN_PROGRAM));
        Arc::new(Mutex::new(n))
    };
    let pages = vec![json!([record("a", "A", "spl", json!(1))]); 3];
    let e = run(
        config(json!({})),
        Net {
            node: node(),
            pages: pages.clone(),
            fail_page: Some(1),
            app_calls: Arc::new(Mutex::new(0)),
        },
    )
    .unwrap_err();
    assert!(e.contains("page 2: HTTP 500"), "{e}");
    // Without the token granted: named.
    let mut ctx = TestContext::new(config(json!({})))
        .http(Net {
            node: node(),
            pages,
            fail_page: None,
            app_calls: Arc::new(Mutex::new(0)),
        })
        .build();
    let e = ChainReconcile::run(&mut ctx).unwrap_err().to_string();
    assert!(e.contains("APP_TOKEN") && e.contains("allow.env"), "{e}");
}

#[test]
fn expected_state_from_a_file_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("expected.json");
    std::fs::write(
        &file,
        json!([record("a", "A", "spl", json!(1))]).to_string(),
    )
    .unwrap();
    let mut n = Node::healthy(100);
    n.accounts
        .insert("A".into(), token(USDC, 1, false, TOKEN_PROGRAM));
    let cfg = config(json!({"source": {"file": file}}));
    let mut ctx = TestContext::new(cfg)
        .http(Net {
            node: Arc::new(Mutex::new(n)),
            pages: vec![],
            fail_page: None,
            app_calls: Arc::new(Mutex::new(0)),
        })
        .read_dir(dir.path())
        .build();
    let r = ChainReconcile::run(&mut ctx).unwrap();
    assert_eq!(r.status, Status::Ok, "{}", r.summary);

    let bad = |v: Value| {
        let c = warden_plugin_sdk::parse_config::<ChainReconcile>(&v.to_string());
        match c {
            Err(e) => e,
            Ok(c) => ChainReconcile::validate(&c).unwrap_err(),
        }
    };
    let fields = json!({"account": "a", "amount": "b"});
    assert!(
        bad(json!({"rpc_url": "ftp://x", "source": {"file": "/x"}, "fields": fields}))
            .contains("config.rpc_url")
    );
    assert!(
        bad(json!({"rpc_url": "http://x", "source": {}, "fields": fields}))
            .contains("config.source")
    );
    assert!(bad(json!({"rpc_url": "http://x", "source": {"file": "/x"}, "fields": fields, "batch_size": 500})).contains("config.batch_size"));
    // An output reference is accepted (the agent fills it in).
    let ok = json!({"rpc_url": "${output:solana-rpc.SOLANA_RPC_URL}", "source": {"file": "/x"}, "fields": fields});
    let c = warden_plugin_sdk::parse_config::<ChainReconcile>(&ok.to_string()).unwrap();
    ChainReconcile::validate(&c).unwrap();
    // Durations share the agent's grammar: days work here as everywhere.
    let locks = json!({"source": {"file": "/x"}, "id": "i", "created_at": "c", "signature": "s", "stale_after": "1d"});
    let days = json!({"rpc_url": "http://x", "source": {"file": "/x"}, "fields": fields, "locks": locks, "timeout": "1.5s"});
    let c = warden_plugin_sdk::parse_config::<ChainReconcile>(&days.to_string()).unwrap();
    ChainReconcile::validate(&c).unwrap();
    let locks = json!({"source": {"file": "/x"}, "id": "i", "created_at": "c", "signature": "s", "stale_after": "soon"});
    assert!(bad(json!({"rpc_url": "http://x", "source": {"file": "/x"}, "fields": fields, "locks": locks})).contains("config.locks.stale_after"));
}

#[test]
fn milestones_stale_locks_and_transactions() {
    let mut node = Node::healthy(3_000_032); // snapshot slot 3,000,000
    let chain_time = 1_700_000_000 + 3_000_000 / 3; // the simulator's block time
    node.accounts
        .insert("Reward".into(), token(USDC, 700_000, false, TOKEN_PROGRAM));
    node.accounts.insert(
        "RewardShort".into(),
        token(USDC, 100_000, false, TOKEN_PROGRAM),
    );
    node.signatures.insert("sigOk".into(), None);
    node.signatures
        .insert("sigBad".into(), Some("InsufficientFunds".into()));
    for i in 0..600 {
        node.signatures.insert(format!("admin{i}"), None);
    }
    let node = Arc::new(Mutex::new(node));
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    // Released milestones (unlock time passed) are no longer in escrow.
    let schedule = json!([
        {"unlock_at": chain_time - 100, "amount": "0.3"},
        {"unlock_at": chain_time + 100, "amount": "0.3"},
        {"unlock_at": chain_time + 200, "amount": "0.4"},
    ]);
    let commitments = write(
        "commitments.json",
        json!([
            {"id": "r1", "escrow": "Reward", "mint": USDC, "schedule": schedule},
            {"id": "r2", "escrow": "RewardShort", "mint": USDC, "schedule": schedule},
        ]),
    );
    let locks = write(
        "locks.json",
        json!([
            {"lock_id": "fresh", "created": chain_time - 60, "tx": null},
            {"lock_id": "stale", "created": chain_time - 3600, "tx": null},
            {"lock_id": "landed", "created": chain_time - 3600, "tx": "sigOk"},
            {"lock_id": "failed", "created": chain_time - 3600, "tx": "sigBad"},
            {"lock_id": "lost", "created": chain_time - 3600, "tx": "sigNowhere"},
        ]),
    );
    let mut admin: Vec<Value> = (0..600)
        .map(|i| json!({"event": format!("e{i}"), "signature": format!("admin{i}")}))
        .collect();
    admin.push(json!({"event": "ghost", "signature": "sigGhost"}));
    admin.push(json!({"event": "broken", "signature": "sigBad"}));
    let admin = write("admin.json", json!(admin));
    let cfg = config(json!({
        "source": {"file": commitments},
        "fields": {"account": "escrow", "mint": "mint", "amount": "expected", "id": "id", "milestones": "schedule", "amount_unit": "whole"},
        "locks": {"source": {"file": locks}, "id": "lock_id", "created_at": "created", "signature": "tx", "stale_after": "15m"},
        "admin": {"source": {"file": admin}, "id": "event", "signature": "signature"},
    }));
    let r = run(
        cfg,
        Net {
            node: node.clone(),
            pages: vec![],
            fail_page: None,
            app_calls: Arc::new(Mutex::new(0)),
        },
    )
    .unwrap();
    let got: Vec<&str> = r.findings.iter().map(|f| f.fingerprint.as_str()).collect();
    assert_eq!(
        got,
        [
            "RewardShort:underfunded",
            "lock:stale:stale_lock",
            "lock:failed:lock_tx_failed",
            "lock:lost:lock_tx_not_found",
            "admin:ghost:admin_tx_not_found",
            "admin:broken:admin_tx_failed",
        ],
        "{}",
        r.summary
    );
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.findings[0]
            .attributes
            .contains(&("expected".into(), "700000".into()))
    );
    // 604 distinct signatures: three batches of at most 256.
    assert_eq!(node.lock().unwrap().calls("getSignatureStatuses"), 3);
    assert_eq!(metric(&r, "reconcile_chain_time", None), chain_time as f64);
}

#[test]
fn amounts_are_never_ambiguous() {
    let mut node = Node::healthy(1000);
    // Underfunded: 1.5 SOL held (above the reserve), 2 SOL expected.
    node.accounts
        .insert("Short".into(), sol(rent_exempt(0) + 1_500_000_000));
    let node = Arc::new(Mutex::new(node));
    let with = |unit: Value, records: Value| {
        let mut fields =
            json!({"account": "escrow", "kind": "kind", "amount": "expected", "id": "id"});
        if !unit.is_null() {
            fields["amount_unit"] = unit;
        }
        run(
            config(json!({ "fields": fields })),
            Net {
                node: node.clone(),
                pages: vec![records],
                fail_page: None,
                app_calls: Arc::new(Mutex::new(0)),
            },
        )
    };
    // "2" and "2.0" are both 2 SOL in whole units: underfunded, critical.
    for amount in ["2", "2.0"] {
        let r = with(
            json!("whole"),
            json!([record("e1", "Short", "sol", json!(amount))]),
        )
        .unwrap();
        assert_eq!(r.status, Status::Critical, "{amount}: {}", r.summary);
        assert!(r.summary.contains("underfunded"), "{}", r.summary);
    }
    // A string without a unit is refused, naming the record.
    let e = with(
        Value::Null,
        json!([record("e7", "Short", "sol", json!("2"))]),
    )
    .unwrap_err();
    assert!(
        e.contains("record 0 (e7)") && e.contains("fields.amount_unit"),
        "{e}"
    );
    // A fraction in base units is refused.
    let e = with(
        json!("base"),
        json!([record("e8", "Short", "sol", json!("2.0"))]),
    )
    .unwrap_err();
    assert!(
        e.contains("record 0 (e8)") && e.contains("has a fraction"),
        "{e}"
    );
    // Numbers in one record and strings in another are refused.
    let e = with(
        json!("whole"),
        json!([
            record("a", "Short", "sol", json!(2)),
            record("b", "Short", "sol", json!("2.0")),
        ]),
    )
    .unwrap_err();
    assert!(
        e.contains("record 1 (b)") && e.contains("mixed forms") && e.contains("record 0 (a)"),
        "{e}"
    );
    // Without a unit, integers are base units, as before.
    let r = with(
        Value::Null,
        json!([record("e1", "Short", "sol", json!(1_500_000_000))]),
    )
    .unwrap();
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
}
