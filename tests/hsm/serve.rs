//! The server in front of a real SoftHSM2 token: HSM signing over the socket under rules whose
//! globs match canonical PKCS#11 URIs only (reordering or escaping never widens a rule).

use std::fs;

use crate::common;
use crate::server::{Server, me};
use crate::softhsm::{self, SoftHsm};

#[test]
fn hsm_signing_over_the_socket_under_canonical_uri_rules() {
    use base64::Engine as _;
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["srv"]);
    let config = hsm.config(&["srv"], 2, "");
    let socket = hsm.dir.path().join("s.sock");
    let rules = format!(
        "[service]\nlisten = \"unix:{}\"\n[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\", \"generate\"]\nkeys = [\"pkcs11:token=srv;object=org-*\"]\n",
        socket.display(),
        me()
    );
    let text = fs::read_to_string(&config).unwrap() + &rules;
    fs::write(&config, text).unwrap();
    let server = Server::start_with(hsm.dir.path().to_path_buf(), config.clone(), None);

    // Generated through the server (a generate rule), then used to sign.
    let (status, made) = server.json(
        "POST",
        "/v1/keys/generate",
        serde_json::json!({"key": "pkcs11:token=srv;object=org-es256", "algorithm": "ES256"}),
    );
    assert_eq!(status, 200, "{made} {}", server.log());
    let data = base64::engine::general_purpose::STANDARD.encode(b"built artifact");
    let sign = |key: &str| {
        server.json("POST", "/v1/sign", serde_json::json!({"key": key, "algorithm": "ES256", "data": data}))
    };
    let (status, signed) = sign("pkcs11:token=srv;object=org-es256");
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["provider"], "hsm");
    assert!(signed["origin"]["token_serial"].as_str().is_some_and(|s| !s.is_empty()), "{signed}");
    // The same key, attributes reordered or escaped: canonical form, same rule, allowed.
    assert_eq!(sign("pkcs11:object=org-es256;token=srv").0, 200);
    assert_eq!(sign("pkcs11:token=srv;object=org%2Des256").0, 200);
    // Without the token the reference is not what the rule names: denied, not widened.
    assert_eq!(sign("pkcs11:object=org-es256").0, 403);
    assert_eq!(sign("pkcs11:token=srv;object=other").0, 403);
    // The signature verifies under the key the server reports.
    let (status, public) = server.json(
        "POST",
        "/v1/keys/public",
        serde_json::json!({"key": "pkcs11:token=srv;object=org-es256", "algorithm": "ES256"}),
    );
    assert_eq!(status, 200, "{public}");
    let (status, v) = server.json(
        "POST",
        "/v1/verify",
        serde_json::json!({"algorithm": "ES256", "public_key": public["public_key"], "signature": signed["signature"], "data": data}),
    );
    assert_eq!((status, v["valid"].clone()), (200, serde_json::json!(true)), "{v}");
    // Audit: the HSM use with the caller and token serial; the denials as events.
    let audit = server.audit();
    let line = audit.iter().find(|l| l["operation"] == "sign" && l["outcome"] == "ok").expect("sign audited");
    assert_eq!(line["caller"]["uid"], me());
    assert_eq!(line["provider_origin"]["pkcs11_module"], softhsm::MODULE);
    assert_eq!(audit.iter().filter(|l| l["event"] == "denied").count(), 2);
    assert!(!softhsm::log_shows_pin(&fs::read_to_string(hsm.dir.path().join("audit.jsonl")).unwrap()));
    let (status, _, log) = server.stop();
    assert!(status.success(), "{log}");
    let _ = common::repo_root();
}

