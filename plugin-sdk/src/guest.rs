//! The component side: bindings for the `warden:plugin/plugin` world, the
//! adapter that turns a [`Plugin`] into its exports, and the backends that
//! talk to the host (HTTP over `wasi:http`, state and log over
//! `warden:plugin/host`). Compiled for wasm32 only.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::context::{Context, Env};
use crate::http::{Http, HttpError, Request, Response, Transport, split_url};
use crate::log::{Level, LogBackend};
use crate::state::{State, StateBackend};
use crate::{Capability, Plugin, Report, Severity, Status};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "warden:plugin/plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_impl",
        default_bindings_module: "warden_plugin_sdk::guest::bindings",
        generate_all,
    });
}

use bindings::warden::plugin::{host, types as wit};
use bindings::wasi::clocks::monotonic_clock;
use bindings::wasi::http::{outgoing_handler, types as http};
use bindings::wasi::io::{poll, streams};

/// Implements the world's exports for `P`; used by [`crate::export!`].
pub struct Adapter<P>(PhantomData<P>);

impl<P: Plugin> bindings::Guest for Adapter<P> {
    fn describe() -> wit::PluginInfo {
        let info = P::info();
        wit::PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            default_schedule: info.default_schedule,
            config_schema: crate::config_schema::<P>(),
            capabilities: info
                .capabilities
                .into_iter()
                .map(|c| match c {
                    Capability::Http => wit::Capability::Http,
                    Capability::Filesystem => wit::Capability::Filesystem,
                    Capability::Environment => wit::Capability::Environment,
                    Capability::State => wit::Capability::State,
                })
                .collect(),
        }
    }

    fn validate(config: String) -> Result<(), String> {
        crate::parse_config::<P>(&config).map(|_| ())
    }

    fn run(ctx: wit::RunContext) -> Result<wit::Report, String> {
        let config = crate::run_config::<P>(&ctx.config)?;
        let mut context = Context {
            check: ctx.check,
            config,
            scheduled: UNIX_EPOCH + Duration::from_millis(ctx.scheduled_unix_ms),
            attempt: ctx.attempt,
            deadline: UNIX_EPOCH + Duration::from_millis(ctx.deadline_unix_ms),
            http: Http::new(Arc::new(WasiHttp)),
            state: State::new(Arc::new(HostState)),
            env: Arc::new(ProcessEnv),
            tls: crate::tls::Tls::new(Arc::new(HostTls)),
            read_dirs: bindings::wasi::filesystem::preopens::get_directories()
                .into_iter()
                .map(|(_, path)| std::path::PathBuf::from(path))
                .collect(),
            // A constant: for other plugins `host.part` is not linked,
            // so their components do not import it.
            part: if P::SHARDED {
                Arc::new(HostPart)
            } else {
                Arc::new(crate::context::Whole)
            },
            // Likewise: asked only by plugins that say they act.
            action: if P::ACTS {
                host::action().map(|a| crate::Action {
                    name: a.name,
                    idempotency_key: a.idempotency_key,
                    dry_run: a.dry_run,
                    trigger_check: a.trigger_check,
                    trigger_status: match a.trigger_status {
                        wit::Status::Ok => Status::Ok,
                        wit::Status::Warning => Status::Warning,
                        wit::Status::Critical => Status::Critical,
                        wit::Status::Unknown => Status::Unknown,
                    },
                    trigger_summary: a.trigger_summary,
                })
            } else {
                None
            },
        };
        P::run(&mut context)
            .map(into_wit_report)
            .map_err(|e| e.to_string())
    }
}

fn pairs(v: Vec<(String, String)>) -> Vec<wit::Pair> {
    v.into_iter()
        .map(|(name, value)| wit::Pair { name, value })
        .collect()
}

