//! Connections: accepting them and serving each over HTTP/1.1.
//!
//! The Unix socket's connections are spread over connection threads, each running a
//! single-threaded runtime: a request is read, computed (inline when small) and answered on the
//! thread that owns its connection, with no hand-off between workers and no wake of another
//! thread per request. A connection goes to the thread serving the fewest, so as many clients
//! as there are threads run in parallel. Work that must not hold a connection thread (large
//! inputs, HSM signing, anchors read from disk) goes to that runtime's blocking pool as before.
//!
//! The loopback metrics port, which carries a scrape now and then, is served on the main
//! runtime.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{mpsc, watch};

use super::access;

/// A listener: the Unix socket (peers known by SO_PEERCRED) or the loopback metrics port
/// (peers unknown: no rule names them).
pub(super) trait Listen: Send + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl std::future::Future<Output = io::Result<(Self::Io, access::Peer)>> + Send;
}

pub(super) struct Unix(pub tokio::net::UnixListener);
pub(super) struct Tcp(pub tokio::net::TcpListener);

impl Listen for Unix {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<(Self::Io, access::Peer)> {
        let (stream, _) = self.0.accept().await?;
        let peer = match stream.peer_cred() {
            Ok(c) => {
                use std::os::fd::AsFd;
                let groups = access::peer_groups(stream.as_fd()).ok();
                access::Peer::new(c.uid(), c.gid(), c.pid()).with_socket_groups(groups)
            }
            Err(_) => access::Peer::nobody(),
        };
        Ok((stream, peer))
    }
}

impl Listen for Tcp {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Io, access::Peer)> {
        let (stream, _) = self.0.accept().await?;
        Ok((stream, access::Peer::nobody()))
    }
}

/// Serves one connection until it closes: HTTP/1.1 with a header-read timeout (a connection
/// that does not send a whole request head in time, idle kept-alive ones included, is closed),
/// every request carrying the peer.
/// `place` is dropped when the connection ends, however it ends.
fn serve<Io>(
    graceful: &GracefulShutdown,
    io: Io,
    peer: access::Peer,
    app: Router,
    header_timeout: Duration,
    place: Option<Live>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer.clone()));
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, request.map(axum::body::Body::new)).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let connection = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("connection: {e}");
        }
        drop(place);
    });
}

/// Waits for the next connection, or `None` once `stop` turns true; a failed accept (out of
/// descriptors and the like) backs off rather than spins.
async fn next<L: Listen>(listener: &L, stop: &mut watch::Receiver<bool>) -> Option<(L::Io, access::Peer)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => return Some(s),
                Err(e) => {
                    log::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = async { drop(stop.wait_for(|stopped| *stopped).await) } => return None,
        }
    }
}

/// Accepts connections on this runtime until `stop` turns true, then waits for the connections
/// in flight to finish (the metrics port).
pub(super) async fn accept_loop(
    listener: impl Listen,
    app: Router,
    header_timeout: Duration,
    holds: Arc<Holds>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    while let Some((stream, peer)) = next(&listener, &mut stop).await {
        // Every peer of the metrics port is nobody: one cap for all of them.
        let Some(held) = holds.take(peer.uid) else { continue };
        serve(
            &graceful,
            stream,
            peer,
            app.clone(),
            header_timeout,
            Some(Live { count: Arc::default(), _held: Some(held) }),
        );
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection on its way to a connection thread: the socket, out of the accepting runtime,
/// and its place among its uid's connections.
type Handoff = (std::os::unix::net::UnixStream, access::Peer, Held);

/// Connections held open now, per peer uid (the socket) or in all (the metrics port), under a
/// cap: one more is closed at once, so one caller cannot spend the descriptors every caller
/// needs, each of its idle connections holding one until `header_timeout`.
pub(super) struct Holds {
    cap: usize,
    counts: std::sync::Mutex<std::collections::HashMap<u32, usize>>,
}

/// One connection's place in [`Holds`], given back on drop.
pub(super) struct Held(Arc<Holds>, u32);

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.0.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.1);
            }
        }
    }
}

impl Holds {
    pub(super) fn new(cap: usize) -> Arc<Holds> {
        Arc::new(Holds { cap, counts: std::sync::Mutex::default() })
    }

    /// A place for one more connection of `key`, or `None` at the cap.
    fn take(self: &Arc<Self>, key: u32) -> Option<Held> {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = counts.entry(key).or_default();
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Held(self.clone(), key))
    }
}

/// Connections accepted but not yet taken up by their thread (which takes them at once unless
/// it is busy computing); beyond this, a connection goes to another thread, or is closed when
/// every thread's queue is full.
const HANDOFF_QUEUE: usize = 64;

/// The connection threads.
pub(super) struct Threads {
    threads: Vec<Thread>,
}

struct Thread {
    handoff: mpsc::Sender<Handoff>,
    /// Connections this thread serves now.
    live: Arc<AtomicUsize>,
    join: std::thread::JoinHandle<()>,
}

