//! `warden.toml`: parsing, validation and the profile rules.
//!
//! [`Config::load`] reads a file (or the embedded defaults) and hands each
//! section to the module that owns it ([`agent`], [`api`], [`pins`],
//! [`alerting`], [`notifier`], [`maintenance`],
//! [`check`], [`action`]; grants go on to the capability modules of
//! [`warden_runtime::caps`]). Each section checks itself, so every problem
//! is reported at once, as a typed [`ConfigError`] naming the file, the
//! line, the section or check, and the field:
//!
//! ```text
//! warden.toml:14: check "api": timeout: "10": missing unit (ms, s, m, h, d)
//! warden.toml:22: check "rpc": allow.hosts[0]: "ftp://x": scheme must be http or https
//! ```
//!
//! The profile (`local`, `staging`, `production`, or `WARDEN_PROFILE`)
//! decides what is refused ([`profile`]).

pub mod action;
pub mod agent;
pub mod alerting;
pub mod api;
pub mod check;
pub mod error;
pub mod maintenance;
pub mod notifier;
mod pins;
pub mod profile;
pub mod secret;
mod source;
mod status;
mod status_page;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

pub use action::ActionConfig;
pub use agent::{Actions, AgentSection};
pub use alerting::AlertingSection;
pub use api::ApiSection;
pub use check::CheckConfig;
pub use error::{ConfigError, ConfigErrors, Scope};
pub use maintenance::Maintenance;
pub use notifier::NotifierConfig;
pub use profile::Profile;
use source::Source;
pub use status::ReloadStatus;
pub use status_page::StatusPageSection;

/// sha256 of config text, hex (what tells a reload the file changed).
pub fn text_sha256(text: &str) -> String {
    warden_runtime::sha256_hex(text.as_bytes())
}

/// The configuration used when `warden run` finds no config file.
pub const DEFAULT_CONFIG: &str = include_str!("../default.toml");
/// Name shown for the embedded defaults in messages.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded defaults>";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    agent: Option<Spanned<toml::Table>>,
    #[serde(default)]
    api: Option<Spanned<toml::Table>>,
    #[serde(default)]
    alerting: Option<Spanned<toml::Table>>,
    #[serde(default)]
    notifier: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    maintenance: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    plugin: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    check: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    action: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    status_page: Option<Spanned<toml::Table>>,
}

fn unspan(t: Spanned<toml::Table>) -> (toml::Table, Range<usize>) {
    let span = t.span();
    (t.into_inner(), span)
}

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File it came from (for messages).
    pub source: String,
    /// The file, when it came from one (what a reload reads again).
    pub path: Option<std::path::PathBuf>,
    /// sha256 of its text, hex.
    pub sha256: String,
    /// `[agent]`.
    pub agent: AgentSection,
    /// `[api]`.
    pub api: ApiSection,
    /// Pins: plugin name → sha256.
    pub pins: BTreeMap<String, String>,
    /// Checks, in file order.
    pub checks: Vec<CheckConfig>,
    /// Actions, in file order.
    pub actions: Vec<ActionConfig>,
    /// `[alerting]`.
    pub alerting: AlertingSection,
    /// `[[notifier]]`s, in file order.
    pub notifiers: Vec<NotifierConfig>,
    /// `[[maintenance]]` windows, in file order.
    pub maintenance: Vec<Maintenance>,
    /// `[status_page]`.
    pub status_page: StatusPageSection,
}

