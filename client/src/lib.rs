//! A blocking client for `cryptohost serve`: HTTP/1.1 over the server's Unix socket, JSON in
//! and out, one kept-alive connection per client (a stale one is replaced transparently).
//! Other programs use it to hash, verify and sign without the HSM PIN, the components or a
//! crypto library of their own. Every request and answer is a type of [`api`], the wire
//! schema the server itself is written against.
//!
//! ```no_run
//! let c = cryptohost_client::Client::new("/run/cryptohost/cryptohost.sock");
//! let hashed = c.hash("SHA-256", &mut std::io::Cursor::new(b"abc"))?;
//! println!("{} by {}", hashed.digest, hashed.provider.name);
//! # Ok::<(), cryptohost_client::Error>(())
//! ```

use std::io::{self, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod api;
mod http;

/// Reads one HTTP response from `bytes` exactly as the client reads a server's answer, and
/// returns its status and body length, or the refusal in words. For the fuzz target and its
/// corpus replay test; not a stable interface.
#[doc(hidden)]
pub fn read_response_bytes(bytes: &[u8]) -> Result<(u16, usize), String> {
    match http::read_response(bytes) {
        Ok(r) => Ok((r.status, r.body.len())),
        Err(http::ReadError::Io(e)) => Err(e.to_string()),
        Err(http::ReadError::Protocol(m)) => Err(m),
    }
}

#[cfg(test)]
use http::read_response;
use http::{Body, Conn, ReadError, Response, exchange, peer_uid, percent};

pub use api::{
    DecryptRequest, DsseSignRequest, DsseSignResponse, DsseVerifyRequest, DsseVerifyResponse, EncryptRequest,
    ErrorBody, ErrorKind, HashResponse, Health, HsmReport, JwsSignRequest, JwsSignResponse, JwsVerifyRequest,
    JwsVerifyResponse, JwtSignRequest, JwtVerifyRequest, JwtVerifyResponse, KeyListing, KeyRequest, Plaintext,
    ProviderInfo, PublicKeyResponse, Ready, Reloaded, Sealed, SignQuery, SignRequest, SignResponse, VerifyRequest,
    VerifyResponse,
};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached or the connection broke.
    #[error("cryptohost server at {socket}: {source}")]
    Io { socket: String, source: io::Error },
    /// The server answered with an error: its status, kind and message.
    #[error("{message} (server: HTTP {status}, {kind})")]
    Server { status: u16, kind: ErrorKind, message: String },
    /// The answer was not what the protocol says.
    #[error("cryptohost server: malformed response: {0}")]
    Protocol(String),
}

/// A connection target: the server's socket, and the connection kept alive to it (a clone
/// starts its own).
#[derive(Debug)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    busy_poll: Duration,
    /// How long the last answer took, in microseconds (for [`Client::busy_poll`]).
    last_answer: AtomicU64,
    idle: Mutex<Option<BufReader<Conn>>>,
    /// The uid the process listening on the socket must run as, when required.
    owner: Option<u32>,
}

