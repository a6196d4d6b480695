//! `solana-rpc-failover`: picks the healthiest Solana RPC endpoint and
//! publishes it as `SOLANA_RPC_URL` / `SOLANA_RPC_ENDPOINT`.
//!
//! - [`probe`]: what one run asks each endpoint (concurrently);
//! - [`judge`]: the reference tip, eligibility and the choice, as a pure
//!   function of the probes, the config and the history kept in state;
//! - this module: the config, the state, the report.

pub mod judge;
pub mod probe;

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use warden_plugin_sdk::prelude::*;
use warden_plugin_sdk::redact;
use warden_plugin_sdk::units::parse_duration;

pub use judge::{Decision, History, judge};
pub use probe::{Health, MethodResult, Probe};

/// Genesis hashes of the public clusters.
pub const CLUSTERS: &[(&str, &str)] = &[
    (
        "mainnet-beta",
        "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d",
    ),
    ("devnet", "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG"),
    ("testnet", "4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY"),
];

/// The methods that must work unless the config says otherwise.
pub const DEFAULT_METHODS: &[&str] = &["getLatestBlockhash", "getBlockTime", "getAccountInfo"];

/// An endpoint's role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Preferred; failed back to once healthy for `failback_runs` runs.
    Primary,
    /// Used while no primary is eligible.
    #[default]
    Backup,
}

/// One endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Short name (published as `SOLANA_RPC_ENDPOINT`).
    pub name: String,
    /// URL; `${env:NAME}` takes an API key from a granted variable (shown
    /// redacted everywhere, written in clear only to the outputs file).
    pub url: String,
    /// `primary` or `backup` (default).
    #[serde(default)]
    pub role: Role,
    /// Preference among endpoints of the same role (higher first; default 1).
    pub weight: Option<f64>,
}

/// The check's config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The endpoints, at least one.
    pub endpoints: Vec<Endpoint>,
    /// `mainnet-beta`, `devnet` or `testnet`.
    pub cluster: Option<String>,
    /// The expected genesis hash (instead of, or checked against, `cluster`).
    pub genesis_hash: Option<String>,
    /// Methods that must work (default: getLatestBlockhash, getBlockTime,
    /// and getAccountInfo when `token_account` is set).
    pub required_methods: Option<Vec<String>>,
    /// A token account to test `jsonParsed` parsing with.
    pub token_account: Option<String>,
    /// Most slots behind the reference tip (default 50).
    pub max_slot_lag: Option<u64>,
    /// Slowest acceptable probe (default `2s`).
    pub max_latency: Option<String>,
    /// Runs the error rate is computed over (default 10).
    pub error_window: Option<usize>,
    /// Highest acceptable share of failed runs in the window (default 0.5).
    pub max_error_rate: Option<f64>,
    /// How long a throttled endpoint rests without `Retry-After` (default `60s`).
    pub cooldown: Option<String>,
    /// Slots by which the highest endpoint may lead the next before it is
    /// distrusted and the next sets the tip (default 150).
    pub leader_gap: Option<u64>,
    /// Runs a primary must be healthy before failing back to it (default 3).
    pub failback_runs: Option<u32>,
    /// Runs another endpoint must be clearly better before switching to it
    /// (default 3).
    pub better_runs: Option<u32>,
    /// Slots less lag that count as clearly better (default 25).
    pub better_slots: Option<u64>,
    /// Least time between two switches, unless the current endpoint became
    /// ineligible (default `5m`).
    pub min_switch_interval: Option<String>,
    /// Timeout of each probe (default `5s`).
    pub timeout: Option<String>,
}

/// Thresholds with defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Expected genesis hash.
    pub genesis: Option<String>,
    /// Methods that must work.
    pub methods: Vec<String>,
    /// `max_slot_lag`.
    pub max_slot_lag: u64,
    /// `max_latency`.
    pub max_latency: Duration,
    /// `error_window`.
    pub error_window: usize,
    /// `max_error_rate`.
    pub max_error_rate: f64,
    /// `cooldown`.
    pub cooldown: Duration,
    /// `leader_gap`.
    pub leader_gap: u64,
    /// `failback_runs`.
    pub failback_runs: u32,
    /// `better_runs`.
    pub better_runs: u32,
    /// `better_slots`.
    pub better_slots: u64,
    /// `min_switch_interval`.
    pub min_switch_interval: Duration,
    /// `timeout`.
    pub timeout: Duration,
}

