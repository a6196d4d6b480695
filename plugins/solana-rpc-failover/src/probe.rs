//! What one run asks each endpoint, all endpoints at once.
//!
//! Round one, every endpoint concurrently: `getHealth`, `getSlot` at
//! `processed` and `finalized`, `getVersion`, `getGenesisHash` (until it has
//! been checked once), `getLatestBlockhash`, and `getAccountInfo` with
//! `jsonParsed` on the token account. Round two: `getBlockTime` of the
//! endpoint's finalized slot. An endpoint cooling down (throttled earlier)
//! is not asked anything.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use warden_plugin_sdk::http::{Http, Request};
use warden_plugin_sdk::jsonrpc::{JsonRpc, JsonRpcError, decode_response};

use crate::judge::History;
use crate::{Config, Settings};

/// Methods a config may require.
pub const CAPABILITY_METHODS: &[&str] = &["getLatestBlockhash", "getBlockTime", "getAccountInfo"];

/// What `getHealth` said.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// `"ok"`.
    Ok,
    /// -32005 with `numSlotsBehind`.
    Behind(u64),
    /// -32005 without it, or another unhealthy answer.
    Unhealthy(String),
    /// No answer.
    Failed(String),
}

/// How a required method fared.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodResult {
    /// It worked.
    Ok,
    /// -32601/-32602: not supported by this endpoint.
    Unsupported(String),
    /// Another failure.
    Failed(String),
}

/// One endpoint's answers.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Endpoint name.
    pub name: String,
    /// Not probed: cooling down until this time (ms since the epoch).
    pub cooling_until: Option<u64>,
    /// Throttled now: rest for this long.
    pub throttled: Option<Duration>,
    /// `getHealth`.
    pub health: Health,
    /// `getSlot` at `processed`.
    pub slot_processed: Option<u64>,
    /// `getSlot` at `finalized`.
    pub slot_finalized: Option<u64>,
    /// `getGenesisHash`, when asked this run.
    pub genesis: Option<String>,
    /// `getVersion` (`solana-core`).
    pub version: Option<String>,
    /// Required methods.
    pub methods: BTreeMap<String, MethodResult>,
    /// Slowest probe.
    pub latency: Option<Duration>,
    /// Latency of each probe, by method (`getSlot(processed)`, ...).
    pub latencies: BTreeMap<String, Duration>,
    /// Probes that failed (not throttling, not unsupported).
    pub errors: Vec<String>,
}

