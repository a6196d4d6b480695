//! A Solana JSON-RPC simulator: several endpoints at once, each a scripted
//! [`Node`], speaking the real request and response shapes (single calls
//! and batches) of `getHealth`, `getSlot`, `getGenesisHash`, `getVersion`,
//! `getLatestBlockhash`, `getBlockTime` and `getAccountInfo` (`jsonParsed`
//! token accounts).
//!
//! [`respond`] is the whole behaviour (used directly by the plugin's native
//! tests); [`serve`] puts a node behind an HTTP server on 127.0.0.1 (used
//! by the agent's tests and the benchmark).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// Genesis hash of mainnet-beta.
pub const MAINNET: &str = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d";
/// Genesis hash of devnet.
pub const DEVNET: &str = "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG";
/// The token account the simulator knows.
pub const TOKEN_ACCOUNT: &str = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin";
/// The SPL Token program.
pub const TOKEN_PROGRAM: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
/// The Token-2022 program.
pub const TOKEN_2022_PROGRAM: &str = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
/// The System program (native SOL accounts).
pub const SYSTEM_PROGRAM: &str = "11111111111111111111111111111111";

/// A token account's parsed state.
#[derive(Debug, Clone)]
pub struct SimToken {
    /// Mint.
    pub mint: String,
    /// Raw amount in base units.
    pub amount: u64,
    /// Mint decimals.
    pub decimals: u8,
    /// Frozen.
    pub frozen: bool,
}

/// An account the simulator serves through `getMultipleAccounts`.
#[derive(Debug, Clone)]
pub struct SimAccount {
    /// Lamports.
    pub lamports: u64,
    /// Owner program.
    pub owner: String,
    /// Data size.
    pub space: u64,
    /// Token state, for token accounts.
    pub token: Option<SimToken>,
}

/// Rent-exempt minimum for `space` bytes (the cluster's default rent).
pub fn rent_exempt(space: u64) -> u64 {
    (128 + space) * 6960
}

/// What `getHealth` says.
#[derive(Debug, Clone, PartialEq)]
pub enum SimHealth {
    /// `"ok"`.
    Ok,
    /// -32005 "Node is behind by N slots" with `data.numSlotsBehind`.
    Behind(u64),
    /// -32005 "Node is unhealthy" without data.
    Unhealthy,
}

/// One scripted endpoint.
#[derive(Debug, Clone)]
pub struct Node {
    /// Processed slot (finalized is 32 less).
    pub slot: u64,
    /// Genesis hash.
    pub genesis: String,
    /// Health answer.
    pub health: SimHealth,
    /// Methods answering -32601 (method not found).
    pub missing: Vec<String>,
    /// Answer everything with 429 and this `Retry-After` (seconds).
    pub throttle: Option<u64>,
    /// Answer every call with a JSON-RPC rate-limit error (HTTP 200).
    pub rpc_throttle: bool,
    /// Delay before answering (HTTP server only).
    pub delay: Duration,
    /// Close connections without answering.
    pub down: bool,
    /// `getAccountInfo` returns base64 data instead of `jsonParsed`.
    pub no_parsing: bool,
    /// Calls received, by method.
    pub calls: BTreeMap<String, u64>,
    /// Accounts by address.
    pub accounts: BTreeMap<String, SimAccount>,
    /// After `stale_after` `getMultipleAccounts` calls, answers come from
    /// this many slots further back (an inconsistent node behind a load
    /// balancer): a request with `minContextSlot` above that slot is
    /// refused with -32016.
    pub stale_by: u64,
    /// See `stale_by`.
    pub stale_after: u64,
    /// Known transaction signatures: `None` succeeded, `Some(error)` failed.
    pub signatures: BTreeMap<String, Option<String>>,
}

impl Node {
    /// A healthy mainnet node at `slot`.
    pub fn healthy(slot: u64) -> Node {
        Node {
            slot,
            genesis: MAINNET.into(),
            health: SimHealth::Ok,
            missing: Vec::new(),
            throttle: None,
            rpc_throttle: false,
            delay: Duration::ZERO,
            down: false,
            no_parsing: false,
            calls: BTreeMap::new(),
            accounts: BTreeMap::new(),
            stale_by: 0,
            stale_after: 0,
            signatures: BTreeMap::new(),
        }
    }

    /// Calls of `method` so far.
    pub fn calls(&self, method: &str) -> u64 {
        self.calls.get(method).copied().unwrap_or(0)
    }
}

