//! `secret-scan`: a gitleaks-compatible secret scanner for the directories
//! a check grants.
//!
//! - [`config`]: gitleaks' config format (rules, allowlists, `[extend]`);
//! - [`pattern`]: Go regular expressions on Rust's `regex`;
//! - [`detect`]: detection in one file, with gitleaks' semantics;
//! - [`anchor`]: where a rule's matches can start, so it is searched only
//!   at or near its keyword occurrences;
//! - [`decode`]: base64, hex and percent decoding between detection passes;
//! - [`verify`]: asking GitHub, Slack or Stripe whether a token is live;
//! - [`shards`]: one scan split across instances, and their merge;
//! - [`scan`]: walking, the incremental cache, redaction, fingerprints,
//!   `.gitleaksignore`;
//! - this module: the plugin (its config, baselines, the report).
//!
//! The rule set shipped with the plugin is `default.toml` (gitleaks'
//! format); each rule's true- and false-positive examples are in
//! `default-examples.toml` and run by the tests.

pub mod anchor;
pub mod config;
pub mod decode;
pub mod detect;
pub mod pattern;
pub mod scan;
pub mod shards;
pub mod verify;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use warden_plugin_sdk::prelude::*;

use crate::config::{ConfigError, Loader};
use crate::detect::Detector;
use crate::pattern::Pattern;
use crate::scan::{Cache, Found, Settings, Stats};

/// The rule set shipped with the plugin (gitleaks' format).
pub const DEFAULT_RULES: &str = include_str!("../default.toml");
/// How errors name the shipped rule set.
pub const DEFAULT_ORIGIN: &str = "<default rules>";

/// State key of the incremental cache.
pub(crate) const CACHE_KEY: &str = "scan-cache";
/// State key of the fingerprints seen by earlier runs.
const KNOWN_KEY: &str = "known";
/// Largest cache kept in state (the agent's limit per value is 16 MiB).
const MAX_CACHE_BYTES: usize = 12 << 20;

/// A size: bytes, or a string with a unit (`512KiB`, `10MiB`, `1GB`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Size {
    /// Bytes.
    Bytes(u64),
    /// With a unit.
    Text(String),
}

impl Size {
    /// The size in bytes.
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            Size::Bytes(b) => Ok(*b),
            Size::Text(t) => warden_plugin_sdk::units::parse_size(t),
        }
    }
}

/// Which findings count as known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BaselineKind {
    /// Findings reported by this check's earlier runs.
    Previous,
    /// None (default, as gitleaks): every finding is new until it is in
    /// `baseline_file` or, under the agent, acknowledged
    /// (`POST /v1/findings/ack`).
    #[default]
    None,
}

/// The check's config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Scan only these files or directories (each inside a granted
    /// directory); default: every granted directory.
    #[serde(default)]
    pub paths: Vec<String>,
    /// A gitleaks config file (TOML, in a granted directory) instead of the
    /// shipped rules; `[extend] useDefault = true` extends the shipped rules.
    pub config_file: Option<String>,
    /// A gitleaks config inline (TOML text).
    pub rules_toml: Option<String>,
    /// Files larger than this are skipped (bytes or `10MiB`); default 10 MiB.
    pub max_file_size: Option<Size>,
    /// Follow symbolic links (default false).
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Skip paths (relative to the scanned directory) matching any of these
    /// regexes (Go syntax, like gitleaks' allowlist paths).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Read `.gitleaksignore` in each scanned directory (default true).
    pub gitleaks_ignore: Option<bool>,
    /// Ignore `gitleaks:allow` markers (default false).
    #[serde(default)]
    pub ignore_allow_marker: bool,
    /// Percent of each secret hidden in reports (default 75).
    pub redact: Option<u8>,
    /// Report secrets in clear (default false). Goes into the store and
    /// the API: use only where that is acceptable.
    #[serde(default)]
    pub show_secrets: bool,
    /// Which findings are known besides `baseline_file`: `none` (default)
    /// or `previous` (those reported by earlier runs).
    #[serde(default)]
    pub baseline: BaselineKind,
    /// A previous report (gitleaks JSON or SARIF from Warden) whose
    /// findings are known, in a granted directory.
    pub baseline_file: Option<String>,
    /// Skip files unchanged since the last run (default true).
    pub incremental: Option<bool>,
    /// Most findings in one report (default 1000; the rest are counted).
    pub max_findings: Option<usize>,
    /// The status of a run that could not see everything (an entry it
    /// could not list, open or read; a name that is not UTF-8; a file over
    /// `max_file_size`; a FIFO, socket or device): `warning` (default),
    /// `critical`, or `ok` (still counted and named in the summary).
    #[serde(default)]
    pub on_skipped: OnSkipped,
    /// Decode base64, hex and percent-encoded text and scan it again, up
    /// to this many times (gitleaks' `--max-decode-depth`; default 5, the
    /// same; 0 turns decoding off; at most 16).
    pub max_decode_depth: Option<usize>,
    /// Ask the provider whether each GitHub, Slack or Stripe token found is
    /// live (default false). This SENDS THE CANDIDATE TO ITS PROVIDER, and
    /// only to hosts the check grants in `allow.hosts`
    /// (`https://api.github.com`, `https://slack.com`,
    /// `https://api.stripe.com`, or `verify_urls`).
    #[serde(default)]
    pub verify: bool,
    /// Other API base URLs for verification (GitHub Enterprise, a proxy).
    #[serde(default)]
    pub verify_urls: VerifyUrls,
    /// Most verification requests per run (default 20; the rest are
    /// `unknown`).
    pub max_verifications: Option<usize>,
}

