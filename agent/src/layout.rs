//! The state directory's layout, in one place: the SQLite store
//! (`warden.db`) and the compiled-code cache (`cache/`), both private to
//! the agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use warden_runtime::RuntimeOptions;

use crate::store::Store;

/// An agent's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The directory at `root`, created (mode 0700) if missing.
    pub fn create(root: &Path) -> Result<StateDir> {
        warden_runtime::engine::create_private_dir(root)?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory, for tools that only read (no store is opened).
    pub fn at(root: &Path) -> StateDir {
        StateDir {
            root: root.to_path_buf(),
        }
    }

    /// The SQLite file.
    pub fn db(&self) -> PathBuf {
        self.root.join("warden.db")
    }

    /// The compiled-code cache.
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Opens (or creates) the store.
    pub fn open_store(&self) -> Result<Store> {
        Store::open(&self.db())
    }

    /// Runtime options over this directory: its cache, plugin state in
    /// `store` (none: state lives for the run only), and the trust roots of
    /// `ca_file` added to webpki's.
    pub fn runtime_options(
        &self,
        store: Option<Store>,
        ca_file: Option<&Path>,
    ) -> Result<RuntimeOptions> {
        let extra_roots = match ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("trust roots {}", path.display()))?;
                let certs = warden_runtime::caps::net::parse_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("trust roots {}: {e}", path.display()))?;
                tracing::info!(file = %path.display(), certificates = certs.len(), "extra trust roots added");
                certs
            }
        };
        Ok(RuntimeOptions {
            cache_dir: Some(self.cache()),
            state: store.map(|s| Arc::new(s) as Arc<dyn warden_runtime::StateBackend>),
            extra_roots,
        })
    }
}
