//! The request layer seen from outside: one answer per operation whichever front end asks, one
//! error schema with one status per class, and the audit line recording what was signed the
//! same way in every mode. Each test here failed before the request layer (dee5d35).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use sha2::Digest;

use crate::common::{self, MISBEHAVING, OFFLINE, client, comparable};
use crate::server::Server;
use crate::service::allow_me;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_sign_audits_the_digest_it_signed_the_same_way_in_every_mode() {
    let server = Server::start(Some("audit"), &allow_me("\"sign\"", "\"sim:*\"", "\"*\""));
    // Data in a request, ES384: the digest signed (SHA-384) and the SHA-256 of the data.
    let data = b"release 2.0";
    let (status, signed) = server.json(
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "sim:a384", "algorithm": "ES384", "data": b64(data)}),
    );
    assert_eq!(status, 200, "{signed}");
    let line = server.audit().pop().expect("a line");
    assert_eq!(line["signed_digest"]["hash"], "SHA-384", "{line}");
    assert_eq!(line["signed_digest"]["hex"], hex::encode(sha2::Sha384::digest(data)));
    assert_eq!(line["input_sha256"], hex::encode(sha2::Sha256::digest(data)));
    // A digest sent by the client: the digest is recorded, and no input hash is made up.
    let digest = sha2::Sha512::digest(data);
    let (status, signed) = server.json(
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "sim:a512", "algorithm": "ES512", "digest": hex::encode(digest)}),
    );
    assert_eq!(status, 200, "{signed}");
    let line = server.audit().pop().expect("a line");
    assert_eq!(line["signed_digest"], serde_json::json!({"hash": "SHA-512", "hex": hex::encode(digest)}), "{line}");
    assert!(line.get("input_sha256").is_none(), "nothing the host did not see: {line}");
    // A digest of the wrong length is refused, not signed.
    let (status, v) = server.json(
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "sim:a512", "algorithm": "ES512", "digest": hex::encode([1u8; 32])}),
    );
    assert_eq!(status, 400, "{v}");
    // A file signed locally and through the server (streamed): the same signature on stdout
    // (RFC 6979), and the same audit line but for its time and caller.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("artifact");
    fs::write(&file, vec![3u8; 300_000]).unwrap();
    let f = file.to_str().unwrap();
    for alg in ["ES256", "ES384", "EdDSA"] {
        let args = ["sign", "--alg", alg, "--key", "sim:modes", f];
        let local = common::run_local(&server.config, &args);
        assert_eq!(local.status.code(), Some(0), "{}", common::stderr(&local));
        let local_line = server.audit().pop().expect("a line");
        let remote = client(&server.socket, &args);
        assert_eq!(remote.status.code(), Some(0), "{}", common::stderr(&remote));
        let remote_line = server.audit().pop().expect("a line");
        if alg != "EdDSA" {
            assert_eq!(common::stdout(&local), common::stdout(&remote), "{alg}: one signature in both modes");
        }
        assert!(remote_line["caller"]["uid"].is_number() && local_line.get("caller").is_none());
        assert_eq!(comparable(local_line), comparable(remote_line), "{alg}: one audit line in both modes");
    }
}

