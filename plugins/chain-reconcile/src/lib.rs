//! `chain-reconcile`: the application's expected state against the chain:
//! escrow balances (fixed amounts or milestone unlock schedules), stale
//! release locks, and lock and admin transactions.
//!
//! - [`source`]: the expected records, from a JSON file in a granted
//!   directory or the application's HTTP API (bearer token, pagination);
//! - [`chain`]: accounts read consistently (`getMultipleAccounts` batches of
//!   at most 100 keys at `finalized`, `minContextSlot` so no batch reads an
//!   older slot than the first);
//! - [`reconcile`]: discrepancy classes, pure;
//! - this module: the config and the report.

pub mod chain;
pub mod reconcile;
pub mod source;

use warden_plugin_sdk::prelude::*;
use warden_plugin_sdk::units::parse_duration;

pub use reconcile::{Discrepancy, Expected, Kind};

/// Where the expected records come from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The application's endpoint (JSON); `${env:NAME}` allowed.
    pub url: Option<String>,
    /// A JSON file in a granted directory.
    pub file: Option<String>,
    /// Environment variable holding a bearer token for `url`.
    pub token_env: Option<String>,
    /// Dot path of the array of records in each page (default: the body is
    /// the array).
    pub items: Option<String>,
    /// Dot path of the next page's cursor (absent or null: last page).
    pub next: Option<String>,
    /// Query parameter the cursor is sent in (default `cursor`).
    pub cursor_param: Option<String>,
    /// Most pages followed (default 1000).
    pub max_pages: Option<usize>,
}

/// Dot paths of the fields in each record.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The account address.
    pub account: String,
    /// `sol` or `spl` (default: `spl` when a mint is given, else `sol`).
    pub kind: Option<String>,
    /// The token mint (spl).
    pub mint: Option<String>,
    /// Path of the expected amount.
    pub amount: String,
    /// What the amounts count: `base` (lamports, a token's base units) or
    /// `whole` (SOL, whole tokens, converted with the mint's decimals).
    /// Required when amounts are strings or fractions; without it only
    /// integers are read, as base units.
    pub amount_unit: Option<AmountUnit>,
    /// An id shown in findings (default: the account).
    pub id: Option<String>,
    /// Dot path of an unlock schedule (array); when a record has one, the
    /// escrow must hold the amounts not unlocked yet at chain time.
    pub milestones: Option<String>,
    /// Path of a milestone's unlock time in unix seconds (`unlock_at`).
    pub milestone_unlock: Option<String>,
    /// Path of a milestone's amount (`amount`).
    pub milestone_amount: Option<String>,
}

/// What amounts count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AmountUnit {
    /// Lamports, a token's base units.
    Base,
    /// SOL, whole tokens.
    Whole,
}

/// Release-lock rows.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Locks {
    /// Where the rows come from.
    pub source: Source,
    /// Path of the row id.
    pub id: String,
    /// Path of the creation time (unix seconds).
    pub created_at: String,
    /// Path of the release transaction's signature (absent or null: none).
    pub signature: String,
    /// A lock without a signature older than this (chain time) is stale
    /// (default `15m`).
    pub stale_after: Option<String>,
}

/// Admin events with transactions to confirm.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Where the events come from.
    pub source: Source,
    /// Path of the event id.
    pub id: String,
    /// Path of the transaction signature.
    pub signature: String,
}

/// The check's config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The RPC endpoint; often `${output:solana-rpc.SOLANA_RPC_URL}`.
    pub rpc_url: String,
    /// The expected records.
    pub source: Source,
    /// Field mapping.
    pub fields: Fields,
    /// Release locks to check for staleness and confirmation.
    pub locks: Option<Locks>,
    /// Admin events whose transactions must have landed.
    pub admin: Option<Admin>,
    /// Allowed difference in base units before over/underfunded (default 0).
    pub tolerance: Option<u64>,
    /// Keys per `getMultipleAccounts` call (at most 100, the default).
    pub batch_size: Option<usize>,
    /// Timeout per call (default `10s`).
    pub timeout: Option<String>,
}

impl Config {
    fn check(&self) -> Result<(), String> {
        match (&self.source.url, &self.source.file) {
            (Some(_), Some(_)) | (None, None) => {
                return Err("config.source: set url or file, one of them".into());
            }
            _ => {}
        }
        if self.batch_size.is_some_and(|b| b == 0 || b > 100) {
            return Err("config.batch_size: 1 to 100".into());
        }
        if let Some(t) = &self.timeout {
            parse_duration(t).map_err(|e| format!("config.timeout: {e}"))?;
        }
        if let Some(l) = &self.locks {
            if (l.source.url.is_some()) == (l.source.file.is_some()) {
                return Err("config.locks.source: set url or file, one of them".into());
            }
            if let Some(t) = &l.stale_after {
                parse_duration(t).map_err(|e| format!("config.locks.stale_after: {e}"))?;
            }
        }
        if let Some(a) = &self.admin
            && (a.source.url.is_some()) == (a.source.file.is_some())
        {
            return Err("config.admin.source: set url or file, one of them".into());
        }
        // The URL may be a reference the agent fills in at run time.
        if !(self.rpc_url.starts_with("http://")
            || self.rpc_url.starts_with("https://")
            || self.rpc_url.contains("${output:"))
        {
            return Err("config.rpc_url: an http(s) URL or ${output:CHECK.KEY}".into());
        }
        Ok(())
    }
}

/// The standard plugin.
pub struct ChainReconcile;

impl Plugin for ChainReconcile {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::new("chain-reconcile", env!("CARGO_PKG_VERSION"))
            .description("Reconciles the application's expected balances with the chain")
            .default_schedule("@every 10m")
            .capability(Capability::Http)
            .capability(Capability::Filesystem)
            .capability(Capability::Environment)
    }

    fn validate(c: &Config) -> Result<(), String> {
        c.check()
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        run(ctx)
    }
}

