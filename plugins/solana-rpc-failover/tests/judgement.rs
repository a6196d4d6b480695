//! The plugin against the tests' Solana simulator (`tests/solana_sim`),
//! natively: every scripted behaviour, the choice, stickiness, failback,
//! cooldowns and statuses, over many runs with a controlled clock.

#[path = "../../../tests/solana_sim/mod.rs"]
mod solana_sim;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use solana_rpc_failover::{Config, SolanaRpcFailover};
use solana_sim::{DEVNET, Node, SimHealth, TOKEN_ACCOUNT};
use warden_plugin_sdk::http::{HttpError, Request, Response, Transport};
use warden_plugin_sdk::testing::{MemoryState, TestContext};
use warden_plugin_sdk::{Plugin, Report, Status};

/// The simulator as an HTTP transport: `http://node<i>/` is node `i`.
struct Sim(Arc<Mutex<Vec<Node>>>);

impl Transport for Sim {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let i: usize = req
            .url
            .trim_start_matches("http://node")
            .split(['/', '?'])
            .next()
            .and_then(|n| n.parse().ok())
            .expect("node url");
        let mut nodes = self.0.lock().unwrap();
        let node = &mut nodes[i];
        if node.down {
            return Err(HttpError::Connect {
                url: req.url.clone(),
                reason: "connection refused".into(),
            });
        }
        let (status, headers, body) = solana_sim::respond(node, &req.body);
        let mut r = Response::new(status, body);
        r.headers = headers;
        r.elapsed = node.delay;
        Ok(r)
    }
}

struct Harness {
    nodes: Arc<Mutex<Vec<Node>>>,
    state: Arc<MemoryState>,
    config: Config,
    now: SystemTime,
}

impl Harness {
    fn new(nodes: Vec<Node>, roles: &[&str], extra: serde_json::Value) -> Harness {
        let endpoints: Vec<serde_json::Value> = roles
            .iter()
            .enumerate()
            .map(|(i, role)| {
                serde_json::json!({"name": format!("n{i}"), "url": format!("http://node{i}/"), "role": role})
            })
            .collect();
        let mut cfg = serde_json::json!({
            "endpoints": endpoints,
            "cluster": "mainnet-beta",
            "token_account": TOKEN_ACCOUNT,
            "min_switch_interval": "1m",
        });
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let config =
            warden_plugin_sdk::parse_config::<SolanaRpcFailover>(&cfg.to_string()).unwrap();
        SolanaRpcFailover::validate(&config).unwrap();
        Harness {
            nodes: Arc::new(Mutex::new(nodes)),
            state: Arc::new(MemoryState::new()),
            config,
            now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    /// One run, 30 s after the previous; every node advances 75 slots
    /// unless `stuck`.
    fn run(&mut self) -> Report {
        self.now += Duration::from_secs(30);
        {
            let mut nodes = self.nodes.lock().unwrap();
            for n in nodes.iter_mut() {
                n.slot += 75;
            }
        }
        let mut ctx = TestContext::new(self.config.clone())
            .http(Sim(self.nodes.clone()))
            .state(self.state.clone())
            .at(self.now)
            .build();
        SolanaRpcFailover::run(&mut ctx).unwrap()
    }

    fn node(&self, i: usize) -> std::sync::MutexGuard<'_, Vec<Node>> {
        let _ = i;
        self.nodes.lock().unwrap()
    }
}

fn output(r: &Report, key: &str) -> Option<String> {
    r.outputs
        .iter()
        .find(|o| o.key == key)
        .map(|o| o.value.clone())
}

fn chosen(r: &Report) -> String {
    output(r, "SOLANA_RPC_ENDPOINT").unwrap_or_default()
}

fn rules(r: &Report) -> Vec<String> {
    r.findings.iter().map(|f| f.fingerprint.clone()).collect()
}

fn metric(r: &Report, name: &str, endpoint: &str) -> Option<f64> {
    r.metrics
        .iter()
        .find(|m| m.name == name && m.labels.iter().any(|(_, v)| v == endpoint))
        .map(|m| m.value)
}

#[test]
fn healthy_primary_is_ok_and_published() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({}),
    );
    let r = h.run();
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
    assert_eq!(chosen(&r), "n0");
    assert_eq!(output(&r, "SOLANA_RPC_URL").unwrap(), "http://node0/");
    assert_eq!(metric(&r, "solana_rpc_eligible", "n1"), Some(1.0));
    assert_eq!(metric(&r, "solana_rpc_slot_lag", "n0"), Some(0.0));
    let probes = r
        .metrics
        .iter()
        .filter(|m| {
            m.name == "solana_rpc_probe_latency_seconds"
                && m.labels.contains(&("endpoint".into(), "n0".into()))
        })
        .count();
    assert_eq!(
        probes, 8,
        "a latency per probe (genesis included on the first run)"
    );
    assert!(r.findings.is_empty());
}

