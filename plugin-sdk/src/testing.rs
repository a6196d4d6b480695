//! Test doubles for running plugin logic natively with `cargo test`:
//! [`MockHttp`] (routes to closures), [`MemoryState`], and [`TestContext`]
//! to assemble a [`Context`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::context::{Context, Env, PartBackend};
use crate::http::{Http, HttpError, Request, Response, Transport};
use crate::state::{State, StateBackend};
use crate::tls::{NoTls, Tls, TlsBackend};

type Handler = Box<dyn Fn(&Request) -> Result<Response, HttpError> + Send + Sync>;

/// An HTTP double: requests are matched by method and URL (exact, or a
/// prefix ending in `*`) and answered by a closure. Unmatched requests are
/// denied, like an ungranted host in the agent. Every request is recorded.
#[derive(Default)]
pub struct MockHttp {
    routes: Vec<(String, String, Handler)>,
    requests: Mutex<Vec<Request>>,
}

impl MockHttp {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `method url` with `handler`.
    pub fn route(
        mut self,
        method: &str,
        url: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.routes.push((
            method.to_ascii_uppercase(),
            url.to_string(),
            Box::new(move |r| Ok(handler(r))),
        ));
        self
    }

    /// Answers `method url` with an error (timeouts, refusals...).
    pub fn fail(mut self, method: &str, url: &str, error: HttpError) -> Self {
        self.routes.push((
            method.to_ascii_uppercase(),
            url.to_string(),
            Box::new(move |_| Err(error.clone())),
        ));
        self
    }

    /// A response with a status and body.
    pub fn reply(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, body)
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Transport for MockHttp {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        if let Ok(mut log) = self.requests.lock() {
            log.push(request.clone());
        }
        let found = self.routes.iter().find(|(m, u, _)| {
            m.eq_ignore_ascii_case(&request.method)
                && match u.strip_suffix('*') {
                    Some(prefix) => request.url.starts_with(prefix),
                    None => *u == request.url,
                }
        });
        match found {
            Some((_, _, handler)) => handler(request),
            None => Err(HttpError::Denied {
                url: request.url.clone(),
                reason: "no MockHttp route".into(),
            }),
        }
    }
}

impl Transport for Arc<MockHttp> {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        self.as_ref().send(request)
    }
}

/// State kept in memory.
#[derive(Default)]
pub struct MemoryState {
    values: Mutex<HashMap<String, String>>,
}

impl MemoryState {
    /// Empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of all values.
    pub fn snapshot(&self) -> HashMap<String, String> {
        self.values.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl StateBackend for MemoryState {
    fn get(&self, key: &str) -> Option<String> {
        self.values.lock().ok()?.get(key).cloned()
    }
    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        self.values
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key.to_string(), value.to_string());
        Ok(())
    }
    fn delete(&self, key: &str) {
        if let Ok(mut v) = self.values.lock() {
            v.remove(key);
        }
    }
}

/// Builds a [`Context`] for a native test. Reuse the same
/// `Arc<MemoryState>` across builds to test behaviour over several runs.
pub struct TestContext<C> {
    config: C,
    check: String,
    attempt: u32,
    now: SystemTime,
    timeout: Duration,
    http: Arc<dyn Transport>,
    state: Arc<dyn StateBackend>,
    env: HashMap<String, String>,
    tls: Arc<dyn TlsBackend>,
    read_dirs: Vec<std::path::PathBuf>,
    part: crate::Part,
    claims: Arc<Claims>,
    action: Option<crate::Action>,
}

/// The claims of one sharded run, shared by its shards' contexts (as the
/// agent shares them): the first to claim a key takes it.
#[derive(Default)]
pub struct Claims(Mutex<std::collections::HashSet<String>>);

struct TestPart {
    part: crate::Part,
    claims: Arc<Claims>,
}

impl PartBackend for TestPart {
    fn part(&self) -> crate::Part {
        self.part.clone()
    }
    fn claim(&self, key: &str) -> bool {
        !matches!(self.part, crate::Part::Shard { .. })
            || self
                .claims
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.to_string())
    }
}

impl<C> TestContext<C> {
    /// A context with `config`, no HTTP routes, empty state and no env.
    pub fn new(config: C) -> Self {
        TestContext {
            config,
            check: "test".into(),
            attempt: 1,
            now: SystemTime::now(),
            timeout: Duration::from_secs(10),
            http: Arc::new(MockHttp::new()),
            state: Arc::new(MemoryState::new()),
            env: HashMap::new(),
            tls: Arc::new(NoTls),
            read_dirs: Vec::new(),
            part: crate::Part::Whole,
            claims: Arc::default(),
            action: None,
        }
    }

    /// Runs as this part of a sharded run (a shard, or the merge), its
    /// claims shared with the other shards' contexts through `claims`.
    pub fn part(mut self, part: crate::Part, claims: Arc<Claims>) -> Self {
        self.part = part;
        self.claims = claims;
        self
    }

    /// Uses this TLS double (a [`crate::tls::Peer`] answers every look-up).
    pub fn tls(mut self, tls: impl TlsBackend + 'static) -> Self {
        self.tls = Arc::new(tls);
        self
    }

    /// Uses this HTTP double.
    pub fn http(mut self, http: impl Transport + 'static) -> Self {
        self.http = Arc::new(http);
        self
    }

    /// Uses this shared state.
    pub fn state(mut self, state: Arc<MemoryState>) -> Self {
        self.state = state;
        self
    }

    /// Grants an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Grants a directory (as `allow.read_dirs` does).
    pub fn read_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.read_dirs.push(dir.into());
        self
    }

    /// Names the check.
    pub fn check(mut self, name: &str) -> Self {
        self.check = name.into();
        self
    }

    /// Sets the scheduled time (the deadline follows by the timeout).
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }

    /// Runs as this action (see [`Context::action`]).
    pub fn action(mut self, action: crate::Action) -> Self {
        self.action = Some(action);
        self
    }

    /// Sets the attempt number.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The context.
    pub fn build(self) -> Context<C> {
        Context {
            check: self.check,
            config: self.config,
            scheduled: self.now,
            attempt: self.attempt,
            deadline: self.now + self.timeout,
            http: Http::new(self.http),
            state: State::new(self.state),
            env: Arc::new(self.env) as Arc<dyn Env>,
            tls: Tls::new(self.tls),
            read_dirs: self.read_dirs,
            part: Arc::new(TestPart {
                part: self.part,
                claims: self.claims,
            }),
            action: self.action,
        }
    }
}