#[test]
fn eight_clients_times_2000_mixed_requests_without_an_error() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["load"]);
    let config = hsm.config(&["load"], 4, "");
    let socket = hsm.dir.path().join("s.sock");
    let rules = format!(
        "[service]\nlisten = \"unix:{}\"\nmax_concurrent = 64\n[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\", \"generate\"]\nkeys = [\"sim:load-*\", \"pkcs11:token=load;object=load-*\"]\n",
        socket.display(),
        me()
    );
    fs::write(&config, fs::read_to_string(&config).unwrap() + &rules).unwrap();
    let server = std::sync::Arc::new(Server::start_with(hsm.dir.path().to_path_buf(), config.clone(), None));
    let (status, _) = server.json(
        "POST",
        "/v1/keys/generate",
        serde_json::json!({"key": "pkcs11:token=load;object=load-es256", "algorithm": "ES256"}),
    );
    assert_eq!(status, 200);
    // Verification material made once: an ES256 and an RS256 signature over one message.
    let message = b64.encode(b"load test message");
    let material: Vec<(String, String, String)> = ["ES256", "RS256"]
        .iter()
        .map(|alg| {
            let key = format!("sim:load-{}", alg.to_lowercase());
            let (_, signed) =
                server.json("POST", "/v1/sign", serde_json::json!({"key": key, "algorithm": alg, "data": message}));
            let (_, public) = server.json("POST", "/v1/keys/public", serde_json::json!({"key": key, "algorithm": alg}));
            (
                alg.to_string(),
                public["public_key"].as_str().unwrap().to_string(),
                signed["signature"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let material = std::sync::Arc::new(material);
    let hsm_public = server.json(
        "POST",
        "/v1/keys/public",
        serde_json::json!({"key": "pkcs11:token=load;object=load-es256", "algorithm": "ES256"}),
    );
    let sim_public =
        server.json("POST", "/v1/keys/public", serde_json::json!({"key": "sim:load-es256", "algorithm": "ES256"}));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let server = server.clone();
            let material = material.clone();
            let message = message.clone();
            std::thread::spawn(move || {
                let mut signatures = Vec::new();
                for i in 0..2000 {
                    let (path, body) = match (t + i) % 5 {
                        0 | 1 => {
                            let (alg, public, sig) = &material[(t + i) % 2];
                            ("/v1/verify", serde_json::json!({"algorithm": alg, "public_key": public, "signature": sig, "data": message}))
                        }
                        2 => ("/v1/hash?alg=SHA-256", serde_json::Value::Null),
                        3 => ("/v1/sign", serde_json::json!({"key": "sim:load-es256", "algorithm": "ES256", "data": message})),
                        _ => ("/v1/sign", serde_json::json!({"key": "pkcs11:token=load;object=load-es256", "algorithm": "ES256", "data": message})),
                    };
                    let (status, v) = if path.starts_with("/v1/hash") {
                        let (s, b) = server.request("POST", path, None, b"load test message");
                        (s, serde_json::from_slice(&b).unwrap())
                    } else {
                        server.json("POST", path, body.clone())
                    };
                    assert_eq!(status, 200, "client {t} request {i} {path}: {v}");
                    if path == "/v1/verify" {
                        assert_eq!(v["valid"], true);
                    }
                    if path == "/v1/sign" {
                        signatures.push((body["key"].as_str().unwrap().to_string(), v["signature"].as_str().unwrap().to_string()));
                    }
                }
                signatures
            })
        })
        .collect();
    let signatures: Vec<(String, String)> =
        threads.into_iter().flat_map(|h| h.join().expect("a client failed")).collect();
    assert_eq!(signatures.len(), 8 * 2000 * 2 / 5);
    // Every signature verifies afterwards, under the key that made it (a sample of each kind
    // through the server: HSM ECDSA is randomized, so each one is checked, not compared).
    for (key, sig) in signatures.iter().step_by(16) {
        let public = if key.starts_with("pkcs11:") { &hsm_public.1["public_key"] } else { &sim_public.1["public_key"] };
        let (status, v) = server.json(
            "POST",
            "/v1/verify",
            serde_json::json!({"algorithm": "ES256", "public_key": public, "signature": sig, "data": message}),
        );
        assert_eq!((status, v["valid"].clone()), (200, serde_json::json!(true)), "{key}");
    }
    // And every one is in the audit log.
    let audit = server.audit();
    let ok_signs = audit.iter().filter(|l| l["operation"] == "sign" && l["outcome"] == "ok").count();
    assert!(ok_signs >= signatures.len(), "{ok_signs} audit lines for {} signatures", signatures.len());
    // The metrics count the HSM's key uses and show its sessions.
    let (status, metrics) = server.request("GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    let value = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in:\n{metrics}"))
    };
    let hsm_signs = signatures.iter().filter(|(k, _)| k.starts_with("pkcs11:")).count() as u64;
    assert!(
        value("cryptohost_key_uses_total{operation=\"sign\",provider=\"hsm\",algorithm=\"ES256\",outcome=\"ok\"}")
            >= hsm_signs
    );
    assert!(value("cryptohost_pool_instances{provider=\"hsm\"}") >= 1);
    assert_eq!(value("cryptohost_hsm_reconnects_total{provider=\"hsm\"}"), 0);
    assert_eq!(value("cryptohost_audit_write_failures_total"), 0);
}