impl Clone for Client {
    fn clone(&self) -> Client {
        Client {
            socket: self.socket.clone(),
            timeout: self.timeout,
            busy_poll: self.busy_poll,
            last_answer: AtomicU64::new(0),
            idle: Mutex::new(None),
            owner: self.owner,
        }
    }
}

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Client {
        Client {
            socket: socket.as_ref().to_path_buf(),
            timeout: Duration::from_secs(300),
            busy_poll: Duration::ZERO,
            last_answer: AtomicU64::new(0),
            idle: Mutex::new(None),
            owner: None,
        }
    }

    /// How long an answer may take, from the end of the request to the last byte of the answer
    /// (default 300 s). A server that stalls or trickles bytes is cut off then.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Requires the process listening on the socket to run as `uid`, checked on every new
    /// connection (SO_PEERCRED). The socket's path is the trust boundary: whatever listens
    /// there is believed, so a caller that knows which account runs the server can say so.
    #[must_use]
    pub fn require_owner(mut self, uid: u32) -> Client {
        self.owner = Some(uid);
        self
    }

    /// Waits for each answer by polling the socket for up to `limit` before sleeping in the
    /// kernel. A thread asleep in `read` is woken by the server's answer, and on a virtual
    /// machine that wake can cost tens of microseconds once the thread has slept a few hundred;
    /// polling trades this client's CPU time (at most `limit` per request) for that latency.
    /// While answers take longer than `limit` (a busy server, a slow key), the client does not
    /// poll, so a crowd of clients does not spend the server's cores waiting on it. Worth it
    /// for a caller that sends short requests (verifications) one after another on a machine
    /// with a core to spare; off by default.
    #[must_use]
    pub fn busy_poll(mut self, limit: Duration) -> Client {
        self.busy_poll = limit;
        self
    }

    fn io(&self, source: io::Error) -> Error {
        Error::Io { socket: self.socket.display().to_string(), source }
    }

    fn connect(&self) -> Result<BufReader<Conn>, Error> {
        let s = UnixStream::connect(&self.socket).map_err(|e| self.io(e))?;
        s.set_read_timeout(Some(self.timeout)).map_err(|e| self.io(e))?;
        s.set_write_timeout(Some(self.timeout)).map_err(|e| self.io(e))?;
        if let Some(want) = self.owner {
            let uid = peer_uid(&s).map_err(|e| self.io(e))?;
            if uid != want {
                return Err(Error::Protocol(format!(
                    "the process listening on {} runs as uid {uid}, not the required {want}: refused",
                    self.socket.display()
                )));
            }
        }
        Ok(BufReader::new(Conn { stream: s, deadline: None }))
    }

    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Body<'_>) -> Result<T, Error> {
        let started = Instant::now();
        let answered = self.exchange_kept(method, path, body);
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_answer.store(took, Ordering::Relaxed);
        let (status, body) = answered?;
        if status >= 300 {
            let detail: ErrorBody = serde_json::from_slice(&body)
                .map_err(|e| Error::Protocol(format!("HTTP {status}, the error body is not the error schema: {e}")))?;
            return Err(Error::Server { status, kind: detail.error.kind, message: detail.error.message });
        }
        serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("HTTP {status}, the body is not the answer's schema: {e}")))
    }

    /// How long to poll for the next answer: the configured limit, unless the last answer took
    /// longer than that.
    fn poll_limit(&self) -> Duration {
        let last = Duration::from_micros(self.last_answer.load(Ordering::Relaxed));
        if last > self.busy_poll { Duration::ZERO } else { self.busy_poll }
    }

    /// One exchange on the kept connection, or on a new one.
    fn exchange_kept(&self, method: &str, path: &str, body: Body<'_>) -> Result<(u16, Vec<u8>), Error> {
        let kept = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Ok(match (kept, body.replay()) {
            // A kept connection the server has since closed (idle timeout, reload, restart)
            // fails before any answer arrives: then the request is sent once more on a new one.
            // A streamed body cannot be sent twice, so it always gets a new connection.
            (Some(mut conn), Some(first)) => {
                match exchange(&mut conn, method, path, first, self.poll_limit(), self.timeout) {
                    Ok(Some(answer)) => self.keep(conn, answer),
                    Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => return Err(self.io(e)),
                    Ok(None) | Err(ReadError::Io(_)) => self.fresh(method, path, body)?,
                    Err(ReadError::Protocol(m)) => return Err(Error::Protocol(m)),
                }
            }
            _ => self.fresh(method, path, body)?,
        })
    }

    /// One exchange on a new connection.
    fn fresh(&self, method: &str, path: &str, body: Body<'_>) -> Result<(u16, Vec<u8>), Error> {
        let mut conn = self.connect()?;
        match exchange(&mut conn, method, path, body, self.poll_limit(), self.timeout) {
            Ok(Some(answer)) => Ok(self.keep(conn, answer)),
            Ok(None) => Err(Error::Protocol("the server closed the connection without answering".into())),
            Err(ReadError::Io(e)) => Err(self.io(e)),
            Err(ReadError::Protocol(m)) => Err(Error::Protocol(m)),
        }
    }

    /// Keeps the connection for the next call unless the server said it closes it.
    fn keep(&self, conn: BufReader<Conn>, answer: Response) -> (u16, Vec<u8>) {
        if answer.keep_alive && conn.buffer().is_empty() {
            *self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn);
        }
        (answer.status, answer.body)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, request: &impl Serialize) -> Result<T, Error> {
        let bytes = serde_json::to_vec(request).map_err(|e| Error::Protocol(format!("encoding the request: {e}")))?;
        self.call("POST", path, Body::Json(&bytes))
    }

    /// `GET /v1/health`.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn health(&self) -> Result<Health, Error> {
        self.call("GET", "/v1/health", Body::None)
    }

    /// `GET /v1/ready`: components loaded, and the HSM reachable when one is configured.
    ///
    /// # Errors
    /// As [`Client::health`]; a configured HSM that does not answer is `not-ready` (503).
    pub fn ready(&self) -> Result<Ready, Error> {
        self.call("GET", "/v1/ready", Body::None)
    }

    /// `GET /v1/providers`.
    ///
    /// # Errors
    /// As [`Client::health`].
    pub fn providers(&self) -> Result<Vec<ProviderInfo>, Error> {
        self.call("GET", "/v1/providers", Body::None)
    }

    /// Streams `data` to the server's hash (never buffered whole on either side).
    ///
    /// # Errors
    /// The server cannot be reached or refuses (unknown algorithm).
    pub fn hash(&self, algorithm: &str, data: &mut dyn Read) -> Result<HashResponse, Error> {
        let path = format!("/v1/hash?alg={}", percent(algorithm));
        self.call("POST", &path, Body::Stream(data))
    }

    /// Verifies a signature over data or a digest, with a public key or a trust anchor's key id.
    ///
    /// # Errors
    /// Bad input; a signature that does not verify is `valid: false`, not an error.
    pub fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, Error> {
        self.post("/v1/verify", request)
    }

    /// Signs data or a digest with a key the server holds (reference, profile or key id).
    ///
    /// # Errors
    /// Denied (403, also for a key that does not exist), bad input, or a provider fault.
    pub fn sign(&self, request: &SignRequest) -> Result<SignResponse, Error> {
        self.post("/v1/sign", request)
    }

    /// Signs `data`, streamed to the server (which hashes it as it arrives, and audits the
    /// SHA-256 of exactly these bytes): any size, never buffered whole on either side.
    ///
    /// # Errors
    /// As [`Client::sign`].
    pub fn sign_stream(&self, request: &SignQuery, data: &mut dyn Read) -> Result<SignResponse, Error> {
        let fields = [
            ("key", &request.key),
            ("profile", &request.profile),
            ("key_id", &request.key_id),
            ("algorithm", &request.algorithm),
            ("signature_format", &request.signature_format),
        ];
        let query: Vec<String> =
            fields.iter().filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={}", percent(v)))).collect();
        self.call("POST", &format!("/v1/sign/stream?{}", query.join("&")), Body::Stream(data))
    }

    /// Signs a payload as a DSSE envelope with every key, profile and key id at once.
    ///
    /// # Errors
    /// As [`Client::sign`].
    pub fn dsse_sign(&self, request: &DsseSignRequest) -> Result<DsseSignResponse, Error> {
        self.post("/v1/dsse/sign", request)
    }

    /// Signs a payload as a JWS (compact, flattened, or general with several signers).
    ///
    /// # Errors
    /// As [`Client::sign`].
    pub fn jws_sign(&self, request: &JwsSignRequest) -> Result<JwsSignResponse, Error> {
        self.post("/v1/jws/sign", request)
    }

    /// Verifies a JWS against the keys sent, or the server's trust anchors.
    ///
    /// # Errors
    /// Bad input; a JWS that does not verify is `valid: false`, not an error.
    pub fn jws_verify(&self, request: &JwsVerifyRequest) -> Result<JwsVerifyResponse, Error> {
        self.post("/v1/jws/verify", request)
    }

    /// Verifies a JWT: its signature, then its claims (RFC 8725).
    ///
    /// # Errors
    /// Bad input; a JWT that does not verify is `valid: false`, not an error.
    pub fn jwt_verify(&self, request: &JwtVerifyRequest) -> Result<JwtVerifyResponse, Error> {
        self.post("/v1/jwt/verify", request)
    }

    /// Issues a JWT (a compact JWS of the claims, `typ: JWT`).
    ///
    /// # Errors
    /// As [`Client::sign`].
    pub fn jwt_sign(&self, request: &JwtSignRequest) -> Result<JwsSignResponse, Error> {
        self.post("/v1/jwt/sign", request)
    }

    /// Verifies a DSSE envelope against the keys sent, or the server's trust anchors.
    ///
    /// # Errors
    /// Bad input; an envelope that does not verify is `valid: false`, not an error.
    pub fn dsse_verify(&self, request: &DsseVerifyRequest) -> Result<DsseVerifyResponse, Error> {
        self.post("/v1/dsse/verify", request)
    }

    /// Every key on the HSM's tokens (admin).
    ///
    /// # Errors
    /// Denied without an admin rule; no HSM configured.
    pub fn keys_list(&self) -> Result<Vec<KeyListing>, Error> {
        self.call("GET", "/v1/keys", Body::None)
    }

    /// The public key of a held key.
    ///
    /// # Errors
    /// Denied (also for a key that does not exist).
    pub fn key_public(&self, request: &KeyRequest) -> Result<PublicKeyResponse, Error> {
        self.post("/v1/keys/public", request)
    }

    /// The public key of a held key, also as a JWK.
    ///
    /// # Errors
    /// As [`Client::key_public`].
    pub fn key_public_jwk(&self, request: &KeyRequest) -> Result<PublicKeyResponse, Error> {
        self.post("/v1/keys/public?format=jwk", request)
    }

    /// The JWK Set of the profiles the server publishes (`[jose] publish`).
    ///
    /// # Errors
    /// The server cannot read a published key.
    pub fn jwks(&self) -> Result<api::Jwks, Error> {
        self.call("GET", "/v1/jwks", Body::None)
    }

    /// Generates a key under a reference (refused if the HSM already holds the label).
    ///
    /// # Errors
    /// Denied, or the provider refuses.
    pub fn key_generate(&self, request: &KeyRequest) -> Result<PublicKeyResponse, Error> {
        self.post("/v1/keys/generate", request)
    }

    /// Makes the next version of a held key, staged.
    ///
    /// # Errors
    /// Denied, or the provider or key-state file refuses.
    pub fn key_rotate(&self, request: &api::KeyRotateRequest) -> Result<api::KeyVersions, Error> {
        self.post("/v1/keys/rotate", request)
    }

    /// Makes a version current (refused, as `conflict`, while no anchor lists it, unless
    /// `force`).
    ///
    /// # Errors
    /// Denied, no such version, or not anchored.
    pub fn key_promote(&self, request: &api::KeyVersionRequest) -> Result<api::KeyVersions, Error> {
        self.post("/v1/keys/promote", request)
    }

    /// Retires a staged version.
    ///
    /// # Errors
    /// Denied, or the version's state does not allow it.
    pub fn key_retire(&self, request: &api::KeyVersionRequest) -> Result<api::KeyVersions, Error> {
        self.post("/v1/keys/retire", request)
    }

    /// Destroys a version that is not current (`confirm` must be true).
    ///
    /// # Errors
    /// Denied, not confirmed, or the version's state does not allow it.
    pub fn key_destroy(&self, request: &api::KeyVersionRequest) -> Result<api::KeyVersions, Error> {
        self.post("/v1/keys/destroy", request)
    }

    /// A PKCS#10 certificate request signed by a held key.
    ///
    /// # Errors
    /// Denied, a bad subject or SAN, or the key refuses.
    pub fn key_csr(&self, request: &api::KeyCsrRequest) -> Result<api::KeyCsrResponse, Error> {
        self.post("/v1/keys/csr", request)
    }

    /// A key's versions and their states.
    ///
    /// # Errors
    /// Denied, or the key-state file cannot be read.
    pub fn key_versions(&self, request: &api::KeyVersionsRequest) -> Result<api::KeyVersions, Error> {
        self.post("/v1/keys/versions", request)
    }

    /// AES-GCM encryption with a held secret key.
    ///
    /// # Errors
    /// Denied, or the provider refuses.
    pub fn encrypt(&self, request: &EncryptRequest) -> Result<Sealed, Error> {
        self.post("/v1/encrypt", request)
    }

    /// AES-GCM decryption; a wrong key, nonce, AAD or tag is `bad-request`.
    ///
    /// # Errors
    /// Denied, or the ciphertext does not authenticate.
    pub fn decrypt(&self, request: &DecryptRequest) -> Result<Plaintext, Error> {
        self.post("/v1/decrypt", request)
    }

    /// An HSM admin action: `status` (never logs in), `connect` or `disconnect`.
    ///
    /// # Errors
    /// Denied without an admin rule; no HSM configured; the HSM refuses.
    pub fn hsm(&self, action: HsmAction) -> Result<HsmReport, Error> {
        self.call("POST", &format!("/v1/hsm/{}", action.name()), Body::None)
    }

    /// Re-reads the server's config and components and swaps them in (admin).
    ///
    /// # Errors
    /// Denied, or the new set fails its checks (the old one keeps serving).
    pub fn reload(&self) -> Result<Reloaded, Error> {
        self.call("POST", "/v1/reload", Body::None)
    }
}