/// The HTTP answer to a request body: status, headers, body.
pub fn respond(node: &mut Node, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        let e = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}});
        return (200, vec![], e.to_string().into_bytes());
    };
    let count = |node: &mut Node, r: &Value| {
        if let Some(m) = r.get("method").and_then(Value::as_str) {
            *node.calls.entry(m.to_string()).or_default() += 1;
        }
    };
    if let Some(secs) = node.throttle {
        match &req {
            Value::Array(items) => items.iter().for_each(|r| count(node, r)),
            r => count(node, r),
        }
        return (
            429,
            vec![("retry-after".into(), secs.to_string())],
            br#"{"jsonrpc":"2.0","error":{"code":429,"message":"Too many requests"},"id":null}"#
                .to_vec(),
        );
    }
    let answer = match &req {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|r| {
                    count(node, r);
                    one(node, r)
                })
                .collect(),
        ),
        r => {
            count(node, r);
            one(node, r)
        }
    };
    (
        200,
        vec![("content-type".into(), "application/json".into())],
        answer.to_string().into_bytes(),
    )
}

fn one(node: &Node, r: &Value) -> Value {
    let id = r.get("id").cloned().unwrap_or(Value::Null);
    let method = r.get("method").and_then(Value::as_str).unwrap_or("");
    let params = r.get("params").cloned().unwrap_or(json!([]));
    let ok = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
    let err = |code: i64, message: &str, data: Option<Value>| {
        let mut e = json!({"code": code, "message": message});
        if let Some(d) = data {
            e["data"] = d;
        }
        json!({"jsonrpc": "2.0", "id": id, "error": e})
    };
    if node.missing.iter().any(|m| m == method) {
        return err(-32601, "Method not found", None);
    }
    if node.rpc_throttle {
        return err(429, "Rate limit exceeded for this API key", None);
    }
    let context = json!({"slot": node.slot, "apiVersion": "2.1.21"});
    match method {
        "getHealth" => match node.health {
            SimHealth::Ok => ok(json!("ok")),
            SimHealth::Behind(n) => err(
                -32005,
                &format!("Node is behind by {n} slots"),
                Some(json!({"numSlotsBehind": n})),
            ),
            SimHealth::Unhealthy => err(-32005, "Node is unhealthy", None),
        },
        "getSlot" => {
            let commitment = params
                .get(0)
                .and_then(|c| c.get("commitment"))
                .and_then(Value::as_str)
                .unwrap_or("finalized");
            match commitment {
                "processed" => ok(json!(node.slot)),
                "confirmed" => ok(json!(node.slot.saturating_sub(2))),
                _ => ok(json!(node.slot.saturating_sub(32))),
            }
        }
        "getGenesisHash" => ok(json!(node.genesis)),
        "getVersion" => ok(json!({"solana-core": "2.1.21", "feature-set": 3271415109u64})),
        "getLatestBlockhash" => ok(json!({
            "context": context,
            "value": {"blockhash": "EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N", "lastValidBlockHeight": node.slot + 150}
        })),
        "getBlockTime" => match params.get(0).and_then(Value::as_u64) {
            Some(s) if s <= node.slot => ok(json!(1_700_000_000 + s / 3)),
            Some(s) => err(-32004, &format!("Block not available for slot {s}"), None),
            None => err(-32602, "Invalid params", None),
        },
        "getAccountInfo" => {
            let key = params.get(0).and_then(Value::as_str).unwrap_or("");
            if key != TOKEN_ACCOUNT {
                return ok(json!({"context": context, "value": null}));
            }
            let parsed = params
                .get(1)
                .and_then(|c| c.get("encoding"))
                .and_then(Value::as_str)
                == Some("jsonParsed");
            let data = if parsed && !node.no_parsing {
                json!({"program": "spl-token", "space": 165, "parsed": {"type": "account", "info": {
                    "mint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
                    "owner": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
                    "state": "initialized", "isNative": false,
                    "tokenAmount": {"amount": "1000000", "decimals": 6, "uiAmount": 1.0, "uiAmountString": "1"}
                }}})
            } else {
                json!(["AAAA", "base64"])
            };
            ok(json!({"context": context, "value": {
                "data": data, "executable": false, "lamports": 2039280,
                "owner": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "rentEpoch": 18446744073709551615u64, "space": 165
            }}))
        }
        "getSignatureStatuses" => {
            let Some(sigs) = params.get(0).and_then(Value::as_array) else {
                return err(-32602, "Invalid params", None);
            };
            if sigs.len() > 256 {
                return err(-32602, "Too many inputs provided; max 256", None);
            }
            let value: Vec<Value> = sigs
                .iter()
                .map(|s| match s.as_str().and_then(|s| node.signatures.get(s)) {
                    None => Value::Null,
                    Some(e) => json!({
                        "slot": node.slot.saturating_sub(100),
                        "confirmations": null,
                        "err": e.as_ref().map(|e| json!({"InstructionError": [0, e]})),
                        "confirmationStatus": "finalized",
                    }),
                })
                .collect();
            ok(json!({"context": context, "value": value}))
        }
        "getMinimumBalanceForRentExemption" => match params.get(0).and_then(Value::as_u64) {
            Some(space) => ok(json!(rent_exempt(space))),
            None => err(-32602, "Invalid params", None),
        },
        "getMultipleAccounts" => {
            let Some(keys) = params.get(0).and_then(Value::as_array) else {
                return err(-32602, "Invalid params: expected an array of keys", None);
            };
            if keys.len() > 100 {
                return err(-32602, "Too many inputs provided; max 100", None);
            }
            let opts = params.get(1).cloned().unwrap_or(json!({}));
            let stale = node.calls("getMultipleAccounts") > node.stale_after;
            let slot =
                node.slot
                    .saturating_sub(32)
                    .saturating_sub(if stale { node.stale_by } else { 0 });
            if let Some(min) = opts.get("minContextSlot").and_then(Value::as_u64)
                && min > slot
            {
                return err(
                    -32016,
                    "Minimum context slot has not been reached",
                    Some(json!({"contextSlot": slot})),
                );
            }
            let parsed = opts.get("encoding").and_then(Value::as_str) == Some("jsonParsed");
            let value: Vec<Value> = keys
                .iter()
                .map(|k| {
                    let Some(a) = k.as_str().and_then(|k| node.accounts.get(k)) else {
                        return Value::Null;
                    };
                    let data = match (&a.token, parsed) {
                        (Some(t), true) => json!({
                            "program": if a.owner == TOKEN_2022_PROGRAM { "spl-token-2022" } else { "spl-token" },
                            "space": a.space,
                            "parsed": {"type": "account", "info": {
                                "mint": t.mint,
                                "owner": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
                                "state": if t.frozen { "frozen" } else { "initialized" },
                                "isNative": false,
                                "tokenAmount": {
                                    "amount": t.amount.to_string(),
                                    "decimals": t.decimals,
                                    "uiAmount": t.amount as f64 / 10f64.powi(i32::from(t.decimals)),
                                    "uiAmountString": "",
                                }
                            }}
                        }),
                        _ => json!(["", "base64"]),
                    };
                    json!({"data": data, "executable": false, "lamports": a.lamports,
                           "owner": a.owner, "rentEpoch": 0, "space": a.space})
                })
                .collect();
            ok(json!({"context": {"slot": slot, "apiVersion": "2.1.21"}, "value": value}))
        }
        _ => err(-32601, "Method not found", None),
    }
}

