//! A blocking client for `cryptohost serve`: HTTP/1.1 over the server's Unix socket, JSON in
//! and out, one kept-alive connection per client (a stale one is replaced transparently). Other programs use it to hash, verify and sign
//! without the HSM PIN, the components or a crypto library of their own.
//!
//! ```no_run
//! let c = cryptohost_client::Client::new("/run/cryptohost/cryptohost.sock");
//! let digest = c.hash("SHA-256", &mut std::io::Cursor::new(b"abc"))?;
//! # Ok::<(), cryptohost_client::Error>(())
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Largest response the client reads (a DSSE envelope of the biggest payload, in JSON).
const MAX_RESPONSE: u64 = 256 << 20;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached or the connection broke.
    #[error("cryptohost server at {socket}: {source}")]
    Io { socket: String, source: io::Error },
    /// The server answered with an error: its status, kind and message.
    #[error("{message} (server: HTTP {status}, {kind})")]
    Server { status: u16, kind: String, message: String },
    /// The answer was not what the protocol says.
    #[error("cryptohost server: malformed response: {0}")]
    Protocol(String),
}

/// Longest header or chunk-size line the client reads from a server.
const MAX_LINE: u64 = 64 << 10;

/// A connection target: the server's socket, and the connection kept alive to it (a clone
/// starts its own).
#[derive(Debug)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    busy_poll: Duration,
    /// How long the last answer took, in microseconds (for [`Client::busy_poll`]).
    last_answer: AtomicU64,
    idle: Mutex<Option<BufReader<UnixStream>>>,
}

impl Clone for Client {
    fn clone(&self) -> Client {
        Client {
            socket: self.socket.clone(),
            timeout: self.timeout,
            busy_poll: self.busy_poll,
            last_answer: AtomicU64::new(0),
            idle: Mutex::new(None),
        }
    }
}

/// A body to send: JSON, or a stream sent with chunked transfer encoding.
enum Body<'a> {
    None,
    Json(&'a [u8]),
    Stream(&'a mut dyn Read),
}

impl<'a> Body<'a> {
    /// The same body once more, when it can be sent twice (not a stream).
    fn replay(&self) -> Option<Body<'a>> {
        match self {
            Body::None => Some(Body::None),
            Body::Json(b) => Some(Body::Json(b)),
            Body::Stream(_) => None,
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
        }
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

    fn connect(&self) -> Result<BufReader<UnixStream>, Error> {
        let s = UnixStream::connect(&self.socket).map_err(|e| self.io(e))?;
        s.set_read_timeout(Some(self.timeout)).map_err(|e| self.io(e))?;
        Ok(BufReader::new(s))
    }

    fn call(&self, method: &str, path: &str, body: Body<'_>) -> Result<Value, Error> {
        let started = Instant::now();
        let answered = self.exchange_kept(method, path, body);
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_answer.store(took, Ordering::Relaxed);
        let (status, body) = answered?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("HTTP {status}, body is not JSON: {e}")))?;
        if status >= 300 {
            let field = |k: &str| value["error"][k].as_str().unwrap_or("?").to_string();
            return Err(Error::Server { status, kind: field("kind"), message: field("message") });
        }
        Ok(value)
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
            (Some(mut conn), Some(first)) => match exchange(&mut conn, method, path, first, self.poll_limit()) {
                Ok(Some(answer)) => self.keep(conn, answer),
                Ok(None) | Err(ReadError::Io(_)) => self.fresh(method, path, body)?,
                Err(ReadError::Protocol(m)) => return Err(Error::Protocol(m)),
            },
            _ => self.fresh(method, path, body)?,
        })
    }

    /// One exchange on a new connection.
    fn fresh(&self, method: &str, path: &str, body: Body<'_>) -> Result<(u16, Vec<u8>), Error> {
        let mut conn = self.connect()?;
        match exchange(&mut conn, method, path, body, self.poll_limit()) {
            Ok(Some(answer)) => Ok(self.keep(conn, answer)),
            Ok(None) => Err(Error::Protocol("the server closed the connection without answering".into())),
            Err(ReadError::Io(e)) => Err(self.io(e)),
            Err(ReadError::Protocol(m)) => Err(Error::Protocol(m)),
        }
    }

    /// Keeps the connection for the next call unless the server said it closes it.
    fn keep(&self, conn: BufReader<UnixStream>, answer: Response) -> (u16, Vec<u8>) {
        if answer.keep_alive && conn.buffer().is_empty() {
            *self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn);
        }
        (answer.status, answer.body)
    }

    fn post(&self, path: &str, request: Value) -> Result<Value, Error> {
        if request.is_null() {
            return self.call("POST", path, Body::None);
        }
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        self.call("POST", path, Body::Json(&bytes))
    }

    /// `GET /v1/health`.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn health(&self) -> Result<Value, Error> {
        self.call("GET", "/v1/health", Body::None)
    }

    /// `GET /v1/providers`.
    ///
    /// # Errors
    /// As [`Client::health`].
    pub fn providers(&self) -> Result<Value, Error> {
        self.call("GET", "/v1/providers", Body::None)
    }

    /// Streams `data` to the server's hash (never buffered whole on either side); returns the
    /// whole response (`algorithm`, `digest` in hex, `provider`).
    ///
    /// # Errors
    /// The server cannot be reached or refuses (unknown algorithm).
    pub fn hash(&self, algorithm: &str, data: &mut dyn Read) -> Result<Value, Error> {
        let path = format!("/v1/hash?alg={}", percent(algorithm));
        self.call("POST", &path, Body::Stream(data))
    }

    /// Verifies `signature` over `data` (whole message) or `digest` (hex) with an SPKI PEM key
    /// or the server's trust anchor of a key id.
    ///
    /// # Errors
    /// Bad input; a signature that does not verify is `{"valid": false}`, not an error.
    pub fn verify(&self, request: &VerifyRequest<'_>) -> Result<Value, Error> {
        let mut v = json!({
            "algorithm": request.algorithm,
            "signature": b64(request.signature),
            "signature_format": request.signature_format,
        });
        match request.key {
            PublicKey::Pem(pem) => v["public_key"] = json!(pem),
            PublicKey::AnchorKeyId(id) => v["key_id"] = json!(id),
        }
        put_input(&mut v, request.input);
        self.post("/v1/verify", v)
    }

    /// Signs with a key the server holds (reference or profile).
    ///
    /// # Errors
    /// Denied (403, also for a key that does not exist), bad input, or a provider fault.
    pub fn sign(&self, request: &SignRequest<'_>) -> Result<Value, Error> {
        let mut v = json!({"signature_format": request.signature_format});
        match request.key {
            KeyName::Reference(k) => {
                v["key"] = json!(k);
                v["algorithm"] = json!(request.algorithm);
            }
            KeyName::Profile(p) => v["profile"] = json!(p),
        }
        put_input(&mut v, request.input);
        self.post("/v1/sign", v)
    }

    /// Any `GET` route (e.g. `/v1/keys`, `/v1/ready`).
    ///
    /// # Errors
    /// As the route says.
    pub fn call_get(&self, path: &str) -> Result<Value, Error> {
        self.call("GET", path, Body::None)
    }

    /// Any other route with a JSON body (DSSE, keys, AES-GCM, admin): see the server's OpenAPI
    /// document (`/v1/openapi.json`).
    ///
    /// # Errors
    /// As the route says.
    pub fn post_json(&self, path: &str, request: Value) -> Result<Value, Error> {
        self.post(path, request)
    }
}

