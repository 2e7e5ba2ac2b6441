//! `cryptohost serve`: a real server process on a real Unix socket, spoken to over HTTP/1.1
//! with nothing but std's UnixStream.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::server::{Server, me};

pub(crate) fn allow_me(ops: &str, keys: &str, profiles: &str) -> String {
    format!(
        "[[service.allow]]\nusers = [\"{}\"]\noperations = [{ops}]\nkeys = [{keys}]\nprofiles = [{profiles}]\n",
        me()
    )
}

#[test]
fn serve_answers_health_providers_hash_verify_and_sign() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let server = Server::start(Some("served"), &allow_me("\"sign\"", "\"sim:demo-*\"", ""));
    let (status, body) = server.request("GET", "/v1/health", None, b"");
    assert_eq!((status, String::from_utf8_lossy(&body).to_string()), (200, r#"{"status":"live"}"#.to_string()));
    let (status, ready) = server.json("GET", "/v1/ready", serde_json::Value::Null);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);
    let (status, providers) = server.json("GET", "/v1/providers", serde_json::Value::Null);
    assert_eq!(status, 200);
    assert_eq!(providers.as_array().unwrap().len(), 3, "{providers}");
    assert_eq!(providers[0]["name"], "native-sha2");
    assert_eq!(providers[1]["origin"]["sha256"], common::digest_of("offline-verification.wasm"));

    // Hash: the body streamed through the provider (3 MiB, larger than one chunk).
    let data = vec![b'z'; 3 << 20];
    let (status, body) = server.request("POST", "/v1/hash?alg=SHA-384", Some("application/octet-stream"), &data);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    use sha2::Digest;
    assert_eq!(v["digest"], hex::encode(sha2::Sha384::digest(&data)));
    assert_eq!(v["provider"]["name"], "native-sha2");

    // Sign with a key a rule allows, then verify through the server and locally.
    let (status, signed) = server.json(
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "sim:demo-a", "algorithm": "ES256", "data": b64.encode(b"release 1.0")}),
    );
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["provider"], "simulation");
    let public = common::run(&server.config, &["keys", "public", "sim:demo-a", "--alg", "ES256"]);
    let public = String::from_utf8(public.stdout).unwrap();
    let verify = |data: &[u8]| {
        server.json(
            "POST",
            "/v1/verify",
            serde_json::json!({"algorithm": "ES256", "public_key": public, "signature": signed["signature"], "data": b64.encode(data)}),
        )
    };
    let (status, ok) = verify(b"release 1.0");
    assert_eq!((status, ok["valid"].clone()), (200, serde_json::json!(true)), "{ok}");
    // A signature that does not verify is an answer, not an error.
    let (status, bad) = verify(b"release 1.1");
    assert_eq!((status, bad["valid"].clone()), (200, serde_json::json!(false)), "{bad}");

    // The audit line names the caller.
    let audit = server.audit();
    let line = audit.iter().find(|l| l["operation"] == "sign").expect("a sign line");
    assert_eq!(line["caller"]["uid"], me());
    // And the code that computed the signed digest: the host's native SHA-2, with its version.
    let by = &line["signed_digest"]["hashed_by"];
    assert_eq!(by["provider"], "native-sha2", "{line}");
    assert!(by["origin"]["native"].as_str().is_some_and(|n| n.contains(env!("CARGO_PKG_VERSION"))), "{line}");
    assert!(line["caller"]["pid"].as_i64().is_some());
    assert_eq!(line["input_sha256"], hex::encode(sha2::Sha256::digest(b"release 1.0")));
    let (status, socket, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(!socket.exists(), "the socket is removed on SIGTERM");
}

