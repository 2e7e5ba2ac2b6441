//! `cryptohost serve`: the long-running host on a Unix socket (HTTP/1.1 + JSON, axum on tokio).
//! It loads the registry once and shares it, logs in to the HSM once, and calls the request
//! layer the CLI calls; it adds transport, identity and limits, never crypto and never request
//! resolution. Routes are split by what they hold (`keyless`, `keyed`); `extract` holds what a
//! handler gets from a request and the one table from error class to status; `openapi` the
//! document.

pub mod access;
mod admission;
mod conn;
pub mod extract;
pub mod keyed;
pub mod keyless;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod systemd;

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as AxumState};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::audit::AuditLog;
use crate::config::Config;
use crate::load::{self, Host, TrustMode};
use extract::ApiError;

/// Everything a request may use: loaded at start and again on each reload. A request takes a
/// snapshot when it starts and finishes on it, whatever is swapped in meanwhile.
pub struct Inner {
    pub host: Host,
    pub config: Config,
    pub audit: Arc<AuditLog>,
    /// The same log, as the request layer writes it.
    sink: crate::request::Audit,
}

/// Where the server's set comes from, so that a reload can read it again.
#[derive(Clone, Debug)]
pub struct Source {
    pub config_path: PathBuf,
    /// `--components DIR`, which overrides the config's directory on every load.
    pub components: Option<PathBuf>,
    pub trust: TrustMode,
}

impl Source {
    /// Reads the config and loads and checks everything it names (pins, WIT, limits).
    ///
    /// # Errors
    /// The config, a component or the audit log does not load.
    pub fn load(&self) -> Result<Inner, ServiceError> {
        let mut config = Config::load(&self.config_path)?;
        if let Some(dir) = &self.components {
            config.component_dir = dir.clone();
        }
        let host = load::open_with(&config, self.trust, load::Start::Pooled)?;
        let audit = Arc::new(AuditLog::open_with(&config.audit_path, &config.audit_options())?);
        let sink = crate::request::Audit::opened(audit.clone());
        Ok(Inner { host, config, audit, sink })
    }
}

/// What the router holds: the current set (swapped whole on reload), the admission limit and
/// the source to reload from.
pub struct Shared {
    current: metrics::Current,
    /// Request places and body bytes in flight (`[service] max_concurrent`, `max_per_uid`,
    /// `body_budget_mib`).
    admission: admission::Admission,
    /// Request ids, for the log spans and the `x-request-id` header.
    ids: std::sync::atomic::AtomicU64,
    source: Source,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    metrics: metrics::Metrics,
}

impl Shared {
    /// Loads the serving set from `source`: what [`run`] serves, and what a caller that drives
    /// [`router`] in-process (the fuzz target for request bodies) serves.
    ///
    /// # Errors
    /// As [`Source::load`].
    pub fn new(source: Source) -> Result<Arc<Shared>, ServiceError> {
        let inner = source.load()?;
        let current = Arc::new(std::sync::RwLock::new(Arc::new(inner)));
        Ok(Arc::new(Shared {
            current: current.clone(),
            admission: admission::Admission::default(),
            ids: std::sync::atomic::AtomicU64::new(0),
            source,
            reloading: tokio::sync::Mutex::new(()),
            metrics: metrics::Metrics::new(current),
        }))
    }