impl Config {
    /// The config file a command uses: `explicit` (`-c`), else
    /// `$WARDEN_CONFIG`, else `./warden.toml` if it exists (`None`: the
    /// embedded defaults).
    pub fn find(explicit: Option<&Path>) -> Option<std::path::PathBuf> {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("WARDEN_CONFIG").map(Into::into))
            .or_else(|| Some(std::path::PathBuf::from("warden.toml")).filter(|p| p.is_file()))
    }

    /// Loads `path`, or the embedded defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigErrors(vec![ConfigError {
                        file: p.display().to_string(),
                        line: None,
                        scope: Scope::File,
                        field: None,
                        message: format!("cannot read: {e}"),
                    }])
                })?;
                let base = p.parent().unwrap_or(Path::new("."));
                Self::parse(&text, &p.display().to_string(), base).map(|mut c| {
                    c.path = Some(p.to_path_buf());
                    c
                })
            }
            None => Self::parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME, Path::new(".")),
        }
    }

    /// Parses and validates config text; relative paths resolve against
    /// `base` (the config file's directory).
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let src = Source::new(text, file, base);
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| src.line_at(s.start)).unwrap_or(0);
            ConfigErrors(vec![src.error(line, Scope::File, None, e.message())])
        })?;
        let mut errors = Vec::new();
        let agent = AgentSection::parse(&src, raw.agent.map(unspan), &mut errors);
        let api = ApiSection::parse(&src, raw.api.map(unspan), &mut errors);
        let alerting = AlertingSection::parse(&src, raw.alerting.map(unspan), &mut errors);
        let mut notifier_names = HashSet::new();
        let notifiers: Vec<NotifierConfig> = raw
            .notifier
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let (table, span) = unspan(t);
                NotifierConfig::parse(&src, i, table, &span, &mut notifier_names, &mut errors)
            })
            .collect();
        let mut maintenance_names = HashSet::new();
        let maintenance: Vec<Maintenance> = raw
            .maintenance
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let (table, span) = unspan(t);
                Maintenance::parse(&src, i, table, &span, &mut maintenance_names, &mut errors)
            })
            .collect();
        let pins = pins::parse(
            &src,
            raw.plugin.into_iter().map(unspan).collect(),
            &mut errors,
        );

        let mut checks = Vec::new();
        let mut names = HashSet::new();
        let mut references = Vec::new();
        for (index, t) in raw.check.into_iter().enumerate() {
            let (table, span) = unspan(t);
            if let Some(parsed) =
                CheckConfig::parse(&src, index, table, &span, &mut names, &mut errors)
            {
                checks.push(parsed.check);
                references.extend(parsed.references);
            }
        }
        let mut actions = Vec::new();
        let mut action_names = HashSet::new();
        for (index, t) in raw.action.into_iter().enumerate() {
            let (table, span) = unspan(t);
            if let Some((action, refs)) =
                ActionConfig::parse(&src, index, table, &span, &mut action_names, &mut errors)
            {
                if !names.contains(&action.check) {
                    errors.push(src.error(
                        action.on_line,
                        Scope::Action(format!("action {:?}", action.name)),
                        Some("on.check"),
                        format!("no check named {:?}", action.check),
                    ));
                }
                actions.push(action);
                references.extend(refs);
            }
        }
        // Routes name notifiers that exist.
        for (i, name) in alerting.notify.iter().enumerate() {
            if !notifier_names.contains(name) {
                errors.push(src.error(
                    alerting.notify_line,
                    Scope::Alerting,
                    Some(&format!("notify[{i}]")),
                    format!("no [[notifier]] named {name:?}"),
                ));
            }
        }
        for (i, route) in alerting.routes.iter().enumerate() {
            for (j, name) in route.notify.iter().enumerate() {
                if !notifier_names.contains(name) {
                    errors.push(src.error(
                        alerting.routes_line,
                        Scope::Alerting,
                        Some(&format!("route[{i}].notify[{j}]")),
                        format!("no [[notifier]] named {name:?}"),
                    ));
                }
            }
        }
        for c in &checks {
            for (i, name) in c.notify.iter().flatten().enumerate() {
                if !notifier_names.contains(name) {
                    errors.push(src.error(
                        c.notify_line,
                        Scope::Check(format!("check {:?}", c.name)),
                        Some(&format!("notify[{i}]")),
                        format!("no [[notifier]] named {name:?}"),
                    ));
                }
            }
        }
        dependency_errors(&src, &checks, &mut errors);
        let check_names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        let status_page =
            StatusPageSection::parse(&src, raw.status_page.map(unspan), &check_names, &mut errors);
        for (mut at, r) in references {
            if !names.contains(&r.check) {
                at.message = format!("${{output:{r}}} names no check {:?}", r.check);
                errors.push(at);
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let config = Config {
            source: file.to_string(),
            path: None,
            sha256: text_sha256(text),
            agent,
            api,
            pins,
            checks,
            actions,
            alerting,
            notifiers,
            maintenance,
            status_page,
        };
        let unsafe_reasons = config.unsafe_settings();
        match config.agent.profile {
            Profile::Production if !unsafe_reasons.is_empty() => Err(ConfigErrors(
                unsafe_reasons
                    .into_iter()
                    .map(|r| ConfigError {
                        file: file.to_string(),
                        line: None,
                        scope: Scope::Production,
                        field: None,
                        message: r,
                    })
                    .collect(),
            )),
            _ => Ok(config),
        }
    }
}