#[test]
fn keys_are_denied_unless_a_rule_allows_and_absent_keys_look_the_same() {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(b"x");
    // No seed: a key that was never made does not exist.
    let server = Server::start(None, &allow_me("\"sign\"", "\"sim:team-*\"", "\"release\""));
    let sign = |key: &str| {
        server.json("POST", "/v1/sign", serde_json::json!({"key": key, "algorithm": "ES256", "data": data}))
    };
    let (forbidden_status, forbidden) = sign("sim:other");
    assert_eq!(forbidden_status, 403);
    // Allowed by the rule, but absent: the same status and the same words.
    let (absent_status, absent) = sign("sim:team-nobody");
    assert_eq!((absent_status, &absent), (403, &forbidden), "an absent key must look forbidden");
    // A profile the rule names is allowed; another profile is not.
    let (status, _) = server.json("POST", "/v1/sign", serde_json::json!({"profile": "nope", "data": data}));
    assert_eq!(status, 403);
    // The server never opens a file a client names.
    let (status, body) = server.json(
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "file:/etc/shadow", "algorithm": "ES256", "data": data}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("never opens a file"));
    let (status, body) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "/etc/shadow", "algorithm": "ES256", "data": data}));
    assert_eq!(status, 400, "{body}");
    // Every denial is audited with the caller.
    let denials: Vec<_> = server.audit().into_iter().filter(|l| l["event"] == "denied").collect();
    assert!(denials.len() >= 2, "{denials:?}");
    assert_eq!(denials[0]["caller"]["uid"], me());
    assert!(denials[0]["detail"].as_str().unwrap().contains("sim:other"));
}

#[test]
fn bad_requests_get_json_errors_and_never_take_the_server_down() {
    let server = Server::start(Some("bad"), "max_body_mib = 1\n");
    let (status, body) = server.request("POST", "/v1/verify", Some("application/json"), b"{not json");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("errors are JSON");
    assert_eq!(v["error"]["kind"], "bad-request");
    let (status, body) = server.request("POST", "/v1/verify", Some("text/plain"), b"{}");
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    let big = format!("{{\"algorithm\":\"ES256\",\"public_key\":\"{}\"}}", "A".repeat(2 << 20));
    let (status, body) = server.request("POST", "/v1/verify", Some("application/json"), big.as_bytes());
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let (status, v) = server.json(
        "POST",
        "/v1/verify",
        serde_json::json!({"algorithm": "HS256", "public_key": "x", "signature": "AA", "data": "AA"}),
    );
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("unknown signature algorithm"), "{v}");
    let (status, _) = server.request("POST", "/v1/hash?alg=MD5", Some("application/octet-stream"), b"abc");
    assert_eq!(status, 400);
    // A client that sends half a body and goes away.
    {
        let mut s = UnixStream::connect(&server.socket).unwrap();
        s.write_all(b"POST /v1/hash?alg=SHA-256 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc").unwrap();
    }
    let (status, _) = server.request("GET", "/v1/health", None, b"");
    assert_eq!(status, 200, "still serving: {}", server.log());
}

#[test]
fn beyond_the_concurrency_limit_requests_get_503_not_a_queue() {
    let server = Server::start(Some("busy"), "max_concurrent = 1\n");
    // The first request holds the only slot while it waits for the rest of its body.
    let mut slow = UnixStream::connect(&server.socket).unwrap();
    slow.write_all(b"POST /v1/hash?alg=SHA-256 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut raw = Vec::new();
    let mut s = UnixStream::connect(&server.socket).unwrap();
    s.write_all(b"GET /v1/providers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    // Finishing the first request frees the slot.
    slow.write_all(b"defghij").unwrap();
    let mut first = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    let n = slow.read(&mut buf).unwrap();
    first.extend_from_slice(&buf[..n]);
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first));
    drop(slow);
    let (status, _) = server.request("GET", "/v1/health", None, b"");
    assert_eq!(status, 200);
}

