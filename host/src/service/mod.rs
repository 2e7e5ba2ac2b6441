//! `cryptohost serve`: the long-running host on a Unix socket (HTTP/1.1 + JSON, axum on tokio).
//! It loads the registry once and shares it, logs in to the HSM once, and calls the same
//! library functions the CLI calls; it adds transport, identity and limits, never crypto.

pub mod access;
pub mod api;
pub mod error;
pub mod ops;

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as AxumState};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::load::{self, Host, TrustMode};

/// Everything a request may use: loaded once at start.
pub struct Inner {
    pub host: Host,
    pub config: Config,
    pub audit: Arc<AuditLog>,
    limit: Arc<Semaphore>,
}

impl std::ops::Deref for Inner {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

/// The state handlers get.
pub type State = Arc<Inner>;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Load(#[from] crate::LoadError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("socket {path}: {message}")]
    Socket { path: PathBuf, message: String },
    #[error("server: {0}")]
    Runtime(String),
}

fn socket_err(path: &Path, message: impl Into<String>) -> ServiceError {
    ServiceError::Socket { path: path.to_path_buf(), message: message.into() }
}

/// The routes, over the loaded state (also used by tests that drive the router directly).
pub fn router(state: State) -> Router {
    let max_body = state.config.service.max_body;
    Router::new()
        .route("/v1/health", get(api::health))
        .route("/v1/ready", get(api::ready))
        .route("/v1/providers", get(api::providers))
        .route("/v1/hash", post(api::hash))
        .route("/v1/verify", post(api::verify))
        .route("/v1/sign", post(api::sign))
        .route("/v1/openapi.json", get(api::openapi))
        .route("/v1/dsse/sign", post(ops::dsse_sign))
        .route("/v1/dsse/verify", post(ops::dsse_verify))
        .route("/v1/keys", get(ops::keys_list))
        .route("/v1/keys/public", post(ops::key_public))
        .route("/v1/keys/generate", post(ops::key_generate))
        .route("/v1/encrypt", post(ops::encrypt))
        .route("/v1/decrypt", post(ops::decrypt))
        .route("/v1/hsm/{action}", post(ops::hsm_admin))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state)
}

/// At most `max_concurrent` requests at once; beyond it 503 with Retry-After, never a queue.
async fn admit(AxumState(state): AxumState<State>, request: Request, next: Next) -> Response {
    match state.limit.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(_) => error::ApiError::overloaded().into_response(),
    }
}

/// Binds the socket: a stale socket file is replaced only if nothing listens on it; a live one
/// (another server) or any other kind of file there is refused. Created with mode 0660 (and the
/// configured group), never briefly wider.
fn bind(path: &Path, group: Option<&str>) -> Result<std::os::unix::net::UnixListener, ServiceError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(socket_err(path, "another server is listening on it; refusing to start"));
            }
            std::fs::remove_file(path).map_err(|e| socket_err(path, format!("cannot remove the stale socket: {e}")))?;
            log::info!("replaced the stale socket {}", path.display());
        }
        Ok(_) => return Err(socket_err(path, "exists and is not a socket; refusing to replace it")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_err(path, e.to_string())),
    }
    // The umask decides the mode bind() gives the socket; set it so that the socket is never
    // reachable by others, even for the moment before chmod. (Before the runtime starts: the
    // process is single-threaded here.)
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| socket_err(path, format!("cannot bind: {e}")))?;
    if let Some(g) = group {
        let gid = match g.parse::<u32>() {
            Ok(id) => nix::unistd::Gid::from_raw(id),
            Err(_) => nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .map(|grp| grp.gid)
                .ok_or_else(|| socket_err(path, format!("socket_group {g:?} is not a group on this system")))?,
        };
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| socket_err(path, format!("cannot chgrp: {e}")))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| socket_err(path, format!("cannot chmod: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| socket_err(path, e.to_string()))?;
    Ok(listener)
}

/// Loads the host, binds the socket and serves until SIGTERM or SIGINT; then stops accepting,
/// lets in-flight requests finish, and removes the socket.
///
/// # Errors
/// The config or a component does not load, the audit log cannot be opened, the socket cannot
/// be bound (or another server owns it).
pub fn run(config: Config, trust: TrustMode, socket: Option<PathBuf>) -> Result<(), ServiceError> {
    let host = load::open(&config, trust)?;
    let audit = Arc::new(AuditLog::open(&config.audit_path)?);
    let path = socket.unwrap_or_else(|| config.service.socket.clone());
    let std_listener = bind(&path, config.service.socket_group.as_deref())?;
    let limit = Arc::new(Semaphore::new(config.service.max_concurrent));
    let state = Arc::new(Inner { host, config, audit, limit });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cryptohost-serve")
        .build()
        .map_err(|e| ServiceError::Runtime(e.to_string()))?;
    let served = runtime.block_on(async {
        let listener =
            tokio::net::UnixListener::from_std(std_listener).map_err(|e| socket_err(&path, e.to_string()))?;
        log::warn!("serving on {} (HTTP/1.1 + JSON, /v1/)", path.display());
        let app = router(state).into_make_service_with_connect_info::<access::Peer>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| ServiceError::Runtime(e.to_string()))
    });
    let _ = std::fs::remove_file(&path);
    served
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the server cannot stop cleanly; it still serves.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    log::warn!("stopping: no new connections; finishing requests in flight");
}
