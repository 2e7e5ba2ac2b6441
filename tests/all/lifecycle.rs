//! Key versions and rotation against the simulation component: rotate (staged), publish both
//! fingerprints, promote (refused until an anchor lists the new one), retire, destroy; the
//! key-state file edited or deleted; signs during a promotion. The SoftHSM2 twin of the whole
//! sequence is in `tests/hsm`. Through `run`, so the server pass sends every step to a server.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::common::{self, OFFLINE, P, run, stderr, stdout};
use crate::server::Server;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A config with a seeded simulation, the `release` profile (key id release-key-001), a state
/// directory of its own, and anchors read from `dir/anchors` (rewritten by [`anchor`]).
fn config(dir: &Path) -> PathBuf {
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let path = common::write_config(dir, &common::components_dir(), &[OFFLINE, sim], "");
    let text = fs::read_to_string(&path).unwrap().replace(
        "name = \"simulation\"\n",
        "name = \"simulation\"\nkey_prefix = \"sim\"\nsettings = { seed = \"lifecycle\" }\n",
    );
    let text = format!(
        "{text}\n[state]\ndir = \"state\"\n\n[trust]\nanchors = {:?}\n\n[profiles.release]\nkey = \"sim:release\"\n\
         algorithm = \"ES256\"\nkey_id = \"release-key-001\"\n",
        dir.join("anchors").display().to_string()
    );
    fs::write(&path, text).unwrap();
    path
}

/// Anchors listing each public key under key id release-key-001.
fn anchor(config: &Path, keys: &[&Path]) {
    let root = config.parent().unwrap().join("anchors");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("public-keys")).unwrap();
    let mut list = Vec::new();
    for (i, public) in keys.iter().enumerate() {
        fs::copy(public, root.join(format!("public-keys/v{i}.pub"))).unwrap();
        let fp = stdout(&common::run_local(config, &["trust", "fingerprint", s(public)])).trim().to_string();
        list.push(serde_json::json!({"keyId": "release-key-001", "algorithmId": "ES256", "fingerprint": fp,
            "purpose": "release-signing", "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2099-01-01T00:00:00Z"}));
    }
    let file = serde_json::json!({"version": "1.0", "createdAt": "2026-01-01T00:00:00Z",
        "expiresAt": "2099-01-01T00:00:00Z", "trustAnchors": list});
    fs::write(root.join("trust-anchors.json"), serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("not JSON: {}", stdout(out)))
}