/// What is signed or verified: the whole message, or a digest (hex) under the algorithm's hash.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Data(&'a [u8]),
    DigestHex(&'a str),
}

/// A server-side key: a reference the server holds, or a configured profile.
#[derive(Clone, Copy, Debug)]
pub enum KeyName<'a> {
    Reference(&'a str),
    Profile(&'a str),
}

pub struct SignRequest<'a> {
    pub key: KeyName<'a>,
    pub algorithm: &'a str,
    pub input: Input<'a>,
    /// `der` or `p1363`.
    pub signature_format: &'a str,
}

/// The key a signature is verified with: one sent in the request, or one of the server's
/// configured trust anchors, by key id.
#[derive(Clone, Copy, Debug)]
pub enum PublicKey<'a> {
    /// SPKI PEM.
    Pem(&'a str),
    AnchorKeyId(&'a str),
}

pub struct VerifyRequest<'a> {
    pub algorithm: &'a str,
    pub key: PublicKey<'a>,
    pub signature: &'a [u8],
    pub input: Input<'a>,
    pub signature_format: &'a str,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn put_input(v: &mut Value, input: Input<'_>) {
    match input {
        Input::Data(d) => v["data"] = json!(b64(d)),
        Input::DigestHex(h) => v["digest"] = json!(h),
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A whole response.
struct Response {
    status: u16,
    body: Vec<u8>,
    /// The server did not say `Connection: close`.
    keep_alive: bool,
}

/// Sends one request and reads its response; `None` if the connection was closed before the
/// first byte of an answer (a kept connection the server had already closed).
fn exchange(
    conn: &mut BufReader<UnixStream>,
    method: &str,
    path: &str,
    body: Body<'_>,
    busy_poll: Duration,
) -> Result<Option<Response>, ReadError> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: cryptohost\r\n");
    match &body {
        Body::None => head += "Content-Length: 0\r\n",
        Body::Json(b) => head += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()),
        Body::Stream(_) => head += "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n",
    }
    head += "\r\n";
    let s = conn.get_mut();
    let sent = (|| -> io::Result<()> {
        match body {
            Body::None => s.write_all(head.as_bytes())?,
            Body::Json(b) => {
                let mut whole = head.into_bytes();
                whole.extend_from_slice(b);
                s.write_all(&whole)?;
            }
            Body::Stream(r) => {
                s.write_all(head.as_bytes())?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    write!(s, "{n:x}\r\n")?;
                    s.write_all(&buf[..n])?;
                    s.write_all(b"\r\n")?;
                }
                s.write_all(b"0\r\n\r\n")?;
            }
        }
        s.flush()
    })();
    // A server that refused early may close before reading everything; its answer counts.
    if let Err(e) = sent
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(ReadError::Io(e));
    }
    if !busy_poll.is_zero() && conn.buffer().is_empty() {
        poll_for_answer(conn.get_ref(), busy_poll);
    }
    if conn.fill_buf()?.is_empty() {
        return Ok(None);
    }
    read_response(conn).map(Some)
}