#[test]
fn lagging_primary_fails_over_and_back_only_after_failback_runs() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({"failback_runs": 3, "min_switch_interval": "30s"}),
    );
    assert_eq!(chosen(&h.run()), "n0");
    h.node(0)[0].slot -= 500; // the primary falls 500 slots behind
    let r = h.run();
    assert_eq!(chosen(&r), "n1", "{}", r.summary);
    assert_eq!(r.status, Status::Warning);
    assert!(
        rules(&r).contains(&"n0:lagging".to_string()),
        "{:?}",
        rules(&r)
    );
    // It catches up; the backup stays until the primary has been eligible
    // for three runs in a row.
    h.node(0)[0].slot += 500;
    assert_eq!(chosen(&h.run()), "n1");
    assert_eq!(chosen(&h.run()), "n1");
    let r = h.run();
    assert_eq!(chosen(&r), "n0", "{}", r.summary);
    assert_eq!(r.status, Status::Ok);
}

#[test]
fn health_errors_with_and_without_slots_behind() {
    let mut h = Harness::new(
        vec![
            Node::healthy(1000),
            Node::healthy(1000),
            Node::healthy(1000),
        ],
        &["primary", "backup", "backup"],
        serde_json::json!({}),
    );
    h.node(0)[0].health = SimHealth::Behind(42);
    h.node(1)[1].health = SimHealth::Unhealthy;
    let r = h.run();
    assert_eq!(chosen(&r), "n2");
    let f = rules(&r);
    assert!(
        f.contains(&"n0:behind".into()) && f.contains(&"n1:unhealthy".into()),
        "{f:?}"
    );
    assert!(r.summary.contains("42 slots behind"), "{}", r.summary);
}

#[test]
fn throttling_cools_down_and_honours_retry_after() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({"failback_runs": 1, "min_switch_interval": "1s"}),
    );
    h.node(0)[0].throttle = Some(90);
    let r = h.run();
    assert_eq!(chosen(&r), "n1");
    assert!(
        rules(&r).contains(&"n0:throttled".into()),
        "{:?}",
        rules(&r)
    );
    h.node(0)[0].throttle = None;
    let before = h.node(0)[0].calls("getHealth");
    // 30 s and 60 s later: still cooling down, not even asked.
    for _ in 0..2 {
        let r = h.run();
        assert!(rules(&r).contains(&"n0:cooldown".into()), "{:?}", rules(&r));
    }
    assert_eq!(
        h.node(0)[0].calls("getHealth"),
        before,
        "asked during its cooldown"
    );
    // 90 s later it is asked again, eligible, and failed back to.
    let r = h.run();
    assert_eq!(chosen(&r), "n0", "{}", r.summary);
}

#[test]
fn json_rpc_rate_limits_cool_down_for_the_configured_time() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({"cooldown": "45s", "failback_runs": 1, "min_switch_interval": "1s"}),
    );
    h.node(0)[0].rpc_throttle = true;
    let r = h.run();
    assert_eq!(chosen(&r), "n1");
    assert!(
        rules(&r).contains(&"n0:throttled".into()),
        "{:?}",
        rules(&r)
    );
    h.node(0)[0].rpc_throttle = false;
    // 30 s later: still resting (45 s); 60 s later: back.
    assert!(rules(&h.run()).contains(&"n0:cooldown".into()));
    assert_eq!(chosen(&h.run()), "n0");
}