/// Serves `nodes[index]` on 127.0.0.1; returns the port. Serves until the
/// process exits.
pub fn serve(nodes: Arc<Mutex<Vec<Node>>>, index: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let nodes = nodes.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                // One request per connection (`connection: close`).
                {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    let mut chunked = false;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            let (k, v) =
                                (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                            if k == "content-length" {
                                len = v.parse().unwrap_or(0);
                            } else if k == "transfer-encoding" && v.contains("chunked") {
                                chunked = true;
                            }
                        }
                    }
                    let mut body = Vec::new();
                    if chunked {
                        loop {
                            let mut size = String::new();
                            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                                return;
                            }
                            let n = usize::from_str_radix(
                                size.trim().split(';').next().unwrap_or(""),
                                16,
                            )
                            .unwrap_or(0);
                            let mut chunk = vec![0; n + 2];
                            if reader.read_exact(&mut chunk).is_err() {
                                return;
                            }
                            if n == 0 {
                                break;
                            }
                            body.extend_from_slice(&chunk[..n]);
                        }
                    } else {
                        body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                    }
                    let (down, delay) = {
                        let n = nodes.lock().expect("nodes");
                        (n[index].down, n[index].delay)
                    };
                    if down {
                        return;
                    }
                    std::thread::sleep(delay);
                    let (status, headers, out) = {
                        let mut n = nodes.lock().expect("nodes");
                        respond(&mut n[index], &body)
                    };
                    let mut head = format!(
                        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                        if status == 200 {
                            "OK"
                        } else {
                            "Too Many Requests"
                        },
                        out.len()
                    );
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&out);
                }
            });
        }
    });
    port
}