#[test]
fn every_error_is_the_error_schema_with_its_class_status() {
    let server = Server::start(Some("errors"), &allow_me("\"sign\", \"generate\"", "\"sim:*\", \"nope:*\"", "\"*\""));
    let kind = |body: &[u8]| -> String {
        let v: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| panic!("an error body is JSON: {}", String::from_utf8_lossy(body)));
        v["error"]["kind"].as_str().expect("error.kind").to_string()
    };
    let (status, body) = server.request("GET", "/v1/no-such-route", None, b"");
    assert_eq!((status, kind(&body).as_str()), (404, "not-found"));
    let (status, body) = server.request("GET", "/v1/sign", None, b"");
    assert_eq!((status, kind(&body).as_str()), (405, "method-not-allowed"));
    let (status, body) = server.request("POST", "/v1/hash", Some("application/octet-stream"), b"abc");
    assert_eq!((status, kind(&body).as_str()), (400, "bad-request"), "no alg: {}", String::from_utf8_lossy(&body));
    let unknown_field = br#"{"algorithm":"ES256","public_key":"x","signature":"AA","data":"AA","surprise":1}"#;
    let (status, body) = server.request("POST", "/v1/verify", Some("application/json"), unknown_field);
    assert_eq!((status, kind(&body).as_str()), (400, "bad-request"), "{}", String::from_utf8_lossy(&body));
    let (status, body) = server.request("POST", "/v1/verify", Some("text/plain"), b"{}");
    assert_eq!((status, kind(&body).as_str()), (415, "unsupported-media-type"));
    // A key no provider holds is denied on both signing routes alike (dsse/sign said 400).
    let (status, v) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "nope:k", "algorithm": "ES256", "data": "AA"}));
    assert_eq!((status, v["error"]["kind"].as_str()), (403, Some("denied")), "{v}");
    let (status, v) = server.json(
        "POST",
        "/v1/dsse/sign",
        serde_json::json!({"payload_type": "t", "payload": "AA", "keys": [{"key": "nope:k", "algorithm": "ES256"}]}),
    );
    assert_eq!((status, v["error"]["kind"].as_str()), (403, Some("denied")), "{v}");
    // A provider's refusal is the caller's input on both routes.
    let (status, v) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:k", "algorithm": "ML-DSA-65", "data": "AA"}));
    assert_eq!(status, 400, "{v}");
    // Generating names the provider that holds the new key (it answered "").
    let (status, v) =
        server.json("POST", "/v1/keys/generate", serde_json::json!({"key": "sim:fresh", "algorithm": "ES256"}));
    assert_eq!((status, v["provider"].as_str()), (200, Some("simulation")), "{v}");
    assert!(v["public_key"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
}

/// A config in `root` with the offline provider, the misbehaving one above it (it takes an
/// imported ES256 key and traps), and two profiles whose keys are files relative to the config.
fn file_profiles(root: &Path) -> std::path::PathBuf {
    fs::create_dir(root.join("keys")).unwrap();
    for (name, curve) in [("es256.pem", "P-256"), ("es384.pem", "P-384")] {
        let out = root.join("keys").join(name);
        common::openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            out.to_str().unwrap(),
        ]);
    }
    let path = common::write_config(root, &common::components_dir(), &[OFFLINE, MISBEHAVING], "");
    let text = fs::read_to_string(&path).unwrap();
    let text = format!(
        "{text}\n[profiles.good]\nkey = \"file:keys/es384.pem\"\nalgorithm = \"ES384\"\n\n\
         [profiles.faulty]\nkey = \"keys/es256.pem\"\nalgorithm = \"ES256\"\n\n[service]\nlisten = \"unix:{}\"\n{}",
        root.join("s.sock").display(),
        allow_me("\"sign\"", "", "\"*\"")
    );
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn profile_key_files_are_relative_to_the_config_and_a_provider_fault_is_502_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let config = file_profiles(&root);
    // Started from / as systemd does: the profile's file is found beside the config.
    let mut command = Command::new(common::binary());
    command.current_dir("/").args(["--config", config.to_str().unwrap(), "serve"]);
    let server = Server::launch(root.clone(), config, Some(dir), command);
    let (status, v) = server.json("POST", "/v1/sign", serde_json::json!({"profile": "good", "data": b64(b"x")}));
    assert_eq!(status, 200, "{v}");
    let (status, v) = server.json(
        "POST",
        "/v1/dsse/sign",
        serde_json::json!({"payload_type": "t", "payload": b64(b"x"), "profiles": ["good"]}),
    );
    assert_eq!(status, 200, "{v}");
    // The misbehaving provider traps holding the key: the fault is the answer (never retried
    // elsewhere with the key), the same class on both routes (dsse/sign said 400).
    let (status, v) = server.json("POST", "/v1/sign", serde_json::json!({"profile": "faulty", "data": b64(b"x")}));
    assert_eq!((status, v["error"]["kind"].as_str()), (502, Some("provider")), "{v}");
    let (status, v) = server.json(
        "POST",
        "/v1/dsse/sign",
        serde_json::json!({"payload_type": "t", "payload": b64(b"x"), "profiles": ["faulty"]}),
    );
    assert_eq!((status, v["error"]["kind"].as_str()), (502, Some("provider")), "{v}");
}

