//! TLS certificate inspection (`warden:plugin/tls.peer-certificates`).
//!
//! Same grants, address policy and per-run request cap as HTTP egress: the
//! URL is authorized by the check's `allow.hosts`, resolved and vetted, and
//! the agent connects only to an address that passed. The handshake records
//! the chain the server presents and whether it verifies against the
//! agent's trust roots, but completes either way, so an expired or
//! self-signed certificate is reported rather than hidden behind a failed
//! connection. Nothing is sent after the handshake. The capability has no
//! grant of its own and no state of its own: both are HTTP's.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use wasmtime::component::{HasSelf, Linker};

use super::http::Egress;
use super::net::{Scheme, connect_vetted};
use super::{Allow, Capability, GrantError, Sandbox, Setup};
use crate::bindings::tls as wit;
use crate::limits;

type Seen = Mutex<Option<(Vec<CertificateDer<'static>>, Result<(), String>)>>;

/// Verifies as webpki would, remembers the chain and the verdict, and lets
/// the handshake finish regardless.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Seen>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((chain, verdict));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn describe(der: &CertificateDer<'_>) -> Result<wit::Certificate, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    let validity = cert.validity();
    Ok(wit::Certificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

impl wit::Host for Egress {
    async fn peer_certificates(&mut self, url: String) -> Result<wit::Peer, String> {
        let shown = crate::redact::url(&url);
        let uri: http::Uri = url.parse().map_err(|_| format!("{shown}: not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("{shown}: only https:// URLs have certificates"));
        }
        let target = self.authorize(&uri).map_err(|e| match e {
            wasmtime_wasi_http::Error::ConnectionLimitReached => format!(
                "{shown}: refused: more than {} requests in one run",
                limits::MAX_HTTP_REQUESTS_PER_RUN
            ),
            _ => format!("{shown}: not granted by the check's allow.hosts"),
        })?;
        debug_assert!(target.scheme == Scheme::Https);
        let timeout = limits::HTTP_CONNECT_TIMEOUT;
        let tcp = connect_vetted(&target, timeout, &self.refusals)
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        let (provider, inner) = (self.net.provider.clone(), self.net.verifier.clone());
        let seen: Arc<Seen> = Arc::new(Mutex::new(None));
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Recorder {
                inner,
                seen: seen.clone(),
            }))
            .with_no_client_auth();
        let name = match target.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => {
                ServerName::try_from(target.host.clone()).map_err(|e| format!("{shown}: {e}"))?
            }
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let handshake = tokio::time::timeout(timeout, connector.connect(name, tcp)).await;
        let (chain, verdict) =
            seen.lock()
                .ok()
                .and_then(|mut s| s.take())
                .ok_or_else(|| match handshake {
                    Err(_) => format!("{shown}: TLS handshake timed out"),
                    Ok(Err(e)) => format!("{shown}: TLS handshake failed: {e}"),
                    Ok(Ok(_)) => format!("{shown}: the server presented no certificate"),
                })?;
        let chain = chain.iter().map(describe).collect::<Result<Vec<_>, _>>()?;
        Ok(wit::Peer {
            chain,
            verified: verdict.is_ok(),
            verify_error: verdict.err(),
        })
    }
}

/// The TLS inspection capability (`warden:plugin/tls`), under the HTTP
/// grants.
pub struct Tls;

impl Capability for Tls {
    const KEYS: &'static [&'static str] = &[];
    type Grant = ();
    type Run = ();

    fn grant(_: &Allow) -> Result<(), Vec<GrantError>> {
        Ok(())
    }

    fn show(_: &(), _: &mut serde_json::Map<String, serde_json::Value>) {}

    fn link(linker: &mut Linker<Sandbox>) -> anyhow::Result<()> {
        wit::add_to_linker::<Sandbox, HasSelf<Egress>>(linker, |s| &mut s.parts.http)
            .map_err(anyhow::Error::from)
    }

    fn prepare(_: &Arc<()>, _: &mut Setup<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}