/// API base URLs for verification; unset ones are the providers' own.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyUrls {
    /// GitHub's REST API (default `https://api.github.com`).
    pub github: Option<String>,
    /// Slack's Web API (default `https://slack.com`).
    pub slack: Option<String>,
    /// Stripe's API (default `https://api.stripe.com`).
    pub stripe: Option<String>,
}

impl VerifyUrls {
    fn endpoints(&self) -> verify::Endpoints {
        let d = verify::Endpoints::default();
        verify::Endpoints {
            github: self.github.clone().unwrap_or(d.github),
            slack: self.slack.clone().unwrap_or(d.slack),
            stripe: self.stripe.clone().unwrap_or(d.stripe),
        }
    }
}

/// The status of a run that could not see everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnSkipped {
    /// At least warning.
    #[default]
    Warning,
    /// Critical.
    Critical,
    /// As the findings say.
    Ok,
}

const DEFAULT_MAX_FILE_SIZE: u64 = 10 << 20;
const DEFAULT_REDACT: u8 = 75;
const DEFAULT_MAX_FINDINGS: usize = 1000;
const DEFAULT_MAX_VERIFICATIONS: usize = 20;
/// Largest `max_decode_depth` (each level decodes what the one before
/// produced; real data nests two or three deep).
const MAX_DECODE_DEPTH: usize = 16;

/// The config's decode depth.
pub fn decode_depth(c: &Config) -> Result<usize, String> {
    match c.max_decode_depth {
        None => Ok(decode::DEFAULT_MAX_DEPTH),
        Some(d) if d <= MAX_DECODE_DEPTH => Ok(d),
        Some(d) => Err(format!(
            "config.max_decode_depth: {d} is over the limit of {MAX_DECODE_DEPTH}"
        )),
    }
}

/// The standard plugin.
pub struct SecretScan;

impl Plugin for SecretScan {
    type Config = Config;
    const SHARDED: bool = true;

    fn info() -> PluginInfo {
        PluginInfo::new("secret-scan", env!("CARGO_PKG_VERSION"))
            .description(
                "Finds leaked secrets in granted directories with gitleaks-compatible rules",
            )
            .default_schedule("@every 1h")
            .capability(Capability::Filesystem)
            .capability(Capability::State)
            .capability(Capability::Http)
    }

