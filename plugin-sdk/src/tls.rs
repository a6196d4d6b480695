//! Certificate chains of granted https hosts, through the agent's
//! `warden:plugin/tls` capability (same grants as HTTP).

use std::fmt;
use std::sync::Arc;

/// One certificate of a presented chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

/// What a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Leaf first.
    pub chain: Vec<Certificate>,
    /// Whether the chain verifies for the host against the agent's roots.
    pub verified: bool,
    /// Why not, when it does not.
    pub verify_error: Option<String>,
}

impl Peer {
    /// The earliest `not_after` in the chain (what expires first).
    pub fn earliest_expiry(&self) -> Option<i64> {
        self.chain.iter().map(|c| c.not_after).min()
    }
}

/// Where certificate look-ups go: the agent, or a test double.
pub trait TlsBackend {
    /// The chain presented by the host of an `https://` URL.
    fn peer_certificates(&self, url: &str) -> Result<Peer, String>;
}

/// A fixed answer, for tests.
impl TlsBackend for Peer {
    fn peer_certificates(&self, _url: &str) -> Result<Peer, String> {
        Ok(self.clone())
    }
}

/// Refuses every look-up (the default in tests).
pub(crate) struct NoTls;

impl TlsBackend for NoTls {
    fn peer_certificates(&self, url: &str) -> Result<Peer, String> {
        Err(format!("{url}: no TLS double in this test"))
    }
}

/// The plugin's handle on the capability.
#[derive(Clone)]
pub struct Tls {
    backend: Arc<dyn TlsBackend>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Over a backend.
    pub fn new(backend: Arc<dyn TlsBackend>) -> Self {
        Tls { backend }
    }

    /// The chain presented by the host of an `https://` URL.
    pub fn peer_certificates(&self, url: &str) -> Result<Peer, String> {
        self.backend.peer_certificates(url)
    }
}