    pub fn current(&self) -> Arc<Inner> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Loads the set again from its source and swaps it in whole; on any failure the old set
    /// keeps serving. Either way one audit event says what happened.
    ///
    /// # Errors
    /// The new set does not load (the old one keeps serving).
    pub async fn reload(self: &Arc<Self>, caller: Option<crate::audit::Caller>) -> Result<(), ServiceError> {
        let _one = self.reloading.lock().await;
        let source = self.source.clone();
        let loaded = tokio::task::spawn_blocking(move || source.load())
            .await
            .map_err(|e| ServiceError::Runtime(e.to_string()))?;
        let old = self.current();
        let (outcome, result) = match loaded {
            Ok(new) => {
                let providers = new.host.providers().len();
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(new);
                log::warn!("reloaded: {providers} provider(s) now serving");
                self.metrics.reloads.get_or_create(&metrics::OutcomeLabel { outcome: "ok".into() }).inc();
                ("ok".to_string(), Ok(()))
            }
            Err(e) => {
                log::error!("reload refused, the previous set keeps serving: {e}");
                self.metrics.reloads.get_or_create(&metrics::OutcomeLabel { outcome: "refused".into() }).inc();
                (format!("refused: {e}"), Err(e))
            }
        };
        // Recorded in the log of the set that serves from now on, and pinned by a checkpoint.
        let now = self.current();
        if let Err(e) = crate::request::record_event(&now.sink, caller, "reload", outcome) {
            log::error!("{e}");
        }
        let signed = tokio::task::spawn_blocking(move || {
            crate::request::audit_checkpoint(&now.host, &now.config, &now.sink).map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Err(e)) = signed {
            log::error!("audit checkpoint after the reload: {e}");
        }
        drop(old);
        result
    }
}

impl std::ops::Deref for Inner {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

/// Verifications whose input is at most this many bytes run on the connection's own thread;
/// larger ones on the blocking pool. A verification over a small input is a few hundred
/// microseconds of guest time (bounded by the guest deadline), less than the two thread
/// hand-offs the blocking pool costs; a large input would hold the thread, and the other
/// connections it serves, for longer. (Sending every verify to the pool once a thread serves
/// several connections measured 25% less throughput at 8 clients, so small ones stay inline.)
pub const INLINE_INPUT: usize = 64 << 10;

/// Runs a CPU-bound step: inline when its input is small (see [`INLINE_INPUT`]), else on the
/// blocking pool.
pub(crate) async fn compute<T: Send + 'static>(
    input_size: usize,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if input_size <= INLINE_INPUT { f() } else { blocking(f).await }
}

/// Runs `f` on the blocking pool, inside the current request's log span.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await.map_err(|e| ApiError::internal(e.to_string()))?
}

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

/// The routes, over the shared state. An unknown path is `not-found` and a known path with
/// another method `method-not-allowed`, both in the one error schema.
pub fn router(shared: Arc<Shared>) -> Router {
    let max_body = shared.current().config.service.max_body;
    Router::new()
        .route("/v1/health", get(keyless::health))
        .route("/v1/ready", get(keyless::ready))
        .route("/v1/providers", get(keyless::providers))
        .route("/v1/hash", post(keyless::hash))
        .route("/v1/verify", post(keyless::verify))
        .route("/v1/dsse/verify", post(keyless::dsse_verify))
        .route("/v1/jws/verify", post(keyless::jws_verify))
        .route("/v1/jwks", get(keyless::jwks))
        .route("/v1/jwt/verify", post(keyless::jwt_verify))
        .route("/v1/openapi.json", get(openapi::openapi))
        .route("/v1/sign", post(keyed::sign))
        .route("/v1/sign/stream", post(keyed::sign_stream))
        .route("/v1/dsse/sign", post(keyed::dsse_sign))
        .route("/v1/jws/sign", post(keyed::jws_sign))
        .route("/v1/jwt/sign", post(keyed::jwt_sign))
        .route("/v1/keys", get(keyed::keys_list))
        .route("/v1/keys/public", post(keyed::key_public))
        .route("/v1/keys/generate", post(keyed::key_generate))
        .route("/v1/keys/rotate", post(keyed::key_rotate))
        .route("/v1/keys/promote", post(keyed::key_promote))
        .route("/v1/keys/retire", post(keyed::key_retire))
        .route("/v1/keys/destroy", post(keyed::key_destroy))
        .route("/v1/keys/versions", post(keyed::key_versions))
        .route("/v1/keys/csr", post(keyed::key_csr))
        .route("/v1/encrypt", post(keyed::encrypt))
        .route("/v1/decrypt", post(keyed::decrypt))
        .route("/v1/hsm/{action}", post(keyed::hsm_admin))
        .route("/v1/reload", post(keyed::reload))
        .route("/metrics", get(metrics_text))
        .fallback(extract::not_found)
        .method_not_allowed_fallback(extract::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(shared.clone(), admit))
        .with_state(shared)
}

/// What a request's body will hold in memory while it is served: nothing for a route that
/// streams it or a request without one; else its declared length, or the largest body allowed
/// when it declares none (chunked), never more than that.
fn body_charge(request: &Request, route: &str, max_body: usize) -> u64 {
    if route == "/v1/sign/stream" || matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return 0;
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    declared.unwrap_or(max_body as u64).min(max_body as u64)
}

