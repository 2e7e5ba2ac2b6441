//! The server's metrics: requests by route and status, reloads, providers, pools and key uses,
//! on the socket and on the loopback port; and its JSON logs in the request's span.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::server::{Server, me};

#[test]
fn metrics_count_requests_by_route_and_status_and_reloads() {
    let server = Server::start(Some("metrics"), "");
    for _ in 0..3 {
        assert_eq!(server.request("GET", "/v1/health", None, b"").0, 200);
    }
    let (status, _) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:x", "algorithm": "ES256", "data": "AA=="}));
    assert_eq!(status, 403);
    assert!(Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap().success());
    let started = std::time::Instant::now();
    let text = loop {
        let (status, body) = server.request("GET", "/metrics", None, b"");
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        if text.contains("cryptohost_reloads_total{outcome=\"ok\"} 1") || started.elapsed() > Duration::from_secs(30) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("cryptohost_requests_total{route=\"/v1/health\",status=\"200\"} 3"), "{text}");
    assert!(text.contains("cryptohost_requests_total{route=\"/v1/sign\",status=\"403\"} 1"), "{text}");
    assert!(text.contains("cryptohost_request_seconds_bucket{"), "{text}");
    assert!(text.contains("cryptohost_reloads_total{outcome=\"ok\"} 1"), "{text}");
}

#[test]
fn metrics_name_providers_pools_and_key_uses_and_a_loopback_port_serves_them() {
    use base64::Engine as _;
    let rule = format!(
        "metrics_listen = \"127.0.0.1:0\"\n[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\"]\nkeys = [\"sim:m\"]\n",
        me()
    );
    let server = Server::start_args(Some("metrics2"), &rule, &["-v", "--log-format", "json"]);
    let data = base64::engine::general_purpose::STANDARD.encode(b"metered");
    let (status, signed) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:m", "algorithm": "ES256", "data": data}));
    assert_eq!(status, 200, "{signed}");
    let (_, public) = server.json("POST", "/v1/keys/public", serde_json::json!({"key": "sim:m", "algorithm": "ES256"}));
    let (status, v) = server.json(
        "POST",
        "/v1/verify",
        serde_json::json!({"algorithm": "ES256", "public_key": public["public_key"], "signature": signed["signature"], "data": data}),
    );
    assert_eq!((status, v["valid"].as_bool()), (200, Some(true)), "{v}");
    // The loopback port (bound to an ephemeral port here) serves the metrics and nothing else.
    let addr = server.metrics_addr();
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw
    };
    let text = get("/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for want in [
        "cryptohost_provider_calls_total{provider=\"offline-verification\",capability=\"verification\",algorithm=\"ES256\",outcome=\"ok\"} 1",
        "cryptohost_key_uses_total{operation=\"sign\",provider=\"simulation\",algorithm=\"ES256\",outcome=\"ok\"} 1",
        "cryptohost_audit_write_failures_total 0",
        "cryptohost_pool_instances{provider=\"offline-verification\"} 1",
        "cryptohost_pool_waits_total{provider=\"simulation\"} 0",
        "cryptohost_guest_traps_total{provider=\"simulation\"} 0",
        "cryptohost_requests_total{route=\"/v1/sign\",status=\"200\"} 1",
    ] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }
    assert!(get("/v1/providers").starts_with("HTTP/1.1 404"), "only /metrics on the TCP port");
    // JSON log lines, one per answer, inside the request's span (its id is the answer's
    // x-request-id).
    let mut s = UnixStream::connect(&server.socket).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let id: u64 = raw
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-request-id: ").map(str::to_string))
        .expect("x-request-id")
        .trim()
        .parse()
        .unwrap();
    let started = std::time::Instant::now();
    let line = loop {
        let found = server
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["span"]["id"] == id && l["fields"]["message"] == "answered");
        if let Some(l) = found {
            break l;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no JSON line for request {id}: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(line["span"]["route"], "/v1/health", "{line}");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert_eq!(line["span"]["uid"], me(), "{line}");
    // The library's own lines arrive as JSON too.
    assert!(server.log().lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{}", server.log());
    // Metrics go to loopback only.
    let dir = tempfile::tempdir().unwrap();
    let config = crate::server::config(dir.path(), None, "metrics_listen = \"0.0.0.0:9464\"\n");
    let out = common::run(&config, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a loopback address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