#[test]
fn too_many_failed_runs_in_the_window() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({"error_window": 4, "max_error_rate": 0.4}),
    );
    for run in 0..3 {
        h.node(0)[0].down = run % 2 == 0;
        h.run();
    }
    // It answers now, but 2 of its last 4 runs failed (max 40%).
    h.node(0)[0].down = false;
    let r = h.run();
    assert!(
        rules(&r).contains(&"n0:error_rate".into()),
        "{:?}",
        rules(&r)
    );
    assert_eq!(metric(&r, "solana_rpc_error_rate", "n0"), Some(0.5));
    // One more good run: 1 of 4.
    let r = h.run();
    assert!(
        !rules(&r).contains(&"n0:error_rate".into()),
        "{:?}",
        rules(&r)
    );
}

#[test]
fn wrong_genesis_is_ineligible_and_checked_once() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(5000)],
        &["primary", "backup"],
        serde_json::json!({}),
    );
    h.node(1)[1].genesis = DEVNET.into();
    for _ in 0..3 {
        let r = h.run();
        assert_eq!(chosen(&r), "n0");
        assert!(rules(&r).contains(&"n1:wrong_genesis".into()));
        // Its (devnet) slot does not set the tip.
        assert_eq!(metric(&r, "solana_rpc_slot_lag", "n0"), Some(0.0));
    }
    assert_eq!(h.node(0)[0].calls("getGenesisHash"), 1);
    assert_eq!(h.node(1)[1].calls("getGenesisHash"), 1);
}

#[test]
fn unsupported_methods_and_parsing() {
    let mut h = Harness::new(
        vec![
            Node::healthy(1000),
            Node::healthy(1000),
            Node::healthy(1000),
        ],
        &["primary", "backup", "backup"],
        serde_json::json!({}),
    );
    h.node(0)[0].missing = vec!["getBlockTime".into()];
    h.node(1)[1].no_parsing = true;
    let r = h.run();
    assert_eq!(chosen(&r), "n2", "{}", r.summary);
    let f = rules(&r);
    assert!(f.contains(&"n0:unsupported_method".into()), "{f:?}");
    assert!(f.contains(&"n1:method_failed".into()), "{f:?}");
    assert!(
        r.summary.contains("getBlockTime unsupported"),
        "{}",
        r.summary
    );
}

#[test]
fn slow_endpoints_are_ineligible() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({"max_latency": "500ms"}),
    );
    h.node(0)[0].delay = Duration::from_millis(900);
    let r = h.run();
    assert_eq!(chosen(&r), "n1");
    assert!(rules(&r).contains(&"n0:slow".into()));
}

#[test]
fn a_lying_leader_does_not_set_the_tip() {
    let mut h = Harness::new(
        vec![
            Node::healthy(1000),
            Node::healthy(1000),
            Node::healthy(1010),
        ],
        &["primary", "backup", "backup"],
        serde_json::json!({"leader_gap": 150}),
    );
    h.node(2)[2].slot = 1_000_000;
    let r = h.run();
    assert_eq!(chosen(&r), "n0");
    assert!(
        rules(&r).contains(&"n2:slot_ahead".into()),
        "{:?}",
        rules(&r)
    );
    assert_eq!(metric(&r, "solana_rpc_slot_lag", "n0"), Some(0.0));
    assert!(
        !rules(&r).iter().any(|f| f.ends_with(":lagging")),
        "{:?}",
        rules(&r)
    );
}

#[test]
fn a_flapping_primary_does_not_make_the_choice_flap() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({"failback_runs": 3, "min_switch_interval": "1s"}),
    );
    let mut choices = Vec::new();
    for run in 0..12 {
        // Healthy on even runs, unhealthy on odd ones.
        h.node(0)[0].health = if run % 2 == 0 {
            SimHealth::Ok
        } else {
            SimHealth::Unhealthy
        };
        choices.push(chosen(&h.run()));
    }
    let switches = choices.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(choices[0], "n0");
    assert_eq!(switches, 1, "{choices:?}");
    assert!(choices[1..].iter().all(|c| c == "n1"), "{choices:?}");
}