fn into_wit_report(r: Report) -> wit::Report {
    wit::Report {
        status: match r.status {
            Status::Ok => wit::Status::Ok,
            Status::Warning => wit::Status::Warning,
            Status::Critical => wit::Status::Critical,
            Status::Unknown => wit::Status::Unknown,
        },
        summary: r.summary,
        metrics: r
            .metrics
            .into_iter()
            .map(|m| wit::Metric {
                name: m.name,
                value: m.value,
                unit: m.unit,
                labels: pairs(m.labels),
            })
            .collect(),
        findings: r
            .findings
            .into_iter()
            .map(|f| wit::Finding {
                fingerprint: f.fingerprint,
                rule: f.rule,
                severity: match f.severity {
                    Severity::Info => wit::Severity::Info,
                    Severity::Low => wit::Severity::Low,
                    Severity::Medium => wit::Severity::Medium,
                    Severity::High => wit::Severity::High,
                    Severity::Critical => wit::Severity::Critical,
                },
                message: f.message,
                location: f.location,
                attributes: pairs(f.attributes),
            })
            .collect(),
        outputs: r
            .outputs
            .into_iter()
            .map(|o| wit::Output {
                key: o.key,
                value: o.value,
            })
            .collect(),
    }
}

/// Which part of the run, asked of the host only when the plugin asks
/// (so only plugins that call [`Context::part`] import `host.part`).
struct HostPart;

impl crate::PartBackend for HostPart {
    fn part(&self) -> crate::Part {
        match host::part() {
            host::RunPart::Whole => crate::Part::Whole,
            host::RunPart::Shard(s) => crate::Part::Shard {
                index: s.index,
                count: s.count,
            },
            host::RunPart::Merge(reports) => {
                crate::Part::Merge(reports.into_iter().map(from_wit_report).collect())
            }
        }
    }

    fn claim(&self, key: &str) -> bool {
        host::claim(key)
    }
}

fn unpairs(v: Vec<wit::Pair>) -> Vec<(String, String)> {
    v.into_iter().map(|p| (p.name, p.value)).collect()
}

fn from_wit_report(r: wit::Report) -> Report {
    Report {
        status: match r.status {
            wit::Status::Ok => Status::Ok,
            wit::Status::Warning => Status::Warning,
            wit::Status::Critical => Status::Critical,
            wit::Status::Unknown => Status::Unknown,
        },
        summary: r.summary,
        metrics: r
            .metrics
            .into_iter()
            .map(|m| crate::Metric {
                name: m.name,
                value: m.value,
                unit: m.unit,
                labels: unpairs(m.labels),
            })
            .collect(),
        findings: r
            .findings
            .into_iter()
            .map(|f| crate::Finding {
                fingerprint: f.fingerprint,
                rule: f.rule,
                severity: match f.severity {
                    wit::Severity::Info => Severity::Info,
                    wit::Severity::Low => Severity::Low,
                    wit::Severity::Medium => Severity::Medium,
                    wit::Severity::High => Severity::High,
                    wit::Severity::Critical => Severity::Critical,
                },
                message: f.message,
                location: f.location,
                attributes: unpairs(f.attributes),
            })
            .collect(),
        outputs: r
            .outputs
            .into_iter()
            .map(|o| crate::Output {
                key: o.key,
                value: o.value,
            })
            .collect(),
    }
}

/// The sandbox's environment: only the variables the check grants.
struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Certificate look-ups through `warden:plugin/tls`.
struct HostTls;

impl crate::tls::TlsBackend for HostTls {
    fn peer_certificates(&self, url: &str) -> Result<crate::tls::Peer, String> {
        use bindings::warden::plugin::tls;
        let peer = tls::peer_certificates(url)?;
        Ok(crate::tls::Peer {
            chain: peer
                .chain
                .into_iter()
                .map(|c| crate::tls::Certificate {
                    subject: c.subject,
                    issuer: c.issuer,
                    not_before: c.not_before,
                    not_after: c.not_after,
                })
                .collect(),
            verified: peer.verified,
            verify_error: peer.verify_error,
        })
    }
}

/// Log records into the agent's log.
pub(crate) struct HostLog;

