//! `solana-rpc-failover` in the real agent against the Solana simulator
//! (`tests/solana_sim`) on 127.0.0.1: the choice reaches the check's
//! `outputs_file` only when it changes, statuses follow the endpoints, the
//! API key in the URL is written to the file but shown nowhere else.

mod common;
mod solana_sim;

use std::sync::{Arc, Mutex};

use common::{AgentProcess, http};
use solana_sim::{Node, SimHealth, TOKEN_ACCOUNT};

const KEY: &str = "k3y-0f-the-rpc-provider";

fn run(agent: &AgentProcess) -> serde_json::Value {
    let r = http(agent.port, "POST", "/v1/checks/rpc/run", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains(KEY),
        "API key in a run response: {}",
        r.body
    );
    r.json()
}

#[test]
fn failover_publishes_the_choice_and_keeps_the_key_out_of_sight() {
    let nodes = Arc::new(Mutex::new(vec![
        Node::healthy(5000),
        Node::healthy(5000),
        Node::healthy(4990),
    ]));
    let ports: Vec<u16> = (0..3)
        .map(|i| solana_sim::serve(nodes.clone(), i))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let endpoints: Vec<String> = ["primary", "backup-a", "backup-b"]
        .iter()
        .zip(&ports)
        .enumerate()
        .map(|(i, (name, port))| {
            let role = if i == 0 { "primary" } else { "backup" };
            format!(
                r#"{{ name = "{name}", url = "http://127.0.0.1:{port}/?api-key=${{env:RPC_KEY}}", role = "{role}" }}"#
            )
        })
        .collect();
    let hosts: Vec<String> = ports
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect();
    let config = format!(
        r#"[agent]
listen = "127.0.0.1:{{PORT}}"

[[check]]
name = "rpc"
plugin = "solana-rpc-failover"
schedule = "@yearly"
outputs_file = "{{DIR}}/rpc.env"
allow.hosts = [{hosts}]
allow.env = ["RPC_KEY"]
config = {{ endpoints = [{endpoints}], cluster = "mainnet-beta", token_account = "{TOKEN_ACCOUNT}", failback_runs = 2, min_switch_interval = "1ms" }}
"#,
        hosts = hosts.join(", "),
        endpoints = endpoints.join(", "),
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("RPC_KEY", KEY)]);
    let env_file = dir.path().join("rpc.env");

    let r = run(&agent);
    assert_eq!(r["status"], "ok", "{r}");
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains("SOLANA_RPC_ENDPOINT=primary"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}/?api-key={KEY}", ports[0])),
        "the application gets the real URL: {text}"
    );
    let modified = std::fs::metadata(&env_file).unwrap().modified().unwrap();

    // The same choice again: the file is not rewritten.
    std::thread::sleep(std::time::Duration::from_millis(20));
    run(&agent);
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().modified().unwrap(),
        modified
    );

    // The primary falls behind: the best backup takes over, warning.
    nodes.lock().unwrap()[0].health = SimHealth::Behind(300);
    let r = run(&agent);
    assert_eq!(r["status"], "warning", "{r}");
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains("SOLANA_RPC_ENDPOINT=backup-a"), "{text}");
    let findings: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fingerprint"].as_str().unwrap())
        .collect();
    assert!(findings.contains(&"primary:behind"), "{findings:?}");

    // Back to health: failback after two eligible runs, not before.
    nodes.lock().unwrap()[0].health = SimHealth::Ok;
    run(&agent);
    assert!(
        std::fs::read_to_string(&env_file)
            .unwrap()
            .contains("=backup-a")
    );
    let r = run(&agent);
    assert_eq!(r["status"], "ok", "{r}");
    assert!(
        std::fs::read_to_string(&env_file)
            .unwrap()
            .contains("=primary")
    );

    // Everything down: critical, the last good choice stays in the file.
    for n in nodes.lock().unwrap().iter_mut() {
        n.down = true;
    }
    let r = run(&agent);
    assert_eq!(r["status"], "critical", "{r}");
    assert!(
        std::fs::read_to_string(&env_file)
            .unwrap()
            .contains("=primary")
    );

    // Shown redacted in the API and the log.
    let outputs = agent.get("/v1/outputs?check=rpc");
    assert_eq!(outputs.status, 200);
    assert!(outputs.body.contains("SOLANA_RPC_URL"), "{}", outputs.body);
    assert!(!outputs.body.contains(KEY), "{}", outputs.body);
    let view = agent.get("/v1/checks/rpc");
    assert!(!view.body.contains(KEY), "{}", view.body);
    let log = agent.log();
    agent.terminate();
    assert!(!log.contains(KEY), "API key in the log");
}

#[test]
fn the_example_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let path = format!("{}/../examples/solana-rpc.toml", env!("CARGO_MANIFEST_DIR"));
    let r = common::warden(dir.path(), &["validate", "-c", &path], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // A broken endpoint is named.
    let bad = std::fs::read_to_string(&path)
        .unwrap()
        .replace("role = \"primary\"", "role = \"leader\"");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, bad).unwrap();
    let r = common::warden(dir.path(), &["validate", "-c", file.to_str().unwrap()], &[]);
    assert_ne!(r.code, 0);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("solana-rpc") && all.contains("leader"),
        "{all}"
    );
}
