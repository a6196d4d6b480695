//! One sandboxed instance: how its store ([`Sandbox`]) is built from a
//! check's grants and limits ([`SandboxSpec`]), and how a failed call is
//! explained, naming the limit that was hit.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Trap;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::caps::net::Net;
use crate::caps::state::StateBackend;
use crate::caps::{Grants, Parts, Sandbox, Setup};
use crate::engine::WardenEngine;
use crate::limits;
use crate::memory::MemoryGuard;
use warden_text::units::{format_duration, format_size};

/// What an instance may do: whose state, which grants, which limits.
pub(crate) struct SandboxSpec<'a> {
    pub(crate) check: &'a str,
    pub(crate) grants: &'a Grants,
    pub(crate) memory: u64,
    pub(crate) timeout: Duration,
    pub(crate) state: Option<&'a Arc<dyn StateBackend>>,
}

impl SandboxSpec<'_> {
    /// For `describe`/`validate`: no grants, default memory, a short
    /// deadline, state for the call only.
    pub(crate) fn quick(purpose: &'static str) -> SandboxSpec<'static> {
        static NONE: std::sync::OnceLock<Grants> = std::sync::OnceLock::new();
        SandboxSpec {
            check: purpose,
            grants: NONE.get_or_init(Grants::none),
            memory: limits::DEFAULT_MEMORY,
            timeout: limits::DESCRIBE_TIMEOUT,
            state: None,
        }
    }

    /// A store for one instance: every capability prepared, sockets off,
    /// the memory guard and the epoch deadline set.
    pub(crate) fn build(
        self,
        engine: &WardenEngine,
        net: &Arc<Net>,
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
                state: self.state,
                net,
            },
        )?;
        let sandbox = Sandbox {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            http: WasiHttpCtx::new(),
            parts,
            memory: MemoryGuard::new(self.memory),
        };
        let mut store = wasmtime::Store::new(engine.engine(), sandbox);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(WardenEngine::ticks(self.timeout));
        store.epoch_deadline_trap();
        Ok(store)
    }
}

impl Sandbox {
    /// Why a call into the plugin failed, naming the limit when one was
    /// hit.
    pub(crate) fn explain(&self, err: &wasmtime::Error, timeout: Duration) -> String {
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
            return format!(
                "timed out after {} (the check's timeout)",
                format_duration(timeout)
            );
        }
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return format!(
                "plugin exited with code {} instead of returning a report",
                exit.0
            );
        }
        let (text, _) = self.parts.log.stderr.contents();
        if let Some(panic) = panic_message(&text) {
            return format!("plugin panicked: {}", crate::redact::words(&panic));
        }
        let root = err.root_cause().to_string();
        let root = if root.is_empty() {
            format!("{err}")
        } else {
            root
        };
        format!("plugin trapped: {}", crate::redact::words(&root))
    }
}

/// The message of a Rust panic as the standard hook prints it.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    Some(format!(
        "{} (at {})",
        message.join(" ").trim(),
        location.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom went the plugin\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "boom went the plugin (at src/lib.rs:12:9)"
        );
        assert!(panic_message("nothing here").is_none());
    }
}