impl LogBackend for HostLog {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => host::LogLevel::Trace,
            Level::Debug => host::LogLevel::Debug,
            Level::Info => host::LogLevel::Info,
            Level::Warn => host::LogLevel::Warn,
            Level::Error => host::LogLevel::Error,
        };
        let fields: Vec<wit::Pair> = fields
            .iter()
            .map(|(k, v)| wit::Pair {
                name: k.to_string(),
                value: v.to_string(),
            })
            .collect();
        host::log(level, message, &fields);
    }
}

/// The check's state, kept by the agent.
struct HostState;

impl StateBackend for HostState {
    fn get(&self, key: &str) -> Option<String> {
        host::state_get(key)
    }
    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        host::state_set(key, value)
    }
    fn delete(&self, key: &str) {
        host::state_delete(key)
    }
}

/// HTTP over `wasi:http/outgoing-handler`.
struct WasiHttp;

/// A request that has been handed to the host and awaits its response.
struct InFlight {
    url: String,
    response: http::FutureIncomingResponse,
    started_ns: u64,
    deadline_ns: u64,
}

impl Transport for WasiHttp {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let flight = start(request)?;
        finish(flight)
    }

    fn send_all(&self, requests: &[Request]) -> Vec<Result<Response, HttpError>> {
        let flights: Vec<Result<InFlight, HttpError>> = requests.iter().map(start).collect();
        flights.into_iter().map(|f| f.and_then(finish)).collect()
    }
}

fn method(m: &str) -> http::Method {
    match m.to_ascii_uppercase().as_str() {
        "GET" => http::Method::Get,
        "HEAD" => http::Method::Head,
        "POST" => http::Method::Post,
        "PUT" => http::Method::Put,
        "DELETE" => http::Method::Delete,
        "CONNECT" => http::Method::Connect,
        "OPTIONS" => http::Method::Options,
        "TRACE" => http::Method::Trace,
        "PATCH" => http::Method::Patch,
        other => http::Method::Other(other.to_string()),
    }
}

