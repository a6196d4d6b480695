//! What HTTP egress and TLS inspection share: the `allow.hosts` grants
//! and how a URL is matched against them, the address policy, the vetted
//! connect, and the trust roots.
//!
//! A grant is `scheme://host[:port]` where host is a name, an IP literal,
//! `*.suffix` (any name under the suffix) or `*` (any name). After DNS
//! resolution every address is checked again: loopback, private,
//! link-local, shared, unspecified and cloud-metadata addresses are refused
//! unless the grant names that host or address literally, and the agent
//! connects only to an address that passed, so a name cannot be re-resolved
//! to something else between the check and the connection.
//!
//! The trust roots (webpki's, plus any `[agent] ca_file`) belong to the
//! runtime that was built with them ([`Net`]), not to the process.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use wasmtime_wasi_http::Error as HttpErr;

use super::GrantError;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    pub(crate) fn parse(s: &str) -> Option<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    pub(crate) fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
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
                // Wildcards are for names; an address, in any spelling a
                // resolver accepts, must be granted literally.
                HostMatch::Suffix(s) => {
                    host.len() > s.len() && host.ends_with(s.as_str()) && !is_address_like(host)
                }
                HostMatch::Any => !is_address_like(host),
            }
    }

    pub(crate) fn is_literal_for(&self, host: &str) -> bool {
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

/// True for an IP literal, and for names that C resolvers read as IPv4
/// addresses (`2130706433`, `0x7f000001`, `127.1`): the last label is a
/// number. No top-level domain is numeric.
fn is_address_like(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
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

/// A check's `allow.hosts`, parsed and checked once: what HTTP and TLS
/// may reach.
#[derive(Debug, Clone, Default)]
pub struct HostGrants {
    grants: Vec<HostGrant>,
}

impl HostGrants {
    /// Parses every entry of `allow.<key>`; errors name the index of the
    /// bad entry.
    pub fn parse<S: AsRef<str>>(key: &str, entries: &[S]) -> Result<HostGrants, Vec<GrantError>> {
        let mut grants = Vec::new();
        let mut errors = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match HostGrant::parse(e.as_ref()) {
                Ok(g) => grants.push(g),
                Err(msg) => errors.push(GrantError::at(key, i, msg)),
            }
        }
        if errors.is_empty() {
            Ok(HostGrants { grants })
        } else {
            Err(errors)
        }
    }

    /// The grants as written, for the API.
    pub fn as_written(&self) -> Vec<&str> {
        self.grants.iter().map(HostGrant::as_str).collect()
    }

    /// The grant that allows `scheme://host:port`, if any; prefers a
    /// literal grant so that restricted addresses are judged by it.
    pub(crate) fn find(&self, scheme: Scheme, host: &str, port: u16) -> Option<&HostGrant> {
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

/// Where an authorized request goes.
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) literal: bool,
    pub(crate) shown: String,
}

/// Requests or responses refused in one run, kept (bounded) so the run's
/// outcome can say what was refused and why, and the first fault that was
/// the agent's own (no file descriptors left, no memory for a socket);
/// shared with the futures of the run's requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusals(Arc<Mutex<RefusalLog>>);

#[derive(Debug, Default)]
struct RefusalLog {
    list: Vec<String>,
    fault: Option<String>,
}

impl Refusals {
    /// Most refusals kept per run; the log has every one.
    const KEPT: usize = 32;

    fn log(&self) -> std::sync::MutexGuard<'_, RefusalLog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs and records one refusal.
    pub(crate) fn push(&self, msg: String) {
        tracing::warn!(reason = %msg, "plugin HTTP request refused");
        let mut log = self.log();
        if log.list.len() < Self::KEPT {
            log.list.push(msg);
        }
    }

    /// What was refused, in order.
    pub(crate) fn list(&self) -> Vec<String> {
        self.log().list.clone()
    }

    /// Records a failure that is the agent's, not the service's: the run
    /// ends `unknown` with it whatever the plugin reports.
    pub(crate) fn host_fault(&self, msg: String) {
        tracing::error!(reason = %msg, "a plugin request failed on the agent's side");
        self.log().fault.get_or_insert(msg);
    }

    /// The first host fault of the run.
    pub(crate) fn fault(&self) -> Option<String> {
        self.log().fault.clone()
    }
}

/// Whether a socket error is the host's own (descriptors or memory
/// exhausted) rather than anything the remote side did.
pub(crate) fn is_host_fault(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The TLS side of a runtime: trust roots, the client configuration HTTP
/// egress uses, and the verifier TLS inspection reports with. Built once
/// per runtime.
pub struct Net {
    pub(crate) client: Arc<rustls::ClientConfig>,
    pub(crate) provider: Arc<rustls::crypto::CryptoProvider>,
    pub(crate) verifier: Arc<WebPkiServerVerifier>,
}

impl Net {
    /// webpki's roots plus `extra_roots` (an internal CA).
    pub fn new(extra_roots: &[CertificateDer<'static>]) -> anyhow::Result<Net> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| anyhow::anyhow!("an extra trust root is unusable: {e}"))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build()?;
        Ok(Net {
            client: Arc::new(client),
            provider,
            verifier,
        })
    }
}

/// The certificates of a PEM file (the `[agent] ca_file` / `--ca-file`
/// setting), for [`crate::RuntimeOptions::extra_roots`].
pub fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no certificates in the file".into());
    }
    Ok(certs)
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

pub(crate) trait Stream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Resolves the target, applies the address policy (restricted addresses
/// need a literal grant) and connects to an address that passed; used by
/// HTTP egress and by the TLS capability.
pub(crate) async fn connect_vetted(
    target: &Target,
    connect_timeout: Duration,
    refusals: &Refusals,
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
        refusals.push(format!(
                "request to {} refused: {} resolves to {}, which only a grant naming that host or address literally allows",
                target.shown,
                target.host,
                if refused.is_empty() {
                    "nothing".to_string()
                } else {
                    refused.join(", ")
                }
        ));
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
            Ok(Err(e)) => {
                if is_host_fault(&e) {
                    refusals.host_fault(format!(
                        "the agent could not connect to {}: {e} (the agent's own limit, not the service's; see process_open_fds in /metrics)",
                        target.shown
                    ));
                }
                last_err = HttpErr::Connect(e);
            }
            Err(_) => last_err = HttpErr::ConnectionTimeout,
        }
    }
    let tcp = tcp.ok_or(last_err)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> HostGrants {
        HostGrants::parse("hosts", list).unwrap()
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
        // `*` is for names; IP literals must be granted literally, in
        // every spelling a resolver accepts.
        assert!(g.find(Scheme::Http, "127.0.0.1", 9000).is_none());
        for numeric in ["2130706433", "0x7f000001", "127.1", "10.0.0.1.", "0X7F.1"] {
            assert!(g.find(Scheme::Http, numeric, 9000).is_none(), "{numeric}");
        }
        assert!(g.find(Scheme::Http, "api1.example.com", 9000).is_some());
        let g = grants(&["http://*.1:9000"]);
        assert!(g.find(Scheme::Http, "2130706433.1", 9000).is_none());
    }

    #[test]
    fn bad_grants_are_named() {
        let errs = HostGrants::parse(
            "hosts",
            &[
                "ftp://x",
                "https://a.*.com",
                "https://x.com/path",
                "http://h:99999",
            ],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4);
        assert_eq!(errs[0].field, "allow.hosts[0]", "{errs:?}");
        assert!(errs[1].message.contains("wildcard"), "{errs:?}");
        assert!(errs[2].message.contains("no path"), "{errs:?}");
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
