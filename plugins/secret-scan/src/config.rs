//! gitleaks' configuration format, read the way gitleaks reads it.
//!
//! - Keys are case-insensitive (gitleaks reads TOML through viper) and
//!   unknown keys are ignored (`minVersion`, `title`, ...).
//! - Rules: `id`, `description`, `regex`, `path`, `secretGroup`, `entropy`,
//!   `keywords` (lower-cased), `tags`, `[[rules.allowlists]]` or the older
//!   `[rules.allowlist]` (not both).
//! - Global allowlists: `[[allowlists]]` or the older `[allowlist]` (not
//!   both); one with `targetRules` applies to those rules only, and each
//!   target must exist once extension is done.
//! - Allowlists: `condition` (`OR`/`||`, default, or `AND`/`&&`),
//!   `regexTarget` (`secret`, default, `match` or `line`), `regexes`,
//!   `paths`, `stopwords`, `commits`; an allowlist with none of the four
//!   checks is refused.
//! - `[extend]`: `useDefault` or `path` (not both), `disabledRules`.
//!   Extension goes two levels deep at most. A rule the extending config
//!   also defines is merged: the extending config's description, entropy,
//!   secret group, regex and path win when set; tags, keywords and
//!   allowlists are appended to the base's. Global allowlists are
//!   appended. After extension rules are ordered by id.
//! - Validation after extension: every rule has an id, a regex or a path,
//!   and a `secretGroup` no larger than its regex's group count.
//!
//! Relative `[extend] path`s resolve against the extending file's directory
//! first and then against the loader's base directory (gitleaks resolves
//! them against its working directory).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pattern::{Pattern, join_or};

/// How deep `[extend]` chains go (gitleaks' `maxExtendDepth`).
pub const MAX_EXTEND_DEPTH: usize = 2;

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `title`.
    pub title: String,
    /// `description`.
    pub description: String,
    /// Rules in report order.
    pub rules: Vec<Rule>,
    /// Global allowlists (those without `targetRules`).
    pub allowlists: Vec<Allowlist>,
    /// Every rule keyword, lower-cased.
    pub keywords: BTreeSet<String>,
    /// Where it came from (file path or `<default>`).
    pub origin: String,
}

impl Config {
    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The first rule whose pattern a search tried and could not compile
    /// (so it matched nothing), naming the rule.
    pub fn compile_failure(&self) -> Option<String> {
        self.rules.iter().find_map(|r| {
            [&r.regex, &r.path]
                .into_iter()
                .flatten()
                .find_map(Pattern::failure)
                .map(|e| format!("rule {:?}: {e}", r.id))
        })
    }

    /// Compiles every pattern now (loading only parses them); the error
    /// names the rule.
    pub fn compile_all(&self) -> Result<(), String> {
        for r in &self.rules {
            for p in [&r.regex, &r.path].into_iter().flatten() {
                p.compile().map_err(|e| format!("rule {:?}: {e}", r.id))?;
            }
        }
        Ok(())
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `id`.
    pub id: String,
    /// `description`.
    pub description: String,
    /// `regex`.
    pub regex: Option<Pattern>,
    /// `path`.
    pub path: Option<Pattern>,
    /// `secretGroup` (0: the first non-empty group, or the whole match).
    pub secret_group: usize,
    /// `entropy` (0: no threshold).
    pub entropy: f64,
    /// `keywords`, lower-cased.
    pub keywords: Vec<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// The rule's allowlists, then global ones that target it.
    pub allowlists: Vec<Allowlist>,
}

/// How an allowlist's checks combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    /// Any check allows the finding.
    #[default]
    Or,
    /// All of the allowlist's checks must allow it.
    And,
}

/// What an allowlist's `regexes` are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegexTarget {
    /// The secret (default).
    #[default]
    Secret,
    /// The whole match.
    Match,
    /// The line(s) of the match.
    Line,
}

/// One allowlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowlist {
    /// `description`.
    pub description: String,
    /// `condition`.
    pub condition: Condition,
    /// `commits`, lower-cased (never match a directory scan).
    pub commits: Vec<String>,
    /// `paths`.
    pub paths: Vec<Pattern>,
    /// `regexTarget`.
    pub regex_target: RegexTarget,
    /// `regexes`.
    pub regexes: Vec<Pattern>,
    /// `stopwords`, lower-cased.
    pub stopwords: Vec<String>,
    path_any: Option<Pattern>,
    regex_any: Option<Pattern>,
    stopword_set: StopwordSet,
}

/// The stopwords as one automaton (ASCII case-insensitive); equal when the
/// stopword lists are.
#[derive(Debug, Clone, Default)]
struct StopwordSet(Option<aho_corasick::AhoCorasick>);