fn start(request: &Request) -> Result<InFlight, HttpError> {
    let url = request.url.clone();
    let parts = split_url(&request.url)?;
    let other = |reason: String| HttpError::Other {
        url: url.clone(),
        reason,
    };
    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    // The body's length is known: say so, so that servers which do not
    // read chunked request bodies (Python's http.server, many WSGI servers
    // and proxies) see it. Without a length the request would go chunked.
    // Every method but GET and HEAD says its length, an empty body's too:
    // a DELETE without one goes chunked, and a server that reads by
    // Content-Length only takes the chunk's end for the next request.
    let sends_body = !request.body.is_empty()
        || !matches!(request.method.to_ascii_uppercase().as_str(), "GET" | "HEAD");
    if sends_body && !entries.iter().any(|(n, _)| n == "content-length") {
        entries.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let headers =
        http::Fields::from_list(&entries).map_err(|e| other(format!("bad header: {e:?}")))?;
    let req = http::OutgoingRequest::new(headers);
    req.set_method(&method(&request.method))
        .map_err(|_| other(format!("bad method {:?}", request.method)))?;
    let scheme = if parts.scheme.eq_ignore_ascii_case("https") {
        http::Scheme::Https
    } else {
        http::Scheme::Http
    };
    req.set_scheme(Some(&scheme))
        .and_then(|_| req.set_authority(Some(parts.authority)))
        .and_then(|_| req.set_path_with_query(Some(&parts.path_and_query)))
        .map_err(|_| HttpError::InvalidUrl(url.clone()))?;
    let timeout_ns = request.timeout.as_nanos().min(u64::MAX as u128) as u64;
    let options = http::RequestOptions::new();
    // The host clamps these to the check's limits; refusals are harmless.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));
    let body = req
        .body()
        .map_err(|_| other("request body already taken".into()))?;
    let started_ns = monotonic_clock::now();
    let response = outgoing_handler::handle(req, Some(options)).map_err(|e| map_error(&url, e))?;
    write_body(&body, &request.body).map_err(|e| other(format!("writing request body: {e}")))?;
    http::OutgoingBody::finish(body, None).map_err(|e| map_error(&url, e))?;
    Ok(InFlight {
        url,
        response,
        started_ns,
        deadline_ns: started_ns.saturating_add(timeout_ns),
    })
}

fn write_body(body: &http::OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body.write().map_err(|_| "body stream taken".to_string())?;
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

/// Waits until `pollable` is ready or the deadline passes; false on timeout.
fn wait(pollable: &poll::Pollable, deadline_ns: u64) -> bool {
    if pollable.ready() {
        return true;
    }
    let timer = monotonic_clock::subscribe_instant(deadline_ns);
    let ready = poll::poll(&[pollable, &timer]);
    ready.contains(&0)
}

fn finish(flight: InFlight) -> Result<Response, HttpError> {
    let InFlight {
        url,
        response,
        started_ns,
        deadline_ns,
    } = flight;
    let timeout = || HttpError::Timeout { url: url.clone() };
    if !wait(&response.subscribe(), deadline_ns) {
        return Err(timeout());
    }
    let incoming = match response.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => return Err(map_error(&url, code)),
        Some(Err(())) | None => {
            return Err(HttpError::Other {
                url,
                reason: "response already taken".into(),
            });
        }
    };
    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = incoming.consume().map_err(|_| HttpError::Other {
        url: url.clone(),
        reason: "response body already taken".into(),
    })?;
    let stream = body.stream().map_err(|_| HttpError::Other {
        url: url.clone(),
        reason: "response body stream taken".into(),
    })?;
    let mut bytes = Vec::new();
    loop {
        match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => {
                if !wait(&stream.subscribe(), deadline_ns) {
                    return Err(timeout());
                }
            }
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(streams::StreamError::Closed) => break,
            Err(streams::StreamError::LastOperationFailed(e)) => {
                if let Some(code) = http::http_error_code(&e) {
                    return Err(map_error(&url, code));
                }
                // wasmtime 48 reports body errors without an error code;
                // its message is all there is. Keep its first line only
                // (the rest can be a host backtrace).
                let text = e.to_debug_string();
                let first = text.lines().next().unwrap_or("").to_string();
                return Err(if first.contains("body size") {
                    HttpError::BodyTooLarge { url }
                } else if first.contains("timed out") || first.contains("timeout") {
                    HttpError::Timeout { url }
                } else {
                    HttpError::Other { url, reason: first }
                });
            }
        }
    }
    drop(stream);
    let _trailers = http::IncomingBody::finish(body);
    let elapsed = Duration::from_nanos(monotonic_clock::now().saturating_sub(started_ns));
    Ok(Response {
        status,
        headers,
        body: bytes,
        elapsed,
    })
}

fn map_error(url: &str, code: http::ErrorCode) -> HttpError {
    use http::ErrorCode as E;
    let url = url.to_string();
    match code {
        E::HttpRequestDenied => HttpError::Denied {
            url,
            reason: "destination not granted by the check's allow.hosts".into(),
        },
        E::DestinationIpProhibited => HttpError::Denied {
            url,
            reason: "the name resolves to a loopback, private, link-local or metadata address \
                     that the check does not grant literally"
                .into(),
        },
        E::ConnectionLimitReached => HttpError::Denied {
            url,
            reason: "the check's cap on requests per run is reached".into(),
        },
        E::HttpResponseBodySize(_) => HttpError::BodyTooLarge { url },
        E::ConnectionTimeout
        | E::ConnectionReadTimeout
        | E::ConnectionWriteTimeout
        | E::HttpResponseTimeout
        | E::DnsTimeout => HttpError::Timeout { url },
        E::ConnectionRefused => HttpError::Connect {
            url,
            reason: "connection refused".into(),
        },
        E::DnsError(p) => HttpError::Connect {
            url,
            reason: format!("DNS error {}", p.rcode.unwrap_or_default()),
        },
        E::DestinationNotFound => HttpError::Connect {
            url,
            reason: "host not found".into(),
        },
        E::InternalError(Some(msg)) => HttpError::Other { url, reason: msg },
        other => HttpError::Other {
            url,
            reason: format!("{other:?}"),
        },
    }
}