    fn validate(c: &Config) -> Result<(), String> {
        if c.config_file.is_some() && c.rules_toml.is_some() {
            return Err("config.config_file and config.rules_toml: set one, not both".into());
        }
        if let Some(s) = &c.max_file_size {
            s.bytes()
                .map_err(|e| format!("config.max_file_size: {e}"))?;
        }
        if c.redact.is_some_and(|r| r > 100) {
            return Err("config.redact: a percentage, 0 to 100".into());
        }
        decode_depth(c)?;
        for (field, url) in [
            ("github", &c.verify_urls.github),
            ("slack", &c.verify_urls.slack),
            ("stripe", &c.verify_urls.stripe),
        ] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(format!(
                    "config.verify_urls.{field}: {u:?} is not an http(s) URL"
                ));
            }
        }
        if c.max_findings == Some(0) {
            return Err("config.max_findings: must be at least 1".into());
        }
        for (i, e) in c.exclude.iter().enumerate() {
            Pattern::new(e).map_err(|e| format!("config.exclude[{i}]: {e}"))?;
        }
        for (i, p) in c.paths.iter().enumerate() {
            if !Path::new(p).is_absolute() {
                return Err(format!("config.paths[{i}]: {p:?} must be an absolute path"));
            }
        }
        Ok(())
    }

    /// Inline and shipped rules are loaded and every pattern compiled
    /// (about 0.1 s for gitleaks' 222 in the sandbox) when the check is
    /// validated, not before every run, which compiles only the patterns
    /// it uses. The config file is read at run time (validation has no
    /// grants).
    fn validate_on_load(c: &Config) -> Result<(), String> {
        if c.config_file.is_none() {
            let rules = load_rules(c, None).map_err(|e| format!("config.rules_toml: {e}"))?;
            rules
                .compile_all()
                .map_err(|e| format!("config.rules_toml: {e}"))?;
        }
        Ok(())
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        run(ctx)
    }
}

/// The loader for configs: `useDefault` means the shipped rules.
pub fn loader() -> Loader {
    Loader::new(DEFAULT_ORIGIN, DEFAULT_RULES)
}

/// The shipped rules.
pub fn default_rules() -> config::Config {
    loader()
        .load_str(DEFAULT_RULES, DEFAULT_ORIGIN, None)
        .expect("the shipped rules load")
}

fn load_rules(c: &Config, file: Option<&Path>) -> Result<config::Config, ConfigError> {
    let loader = loader();
    match (file, &c.rules_toml) {
        (Some(path), _) => loader.load_file(path),
        (None, Some(text)) => loader.load_str(text, "config.rules_toml", None),
        (None, None) => loader.load_str(DEFAULT_RULES, DEFAULT_ORIGIN, None),
    }
}

