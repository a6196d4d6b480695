//! Outgoing HTTP (`wasi:http/outgoing-handler`): the check's `allow.hosts`
//! grants ([`super::net::HostGrants`]), the per-run [`Egress`] state, and the
//! connection the agent makes on the plugin's behalf.
//!
//! Deny by default: a request goes out only when a grant names its scheme,
//! host and port, to an address the policy in [`super::net`] allows. Caps:
//! requests per run, connect and total timeouts, response body size.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error as HttpErr, RequestOptions, WasiBody, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::net::{HostGrants, Net, Refusals, Scheme, Stream, Target, connect_vetted};
use super::{Allow, Capability, GrantError, Sandbox, Setup};
use crate::limits;
use crate::report::RunOutcome;

/// Per-run HTTP state: the grants, the request count (shared with TLS
/// inspection, which goes through the same [`Egress::authorize`]) and the
/// refusals.
pub struct Egress {
    grants: Arc<HostGrants>,
    requests: u32,
    pub(crate) refusals: Refusals,
    pub(crate) net: Arc<Net>,
}

impl Egress {
    /// Checks the request against the grants; returns where to connect.
    pub(crate) fn authorize(&mut self, uri: &http::Uri) -> Result<Target, HttpErr> {
        self.requests += 1;
        let shown = crate::redact::url(&uri.to_string());
        if self.requests > limits::MAX_HTTP_REQUESTS_PER_RUN {
            self.refusals.push(format!(
                "request to {shown} refused: more than {} requests in one run",
                limits::MAX_HTTP_REQUESTS_PER_RUN
            ));
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
                self.refusals.push(format!(
                    "request to {shown} refused: {}://{host}:{port} is not in the check's allow.hosts",
                    scheme.as_str()
                ));
                Err(HttpErr::HttpRequestDenied)
            }
        }
    }
}

/// The HTTP egress capability (`allow.hosts`, `wasi:http/outgoing-handler`).
pub struct Http;

impl Capability for Http {
    const KEYS: &'static [&'static str] = &["hosts"];
    type Grant = HostGrants;
    type Run = Egress;

    fn grant(allow: &Allow) -> Result<HostGrants, Vec<GrantError>> {
        HostGrants::parse("hosts", allow.entries("hosts"))
    }

    fn show(grant: &HostGrants, view: &mut serde_json::Map<String, serde_json::Value>) {
        view.insert("hosts".into(), grant.as_written().into());
    }

    fn link(linker: &mut Linker<Sandbox>) -> anyhow::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker).map_err(anyhow::Error::from)
    }

    fn prepare(grant: &Arc<HostGrants>, setup: &mut Setup<'_>) -> anyhow::Result<Egress> {
        Ok(Egress {
            grants: grant.clone(),
            requests: 0,
            refusals: Refusals::default(),
            net: setup.shared.net.clone(),
        })
    }

    fn finish(egress: &mut Egress, outcome: &mut RunOutcome) {
        // Added, not set: the parts of a sharded run add up.
        outcome.http_requests += egress.requests;
        outcome.refusals.extend(egress.refusals.list());
    }

    /// A request that failed on the agent's side (no descriptors left)
    /// makes the run `unknown`: what the plugin concluded from it (most
    /// often "connection refused", critical) is not about the service.
    fn settle(egress: Egress, _accepted: bool) -> impl Future<Output = Result<(), String>> + Send {
        let fault = egress.refusals.fault();
        async move { fault.map_or(Ok(()), Err) }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.parts.http,
        }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpErr>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpErr>> + Send>;

impl WasiHttpHooks for Egress {
    /// Small writes, so an unsent body buffers little on the host.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        limits::HTTP_BODY_CHUNK_BYTES
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpErr>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let target = self.authorize(request.uri());
        let refusals = self.refusals.clone();
        let tls = self.net.client.clone();
        Box::new(async move {
            let target = target?;
            send(request, options, target, refusals, tls).await
        })
    }
}

fn clamp(requested: Option<Duration>, cap: Duration) -> Duration {
    requested.map_or(cap, |d| d.min(cap))
}

async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    target: Target,
    refusals: Refusals,
    tls: Arc<rustls::ClientConfig>,
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
            let connector = tokio_rustls::TlsConnector::from(tls);
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
        refusals.push(format!(
            "response from {} refused: {len} bytes exceeds the {cap}-byte body cap",
            target.shown
        ));
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
    refusals: Refusals,
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
                        this.refusals.push(format!(
                            "response from {} cut off: body exceeds the {}-byte cap",
                            this.shown, this.cap
                        ));
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