/// Returns once the socket has something to read (or is closed, or fails), or `limit` has
/// passed, without sleeping: each round asks the kernel whether a byte is waiting and, if not,
/// lets any other runnable thread on this core go first.
fn poll_for_answer(socket: &UnixStream, limit: Duration) {
    use std::os::fd::AsRawFd;
    let started = Instant::now();
    let mut byte = 0u8;
    loop {
        // SAFETY: a one-byte peek into a live local; the descriptor is borrowed from `socket`,
        // which outlives the call; MSG_PEEK leaves the byte for the read that follows.
        let n =
            unsafe { libc::recv(socket.as_raw_fd(), (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        let waiting = n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
        if !waiting || started.elapsed() >= limit {
            return;
        }
        std::thread::yield_now();
    }
}

enum ReadError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes.
fn read_line(r: &mut impl BufRead, line: &mut String) -> Result<usize, ReadError> {
    line.clear();
    let n = r.by_ref().take(MAX_LINE).read_line(line)?;
    if n as u64 == MAX_LINE && !line.ends_with('\n') {
        return Err(ReadError::Protocol(format!("a line longer than {MAX_LINE} bytes")));
    }
    Ok(n)
}

/// Reads a status line, headers, and a Content-Length or chunked body.
fn read_response(mut r: impl BufRead) -> Result<Response, ReadError> {
    let mut line = String::new();
    read_line(&mut r, &mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ReadError::Protocol(format!("status line {:?}", line.trim_end())))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = true;
    loop {
        if read_line(&mut r, &mut line)? == 0 {
            return Err(ReadError::Protocol("the headers end early".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        } else if lower.starts_with("connection:") && lower.contains("close") {
            keep_alive = false;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(&mut r, &mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| ReadError::Protocol(format!("chunk size {:?}", line.trim())))?;
            if size == 0 {
                break;
            }
            // A declared size is checked before anything is allocated for it.
            if (body.len() as u64).saturating_add(size as u64) > MAX_RESPONSE {
                return Err(ReadError::Protocol(format!("response larger than {MAX_RESPONSE} bytes")));
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(&mut r, &mut line)?;
        }
    } else if let Some(n) = length {
        if n as u64 > MAX_RESPONSE {
            return Err(ReadError::Protocol(format!("Content-Length {n} is over {MAX_RESPONSE} bytes")));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        // No length: the body runs to the end of the connection, which then cannot be kept.
        r.take(MAX_RESPONSE + 1).read_to_end(&mut body)?;
        if body.len() as u64 > MAX_RESPONSE {
            return Err(ReadError::Protocol(format!("response larger than {MAX_RESPONSE} bytes")));
        }
        keep_alive = false;
    }
    Ok(Response { status, body, keep_alive })
}

#[cfg(test)]
mod tests {
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
                let answer = format!("{{\"waited_ms\":{}}}", delay.as_millis());
                let _ = write!(r.get_mut(), "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}", answer.len());
            }
        });
        (dir, path)
    }

    #[test]
    fn a_polling_client_gets_the_same_answers_and_stops_polling_while_answers_are_slow() {
        let limit = Duration::from_millis(20);
        let fast = Duration::from_millis(1);
        let slow = Duration::from_millis(60);
        let (_dir, path) = slow_server(vec![fast, slow, slow, fast, fast]);
        let c = Client::new(&path).busy_poll(limit);
        assert_eq!(c.poll_limit(), limit, "polls from the start");
        assert_eq!(c.health().expect("fast")["waited_ms"], 1);
        assert_eq!(c.poll_limit(), limit, "a fast answer keeps polling on");
        // An answer slower than the limit: polled for 20 ms, then read asleep; still whole.
        assert_eq!(c.health().expect("slow")["waited_ms"], 60);
        assert_eq!(c.poll_limit(), Duration::ZERO, "no polling while answers take longer than the limit");
        assert_eq!(c.health().expect("slow, not polled")["waited_ms"], 60);
        assert_eq!(c.health().expect("fast again")["waited_ms"], 1);
        assert_eq!(c.poll_limit(), limit, "polling resumes once answers are fast");
        assert_eq!(c.post_json("/v1/verify", json!({"a": 1})).expect("with a body")["waited_ms"], 1);
        // The server is gone: a clear error, not a hang in the poll loop.
        assert!(matches!(c.health(), Err(Error::Io { .. } | Error::Protocol(_))));
        assert_eq!(Client::new(&path).poll_limit(), Duration::ZERO, "off by default");
    }
}