/// The scan settings a config asks for, with the granted directories.
pub fn settings(c: &Config, granted: &[PathBuf]) -> Result<Settings, String> {
    if granted.is_empty() {
        return Err("no directory to scan: grant one with allow.read_dirs (or --read-dir)".into());
    }
    let roots = if c.paths.is_empty() {
        granted.to_vec()
    } else {
        let mut roots = Vec::new();
        for (i, p) in c.paths.iter().enumerate() {
            let path = PathBuf::from(p);
            if !granted.iter().any(|g| path.starts_with(g)) {
                return Err(format!(
                    "config.paths[{i}]: {p:?} is not inside a granted directory ({})",
                    granted
                        .iter()
                        .map(|g| g.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            roots.push(path);
        }
        roots
    };
    Ok(Settings {
        roots,
        max_file_size: match &c.max_file_size {
            Some(s) => s
                .bytes()
                .map_err(|e| format!("config.max_file_size: {e}"))?,
            None => DEFAULT_MAX_FILE_SIZE,
        },
        follow_symlinks: c.follow_symlinks,
        exclude: c
            .exclude
            .iter()
            .map(|e| Pattern::new(e))
            .collect::<Result<_, _>>()?,
        redact: if c.show_secrets {
            0
        } else {
            c.redact.unwrap_or(DEFAULT_REDACT)
        },
        cache: c.incremental.unwrap_or(true),
        ignore_file: c.gitleaks_ignore.unwrap_or(true),
        shard: None,
    })
}

/// What the cache depends on: the rules' text and every option that
/// changes results.
fn cache_key(rules_text: &str, s: &Settings, c: &Config, decode_depth: usize) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(rules_text.as_bytes());
    h.update(
        format!(
            "{:?}|{}|{}|{}|{}|{}|{:?}|{:?}",
            s.max_file_size,
            s.follow_symlinks,
            s.redact,
            c.ignore_allow_marker,
            decode_depth,
            c.verify,
            c.verify_urls,
            s.exclude.iter().map(|p| p.as_str()).collect::<Vec<_>>()
        )
        .as_bytes(),
    );
    hex::encode(&h.finalize()[..16])
}

/// Known fingerprints from a baseline report: gitleaks JSON (an array,
/// `Fingerprint` = `file:rule:line`) or SARIF (`partialFingerprints`).
pub fn baseline_fingerprints(text: &str) -> Result<BTreeSet<String>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut set = BTreeSet::new();
    if let Some(items) = v.as_array() {
        for f in items {
            if let Some(fp) = f.get("Fingerprint").and_then(|f| f.as_str()) {
                set.insert(fp.to_string());
            }
        }
        return Ok(set);
    }
    let runs = v
        .get("runs")
        .and_then(|r| r.as_array())
        .ok_or("neither a gitleaks report (an array) nor SARIF (with runs)")?;
    for run in runs {
        for r in run
            .get("results")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(fps) = r.get("partialFingerprints").and_then(|f| f.as_object()) {
                set.extend(fps.values().filter_map(|v| v.as_str()).map(String::from));
            }
        }
    }
    Ok(set)
}

/// One run: scan, compare with the baseline, report. In a sharded run a
/// shard scans its share and reports it for the merge ([`shards`]), and
/// the merge does the rest.
pub fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
    let part = ctx.part();
    let c = ctx.config.clone();
    let mut settings = settings(&c, ctx.read_dirs()).map_err(Error::msg)?;
    let (rules, rules_text) = match &c.config_file {
        Some(f) => {
            let path = PathBuf::from(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::msg(format!("config.config_file {f:?}: {e}")))?;
            (load_rules(&c, Some(&path)), text)
        }
        None => (
            load_rules(&c, None),
            c.rules_toml.clone().unwrap_or_else(|| DEFAULT_RULES.into()),
        ),
    };
    let rules = rules.map_err(|e| Error::msg(e.to_string()))?;
    let rule_count = rules.rules.len();
    let depth = decode_depth(&c).map_err(Error::msg)?;
    let detector = Detector::new(rules)
        .ignore_allow_marker(c.ignore_allow_marker)
        .max_decode_depth(depth);
    let incremental = settings.cache;
    let key = cache_key(&rules_text, &settings, &c, depth);
    let previous: Option<Cache> = if incremental && !matches!(part, Part::Merge(_)) {
        ctx.state().get(CACHE_KEY).ok().flatten()
    } else {
        None
    };
    let max_verifications = c.max_verifications.unwrap_or(DEFAULT_MAX_VERIFICATIONS);
    let (found, stats, cache) = if let Part::Merge(parts) = &part {
        let (found, stats) = shards::merge(parts).map_err(Error::msg)?;
        let cache = shards::merge_caches(ctx.state(), parts.len(), &key, incremental);
        (found, stats, cache)
    } else {
        if let Part::Shard { index, count } = part {
            settings.shard = Some(if c.verify {
                // Each candidate is asked of its provider once per run
                // (verdicts are per run, one verifier each): with
                // verification on, the first shard scans everything.
                scan::Shard::all_or_nothing(index)
            } else {
                scan::Shard {
                    index,
                    count,
                    claimer: Some(ctx.claimer()),
                }
            });
        }
        let (found, stats, cache) = scan_share(
            ctx,
            &c,
            &detector,
            &settings,
            previous.as_ref(),
            &key,
            max_verifications,
        );
        // Never silently blind: a rule that could not compile found
        // nothing (only a config file's rules get here unvalidated).
        if let Some(e) = detector.config().compile_failure() {
            let source = match (&c.config_file, &c.rules_toml) {
                (Some(f), _) => format!("config.config_file {f:?}"),
                (None, Some(_)) => "config.rules_toml".to_string(),
                (None, None) => "the shipped rules".to_string(),
            };
            return Err(Error::msg(format!(
                "{source}: {e}; the scan cannot be trusted"
            )));
        }
        if let Some(shard) = &settings.shard {
            if incremental {
                shards::keep_cache(ctx.state(), shard, &cache)?;
            }
            return Ok(shards::report(&found, stats));
        }
        (found, stats, cache)
    };
    finish(
        ctx,
        &c,
        &detector,
        &settings,
        (found, stats, cache),
        rule_count,
    )
}

/// Scans what `settings` names (all of it, or a shard's share), asking
/// providers about up to `max_verifications` candidates when `verify`.
fn scan_share(
    ctx: &Context<Config>,
    c: &Config,
    detector: &Detector,
    settings: &Settings,
    previous: Option<&Cache>,
    key: &str,
    max_verifications: usize,
) -> (Vec<Found>, Stats, Cache) {
    if c.verify {
        let mut verifier =
            verify::Verifier::new(ctx.http(), c.verify_urls.endpoints(), max_verifications);
        let mut ask = |h: &detect::Hit| {
            let v = verifier.verify(&h.secret);
            let why = match &v {
                verify::Verdict::Unknown(why) => why.clone(),
                _ => String::new(),
            };
            (v.as_str().to_string(), why)
        };
        scan::scan_verifying(detector, settings, previous, key, Some(&mut ask))
    } else {
        scan::scan(detector, settings, previous, key)
    }
}

