//! `env-policy`: a service's production checklist over its environment.
//!
//! Reads env files (`.env`, `*.env`, systemd units' `Environment=` and
//! `EnvironmentFile=`) in granted directories and the granted environment
//! variables, then checks [`policy::Rule`]s on the effective value of
//! each variable (the last definition wins, as systemd has it): required,
//! forbidden, forbidden values, one-of, regex, minimum length, lists that
//! must contain an exact item or another variable's exact value; per
//! profile. Every violation is a finding naming the variable and its
//! `file:line`; a secret's value never appears in a finding, a summary or
//! a log.
//!
//! Principal types: [`Config`], [`policy::Rule`], [`envfile::Definition`].

pub mod envfile;
pub mod policy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use warden_plugin_sdk::prelude::*;

use envfile::{Definition, Parsed};
use policy::{Level, Rule};

/// The check's `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The profile in force (`production`): rules naming other profiles
    /// are skipped.
    #[serde(default)]
    pub profile: Option<String>,
    /// Env files and systemd units (`.service`, `.conf` drop-ins), in
    /// order: a later definition overrides an earlier one.
    #[serde(default)]
    pub files: Vec<String>,
    /// Directories whose `.env` and `*.env` files are read, in name order,
    /// before `files`.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Also read the granted environment variables (`allow.env`), last
    /// (default true).
    #[serde(default)]
    pub environment: Option<bool>,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// How many files one run reads at most (units' includes counted).
const MAX_FILES: usize = 256;
/// How large one file may be.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The plugin.
pub struct EnvPolicy;

impl Plugin for EnvPolicy {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::new("env-policy", env!("CARGO_PKG_VERSION"))
            .description(
                "Production checklists over env files, systemd units and granted environment \
                 variables: required, forbidden, one-of, regex, lists with exact origins; \
                 never shows a secret.",
            )
            .default_schedule("@every 10m")
            .capability(Capability::Filesystem)
            .capability(Capability::Environment)
    }

    fn validate(c: &Config) -> Result<(), String> {
        if c.rules.is_empty() {
            return Err("config.rules: needs at least one rule".into());
        }
        for (i, r) in c.rules.iter().enumerate() {
            r.validate(&format!("config.rules[{i}]"))?;
        }
        if c.files.is_empty() && c.dirs.is_empty() && c.environment == Some(false) {
            return Err(
                "config: nothing to read (set files or dirs, or leave environment on)".into(),
            );
        }
        for (field, list) in [("files", &c.files), ("dirs", &c.dirs)] {
            for (i, p) in list.iter().enumerate() {
                if !Path::new(p).is_absolute() {
                    return Err(format!(
                        "config.{field}[{i}]: {p:?} is not an absolute path"
                    ));
                }
            }
        }
        Ok(())
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        run(ctx)
    }
}

/// Where the definitions came from, and what went wrong reading them.
#[derive(Default)]
struct Sources {
    definitions: Vec<Definition>,
    files: Vec<String>,
    findings: Vec<Finding>,
}

impl Sources {
    fn read(&mut self, path: &Path, optional: bool, depth: usize) -> Result<(), Error> {
        let shown = path.display().to_string();
        if self.files.len() >= MAX_FILES {
            return Err(Error::msg(format!("over {MAX_FILES} files to read")));
        }
        let text = match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                return Err(Error::msg(format!(
                    "{shown}: over {} KiB, not an env file",
                    MAX_FILE_BYTES >> 10
                )));
            }
            Ok(_) => std::fs::read_to_string(path),
            Err(e) => Err(e),
        };
        let text = match text {
            Ok(t) => t,
            Err(_) if optional => return Ok(()),
            Err(e) if depth > 0 => {
                // A unit's EnvironmentFile= that cannot be read: the unit
                // would not start.
                self.findings.push(
                    Finding::new(
                        format!("env-policy/unreadable/{shown}"),
                        "env-policy/unreadable",
                        Severity::High,
                        format!(
                            "EnvironmentFile {shown} cannot be read ({e}); the unit would not start"
                        ),
                    )
                    .location(shown),
                );
                return Ok(());
            }
            Err(e) => {
                return Err(Error::msg(format!(
                    "cannot read {shown}: {e} (is it in allow.read_dirs?)"
                )));
            }
        };
        self.files.push(shown.clone());
        let parsed: Parsed = if envfile::is_unit(path) {
            envfile::unit(&text, &shown)
        } else {
            envfile::dotenv(&text, &shown)
        };
        for m in parsed.malformed {
            self.findings.push(
                Finding::new(
                    format!("env-policy/malformed/{}", m.location),
                    "env-policy/malformed",
                    Severity::Medium,
                    format!("{}: {}", m.location, m.why),
                )
                .location(m.location),
            );
        }
        self.definitions.extend(parsed.definitions);
        // systemd: EnvironmentFile= overrides Environment=.
        if depth < 2 {
            for (p, optional) in parsed.includes {
                self.read(&p, optional, depth + 1)?;
            }
        }
        Ok(())
    }
}

