//! Encoded secrets, where real files hold them: the corpus' secrets
//! base64-, hex- and percent-encoded (and nested) in Kubernetes Secrets'
//! `data:`, JSON, `.env` files and URL query strings; beside them encoded
//! text that holds nothing (random bytes, hashes, UUIDs, encoded prose,
//! long identifiers, images, wrapped base64) and the awkward cases of
//! the decoder (runs touching runs, padding, the URL alphabet, an allow
//! marker on an encoded line).

use std::path::Path;

use super::{RULES, Rng, secret_line};

const STD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_with(b: &[u8], alphabet: &[u8], pad: bool) -> String {
    let mut s = String::new();
    for c in b.chunks(3) {
        let v = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(alphabet[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                s.push('=');
            }
        }
    }
    s
}

/// Standard base64, padded.
pub fn base64(b: &[u8]) -> String {
    b64_with(b, STD, true)
}

/// URL-safe base64 without padding.
pub fn base64url(b: &[u8]) -> String {
    b64_with(b, URL, false)
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every byte percent-encoded.
pub fn percent_all(b: &[u8]) -> String {
    b.iter().map(|x| format!("%{x:02X}")).collect()
}

/// Percent-encoded as a query parameter: reserved characters only.
pub fn percent_query(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ':' | '/' | '?' | '#' | '@' | '&' | '=' | '+' | '$' | ',' | ';' | ' ' | '"' => {
                format!("%{:02X}", c as u32)
            }
            c => c.to_string(),
        })
        .collect()
}

/// The value of a secret line written as `NAME=value`.
fn value(line: &str) -> String {
    match line.split_once('=') {
        Some((_, v)) => v.to_string(),
        None => line.to_string(),
    }
}

fn random_bytes(r: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| r.next() as u8).collect()
}

/// Lines that hold nothing a rule should report, encoded or not.
fn noise(r: &mut Rng) -> String {
    let prose = [
        "this is a perfectly ordinary sentence about configuration",
        "the quick brown fox jumps over the lazy dog 0123456789",
        "key rotation happens every ninety days; see the runbook",
    ];
    match r.below(10) {
        0 => format!("blob: {}", base64(&random_bytes(r, 48))),
        1 => format!("sha256 = \"{}\"", hex(&random_bytes(r, 32))),
        2 => format!(
            "id: {}-{}-{}-{}-{}",
            r.string(8, "0123456789abcdef"),
            r.string(4, "0123456789abcdef"),
            r.string(4, "0123456789abcdef"),
            r.string(4, "0123456789abcdef"),
            r.string(12, "0123456789abcdef")
        ),
        3 => format!("note: {}", base64(r.pick(&prose).as_bytes())),
        4 => format!("hexnote: {}", hex(r.pick(&prose).as_bytes())),
        5 => "let configuration_loader_for_tokens = build_loader_with_defaults();".into(),
        6 => format!(
            "<img src=\"data:image/png;base64,{}\">",
            base64(&random_bytes(r, 90))
        ),
        7 => format!("query: ?q={}", percent_query(r.pick::<&str>(&prose))),
        8 => format!("digest_b64: {}", base64url(&random_bytes(r, 32))),
        _ => "# nothing to see here".into(),
    }
}

/// One encoded form of a secret; `line` is the secret line, `v` its value.
fn encode(kind: usize, line: &str, v: &str) -> String {
    match kind % 12 {
        0 => base64(v.as_bytes()),
        1 => base64(line.as_bytes()),
        2 => base64url(v.as_bytes()),
        3 => hex(v.as_bytes()),
        4 => percent_all(v.as_bytes()),
        5 => percent_query(v),
        // Nested.
        6 => base64(base64(v.as_bytes()).as_bytes()),
        7 => base64(percent_query(line).as_bytes()),
        8 => base64(hex(v.as_bytes()).as_bytes()),
        9 => hex(base64(line.as_bytes()).as_bytes()),
        10 => percent_all(base64(v.as_bytes()).as_bytes()),
        _ => base64(base64(hex(line.as_bytes()).as_bytes()).as_bytes()),
    }
}

/// Writes `files` files of encoded secrets under `dir`; returns how many
/// secrets were written encoded.
pub fn generate(dir: &Path, files: usize, seed: u64) -> usize {
    let mut r = Rng::new(seed);
    let mut written = 0;
    let mut rule_i = 0;
    let mut kind = 0;
    std::fs::create_dir_all(dir).expect("mkdir");
    for f in 0..files {
        let mut next = |r: &mut Rng| {
            let rule = RULES[rule_i % RULES.len()];
            rule_i += 1;
            let line = secret_line(rule, "env", r);
            let v = value(&line);
            kind += 1;
            written += 1;
            encode(kind, &line, &v)
        };
        let (name, text) = match f % 6 {
            0 => {
                let mut t = String::from(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-credentials\n  namespace: prod\ntype: Opaque\ndata:\n",
                );
                for k in ["AWS_ACCESS_KEY_ID", "API_TOKEN", "tls.key", "DATABASE_URL"] {
                    t += &format!("  {k}: {}\n", next(&mut r));
                }
                t += &format!("  {}\n", noise(&mut r));
                ("secret.yaml", t)
            }
            1 => {
                let mut t = String::from("{\n  \"service\": \"billing\",\n");
                for k in ["credentials", "token_hex", "legacy"] {
                    t += &format!("  \"{k}\": \"{}\",\n", next(&mut r));
                }
                t += &format!("  \"note\": \"{}\"\n}}\n", noise(&mut r).replace('"', "'"));
                ("config.json", t)
            }
            2 => {
                let mut t = String::from("# deployment settings\nAPP_ENV=production\n");
                for k in ["SECRET_B64", "TOKEN_HEX", "UPSTREAM"] {
                    t += &format!("{k}={}\n", next(&mut r));
                    t += &format!("{}\n", noise(&mut r));
                }
                (".env", t)
            }
            3 => {
                let mut t = String::from("# access log\n");
                for _ in 0..3 {
                    t += &format!(
                        "127.0.0.1 - - \"GET /login?next={} HTTP/1.1\" 302 0\n",
                        next(&mut r)
                    );
                }
                ("access.log", t)
            }
            4 => {
                // Awkward cases: a hex run running on into base64, percent
                // touching base64, padding, wrapped base64, the allow marker.
                let a = next(&mut r);
                let b = next(&mut r);
                let c = next(&mut r);
                let key = secret_line("private-key", "env", &mut r);
                let wrapped: Vec<String> = base64(key.as_bytes())
                    .as_bytes()
                    .chunks(76)
                    .map(|c| format!("    {}", String::from_utf8_lossy(c)))
                    .collect();
                written += 1;
                let t = format!(
                    "touching: {}{a}\npercent_then_b64: %41%42{b}\nallowed: {c} # gitleaks:allow\nwrapped: |\n{}\n",
                    hex(&random_bytes(&mut r, 16)),
                    wrapped.join("\n")
                );
                ("edge.txt", t)
            }
            _ => {
                let mut t = String::new();
                for _ in 0..12 {
                    t += &noise(&mut r);
                    t.push('\n');
                }
                ("noise.txt", t)
            }
        };
        let sub = dir.join(format!("enc{f:03}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join(name), text).expect("write");
    }
    written
}
