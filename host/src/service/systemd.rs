//! systemd integration: socket activation (`LISTEN_FDS`, through the `listenfd` crate) and
//! readiness notification (`sd_notify`: one datagram to `NOTIFY_SOCKET`). Both are no-ops when
//! systemd did not start the process.

use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};

/// The listening socket systemd passed, if it passed one (the first of `LISTEN_FDS`).
pub fn activated_listener() -> std::io::Result<Option<UnixListener>> {
    listenfd::ListenFd::from_env().take_unix_listener(0)
}

/// Tells systemd about a state change (`READY=1`, `RELOADING=1`, `STOPPING=1`). Errors are
/// logged, never fatal: the server works without a supervisor.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = (|| -> std::io::Result<()> {
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            // An abstract socket name (Linux).
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(&path)?,
        };
        UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    })();
    if let Err(e) = sent {
        log::warn!("sd_notify {state}: {e}");
    }
}
