//! Optional verification: asking a token's provider whether it is live.
//!
//! Off by default (`verify = true` turns it on), because verifying sends
//! the candidate to its provider. Which provider is decided by the token's
//! shape, whatever rule found it: GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`,
//! `ghr_`, `github_pat_`: `GET /user`), Slack (`xoxb-`, `xoxp-`, `xoxa-`,
//! `xoxe-`, `xoxs-`: `POST /api/auth.test`) and Stripe (`sk_`/`rk_` live or
//! test keys: `GET /v1/account`). The request goes through the SDK's HTTP
//! client, so only to hosts the check grants (`allow.hosts`); anything
//! else is `unknown` with the reason. The token travels in the
//! `Authorization` header only, never in a URL or a log line.

use std::collections::HashMap;

use warden_plugin_sdk::http::{Http, HttpError, Request, Response};

/// The providers' API base URLs, overridable per check (GitHub
/// Enterprise, a proxy, a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// GitHub's REST API (`https://api.github.com`).
    pub github: String,
    /// Slack's Web API host (`https://slack.com`).
    pub slack: String,
    /// Stripe's API (`https://api.stripe.com`).
    pub stripe: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            github: "https://api.github.com".into(),
            slack: "https://slack.com".into(),
            stripe: "https://api.stripe.com".into(),
        }
    }
}

/// Whether a provider accepted a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The provider accepted it: a live credential.
    Verified,
    /// The provider refused it (revoked, expired, never valid).
    Unverified,
    /// Could not tell (no provider for it, not granted, an error, the
    /// limit reached): why.
    Unknown(String),
}

impl Verdict {
    /// `verified`, `unverified` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Unverified => "unverified",
            Verdict::Unknown(_) => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    GitHub,
    Slack,
    Stripe,
}

fn provider(secret: &str) -> Option<Provider> {
    let starts = |ps: &[&str]| ps.iter().any(|p| secret.starts_with(p));
    if starts(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]) {
        Some(Provider::GitHub)
    } else if starts(&["xoxb-", "xoxp-", "xoxa-", "xoxe-", "xoxs-"]) {
        Some(Provider::Slack)
    } else if starts(&["sk_live_", "sk_test_", "rk_live_", "rk_test_"]) {
        Some(Provider::Stripe)
    } else {
        None
    }
}

/// Verifies tokens, each distinct one once per run, at most `limit`.
pub struct Verifier<'a> {
    http: &'a Http,
    endpoints: Endpoints,
    limit: usize,
    asked: usize,
    seen: HashMap<String, Verdict>,
}

impl<'a> Verifier<'a> {
    /// Asks at most `limit` providers' questions per run.
    pub fn new(http: &'a Http, endpoints: Endpoints, limit: usize) -> Verifier<'a> {
        Verifier {
            http,
            endpoints,
            limit,
            asked: 0,
            seen: HashMap::new(),
        }
    }

    /// Requests sent so far.
    pub fn asked(&self) -> usize {
        self.asked
    }

    /// The verdict on `secret` (found in clear; not kept beyond the run).
    pub fn verify(&mut self, secret: &str) -> Verdict {
        if let Some(v) = self.seen.get(secret) {
            return v.clone();
        }
        let verdict = match provider(secret) {
            None => Verdict::Unknown("no provider verifies this kind of secret".into()),
            Some(_) if self.asked >= self.limit => Verdict::Unknown(format!(
                "over the limit of {} verifications per run",
                self.limit
            )),
            Some(p) => {
                self.asked += 1;
                judge(p, self.http.send(&request(p, &self.endpoints, secret)))
            }
        };
        self.seen.insert(secret.to_string(), verdict.clone());
        verdict
    }
}

fn request(p: Provider, e: &Endpoints, secret: &str) -> Request {
    let base = |b: &str| b.trim_end_matches('/').to_string();
    let bearer = format!("Bearer {secret}");
    match p {
        Provider::GitHub => Request::new("GET", format!("{}/user", base(&e.github)))
            .header("authorization", bearer)
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "warden-secret-scan"),
        Provider::Slack => Request::new("POST", format!("{}/api/auth.test", base(&e.slack)))
            .header("authorization", bearer)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Vec::new()),
        Provider::Stripe => Request::new("GET", format!("{}/v1/account", base(&e.stripe)))
            .header("authorization", bearer),
    }
}

fn judge(p: Provider, r: Result<Response, HttpError>) -> Verdict {
    let r = match r {
        Ok(r) => r,
        Err(HttpError::Denied { url, .. }) => {
            return Verdict::Unknown(format!("{url} is not granted (allow.hosts)"));
        }
        Err(e) => return Verdict::Unknown(e.to_string()),
    };
    match (p, r.status) {
        (Provider::Slack, 200) => {
            let v: serde_json::Value = r.json().unwrap_or_default();
            match (v["ok"].as_bool(), v["error"].as_str()) {
                (Some(true), _) => Verdict::Verified,
                (
                    Some(false),
                    Some(
                        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked"
                        | "token_expired",
                    ),
                ) => Verdict::Unverified,
                (_, e) => Verdict::Unknown(format!("Slack answered {}", e.unwrap_or("no ok"))),
            }
        }
        (_, 200) => Verdict::Verified,
        // A valid token without the scope (an app installation token on
        // /user, a restricted Stripe key): live all the same, unless the
        // refusal is a rate limit.
        (_, 403) if r.header("x-ratelimit-remaining") != Some("0") => Verdict::Verified,
        (_, 401) => Verdict::Unverified,
        (_, s) => Verdict::Unknown(format!("the provider answered HTTP {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_by_shape() {
        assert_eq!(provider("ghp_abc"), Some(Provider::GitHub));
        assert_eq!(provider("github_pat_11ABC"), Some(Provider::GitHub));
        assert_eq!(provider("xoxb-1-2-abc"), Some(Provider::Slack));
        assert_eq!(provider("sk_live_abc"), Some(Provider::Stripe));
        assert_eq!(provider("AKIAQ3ZT7WJNB5XKPRM4"), None);
    }

    #[test]
    fn verdicts() {
        let ok = |s, body: &str| Ok(Response::new(s, body.as_bytes().to_vec()));
        assert_eq!(judge(Provider::GitHub, ok(200, "{}")), Verdict::Verified);
        assert_eq!(judge(Provider::GitHub, ok(401, "")), Verdict::Unverified);
        assert_eq!(judge(Provider::Stripe, ok(403, "")), Verdict::Verified);
        assert_eq!(
            judge(Provider::Slack, ok(200, r#"{"ok":true}"#)),
            Verdict::Verified
        );
        assert_eq!(
            judge(
                Provider::Slack,
                ok(200, r#"{"ok":false,"error":"invalid_auth"}"#)
            ),
            Verdict::Unverified
        );
        assert!(matches!(
            judge(
                Provider::Slack,
                ok(200, r#"{"ok":false,"error":"ratelimited"}"#)
            ),
            Verdict::Unknown(_)
        ));
        assert!(matches!(
            judge(Provider::GitHub, ok(500, "")),
            Verdict::Unknown(_)
        ));
        let denied = Err(HttpError::Denied {
            url: "https://api.github.com/user".into(),
            reason: "x".into(),
        });
        assert_eq!(
            judge(Provider::GitHub, denied),
            Verdict::Unknown("https://api.github.com/user is not granted (allow.hosts)".into())
        );
    }
}