/// `depends_on` names other checks that exist, and no check depends on
/// itself through others (each would silence the other).
fn dependency_errors(src: &Source<'_>, checks: &[CheckConfig], errors: &mut Vec<ConfigError>) {
    let index: std::collections::HashMap<&str, &CheckConfig> =
        checks.iter().map(|c| (c.name.as_str(), c)).collect();
    for c in checks {
        let scope = || Scope::Check(format!("check {:?}", c.name));
        for (i, parent) in c.depends_on.iter().enumerate() {
            let field = format!("depends_on[{i}]");
            if !index.contains_key(parent.as_str()) {
                errors.push(src.error(
                    c.depends_on_line,
                    scope(),
                    Some(&field),
                    format!("no check named {parent:?}"),
                ));
                continue;
            }
            // Walk up from the parent; reaching `c` again is a cycle.
            let mut seen = HashSet::new();
            let mut stack = vec![parent.as_str()];
            let mut path = None;
            while let Some(n) = stack.pop() {
                if n == c.name {
                    path = Some(n);
                    break;
                }
                if seen.insert(n)
                    && let Some(p) = index.get(n)
                {
                    stack.extend(p.depends_on.iter().map(String::as_str));
                }
            }
            if path.is_some() {
                errors.push(src.error(
                    c.depends_on_line,
                    scope(),
                    Some(&field),
                    format!(
                        "{parent:?} depends on {:?} in turn (a cycle would keep both quiet)",
                        c.name
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, "warden.toml", Path::new("/tmp"))
    }

    #[test]
    fn unknown_and_flap_settings() {
        use check::OnUnknown;
        use warden_runtime::Status::*;
        let c = parse("[[check]]\nname = \"a\"\nplugin = \"hello\"\non_unknown = \"ignore\"\nflap_low = 10\nflap_high = 30\n").unwrap();
        let a = &c.checks[0];
        assert_eq!(a.on_unknown, OnUnknown::Ignore);
        assert_eq!(
            a.on_unknown.alert_status(Unknown, Critical),
            Critical,
            "kept"
        );
        assert_eq!(a.on_unknown.alert_status(Unknown, Ok), Ok);
        assert_eq!(OnUnknown::Critical.alert_status(Unknown, Ok), Critical);
        assert_eq!(OnUnknown::Alert.alert_status(Unknown, Ok), Unknown);
        assert_eq!(a.flapping.map(|f| (f.low, f.high)), Some((10.0, 30.0)));
        let e =
            parse("[[check]]\nname = \"a\"\nplugin = \"hello\"\nflap_low = 30\nflap_high = 20\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("check \"a\": flap_low: 30 must be below flap_high (20)"),
            "{e}"
        );
        let e = parse("[[check]]\nname = \"a\"\nplugin = \"hello\"\non_unknown = \"page\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("on_unknown") || e.contains("page"), "{e}");
        let off =
            parse("[[check]]\nname = \"a\"\nplugin = \"hello\"\nflap_detection = false\n").unwrap();
        assert!(off.checks[0].flapping.is_none());
    }

    #[test]
    fn embedded_defaults_load() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.agent.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.agent.profile, Profile::Local);
        assert!(!c.checks.is_empty());
    }

    #[test]
    fn all_problems_are_reported_with_line_check_and_field() {
        let text = r#"
[agent]
listen = "nowhere"

[[check]]
name = "a"
plugin = "hello"
timeout = "10"

[[check]]
name = "b"
plugin = "hello"
schedule = "@every soon"
allow.hosts = ["ftp://x"]

[[check]]
name = "a"
plugin = "hello"
"#;
        let errs = parse(text).unwrap_err();
        let all = errs.to_string();
        assert!(all.contains("warden.toml:3: [agent] listen"), "{all}");
        assert!(
            all.contains("warden.toml:8: check \"a\": timeout:"),
            "{all}"
        );
        assert!(
            all.contains("warden.toml:13: check \"b\": schedule:"),
            "{all}"
        );
        assert!(
            all.contains("warden.toml:14: check \"b\": allow.hosts[0]"),
            "{all}"
        );
        assert!(
            all.contains("check \"a\": name: another check has this name"),
            "{all}"
        );
        assert_eq!(errs.0.len(), 5, "{all}");
        // Typed: the field is known without parsing the text.
        let hosts = errs
            .0
            .iter()
            .find(|e| e.field.as_deref() == Some("allow.hosts[0]"));
        assert_eq!(hosts.map(|e| e.line), Some(Some(14)), "{errs:?}");
    }

    #[test]
    fn dependencies_name_checks_and_never_go_round() {
        let all = parse(
            "[[check]]\nname = \"a\"\nplugin = \"hello\"\ndepends_on = [\"b\"]\n\
             [[check]]\nname = \"b\"\nplugin = \"hello\"\ndepends_on = [\"a\", \"nope\"]\n\
             [[check]]\nname = \"c\"\nplugin = \"hello\"\ndepends_on = [\"c\"]\n\
             [[check]]\nname = \"d\"\nplugin = \"hello\"\ndepends_on = [\"b\"]\n",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "warden.toml:4: check \"a\": depends_on[0]: \"b\" depends on \"a\" in turn",
            "warden.toml:8: check \"b\": depends_on[1]: no check named \"nope\"",
            "warden.toml:12: check \"c\": depends_on[0]: \"c\" depends on \"c\" in turn",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        // "d" depends on a cycle but is in none.
        assert!(!all.contains("check \"d\""), "{all}");
    }

    #[test]
    fn many_checks_parse_in_one_pass() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!(
                "[[check]]\nname = \"c{i}\"\nplugin = \"hello\"\ntimeout = \"5s\"\n"
            ));
        }
        let c = parse(&text).unwrap();
        assert_eq!(c.checks.len(), 20_000);
        assert_eq!(c.checks[19_999].line, 4 * 19_999 + 1);
    }

    #[test]
    fn huge_and_zero_limits_are_errors() {
        let errs = parse(
            "[[check]]\nname = \"x\"\nplugin = \"hello\"\ntimeout = \"100000000000000000000s\"\nmemory = \"0\"\n",
        )
        .unwrap_err()
        ;
        let all = errs.to_string();
        assert!(
            all.contains("timeout: \"100000000000000000000s\": out of range"),
            "{all}"
        );
        assert!(all.contains("memory: \"0\": must be positive"), "{all}");
        let errs = parse(
            "[[check]]\nname = \"x\"\nplugin = \"hello\"\nschedule = \"@every 10000000000000d\"\nsplay = \"100000d\"\n",
        )
        .unwrap_err()
        ;
        let all = errs.to_string();
        assert!(
            all.contains("warden.toml:4: check \"x\": schedule:"),
            "{all}"
        );
        assert!(all.contains("warden.toml:5: check \"x\": splay:"), "{all}");
        let errs =
            parse("[agent]\nshutdown_grace = \"10000000000000d\"\nkeep_days = 100000000000\n")
                .unwrap_err();
        let all = errs.to_string();
        assert!(all.contains("warden.toml:2: [agent] shutdown_grace: \"10000000000000d\" is over the maximum of 1h"), "{all}");
        assert!(
            all.contains("warden.toml:3: [agent] keep_days: 100000000000 is over the maximum"),
            "{all}"
        );
    }

    #[test]
    fn unknown_fields_and_types_name_the_check() {
        let errs = parse("[[check]]\nname = \"x\"\nplugin = \"hello\"\ntimeuot = \"1s\"\n")
            .unwrap_err()
            .0;
        let first = errs[0].to_string();
        assert!(
            first.contains("check \"x\"") && first.contains("timeuot"),
            "{errs:?}"
        );
        let errs = parse("[[check]]\nname = \"x\"\nplugin = 5\n")
            .unwrap_err()
            .0;
        assert!(
            errs[0]
                .to_string()
                .starts_with("warden.toml:1: check \"x\""),
            "{errs:?}"
        );
        assert_eq!(errs[0].scope, Scope::Check("check \"x\"".into()));
    }

    #[test]
    fn production_lists_every_reason() {
        let text = r#"
[agent]
profile = "production"
listen = "0.0.0.0:7878"
[api]
cors_origins = ["*"]
[[check]]
name = "a"
plugin = "custom"
[[check]]
name = "b"
plugin = "hello"
allow.hosts = ["https://*"]
allow.read_dirs = ["/"]
outputs_file = "/etc/passwd"
"#;
        let errs = parse(text).unwrap_err();
        let all = errs.to_string();
        assert!(all.contains("no API token"), "{all}");
        assert!(all.contains("beyond loopback"), "{all}");
        assert!(all.contains("cors_origins contains \"*\""), "{all}");
        assert!(all.contains("plugin \"custom\" is not pinned"), "{all}");
        assert!(
            !all.contains("plugin \"hello\""),
            "pinned by the binary: {all}"
        );
        assert!(
            all.contains("check \"b\": allow.hosts \"https://*\" grants the whole internet"),
            "{all}"
        );
        assert!(
            all.contains("check \"b\": allow.read_dirs grants \"/\""),
            "{all}"
        );
        assert!(
            all.contains("check \"b\": outputs_file /etc/passwd is outside the state directory"),
            "{all}"
        );
        assert_eq!(errs.0.len(), 7, "{all}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        #[test]
        fn any_text_is_a_config_or_errors(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_check_values_are_accepted_or_named(
            schedule in "\\PC{0,24}",
            timeout in "\\PC{0,24}",
            memory in "\\PC{0,24}",
            splay in "\\PC{0,24}",
            retries in 0u32..100,
        ) {
            let text = format!(
                "[[check]]\nname = \"x\"\nplugin = \"hello\"\nschedule = {schedule:?}\ntimeout = {timeout:?}\nmemory = {memory:?}\nsplay = {splay:?}\nretries = {retries}\n"
            );
            if let Err(errors) = parse(&text) {
                for e in errors.0 {
                    // Every problem names the check (or the file, for TOML).
                    let shown = e.to_string();
                    proptest::prop_assert!(shown.starts_with("warden.toml:"), "{}", shown);
                }
            }
        }
    }
}
