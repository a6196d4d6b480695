//! The host side of the contract, generated from `wit/` (world
//! `warden:plugin/plugin`): the plugin's exports (`describe`, `validate`,
//! `run`), the host interfaces it imports, and the WASI 0.2 interfaces
//! taken from wasmtime-wasi and wasmtime-wasi-http. Nothing else lives
//! here, so every other module can name these types without depending on
//! the runtime.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "warden:plugin/plugin",
    imports: { "warden:plugin/tls.peer-certificates": async },
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:filesystem": wasmtime_wasi::p2::bindings::filesystem,
        "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
    },
});

/// `warden:plugin/host` (log and state).
pub(crate) use warden::plugin::host;
/// `warden:plugin/tls`.
pub(crate) use warden::plugin::tls;
/// `warden:plugin/types`: report, plugin info, run context.
pub(crate) use warden::plugin::types as wit;

/// The world every plugin targets, for error messages.
pub const WORLD: &str = "warden:plugin/plugin@0.1.0";
/// The interface of `host.part`, without its version.
pub(crate) const HOST_INTERFACE: &str = "warden:plugin/host@";
/// The exports a component must have to be a plugin.
pub(crate) const REQUIRED_EXPORTS: [&str; 3] = ["describe", "validate", "run"];
