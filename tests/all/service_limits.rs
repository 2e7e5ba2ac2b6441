//! The server's own resources under a caller who hoards them: descriptors (connections held
//! per uid, a flood of the metrics port), request places shared fairly across uids, the memory
//! request bodies may hold, and the socket's directory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::server::Server;

/// Sends a request on `s` and reads until the server closes: its answer, or nothing when the
/// server closed the connection without one.
fn ask(mut s: impl Read + Write) -> String {
    let _ = s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

/// A connection the server has accepted and answers, kept open (keep-alive): it holds one of
/// its uid's places until dropped.
fn held_connection(socket: &std::path::Path) -> Option<UnixStream> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    // The answer's head and its 17-byte body ({"status":"live"}).
    while !raw.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        raw.push(byte[0]);
    }
    let mut body = [0u8; 17];
    s.read_exact(&mut body).ok()?;
    raw.starts_with(b"HTTP/1.1 200").then_some(s)
}

#[test]
fn one_uid_holding_connections_or_a_metrics_flood_cannot_spend_every_descriptor() {
    let server = Server::start(Some("fds"), "max_connections_per_uid = 8\nmetrics_listen = \"127.0.0.1:0\"\n");
    let addr = server.metrics_addr();
    // Both floods at once: this uid holds its 8 places with connections the server has answered
    // and keeps open, and 40 connections sit idle on the metrics port. (A place the server has
    // not yet given back, such as the start-up probe's, is waited out: no clock involved.)
    let mut held = Vec::new();
    for _ in 0..1000 {
        if held.len() == 8 {
            break;
        }
        match held_connection(&server.socket) {
            Some(c) => held.push(c),
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert_eq!(held.len(), 8, "8 connections held");
    let flood: Vec<std::net::TcpStream> = (0..40).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    // A 9th connection of the same uid is closed at once, without an answer.
    let ninth = UnixStream::connect(&server.socket).unwrap();
    ninth.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(ask(ninth), "", "closed without an answer");
    // The held connections are served on.
    let one = held.pop().unwrap();
    assert!(ask(one).starts_with("HTTP/1.1 200"), "a held connection is served");
    // With places free again, new connections and a scrape are served (once the server has
    // seen the old ones close).
    drop(held);
    drop(flood);
    // Retried with a pause between attempts (a backoff, not a timing assumption).
    let served = |connect: &dyn Fn() -> Option<String>| {
        (0..3000).find_map(|_| {
            let answer = connect().filter(|a| !a.is_empty());
            if answer.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            answer
        })
    };
    let socket = served(&|| UnixStream::connect(&server.socket).ok().map(ask)).expect("served again");
    assert!(socket.starts_with("HTTP/1.1 200"), "{socket}");
    let scraped = served(&|| std::net::TcpStream::connect(&addr).ok().map(ask)).expect("scraped again");
    assert!(scraped.starts_with("HTTP/1.1 "), "{scraped}");
}

#[test]
fn the_socket_is_never_made_in_a_directory_others_can_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::server::config(dir.path(), None, "");
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let serve = |socket: &std::path::Path| {
        Command::new(common::binary())
            .args(["--config", config.to_str().unwrap(), "serve", "--listen"])
            .arg(format!("unix:{}", socket.display()))
            .output()
            .unwrap()
    };
    // Anyone could swap the socket for a link there between bind and chgrp: refused.
    let out = serve(&open.join("s.sock"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("writable by group or others"), "{out:?}");
    assert!(!open.join("s.sock").exists(), "nothing bound");
    // A sticky directory (like /tmp) is fine: others cannot rename or remove our entries.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    let socket = open.join("s.sock");
    let mut child = Command::new(common::binary())
        .args(["--config", config.to_str().unwrap(), "serve", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..3000 {
        if UnixStream::connect(&socket).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "served from a sticky directory");
}

/// A metric's value from the metrics port.
fn metric(addr: &str, name: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in the metrics: {text}"))
}

/// Waits (on the server's own count, not a clock) until `name` reads `want`.
fn wait_for_metric(addr: &str, name: &str, want: u64) {
    for _ in 0..6000 {
        if metric(addr, name) == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{name} never reached {want} (now {})", metric(addr, name));
}

/// A request that is admitted and then waits for the rest of its body: it holds a place.
fn slow_request(socket: &std::path::Path) -> UnixStream {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(b"POST /v1/hash?alg=SHA-256 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    s
}

/// The status line and body of the answer on `s`.
fn answer_of(mut s: UnixStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// A server the test's unprivileged users can reach: the socket's directory 0755, the socket
/// 0660 root:nogroup, and a copy of the binary they may run.
fn shared_server(extra: &str) -> (Server, crate::server::ForOthers) {
    let server =
        Server::start(Some("fair"), &format!("socket_group = \"nogroup\"\nmetrics_listen = \"127.0.0.1:0\"\n{extra}"));
    fs::set_permissions(&server.root, fs::Permissions::from_mode(0o755)).unwrap();
    (server, crate::server::for_other_users())
}

#[test]
fn two_uids_filling_the_server_never_lock_out_a_third() {
    if crate::server::me() != 0 {
        eprintln!("skipped: needs root to act as three uids");
        return;
    }
    // Without the reserve, max_per_uid = max_concurrent lets two uids hold every place.
    let (server, others) = shared_server("max_concurrent = 8\nmax_per_uid = 8\nrequest_timeout_ms = 600000\n");
    let addr = server.metrics_addr();
    wait_for_metric(&addr, "cryptohost_requests_in_flight", 0);
    // uid 0 takes four places.
    let mine: Vec<UnixStream> = (0..4).map(|_| slow_request(&server.socket)).collect();
    wait_for_metric(&addr, "cryptohost_requests_in_flight", 4);
    // nobody asks for four more: three are admitted, the fourth finds the last place kept.
    let perl = "use IO::Socket::UNIX; $| = 1; my @s; for (1..4) { my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) \
                or die qq(connect: $!); print $s qq(POST /v1/hash?alg=SHA-256 HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 10\\r\\n\\r\\nabc); \
                $s->flush; push @s, $s } print qq(held\\n); <STDIN>;";
    let mut nobody = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "/usr/bin/perl", "-e", perl])
        .arg(&server.socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metric(&addr, "cryptohost_requests_in_flight", 7);
    // uid 0 is turned away from the last place too, saying why.
    let refused = answer_of(slow_request(&server.socket));
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("kept for callers with no request in progress"), "{refused}");
    // A third uid is served at once.
    let started = std::time::Instant::now();
    let out = Command::new("setpriv")
        .args(["--reuid=daemon", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&others.bin)
        .args(["--socket", server.socket.to_str().unwrap(), "hash", "--alg", "SHA-256", others.msg.to_str().unwrap()])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "the third uid: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("the third uid was answered in {} ms while two others filled the server", took.as_millis());
    drop(nobody.stdin.take());
    let _ = nobody.wait();
    for s in mine {
        drop(s);
    }
    wait_for_metric(&addr, "cryptohost_requests_in_flight", 0);
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn request_bodies_in_flight_stay_within_the_memory_budget() {
    const MIB: usize = 1 << 20;
    let (server, _others) =
        shared_server("max_concurrent = 64\nmax_per_uid = 64\nmax_body_mib = 4\nbody_budget_mib = 8\n");
    let addr = server.metrics_addr();
    wait_for_metric(&addr, "cryptohost_requests_in_flight", 0);
    let before = rss(server.child.id());
    // Two bodies of the largest size, all but their last byte sent: the budget is full.
    let head = |n: usize| {
        format!("POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n")
    };
    let full: Vec<UnixStream> = (0..2)
        .map(|_| {
            let mut s = UnixStream::connect(&server.socket).unwrap();
            s.write_all(head(4 * MIB).as_bytes()).unwrap();
            s.write_all(&vec![b' '; 4 * MIB - 1]).unwrap();
            s
        })
        .collect();
    wait_for_metric(&addr, "cryptohost_request_body_bytes_in_flight", 8 * MIB as u64);
    // Twenty more, each trying to send 4 MiB: each is answered 503 before its body is read.
    let more: Vec<_> = (0..20)
        .map(|_| {
            let socket = server.socket.clone();
            let head = head(4 * MIB);
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&vec![b' '; 4 * MIB]);
                answer_of(s)
            })
        })
        .collect();
    for t in more {
        let answer = t.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("body_budget_mib"), "{answer}");
    }
    // A request without a body is still served, and memory grew by about the budget only.
    assert_eq!(server.request("GET", "/v1/health", None, b"").0, 200);
    let grown = rss(server.child.id()).saturating_sub(before);
    assert!(grown < (8 + 32) * MIB as u64, "resident memory grew by {} MiB with an 8 MiB body budget", grown >> 20);
    eprintln!("resident memory grew by {} MiB with the 8 MiB body budget full and 20 more bodies refused", grown >> 20);
    drop(full);
}
