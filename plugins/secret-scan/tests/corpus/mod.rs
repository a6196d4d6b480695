//! A generated corpus of source-like files with planted secrets: every
//! rule family of the shipped rules, in many file types, among code that
//! names keys, tokens and passwords without holding any, plus near-miss
//! non-secrets (the false-positive examples of `default-examples.toml`).
//!
//! Shared by the plugin's tests and the agent's `secret_scan` benchmark.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub mod encoded;
pub mod gitleaks;

/// A secret the corpus planted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Planted {
    /// Absolute path of the file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The rule that must find it.
    pub rule: String,
}

/// What was generated.
pub struct Corpus {
    /// Planted secrets.
    pub planted: Vec<Planted>,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Near-miss lines written.
    pub near_misses: usize,
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `n` characters from `alphabet`.
    pub fn string(&mut self, n: usize, alphabet: &str) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|_| a[self.below(a.len())]).collect()
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &str = "0123456789abcdef";
const UPPER_B32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const DIGITS: &str = "0123456789";

/// Every rule id of the shipped rules with a generator.
pub const RULES: &[&str] = &[
    "aws-access-token",
    "aws-secret-access-key",
    "gcp-api-key",
    "gcp-oauth-client-secret",
    "azure-storage-account-key",
    "azure-ad-client-secret",
    "digitalocean-token",
    "hashicorp-vault-token",
    "github-pat",
    "github-fine-grained-pat",
    "github-token",
    "gitlab-pat",
    "npm-access-token",
    "pypi-upload-token",
    "stripe-secret-key",
    "square-access-token",
    "square-oauth-secret",
    "braintree-access-token",
    "slack-token",
    "slack-app-token",
    "slack-webhook-url",
    "discord-bot-token",
    "discord-webhook-url",
    "telegram-bot-token",
    "twilio-api-key",
    "sendgrid-api-token",
    "openai-api-key",
    "anthropic-api-key",
    "private-key",
    "age-secret-key",
    "jwt",
    "database-connection-string",
    "url-credentials",
    "url-password-parameter",
    "netrc-password",
    "htpasswd-hash",
    "filezilla-password",
    "wordpress-config-secret",
    "rails-secret-key-base",
    "django-secret-key",
    "s3cfg-secret-key",
    "docker-config-auth",
    "npmrc-auth",
    "kubeconfig-client-key",
    "kubeconfig-user-credential",
    "jenkins-credential",
    "sql-password",
    "sql-role-password",
    "postgres-password-hash",
    "mysql-password-argument",
    "pgpassword-variable",
    "sshpass-password",
    "curl-user-password",
    "generic-api-key",
];

/// Rules that look only at files of one name (`.pgpass`, `database.yml`,
/// `.pypirc`, `*.tfstate`): not planted in the corpus' files; their
/// examples (with those paths) test them.
pub const PATH_RULES: &[&str] = &[
    "pgpass-password",
    "rails-database-password",
    "pypirc-password",
    "terraform-state-secret",
];

