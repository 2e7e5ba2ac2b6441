//! HTTP/1.1 over the server's socket, as little of it as the client needs: one request written
//! (JSON or a chunked stream), one answer read whole under a deadline, every size bounded
//! before anything is allocated for it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Largest response the client reads (a DSSE envelope of the biggest payload, in JSON).
pub(crate) const MAX_RESPONSE: u64 = 256 << 20;

/// Most header lines the client reads in one answer.
pub(crate) const MAX_HEADERS: usize = 100;

/// Longest header or chunk-size line the client reads from a server.
pub(crate) const MAX_LINE: u64 = 64 << 10;

/// A connection whose answer must arrive whole by a deadline, however slowly the server
/// trickles it (a timeout per read alone would wait forever for one byte every 20 s).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: UnixStream,
    pub(crate) deadline: Option<Instant>,
}

fn past_deadline() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no whole answer within the client's deadline")
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = self.deadline else { return self.stream.read(buf) };
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(past_deadline());
        }
        self.stream.set_read_timeout(Some(left))?;
        match self.stream.read(buf) {
            // The read timeout is what is left of the deadline: when it runs out inside a
            // read (EAGAIN on a busy machine, rather than at the next read's start), it is the
            // same deadline, and says so.
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err(past_deadline()),
            other => other,
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// A body to send: JSON, or a stream sent with chunked transfer encoding.
pub(crate) enum Body<'a> {
    None,
    Json(&'a [u8]),
    Stream(&'a mut dyn Read),
}

impl<'a> Body<'a> {
    /// The same body once more, when it can be sent twice (not a stream).
    pub(crate) fn replay(&self) -> Option<Body<'a>> {
        match self {
            Body::None => Some(Body::None),
            Body::Json(b) => Some(Body::Json(b)),
            Body::Stream(_) => None,
        }
    }
}

pub(crate) fn percent(s: &str) -> String {
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
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// The server did not say `Connection: close`.
    pub(crate) keep_alive: bool,
}

/// Sends one request and reads its response; `None` if the connection was closed before the
/// first byte of an answer (a kept connection the server had already closed).
pub(crate) fn exchange(
    conn: &mut BufReader<Conn>,
    method: &str,
    path: &str,
    body: Body<'_>,
    busy_poll: Duration,
    timeout: Duration,
) -> Result<Option<Response>, ReadError> {
    conn.get_mut().deadline = None;
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
    // The answer's deadline runs from here: a long upload is not cut off by it.
    conn.get_mut().deadline = Some(Instant::now() + timeout);
    if !busy_poll.is_zero() && conn.buffer().is_empty() {
        poll_for_answer(&conn.get_ref().stream, busy_poll);
    }
    if conn.fill_buf()?.is_empty() {
        return Ok(None);
    }
    read_response(conn).map(Some)
}

/// The uid of the process on the other end of a Unix socket (SO_PEERCRED).
pub(crate) fn peer_uid(socket: &UnixStream) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are live locals of the sizes given; the descriptor is borrowed
    // from `socket`, which outlives the call.
    let r = unsafe {
        libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &raw mut len)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Returns once the socket has something to read (or is closed, or fails), or `limit` has
/// passed, without sleeping: each round asks the kernel whether a byte is waiting and, if not,
/// lets any other runnable thread on this core go first.
pub(crate) fn poll_for_answer(socket: &UnixStream, limit: Duration) {
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

pub(crate) enum ReadError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes.
pub(crate) fn read_line(r: &mut impl BufRead, line: &mut String) -> Result<usize, ReadError> {
    line.clear();
    let n = r.by_ref().take(MAX_LINE).read_line(line)?;
    if n as u64 == MAX_LINE && !line.ends_with('\n') {
        return Err(ReadError::Protocol(format!("a line longer than {MAX_LINE} bytes")));
    }
    Ok(n)
}

/// Reads a status line, headers, and a Content-Length or chunked body.
pub(crate) fn read_response(mut r: impl BufRead) -> Result<Response, ReadError> {
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
    let mut headers = 0;
    loop {
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(ReadError::Protocol(format!("more than {MAX_HEADERS} header lines")));
        }
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
            // Grown as the bytes arrive, never allocated up front for what is only declared.
            let start = body.len();
            r.by_ref().take(size as u64).read_to_end(&mut body)?;
            if body.len() - start != size {
                return Err(ReadError::Protocol("the answer ends inside a chunk".into()));
            }
            read_line(&mut r, &mut line)?;
        }
    } else if let Some(n) = length {
        if n as u64 > MAX_RESPONSE {
            return Err(ReadError::Protocol(format!("Content-Length {n} is over {MAX_RESPONSE} bytes")));
        }
        r.by_ref().take(n as u64).read_to_end(&mut body)?;
        if body.len() != n {
            return Err(ReadError::Protocol(format!("the answer ends after {} of its {n} bytes", body.len())));
        }
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