/// An HSM admin action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HsmAction {
    /// Report every configured token; never logs in.
    Status,
    /// Load the module, find the tokens, log in.
    Connect,
    /// Log out, close the sessions, finalize the module.
    Disconnect,
}

impl HsmAction {
    pub fn name(self) -> &'static str {
        match self {
            HsmAction::Status => "status",
            HsmAction::Connect => "connect",
            HsmAction::Disconnect => "disconnect",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Write};

    use super::*;

    #[test]
    fn responses_parse_with_length_or_chunks() {
        let r = read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"[..]).ok().unwrap();
        assert_eq!((r.status, r.body, r.keep_alive), (200, b"{}".to_vec(), true));
        let raw = b"HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        let r = read_response(&raw[..]).ok().unwrap();
        assert_eq!((r.status, r.body), (403, b"{\"a\":1}".to_vec()));
        let r = read_response(&b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}"[..]).ok().unwrap();
        assert_eq!((r.body, r.keep_alive), (b"{}".to_vec(), false));
        // Endless header lines are refused at the line bound.
        let long = [&b"HTTP/1.1 200 OK\r\nX: "[..], &vec![b'a'; 1 << 20]].concat();
        assert!(read_response(&long[..]).is_err());
        assert!(read_response(&b"garbage\r\n\r\n"[..]).is_err());
        // A hostile server's sizes are refused before anything is allocated for them.
        assert!(read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 1152921504606846976\r\n\r\n"[..]).is_err());
        assert!(read_response(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffff\r\n"[..]).is_err());
        assert_eq!(percent("SHA-256"), "SHA-256");
        assert_eq!(percent("a b&c"), "a%20b%26c");
    }

    /// A server on a fresh socket that answers each request after the delay the test sets,
    /// on one kept-alive connection.
    fn slow_server(delays: Vec<Duration>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || {
            let Ok((s, _)) = listener.accept() else { return };
            let mut r = BufReader::new(s);
            for delay in delays {
                let mut line = String::new();
                let mut length = 0;
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                let _ = r.read_exact(&mut body);
                std::thread::sleep(delay);
                let answer = format!("{{\"status\":\"waited {} ms\"}}", delay.as_millis());
                let _ = write!(r.get_mut(), "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}", answer.len());
            }
        });
        (dir, path)
    }

    #[test]
    fn a_trickling_or_endless_server_is_cut_off_at_the_deadline_and_sizes_are_not_trusted() {
        // Header lines forever, one byte at a time with pauses shorter than any read timeout.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else { return };
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
            for _ in 0..200 {
                if s.write_all(b"X-Slow: y\r\n").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // The deadline (300 ms) comes long before the 100th header line (2 s).
        let c = Client::new(&path).timeout(Duration::from_millis(300));
        let err = c.health().expect_err("cut off");
        assert!(err.to_string().contains("within the client's deadline"), "{err}");
        // A declared length is not allocated up front: a short answer is an error, quickly.
        let r = read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\n{}"[..]);
        assert!(matches!(r, Err(ReadError::Protocol(m)) if m.contains("ends after 2")));
        let many = [&b"HTTP/1.1 200 OK\r\n"[..], &b"A: b\r\n".repeat(200)].concat();
        assert!(read_response(&many[..]).is_err(), "header lines are counted");
    }

    #[test]
    fn a_client_that_requires_an_owner_refuses_any_other() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || while listener.accept().is_ok() {});
        let me = peer_uid(&UnixStream::connect(&path).expect("connect")).expect("peer uid");
        let err = Client::new(&path).require_owner(me.wrapping_add(1)).health().expect_err("refused");
        assert!(err.to_string().contains(&format!("runs as uid {me}")), "{err}");
    }

    #[test]
    fn a_polling_client_gets_the_same_answers_and_stops_polling_while_answers_are_slow() {
        let limit = Duration::from_millis(20);
        let fast = Duration::from_millis(1);
        let slow = Duration::from_millis(60);
        let (_dir, path) = slow_server(vec![fast, slow, slow, fast, fast]);
        let c = Client::new(&path).busy_poll(limit);
        assert_eq!(c.poll_limit(), limit, "polls from the start");
        let waited = |h: Result<Health, Error>| h.expect("an answer").status;
        assert_eq!(waited(c.health()), "waited 1 ms");
        assert_eq!(c.poll_limit(), limit, "a fast answer keeps polling on");
        // An answer slower than the limit: polled for 20 ms, then read asleep; still whole.
        assert_eq!(waited(c.health()), "waited 60 ms");
        assert_eq!(c.poll_limit(), Duration::ZERO, "no polling while answers take longer than the limit");
        assert_eq!(waited(c.health()), "waited 60 ms", "slow, not polled");
        assert_eq!(waited(c.health()), "waited 1 ms", "fast again");
        assert_eq!(c.poll_limit(), limit, "polling resumes once answers are fast");
        let with_body = c.post::<Health>("/v1/verify", &VerifyRequest::default()).expect("with a body");
        assert_eq!(with_body.status, "waited 1 ms");
        // The server is gone: a clear error, not a hang in the poll loop.
        assert!(matches!(c.health(), Err(Error::Io { .. } | Error::Protocol(_))));
        assert_eq!(Client::new(&path).poll_limit(), Duration::ZERO, "off by default");
    }
}
