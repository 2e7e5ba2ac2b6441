//! The server's own resources under a caller who hoards them: descriptors (connections held
//! per uid, a flood of the metrics port) and the socket's directory.

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