impl Threads {
    /// Starts `n` connection threads serving `app`.
    ///
    /// # Errors
    /// A thread or its runtime cannot be made.
    pub(super) fn start(n: usize, app: &Router, header_timeout: Duration) -> io::Result<Threads> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (handoff, mut incoming) = mpsc::channel::<Handoff>(HANDOFF_QUEUE);
            let live = Arc::new(AtomicUsize::new(0));
            let (app, count) = (app.clone(), live.clone());
            let join = std::thread::Builder::new().name(format!("cryptohost-conn-{i}")).spawn(move || {
                runtime.block_on(async move {
                    let graceful = GracefulShutdown::new();
                    // Until the accept loop stops and drops its end.
                    while let Some((std_stream, peer, held)) = incoming.recv().await {
                        let place = Live { count: count.clone(), _held: Some(held) };
                        match tokio::net::UnixStream::from_std(std_stream) {
                            Ok(stream) => serve(&graceful, stream, peer, app.clone(), header_timeout, Some(place)),
                            Err(e) => log::warn!("connection: cannot register it: {e}"),
                        }
                    }
                    graceful.shutdown().await;
                });
            })?;
            threads.push(Thread { handoff, live, join });
        }
        Ok(Threads { threads })
    }

    /// Gives a connection to the thread serving the fewest; if that thread's queue is full or
    /// the thread has stopped, to the next. Never waits: a connection no thread can take is
    /// closed.
    fn hand_off(&self, mut conn: Handoff) {
        let mut order: Vec<&Thread> = self.threads.iter().collect();
        order.sort_by_key(|t| t.live.load(Ordering::Relaxed));
        for thread in order {
            thread.live.fetch_add(1, Ordering::Relaxed);
            match thread.handoff.try_send(conn) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    thread.live.fetch_sub(1, Ordering::Relaxed);
                    conn = back;
                }
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    // Never chosen first again.
                    thread.live.store(usize::MAX / 2, Ordering::Relaxed);
                    log::error!("a connection thread has stopped");
                    conn = back;
                }
            }
        }
        log::warn!("every connection thread's queue is full; closing a new connection");
    }

    /// Accepts on `listener` until `stop` turns true, handing each connection to the thread
    /// that serves the fewest; then lets every thread finish its connections in flight.
    pub(super) async fn accept(self, listener: Unix, holds: Arc<Holds>, mut stop: watch::Receiver<bool>) {
        while let Some((stream, peer)) = next(&listener, &mut stop).await {
            let Some(held) = holds.take(peer.uid) else {
                log::debug!("uid {} is at its cap of open connections; closing a new one", peer.uid);
                continue;
            };
            // Out of this runtime's reactor, to be registered with the thread's own.
            match stream.into_std() {
                Ok(s) => self.hand_off((s, peer, held)),
                Err(e) => log::warn!("connection: {e}"),
            }
        }
        drop(listener);
        let joins: Vec<_> = self.threads.into_iter().map(|t| t.join).collect();
        // Each thread ends once its handoff is closed (dropped above with `self`) and its
        // connections are done.
        let _ = tokio::task::spawn_blocking(move || {
            for j in joins {
                if j.join().is_err() {
                    log::error!("a connection thread panicked");
                }
            }
        })
        .await;
    }
}

/// A connection's place in its thread's count (and among its uid's connections), given back
/// on drop.
struct Live {
    count: Arc<AtomicUsize>,
    /// Given back (its own drop) when the connection ends.
    _held: Option<Held>,
}

impl Drop for Live {
    fn drop(&mut self) {
        // A count that never went up (the metrics port's) stays at zero.
        let _ = self.count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Waits (yielding to the accept loop) until the threads' counts sum to `n`.
    async fn settle(counts: &[Arc<AtomicUsize>], n: usize) -> Vec<usize> {
        for _ in 0..500 {
            let now: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            if now.iter().sum::<usize>() == n {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the connection counts never reached {n}");
    }

    #[test]
    fn a_connection_goes_to_the_thread_serving_fewest_and_leaves_its_count_when_it_closes() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("s.sock");
            let listener = tokio::net::UnixListener::bind(&path).expect("bind");
            let app = Router::new()
                .route("/", axum::routing::get(|| async { format!("{:?}", std::thread::current().name()) }));
            let threads = Threads::start(2, &app, Duration::from_secs(5)).expect("threads");
            let counts: Vec<_> = threads.threads.iter().map(|t| t.live.clone()).collect();
            let (stop_tx, stop) = watch::channel(false);
            let accepting = tokio::spawn(threads.accept(Unix(listener), Holds::new(64), stop));

            let mut conns = Vec::new();
            for n in 1..=3 {
                conns.push(std::os::unix::net::UnixStream::connect(&path).expect("connect"));
                let mut now = settle(&counts, n).await;
                now.sort_unstable();
                // Spread: never two more on one thread than on the other.
                assert!(now[1] - now[0] <= 1, "{now:?} after {n} connections");
            }
            // Each is answered on a connection thread, and two different threads answer.
            let mut names = std::collections::BTreeSet::new();
            for c in &mut conns {
                c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("send");
                let mut answer = String::new();
                c.read_to_string(&mut answer).expect("answer");
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                let name = answer.rsplit("\r\n\r\n").next().unwrap_or_default().to_string();
                assert!(name.contains("cryptohost-conn-"), "{name}");
                names.insert(name);
            }
            assert_eq!(names.len(), 2, "{names:?}");
            drop(conns);
            assert_eq!(settle(&counts, 0).await, [0, 0]);
            // Stopping ends the accept loop and every thread.
            stop_tx.send(true).expect("stop");
            tokio::time::timeout(Duration::from_secs(10), accepting).await.expect("stopped").expect("joined");
        });
    }
}
