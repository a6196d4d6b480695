//! Outgoing HTTP (`wasi:http/outgoing-handler`): the check's `allow.hosts`
//! grants, the address policy, and the connection the agent makes on the
//! plugin's behalf.
//!
//! Deny by default. A request goes out only when a grant names its scheme,
//! host and port. Grants are `scheme://host[:port]` where host is a name,
//! an IP literal, `*.suffix` (any name under the suffix) or `*` (any name).
//! After DNS resolution every address is checked again: loopback, private,
//! link-local, shared, unspecified and cloud-metadata addresses are refused
//! unless the grant names that host or address literally, and the agent
//! connects only to an address that passed, so a name cannot be re-resolved
//! to something else between the check and the connection.
//!
//! Caps: requests per run, connect and total timeouts, response body size.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpErr, RequestOptions, WasiBody, WasiHttpHooks};

use crate::limits;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// A name (lower case) or an IP literal (canonical text).
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
    /// `*`: any name.
    Any,
}

/// One `allow.hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    scheme: Scheme,
    host: HostMatch,
    port: u16,
    text: String,
}

impl HostGrant {
    /// Parses `scheme://host[:port]`.
    pub fn parse(text: &str) -> Result<HostGrant, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?}: expected scheme://host[:port]"))?;
        let scheme = Scheme::parse(scheme)
            .ok_or_else(|| format!("{text:?}: scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{text:?}: a grant names scheme, host and port only (no path, query or user)"
            ));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| format!("{text:?}: bad host or port"))?;
        let port = port.unwrap_or(scheme.default_port());
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') || !is_dns_name(suffix) {
                return Err(format!(
                    "{text:?}: a wildcard is allowed only as a `*.` prefix"
                ));
            }
            HostMatch::Suffix(format!(".{}", suffix.to_ascii_lowercase()))
        } else if host.contains('*') {
            return Err(format!(
                "{text:?}: a wildcard is allowed only as a `*.` prefix"
            ));
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostMatch::Exact(ip.to_string())
        } else if is_dns_name(&host) {
            HostMatch::Exact(host.to_ascii_lowercase())
        } else {
            return Err(format!("{text:?}: bad host name"));
        };
        Ok(HostGrant {
            scheme,
            host,
            port,
            text: text.to_string(),
        })
    }

    fn matches(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        self.scheme == scheme
            && self.port == port
            && match &self.host {
                HostMatch::Exact(h) => h == host,
                HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
                HostMatch::Any => host.parse::<IpAddr>().is_err(),
            }
    }

    fn is_literal_for(&self, host: &str) -> bool {
        matches!(&self.host, HostMatch::Exact(h) if h == host)
    }

    /// The grant as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Splits `host[:port]` or `[v6][:port]`; the host comes back without
/// brackets and lower-cased.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_ascii_lowercase(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Some((host.to_ascii_lowercase(), Some(port.parse().ok()?)))
        }
        Some(_) => None,
        None if s.is_empty() => None,
        None => Some((s.to_ascii_lowercase(), None)),
    }
}

/// Why an address is refused without a literal grant; `None` if public.
pub fn restricted_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted_v4(v4);
            }
            let seg = v6.segments();
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                // NAT64 embeds an IPv4 destination.
                let v4 = Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                );
                return restricted_v4(v4);
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local, incl. cloud metadata fd00:ec2::254)")
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn restricted_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local (incl. cloud metadata 169.254.169.254)")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared address space (carrier-grade NAT, incl. 100.100.100.200)")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments")
    } else if v4.is_broadcast() || v4.is_multicast() {
        Some("broadcast/multicast")
    } else {
        None
    }
}

/// A check's HTTP grants, parsed and checked once.
#[derive(Debug, Clone, Default)]
pub struct HttpGrants {
    grants: Vec<HostGrant>,
}

