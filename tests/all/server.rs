//! A real `cryptohost serve` process on a real Unix socket, and a minimal HTTP/1.1 client over
//! std's UnixStream (shared by tests/all and tests/hsm).

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, OFFLINE, P};

pub struct Server {
    pub child: Child,
    pub socket: PathBuf,
    pub root: PathBuf,
    pub config: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

pub fn me() -> u32 {
    // The uid this test runs as, from /proc (no libc in the tests).
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// A directory other users can reach (0755), with a copy of the binary they may run and a
/// message they may read: for the tests that act as another uid through setpriv.
pub struct ForOthers {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub msg: PathBuf,
}

pub fn for_other_users() -> ForOthers {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let readable = |p: &Path, mode: u32| fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    readable(dir.path(), 0o755);
    let bin = dir.path().join("cryptohost");
    fs::copy(common::binary(), &bin).unwrap();
    readable(&bin, 0o755);
    let msg = dir.path().join("msg");
    fs::write(&msg, b"hello").unwrap();
    readable(&msg, 0o644);
    ForOthers { dir, bin, msg }
}

/// A config with offline verification and the simulation (`seed` optional), plus `extra`.
pub fn config(dir: &Path, seed: Option<&str>, extra: &str) -> PathBuf {
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let socket = dir.join("s.sock");
    let path = common::write_config(dir, &common::components_dir(), &[OFFLINE, sim], "");
    let settings = seed.map(|s| format!("settings = {{ seed = {s:?} }}\n")).unwrap_or_default();
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("name = \"simulation\"\n", &format!("name = \"simulation\"\nkey_prefix = \"sim\"\n{settings}"));
    let text = format!(
        "{text}\n[profiles.release]\nkey = \"sim:release\"\nalgorithm = \"ES256\"\nkey_id = \"release-key-001\"\n\n[service]\nlisten = \"unix:{}\"\n{extra}",
        socket.display()
    );
    fs::write(&path, text).unwrap();
    path
}

impl Server {
    pub fn start(seed: Option<&str>, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), seed, extra);
        Server::start_with(dir.path().to_path_buf(), config, Some(dir))
    }

    pub fn start_with(root: PathBuf, config: PathBuf, dir: Option<tempfile::TempDir>) -> Server {
        Server::spawn(root, config, dir, &[])
    }

    /// As [`Server::start`], with more arguments for `serve` (`-v`, `--log-format json`).
    pub fn start_args(seed: Option<&str>, extra: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), seed, extra);
        Server::spawn(dir.path().to_path_buf(), config, Some(dir), args)
    }

    fn spawn(root: PathBuf, config: PathBuf, dir: Option<tempfile::TempDir>, args: &[&str]) -> Server {
        let mut command = Command::new(common::binary());
        command.args(["--config", config.to_str().unwrap(), "serve"]).args(args);
        Server::launch(root, config, dir, command)
    }

    /// Starts a server with a command the test built (another working directory, a wrapper
    /// that sets limits), which must end up running `cryptohost --config CONFIG serve`.
    pub fn launch(root: PathBuf, config: PathBuf, dir: Option<tempfile::TempDir>, mut command: Command) -> Server {
        let socket = root.join("s.sock");
        let log = fs::File::create(root.join("serve.log")).unwrap();
        let child = command.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let server = Server { child, socket, root, config, _dir: dir };
        let started = Instant::now();
        while UnixStream::connect(&server.socket).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "server did not start: {}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The loopback address of `[service] metrics_listen`, as the server logs it.
    pub fn metrics_addr(&self) -> String {
        let log = self.log();
        log.split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split("/metrics").next())
            .unwrap_or_else(|| panic!("the metrics address is logged: {log}"))
            .to_string()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("serve.log")).unwrap_or_default()
    }

    pub fn request(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        http(&self.socket, method, path, content_type, body)
    }

    pub fn json(&self, method: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let (status, bytes) = self.request(method, path, Some("application/json"), &serde_json::to_vec(&body).unwrap());
        let v =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, v)
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.root.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every audit line parses"))
            .collect()
    }

    pub fn stop(mut self) -> (std::process::ExitStatus, PathBuf, String) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        (status, self.socket.clone(), self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request, `Connection: close`; returns the status and the (de-chunked) body.
pub fn http(socket: &Path, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head += &format!("Content-Type: {ct}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    // A server that refuses a body early (413) may close before reading all of it.
    if let Err(e) = s.write_all(body) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A server that answered early (413) and closed with our body unread resets the
            // connection; the answer has arrived by then.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = out;
    }
    (status, body)
}