#[test]
fn stuck_slot_and_none_eligible_keeps_the_last_choice() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["primary", "backup"],
        serde_json::json!({"max_slot_lag": 100}),
    );
    assert_eq!(chosen(&h.run()), "n0");
    // n1 stops advancing: two runs later it is 150 slots behind.
    for _ in 0..2 {
        h.node(1)[1].slot -= 75;
        h.run();
    }
    let r = h.run();
    assert!(rules(&r).contains(&"n1:lagging".into()), "{:?}", rules(&r));
    // Both down: critical, the last good choice stays published.
    h.node(0)[0].down = true;
    h.node(1)[1].down = true;
    let r = h.run();
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert_eq!(chosen(&r), "n0");
    assert!(rules(&r).contains(&"n0:unreachable".into()));
}

#[test]
fn clearly_better_for_several_runs_and_min_switch_interval() {
    let mut h = Harness::new(
        vec![Node::healthy(1000), Node::healthy(1000)],
        &["backup", "backup"],
        serde_json::json!({"better_runs": 3, "better_slots": 20, "max_slot_lag": 100, "min_switch_interval": "2m"}),
    );
    assert_eq!(chosen(&h.run()), "n0");
    h.node(0)[0].slot -= 40; // n0 40 slots behind, still eligible
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(chosen(&h.run()));
    }
    // Three runs clearly better, and two minutes since the first choice.
    assert_eq!(seen, ["n0", "n0", "n0", "n1", "n1"], "{seen:?}");
}

#[test]
fn api_keys_come_from_env_and_are_redacted_when_shown() {
    let cfg = serde_json::json!({
        "endpoints": [{"name": "p", "url": "http://node0/?api-key=${env:RPC_KEY}", "role": "primary"}],
        "required_methods": [],
    });
    let config = warden_plugin_sdk::parse_config::<SolanaRpcFailover>(&cfg.to_string()).unwrap();
    let nodes = Arc::new(Mutex::new(vec![Node::healthy(10)]));
    nodes.lock().unwrap()[0].health = SimHealth::Unhealthy;
    let mut ctx = TestContext::new(config.clone())
        .http(Sim(nodes.clone()))
        .env("RPC_KEY", "sekrit-123")
        .build();
    let r = SolanaRpcFailover::run(&mut ctx).unwrap();
    let shown = format!("{} {:?}", r.summary, r.findings);
    assert!(!shown.contains("sekrit-123"), "{shown}");
    assert!(shown.contains("api-key=***"), "{shown}");
    // Without the variable: a clear error naming it.
    let mut ctx = TestContext::new(config).http(Sim(nodes)).build();
    let e = SolanaRpcFailover::run(&mut ctx).unwrap_err().to_string();
    assert!(e.contains("RPC_KEY") && e.contains("allow.env"), "{e}");
}

#[test]
fn config_errors_name_the_field() {
    let bad = |v: serde_json::Value| {
        let c = warden_plugin_sdk::parse_config::<SolanaRpcFailover>(&v.to_string());
        match c {
            Err(e) => e,
            Ok(c) => SolanaRpcFailover::validate(&c).unwrap_err(),
        }
    };
    let ep = serde_json::json!([{"name": "a", "url": "http://x/"}]);
    assert!(bad(serde_json::json!({"endpoints": []})).contains("config.endpoints"));
    assert!(
        bad(serde_json::json!({"endpoints": ep, "cluster": "moonnet"})).contains("config.cluster")
    );
    assert!(
        bad(serde_json::json!({"endpoints": ep, "required_methods": ["getAccountInfo"]}))
            .contains("token_account")
    );
    assert!(
        bad(serde_json::json!({"endpoints": ep, "cooldown": "soon"})).contains("config.cooldown")
    );
    assert!(
        bad(serde_json::json!({"endpoints": [{"name": "a", "url": "ftp://x"}]}))
            .contains("config.endpoints[0].url")
    );
    assert!(bad(serde_json::json!({"endpoints": ep, "cluster": "devnet", "genesis_hash": solana_sim::MAINNET})).contains("config.genesis_hash"));
}