impl HttpGrants {
    /// Parses every entry; errors name the index of the bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<HttpGrants, Vec<String>> {
        let mut grants = Vec::new();
        let mut errors = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match HostGrant::parse(e.as_ref()) {
                Ok(g) => grants.push(g),
                Err(msg) => errors.push(format!("allow.hosts[{i}] {msg}")),
            }
        }
        if errors.is_empty() {
            Ok(HttpGrants { grants })
        } else {
            Err(errors)
        }
    }

    /// The grants as written.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.grants.iter().map(HostGrant::as_str)
    }

    /// True when nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The grant that allows `scheme://host:port`, if any; prefers a
    /// literal grant so that restricted addresses are judged by it.
    fn find(&self, scheme: Scheme, host: &str, port: u16) -> Option<&HostGrant> {
        let mut found = None;
        for g in self.grants.iter().filter(|g| g.matches(scheme, host, port)) {
            if g.is_literal_for(host) {
                return Some(g);
            }
            found.get_or_insert(g);
        }
        found
    }
}

/// Per-run HTTP state: the grants, the request count and the refusals
/// (kept so the run's error can say what was refused and why).
pub struct Egress {
    grants: Arc<HttpGrants>,
    requests: u32,
    refusals: Arc<Mutex<Vec<String>>>,
}

impl Egress {
    /// State for one run.
    pub fn new(grants: Arc<HttpGrants>) -> Self {
        Egress {
            grants,
            requests: 0,
            refusals: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Requests attempted so far in this run.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The shared list of refusals (for futures that outlive `&mut self`).
    pub(crate) fn refusal_log(&self) -> Arc<Mutex<Vec<String>>> {
        self.refusals.clone()
    }

    /// What was refused in this run, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub(crate) fn refuse(refusals: &Mutex<Vec<String>>, msg: String) {
        tracing::warn!(reason = %msg, "plugin HTTP request refused");
        if let Ok(mut r) = refusals.lock()
            && r.len() < 32
        {
            r.push(msg);
        }
    }

    /// Checks the request against the grants; returns where to connect.
    pub(crate) fn authorize(&mut self, uri: &http::Uri) -> Result<Target, HttpErr> {
        self.requests += 1;
        let shown = crate::redact::url(&uri.to_string());
        if self.requests > limits::MAX_HTTP_REQUESTS_PER_RUN {
            Self::refuse(
                &self.refusals,
                format!(
                    "request to {shown} refused: more than {} requests in one run",
                    limits::MAX_HTTP_REQUESTS_PER_RUN
                ),
            );
            return Err(HttpErr::ConnectionLimitReached);
        }
        let scheme = uri
            .scheme_str()
            .and_then(Scheme::parse)
            .ok_or(HttpErr::HttpProtocolError)?;
        let authority = uri.authority().ok_or(HttpErr::HttpRequestUriInvalid)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host,
        };
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        match self.grants.find(scheme, &host, port) {
            Some(grant) => Ok(Target {
                scheme,
                literal: grant.is_literal_for(&host),
                host,
                port,
                shown,
            }),
            None => {
                Self::refuse(
                    &self.refusals,
                    format!(
                        "request to {shown} refused: {}://{host}:{port} is not in the check's allow.hosts",
                        scheme.as_str()
                    ),
                );
                Err(HttpErr::HttpRequestDenied)
            }
        }
    }
}

/// Where an authorized request goes.
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) literal: bool,
    pub(crate) shown: String,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpErr>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpErr>> + Send>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpErr>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let target = self.authorize(request.uri());
        let refusals = self.refusals.clone();
        Box::new(async move {
            let target = target?;
            send(request, options, target, refusals).await
        })
    }
}

fn clamp(requested: Option<Duration>, cap: Duration) -> Duration {
    requested.map_or(cap, |d| d.min(cap))
}

async fn resolve(target: &Target, timeout: Duration) -> Result<Vec<SocketAddr>, HttpErr> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(HttpErr::DnsTimeout),
        Ok(Err(e)) => Err(HttpErr::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        }),
        Ok(Ok(addrs)) => Ok(addrs.collect()),
    }
}

static EXTRA_ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();

/// Adds the certificates of a PEM file to the trust roots of every TLS
/// connection the agent makes for plugins (the `[agent] ca_file` /
/// `--ca-file` setting, e.g. an internal CA). Call once, before any run.
pub fn trust_extra_roots(pem: &[u8]) -> Result<usize, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no certificates in the file".into());
    }
    let n = certs.len();
    if ROOTS.get().is_some() {
        return Err("trust roots are already in use; set extra roots before any run".into());
    }
    EXTRA_ROOTS
        .set(certs)
        .map_err(|_| "extra trust roots were already set".to_string())?;
    Ok(n)
}