/// At most `max_concurrent` requests at once, `max_per_uid` for one peer uid, the last places
/// kept for callers holding none, and bodies in flight within `body_budget_mib` (see
/// `admission`); beyond any, 503 with Retry-After, never a queue. Each request runs in its own log span (id,
/// method, route, uid) and its answer carries the id in `x-request-id`.
async fn admit(AxumState(shared): AxumState<Arc<Shared>>, request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let uid = request
        .extensions()
        .get::<axum::extract::ConnectInfo<access::Peer>>()
        .map_or(access::Peer::nobody().uid, |c| c.0.uid);
    let id = shared.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let span = tracing::info_span!("request", id, method = %request.method(), route = %route, uid);
    let started = std::time::Instant::now();
    let service = &shared.current().config.service;
    let limits = admission::Limits {
        max_concurrent: service.max_concurrent,
        max_per_uid: service.max_per_uid,
        body_budget: service.body_budget,
    };
    let charge = body_charge(&request, &route, service.max_body);
    let mut response = match shared.admission.admit(uid, charge, limits) {
        Ok(place) => {
            let deadline = shared.current().config.service.request_timeout;
            let response = match tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await {
                Ok(r) => r,
                Err(_) => ApiError::new(
                    cryptohost_client::ErrorKind::Timeout,
                    format!(
                        "the request did not finish within {} ms ([service] request_timeout_ms)",
                        deadline.as_millis()
                    ),
                )
                .into_response(),
            };
            drop(place);
            response
        }
        Err(why) => {
            shared.metrics.overloaded.inc();
            ApiError::overloaded(why).into_response()
        }
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "answered");
    });
    let m = &shared.metrics;
    m.requests
        .get_or_create(&metrics::RequestLabels { route: route.clone(), status: response.status().as_u16() })
        .inc();
    m.latency.get_or_create(&metrics::RouteLabel { route }).observe(started.elapsed().as_secs_f64());
    response
}

/// Connections the metrics port holds open at once, from all its peers together: a scraper
/// needs one; a flood of them never takes the descriptors the socket's callers need.
const METRICS_CONNECTIONS: usize = 16;

/// The soft limit on open descriptors raised to the hard one, so the caps on connections bind
/// before the descriptors run out.
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            log::warn!("cannot raise the open-descriptor limit to its hard limit: {e}");
        }
    }
}

/// The metrics alone, for `[service] metrics_listen` (loopback TCP, for a scraper).
fn metrics_router(shared: Arc<Shared>) -> Router {
    Router::new().route("/metrics", get(metrics_text)).fallback(extract::not_found).with_state(shared)
}

/// Prometheus text format.
async fn metrics_text(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let (requests, body_bytes) = shared.admission.in_flight();
    shared.metrics.in_flight.set(i64::try_from(requests).unwrap_or(i64::MAX));
    shared.metrics.body_bytes_in_flight.set(i64::try_from(body_bytes).unwrap_or(i64::MAX));
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shared.metrics.encode(),
    )
        .into_response()
}

/// The socket's directory must be one only this user or root can change: owned by one of
/// them, and not writable by group or others unless sticky (like `/tmp`). Otherwise whoever can
/// write it could swap the socket for a link between bind and chgrp.
fn check_socket_dir(path: &Path) -> Result<(), ServiceError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::fsio::guarded(dir).map_err(|why| socket_err(path, format!("its directory: {why}")))
}

/// Binds the socket: a stale socket file is replaced only if nothing listens on it; a live one
/// (another server) or any other kind of file there is refused. Created with mode 0660 (and the
/// configured group), never briefly wider.
fn bind(path: &Path, group: Option<&str>) -> Result<std::os::unix::net::UnixListener, ServiceError> {
    check_socket_dir(path)?;
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
        // Never through a symlink swapped in at the path since bind.
        nix::unistd::fchownat(nix::fcntl::AT_FDCWD, path, None, Some(gid), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| socket_err(path, format!("cannot chgrp: {e}")))?;
    }
    // The umask made it 0660 at bind; what is at the path now must still be that socket
    // (chmod by path would follow a symlink swapped in, so the mode is checked, not set).
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() && m.permissions().mode() & 0o7777 == 0o660 => {}
        Ok(m) => {
            return Err(socket_err(
                path,
                format!("is no longer the socket just bound (mode {:o}): refusing to serve", m.permissions().mode()),
            ));
        }
        Err(e) => return Err(socket_err(path, format!("vanished after bind: {e}"))),
    }
    listener.set_nonblocking(true).map_err(|e| socket_err(path, e.to_string()))?;
    Ok(listener)
}

