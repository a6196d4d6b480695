//! Host capabilities a plugin can import, one module each, Spin-factor
//! style: [`log`] (host log and stdio), [`state`] (per-check key/value),
//! [`http`] (egress), [`tls`] (certificate chains, under the HTTP grants),
//! [`files`] (read-only preopens), [`env`] (named variables); [`net`] is
//! what HTTP and TLS share (grant matching, the address policy, the vetted
//! connect, the trust roots).
//!
//! Each implements [`Capability`], which has the three moments of a Spin
//! factor: [`Capability::grant`] parses and checks its part of a check's
//! `allow` section (usable without running anything, as `warden validate`
//! does), [`Capability::link`] wires its host functions into the linker
//! once, and [`Capability::prepare`] builds what one run holds; after the
//! run, [`Capability::explain`] may say why it trapped,
//! [`Capability::finish`] adds what it did to the outcome and
//! [`Capability::settle`] keeps or drops its effects. The list at the
//! bottom of this file is the only place that names them all: adding a
//! capability is one module and one line there.
//!
//! A check's grants are parsed once into [`Grants`], which the runtime
//! consumes; nothing else can widen what a plugin reaches. Anything not
//! granted is absent: no preopens, no variables, every HTTP request
//! refused, sockets denied (wasi:sockets is linked so that standard-library
//! imports resolve, but with no network and every address refused).

pub mod env;
pub mod files;
pub mod http;
pub mod log;
pub mod net;
pub mod state;
pub mod tls;

pub use state::{StateBackend, StateChanges, StateQuota, StateUsage};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::memory::MemoryGuard;
use crate::report::RunOutcome;

/// The data of one instance's wasmtime store.
pub struct Sandbox {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) parts: Parts,
    pub(crate) memory: MemoryGuard,
    /// Which part of its check's run the instance performs, and the
    /// run's shared claims.
    pub(crate) share: crate::part::Share,
    /// What `host.action` answers.
    pub(crate) action: Option<crate::bindings::warden::plugin::host::ActionInfo>,
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A check's `allow` section as written: each key (`hosts`, `read_dirs`,
/// `env`) with its list of entries, and the directory relative paths are
/// resolved against (the config file's).
#[derive(Debug, Clone, Default)]
pub struct Allow {
    entries: BTreeMap<String, Vec<String>>,
    base: PathBuf,
}

impl Allow {
    /// An empty section; relative paths resolve against `base`.
    pub fn new(base: &Path) -> Allow {
        Allow {
            entries: BTreeMap::new(),
            base: base.to_path_buf(),
        }
    }

    /// Adds the entries of `key` (`allow.<key>`).
    pub fn with<S: AsRef<str>>(mut self, key: &str, entries: &[S]) -> Allow {
        self.entries
            .entry(key.to_string())
            .or_default()
            .extend(entries.iter().map(|e| e.as_ref().to_string()));
        self
    }

    /// The entries of `key` (none when absent).
    pub fn entries(&self, key: &str) -> &[String] {
        self.entries.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `path` resolved against the base directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// A grant that cannot be given, naming its field (`allow.hosts[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct GrantError {
    /// The field, with its index: `allow.hosts[0]`.
    pub field: String,
    /// What is wrong, quoting the entry.
    pub message: String,
}

impl GrantError {
    /// An error at `allow.<key>[index]`.
    pub fn at(key: &str, index: usize, message: String) -> GrantError {
        GrantError {
            field: format!("allow.{key}[{index}]"),
            message,
        }
    }
}

/// What the capabilities share across every run of one runtime, built
/// once from its options.
pub struct Shared {
    /// Where plugin state persists (none: for the run only).
    pub(crate) state: Option<Arc<dyn state::StateBackend>>,
    /// The trust roots and TLS settings.
    pub(crate) net: Arc<net::Net>,
}

impl Shared {
    /// From the embedder's state backend and extra trust roots.
    pub(crate) fn new(
        state: Option<Arc<dyn state::StateBackend>>,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> anyhow::Result<Shared> {
        Ok(Shared {
            state,
            net: Arc::new(net::Net::new(extra_roots)?),
        })
    }
}

/// What a capability gets to set up one run.
pub struct Setup<'a> {
    /// The check (scopes state, tags logs).
    pub check: &'a str,
    /// The instance's WASI context, for capabilities that are WASI
    /// interfaces (files, environment, stdio).
    pub wasi: &'a mut WasiCtxBuilder,
    /// The runtime-wide resources.
    pub shared: &'a Shared,
    /// False for `describe` and `validate`: effects last for the call
    /// only (plugin state is not persisted).
    pub persistent: bool,
    /// How much plugin state the check may keep.
    pub state_quota: StateQuota,
}

/// One host capability. See the module documentation for the moments.
pub trait Capability {
    /// The `allow.*` keys it reads (empty when it grants nothing itself).
    const KEYS: &'static [&'static str];
    /// What a check grants it, parsed once.
    type Grant: std::fmt::Debug + Default + Send + Sync + 'static;
    /// What one run holds.
    type Run: Send + 'static;

    /// Parses its keys of a check's `allow` section; every bad entry is
    /// reported.
    fn grant(allow: &Allow) -> Result<Self::Grant, Vec<GrantError>>;

    /// The grant as the API shows it, under its keys.
    fn show(grant: &Self::Grant, view: &mut serde_json::Map<String, serde_json::Value>);

