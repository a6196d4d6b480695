//! Reading accounts consistently.
//!
//! `getMultipleAccounts` in batches of at most 100 keys, at `finalized`,
//! `jsonParsed`; every batch after the first carries `minContextSlot` =
//! the first batch's slot, so no batch reads an older state (a node that
//! cannot serve it answers -32016 and the run fails rather than mixing
//! slots). Token amounts are the raw `amount` string with `decimals`,
//! never `uiAmount`. Native (SOL) accounts get their rent-exempt reserve
//! from `getMinimumBalanceForRentExemption` of their size.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use warden_plugin_sdk::http::Http;
use warden_plugin_sdk::jsonrpc::JsonRpc;

/// SPL Token.
pub const TOKEN_PROGRAM: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
/// Token-2022.
pub const TOKEN_2022_PROGRAM: &str = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
/// System program.
pub const SYSTEM_PROGRAM: &str = "11111111111111111111111111111111";

/// One account as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Lamports.
    pub lamports: u64,
    /// Owner program.
    pub owner: String,
    /// Data size.
    pub space: u64,
    /// For token accounts: mint, raw amount, decimals, frozen.
    pub token: Option<Token>,
}

/// A token account's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Mint.
    pub mint: String,
    /// Raw amount.
    pub amount: u128,
    /// Decimals.
    pub decimals: u32,
    /// Frozen.
    pub frozen: bool,
}

/// All accounts at one slot.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The slot every batch was read at or after.
    pub slot: u64,
    /// `None`: the account does not exist.
    pub accounts: BTreeMap<String, Option<Account>>,
    /// Rent-exempt minimum by data size.
    pub rent: BTreeMap<u64, u64>,
    /// RPC calls made.
    pub calls: u64,
}

fn parse_account(v: &Value) -> Result<Option<Account>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let lamports = v["lamports"].as_u64().ok_or("account without lamports")?;
    let owner = v["owner"]
        .as_str()
        .ok_or("account without owner")?
        .to_string();
    let space = v["space"].as_u64().unwrap_or(0);
    let token = match v.pointer("/data/parsed/info") {
        Some(info) if v.pointer("/data/parsed/type").and_then(Value::as_str) == Some("account") => {
            let amount = info
                .pointer("/tokenAmount/amount")
                .and_then(Value::as_str)
                .ok_or("token account without tokenAmount.amount")?
                .parse::<u128>()
                .map_err(|e| format!("token amount: {e}"))?;
            Some(Token {
                mint: info["mint"].as_str().unwrap_or("").to_string(),
                amount,
                decimals: info
                    .pointer("/tokenAmount/decimals")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32,
                frozen: info["state"].as_str() == Some("frozen"),
            })
        }
        _ => None,
    };
    Ok(Some(Account {
        lamports,
        owner,
        space,
        token,
    }))
}

/// Reads `keys` (duplicates read once).
pub fn read(
    http: &Http,
    url: &str,
    keys: &[String],
    batch: usize,
    timeout: Duration,
) -> Result<Snapshot, String> {
    let rpc = JsonRpc::new(http, url).timeout(timeout);
    let mut unique: Vec<&String> = keys.iter().collect();
    unique.sort();
    unique.dedup();
    let mut snap = Snapshot::default();
    let mut min_slot: Option<u64> = None;
    for (i, chunk) in unique.chunks(batch.clamp(1, 100)).enumerate() {
        let mut opts = json!({"encoding": "jsonParsed", "commitment": "finalized"});
        if let Some(s) = min_slot {
            opts["minContextSlot"] = json!(s);
        }
        snap.calls += 1;
        let v: Value = rpc
            .call("getMultipleAccounts", json!([chunk, opts]))
            .map_err(|e| format!("getMultipleAccounts, batch {}: {e}", i + 1))?;
        let slot = v
            .pointer("/context/slot")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("getMultipleAccounts, batch {}: no context.slot", i + 1))?;
        if let Some(min) = min_slot
            && slot < min
        {
            return Err(format!(
                "getMultipleAccounts, batch {}: answered from slot {slot}, older than {min}",
                i + 1
            ));
        }
        min_slot.get_or_insert(slot);
        snap.slot = snap.slot.max(slot);
        let values = v["value"]
            .as_array()
            .ok_or("getMultipleAccounts: no value array")?;
        if values.len() != chunk.len() {
            return Err(format!(
                "getMultipleAccounts, batch {}: {} values for {} keys",
                i + 1,
                values.len(),
                chunk.len()
            ));
        }
        for (k, a) in chunk.iter().zip(values) {
            snap.accounts.insert((*k).clone(), parse_account(a)?);
        }
    }
    let sizes: Vec<u64> = snap
        .accounts
        .values()
        .flatten()
        .filter(|a| a.owner == SYSTEM_PROGRAM)
        .map(|a| a.space)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for space in sizes {
        snap.calls += 1;
        let r: u64 = rpc
            .call("getMinimumBalanceForRentExemption", json!([space]))
            .map_err(|e| format!("getMinimumBalanceForRentExemption({space}): {e}"))?;
        snap.rent.insert(space, r);
    }
    Ok(snap)
}

/// How a transaction signature stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Landed without error.
    Ok,
    /// Landed with an error.
    Failed(String),
    /// Unknown to the node (never landed, or pruned).
    NotFound,
}

/// `getSignatureStatuses` in batches of at most 256, searching history.
pub fn signature_statuses(
    http: &Http,
    url: &str,
    sigs: &[String],
    timeout: Duration,
    calls: &mut u64,
) -> Result<BTreeMap<String, TxStatus>, String> {
    let rpc = JsonRpc::new(http, url).timeout(timeout);
    let mut unique: Vec<&String> = sigs.iter().collect();
    unique.sort();
    unique.dedup();
    let mut out = BTreeMap::new();
    for (i, chunk) in unique.chunks(256).enumerate() {
        *calls += 1;
        let v: Value = rpc
            .call(
                "getSignatureStatuses",
                json!([chunk, {"searchTransactionHistory": true}]),
            )
            .map_err(|e| format!("getSignatureStatuses, batch {}: {e}", i + 1))?;
        let values = v["value"]
            .as_array()
            .filter(|a| a.len() == chunk.len())
            .ok_or_else(|| format!("getSignatureStatuses, batch {}: bad value", i + 1))?;
        for (sig, st) in chunk.iter().zip(values) {
            let status = if st.is_null() {
                TxStatus::NotFound
            } else if st["err"].is_null() {
                TxStatus::Ok
            } else {
                TxStatus::Failed(st["err"].to_string())
            };
            out.insert((*sig).clone(), status);
        }
    }
    Ok(out)
}

/// Chain time (unix seconds) of `slot`, or of the nearest earlier slot
/// with a block (skipped slots have none).
pub fn block_time(
    http: &Http,
    url: &str,
    slot: u64,
    timeout: Duration,
    calls: &mut u64,
) -> Result<i64, String> {
    let rpc = JsonRpc::new(http, url).timeout(timeout);
    let mut last = String::new();
    for s in (slot.saturating_sub(16)..=slot).rev() {
        *calls += 1;
        match rpc.call::<Option<i64>>("getBlockTime", json!([s])) {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => last = format!("no block time for slot {s}"),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("getBlockTime near slot {slot}: {last}"))
}
