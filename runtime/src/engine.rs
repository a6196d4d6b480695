//! A wasmtime [`Engine`]: its configuration (the compiler, pooling allocator
//! with an on-demand fallback, epoch interruption), the epoch ticker thread,
//! and the on-disk cache of compiled components. The runtime has one with
//! Cranelift for every plugin, and makes one with Winch, a baseline compiler
//! five times quicker to compile with, for large components (Python and JS
//! runtimes of 13–18 MiB); see [`Compiler`].
//!
//! The cache is keyed by the plugin's sha256 and the engine's precompile
//! compatibility hash, so a changed wasmtime or changed settings never load
//! stale code. Cached artifacts are native code that wasmtime trusts; the
//! cache directory is created `0700` and only the agent writes it.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits;

/// Bytes of a pooled linear memory that are zeroed in place (rather than
/// decommitted) when an instance is freed. Small plugins touch little
/// memory; zeroing a large resident prefix on every run dominated the
/// per-run cost (1 MiB: ~44 us median per trivial run, 64 KiB: ~29 us; see
/// docs/BENCHMARKS.md).
const KEEP_RESIDENT: usize = 64 << 10;

/// Which compiler an engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// Cranelift, optimising: the fastest code, for every component but
    /// the large ones.
    Cranelift,
    /// Winch, the baseline compiler: compiles an 18 MiB Python component
    /// in a fifth of Cranelift's CPU time, into slower code. Its engine
    /// allocates on demand (no pool).
    Winch,
}

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Pre-reserved slots reused across runs (fast instantiation).
    Pooling,
    /// Fresh mappings per instance (used when the pool's address-space
    /// reservation is refused, e.g. under a tight `ulimit -v`).
    OnDemand,
}

/// The engine plus what keeps it ticking.
pub struct WardenEngine {
    engine: Engine,
    compiler: Compiler,
    allocation: Allocation,
    compat_hash: String,
    ticker: Arc<AtomicBool>,
}

impl WardenEngine {
    /// Creates the Cranelift engine, trying the pooling allocator first,
    /// and starts the epoch ticker.
    pub fn new() -> Result<Self> {
        Self::with(Compiler::Cranelift)
    }

    /// Creates an engine with `compiler` (Winch's allocates on demand) and
    /// starts its epoch ticker.
    pub fn with(compiler: Compiler) -> Result<Self> {
        let pooled = match compiler {
            Compiler::Cranelift => Engine::new(&Self::config(Allocation::Pooling, compiler)),
            Compiler::Winch => Err(wasmtime::Error::msg("Winch's engine is not pooled")),
        };
        let (engine, allocation) = match pooled {
            Ok(engine) => (engine, Allocation::Pooling),
            Err(e) => {
                if compiler == Compiler::Cranelift {
                    tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                }
                let engine = Engine::new(&Self::config(Allocation::OnDemand, compiler))
                    .map_err(anyhow::Error::from)
                    .context("creating the wasmtime engine")?;
                (engine, Allocation::OnDemand)
            }
        };
        let compat_hash = {
            let mut h = Sha256Hasher(Sha256::new());
            std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
            hex::encode(&h.0.finalize()[..12])
        };
        let ticker = Arc::new(AtomicBool::new(true));
        let weak = engine.weak();
        let running = ticker.clone();
        std::thread::Builder::new()
            .name("warden-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(limits::EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .context("starting the epoch ticker")?;
        Ok(WardenEngine {
            engine,
            compiler,
            allocation,
            compat_hash,
            ticker,
        })
    }

    fn config(allocation: Allocation, compiler: Compiler) -> Config {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        match compiler {
            Compiler::Cranelift => {
                config.cranelift_opt_level(wasmtime::OptLevel::Speed);
            }
            Compiler::Winch => {
                config.strategy(wasmtime::Strategy::Winch);
                // The large components Winch is for hold every compiled
                // function until they are linked, so leave out what only
                // debuggers and native unwinders read (a trap still names
                // its functions), and compile the trampolines, the only
                // code Cranelift makes here, quickly: less peak memory and
                // CPU for the first load (figures in docs/BENCHMARKS.md,
                // issue 18).
                config.generate_address_map(false);
                config.native_unwind_info(false);
                config.cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
                config.cranelift_opt_level(wasmtime::OptLevel::None);
            }
        }
        if allocation == Allocation::Pooling {
            let n = limits::MAX_CONCURRENT_INSTANCES;
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n)
                .total_tables(n * 8)
                .total_stacks(n)
                .max_core_instances_per_component(32)
                .max_memories_per_component(2)
                .max_tables_per_component(16)
                .max_memory_size(limits::MAX_MEMORY as usize)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(1 << 16);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Which compiler it uses.
    pub fn compiler(&self) -> Compiler {
        self.compiler
    }

    /// Which allocator is in use.
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// Compiles `bytes`, or loads the compiled code from `cache_dir` when
    /// present. Returns the component and whether it came from the cache.
    pub fn load_component(
        &self,
        bytes: &[u8],
        sha256: &str,
        cache_dir: Option<&Path>,
    ) -> Result<(Component, bool)> {
        let cached = cache_dir.map(|d| self.cache_path(d, sha256));
        if let Some(path) = cached.as_deref().filter(|p| p.is_file()) {
            // SAFETY: the file was written by `Component::serialize` of this
            // engine configuration (the name carries the compatibility
            // hash) into a directory only the agent writes.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(component) => {
                    // A hit counts as a use for eviction.
                    let _ = std::fs::File::options()
                        .append(true)
                        .open(path)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    return Ok((component, true));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        if let Some(path) = &cached
            && let Some(mapped) = self.compile_aside(bytes, path)
        {
            return Ok((mapped, false));
        }
        let component = Component::new(&self.engine, bytes).map_err(anyhow::Error::from)?;
        if let Some(path) = cached {
            match write_cache(&path, &component.serialize().map_err(anyhow::Error::from)?) {
                // Run from the cache file, as a warm start does: the code
                // is then file-backed and the compiler's heap copy goes
                // (a first start settles at the memory of a warm one).
                // SAFETY: as above; just written by this engine.
                Ok(()) => match unsafe { Component::deserialize_file(&self.engine, &path) } {
                    Ok(mapped) => return Ok((mapped, false)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot map the cache entry just written; running the compiled copy")
                    }
                },
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write compiled-code cache")
                }
            }
        }
        Ok((component, false))
    }

    /// Compiles `bytes` with an engine of its own (the same settings, no
    /// instance pool) into the cache at `path` and maps the entry into
    /// this engine: the compiler's caches go with the other engine, so a
    /// first start settles at the memory of a warm one. `None` (and a
    /// compile in this engine) when anything in that fails.
    fn compile_aside(&self, bytes: &[u8], path: &Path) -> Option<Component> {
        // On the calling thread: no compiler pool keeps memory afterwards
        // (the agent compiles a bounded number of plugins at once itself).
        let mut config = Self::config(Allocation::OnDemand, self.compiler);
        config.parallel_compilation(false);
        let aside = Engine::new(&config).ok()?;
        let same = {
            use std::hash::{Hash as _, Hasher as _};
            let (mut a, mut b) = (
                std::collections::hash_map::DefaultHasher::new(),
                std::collections::hash_map::DefaultHasher::new(),
            );
            aside.precompile_compatibility_hash().hash(&mut a);
            self.engine.precompile_compatibility_hash().hash(&mut b);
            a.finish() == b.finish()
        };
        if !same {
            return None;
        }
        // On a thread of its own, whose stack goes when it ends.
        let compiled = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("warden-compile".into())
                .stack_size(COMPILE_STACK)
                .spawn_scoped(scope, || {
                    let compiled = aside.precompile_component(bytes);
                    // This thread's allocator arena goes back too.
                    #[cfg(target_env = "gnu")]
                    // SAFETY: malloc_trim only returns free memory.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                    compiled
                })
                .ok()?
                .join()
                .ok()?
                .ok()
        })?;
        drop(aside);
        if let Err(e) = write_cache(path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled-code cache");
            return None;
        }
        drop(compiled);
        // SAFETY: just written by an engine of this configuration (the
        // compatibility hashes are equal) into the agent's own directory.
        match unsafe { Component::deserialize_file(&self.engine, path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot map the cache entry just written");
                None
            }
        }
    }