/// Loads the host, binds the socket and serves until SIGTERM or SIGINT; then stops accepting,
/// lets in-flight requests finish, and removes the socket.
///
/// # Errors
/// The config or a component does not load, the audit log cannot be opened, the socket cannot
/// be bound (or another server owns it).
/// What `run` says once it serves: the socket, the metrics address, how many providers.
pub struct Started<'a> {
    pub socket: &'a Path,
    pub metrics: Option<std::net::SocketAddr>,
    pub providers: usize,
}

pub fn run(source: Source, socket: Option<PathBuf>, ready: impl FnOnce(&Started<'_>)) -> Result<(), ServiceError> {
    raise_descriptor_limit();
    let shared = Shared::new(source)?;
    let inner = shared.current();
    if let Some(k) = &inner.config.kit {
        crate::bundle::state::warn_if_writable_by_me(&k.state);
    }
    let path = socket.unwrap_or_else(|| inner.config.service.socket.clone());
    // Under systemd socket activation the socket is systemd's: use it, and leave it in place.
    let (std_listener, owned) = match systemd::activated_listener() {
        Ok(Some(l)) => {
            l.set_nonblocking(true).map_err(|e| socket_err(&path, e.to_string()))?;
            (l, false)
        }
        Ok(None) => (bind(&path, inner.config.service.socket_group.as_deref())?, true),
        Err(e) => return Err(socket_err(&path, format!("the socket systemd passed (LISTEN_FDS) is unusable: {e}"))),
    };
    let metrics_listen = inner.config.service.metrics_listen;
    drop(inner);
    // The main runtime accepts, handles signals and the metrics port; requests are served on
    // the connection threads (see `conn`), one per CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServiceError::Runtime(e.to_string()))?;
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let served = runtime.block_on(async {
        let listener =
            tokio::net::UnixListener::from_std(std_listener).map_err(|e| socket_err(&path, e.to_string()))?;
        let header_timeout = shared.current().config.service.header_timeout;
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let mut metrics_bound = None;
        if let Some(addr) = metrics_listen {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServiceError::Runtime(format!("[service] metrics_listen {addr}: cannot bind: {e}")))?;
            let bound = tcp.local_addr().unwrap_or(addr);
            metrics_bound = Some(bound);
            log::warn!("metrics on http://{bound}/metrics");
            tokio::spawn(conn::accept_loop(
                conn::Tcp(tcp),
                metrics_router(shared.clone()),
                header_timeout,
                conn::Holds::new(METRICS_CONNECTIONS),
                stop.clone(),
            ));
        }
        log::warn!("serving on {} (HTTP/1.1 + JSON, /v1/)", path.display());
        tokio::spawn(reload_on_sighup(shared.clone()));
        tokio::spawn(async move {
            shutdown().await;
            let _ = stop_tx.send(true);
        });
        let per_uid = conn::Holds::new(shared.current().config.service.max_connections_per_uid);
        let providers = shared.current().host.providers().len();
        let workers = conn::Threads::start(threads, &router(shared.clone()), header_timeout)
            .map_err(|e| ServiceError::Runtime(format!("connection threads: {e}")))?;
        systemd::notify("READY=1");
        ready(&Started { socket: &path, metrics: metrics_bound, providers });
        workers.accept(conn::Unix(listener), per_uid, stop).await;
        // A clean stop: the log's last lines are pinned by a checkpoint.
        let last = shared.current();
        let signed = tokio::task::spawn_blocking(move || {
            crate::request::audit_checkpoint(&last.host, &last.config, &last.sink).map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Err(e)) = signed {
            log::error!("audit checkpoint at the stop: {e}");
        }
        Ok::<(), ServiceError>(())
    });
    if owned {
        let _ = std::fs::remove_file(&path);
    }
    served
}

/// Reloads on every SIGHUP (the socket, its group and the concurrency limit stay as they were).
async fn reload_on_sighup(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        systemd::notify("RELOADING=1");
        let _ = shared.reload(None).await;
        systemd::notify("READY=1");
    }
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
    systemd::notify("STOPPING=1");
    log::warn!("stopping: no new connections; finishing requests in flight");
}
