//! The agent's own HTTP egress for notifications: one request per
//! connection (HTTP/1.1, `Content-Length`, TLS by webpki's roots), within
//! the notifier's timeout, no redirects. A URL whose host name resolves to
//! a loopback or private address is refused: such targets must be named
//! literally (an IP literal or `localhost`), as a plugin's grant must.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;
use warden_text::redact;

/// How a send went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// 2xx.
    Delivered(u16),
    /// Worth trying again later (connection, timeout, 5xx, 408, 429).
    Retry(String),
    /// Never going to work as configured (4xx, refused address).
    Rejected(String),
}

fn tls() -> Arc<rustls::ClientConfig> {
    static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    })
    .clone()
}

/// Sends `body` (JSON) to `url` with `method` and `headers`, within
/// `timeout`. Messages name the URL redacted.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Sent {
    let shown = redact::url(url);
    match tokio::time::timeout(timeout, attempt(method, url, headers, body)).await {
        Ok(Ok(status)) if (200..300).contains(&status) => Sent::Delivered(status),
        Ok(Ok(status)) if status == 408 || status == 429 || status >= 500 => {
            Sent::Retry(format!("{shown}: HTTP {status}"))
        }
        Ok(Ok(status)) => Sent::Rejected(format!("{shown}: HTTP {status}")),
        Ok(Err(Failure::Retry(e))) => Sent::Retry(format!("{shown}: {e}")),
        Ok(Err(Failure::Rejected(e))) => Sent::Rejected(format!("{shown}: {e}")),
        Err(_) => Sent::Retry(format!("{shown}: no answer within {timeout:?}")),
    }
}

enum Failure {
    Retry(String),
    Rejected(String),
}

fn retry(e: impl std::fmt::Display) -> Failure {
    Failure::Retry(e.to_string())
}

async fn attempt(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<u16, Failure> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| Failure::Rejected(format!("not a URL: {e}")))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .ok_or_else(|| Failure::Rejected("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let literal = host.parse::<IpAddr>().is_ok() || host.eq_ignore_ascii_case("localhost");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| retry(format!("cannot resolve {host}: {e}")))?
        .collect();
    if !literal
        && let Some((ip, why)) = addrs
            .iter()
            .find_map(|a| warden_runtime::caps::net::restricted_reason(a.ip()).map(|w| (a.ip(), w)))
    {
        return Err(Failure::Rejected(format!(
            "{host} resolves to {ip}, a {why} address; a notifier reaches such an address only when its URL names it literally"
        )));
    }
    let addr = addrs
        .first()
        .ok_or_else(|| retry(format!("{host} has no address")))?;
    let tcp = TcpStream::connect(addr).await.map_err(retry)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host.clone(), |a| a.to_string()),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("warden/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONTENT_LENGTH, body.len());
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::Rejected(format!("bad request: {e}")))?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| Failure::Rejected(format!("{host}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls())
            .connect(name, tcp)
            .await
            .map_err(|e| retry(format!("TLS: {e}")))?;
        exchange(hyper_util::rt::TokioIo::new(stream), request).await
    } else {
        exchange(hyper_util::rt::TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(io: T, request: hyper::Request<Full<Bytes>>) -> Result<u16, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(retry)?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(retry)?;
    let status = response.status().as_u16();
    // Read (and drop) the answer so the server sees a complete exchange;
    // bounded by the caller's timeout.
    let _ = http_body_util::Limited::new(response.into_body(), 64 << 10)
        .collect()
        .await;
    driver.abort();
    Ok(status)
}