impl PartialEq for StopwordSet {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Allowlist {
    /// Whether a path pattern matches `path`.
    pub fn path_allowed(&self, path: &str) -> bool {
        !path.is_empty()
            && self
                .path_any
                .as_ref()
                .is_some_and(|p| p.is_match(path.as_bytes()))
    }

    /// Whether a regex matches `target`.
    pub fn regex_allowed(&self, target: &[u8]) -> bool {
        !target.is_empty() && self.regex_any.as_ref().is_some_and(|p| p.is_match(target))
    }

    /// Whether the lower-cased `secret` contains a stopword.
    pub fn contains_stopword(&self, secret: &str) -> bool {
        let Some(ac) = &self.stopword_set.0 else {
            return false;
        };
        if secret.is_empty() {
            return false;
        }
        if secret.is_ascii() {
            ac.is_match(secret)
        } else {
            ac.is_match(&secret.to_lowercase())
        }
    }

    /// Whether the commit is listed (a directory scan has none).
    pub fn commit_allowed(&self, commit: &str) -> bool {
        !commit.is_empty() && self.commits.iter().any(|c| c == &commit.to_lowercase())
    }
}

/// A configuration error: the file and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file (or `<default>`, `<inline>`).
    pub file: String,
    /// What is wrong, in gitleaks' words where gitleaks has them.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for ConfigError {}

// ---- the TOML shape (keys lower-cased before deserializing) ----

#[derive(Deserialize, Default)]
struct RawConfig {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    extend: RawExtend,
    #[serde(default)]
    rules: Vec<RawRule>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Deserialize, Default)]