/// Puts the same P-256 key (made by OpenSSL) on a token as a private and a public object,
/// labelled `label`: what a replicated HSM cluster holds, and what SoftHSM cannot copy between
/// tokens itself.
fn import_shared_key(token_label: &str, label: &str, scalar: &[u8], point: &[u8]) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let ctx = Pkcs11::new(softhsm::MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == token_label)
        .expect("token");
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(softhsm::PIN.to_string())));
    let params = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut ec_point = vec![0x04, point.len() as u8];
    ec_point.extend_from_slice(point);
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(vec![0x42]),
            Attribute::EcParams(params.clone()),
            Attribute::Value(scalar.to_vec()),
        ])
        .unwrap();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(vec![0x42]),
            Attribute::EcParams(params),
            Attribute::EcPoint(ec_point),
        ])
        .unwrap();
    drop(session);
    // Nothing in this process uses the module now (the server is another process): finalize
    // it, or the next test would find it initialised with this test's token directory.
    ctx.finalize().unwrap();
}

/// The private scalar and public point of an OpenSSL P-256 key, from `openssl pkey -text`.
fn p256_from_openssl(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let key = dir.join("shared.pem");
    common::openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap(),
    ]);
    let text =
        String::from_utf8(common::openssl(&["pkey", "-in", key.to_str().unwrap(), "-text", "-noout"]).stdout).unwrap();
    let hex_after = |label: &str, until: &str| -> Vec<u8> {
        let start = text.find(label).unwrap() + label.len();
        let end = text[start..].find(until).unwrap() + start;
        let digits: String = text[start..end].chars().filter(|c| c.is_ascii_hexdigit()).collect();
        hex::decode(digits).unwrap()
    };
    let mut scalar = hex_after("priv:", "pub:");
    while scalar.len() > 32 && scalar[0] == 0 {
        scalar.remove(0);
    }
    while scalar.len() < 32 {
        scalar.insert(0, 0);
    }
    (scalar, hex_after("pub:", "ASN1 OID"))
}

#[test]
fn a_token_removed_mid_run_costs_no_request_when_another_holds_the_same_key() {
    use base64::Engine as _;
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["primary", "backup"]);
    let (scalar, point) = p256_from_openssl(hsm.dir.path());
    for token in ["primary", "backup"] {
        import_shared_key(token, "shared", &scalar, &point);
    }
    let config = hsm.config(&["primary", "backup"], 2, "");
    let socket = hsm.dir.path().join("s.sock");
    let rules = format!(
        "[service]\nlisten = \"unix:{}\"\n[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\"]\nkeys = [\"pkcs11:object=shared\"]\n",
        socket.display(),
        me()
    );
    fs::write(&config, fs::read_to_string(&config).unwrap() + &rules).unwrap();
    let server = std::sync::Arc::new(Server::start_with(hsm.dir.path().to_path_buf(), config, None));
    let data = base64::engine::general_purpose::STANDARD.encode(b"replicated");
    let signer = {
        let server = server.clone();
        let data = data.clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            for i in 0..300 {
                let (status, v) = server.json(
                    "POST",
                    "/v1/sign",
                    serde_json::json!({"key": "pkcs11:object=shared", "algorithm": "ES256", "data": data}),
                );
                assert_eq!(status, 200, "request {i} failed: {v}");
                out.push((
                    v["signature"].as_str().unwrap().to_string(),
                    v["origin"]["token_serial"].as_str().unwrap_or("").to_string(),
                ));
            }
            out
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(150));
    // Mid-run, the primary token disappears.
    hsm.remove_token("primary");
    let signatures = signer.join().expect("no request failed");
    let serials: std::collections::BTreeSet<_> = signatures.iter().map(|(_, s)| s.clone()).collect();
    // Every signature verifies under the one shared public key, whichever token made it.
    let spki_pem = {
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        der.extend_from_slice(&point);
        cryptohost::keyfile::to_pem("PUBLIC KEY", &der).unwrap().to_string()
    };
    for (sig, _) in signatures.iter().step_by(10) {
        let (status, v) = server.json(
            "POST",
            "/v1/verify",
            serde_json::json!({"algorithm": "ES256", "public_key": spki_pem, "signature": sig, "data": data}),
        );
        assert_eq!((status, v["valid"].clone()), (200, serde_json::json!(true)), "{v}");
    }
    eprintln!("token serials that served: {serials:?}");
}