#[test]
fn the_socket_is_private_a_live_one_is_never_taken_and_a_stale_one_is_replaced() {
    let server = Server::start(Some("sock"), "");
    let meta = fs::symlink_metadata(&server.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // A second server on the same socket refuses to start.
    let out =
        Command::new(common::binary()).args(["--config", server.config.to_str().unwrap(), "serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another server is listening"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // kill -9 leaves the socket file behind: stale, nothing listening. A new server takes it.
    let mut server = server;
    let _ = Command::new("kill").args(["-9", &server.child.id().to_string()]).status();
    let _ = server.child.wait();
    assert!(server.socket.exists());
    let again = Server::start_with(server.root.clone(), server.config.clone(), None);
    let (status, _) = again.request("GET", "/v1/health", None, b"");
    assert_eq!(status, 200);
    drop(again);
    // A regular file where the socket should be is never replaced.
    let _ = fs::remove_file(&server.socket);
    fs::write(&server.socket, b"not a socket").unwrap();
    let out =
        Command::new(common::binary()).args(["--config", server.config.to_str().unwrap(), "serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&server.socket).unwrap(), b"not a socket");
}

#[test]
fn the_openapi_document_is_checked_in_and_served() {
    let out = Command::new(common::binary()).args(["serve", "--openapi"]).output().unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let checked_in = fs::read_to_string(common::repo_root().join("docs/openapi.json")).expect("docs/openapi.json");
    assert_eq!(generated.trim(), checked_in.trim(), "docs/openapi.json is stale: run `just openapi`");
    let server = Server::start(Some("doc"), "");
    let (status, body) = server.request("GET", "/v1/openapi.json", None, b"");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap().trim(), checked_in.trim());
}

#[test]
fn dsse_keys_and_aes_gcm_through_the_server_under_the_rules() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let rules = allow_me("\"sign\", \"encrypt\", \"decrypt\"", "\"sim:team-*\"", "\"release\"");
    let server = Server::start(Some("ops"), &rules);
    // DSSE: a profile and a key, one envelope; verified through the server with both keys.
    let (status, signed) = server.json(
        "POST",
        "/v1/dsse/sign",
        serde_json::json!({"payload_type": "application/vnd.in-toto+json", "payload": b64.encode(b"{\"_type\":\"x\"}"),
                           "profiles": ["release"], "keys": [{"key": "sim:team-a", "algorithm": "ES384"}]}),
    );
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["envelope"]["signatures"].as_array().unwrap().len(), 2);
    let public = |key: &str, alg: &str| {
        let (status, v) = server.json("POST", "/v1/keys/public", serde_json::json!({"key": key, "algorithm": alg}));
        assert_eq!(status, 200, "{v}");
        v["public_key"].as_str().unwrap().to_string()
    };
    let team = public("sim:team-a", "ES384");
    // The profile's key is not named by a key rule: its public key comes from the CLI.
    let release =
        String::from_utf8(common::run(&server.config, &["keys", "public", "sim:release", "--alg", "ES256"]).stdout)
            .unwrap();
    let verify = |keys: serde_json::Value, threshold: usize| {
        server.json(
            "POST",
            "/v1/dsse/verify",
            serde_json::json!({"envelope": signed["envelope"], "public_keys": keys, "threshold": threshold}),
        )
    };
    let (status, v) = verify(serde_json::json!([{"public_key": team}, {"public_key": release}]), 2);
    assert_eq!((status, v["valid"].clone()), (200, serde_json::json!(true)), "{v}");
    assert_eq!(v["payload"], b64.encode(b"{\"_type\":\"x\"}"));
    // One key twice is still one signer.
    let (_, v) = verify(serde_json::json!([{"public_key": team}, {"public_key": team}]), 2);
    assert_eq!(v["valid"], false, "{v}");
    // A key outside the rule: 403, and nothing signed.
    let (status, _) = server.json(
        "POST",
        "/v1/dsse/sign",
        serde_json::json!({"payload_type": "t", "payload": "AA==", "keys": [{"key": "sim:other", "algorithm": "ES256"}]}),
    );
    assert_eq!(status, 403);
    let (status, _) =
        server.json("POST", "/v1/keys/public", serde_json::json!({"key": "sim:other", "algorithm": "ES256"}));
    assert_eq!(status, 403);

    // AES-GCM round trip with a held secret; a wrong AAD is bad input, not a crash.
    let (status, sealed) = server.json(
        "POST",
        "/v1/encrypt",
        serde_json::json!({"key": "sim:team-vault", "plaintext": b64.encode(b"secret"), "aad": b64.encode(b"ctx")}),
    );
    assert_eq!(status, 200, "{sealed}");
    let decrypt = |aad: &[u8]| {
        server.json(
            "POST",
            "/v1/decrypt",
            serde_json::json!({"key": "sim:team-vault", "nonce": sealed["nonce"], "ciphertext": sealed["ciphertext"], "aad": b64.encode(aad)}),
        )
    };
    let (status, plain) = decrypt(b"ctx");
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["plaintext"], b64.encode(b"secret"));
    let (status, _) = decrypt(b"other");
    assert_eq!(status, 400);
    // Admin needs an admin rule; this caller has none.
    let (status, _) = server.json("GET", "/v1/keys", serde_json::Value::Null);
    assert_eq!(status, 403);
    let (status, _) = server.request("POST", "/v1/hsm/status", None, b"");
    assert_eq!(status, 403);
    // Every key use is audited with the caller: 2 DSSE signatures, encrypt, 2 decrypts.
    let audit = server.audit();
    let uses: Vec<_> = audit.iter().filter(|l| l["operation"].is_string()).collect();
    assert!(uses.iter().filter(|l| l["operation"] == "sign").count() >= 2);
    assert!(uses.iter().any(|l| l["operation"] == "encrypt" && l["caller"]["uid"] == me()));
    assert!(audit.iter().filter(|l| l["event"] == "denied").count() >= 4);
}

#[test]
fn reload_swaps_the_whole_set_refuses_a_bad_one_and_never_drops_a_request() {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(b"x");
    let server = Server::start(Some("reload"), "");
    let sign = || {
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:demo-a", "algorithm": "ES256", "data": data})).0
    };
    assert_eq!(sign(), 403, "no rule yet");

    // Clients keep hashing while the set is swapped under them.
    let socket = server.socket.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let load = std::thread::spawn(move || {
        let mut served = 0u32;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let (status, body) = crate::server::http(&socket, "POST", "/v1/hash?alg=SHA-256", None, b"abc");
            assert_eq!(status, 200, "a request failed during reload: {}", String::from_utf8_lossy(&body));
            served += 1;
        }
        served
    });

    // A new rule arrives with SIGHUP.
    let text = fs::read_to_string(&server.config).unwrap() + &allow_me("\"sign\", \"admin\"", "\"sim:demo-*\"", "");
    fs::write(&server.config, text).unwrap();
    assert!(Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap().success());
    let started = std::time::Instant::now();
    while sign() != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "SIGHUP did not reload: {}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // A reload over the socket (admin) with a tampered pin is refused; the old set serves on.
    let good = fs::read_to_string(&server.config).unwrap();
    let digest = common::digest_of("offline-verification.wasm");
    fs::write(&server.config, good.replace(&digest, &"0".repeat(64))).unwrap();
    let (status, v) = server.json("POST", "/v1/reload", serde_json::Value::Null);
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("does not match its pin"), "{v}");
    assert_eq!(sign(), 200, "the previous set keeps serving");
    // Put it right, reload again: accepted.
    fs::write(&server.config, &good).unwrap();
    let (status, v) = server.json("POST", "/v1/reload", serde_json::Value::Null);
    assert_eq!(status, 200, "{v}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served = load.join().expect("no request failed");
    assert!(served > 0);
    let reloads: Vec<_> = server.audit().into_iter().filter(|l| l["event"] == "reload").collect();
    assert_eq!(reloads.len(), 3, "{reloads:?}");
    assert!(reloads[1]["detail"].as_str().unwrap().starts_with("refused"), "{reloads:?}");
    assert_eq!(reloads[2]["caller"]["uid"], me());
}