/// One run.
pub fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
    let cfg = ctx.config.clone();
    cfg.check().map_err(Error::msg)?;
    let timeout = parse_duration(cfg.timeout.as_deref().unwrap_or("10s")).map_err(Error::msg)?;
    let records = source::load(ctx, &cfg.source, timeout)?;
    let expected = reconcile::expected(&records, &cfg.fields).map_err(Error::msg)?;
    let keys: Vec<String> = expected.iter().map(|e| e.account.clone()).collect();
    let snapshot = chain::read(
        ctx.http(),
        &cfg.rpc_url,
        &keys,
        cfg.batch_size.unwrap_or(100),
        timeout,
    )
    .map_err(Error::msg)?;
    let mut snapshot = snapshot;
    // Chain time of the snapshot: for unlock schedules and lock ages.
    let chain_time = chain::block_time(
        ctx.http(),
        &cfg.rpc_url,
        snapshot.slot,
        timeout,
        &mut snapshot.calls,
    )
    .map_err(Error::msg)?;
    let mut found =
        reconcile::reconcile(&expected, &snapshot, cfg.tolerance.unwrap_or(0), chain_time);
    let (locks, stale_after) = match &cfg.locks {
        None => (Vec::new(), 0),
        Some(l) => {
            let rows = source::load(ctx, &l.source, timeout)?;
            let locks = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Ok(reconcile::Lock {
                        id: source::text_at(r, &l.id)
                            .ok_or(format!("lock {i}: no id at {:?}", l.id))?,
                        created_at: reconcile::unix_seconds(source::at(r, &l.created_at))
                            .ok_or(format!("lock {i}: no unix time at {:?}", l.created_at))?,
                        signature: source::at(r, &l.signature)
                            .and_then(|v| v.as_str())
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    })
                })
                .collect::<Result<Vec<_>, String>>()
                .map_err(Error::msg)?;
            let stale = parse_duration(l.stale_after.as_deref().unwrap_or("15m"))
                .map_err(Error::msg)?
                .as_secs() as i64;
            (locks, stale)
        }
    };
    let admin = match &cfg.admin {
        None => Vec::new(),
        Some(a) => source::load(ctx, &a.source, timeout)?
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(reconcile::AdminEvent {
                    id: source::text_at(r, &a.id)
                        .ok_or(format!("admin event {i}: no id at {:?}", a.id))?,
                    signature: source::at(r, &a.signature)
                        .and_then(|v| v.as_str())
                        .map(String::from)
                        .ok_or(format!(
                            "admin event {i}: no signature at {:?}",
                            a.signature
                        ))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(Error::msg)?,
    };
    let sigs: Vec<String> = locks
        .iter()
        .filter_map(|l| l.signature.clone())
        .chain(admin.iter().map(|a| a.signature.clone()))
        .collect();
    let statuses = if sigs.is_empty() {
        Default::default()
    } else {
        chain::signature_statuses(
            ctx.http(),
            &cfg.rpc_url,
            &sigs,
            timeout,
            &mut snapshot.calls,
        )
        .map_err(Error::msg)?
    };
    found.extend(reconcile::events(
        &locks,
        &admin,
        &statuses,
        chain_time,
        stale_after,
    ));
    Ok(report(&expected, &snapshot, &found, chain_time))
}

fn report(
    expected: &[Expected],
    snap: &chain::Snapshot,
    found: &[Discrepancy],
    chain_time: i64,
) -> Report {
    let critical = found.iter().any(|d| d.class.critical());
    let status = if critical {
        Status::Critical
    } else if !found.is_empty() {
        Status::Warning
    } else {
        Status::Ok
    };
    let mut by_class = std::collections::BTreeMap::new();
    for d in found {
        *by_class.entry(d.class.name()).or_insert(0u64) += 1;
    }
    let summary = if found.is_empty() {
        format!(
            "{} accounts reconciled at slot {}",
            expected.len(),
            snap.slot
        )
    } else {
        format!(
            "{} discrepancies in {} accounts at slot {}: {}",
            found.len(),
            expected.len(),
            snap.slot,
            by_class
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let (exp_total, act_total) = reconcile::totals(expected, snap, chain_time);
    let mut r = Report::new(status, summary)
        .metric(Metric::new(
            "reconcile_accounts_checked",
            expected.len() as f64,
        ))
        .metric(Metric::new("reconcile_rpc_calls", snap.calls as f64))
        .metric(Metric::new("reconcile_snapshot_slot", snap.slot as f64))
        .metric(Metric::new("reconcile_chain_time", chain_time as f64).unit("unix seconds"))
        .metric(Metric::new("reconcile_expected_total", exp_total as f64).unit("base units"))
        .metric(Metric::new("reconcile_actual_total", act_total as f64).unit("base units"));
    for class in reconcile::Class::ALL {
        r = r.metric(
            Metric::new(
                "reconcile_discrepancies",
                by_class.get(class.name()).copied().unwrap_or(0) as f64,
            )
            .label("class", class.name()),
        );
    }
    for d in found {
        let mut f = Finding::new(
            format!("{}:{}", d.account, d.class.name()),
            d.class.name(),
            if d.class.critical() {
                Severity::High
            } else {
                Severity::Medium
            },
            format!("{} {}: {}", d.id, d.class.name(), d.detail),
        )
        .location(d.account.clone());
        if let Some(e) = d.expected {
            f = f.attribute("expected", e.to_string());
        }
        if let Some(a) = d.actual {
            f = f.attribute("actual", a.to_string());
        }
        r = r.finding(f);
    }
    r
}

warden_plugin_sdk::export!(ChainReconcile);