/// A line (or lines) holding a fresh secret for `rule`, written the way
/// a file of `ext` would hold it.
pub fn secret_line(rule: &str, ext: &str, r: &mut Rng) -> String {
    let value = match rule {
        "aws-access-token" => format!("AKIA{}", r.string(16, UPPER_B32)),
        "aws-secret-access-key" => {
            return assign(ext, "aws_secret_access_key", &r.string(40, B64));
        }
        "gcp-api-key" => format!("AIza{}", r.string(35, URLSAFE)),
        "gcp-oauth-client-secret" => format!("GOCSPX-{}", r.string(28, URLSAFE)),
        "azure-storage-account-key" => format!(
            "DefaultEndpointsProtocol=https;AccountName=store;AccountKey={}==;EndpointSuffix=core.windows.net",
            r.string(86, B64)
        ),
        "azure-ad-client-secret" => format!(
            "{}{}Q~{}",
            r.string(3, ALNUM),
            r.string(1, DIGITS),
            r.string(34, ALNUM)
        ),
        "digitalocean-token" => format!("dop_v1_{}", r.string(64, HEX)),
        "hashicorp-vault-token" => format!("hvs.{}", r.string(95, URLSAFE)),
        "github-pat" => format!("ghp_{}", r.string(36, ALNUM)),
        "github-fine-grained-pat" => format!("github_pat_{}", r.string(82, ALNUM)),
        "github-token" => format!("ghs_{}", r.string(36, ALNUM)),
        "gitlab-pat" => format!("glpat-{}", r.string(20, ALNUM)),
        "npm-access-token" => format!("npm_{}", r.string(36, ALNUM)),
        "pypi-upload-token" => format!("pypi-AgEIcHlwaS5vcmc{}", r.string(70, URLSAFE)),
        "stripe-secret-key" => format!("sk_live_{}", r.string(32, ALNUM)),
        "square-access-token" => format!("sq0atp-{}", r.string(22, ALNUM)),
        "square-oauth-secret" => format!("sq0csp-{}", r.string(43, ALNUM)),
        "braintree-access-token" => format!(
            "access_token$production${}${}",
            r.string(16, "abcdefghijklmnopqrstuvwxyz0123456789"),
            r.string(32, HEX)
        ),
        "slack-token" => format!(
            "xoxb-{}-{}-{}",
            r.string(11, DIGITS),
            r.string(12, DIGITS),
            r.string(24, ALNUM)
        ),
        "slack-app-token" => format!(
            "xapp-1-A{}-{}-{}",
            r.string(10, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            r.string(13, DIGITS),
            r.string(64, HEX)
        ),
        "slack-webhook-url" => format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            r.string(8, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            r.string(8, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            r.string(24, ALNUM)
        ),
        "discord-bot-token" => {
            return format!(
                "DISCORD_BOT_TOKEN=M{}.{}.{}",
                r.string(23, URLSAFE),
                r.string(6, URLSAFE),
                r.string(27, URLSAFE)
            );
        }
        "discord-webhook-url" => format!(
            "https://discord.com/api/webhooks/{}/{}",
            r.string(18, DIGITS),
            r.string(68, URLSAFE)
        ),
        "telegram-bot-token" => format!("{}:AA{}", r.string(9, DIGITS), r.string(33, URLSAFE)),
        "twilio-api-key" => {
            return assign(ext, "twilio_api_key", &format!("SK{}", r.string(32, HEX)));
        }
        "sendgrid-api-token" => format!("SG.{}.{}", r.string(22, URLSAFE), r.string(43, URLSAFE)),
        "openai-api-key" => format!(
            "sk-proj-{}T3BlbkFJ{}",
            r.string(40, URLSAFE),
            r.string(40, URLSAFE)
        ),
        "anthropic-api-key" => format!("sk-ant-api03-{}AA", r.string(93, URLSAFE)),
        "private-key" => {
            let body: Vec<String> = (0..8).map(|_| r.string(64, B64)).collect();
            return format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
                body.join("\n")
            );
        }
        "age-secret-key" => format!(
            "AGE-SECRET-KEY-1{}",
            r.string(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")
        ),
        "jwt" => format!(
            "eyJ{}.eyJ{}.{}",
            r.string(30, URLSAFE),
            r.string(60, URLSAFE),
            r.string(43, URLSAFE)
        ),
        "database-connection-string" => format!(
            "postgres://app_user:{}@db-{}.internal:5432/orders",
            r.string(18, ALNUM),
            r.below(100)
        ),
        "url-credentials" => format!(
            "https://deploy:{}@git.corp.internal/platform/app.git",
            r.string(20, ALNUM)
        ),
        "generic-api-key" => {
            // Real keys mix in digits; an all-letter value reads as an
            // identifier and is allowlisted.
            let value = format!("{}{}", r.string(31, ALNUM), r.string(1, DIGITS));
            return assign(ext, "service_api_key", &value);
        }
        "url-password-parameter" => {
            return format!(
                "jdbc_url = jdbc:mysql://db-{}.internal:3306/orders?user=app&password={}",
                r.below(100),
                r.string(18, ALNUM)
            );
        }
        "netrc-password" => {
            return format!(
                "machine git-{}.corp.net login ci-bot password {}",
                r.below(100),
                r.string(24, ALNUM)
            );
        }
        "htpasswd-hash" => {
            return format!(
                "deploy:$apr1${}${}",
                r.string(8, "abcdefghijklmnopqrstuvwxyz0123456789"),
                r.string(
                    22,
                    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                )
            );
        }
        "filezilla-password" => {
            return format!("<Pass>{}</Pass>", r.string(16, ALNUM));
        }
        "wordpress-config-secret" => {
            return format!("define( 'DB_PASSWORD', '{}' );", r.string(20, ALNUM));
        }
        "rails-secret-key-base" => {
            return format!("secret_key_base: {}", r.string(128, HEX));
        }
        "django-secret-key" => {
            return format!("SECRET_KEY = '{}'", r.string(50, ALNUM));
        }
        "s3cfg-secret-key" => return format!("secret_key = {}", r.string(40, B64)),
        "docker-config-auth" => {
            return format!("    \"auth\": \"{}=\"", r.string(31, B64));
        }
        "npmrc-auth" => {
            return format!("//npm.corp.net/:_authToken={}", r.string(36, ALNUM));
        }
        "kubeconfig-client-key" => {
            // Random bytes: a PEM would also be found decoded.
            return format!("    client-key-data: {}=", r.string(87, B64));
        }
        "kubeconfig-user-credential" => {
            return format!("  user:\n    token: {}", r.string(40, ALNUM));
        }
        "jenkins-credential" => {
            return format!(
                "<password>{{AQAAABAAAAAQ{}=}}</password>",
                r.string(43, B64)
            );
        }
        "sql-password" => {
            return format!(
                "CREATE USER 'app'@'%' IDENTIFIED BY '{}';",
                r.string(16, ALNUM)
            );
        }
        "sql-role-password" => {
            return format!(
                "ALTER ROLE app WITH LOGIN PASSWORD '{}';",
                r.string(16, ALNUM)
            );
        }
        "postgres-password-hash" => {
            return format!("app\tt\tmd5{}\t\\N", r.string(32, HEX));
        }
        "mysql-password-argument" => {
            return format!(
                "mysql -h db.corp.net -u app -p{} orders",
                r.string(16, ALNUM)
            );
        }
        "pgpassword-variable" => {
            return format!(
                "PGPASSWORD={} psql -h db.corp.net -U app",
                r.string(16, ALNUM)
            );
        }
        "sshpass-password" => {
            return format!("sshpass -p '{}' ssh deploy@web1", r.string(16, ALNUM));
        }
        "curl-user-password" => {
            return format!(
                "curl -u admin:{} https://ci.corp.net/api/json",
                r.string(16, ALNUM)
            );
        }
        other => panic!("no generator for {other}"),
    };
    assign(ext, "config_value", &value)
}

/// `name = value` in the syntax of a file type.
fn assign(ext: &str, name: &str, value: &str) -> String {
    match ext {
        "py" | "rb" | "toml" => format!("{name} = \"{value}\""),
        "js" | "ts" => format!("const {name} = \"{value}\";"),
        "go" => format!("var {name} = \"{value}\""),
        "java" => format!("    private static final String {name} = \"{value}\";"),
        "yaml" => format!("{name}: \"{value}\""),
        "json" => format!("  \"{name}\": \"{value}\","),
        "env" | "sh" => format!("{}={value}", name.to_uppercase()),
        "xml" => format!("  <{name}>{value}</{name}>"),
        "properties" => format!("{name}={value}"),
        _ => format!("{name}: {value}"),
    }
}

/// File types in the corpus (extension, comment prefix).
pub const TYPES: &[(&str, &str)] = &[
    ("py", "#"),
    ("js", "//"),
    ("ts", "//"),
    ("go", "//"),
    ("java", "//"),
    ("rb", "#"),
    ("yaml", "#"),
    ("json", ""),
    ("env", "#"),
    ("sh", "#"),
    ("xml", ""),
    ("properties", "#"),
    ("toml", "#"),
    ("md", ""),
];

const WORDS: &[&str] = &[
    "user", "order", "account", "session", "cache", "request", "response", "handler", "config",
    "client", "server", "item", "record", "batch", "queue", "event", "metric", "policy", "route",
    "schema", "payload", "invoice", "ledger", "tenant", "region", "bucket", "stream", "window",
];

/// A line of ordinary code. With probability `keyword_percent`% it names
/// keys, tokens, secrets or passwords (without holding any), the lines a
/// secret scanner must look at closely; otherwise it is plain code.
fn filler(ext: &str, keyword_percent: usize, r: &mut Rng) -> String {
    let a = *r.pick(WORDS);
    let b = *r.pick(WORDS);
    let n = r.below(1000);
    let line = if r.below(100) < keyword_percent {
        let templates: [String; 12] = [
            "    token = request.headers.get(\"Authorization\")".to_string(),
            format!("    if not is_valid_{a}({b}, key=lambda k: k.{a}_id):"),
            format!("def refresh_{a}_token(self, {b}):"),
            format!("    let key = {a}_map.get(&{b}_id).cloned();"),
            format!("    password_field = form.{a}_password"),
            format!("    secret = vault.read(\"secret/data/{a}/{b}\")"),
            format!("    api_key = os.environ[\"{}_API_KEY\"]", a.to_uppercase()),
            format!("    access_level = Access.{}", a.to_uppercase()),
            format!("    // TODO: rotate the {a} key every {n} days"),
            format!("    auth = AuthProvider(issuer=\"https://{a}.example.com\")"),
            format!("    {a}_url = \"https://api.{b}.example.com/v1/{a}s/{n}\""),
            format!("    credentials_path = \"/etc/{a}/{b}.json\""),
        ];
        r.pick(&templates).clone()
    } else {
        let templates: [String; 12] = [
            format!("    {a}_count = len({b}_items) + {n}"),
            format!("    return {{\"{a}\": {b}, \"total\": {n}, \"status\": \"ok\"}}"),
            format!("    for {a} in {b}s: process({a}, retries={n})"),
            format!("    log.info(\"{a} {b} finished in %d ms\", elapsed)"),
            format!("def handle_{a}(self, {b}, limit={n}):"),
            format!("    if {a}.{b}_id is None:"),
            format!("        raise ValueError(\"missing {b} for {a}\")"),
            format!("    result = compute_{a}({b}, window={n})"),
            format!("    # merge the {a} into the {b} before flushing"),
            format!("    self.{a}s.append({b})"),
            format!("import {a}.{b} as {b}_mod"),
            format!("    }} else if ({a}.size() > {n}) {{"),
        ];
        r.pick(&templates).clone()
    };
    match ext {
        "json" => format!("  \"{a}_{b}\": {n},"),
        "xml" => format!("  <{a} id=\"{n}\">{b}</{a}>"),
        "md" if r.below(100) < keyword_percent => {
            format!("The {a} {b} is refreshed every {n} seconds; see the token docs.")
        }
        "md" => format!("The {a} {b} is refreshed every {n} seconds."),
        "env" | "properties" => format!("{}_{}_TIMEOUT={n}", a.to_uppercase(), b.to_uppercase()),
        _ => line,
    }
}

/// Near-miss lines: the false-positive examples of the shipped rules.
pub fn near_misses() -> Vec<String> {
    let text = include_str!("../../default-examples.toml");
    let v: toml::Value = toml::from_str(text).expect("examples parse");
    let mut out = Vec::new();
    for ex in v["example"].as_array().expect("examples") {
        for fp in ex["fp"].as_array().expect("fp") {
            out.push(fp.as_str().expect("string").to_string());
        }
    }
    out
}

/// Writes about `target_bytes` of files of about `file_bytes` under `dir`
/// (200 files per subdirectory). One file in three gets a secret, cycling
/// through every rule and file type; one in five a near miss;
/// `keyword_percent`% of the other lines name keys, tokens or passwords.
pub fn generate(
    dir: &Path,
    target_bytes: u64,
    file_bytes: usize,
    keyword_percent: usize,
    seed: u64,
) -> Corpus {
    let mut r = Rng::new(seed);
    let misses = near_misses();
    let mut planted = Vec::new();
    let mut bytes = 0u64;
    let mut files = 0usize;
    let mut near = 0usize;
    let mut rule_i = 0usize;
    while bytes < target_bytes {
        let (ext, comment) = TYPES[files % TYPES.len()];
        let sub = dir.join(format!("pkg{:03}", files / 200));
        if files.is_multiple_of(200) {
            std::fs::create_dir_all(&sub).expect("mkdir");
        }
        let path = sub.join(format!("{}_{files}.{ext}", WORDS[files % WORDS.len()]));
        let mut lines: Vec<String> = Vec::new();
        let mut size = 0;
        let mut line_no = 1;
        let plant_at = if files.is_multiple_of(3) {
            Some(r.below(40) + 5)
        } else {
            None
        };
        let miss_at = if files % 5 == 1 {
            Some(r.below(40) + 5)
        } else {
            None
        };
        while size < file_bytes {
            let line = if plant_at == Some(lines.len()) {
                let rule = RULES[rule_i % RULES.len()];
                rule_i += 1;
                let text = secret_line(rule, ext, &mut r);
                planted.push(Planted {
                    file: path.clone(),
                    line: line_no,
                    rule: rule.to_string(),
                });
                text
            } else if miss_at == Some(lines.len()) {
                near += 1;
                let m = r.pick(&misses).clone();
                if comment.is_empty() {
                    m
                } else {
                    format!("{comment} {m}")
                }
            } else {
                filler(ext, keyword_percent, &mut r)
            };
            size += line.len() + 1;
            line_no += line.matches('\n').count() + 1;
            lines.push(line);
        }
        let text = lines.join("\n") + "\n";
        bytes += text.len() as u64;
        std::fs::write(&path, text).expect("write");
        files += 1;
    }
    planted.sort();
    Corpus {
        planted,
        files,
        bytes,
        near_misses: near,
    }
}