/// Runs the CLI as a client of `socket`, with a config path that does not exist: client mode
/// needs no config, no components and no PIN.
#[test]
fn systemd_readiness_reload_and_stop_are_notified() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let config = crate::server::config(dir.path(), Some("sd"), "");
    let mut child = Command::new(common::binary())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("NOTIFY_SOCKET", &notify)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let next = || {
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert_eq!(next(), "READY=1", "ready once every component is loaded");
    // Ready means serving.
    let (status, _) = crate::server::http(&dir.path().join("s.sock"), "GET", "/v1/health", None, b"");
    assert_eq!(status, 200);
    Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(next(), "STOPPING=1");
    assert!(child.wait().unwrap().success());
}

#[test]
fn socket_activation_serves_on_the_socket_systemd_passes() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::server::config(dir.path(), Some("act"), "");
    // systemd's own tool: it owns the socket and starts the server with LISTEN_FDS=1.
    let socket = dir.path().join("activated.sock");
    let mut activator = Command::new("systemd-socket-activate")
        .args(["-l", socket.to_str().unwrap(), "--"])
        .arg(common::binary())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = crate::server::http(&socket, "GET", "/v1/providers", None, b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The server did not bind its own configured socket: it used the one it was given.
    assert!(!dir.path().join("s.sock").exists());
    let _ = activator.kill();
    let _ = activator.wait();
}

