//! The plugin registry: which version of each plugin runs next, and why a
//! file did not load.
//!
//! Plugins come from two places: the standard plugins embedded in the
//! binary, and `name.wasm` files in the plugin directory. A file named like
//! a standard plugin overrides it (with a log line); deleting the file
//! brings the standard one back. While the agent runs, the directory is
//! watched (notify): events are debounced and a file is loaded only once it
//! has stopped changing, so a partially written file is not picked up, and
//! an atomic rename into place is a single event. A file that fails to load
//! (corrupt, wrong world, pin mismatch) leaves the previous version in
//! place, and the error is kept for the API and logged. Runs in flight hold
//! an `Arc` of the version they started with, so a swap never disturbs
//! them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use warden_runtime::{Origin, Plugin, Runtime};

use crate::executor::Executor;
use crate::limits::PLUGIN_DEBOUNCE as DEBOUNCE;
use crate::stdplugins::{self, same_name};
use crate::store::now_ms;

/// Why the latest attempt to load a plugin failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoadError {
    /// The reason.
    pub message: String,
    /// When (ms since the epoch).
    pub at_unix_ms: i64,
    /// sha256 of the file that failed, when it could be read.
    pub sha256: Option<String>,
}

/// One plugin name in the registry.
#[derive(Clone)]
pub struct Entry {
    /// The version runs use now (None: missing).
    pub current: Option<Arc<Plugin>>,
    /// The latest load failure, cleared by a successful load.
    pub error: Option<LoadError>,
    /// Failed loads since the agent started.
    pub load_errors: u64,
    /// When `current` was loaded.
    pub loaded_unix_ms: i64,
}

/// What the API shows about a plugin.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    /// Name checks refer to.
    pub name: String,
    /// `loaded`, `compiling` (its first load at start), `failed` (never
    /// loaded) or `missing`.
    pub state: &'static str,
    /// Where the running version came from: `{"kind": "file" or
    /// "embedded", "value": path or name}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub origin: Option<Origin>,
    /// sha256 of the running version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Version from `describe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Description from `describe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Capabilities from `describe`.
    pub capabilities: Vec<String>,
    /// When the running version was loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_unix_ms: Option<i64>,
    /// The pin, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_sha256: Option<String>,
    /// The latest load failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LoadError>,
    /// Failed loads since start.
    pub load_errors: u64,
}

/// All plugins by name.
pub struct Registry {
    runtime: Arc<Runtime>,
    executor: Arc<Executor>,
    dir: PathBuf,
    pins: BTreeMap<String, String>,
    /// Production: a file loads only when pinned.
    require_pins: bool,
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Names of the first loads still compiling (standard plugins and the
    /// directory's files at start), and a tick per finished one.
    compiling: Mutex<BTreeSet<String>>,
    /// Set once `compiling` is empty: every run asks, without the lock.
    all_compiled: AtomicBool,
    loaded: tokio::sync::watch::Sender<u64>,
}

fn plugin_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let stem = file.strip_suffix(".wasm")?;
    (!stem.is_empty()).then(|| stem.to_string())
}

impl Registry {
    /// Loads the standard plugins and every `.wasm` in `dir`, and waits
    /// until all are loaded (the commands that need them all).
    pub async fn start(
        runtime: Arc<Runtime>,
        executor: Arc<Executor>,
        dir: PathBuf,
        pins: BTreeMap<String, String>,
        require_pins: bool,
    ) -> Arc<Registry> {
        let registry = Self::open(runtime, executor, dir, pins, require_pins, &[]);
        registry.wait_all().await;
        registry
    }