/// The end of a run (whole, or the merge of its shards): the baseline,
/// the cache and the known fingerprints kept, the report.
fn finish(
    ctx: &mut Context<Config>,
    c: &Config,
    detector: &Detector,
    settings: &Settings,
    (found, stats, cache): (Vec<Found>, Stats, Cache),
    rule_count: usize,
) -> Result<Report, Error> {
    let incremental = settings.cache;

    // Baseline: earlier runs' fingerprints and/or a report file.
    let mut known: BTreeSet<String> = BTreeSet::new();
    if c.baseline == BaselineKind::Previous {
        known = ctx
            .state()
            .get(KNOWN_KEY)
            .ok()
            .flatten()
            .unwrap_or_default();
    }
    if let Some(f) = &c.baseline_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::msg(format!("config.baseline_file {f:?}: {e}")))?;
        known.extend(
            baseline_fingerprints(&text)
                .map_err(|e| Error::msg(format!("config.baseline_file {f:?}: {e}")))?,
        );
    }
    let is_known =
        |f: &Found| known.contains(&f.fingerprint) || known.contains(&f.gitleaks_fingerprint());

    if incremental {
        let bytes = serde_json::to_vec(&cache).map(|b| b.len()).unwrap_or(0);
        if bytes <= MAX_CACHE_BYTES {
            ctx.state().set(CACHE_KEY, &cache)?;
        } else {
            warn!(
                "scan cache of {bytes} bytes is over {MAX_CACHE_BYTES}: next run rescans everything"
            );
            ctx.state().delete(CACHE_KEY);
        }
    }
    if c.baseline == BaselineKind::Previous {
        let seen: BTreeSet<&str> = found.iter().map(|f| f.fingerprint.as_str()).collect();
        ctx.state().set(KNOWN_KEY, &seen)?;
    }

    Ok(report(
        detector,
        &found,
        &stats,
        is_known,
        c.max_findings.unwrap_or(DEFAULT_MAX_FINDINGS),
        rule_count,
        c.on_skipped,
    ))
}

/// A finding's verification verdict, when verification was on.
fn verdict(f: &Found) -> Option<&str> {
    f.verified.as_ref().map(|(v, _)| v.as_str())
}

