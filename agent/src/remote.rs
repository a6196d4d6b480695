//! `warden silence add|list|expire`: commands that talk to a running
//! agent's API (silences live in its store). The agent is found by
//! `--url` (or `WARDEN_URL`), else by the config's `[agent] listen`; the
//! token comes from `WARDEN_TOKEN`, else from the config's `[api]`
//! token. Each prints what the agent answered and exits 1 when it
//! refused (with its message) or cannot be reached.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use warden_text::escape::escape;

use crate::config::Config;

/// How long a command waits for the agent.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Subcommand)]
pub(crate) enum SilenceCommand {
    /// Silence the checks that match: `check=db-*`, `plugin=http-health`,
    /// `team=payments` (globs; every matcher must match).
    Add {
        /// NAME=GLOB matchers.
        #[arg(required = true, value_name = "NAME=GLOB")]
        matchers: Vec<String>,
        /// How long (`2h`), from the start.
        #[arg(long, conflicts_with = "until")]
        duration: Option<String>,
        /// Until when (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// From when (RFC 3339; default now).
        #[arg(long)]
        start: Option<String>,
        /// Why (required).
        #[arg(long)]
        comment: String,
        /// Who (default $USER).
        #[arg(long)]
        author: Option<String>,
    },
    /// List the silences (in force, pending and expired) and the
    /// maintenance windows.
    List,
    /// End a silence now.
    Expire {
        /// Its id.
        id: i64,
    },
}

#[derive(clap::Args)]
pub(crate) struct SilenceArgs {
    #[command(subcommand)]
    pub(crate) command: SilenceCommand,
    /// The agent's API (default $WARDEN_URL, else the config's listen
    /// address).
    #[arg(long, global = true)]
    url: Option<String>,
    /// The config to find the agent by (default: $WARDEN_CONFIG, else
    /// ./warden.toml if it exists, else the embedded defaults).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<std::path::PathBuf>,
}

/// The agent's base URL and token.
fn target(args: &SilenceArgs) -> Result<(String, Option<String>)> {
    let url = args
        .url
        .clone()
        .or_else(|| std::env::var("WARDEN_URL").ok());
    let env_token = std::env::var("WARDEN_TOKEN").ok();
    if let (Some(url), Some(_)) = (&url, &env_token) {
        return Ok((url.clone(), env_token));
    }
    let path = Config::find(args.config.as_deref());
    let config = Config::load(path.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let url = url.unwrap_or_else(|| format!("http://{}", config.agent.listen));
    Ok((url, env_token.or(config.api.token)))
}

/// One request to the agent: its status and JSON body.
async fn call(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let uri: hyper::Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .with_context(|| format!("{base:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!(
            "{base}: only http:// URLs are supported (the API serves plain HTTP; put TLS in front)"
        );
    }
    let host = uri.host().context("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .with_context(|| format!("cannot reach the agent at {base}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(conn);
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host.clone(), |a| a.to_string()),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONTENT_LENGTH, bytes.len());
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let response = sender
        .send_request(req.body(Full::new(Bytes::from(bytes)))?)
        .await?;
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), 16 << 20)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, v))
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

fn matchers_text(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

async fn silence(args: SilenceArgs) -> Result<String> {
    let (base, token) = target(&args)?;
    let token = token.as_deref();
    let (method, path, body) = match args.command {
        SilenceCommand::Add {
            matchers,
            duration,
            until,
            start,
            comment,
            author,
        } => {
            let mut map = BTreeMap::new();
            for m in &matchers {
                let (k, v) = m
                    .split_once('=')
                    .with_context(|| format!("{m:?}: a matcher is NAME=GLOB, e.g. check=db-*"))?;
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
            if duration.is_none() && until.is_none() {
                bail!("give --duration (2h) or --until (RFC 3339)");
            }
            let author = author
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
            let body = json!({"matchers": map, "duration": duration, "ends_at": until, "starts_at": start, "comment": comment, "author": author});
            ("POST", "/v1/silences".to_string(), Some(body))
        }
        SilenceCommand::List => ("GET", "/v1/silences".to_string(), None),
        SilenceCommand::Expire { id } => ("DELETE", format!("/v1/silences/{id}"), None),
    };
    let (status, v) = call(&base, token, method, &path, body).await?;
    if !(200..300).contains(&status) {
        let msg = v["error"]["message"].as_str().unwrap_or("no message");
        bail!("the agent refused (HTTP {status}): {}", escape(msg));
    }
    Ok(match (method, path.as_str()) {
        ("POST", _) => {
            let s = &v["silence"];
            let checks: Vec<&str> = s["checks"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "silence {} added ({}), until {}; matches {} check{}{}",
                s["id"],
                s["state"].as_str().unwrap_or(""),
                time(&s["ends_unix_ms"]),
                checks.len(),
                if checks.len() == 1 { "" } else { "s" },
                if checks.is_empty() {
                    String::new()
                } else {
                    format!(": {}", checks.join(", "))
                }
            )
        }
        ("DELETE", _) => format!("silence {} expired", v["expired"]),
        _ => {
            let mut out =
                String::from("ID  STATE    UNTIL                 AUTHOR  MATCHERS  COMMENT\n");
            for s in v["silences"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}  {}  {}  {}  {}  {}\n",
                    s["id"],
                    s["state"].as_str().unwrap_or(""),
                    time(&s["ends_unix_ms"]),
                    escape(s["author"].as_str().unwrap_or("")),
                    escape(&matchers_text(&s["matchers"])),
                    escape(s["comment"].as_str().unwrap_or("")),
                ));
            }
            for m in v["maintenance"].as_array().into_iter().flatten() {
                let active = &m["active_until_unix_ms"];
                out.push_str(&format!(
                    "maintenance {}: {}\n",
                    escape(m["name"].as_str().unwrap_or("")),
                    if active.is_null() {
                        "not in force now".to_string()
                    } else {
                        format!("in force until {}", time(active))
                    }
                ));
            }
            out.trim_end().to_string()
        }
    })
}

/// `warden silence ...`.
pub(crate) async fn main(args: SilenceArgs) -> ExitCode {
    match tokio::time::timeout(TIMEOUT, silence(args)).await {
        Ok(Ok(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("warden: {e:#}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("warden: the agent did not answer within {TIMEOUT:?}");
            ExitCode::from(1)
        }
    }
}