/// A server whose audit log stands `over` bytes past the file-size limit it runs under (a
/// sparse file; negative: that far below it): an append that crosses the limit fails (EFBIG;
/// SIGXFSZ is ignored) as on a full disk, after writing what fit. The limit is far above what
/// the component runtime maps.
fn limited_audit_server(over: i64) -> (Server, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let config = crate::server::config(&root, Some("full"), &allow_me("\"sign\"", "\"sim:*\"", "\"*\""));
    let audit = root.join("audit.jsonl");
    let limit_kib: u64 = 256 << 10;
    // One long line (sparse: no disk is used), so that the log is whole up to where writes fail.
    let file = fs::File::create(&audit).unwrap();
    let len = ((limit_kib << 10) as i64 + over) as u64;
    file.set_len(len - 1).unwrap();
    std::os::unix::fs::FileExt::write_at(&file, b"\n", len - 1).unwrap();
    fs::set_permissions(&audit, fs::Permissions::from_mode(0o600)).unwrap();
    let mut command = Command::new("bash");
    command
        .args(["-c", &format!("trap '' XFSZ; ulimit -f {limit_kib}; exec \"$@\""), "serve-limited"])
        .arg(common::binary())
        .args(["--config", config.to_str().unwrap(), "serve"]);
    (Server::launch(root, config, Some(dir), command), audit)
}

#[test]
fn a_batch_that_fails_halfway_leaves_no_torn_line() {
    // Room for 300 bytes: a sign's line (about 450) is written in part, then fails.
    let (server, audit) = limited_audit_server(-300);
    let size = || fs::metadata(&audit).unwrap().len();
    let before = size();
    for _ in 0..3 {
        let (status, v) =
            server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:k", "algorithm": "ES256", "data": "AA"}));
        assert_eq!((status, v["error"]["kind"].as_str()), (500, Some("internal")), "{v}");
        assert_eq!(size(), before, "the log is cut back to its last whole line");
    }
    // A line that fits is written whole after the failures.
    let (status, _) = server.request("POST", "/v1/hsm/status", None, b"");
    assert_eq!(status, 403);
    assert!(size() > before && size() - before < 300, "the denial's line fits and ends the file");
    let tail = fs::read(&audit).unwrap()[before as usize..].to_vec();
    let line: serde_json::Value = serde_json::from_slice(&tail).expect("a whole line, not a torn one");
    assert_eq!(line["event"], "denied");
}

#[test]
fn an_audit_log_that_cannot_be_written_is_500_on_every_signing_route_and_nothing_is_signed() {
    // The log is already over the file-size limit the server runs under: every append fails.
    let (server, audit) = limited_audit_server(1 << 20);
    let size = || fs::metadata(&audit).unwrap().len();
    let before = size();
    let (status, v) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:k", "algorithm": "ES256", "data": "AA"}));
    assert_eq!((status, v["error"]["kind"].as_str()), (500, Some("internal")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("audit log"), "{v}");
    let (status, v) = server.json(
        "POST",
        "/v1/dsse/sign",
        serde_json::json!({"payload_type": "t", "payload": "AA", "keys": [{"key": "sim:k", "algorithm": "ES256"}]}),
    );
    assert_eq!((status, v["error"]["kind"].as_str()), (500, Some("internal")), "{v}");
    assert!(v.get("envelope").is_none());
    assert_eq!(size(), before, "nothing was added");
    // And every other keyed route: nothing is done that cannot be audited (reading a public
    // key is no key use, and needs no audit line).
    for (route, body) in keyed_routes("sim:k") {
        let (status, v) = server.json("POST", route, body);
        let want = if route == "/v1/keys/public" { (200, None) } else { (500, Some("internal")) };
        assert_eq!((status, v["error"]["kind"].as_str()), want, "{route}: {v}");
    }
    let (status, _) = server.request("POST", "/v1/sign/stream?key=sim:k&algorithm=ES256", None, b"data");
    assert_eq!(status, 500);
    assert_eq!(size(), before, "nothing was added");
}

/// Every keyed route, one request per error class: bad input 400, a key no rule names 403 (the
/// same for one that does not exist), and 500 when the audit line cannot be written (from the
/// audit-full server below).
fn keyed_routes(key: &str) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("/v1/sign", serde_json::json!({"key": key, "algorithm": "ES256", "data": "AA"})),
        (
            "/v1/dsse/sign",
            serde_json::json!({"payload_type": "t", "payload": "AA", "keys": [{"key": key, "algorithm": "ES256"}]}),
        ),
        ("/v1/keys/public", serde_json::json!({"key": key, "algorithm": "ES256"})),
        ("/v1/keys/generate", serde_json::json!({"key": key, "algorithm": "ES256"})),
        ("/v1/encrypt", serde_json::json!({"key": key, "plaintext": "AA"})),
        ("/v1/decrypt", serde_json::json!({"key": key, "nonce": b64(&[0; 12]), "ciphertext": b64(&[0; 32])})),
    ]
}