static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();

/// webpki's roots plus any extra roots, built once.
pub(crate) fn root_store() -> Arc<rustls::RootCertStore> {
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            for cert in EXTRA_ROOTS.get().into_iter().flatten() {
                let _ = roots.add(cert.clone());
            }
            Arc::new(roots)
        })
        .clone()
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports rustls' default protocol versions")
                .with_root_certificates(root_store())
                .with_no_client_auth(),
            )
        })
        .clone()
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Resolves the target, applies the address policy (restricted addresses
/// need a literal grant) and connects to an address that passed; used by
/// HTTP egress and by the TLS capability.
pub(crate) async fn connect_vetted(
    target: &Target,
    connect_timeout: Duration,
    refusals: &Mutex<Vec<String>>,
) -> Result<TcpStream, HttpErr> {
    let addrs = resolve(target, connect_timeout).await?;
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for addr in addrs {
        match restricted_reason(addr.ip()) {
            Some(why) if !target.literal => refused.push(format!("{} ({why})", addr.ip())),
            _ => allowed.push(addr),
        }
    }
    if allowed.is_empty() {
        Egress::refuse(
            refusals,
            format!(
                "request to {} refused: {} resolves to {}, which only a grant naming that host or address literally allows",
                target.shown,
                target.host,
                if refused.is_empty() {
                    "nothing".to_string()
                } else {
                    refused.join(", ")
                }
            ),
        );
        return Err(if refused.is_empty() {
            HttpErr::DestinationNotFound
        } else {
            HttpErr::DestinationIpProhibited
        });
    }

    let mut last_err = HttpErr::ConnectionRefused;
    let mut tcp = None;
    for addr in allowed {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last_err = HttpErr::Connect(e),
            Err(_) => last_err = HttpErr::ConnectionTimeout,
        }
    }
    let tcp = tcp.ok_or(last_err)?;
    Ok(tcp)
}