impl Probe {
    fn new(name: &str) -> Probe {
        Probe {
            name: name.to_string(),
            cooling_until: None,
            throttled: None,
            health: Health::Failed("not asked".into()),
            slot_processed: None,
            slot_finalized: None,
            genesis: None,
            version: None,
            methods: BTreeMap::new(),
            latency: None,
            latencies: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// True when nothing answered.
    pub fn unreachable(&self) -> bool {
        self.cooling_until.is_none()
            && self.throttled.is_none()
            && self.slot_processed.is_none()
            && matches!(self.health, Health::Failed(_))
    }
}

#[derive(Clone, Copy)]
enum Ask {
    Health,
    SlotProcessed,
    SlotFinalized,
    Version,
    Genesis,
    Blockhash,
    Account,
}

/// Probes every endpoint; `urls` are the expanded URLs by name.
pub fn probe_all(
    http: &Http,
    cfg: &Config,
    s: &Settings,
    urls: &BTreeMap<String, String>,
    history: &History,
    now_ms: u64,
) -> Vec<Probe> {
    let mut probes: Vec<Probe> = cfg.endpoints.iter().map(|e| Probe::new(&e.name)).collect();
    let mut requests: Vec<Request> = Vec::new();
    let mut asked: Vec<(usize, Ask)> = Vec::new();
    for (i, e) in cfg.endpoints.iter().enumerate() {
        let h = history.endpoints.get(&e.name);
        if let Some(until) = h.map(|h| h.cooldown_until_ms).filter(|&u| u > now_ms) {
            probes[i].cooling_until = Some(until);
            continue;
        }
        let rpc = JsonRpc::new(http, urls[&e.name].clone()).timeout(s.timeout);
        let mut ask = |what: Ask, method: &str, params: Value| {
            requests.push(rpc.request(method, params));
            asked.push((i, what));
        };
        ask(Ask::Health, "getHealth", json!([]));
        ask(
            Ask::SlotProcessed,
            "getSlot",
            json!([{"commitment": "processed"}]),
        );
        ask(
            Ask::SlotFinalized,
            "getSlot",
            json!([{"commitment": "finalized"}]),
        );
        ask(Ask::Version, "getVersion", json!([]));
        let genesis_known = h.is_some_and(|h| h.genesis_url.as_deref() == Some(e.url.as_str()));
        if s.genesis.is_some() && !genesis_known {
            ask(Ask::Genesis, "getGenesisHash", json!([]));
        }
        if s.methods.iter().any(|m| m == "getLatestBlockhash") {
            ask(
                Ask::Blockhash,
                "getLatestBlockhash",
                json!([{"commitment": "finalized"}]),
            );
        }
        if s.methods.iter().any(|m| m == "getAccountInfo")
            && let Some(account) = &cfg.token_account
        {
            ask(
                Ask::Account,
                "getAccountInfo",
                json!([account, {"encoding": "jsonParsed", "commitment": "finalized"}]),
            );
        }
    }
    let responses = http.send_all(&requests);
    for ((i, what), resp) in asked.into_iter().zip(responses) {
        let p = &mut probes[i];
        let result: Result<Value, JsonRpcError> = match resp {
            Ok(r) => {
                p.latency = p.latency.max(Some(r.elapsed));
                p.latencies.insert(ask_name(what).to_string(), r.elapsed);
                decode_response(&r)
            }
            Err(e) => Err(JsonRpcError::Http(e)),
        };
        record(p, what, result, s);
    }

    // Round two: getBlockTime of each endpoint's finalized slot.
    if s.methods.iter().any(|m| m == "getBlockTime") {
        let mut requests = Vec::new();
        let mut who = Vec::new();
        for (i, e) in cfg.endpoints.iter().enumerate() {
            let p = &probes[i];
            if p.cooling_until.is_some() || p.throttled.is_some() {
                continue;
            }
            let Some(slot) = p.slot_finalized else {
                probes[i].methods.insert(
                    "getBlockTime".into(),
                    MethodResult::Failed("no finalized slot to ask about".into()),
                );
                continue;
            };
            let rpc = JsonRpc::new(http, urls[&e.name].clone()).timeout(s.timeout);
            requests.push(rpc.request("getBlockTime", json!([slot])));
            who.push(i);
        }
        for (i, resp) in who.into_iter().zip(http.send_all(&requests)) {
            let p = &mut probes[i];
            let result: Result<Value, JsonRpcError> = match resp {
                Ok(r) => {
                    p.latency = p.latency.max(Some(r.elapsed));
                    p.latencies.insert("getBlockTime".to_string(), r.elapsed);
                    decode_response(&r)
                }
                Err(e) => Err(JsonRpcError::Http(e)),
            };
            let outcome = match result {
                Ok(v) if v.is_i64() || v.is_u64() || v.is_null() => Ok(()),
                Ok(v) => Err(JsonRpcError::Decode(format!("block time {v}"))),
                Err(e) => Err(e),
            };
            method_outcome(p, "getBlockTime", outcome, s);
        }
    }
    probes
}

fn throttle(p: &mut Probe, e: &JsonRpcError, s: &Settings) -> bool {
    if !e.is_rate_limited() {
        return false;
    }
    let wait = match e {
        JsonRpcError::Status {
            retry_after: Some(secs),
            ..
        } => Duration::from_secs(*secs),
        _ => s.cooldown,
    };
    p.throttled = Some(p.throttled.map_or(wait, |t| t.max(wait)));
    true
}

fn method_outcome(p: &mut Probe, method: &str, r: Result<(), JsonRpcError>, s: &Settings) {
    let result = match r {
        Ok(()) => MethodResult::Ok,
        Err(e) if throttle(p, &e, s) => return,
        Err(e) if e.is_unsupported() => MethodResult::Unsupported(e.to_string()),
        Err(e) => {
            p.errors.push(format!("{method}: {e}"));
            MethodResult::Failed(e.to_string())
        }
    };
    p.methods.insert(method.to_string(), result);
}

fn record(p: &mut Probe, what: Ask, r: Result<Value, JsonRpcError>, s: &Settings) {
    match what {
        Ask::Health => {
            p.health = match r {
                Ok(v) if v == "ok" => Health::Ok,
                Ok(v) => Health::Unhealthy(format!("getHealth answered {v}")),
                Err(JsonRpcError::Rpc {
                    code: -32005,
                    data,
                    message,
                }) => match data
                    .as_ref()
                    .and_then(|d| d.get("numSlotsBehind"))
                    .and_then(Value::as_u64)
                {
                    Some(n) => Health::Behind(n),
                    None => Health::Unhealthy(message),
                },
                Err(e) if throttle(p, &e, s) => Health::Failed("throttled".into()),
                Err(e) => {
                    p.errors.push(format!("getHealth: {e}"));
                    Health::Failed(e.to_string())
                }
            }
        }
        Ask::SlotProcessed | Ask::SlotFinalized | Ask::Version | Ask::Genesis => match r {
            Ok(v) => match what {
                Ask::SlotProcessed => p.slot_processed = v.as_u64(),
                Ask::SlotFinalized => p.slot_finalized = v.as_u64(),
                Ask::Version => {
                    p.version = v
                        .get("solana-core")
                        .and_then(Value::as_str)
                        .map(String::from)
                }
                _ => p.genesis = v.as_str().map(String::from),
            },
            Err(e) if throttle(p, &e, s) => {}
            Err(e) => p.errors.push(format!("{}: {e}", ask_name(what))),
        },
        Ask::Blockhash => {
            let outcome = r.and_then(|v| {
                v.pointer("/value/blockhash")
                    .and_then(Value::as_str)
                    .map(|_| ())
                    .ok_or_else(|| JsonRpcError::Decode("no value.blockhash".into()))
            });
            method_outcome(p, "getLatestBlockhash", outcome, s);
        }
        Ask::Account => {
            let outcome = r.and_then(|v| match v.pointer("/value") {
                Some(Value::Null) | None => {
                    Err(JsonRpcError::Decode("token account not found".into()))
                }
                Some(acc) => acc
                    .pointer("/data/parsed/info")
                    .map(|_| ())
                    .ok_or_else(|| JsonRpcError::Decode("account data not jsonParsed".into())),
            });
            method_outcome(p, "getAccountInfo", outcome, s);
        }
    }
}

fn ask_name(what: Ask) -> &'static str {
    match what {
        Ask::Health => "getHealth",
        Ask::SlotProcessed => "getSlot(processed)",
        Ask::SlotFinalized => "getSlot(finalized)",
        Ask::Version => "getVersion",
        Ask::Genesis => "getGenesisHash",
        Ask::Blockhash => "getLatestBlockhash",
        Ask::Account => "getAccountInfo",
    }
}