#[test]
fn every_keyed_route_answers_each_error_class_with_its_status() {
    let ops = "\"sign\", \"generate\", \"encrypt\", \"decrypt\"";
    let server = Server::start(Some("classes"), &allow_me(ops, "\"sim:mine-*\"", ""));
    for (route, body) in keyed_routes("sim:other") {
        let (status, v) = server.json("POST", route, body);
        assert_eq!((status, v["error"]["kind"].as_str()), (403, Some("denied")), "{route}: {v}");
    }
    for (route, mut body) in keyed_routes("sim:mine-k") {
        body["unexpected"] = serde_json::json!(1);
        let (status, v) = server.json("POST", route, body);
        assert_eq!((status, v["error"]["kind"].as_str()), (400, Some("bad-request")), "{route}: {v}");
    }
    for (route, body) in [
        ("/v1/sign/stream?key=sim:other&algorithm=ES256", b"data".to_vec()),
        ("/v1/sign/stream?key=sim:mine-k", b"data".to_vec()),
    ] {
        let (status, v) = server.request("POST", route, Some("application/octet-stream"), &body);
        let want = if route.contains("other") { 403 } else { 400 };
        assert_eq!(status, want, "{route}: {}", String::from_utf8_lossy(&v));
    }
    // Admin routes: denied without an admin rule, and not-found/method-not-allowed around them.
    for (method, route) in [("GET", "/v1/keys"), ("POST", "/v1/hsm/status"), ("POST", "/v1/reload")] {
        let (status, _) = server.request(method, route, None, b"");
        assert_eq!(status, 403, "{route}");
    }
    let (status, _) = server.request("GET", "/v1/hsm/status", None, b"");
    assert_eq!(status, 405);
}

#[test]
fn a_caller_with_no_rights_cannot_fill_the_disk_with_denials() {
    let server = Server::start(Some("flood"), &allow_me("\"sign\"", "\"sim:mine-*\"", ""));
    let audit = server.root.join("audit.jsonl");
    let size = || fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    let before = size();
    // A name over the bound is refused before anything is written (it used to be audited whole:
    // one request wrote a 63 MB line).
    for (field, route) in [("key", "/v1/sign"), ("profile", "/v1/sign"), ("key_id", "/v1/sign")] {
        let mut body = serde_json::json!({"algorithm": "ES256", "data": "AA"});
        body[field] = format!("sim:{}", "x".repeat(4096)).into();
        let (status, v) = server.json("POST", route, body);
        assert_eq!(status, 400, "{field}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("at most 1024"), "{v}");
    }
    assert_eq!(size(), before, "nothing written for an oversized name");
    // A flood of denials with names just under the bound: each still answered 403, but only
    // so many lines a minute are written for one caller.
    let name = format!("sim:{}", "y".repeat(1000));
    for _ in 0..1200 {
        let (status, _) =
            server.json("POST", "/v1/sign", serde_json::json!({"key": name, "algorithm": "ES256", "data": "AA"}));
        assert_eq!(status, 403);
    }
    let grown = size() - before;
    assert!(grown < 100_000, "1,200 denials grew the log by {grown} bytes (unbounded: about 1.3 MB)");
    let denied = server.audit().iter().filter(|l| l["event"] == "denied").count();
    assert_eq!(denied, 20, "at most 20 denial lines a minute for one caller");
    // Key uses are never dropped.
    let (status, v) =
        server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:mine-k", "algorithm": "ES256", "data": "AA"}));
    assert_eq!(status, 200, "{v}");
    assert!(server.audit().iter().any(|l| l["operation"] == "sign"));
}

#[test]
fn an_audit_log_made_writable_or_deleted_while_serving_stops_key_use() {
    let server = Server::start(Some("watched"), &allow_me("\"sign\"", "\"sim:*\"", ""));
    let sign =
        || server.json("POST", "/v1/sign", serde_json::json!({"key": "sim:k", "algorithm": "ES256", "data": "AA"}));
    assert_eq!(sign().0, 200);
    let audit = server.root.join("audit.jsonl");
    fs::set_permissions(&audit, fs::Permissions::from_mode(0o666)).unwrap();
    let (status, v) = sign();
    assert_eq!((status, v["error"]["kind"].as_str()), (500, Some("internal")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("writable by group or others"), "{v}");
    fs::set_permissions(&audit, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(sign().0, 200, "signs again once the log is private again");
    fs::remove_file(&audit).unwrap();
    let (status, v) = sign();
    assert_eq!((status, v["error"]["kind"].as_str()), (500, Some("internal")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("deleted while open"), "{v}");
}