async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    target: Target,
    refusals: Arc<Mutex<Vec<String>>>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpErr> {
    let connect_timeout = clamp(
        options.and_then(|o| o.connect_timeout),
        limits::HTTP_CONNECT_TIMEOUT,
    );
    let first_byte_timeout = clamp(
        options.and_then(|o| o.first_byte_timeout),
        limits::HTTP_TOTAL_TIMEOUT,
    );
    let between_bytes_timeout = clamp(
        options.and_then(|o| o.between_bytes_timeout),
        limits::HTTP_TOTAL_TIMEOUT,
    );
    let deadline = tokio::time::Instant::now() + limits::HTTP_TOTAL_TIMEOUT;

    let tcp = connect_vetted(&target, connect_timeout, &refusals).await?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match target.scheme {
        Scheme::Http => Box::new(tcp),
        Scheme::Https => {
            let name = match target.host.parse::<IpAddr>() {
                Ok(ip) => rustls::pki_types::ServerName::from(ip),
                Err(_) => rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(HttpErr::InvalidDnsNameError)?,
            };
            let connector = tokio_rustls::TlsConnector::from(tls_config());
            let tls = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| HttpErr::ConnectionTimeout)?
                .map_err(HttpErr::Tls)?;
            Box::new(tls)
        }
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(hyper_util::rt::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpErr::ConnectionTimeout)??;

    // Origin-form on the wire; the Host header carries the authority.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *request.uri_mut() = path.parse().map_err(|_| HttpErr::HttpRequestUriInvalid)?;

    let mut conn = Box::pin(conn);
    let mut response_fut = Box::pin(tokio::time::timeout(
        first_byte_timeout.min(deadline - tokio::time::Instant::now()),
        sender.send_request(request),
    ));
    let mut conn_done = false;
    // Drive the connection while waiting for the response head.
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = response_fut.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if !conn_done && let Poll::Ready(r) = conn.as_mut().poll(cx) {
            conn_done = true;
            if let Err(e) = r {
                return Poll::Ready(Ok(Err(e)));
            }
            return response_fut.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
    .map_err(|_| HttpErr::ConnectionReadTimeout)?
    .map_err(HttpErr::from)?;

    let cap = limits::MAX_HTTP_BODY_BYTES;
    if let Some(len) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > cap
    {
        Egress::refuse(
            &refusals,
            format!(
                "response from {} refused: {len} bytes exceeds the {cap}-byte body cap",
                target.shown
            ),
        );
        return Err(HttpErr::HttpResponseBodySize(Some(len)));
    }
    let shown = target.shown.clone();
    let response = response.map(move |incoming| {
        CappedBody {
            incoming,
            read: 0,
            cap,
            between: between_bytes_timeout,
            idle: Box::pin(tokio::time::sleep(between_bytes_timeout)),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            refusals,
            shown,
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        if conn_done {
            return Ok(());
        }
        conn.await.map_err(HttpErr::from)
    });
    Ok((response, io))
}

/// A response body that stops at the size cap, an idle gap longer than
/// the between-bytes timeout, or the request's total deadline.
struct CappedBody {
    incoming: hyper::body::Incoming,
    read: u64,
    cap: u64,
    between: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    refusals: Arc<Mutex<Vec<String>>>,
    shown: String,
}

impl http_body::Body for CappedBody {
    type Data = Bytes;
    type Error = HttpErr;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpErr>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.read > this.cap {
                        Egress::refuse(
                            &this.refusals,
                            format!(
                                "response from {} cut off: body exceeds the {}-byte cap",
                                this.shown, this.cap
                            ),
                        );
                        return Poll::Ready(Some(Err(HttpErr::HttpResponseBodySize(Some(
                            this.read,
                        )))));
                    }
                }
                let next = tokio::time::Instant::now() + this.between;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpErr::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(HttpErr::HttpResponseTimeout)));
                }
                if this.idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(HttpErr::ConnectionReadTimeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> HttpGrants {
        HttpGrants::parse(list).unwrap()
    }

    #[test]
    fn grants_match_scheme_host_and_port() {
        let g = grants(&[
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "https://*.corp.io",
        ]);
        assert!(g.find(Scheme::Https, "api.example.com", 443).is_some());
        assert!(g.find(Scheme::Http, "api.example.com", 443).is_none());
        assert!(g.find(Scheme::Https, "api.example.com", 8443).is_none());
        assert!(g.find(Scheme::Http, "127.0.0.1", 8080).is_some());
        assert!(g.find(Scheme::Http, "127.0.0.1", 8081).is_none());
        assert!(g.find(Scheme::Https, "a.corp.io", 443).is_some());
        assert!(g.find(Scheme::Https, "a.b.corp.io", 443).is_some());
        assert!(g.find(Scheme::Https, "corp.io", 443).is_none());
        assert!(g.find(Scheme::Https, "evilcorp.io", 443).is_none());
    }

    #[test]
    fn literal_grants_are_preferred() {
        let g = grants(&["http://*:9000", "http://localhost:9000"]);
        let found = g.find(Scheme::Http, "localhost", 9000).unwrap();
        assert!(found.is_literal_for("localhost"));
        let g = grants(&["http://*:9000"]);
        assert!(
            !g.find(Scheme::Http, "localhost", 9000)
                .unwrap()
                .is_literal_for("localhost")
        );
        // `*` is for names; IP literals must be granted literally.
        assert!(g.find(Scheme::Http, "127.0.0.1", 9000).is_none());
    }

    #[test]
    fn bad_grants_are_named() {
        let errs = HttpGrants::parse(&[
            "ftp://x",
            "https://a.*.com",
            "https://x.com/path",
            "http://h:99999",
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 4);
        assert!(errs[0].starts_with("allow.hosts[0]"), "{errs:?}");
        assert!(errs[1].contains("wildcard"), "{errs:?}");
        assert!(errs[2].contains("no path"), "{errs:?}");
    }

    #[test]
    fn ipv6_grants() {
        let g = grants(&["http://[::1]:8080"]);
        assert!(g.find(Scheme::Http, "::1", 8080).is_some());
    }

    #[test]
    fn restricted_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(restricted_reason(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(restricted_reason(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }
}