fn report(
    detector: &Detector,
    found: &[Found],
    stats: &Stats,
    is_known: impl Fn(&Found) -> bool,
    max_findings: usize,
    rule_count: usize,
    on_skipped: OnSkipped,
) -> Report {
    let new_count = found.iter().filter(|f| !is_known(f)).count();
    let live = found
        .iter()
        .filter(|f| verdict(f) == Some("verified"))
        .count();
    let known_count = found.len() - new_count;
    let files: BTreeSet<&str> = found.iter().map(|f| f.file.as_str()).collect();
    let mut status = if new_count > 0 {
        Status::Critical
    } else if known_count > 0 {
        Status::Warning
    } else {
        Status::Ok
    };
    // Never silently blind: what was not seen sets the status too.
    let blind = stats.error_count() + stats.skipped_count();
    if blind > 0 {
        status = status.worst(match on_skipped {
            OnSkipped::Warning => Status::Warning,
            OnSkipped::Critical => Status::Critical,
            OnSkipped::Ok => Status::Ok,
        });
    }
    let mut summary = if found.is_empty() {
        "no secrets found".to_string()
    } else {
        format!(
            "{} secret{} ({new_count} new, {known_count} known) in {} file{}",
            found.len(),
            if found.len() == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" },
        )
    };
    if live > 0 {
        summary.push_str(&format!(
            "; {live} verified live by {}",
            if live == 1 {
                "its provider"
            } else {
                "their providers"
            }
        ));
    }
    summary.push_str(&format!(
        "; {} files scanned, {} unchanged skipped",
        stats.scanned, stats.unchanged
    ));
    if !stats.errors.is_empty() {
        summary.push_str(&format!(
            "; {} unreadable (first: {})",
            stats.error_count(),
            stats.errors[..stats.errors.len().min(3)].join("; ")
        ));
    }
    if !stats.skipped.is_empty() {
        summary.push_str(&format!(
            "; {} not scanned (first: {})",
            stats.skipped_count(),
            stats.skipped[..stats.skipped.len().min(3)].join("; ")
        ));
    }
    if stats.loops > 0 {
        summary.push_str(&format!(
            "; {} directories reached again through links, walked once",
            stats.loops
        ));
    }
    if found.len() > max_findings {
        summary.push_str(&format!(
            "; {} findings not listed (max_findings {max_findings})",
            found.len() - max_findings
        ));
    }
    let mut r = Report::new(status, summary)
        .metric(Metric::new("secret_scan_findings", found.len() as f64))
        .metric(Metric::new("secret_scan_findings_new", new_count as f64))
        .metric(Metric::new("secret_scan_findings_verified", live as f64))
        .metric(Metric::new(
            "secret_scan_files_scanned",
            stats.scanned as f64,
        ))
        .metric(Metric::new(
            "secret_scan_files_unchanged",
            stats.unchanged as f64,
        ))
        .metric(Metric::new("secret_scan_files_binary", stats.binary as f64))
        .metric(Metric::new(
            "secret_scan_files_too_large",
            stats.too_large as f64,
        ))
        .metric(Metric::new(
            "secret_scan_files_excluded",
            stats.excluded as f64,
        ))
        .metric(Metric::new(
            "secret_scan_symlinks_skipped",
            stats.symlinks as f64,
        ))
        .metric(Metric::new(
            "secret_scan_errors",
            stats.error_count() as f64,
        ))
        .metric(Metric::new(
            "secret_scan_entries_skipped",
            stats.skipped_count() as f64,
        ))
        .metric(Metric::new(
            "secret_scan_directory_loops",
            stats.loops as f64,
        ))
        .metric(Metric::new("secret_scan_bytes", stats.bytes as f64).unit("bytes"))
        .metric(Metric::new("secret_scan_rules", rule_count as f64));
    for (phase, d) in [
        ("read", stats.timings.read),
        ("prefilter", stats.timings.prefilter),
        ("rules", stats.timings.rules),
        ("decode", stats.timings.decode),
    ] {
        r = r.metric(
            Metric::new("secret_scan_seconds", d.as_secs_f64())
                .unit("seconds")
                .label("phase", phase),
        );
    }
    // New findings first, so a truncated list still shows them.
    let mut ordered: Vec<&Found> = found.iter().collect();
    ordered.sort_by_key(|f| is_known(f));
    for f in ordered.into_iter().take(max_findings) {
        let known = is_known(f);
        let rule = detector.config().rule(&f.rule);
        let description = rule.map(|r| r.description.as_str()).unwrap_or("");
        let tags = rule
            .map_or(&[][..], |r| &r.tags[..])
            .iter()
            .chain(&f.decoded)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let what = if description.is_empty() {
            f.rule.as_str()
        } else {
            description
        };
        let location = if f.line > 0 {
            format!("{}:{}:{}", f.file, f.line, f.column)
        } else {
            f.file.clone()
        };
        let mut finding = Finding::new(
            &f.fingerprint,
            &f.rule,
            match (known, verdict(f)) {
                (_, Some("verified")) => Severity::Critical,
                (true, _) => Severity::Medium,
                (false, _) => Severity::High,
            },
            format!(
                "{} secret{}: {what}",
                if known { "known" } else { "new" },
                if verdict(f) == Some("verified") {
                    ", verified live"
                } else {
                    ""
                }
            ),
        )
        .location(location.clone())
        .attribute("file", &f.file)
        .attribute("line", f.line.to_string())
        .attribute("column", f.column.to_string())
        .attribute("end_line", f.end_line.to_string())
        .attribute("end_column", f.end_column.to_string())
        .attribute("entropy", format!("{:.4}", f.entropy))
        .attribute("match", &f.matched)
        .attribute("secret", &f.secret)
        .attribute("tags", tags)
        .attribute("description", description)
        .attribute("gitleaks_fingerprint", f.gitleaks_fingerprint())
        .attribute("baseline", if known { "known" } else { "new" });
        if let Some((v, why)) = &f.verified {
            finding = finding.attribute("verified", v);
            if !why.is_empty() {
                finding = finding.attribute("verified_reason", why);
            }
        }
        r = r.finding(finding);
    }
    r
}

warden_plugin_sdk::export!(SecretScan);