impl Config {
    /// Checks the config and applies defaults; errors name the field.
    pub fn settings(&self) -> Result<Settings, String> {
        if self.endpoints.is_empty() {
            return Err("config.endpoints: at least one endpoint".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.name.is_empty() || !names.insert(e.name.as_str()) {
                return Err(format!(
                    "config.endpoints[{i}].name: {:?} is empty or used twice",
                    e.name
                ));
            }
            if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
                return Err(format!(
                    "config.endpoints[{i}].url: must start with http:// or https://"
                ));
            }
            if e.weight.is_some_and(|w| !w.is_finite() || w < 0.0) {
                return Err(format!("config.endpoints[{i}].weight: a number ≥ 0"));
            }
        }
        let cluster = match &self.cluster {
            None => None,
            Some(c) => Some(
                CLUSTERS
                    .iter()
                    .find(|(n, _)| n == c)
                    .map(|(_, h)| h.to_string())
                    .ok_or_else(|| {
                        format!("config.cluster: {c:?} is not mainnet-beta, devnet or testnet")
                    })?,
            ),
        };
        let genesis = match (cluster, &self.genesis_hash) {
            (Some(c), Some(g)) if &c != g => {
                return Err(format!(
                    "config.genesis_hash: {g:?} is not the genesis of cluster {:?}",
                    self.cluster.as_deref().unwrap_or("")
                ));
            }
            (c, g) => g.clone().or(c),
        };
        let methods = match &self.required_methods {
            Some(m) => m.clone(),
            None => DEFAULT_METHODS
                .iter()
                .filter(|m| **m != "getAccountInfo" || self.token_account.is_some())
                .map(|m| m.to_string())
                .collect(),
        };
        for (i, m) in methods.iter().enumerate() {
            if !probe::CAPABILITY_METHODS.contains(&m.as_str()) {
                return Err(format!(
                    "config.required_methods[{i}]: {m:?} is not one of {}",
                    probe::CAPABILITY_METHODS.join(", ")
                ));
            }
            if m == "getAccountInfo" && self.token_account.is_none() {
                return Err(format!(
                    "config.required_methods[{i}]: getAccountInfo needs config.token_account"
                ));
            }
        }
        let dur = |field: &str, v: &Option<String>, default: &str| {
            parse_duration(v.as_deref().unwrap_or(default))
                .map_err(|e| format!("config.{field}: {e}"))
        };
        let rate = self.max_error_rate.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&rate) {
            return Err("config.max_error_rate: between 0 and 1".into());
        }
        Ok(Settings {
            genesis,
            methods,
            max_slot_lag: self.max_slot_lag.unwrap_or(50),
            max_latency: dur("max_latency", &self.max_latency, "2s")?,
            error_window: self.error_window.unwrap_or(10).max(1),
            max_error_rate: rate,
            cooldown: dur("cooldown", &self.cooldown, "60s")?,
            leader_gap: self.leader_gap.unwrap_or(150),
            failback_runs: self.failback_runs.unwrap_or(3),
            better_runs: self.better_runs.unwrap_or(3).max(1),
            better_slots: self.better_slots.unwrap_or(25),
            min_switch_interval: dur("min_switch_interval", &self.min_switch_interval, "5m")?,
            timeout: dur("timeout", &self.timeout, "5s")?,
        })
    }
}

const HISTORY_KEY: &str = "history";

/// The standard plugin.
pub struct SolanaRpcFailover;

impl Plugin for SolanaRpcFailover {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::new("solana-rpc-failover", env!("CARGO_PKG_VERSION"))
            .description(
                "Probes Solana RPC endpoints and publishes the healthiest as SOLANA_RPC_URL",
            )
            .default_schedule("@every 30s")
            .capability(Capability::Http)
            .capability(Capability::Environment)
            .capability(Capability::State)
    }

    fn validate(c: &Config) -> Result<(), String> {
        c.settings().map(|_| ())
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        run(ctx)
    }
}