/// Every HSM command a client can send, run locally and through a server on one SoftHSM2 token:
/// the same stdout (and `--json` document), the same exit code, the same audit line but for
/// its time and caller. `hsm status` never logs in, in either mode.
#[test]
fn hsm_commands_answer_alike_locally_and_through_a_server() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["drift"]);
    let config = hsm.config(&["drift"], 1, "");
    let dir = hsm.dir.path();
    let socket = dir.join("s.sock");
    let rules = format!(
        "[service]\nlisten = \"unix:{}\"\n[[service.allow]]\nusers = [\"{}\"]\n\
         operations = [\"sign\", \"generate\", \"admin\"]\nkeys = [\"pkcs11:token=drift;object=*\"]\n",
        socket.display(),
        me()
    );
    fs::write(&config, fs::read_to_string(&config).unwrap() + &rules).unwrap();
    let server = Server::start_with(dir.to_path_buf(), config.clone(), None);
    let client = |args: &[&str]| common::client(&server.socket, args);
    let local = |args: &[&str]| common::run_local(&config, args);
    // What a request writes in both modes: not a server peer's verification lines (written
    // after the answer), nor the log's own structure.
    let audit = || {
        server
            .audit()
            .into_iter()
            .filter(|l| !["verify", "genesis", "checkpoint"].contains(&l["event"].as_str().unwrap_or_default()))
            .map(common::comparable)
            .collect::<Vec<_>>()
    };

    // Status before anything logged in: no C_Login from either, and the token listed by both.
    for out in [local(&["hsm", "status", "--json"]), client(&["hsm", "status", "--json"])] {
        assert!(out.status.success(), "{}", common::stderr(&out));
        let tokens: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!((tokens[0]["label"].as_str(), tokens[0]["present"].as_bool()), (Some("drift"), Some(true)));
        assert_eq!(tokens[0]["logged_in"], false, "status never logs in");
    }
    // Text for a person in both modes (client mode printed the server's raw JSON).
    for out in [local(&["hsm", "status"]), client(&["hsm", "status"])] {
        let text = common::stdout(&out);
        assert!(text.starts_with("drift (serial ") && text.contains("not logged in"), "{text}");
    }
    let key = "pkcs11:token=drift;object=org-rsa";
    let out = client(&["keys", "generate", key, "--alg", "RS256", "--rsa-bits", "2048"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let msg = dir.join("msg");
    fs::write(&msg, b"release 3.1").unwrap();
    let m = msg.to_str().unwrap();
    let public = dir.join("org.pub");
    let sig = dir.join("sig");
    let same = |args: &[&str]| {
        let before = audit().len();
        let l = local(args);
        let between = audit();
        let r = client(args);
        let after = audit();
        assert_eq!(l.status.code(), r.status.code(), "{args:?}: {} / {}", common::stderr(&l), common::stderr(&r));
        assert_eq!(common::stdout(&l), common::stdout(&r), "{args:?}: stdout differs between modes");
        assert_eq!(&between[before..], &after[between.len()..], "{args:?}: audit lines differ between modes");
        r
    };
    let pem = same(&["keys", "public", key, "--alg", "RS256"]);
    fs::write(&public, &pem.stdout).unwrap();
    same(&["keys", "list"]);
    same(&["keys", "list", "--json"]);
    // PKCS#1 v1.5 is deterministic: one signature, one audit line, in both modes.
    let signed = same(&["sign", "--alg", "RS256", "--key", key, "--json", m]);
    assert!(signed.status.success());
    same(&["sign", "--alg", "RS256", "--key", key, "--out", sig.to_str().unwrap(), m]);
    let verified =
        same(&["verify", "--alg", "RS256", "--pub", public.to_str().unwrap(), "--sig", sig.to_str().unwrap(), m]);
    assert_eq!(common::stdout(&verified), "valid\n");
    same(&["dsse", "sign", "--key", key, "--alg", "RS256", "--payload-type", "t", m]);
    // A key the token does not hold: the same refusal class (exit 2) in both modes.
    same(&["sign", "--alg", "RS256", "--key", "pkcs11:token=drift;object=absent", m]);
    let _ = server.stop();
}