struct RawExtend {
    #[serde(default)]
    path: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    usedefault: bool,
    #[serde(default)]
    disabledrules: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawRule {
    #[serde(default)]
    id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    regex: String,
    #[serde(default)]
    secretgroup: i64,
    #[serde(default)]
    entropy: f64,
    keywords: Option<Vec<String>>,
    #[serde(default)]
    tags: Vec<String>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
    required: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
struct RawAllowlist {
    #[serde(default)]
    description: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    regextarget: String,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    targetrules: Vec<String>,
}

fn lowercase_keys(v: toml::Value) -> toml::Value {
    match v {
        toml::Value::Table(t) => toml::Value::Table(
            t.into_iter()
                .map(|(k, v)| (k.to_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        toml::Value::Array(a) => toml::Value::Array(a.into_iter().map(lowercase_keys).collect()),
        v => v,
    }
}

/// A config before validation: what one file (plus what it extends) says.
struct Partial {
    title: String,
    description: String,
    rules: Vec<Rule>,
    /// Whether `rules` came (partly) from an extended config.
    extended: bool,
    allowlists: Vec<Allowlist>,
    targeted: Vec<(String, Allowlist)>,
}

/// Reads configs, resolving `[extend]`.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    default: Option<(String, String)>,
    base_dir: Option<PathBuf>,
}

impl Loader {
    /// A loader whose `useDefault` is `text` (named `name` in errors).
    pub fn new(default_name: &str, default_text: &str) -> Loader {
        Loader {
            default: Some((default_name.to_string(), default_text.to_string())),
            base_dir: None,
        }
    }

    /// Where relative `[extend] path`s resolve when they do not exist
    /// next to the extending file.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Loader {
        self.base_dir = Some(dir.into());
        self
    }

    /// Loads the config file at `path`.
    pub fn load_file(&self, path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: origin.clone(),
            message: format!("cannot read: {e}"),
        })?;
        self.load_str(&text, &origin, path.parent())
    }

    /// Loads config text; `origin` names it in errors, `dir` is where
    /// relative extend paths start.
    pub fn load_str(
        &self,
        text: &str,
        origin: &str,
        dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let partial = self.translate(text, origin, dir, 0)?;
        let err = |message: String| ConfigError {
            file: origin.to_string(),
            message,
        };
        let Partial {
            title,
            description,
            mut rules,
            extended,
            allowlists,
            targeted,
        } = partial;
        // A rule that an extending config adds with neither regex nor path
        // (only keywords, say) is kept but inert, as gitleaks does; in a
        // config that extends nothing it is an error.
        for r in &rules {
            validate_rule(r, extended).map_err(&err)?;
        }
        for (target, allowlist) in targeted {
            let Some(rule) = rules.iter_mut().find(|r| r.id == target) else {
                return Err(err(format!(
                    "[[allowlists]] target rule ID '{target}' does not exist"
                )));
            };
            rule.allowlists.push(allowlist);
        }
        let keywords = rules
            .iter()
            .flat_map(|r| r.keywords.iter().cloned())
            .collect();
        Ok(Config {
            title,
            description,
            rules,
            allowlists,
            keywords,
            origin: origin.to_string(),
        })
    }

    fn translate(
        &self,
        text: &str,
        origin: &str,
        dir: Option<&Path>,
        depth: usize,
    ) -> Result<Partial, ConfigError> {
        let err = |message: String| ConfigError {
            file: origin.to_string(),
            message,
        };
        let value: toml::Value = toml::from_str(text).map_err(|e| {
            err(format!(
                "not valid TOML: {}",
                e.to_string().trim().replace('\n', " ")
            ))
        })?;
        let raw: RawConfig = lowercase_keys(value)
            .try_into()
            .map_err(|e: toml::de::Error| err(e.message().to_string()))?;

        let mut rules: Vec<Rule> = Vec::new();
        for (i, vr) in raw.rules.into_iter().enumerate() {
            let name = if vr.id.is_empty() {
                format!("rules[{i}]")
            } else {
                vr.id.clone()
            };
            if vr.required.is_some() {
                return Err(err(format!(
                    "{name}: [[rules.required]] (composite rules) is not supported"
                )));
            }
            let regex = (!vr.regex.is_empty())
                .then(|| Pattern::new(&vr.regex))
                .transpose()
                .map_err(|e| err(format!("{name}: regex: {e}")))?;
            let path = (!vr.path.is_empty())
                .then(|| Pattern::new(&vr.path))
                .transpose()
                .map_err(|e| err(format!("{name}: path: {e}")))?;
            if vr.secretgroup < 0 {
                return Err(err(format!(
                    "{name}: invalid regex secret group {}",
                    vr.secretgroup
                )));
            }
            let mut lists = vr.allowlists;
            if let Some(old) = vr.allowlist {
                if !lists.is_empty() {
                    return Err(err(format!(
                        "{}: [rules.allowlist] is deprecated, it cannot be used alongside [[rules.allowlist]]",
                        vr.id
                    )));
                }
                lists.push(old);
            }
            let mut allowlists = Vec::new();
            for a in lists {
                allowlists.push(
                    parse_allowlist(a)
                        .map_err(|e| err(format!("{}: [[rules.allowlists]] {e}", vr.id)))?,
                );
            }
            rules.push(Rule {
                id: vr.id,
                description: vr.description,
                regex,
                path,
                secret_group: vr.secretgroup as usize,
                entropy: vr.entropy,
                keywords: vr
                    .keywords
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| k.to_lowercase())
                    .collect(),
                tags: vr.tags,
                allowlists,
            });
        }

        let mut global = raw.allowlists;
        if let Some(old) = raw.allowlist {
            if !global.is_empty() {
                return Err(err(
                    "[allowlist] is deprecated, it cannot be used alongside [[allowlists]]".into(),
                ));
            }
            global.push(old);
        }
        let mut allowlists = Vec::new();
        let mut targeted = Vec::new();
        for a in global {
            let targets = a.targetrules.clone();
            let list = parse_allowlist(a).map_err(|e| err(format!("[[allowlists]] {e}")))?;
            if targets.is_empty() {
                allowlists.push(list);
            } else {
                for t in targets {
                    targeted.push((t, list.clone()));
                }
            }
        }

        let mut partial = Partial {
            title: raw.title.unwrap_or_default(),
            description: raw.description.unwrap_or_default(),
            rules,
            extended: false,
            allowlists,
            targeted,
        };

        let ext = raw.extend;
        if !ext.url.is_empty() {
            return Err(err("[extend] url is not supported".into()));
        }
        if depth < MAX_EXTEND_DEPTH && (ext.usedefault || !ext.path.is_empty()) {
            if ext.usedefault && !ext.path.is_empty() {
                return Err(err(
                    "unable to load config due to extend.path and extend.useDefault being set"
                        .into(),
                ));
            }
            let base = if ext.usedefault {
                let (name, text) = self
                    .default
                    .as_ref()
                    .ok_or_else(|| err("[extend] useDefault: no default config".into()))?;
                self.translate(text, name, None, depth + 1)
                    .map_err(|e| err(format!("failed to load extended default config: {e}")))?
            } else {
                let path = self.resolve(&ext.path, dir);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    err(format!(
                        "failed to load extended config {:?}: {e}",
                        ext.path
                    ))
                })?;
                let shown = path.display().to_string();
                self.translate(&text, &shown, path.parent(), depth + 1)
                    .map_err(|e| {
                        err(format!(
                            "failed to load extended config {:?}: {e}",
                            ext.path
                        ))
                    })?
            };
            extend(&mut partial, base, &ext.disabledrules);
        }
        Ok(partial)
    }

    fn resolve(&self, path: &str, dir: Option<&Path>) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        if let Some(d) = dir {
            let candidate = d.join(p);
            if candidate.exists() {
                return candidate;
            }
        }
        match &self.base_dir {
            Some(b) => b.join(p),
            None => dir.map(|d| d.join(p)).unwrap_or_else(|| p.to_path_buf()),
        }
    }
}