    /// Starts loading the standard plugins and every `.wasm` in `dir` in
    /// the background, at most [`crate::limits::plugin_load_parallelism`]
    /// at once (compiling and `describe` run on `executor`), those named
    /// in `first` (the plugins checks use) before the others, and returns
    /// at once: the agent answers while plugins compile. Must be called
    /// within a tokio runtime.
    pub fn open(
        runtime: Arc<Runtime>,
        executor: Arc<Executor>,
        dir: PathBuf,
        pins: BTreeMap<String, String>,
        require_pins: bool,
        first: &[String],
    ) -> Arc<Registry> {
        let mut files = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                files = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| plugin_name(p).is_some())
                    .collect();
                files.sort();
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the plugin directory")
            }
        }
        let compiling: BTreeSet<String> = stdplugins::names()
            .map(String::from)
            .chain(files.iter().filter_map(|p| plugin_name(p)))
            .collect();
        let registry = Arc::new(Registry {
            runtime,
            executor,
            dir,
            pins,
            require_pins,
            entries: RwLock::new(BTreeMap::new()),
            all_compiled: AtomicBool::new(compiling.is_empty()),
            compiling: Mutex::new(compiling),
            loaded: tokio::sync::watch::Sender::new(0),
        });
        let r = registry.clone();
        let first = first.to_vec();
        tokio::spawn(async move {
            let started = Instant::now();
            let gate = Arc::new(tokio::sync::Semaphore::new(
                crate::limits::plugin_load_parallelism(),
            ));
            let mut loads = tokio::task::JoinSet::new();
            // Standard plugins first, so a file of the same name
            // overrides one (a file is never replaced by the embedded).
            let mut work: Vec<(String, Option<PathBuf>)> = stdplugins::names()
                .map(|n| (n.to_string(), None))
                .chain(
                    files
                        .into_iter()
                        .filter_map(|p| Some((plugin_name(&p)?, Some(p)))),
                )
                .collect();
            // What checks wait for goes first (a stable sort keeps the
            // standard plugin before a file of its name).
            work.sort_by_key(|(n, _)| !first.iter().any(|f| same_name(f, n)));
            for (name, path) in work {
                let (r, gate) = (r.clone(), gate.clone());
                loads.spawn(async move {
                    let _place = gate.acquire_owned().await;
                    match &path {
                        None => r.load_embedded(&name).await,
                        Some(p) => r.load_file(p).await,
                    }
                    r.compiled(&name);
                });
            }
            while loads.join_next().await.is_some() {}
            // Compiling leaves freed memory with the allocator; give it
            // back, so a first start settles where a warm one does.
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe {
                libc::malloc_trim(0);
            }
            tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                plugins = r.read().len(),
                "plugins loaded"
            );
        });
        registry
    }

    /// One of the first loads finished.
    fn compiled(&self, name: &str) {
        let mut compiling = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
        compiling.remove(name);
        if compiling.is_empty() {
            self.all_compiled.store(true, Ordering::Release);
        }
        drop(compiling);
        self.loaded.send_modify(|n| *n += 1);
    }

    /// The plugins of the first loads still compiling.
    pub fn compiling(&self) -> Vec<String> {
        if self.all_compiled.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Whether `name` (up to `-`/`_`) is among the first loads still
    /// compiling.
    pub fn is_compiling(&self, name: &str) -> bool {
        if self.all_compiled.load(Ordering::Acquire) {
            return false;
        }
        self.compiling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|n| same_name(n, name))
    }

    /// Waits until `name` is no longer compiling (loaded, failed, or
    /// never among the first loads).
    pub async fn wait_for(&self, name: &str) {
        let mut rx = self.loaded.subscribe();
        while self.is_compiling(name) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until the first loads have all finished.
    pub async fn wait_all(&self) {
        let mut rx = self.loaded.subscribe();
        while !self.compiling().is_empty() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Ticks once per finished first load (the agent re-reads plugins'
    /// default schedules).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.loaded.subscribe()
    }

    /// The version of `name` that runs use now: the plugin of exactly
    /// that name, else one whose name differs only by `-`/`_` (cargo
    /// writes the crate `env-policy` as `env_policy.wasm`).
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        let entries = self.read();
        entries
            .get(name)
            .or_else(|| {
                entries
                    .iter()
                    .find(|(n, _)| same_name(n, name))
                    .map(|(_, e)| e)
            })
            .and_then(|e| e.current.clone())
    }

    /// The key `name` is registered under (exactly, else up to `-`/`_`).
    fn key(&self, name: &str) -> String {
        let entries = self.read();
        if entries.contains_key(name) {
            return name.to_string();
        }
        entries
            .keys()
            .find(|n| same_name(n, name))
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// The plugin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every plugin, for the API (those still compiling as `compiling`).
    pub fn views(&self) -> Vec<PluginView> {
        let compiling = self.compiling();
        let entries = self.read();
        let waiting = compiling
            .iter()
            .filter(|n| entries.get(*n).is_none_or(|e| e.current.is_none()))
            .map(|name| PluginView {
                name: name.clone(),
                state: "compiling",
                origin: None,
                sha256: None,
                version: None,
                description: None,
                capabilities: Vec::new(),
                loaded_unix_ms: None,
                pinned_sha256: self.pins.get(name).cloned(),
                error: None,
                load_errors: 0,
            });
        let mut views: Vec<PluginView> = entries
            .iter()
            .filter(|(n, e)| e.current.is_some() || !compiling.contains(*n))
            .map(|(name, e)| {
                let p = e.current.as_ref();
                PluginView {
                    name: name.clone(),
                    state: match (p, &e.error) {
                        (Some(_), _) => "loaded",
                        (None, Some(_)) => "failed",
                        (None, None) => "missing",
                    },
                    origin: p.map(|p| p.origin.clone()),
                    sha256: p.map(|p| p.sha256.clone()),
                    version: p.map(|p| p.info.version.clone()),
                    description: p.map(|p| p.info.description.clone()),
                    capabilities: p.map(|p| p.info.capabilities.clone()).unwrap_or_default(),
                    loaded_unix_ms: p.map(|_| e.loaded_unix_ms),
                    pinned_sha256: self.pins.get(name).cloned(),
                    error: e.error.clone(),
                    load_errors: e.load_errors,
                }
            })
            .collect();
        views.extend(waiting);
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Load failures per plugin, for `/metrics`.
    pub fn load_error_counts(&self) -> Vec<(String, u64)> {
        self.read()
            .iter()
            .map(|(n, e)| (n.clone(), e.load_errors))
            .collect()
    }

    /// True when every plugin has a loaded version and none is still
    /// compiling (for `/readyz`).
    pub fn all_loaded(&self) -> bool {
        self.compiling().is_empty() && self.read().values().all(|e| e.current.is_some())
    }

    async fn load_embedded(&self, name: &str) {
        let Some(bytes) = stdplugins::get(name) else {
            return;
        };
        self.install(name, bytes, Origin::Embedded(name.to_string()))
            .await;
    }

    /// Loads (or reloads) one file of the plugin directory.
    pub async fn load_file(&self, path: &Path) {
        let Some(name) = plugin_name(path) else {
            return;
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                self.install(&name, &bytes, Origin::File(path.to_path_buf()))
                    .await
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.unload(&name, path).await,
            Err(e) => self.fail(&name, format!("{}: cannot read: {e}", path.display()), None),
        }
    }

    async fn unload(&self, stem: &str, path: &Path) {
        let key = self.key(stem);
        let name = key.as_str();
        let was_file = matches!(
            self.read()
                .get(name)
                .and_then(|e| e.current.as_ref().map(|p| p.origin.clone())),
            Some(Origin::File(_))
        );
        if stdplugins::get(name).is_some() {
            if was_file {
                tracing::info!(plugin = name, file = %path.display(), "override removed; the standard plugin runs again");
                self.write().remove(name);
                self.load_embedded(name).await;
            }
            return;
        }
        if self.write().remove(name).is_some() {
            tracing::warn!(plugin = name, file = %path.display(), "plugin file deleted; its checks report it missing");
        }
    }

    fn fail(&self, name: &str, message: String, sha256: Option<String>) {
        tracing::error!(plugin = name, error = %message, "plugin failed to load; the previous version (if any) keeps running");
        let mut entries = self.write();
        let entry = entries.entry(name.to_string()).or_insert(Entry {
            current: None,
            error: None,
            load_errors: 0,
            loaded_unix_ms: 0,
        });
        entry.error = Some(LoadError {
            message,
            at_unix_ms: now_ms(),
            sha256,
        });
        entry.load_errors += 1;
    }

    async fn install(&self, name: &str, bytes: &[u8], origin: Origin) {
        let sha = warden_runtime::sha256_hex(bytes);
        let current = self
            .read()
            .get(&self.key(name))
            .and_then(|e| e.current.clone());
        if let Some(cur) = &current {
            if cur.sha256 == sha {
                if let Some(e) = self.write().get_mut(name) {
                    e.error = None;
                }
                return;
            }
            // A file overrides the embedded plugin; the embedded one never
            // replaces a file.
            if matches!(origin, Origin::Embedded(_)) && matches!(cur.origin, Origin::File(_)) {
                return;
            }
        }
        if self.require_pins && matches!(origin, Origin::File(_)) && self.pin(name).is_none() {
            self.fail(
                name,
                format!(
                    "{origin}: the production profile loads a plugin file only when it is pinned: add [[plugin]] name = {name:?}, sha256 = {sha:?} (standard plugins are pinned by the binary; a file overriding one needs its own pin)"
                ),
                Some(sha),
            );
            return;
        }
        if let Some(pin) = self.pin(name)
            && *pin != sha
        {
            self.fail(
                name,
                format!(
                    "{origin}: sha256 {sha} does not match the pin {pin} in [[plugin]] {name:?}"
                ),
                Some(sha),
            );
            return;
        }
        let (runtime, owned, from) = (self.runtime.clone(), bytes.to_vec(), origin.clone());
        let loaded = self
            .executor
            .load(async move { runtime.load(&owned, from).await })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!(e)));
        match loaded {
            Ok(plugin) => {
                // A file found under its component's name too, when the
                // two differ only by `-`/`_`; a real mismatch is logged.
                let described = plugin.info.name.clone();
                let name = match &origin {
                    Origin::File(path) if described != name => {
                        if same_name(&described, name) {
                            tracing::info!(plugin = %described, file = %path.display(), "file name and component name differ only by -/_; checks may use either");
                            described.as_str()
                        } else {
                            tracing::warn!(file = %path.display(), file_name = name, component_name = %warden_text::escape::escape(&described), "the file's name is not the component's own; checks must name the file's");
                            name
                        }
                    }
                    _ => name,
                };
                let current = self.read().get(name).and_then(|e| e.current.clone());
                match (&origin, current.as_ref().map(|c| &c.origin)) {
                    (Origin::File(path), Some(Origin::Embedded(_))) => tracing::warn!(
                        plugin = name, file = %path.display(), "file overrides the standard plugin of the same name"
                    ),
                    (_, Some(_)) => {
                        tracing::info!(plugin = name, sha256 = %plugin.sha256, "plugin replaced; runs in flight finish on the old version")
                    }
                    (_, None) => {
                        tracing::info!(plugin = name, sha256 = %plugin.sha256, origin = %origin, "plugin loaded")
                    }
                }
                let mut entries = self.write();
                let load_errors = entries.get(name).map(|e| e.load_errors).unwrap_or(0);
                entries.insert(
                    name.to_string(),
                    Entry {
                        current: Some(Arc::new(plugin)),
                        error: None,
                        load_errors,
                        loaded_unix_ms: now_ms(),
                    },
                );
            }
            Err(e) => self.fail(name, format!("{e:#}"), Some(sha)),
        }
    }

    /// The pin of `name` (exactly, else up to `-`/`_`).
    fn pin(&self, name: &str) -> Option<&String> {
        self.pins.get(name).or_else(|| {
            self.pins
                .iter()
                .find(|(n, _)| same_name(n, name))
                .map(|(_, p)| p)
        })
    }

    /// Watches the plugin directory until the agent stops.
    pub fn watch(self: Arc<Self>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        use notify::Watcher as _;
        std::fs::create_dir_all(&self.dir)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })?;
        watcher.watch(&self.dir, notify::RecursiveMode::NonRecursive)?;
        Ok(tokio::spawn(async move {
            let _watcher = watcher;
            // path -> (last event, last seen size+mtime)
            let mut pending: HashMap<PathBuf, (Instant, Option<(u64, SystemTime)>)> =
                HashMap::new();
            let mut tick = tokio::time::interval(crate::limits::PLUGIN_WATCH_TICK);
            loop {
                tokio::select! {
                    event = rx.recv() => match event {
                        Some(path) => {
                            if plugin_name(&path).is_some() {
                                let stat = file_stat(&path);
                                pending.insert(path, (Instant::now(), stat));
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        let ready: Vec<PathBuf> = pending
                            .iter_mut()
                            .filter_map(|(path, (last, stat))| {
                                if last.elapsed() < DEBOUNCE {
                                    return None;
                                }
                                let now = file_stat(path);
                                if now != *stat {
                                    // Still being written: wait for quiet again.
                                    *stat = now;
                                    *last = Instant::now();
                                    return None;
                                }
                                Some(path.clone())
                            })
                            .collect();
                        for path in ready {
                            pending.remove(&path);
                            self.load_file(&path).await;
                        }
                    }
                }
            }
        }))
    }
}

fn file_stat(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_wasm_files_are_plugins() {
        assert_eq!(
            plugin_name(Path::new("/p/hello.wasm")).as_deref(),
            Some("hello")
        );
        assert_eq!(plugin_name(Path::new("/p/.hello.wasm")), None);
        assert_eq!(plugin_name(Path::new("/p/hello.wasm.tmp")), None);
        assert_eq!(plugin_name(Path::new("/p/.wasm")), None);
    }
}