fn audit(config: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(config.parent().unwrap().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_key_rotates_staged_then_current_once_anchored_and_old_envelopes_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let v1_pub = dir.path().join("v1.pub");
    fs::write(&v1_pub, run(&config, &["keys", "public", "sim:release", "--alg", "ES256"]).stdout).unwrap();
    anchor(&config, &[&v1_pub]);
    let doc = dir.path().join("doc.json");
    fs::write(&doc, b"{\"release\":1}").unwrap();
    let dsse = |out: &Path| {
        let o = run(
            &config,
            &["dsse", "sign", "--profile", "release", "--payload-type", "application/json", s(&doc), "--out", s(out)],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let before = dir.path().join("before.dsse.json");
    dsse(&before);

    // A key with no recorded versions is version 1.
    let v = json(&run(&config, &["keys", "versions", "sim:release", "--json"]));
    assert_eq!((v["current"].as_u64(), v["versions"].as_array().unwrap().len()), (Some(1), 0), "{v}");

    // Rotate: version 2, staged; version 1 adopted (recorded now) and still current.
    let v2_pub = dir.path().join("v2.pub");
    let rotated =
        json(&run(&config, &["keys", "rotate", "sim:release", "--alg", "ES256", "--pub", s(&v2_pub), "--json"]));
    assert_eq!(rotated["step"], "rotate");
    assert_eq!(rotated["version"], 2);
    assert_eq!(rotated["current"], 1);
    assert_eq!(rotated["versions"][0]["adopted"], true);
    assert_eq!(rotated["versions"][1]["state"], "staged");
    assert_ne!(fs::read(&v2_pub).unwrap(), fs::read(&v1_pub).unwrap(), "a new key");

    // Staged: used for nothing.
    let out = run(&config, &["sign", s(&doc), "--key", "sim:release;x-version=2", "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("version 2 is staged"), "{}", stderr(&out));
    // --version N is x-version=N.
    let out = run(&config, &["sign", s(&doc), "--key", "sim:release", "--version", "2", "--alg", "ES256"]);
    assert!(stderr(&out).contains("version 2 is staged"), "{}", stderr(&out));
    let out = run(&config, &["keys", "public", "sim:release", "--version", "2", "--alg", "ES256"]);
    assert_eq!(out.stdout, fs::read(&v2_pub).unwrap(), "a staged version's public key, to publish");
    let out = run(&config, &["sign", s(&doc), "--key", "sim:release;x-version=1", "--version", "2", "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give one"), "{}", stderr(&out));
    // Its own name is not a way around the state.
    let out = run(&config, &["sign", s(&doc), "--key", "sim:release#v2", "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(2));
    // Profiles still sign with version 1.
    dsse(&dir.path().join("still-v1.dsse.json"));

    // Promote: refused while no anchor lists version 2's fingerprint.
    let out = run(&config, &["keys", "promote", "sim:release", "--version", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("listed by no configured trust anchor"), "{}", stderr(&out));
    // Published (both versions under one key id): promoted; version 1 retired.
    anchor(&config, &[&v1_pub, &v2_pub]);
    let promoted = json(&run(&config, &["keys", "promote", "sim:release", "--version", "2", "--json"]));
    assert_eq!(promoted["current"], 2);
    assert_eq!(promoted["versions"][0]["state"], "retired");
    assert!(promoted.get("warning").is_none(), "{promoted}");

    // The profile now signs with version 2; the envelope from before and the new one both
    // verify under the anchors that list both.
    let after = dir.path().join("after.dsse.json");
    dsse(&after);
    for env in [&before, &after] {
        let out = run(&config, &["dsse", "verify", s(env)]);
        assert!(out.status.success(), "{}: {}", env.display(), stderr(&out));
    }
    let only_v2 = dir.path().join("only-v2.pub");
    fs::copy(&v2_pub, &only_v2).unwrap();
    let sig_of = |env: &Path| {
        let e: serde_json::Value = serde_json::from_slice(&fs::read(env).unwrap()).unwrap();
        e["signatures"][0]["sig"].as_str().unwrap().to_string()
    };
    assert_ne!(sig_of(&before), sig_of(&after));
    let out = run(&config, &["dsse", "verify", s(&after), "--pub", s(&only_v2)]);
    assert!(out.status.success(), "the new envelope is version 2's: {}", stderr(&out));

    // Retired: verifies (its public key is still served), never signs.
    let out = run(&config, &["sign", s(&doc), "--key", "sim:release;x-version=1", "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("version 1 is retired"), "{}", stderr(&out));
    let out = run(&config, &["keys", "public", "sim:release;x-version=1", "--alg", "ES256"]);
    assert_eq!(stdout(&out).as_bytes(), fs::read(&v1_pub).unwrap().as_slice());

    // Destroy: never the current version; asks for --yes; then the version is gone.
    let out = run(&config, &["keys", "destroy", "sim:release", "--version", "2", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is current and is never destroyed"), "{}", stderr(&out));
    let out = run(&config, &["keys", "destroy", "sim:release", "--version", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let destroyed = json(&run(&config, &["keys", "destroy", "sim:release", "--version", "1", "--yes", "--json"]));
    assert_eq!(destroyed["versions"][0]["state"], "destroyed");
    let out = run(&config, &["keys", "public", "sim:release;x-version=1", "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("was destroyed"), "{}", stderr(&out));
    // An unknown version, and a version in a plain generate, are refused plainly.
    let out = run(&config, &["sign", s(&doc), "--key", "sim:release;x-version=9", "--alg", "ES256"]);
    assert!(stderr(&out).contains("has no version 9"), "{}", stderr(&out));

    // Every step is audited, naming the version.
    let lines = audit(&config);
    for (op, key) in [
        ("rotate", "sim:release;x-version=2"),
        ("promote", "sim:release;x-version=2"),
        ("destroy", "sim:release;x-version=1"),
    ] {
        assert!(
            lines.iter().any(|l| l["operation"] == op && l["key"] == key && l["outcome"] == "ok"),
            "no {op} line for {key}"
        );
    }
    assert!(lines.iter().any(|l| l["operation"] == "sign" && l["key"] == "sim:release;x-version=2"));
    // The key-state file: owner-only.
    let state = dir.path().join("state/keys.state.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn an_edited_or_deleted_key_state_file_stops_signing_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let doc = dir.path().join("doc");
    fs::write(&doc, b"x").unwrap();
    run(&config, &["keys", "rotate", "sim:release", "--alg", "ES256"]);
    let out = run(&config, &["keys", "promote", "sim:release", "--version", "2", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("promoted anyway"), "--force warns: {}", stderr(&out));
    assert!(audit(&config).iter().any(|l| l["event"] == "promote-forced"), "a forced promotion is audited");
    let sign = || run(&config, &["sign", s(&doc), "--key", "sim:release", "--alg", "ES256"]);
    assert!(sign().status.success());

    let state = dir.path().join("state/keys.state.json");
    let good = fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let bound = v["keys"][0]["versions"][1]["spki_sha256"].as_str().unwrap().to_string();
    // Version 2's binding changed: the key under its name is not the one recorded.
    let forged = "ab".repeat(32);
    fs::write(&state, good.replace(&bound, &forged)).unwrap();
    let out = sign();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&bound) && err.contains(&forged) && err.contains("version 2"), "names both: {err}");
    assert!(out.stdout.is_empty(), "nothing signed");
    // Not a key-state file.
    fs::write(&state, b"{\"keys\": 3}").unwrap();
    let out = sign();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a key-state file"), "{}", stderr(&out));
    // Writable by others.
    fs::write(&state, &good).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&state, fs::Permissions::from_mode(0o666)).unwrap();
    let out = sign();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("writable by group or others"), "{}", stderr(&out));
    fs::set_permissions(&state, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sign().status.success(), "restored: signs again");
    // Deleted: refused (never a silent fall back to version 1).
    fs::remove_file(&state).unwrap();
    let out = sign();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("was deleted"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

/// Eight clients sign with the profile while its key's next version is promoted: every sign
/// succeeds, each with one version or the other, and the next request after the promotion
/// (no reload) uses the new version.
#[test]
fn signs_during_a_promotion_all_succeed_with_one_version_or_the_other() {
    if common::server_pass_repeats_this() {
        return;
    }
    let rules = format!(
        "[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\", \"rotate\", \"promote\"]\nkeys = [\"sim:*\"]\n\
         profiles = [\"*\"]\n\n[state]\ndir = \"state\"\n",
        crate::server::me()
    );
    let server = Server::start(Some("promote-race"), &rules);
    let (status, rotated) =
        server.json("POST", "/v1/keys/rotate", serde_json::json!({"key": "sim:release", "algorithm": "ES256"}));
    assert_eq!(status, 200, "{rotated}");
    let public = |v: u32| {
        let (status, r) = server.json(
            "POST",
            "/v1/keys/public",
            serde_json::json!({"key": format!("sim:release;x-version={v}"), "algorithm": "ES256"}),
        );
        assert_eq!(status, 200, "{r}");
        r["public_key"].as_str().unwrap().to_string()
    };
    let (v1, v2) = (public(1), public(2));
    let data = base64::engine::general_purpose::STANDARD.encode(b"promote while signing");
    let socket = server.socket.clone();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let socket = socket.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| {
                        let body = serde_json::json!({"profile": "release", "data": data});
                        let (status, bytes) = crate::server::http(
                            &socket,
                            "POST",
                            "/v1/sign",
                            Some("application/json"),
                            &serde_json::to_vec(&body).unwrap(),
                        );
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
                        let r: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                        r["signature"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let (status, promoted) =
        server.json("POST", "/v1/keys/promote", serde_json::json!({"key": "sim:release", "version": 2, "force": true}));
    assert_eq!(status, 200, "{promoted}");
    let mut signatures: Vec<String> = threads.into_iter().flat_map(|t| t.join().expect("no panic")).collect();
    // The next request sees the promotion without a reload.
    let (status, r) = server.json("POST", "/v1/sign", serde_json::json!({"profile": "release", "data": data}));
    assert_eq!(status, 200);
    let last = r["signature"].as_str().unwrap().to_string();
    signatures.push(last.clone());
    let verifies = |sig: &str, public: &str| {
        let body = serde_json::json!({"algorithm": "ES256", "public_key": public, "signature": sig, "data": data});
        let (status, r) = server.json("POST", "/v1/verify", body);
        status == 200 && r["valid"] == true
    };
    let mut by = [0usize; 2];
    for sig in &signatures {
        match (verifies(sig, &v1), verifies(sig, &v2)) {
            (true, false) => by[0] += 1,
            (false, true) => by[1] += 1,
            other => panic!("a signature by neither version or both: {other:?}"),
        }
    }
    assert_eq!(by[0] + by[1], 161);
    assert!(verifies(&last, &v2), "after the promotion: version 2");
}

#[test]
fn a_version_past_max_age_warns_and_with_enforce_is_refused_and_doctor_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let base = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("{base}\n[rotation]\nmax_age_days = 90\n")).unwrap();
    let doc = dir.path().join("doc");
    fs::write(&doc, b"x").unwrap();
    // Generated now: version 1 with its creation time recorded.
    let out = run(&config, &["keys", "generate", "sim:aging", "--alg", "ES256"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sign = |local: bool| {
        let args = ["sign", s(&doc), "--key", "sim:aging", "--alg", "ES256"];
        if local { common::run_local(&config, &args) } else { run(&config, &args) }
    };
    let out = sign(true);
    assert!(out.status.success() && !stderr(&out).contains("days old"), "{}", stderr(&out));
    // Made long ago (the key-state file says so).
    let state = dir.path().join("state/keys.state.json");
    let text = fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let created = v["keys"][0]["versions"][0]["created"].as_str().unwrap().to_string();
    fs::write(&state, text.replace(&created, "2020-01-01T00:00:00Z")).unwrap();
    let out = sign(true);
    assert!(out.status.success(), "a warning only: {}", stderr(&out));
    assert!(stderr(&out).contains("days old, past [rotation] max_age_days = 90"), "{}", stderr(&out));
    let v = json(&run(&config, &["keys", "versions", "sim:aging", "--json"]));
    assert!(v["versions"][0]["age_days"].as_u64().unwrap() > 2000, "{v}");
    let doctor = common::run_local(&config, &["doctor", "--json"]);
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let ages = checks.as_array().unwrap().iter().find(|c| c["check"] == "key versions").expect("a key versions check");
    assert_eq!(ages["ok"], false, "{ages}");
    assert!(ages["detail"].as_str().unwrap().contains("sim:aging v1"), "{ages}");
    // Enforced: refused, naming the key and its age.
    fs::write(&config, format!("{base}\n[rotation]\nmax_age_days = 90\nenforce = true\n")).unwrap();
    let out = sign(false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sim:aging") && stderr(&out).contains("refused ([rotation] enforce)"),
        "{}",
        stderr(&out)
    );
    // A rotation and promotion make a young current version: signing again.
    assert!(run(&config, &["keys", "rotate", "sim:aging"]).status.success());
    assert!(run(&config, &["keys", "promote", "sim:aging", "--version", "2", "--force"]).status.success());
    assert!(sign(false).status.success());
}

/// AES-GCM output made before key versions (nonce || ciphertext, no header) still decrypts,
/// with version 1; new output carries the header naming its version.
#[test]
fn headerless_aes_gcm_output_from_before_versions_decrypts_with_version_1() {
    if common::server_pass_repeats_this() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let loaded = cryptohost::Config::load(&config).unwrap();
    let host = cryptohost::load::open(&loaded, cryptohost::TrustMode::Pins).unwrap();
    let service = cryptohost::keys::KeyService::new(&host.registry, &loaded.audit_path, 0).unwrap();
    let key = cryptohost::keys::KeyRef::parse("sim:vault").unwrap();
    // What `encrypt` wrote before: the key service's output with the caller's AAD alone.
    let (sealed, _) = service.encrypt(&key, "A256GCM", b"from before", b"").unwrap();
    let legacy = dir.path().join("legacy.bin");
    fs::write(&legacy, [sealed.nonce.as_slice(), sealed.ciphertext.as_slice()].concat()).unwrap();
    drop(service);
    let out = common::run_local(&config, &["decrypt", "--key", "sim:vault", s(&legacy), "--out", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"from before");
    // Rotated since: the old output still names no version, and still means version 1.
    assert!(run(&config, &["keys", "rotate", "sim:vault", "--alg", "A256GCM"]).status.success());
    assert!(
        run(&config, &["keys", "promote", "sim:vault", "--version", "2"]).status.success(),
        "no anchor for a secret key"
    );
    let out = common::run_local(&config, &["decrypt", "--key", "sim:vault", s(&legacy), "--out", "-"]);
    assert_eq!(out.stdout, b"from before", "{}", stderr(&out));
    let fresh = dir.path().join("fresh.bin");
    let plain = dir.path().join("plain");
    fs::write(&plain, b"after").unwrap();
    assert!(run(&config, &["encrypt", "--key", "sim:vault", s(&plain), "--out", s(&fresh)]).status.success());
    assert_eq!(&fs::read(&fresh).unwrap()[12..18], b"chv1\x00\x02");
    let out = run(&config, &["decrypt", "--key", "sim:vault", s(&fresh), "--out", "-"]);
    assert_eq!(out.stdout, b"after", "{}", stderr(&out));
}

/// The server's rules gate each lifecycle step by its own operation; a rule for a key covers
/// its versions, and a denial is audited.
#[test]
fn lifecycle_steps_need_their_own_operations_in_the_rules() {
    if common::server_pass_repeats_this() {
        return;
    }
    let rules = format!(
        "[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\", \"rotate\"]\nkeys = [\"sim:release\"]\n\n[state]\ndir = \"state\"\n",
        crate::server::me()
    );
    let server = Server::start(Some("rules"), &rules);
    let (status, r) =
        server.json("POST", "/v1/keys/rotate", serde_json::json!({"key": "sim:release", "algorithm": "ES256"}));
    assert_eq!(status, 200, "{r}");
    let (status, r) =
        server.json("POST", "/v1/keys/promote", serde_json::json!({"key": "sim:release", "version": 2, "force": true}));
    assert_eq!((status, r["error"]["kind"].as_str()), (403, Some("denied")), "{r}");
    let (status, _) =
        server.json("POST", "/v1/keys/rotate", serde_json::json!({"key": "sim:other", "algorithm": "ES256"}));
    assert_eq!(status, 403);
    // The rule for sim:release covers its versions.
    let (status, r) = server.json(
        "POST",
        "/v1/keys/public",
        serde_json::json!({"key": "sim:release;x-version=2", "algorithm": "ES256"}),
    );
    assert_eq!(status, 200, "{r}");
    assert!(server.audit().iter().any(|l| l["event"] == "denied" && l["detail"] == "promote with sim:release"));
}