fn env_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::msg(format!(
            "cannot read {}: {e} (is it in allow.read_dirs?)",
            dir.display()
        ))
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n == ".env" || n.ends_with(".env"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// One run.
pub fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
    let c = ctx.config.clone();
    let profile = c.profile.as_deref();
    let mut sources = Sources::default();
    for d in &c.dirs {
        for f in env_files(Path::new(d))? {
            sources.read(&f, false, 0)?;
        }
    }
    for f in &c.files {
        sources.read(Path::new(f), false, 0)?;
    }
    let rules: Vec<(usize, &Rule)> = c
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.applies(profile))
        .collect();
    if c.environment.unwrap_or(true) {
        let mut keys: Vec<&str> = rules.iter().map(|(_, r)| r.key.as_str()).collect();
        keys.extend(
            rules
                .iter()
                .filter_map(|(_, r)| r.contains_value_of.as_deref()),
        );
        keys.sort();
        keys.dedup();
        for k in keys {
            if let Some(value) = ctx.env(k) {
                sources.definitions.push(Definition {
                    key: k.to_string(),
                    value,
                    location: "environment".into(),
                });
            }
        }
    }
    // The effective environment, and variables defined more than once.
    let mut env: BTreeMap<String, Definition> = BTreeMap::new();
    let mut findings = std::mem::take(&mut sources.findings);
    for d in &sources.definitions {
        if let Some(before) = env.insert(d.key.clone(), d.clone())
            && before.location != d.location
        {
            findings.push(
                Finding::new(
                    format!("env-policy/overridden/{}/{}", d.key, before.location),
                    "env-policy/overridden",
                    Severity::Info,
                    format!(
                        "{} is defined at {} and again at {}; the latter is in force",
                        d.key, before.location, d.location
                    ),
                )
                .location(d.location.clone()),
            );
        }
    }
    let mut status = if findings.iter().any(|f| f.severity >= Severity::Medium) {
        Status::Warning
    } else {
        Status::Ok
    };
    let mut failed = Vec::new();
    let mut broken_rules = std::collections::BTreeSet::new();
    for (i, rule) in &rules {
        for v in rule.check(*i, &env) {
            broken_rules.insert(*i);
            let (severity, s) = match v.level {
                Level::Critical => (Severity::Critical, Status::Critical),
                Level::Warning => (Severity::Medium, Status::Warning),
            };
            status = status.worst(s);
            let location = v
                .location
                .clone()
                .unwrap_or_else(|| "not defined".to_string());
            let mut f = Finding::new(
                format!("env-policy/{}/{}/{}", v.kind, v.key, v.detail),
                format!("env-policy/{}", v.kind),
                severity,
                format!("{} [{location}]", v.message),
            )
            .location(location)
            .attribute("key", v.key.clone());
            if let Some(p) = profile {
                f = f.attribute("profile", p);
            }
            findings.push(f);
            failed.push(v.message);
        }
    }
    let scope = match profile {
        Some(p) => format!("{p}: "),
        None => String::new(),
    };
    let read = {
        let n = sources.files.len();
        let files = if n == 1 {
            "1 file".to_string()
        } else {
            format!("{n} files")
        };
        if c.environment.unwrap_or(true) {
            format!("{files} and the environment")
        } else {
            files
        }
    };
    let summary = if failed.is_empty() {
        format!(
            "{scope}{} rules hold over {} variables from {read}",
            rules.len(),
            env.len()
        )
    } else {
        let mut shown: Vec<String> = failed.iter().take(5).cloned().collect();
        if failed.len() > 5 {
            shown.push(format!("and {} more", failed.len() - 5));
        }
        format!(
            "{scope}{} of {} rules broken: {}",
            broken_rules.len(),
            rules.len(),
            shown.join("; ")
        )
    };
    let mut report = Report::new(status, summary)
        .metric(
            Metric::new(
                "env_policy_rules",
                (rules.len() - broken_rules.len()) as f64,
            )
            .label("result", "pass"),
        )
        .metric(Metric::new("env_policy_rules", broken_rules.len() as f64).label("result", "fail"))
        .metric(Metric::new("env_policy_variables", env.len() as f64))
        .metric(Metric::new("env_policy_files", sources.files.len() as f64));
    for f in findings {
        report = report.finding(f);
    }
    Ok(report)
}

warden_plugin_sdk::export!(EnvPolicy);
