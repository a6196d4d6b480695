//! One sandboxed instance: how its store ([`Sandbox`]) is built from a
//! check's grants and limits ([`SandboxSpec`]), and how a failed call is
//! explained, naming the limit that was hit.

use std::time::Duration;

use wasmtime::Trap;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::caps::{Grants, Parts, Sandbox, Setup, Shared, StateQuota};
use crate::limits;
use crate::memory::MemoryGuard;
use crate::part::Share;
use warden_text::units::{format_duration, format_size};

/// What an instance may do: whose state, which grants, which limits.
pub(crate) struct SandboxSpec<'a> {
    pub(crate) check: &'a str,
    pub(crate) grants: &'a Grants,
    pub(crate) memory: u64,
    pub(crate) timeout: Duration,
    /// Whether the run's effects (plugin state) persist.
    pub(crate) persistent: bool,
    /// How much plugin state the check may keep.
    pub(crate) state_quota: StateQuota,
    /// Which part of the check's run (whole, a shard, the merge).
    pub(crate) share: Share,
    /// The action the run performs, if it is one.
    pub(crate) action: Option<&'a crate::report::ActionRun>,
}

impl SandboxSpec<'_> {
    /// For `describe`/`validate`: no grants, `memory`, a short deadline,
    /// state for the call only.
    pub(crate) fn quick(purpose: &'static str, memory: u64) -> SandboxSpec<'static> {
        static NONE: std::sync::OnceLock<Grants> = std::sync::OnceLock::new();
        SandboxSpec {
            check: purpose,
            grants: NONE.get_or_init(Grants::none),
            memory,
            timeout: limits::DESCRIBE_TIMEOUT,
            persistent: false,
            state_quota: StateQuota::default(),
            share: Share::whole(),
            action: None,
        }
    }

    /// A store for one instance: every capability prepared, sockets off,
    /// the memory guard and the epoch deadline set.
    pub(crate) fn build(
        self,
        engine: &wasmtime::Engine,
        shared: &Shared,
    ) -> anyhow::Result<wasmtime::Store<Sandbox>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let parts = Parts::prepare(
            self.grants,
            &mut Setup {
                check: self.check,
                wasi: &mut wasi,
                shared,
                persistent: self.persistent,
                state_quota: self.state_quota,
            },
        )?;
        let mut table = wasmtime::component::ResourceTable::new();
        table.set_max_capacity(limits::MAX_RESOURCES_PER_RUN);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits::MAX_HTTP_FIELDS_BYTES);
        let sandbox = Sandbox {
            wasi: wasi.build(),
            table,
            http,
            parts,
            memory: MemoryGuard::new(self.memory),
            share: self.share,
            action: self.action.map(crate::caps::log::action_info),
        };
        let mut store = wasmtime::Store::new(engine, sandbox);
        store.limiter(|s| &mut s.memory);
        store.set_hostcall_fuel(limits::MAX_HOSTCALL_BYTES);
        // Every epoch tick the guest yields to the executor, so runs share
        // its threads fairly however many spin; past the deadline it traps.
        let deadline = std::time::Instant::now() + self.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if std::time::Instant::now() >= deadline {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });
        Ok(store)
    }
}

impl Sandbox {
    /// Why a call into the plugin failed, naming the limit when one was
    /// hit; `deadline` says whose time limit `timeout` is.
    pub(crate) fn explain(
        &self,
        err: &wasmtime::Error,
        timeout: Duration,
        deadline: &str,
    ) -> String {
        if let Some(asked) = self.memory.refused {
            return format!(
                "memory limit of {} exceeded (the plugin tried to grow to {})",
                format_size(self.memory.limit as u64),
                format_size(asked as u64)
            );
        }
        if let Some(trap) = err.downcast_ref::<Trap>()
            && *trap == Trap::Interrupt
        {
            return format!("timed out after {} ({deadline})", format_duration(timeout));
        }
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return format!(
                "plugin exited with code {} instead of returning a report",
                exit.0
            );
        }
        if let Some(why) = self.parts.explain() {
            return why;
        }
        if err.chain().any(|e| {
            matches!(
                e.downcast_ref(),
                Some(wasmtime::component::ResourceTableError::Full)
            )
        }) {
            return format!(
                "the plugin held more than {} resources at once (HTTP fields, requests, bodies, streams, open files): the per-run resource quota",
                limits::MAX_RESOURCES_PER_RUN
            );
        }
        // wasmtime and wasmtime-wasi-http say these only in text.
        let said = |needle: &str| err.chain().any(|e| e.to_string().contains(needle));
        if said("total size of fields exceeds limit") {
            return format!(
                "the plugin built a header set larger than {} (the HTTP fields quota)",
                format_size(limits::MAX_HTTP_FIELDS_BYTES as u64)
            );
        }
        if said("fuel allocated for hostcalls has been exhausted") {
            return format!(
                "the plugin passed more than {} to the host in one call (the per-call data quota; a report with too many findings, metrics or strings hits it)",
                format_size(limits::MAX_HOSTCALL_BYTES as u64)
            );
        }
        let root = err.root_cause().to_string();
        let root = if root.is_empty() {
            format!("{err}")
        } else {
            root
        };
        // A JS engine traps on an uncaught error after printing it.
        match self.parts.log.last_error() {
            Some(cause) => format!(
                "plugin failed: {} (then trapped: {})",
                crate::redact::words(&cause),
                crate::redact::words(&root)
            ),
            None => format!("plugin trapped: {}", crate::redact::words(&root)),
        }
    }
}