    /// Adds its host functions to the linker (once per runtime).
    fn link(linker: &mut Linker<Sandbox>) -> anyhow::Result<()>;

    /// What one run holds; may configure the instance's WASI context.
    fn prepare(grant: &Arc<Self::Grant>, setup: &mut Setup<'_>) -> anyhow::Result<Self::Run>;

    /// Why a call into the plugin trapped, if this capability knows (the
    /// log's captured stderr holds a Rust panic's message).
    fn explain(_run: &Self::Run) -> Option<String> {
        None
    }

    /// After the call into the plugin: what the run did, added to its
    /// outcome (request counts, refusals, forwarded output).
    fn finish(_run: &mut Self::Run, _outcome: &mut RunOutcome) {}

    /// Keeps (`accepted`: the plugin returned and its report was accepted,
    /// or it returned an error) or drops the run's effects. An error ends
    /// the run `unknown`.
    fn settle(run: Self::Run, accepted: bool) -> impl Future<Output = Result<(), String>> + Send {
        let _ = (run, accepted);
        async { Ok(()) }
    }
}

/// Declares the capabilities: the grants of a check, the per-run parts
/// of an instance, and the loops over them, from one list.
macro_rules! capabilities {
    ($($field:ident: $cap:ty),* $(,)?) => {
        /// Everything a check grants, one field per capability, checked
        /// once; cheap to clone.
        #[derive(Debug, Clone, Default)]
        pub struct Grants {
            $($field: Arc<<$cap as Capability>::Grant>,)*
        }

        impl Grants {
            /// Grants nothing.
            pub fn none() -> Grants {
                Grants::default()
            }

            /// Parses a check's `allow` section; every problem is reported,
            /// each naming its field, and a key no capability reads is one.
            pub fn parse(allow: &Allow) -> Result<Grants, Vec<GrantError>> {
                const KNOWN: &[&[&str]] = &[$(<$cap as Capability>::KEYS),*];
                let mut errors: Vec<GrantError> = allow
                    .entries
                    .keys()
                    .filter(|k| !KNOWN.iter().any(|keys| keys.contains(&k.as_str())))
                    .map(|k| GrantError {
                        field: format!("allow.{k}"),
                        message: format!(
                            "no capability grants this (known: {})",
                            KNOWN.concat().join(", ")
                        ),
                    })
                    .collect();
                $(let $field = <$cap as Capability>::grant(allow)
                    .map_err(|e| errors.extend(e))
                    .unwrap_or_default();)*
                if errors.is_empty() {
                    Ok(Grants { $($field: Arc::new($field),)* })
                } else {
                    Err(errors)
                }
            }

            /// The grants as the API shows them.
            pub fn view(&self) -> serde_json::Value {
                let mut view = serde_json::Map::new();
                $(<$cap as Capability>::show(&self.$field, &mut view);)*
                serde_json::Value::Object(view)
            }
        }

        /// What one instance holds for each capability.
        pub struct Parts {
            $(pub(crate) $field: <$cap as Capability>::Run,)*
        }

        impl Parts {
            pub(crate) fn link(linker: &mut Linker<Sandbox>) -> anyhow::Result<()> {
                $(<$cap as Capability>::link(linker)?;)*
                Ok(())
            }

            pub(crate) fn prepare(grants: &Grants, setup: &mut Setup<'_>) -> anyhow::Result<Parts> {
                Ok(Parts { $($field: <$cap as Capability>::prepare(&grants.$field, setup)?,)* })
            }

            pub(crate) fn explain(&self) -> Option<String> {
                None$(.or_else(|| <$cap as Capability>::explain(&self.$field)))*
            }

            pub(crate) fn finish(&mut self, outcome: &mut RunOutcome) {
                $(<$cap as Capability>::finish(&mut self.$field, outcome);)*
            }

            pub(crate) async fn settle(self, accepted: bool) -> Result<(), String> {
                $(<$cap as Capability>::settle(self.$field, accepted).await?;)*
                Ok(())
            }
        }
    };
}

// Settled in this order, stopping at the first error: a run whose HTTP
// failed on the agent's side keeps no state.
capabilities! {
    log: log::Log,
    http: http::Http,
    state: state::State,
    tls: tls::Tls,
    files: files::Files,
    env: env::Env,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_field() {
        let allow = Allow::new(Path::new("/nonexistent-base"))
            .with("hosts", &["ftp://x", "https://ok.example.com"])
            .with("read_dirs", &["missing-dir"])
            .with("env", &["1BAD"])
            .with("sockets", &["*"]);
        let errors = Grants::parse(&allow).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "allow.sockets",
                "allow.hosts[0]",
                "allow.read_dirs[0]",
                "allow.env[0]"
            ],
            "{errors:?}"
        );
        assert!(
            errors[0].message.contains("hosts, read_dirs, env"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_view_comes_from_the_parsed_grants() {
        let dir = std::env::temp_dir();
        let allow = Allow::new(Path::new("/"))
            .with("hosts", &["https://api.example.com"])
            .with("read_dirs", &[dir.to_str().unwrap()])
            .with("env", &["TOKEN"]);
        let view = Grants::parse(&allow).unwrap().view();
        assert_eq!(
            view["hosts"],
            serde_json::json!(["https://api.example.com"])
        );
        assert_eq!(view["env"], serde_json::json!(["TOKEN"]));
        assert_eq!(view["read_dirs"].as_array().unwrap().len(), 1);
        assert_eq!(Grants::none().view()["hosts"], serde_json::json!([]));
    }
}