/// One run: probe, judge, remember, report.
pub fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
    let cfg = ctx.config.clone();
    let settings = cfg.settings().map_err(Error::msg)?;
    let now_ms = ctx
        .scheduled
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut history: History = ctx.state().get(HISTORY_KEY)?.unwrap_or_default();
    let mut urls = BTreeMap::new();
    for e in &cfg.endpoints {
        let url = ctx
            .expand_env(&e.url)
            .map_err(|err| Error::msg(format!("endpoint {}: {err}", e.name)))?;
        urls.insert(e.name.clone(), url);
    }
    let probes = probe::probe_all(ctx.http(), &cfg, &settings, &urls, &history, now_ms);
    let mut decision = judge(&cfg, &settings, &probes, &mut history, now_ms);
    // Error texts quote the URLs they failed on; show them as templates.
    for v in &mut decision.verdicts {
        for reason in &mut v.reasons {
            for e in &cfg.endpoints {
                *reason = reason.replace(&urls[&e.name], &redact::url(&e.url));
            }
        }
    }
    ctx.state().set(HISTORY_KEY, &history)?;
    Ok(report(&cfg, &decision, &probes, &urls))
}

fn report(cfg: &Config, d: &Decision, probes: &[Probe], urls: &BTreeMap<String, String>) -> Report {
    let ineligible: Vec<&judge::Verdict> = d
        .verdicts
        .iter()
        .filter(|v| !v.reasons.is_empty())
        .collect();
    let status = match &d.choice {
        None => Status::Critical,
        Some(_) if d.eligible_count == 0 => Status::Critical,
        Some(c) => {
            let role = cfg.endpoints.iter().find(|e| &e.name == c).map(|e| e.role);
            if role == Some(Role::Primary) && ineligible.is_empty() {
                Status::Ok
            } else {
                Status::Warning
            }
        }
    };
    let mut summary = match (&d.choice, d.eligible_count) {
        (None, _) => "no eligible endpoint and none published before".to_string(),
        (Some(c), 0) => format!("no eligible endpoint; {c} stays published (last good choice)"),
        (Some(c), _) if d.switched => format!(
            "switched to {c} (from {}): {}",
            d.previous.as_deref().unwrap_or("none"),
            d.why
        ),
        (Some(c), _) => format!("serving from {c}: {}", d.why),
    };
    if !ineligible.is_empty() {
        summary.push_str(&format!(
            "; ineligible: {}",
            ineligible
                .iter()
                .map(|v| format!("{} ({})", v.name, v.reasons.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut r = Report::new(status, summary);
    if let Some(tip) = d.tip {
        r = r.metric(Metric::new("solana_rpc_tip_slot", tip as f64));
    }
    r = r.metric(Metric::new(
        "solana_rpc_eligible_endpoints",
        d.eligible_count as f64,
    ));
    for v in &d.verdicts {
        let p = probes.iter().find(|p| p.name == v.name);
        let m = |name: &str, value: f64| Metric::new(name, value).label("endpoint", v.name.clone());
        if let Some(slot) = p.and_then(|p| p.slot_processed) {
            r = r.metric(m("solana_rpc_slot", slot as f64));
        }
        if let Some(lag) = v.lag {
            r = r.metric(m("solana_rpc_slot_lag", lag as f64));
        }
        if let Some(l) = p.and_then(|p| p.latency) {
            r = r.metric(m("solana_rpc_latency_seconds", l.as_secs_f64()).unit("seconds"));
        }
        for (method, l) in p.map(|p| &p.latencies).into_iter().flatten() {
            r = r.metric(
                m("solana_rpc_probe_latency_seconds", l.as_secs_f64())
                    .label("method", method.clone())
                    .unit("seconds"),
            );
        }
        r = r
            .metric(m(
                "solana_rpc_eligible",
                if v.reasons.is_empty() { 1.0 } else { 0.0 },
            ))
            .metric(m("solana_rpc_error_rate", v.error_rate));
        for (class, reason) in v.classes.iter().zip(&v.reasons) {
            r = r.finding(
                Finding::new(
                    format!("{}:{class}", v.name),
                    class.clone(),
                    Severity::Medium,
                    format!("{} is ineligible: {reason}", v.name),
                )
                .location(redact::url(
                    &cfg.endpoints
                        .iter()
                        .find(|e| e.name == v.name)
                        .map(|e| e.url.clone())
                        .unwrap_or_default(),
                ))
                .attribute("endpoint", v.name.clone()),
            );
        }
    }
    if let Some(c) = &d.choice
        && let Some(url) = urls.get(c)
    {
        r = r
            .output("SOLANA_RPC_URL", url.clone())
            .output("SOLANA_RPC_ENDPOINT", c.clone());
    }
    r
}

warden_plugin_sdk::export!(SolanaRpcFailover);
