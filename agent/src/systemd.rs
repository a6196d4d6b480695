//! systemd's readiness protocol (`Type=notify`): `READY=1` once plugins
//! are loaded and the scheduler runs, `RELOADING=1` … `READY=1` around a
//! configuration reload, `STOPPING=1` at shutdown, each a datagram to
//! `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Without
//! the variable (not under systemd) nothing is sent. A failure to send is
//! logged once, never fatal. See `docs/warden.service`.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`READY=1`, `STOPPING=1`, ...) to systemd, if it listens.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = target.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &target)
        }
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, state, "cannot notify systemd ($NOTIFY_SOCKET)");
    }
}

/// `RELOADING=1` with the monotonic time systemd 253+ asks for.
pub fn reloading() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}