    fn cache_path(&self, dir: &Path, sha256: &str) -> PathBuf {
        dir.join(format!("{sha256}-{}.cwasm", self.compat_hash))
    }
}

impl Drop for WardenEngine {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

/// The stack of a compiling thread.
const COMPILE_STACK: usize = 16 << 20;

/// Writes a cache entry atomically (a temporary file, synced, renamed into
/// place; removed again if anything fails, so a full disk leaves no
/// debris), then keeps the directory within [`limits::MAX_CACHE_BYTES`]
/// by removing the entries used least recently.
fn write_cache(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().context("cache path has no parent")?;
    create_private_dir(dir)?;
    if bytes.len() as u64 > limits::MAX_CACHE_BYTES {
        anyhow::bail!(
            "{} bytes of compiled code is more than the cache holds ({} bytes)",
            bytes.len(),
            limits::MAX_CACHE_BYTES
        );
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    evict(dir, path, limits::MAX_CACHE_BYTES);
    Ok(())
}

/// Removes the least recently used entries (by modification time; a hit
/// touches its entry) until the cache holds at most `max` bytes, never the
/// one just written.
fn evict(dir: &Path, keep: &Path, max: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max {
            break;
        }
        if path != keep && std::fs::remove_file(&path).is_ok() {
            tracing::info!(path = %path.display(), "compiled-code cache over its limit; least recently used entry removed");
            total -= len;
        }
    }
}

/// Creates `dir` (and parents) readable and writable by the agent only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Feeds `Hash` output into sha256 so the compatibility hash is stable
/// across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn eviction_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |name: &str, age_secs: u64| {
            let p = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&p, vec![0u8; 1000]).unwrap();
            std::fs::File::options()
                .append(true)
                .open(&p)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(age_secs))
                .unwrap();
            p
        };
        let oldest = entry("a", 300);
        let middle = entry("b", 200);
        let newest = entry("c", 100);
        let just_written = entry("d", 400);
        std::fs::write(dir.path().join("notes.txt"), "not an entry").unwrap();
        evict(dir.path(), &just_written, 2500);
        assert!(!oldest.exists() && !middle.exists());
        assert!(newest.exists() && just_written.exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