fn extend(current: &mut Partial, base: Partial, disabled: &[String]) {
    let disabled: BTreeSet<&str> = disabled.iter().map(String::as_str).collect();
    let mut by_id: HashMap<String, usize> = current
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    for base_rule in base.rules {
        if disabled.contains(base_rule.id.as_str()) {
            continue;
        }
        match by_id.get(&base_rule.id) {
            None => {
                by_id.insert(base_rule.id.clone(), current.rules.len());
                current.rules.push(base_rule);
            }
            Some(&i) => {
                let cur = &current.rules[i];
                let mut merged = base_rule;
                if !cur.description.is_empty() {
                    merged.description = cur.description.clone();
                }
                if cur.entropy != 0.0 {
                    merged.entropy = cur.entropy;
                }
                if cur.secret_group != 0 {
                    merged.secret_group = cur.secret_group;
                }
                if cur.regex.is_some() {
                    merged.regex = cur.regex.clone();
                }
                if cur.path.is_some() {
                    merged.path = cur.path.clone();
                }
                merged.tags.extend(cur.tags.iter().cloned());
                merged.keywords.extend(cur.keywords.iter().cloned());
                merged.allowlists.extend(cur.allowlists.iter().cloned());
                current.rules[i] = merged;
            }
        }
    }
    current.allowlists.extend(base.allowlists);
    current.targeted.extend(base.targeted);
    current.rules.sort_by(|a, b| a.id.cmp(&b.id));
    current.extended = true;
}

fn validate_rule(r: &Rule, extended: bool) -> Result<(), String> {
    if r.id.trim().is_empty() {
        let context = if let Some(re) = &r.regex {
            format!(", regex: {}", re.as_str())
        } else if let Some(p) = &r.path {
            format!(", path: {}", p.as_str())
        } else if !r.description.is_empty() {
            format!(", description: {}", r.description)
        } else {
            String::new()
        };
        return Err(format!("rule |id| is missing or empty{context}"));
    }
    if r.regex.is_none() && r.path.is_none() && !extended {
        return Err(format!(
            "{}: both |regex| and |path| are empty, this rule will have no effect",
            r.id
        ));
    }
    if let Some(re) = &r.regex
        && r.secret_group > re.captures_len()
    {
        return Err(format!(
            "{}: invalid regex secret group {}, max regex secret group {}",
            r.id,
            r.secret_group,
            re.captures_len()
        ));
    }
    Ok(())
}

fn parse_allowlist(a: RawAllowlist) -> Result<Allowlist, String> {
    let condition = match a.condition.to_uppercase().as_str() {
        "AND" | "&&" => Condition::And,
        "" | "OR" | "||" => Condition::Or,
        _ => {
            return Err(format!(
                "unknown allowlist |condition| '{}' (expected 'and', 'or')",
                a.condition
            ));
        }
    };
    let regex_target = match a.regextarget.as_str() {
        "" | "secret" => RegexTarget::Secret,
        "match" => RegexTarget::Match,
        "line" => RegexTarget::Line,
        other => {
            return Err(format!(
                "unknown allowlist |regexTarget| '{other}' (expected 'match', 'line')"
            ));
        }
    };
    if a.commits.is_empty() && a.paths.is_empty() && a.regexes.is_empty() && a.stopwords.is_empty()
    {
        return Err(
            "must contain at least one check for: commits, paths, regexes, or stopwords".into(),
        );
    }
    let paths = a
        .paths
        .iter()
        .map(|p| Pattern::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let regexes = a
        .regexes
        .iter()
        .map(|p| Pattern::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stopwords: Vec<String> = a.stopwords.iter().map(|s| s.to_lowercase()).collect();
    stopwords.sort();
    stopwords.dedup();
    let stopword_set = StopwordSet(
        (!stopwords.is_empty())
            .then(|| {
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(&stopwords)
                    .ok()
            })
            .flatten(),
    );
    let mut commits: Vec<String> = a.commits.iter().map(|s| s.to_lowercase()).collect();
    commits.sort();
    commits.dedup();
    Ok(Allowlist {
        description: a.description,
        condition,
        commits,
        path_any: join_or(&paths),
        regex_any: join_or(&regexes),
        stopword_set,
        paths,
        regex_target,
        regexes,
        stopwords,
    })
}