#[test]
fn kill_9_mid_stream_leaves_an_audit_line_for_every_signature_received() {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(b"x");
    let server = Server::start(Some("crash"), &allow_me("\"sign\"", "\"sim:demo-*\"", ""));
    let socket = server.socket.clone();
    let signer = std::thread::spawn(move || {
        let mut received = 0usize;
        loop {
            let body = serde_json::json!({"key": "sim:demo-a", "algorithm": "ES256", "data": data});
            // Once the server is gone, connecting fails: that ends the stream.
            if UnixStream::connect(&socket).is_err() {
                return received;
            }
            let result = std::panic::catch_unwind(|| {
                crate::server::http(
                    &socket,
                    "POST",
                    "/v1/sign",
                    Some("application/json"),
                    &serde_json::to_vec(&body).unwrap(),
                )
            });
            match result {
                Ok((200, _)) => received += 1,
                _ => return received,
            }
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    let mut server = server;
    Command::new("kill").args(["-9", &server.child.id().to_string()]).status().unwrap();
    let _ = server.child.wait();
    let received = signer.join().unwrap();
    assert!(received > 0, "no signature before the kill");
    // Every line parses (server.audit() panics otherwise) and every signature a client got has
    // its line: the line is synced before the answer is sent.
    let lines = server.audit();
    let signed = lines.iter().filter(|l| l["operation"] == "sign" && l["outcome"] == "ok").count();
    assert!(signed >= received, "{signed} audit lines, {received} signatures received");
}

#[test]
fn a_client_that_stalls_its_body_is_timed_out_and_frees_its_slot() {
    let server = Server::start(Some("stall"), "request_timeout_ms = 300\nmax_concurrent = 1\n");
    let mut s = UnixStream::connect(&server.socket).unwrap();
    s.write_all(b"POST /v1/hash?alg=SHA-256 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("an answer, not a hang");
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("request_timeout_ms"), "{text}");
    // The only slot is free again.
    let (status, _) = server.request("GET", "/v1/health", None, b"");
    assert_eq!(status, 200);
}

#[test]
fn resident_memory_after_20000_requests_is_within_10_percent_of_after_2000() {
    use base64::Engine as _;
    let server = Server::start(Some("rss"), "");
    let public =
        String::from_utf8(common::run(&server.config, &["keys", "public", "sim:rss", "--alg", "ES256"]).stdout)
            .unwrap();
    let sig = common::run(
        &server.config,
        &["sign", "--alg", "ES256", "--key", "sim:rss", common::data("sha2/README.md").to_str().unwrap()],
    );
    let sig = String::from_utf8(sig.stdout).unwrap().trim().to_string();
    let data = base64::engine::general_purpose::STANDARD.encode(fs::read(common::data("sha2/README.md")).unwrap());
    let rss = |pid: u32| -> u64 {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .unwrap()
    };
    let run = |n: usize| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let socket = server.socket.clone();
                let body = serde_json::to_vec(
                    &serde_json::json!({"algorithm": "ES256", "public_key": public, "signature": sig, "data": data}),
                )
                .unwrap();
                std::thread::spawn(move || {
                    for i in 0..n / 4 {
                        let (status, _) = if (t + i) % 2 == 0 {
                            crate::server::http(&socket, "POST", "/v1/verify", Some("application/json"), &body)
                        } else {
                            crate::server::http(&socket, "POST", "/v1/hash?alg=SHA-256", None, b"some bytes to hash")
                        };
                        assert_eq!(status, 200);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    };
    run(2_000);
    let after_2000 = rss(server.child.id());
    run(18_000);
    let after_20000 = rss(server.child.id());
    eprintln!("resident memory: {after_2000} kB after 2,000 requests, {after_20000} kB after 20,000");
    assert!(
        after_20000 * 10 <= after_2000 * 11,
        "resident memory grew from {after_2000} kB after 2,000 requests to {after_20000} kB after 20,000"
    );
}

#[test]
fn a_connection_that_never_sends_a_whole_request_head_is_closed() {
    let server = Server::start(Some("slowloris"), "header_timeout_ms = 300\n");
    // Half a request head, then silence.
    let mut half = UnixStream::connect(&server.socket).unwrap();
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Nothing at all.
    let mut silent = UnixStream::connect(&server.socket).unwrap();
    // A kept-alive connection that answered one request and then sits idle.
    let mut idle = UnixStream::connect(&server.socket).unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut first = [0u8; 1024];
    let n = idle.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    for s in [&mut half, &mut silent, &mut idle] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 1024];
        // The server closes it (EOF, or an error answer then EOF), never waits forever.
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the connection was left open: {e}"),
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    let (status, _) = server.request("GET", "/v1/health", None, b"");
    assert_eq!(status, 200);
}
