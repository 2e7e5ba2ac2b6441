//! Every command's `--json` output against its committed JSON Schema (`docs/cli-json/`), which
//! is what the binary derives from its own output types (`generate json-schemas`). The
//! commands a server answers run through `common::run`, so the suite's server mode validates
//! client mode's output too. Also `verify -v`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::bundle::{kit, s};
use crate::common;

fn schema(name: &str) -> serde_json::Value {
    let path = common::repo_root().join("docs/cli-json").join(format!("{name}.json"));
    serde_json::from_slice(&fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Validates `out`'s stdout (one JSON document) against the schema of `name`, and returns it.
fn valid(name: &str, out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{name}: {}", common::stderr(out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: stdout is not one JSON document ({e}): {}", common::stdout(out)));
    let validator = jsonschema::validator_for(&schema(name)).unwrap_or_else(|e| panic!("{name}: schema: {e}"));
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{doc:#}");
    doc
}

#[test]
fn the_committed_schemas_are_the_ones_the_binary_derives() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::binary()).args(["generate", "json-schemas"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let committed = common::repo_root().join("docs/cli-json");
    let names = |d: &Path| {
        let mut v: Vec<String> =
            fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(dir.path()), names(&committed), "run `just cli-json` and commit docs/cli-json");
    for name in names(dir.path()) {
        assert_eq!(
            fs::read_to_string(dir.path().join(&name)).unwrap(),
            fs::read_to_string(committed.join(&name)).unwrap(),
            "{name} differs from what the binary derives: run `just cli-json`"
        );
    }
    // The schemas have teeth: a document without the required fields is refused.
    let verify = jsonschema::validator_for(&schema("verify")).unwrap();
    assert!(!verify.is_valid(&serde_json::json!({"algorithm": "ES256"})));
    assert!(!verify.is_valid(&serde_json::json!({"algorithm": "ES256", "valid": "yes", "provider": {}})));
    // One naming convention: every property name is snake_case (the DSSE envelope's own
    // `payloadType` and `keyid` are the envelope format's, inside `Envelope`).
    for name in names(&committed) {
        let doc: serde_json::Value = serde_json::from_str(&fs::read_to_string(committed.join(&name)).unwrap()).unwrap();
        let mut stack = vec![(String::new(), &doc)];
        while let Some((at, v)) = stack.pop() {
            if let Some(map) = v.as_object() {
                if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                    for key in props.keys() {
                        let envelope = at.contains("Envelope") || at.contains("Signature");
                        assert!(
                            envelope || key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                            "{name}: property {key:?} at {at} is not snake_case"
                        );
                    }
                }
                for (k, child) in map {
                    stack.push((format!("{at}/{k}"), child));
                }
            } else if let Some(items) = v.as_array() {
                stack.extend(items.iter().map(|c| (at.clone(), c)));
            }
        }
    }
}

#[test]
fn every_commands_json_output_validates_against_its_schema() {
    let k = kit();
    let config = &k.config;
    let run = |args: &[&str]| common::run(config, args);
    let dir = k.dir.path();
    let msg = dir.join("msg");
    fs::write(&msg, b"documented output").unwrap();
    let out = |name: &str| dir.join(name);

    valid("providers", &common::run_local(config, &["providers", "--json"]));
    valid("hash", &run(&["hash", "--alg", "SHA-384", "--json", s(&msg)]));
    let signed =
        valid("sign", &run(&["sign", "--alg", "ES256", "--key", "sim:j", "--out", s(&out("sig")), "--json", s(&msg)]));
    assert_eq!(signed["algorithm"], "ES256");
    let public = valid("keys-public", &run(&["keys", "public", "sim:j", "--alg", "ES256", "--json"]));
    fs::write(out("j.pub"), public["public_key"].as_str().unwrap()).unwrap();
    let verified =
        valid("verify", &run(&["verify", "--pub", s(&out("j.pub")), "--sig", s(&out("sig")), "--json", s(&msg)]));
    assert_eq!((verified["valid"].as_bool(), verified["key_type"].as_str()), (Some(true), Some("P-256")));
    let generated = valid("keys-generate", &run(&["keys", "generate", "sim:aes-j", "--alg", "A256GCM", "--json"]));
    assert_eq!(generated["public_key"], "");
    valid(
        "encrypt",
        &run(&["encrypt", "--key", "sim:aes-j", "--alg", "A256GCM", "--out", s(&out("sealed")), "--json", s(&msg)]),
    );
    let plain = valid(
        "decrypt",
        &run(&[
            "decrypt",
            "--key",
            "sim:aes-j",
            "--alg",
            "A256GCM",
            "--out",
            s(&out("plain")),
            "--json",
            s(&out("sealed")),
        ]),
    );
    assert_eq!(plain["bytes"], "documented output".len());
    let env = out("env.json");
    valid(
        "dsse-sign",
        &run(&[
            "dsse",
            "sign",
            "--key",
            "sim:j",
            "--alg",
            "ES256",
            "--payload-type",
            "t",
            "--out",
            s(&env),
            "--json",
            s(&msg),
        ]),
    );
    valid("dsse-verify", &run(&["dsse", "verify", "--pub", s(&out("j.pub")), "--json", s(&env)]));
    let fp =
        valid("trust-fingerprint", &common::run_local(config, &["trust", "fingerprint", "--json", s(&out("j.pub"))]));
    assert!(fp["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    let keygen = out("k.pem");
    valid("keygen", &common::run_local(config, &["keygen", "--alg", "ES384", "--out", s(&keygen), "--json"]));
    let archive = out("kit.tar.gz");
    let create = ["bundle", "create", "--from", s(&k.source), "--key", "sim:bundle-signer", "--alg", "ES256"];
    let mut args = create.to_vec();
    args.extend(["--out", s(&archive), "--json"]);
    valid("bundle-create", &common::run_local(config, &args));
    let verify = ["bundle", "verify", s(&archive), "--bootstrap-pub", s(&k.bundle_pub), "--json"];
    valid("bundle-verify", &common::run_local(config, &verify));
    let installed = valid(
        "bundle-install",
        &common::run_local(
            config,
            &[
                "bundle",
                "install",
                s(&archive),
                "--bootstrap-pub",
                s(&k.bundle_pub),
                "--into",
                s(&out("kit")),
                "--json",
            ],
        ),
    );
    assert!(installed["state"].as_str().unwrap().ends_with("kit.state.json"));
    let wasm = common::components_dir().join("offline-verification.wasm");
    valid("components-inspect", &common::run_local(config, &["components", "inspect", "--json", s(&wasm)]));
    valid("components-check", &common::run_local(config, &["components", "check", "--json", s(&wasm)]));

    // pin: a config of its own, pinned to the build's manifest.
    let pin_dir = tempfile::tempdir().unwrap();
    let pinned = common::write_config(pin_dir.path(), &common::components_dir(), &[common::OFFLINE], "");
    let manifest = common::components_dir().join("manifest.json");
    let report = valid("pin", &common::run_local(&pinned, &["pin", "--manifest", s(&manifest), "--json"]));
    assert_eq!(report["changes"], serde_json::json!([]), "already pinned to this build");

    // doctor (exit 0 or 1 alike print the checks).
    let doctor = common::run_local(config, &["doctor", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema("doctor")).unwrap();
    assert!(validator.is_valid(&doc), "{doc:#}");
}

#[test]
fn serve_json_prints_one_start_up_line_once_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::server::config(dir.path(), None, "");
    let mut child = Command::new(common::binary())
        .args(["--config", s(&config), "serve", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let validator = jsonschema::validator_for(&schema("serve")).unwrap();
    assert!(validator.is_valid(&doc), "{doc:#}");
    assert_eq!(PathBuf::from(doc["socket"].as_str().unwrap()), dir.path().join("s.sock"));
    assert_eq!(doc["providers"], 3, "two components and the native hashing");
}

#[test]
fn verify_v_says_what_was_used_and_never_more() {
    let k = kit();
    let dir = k.dir.path();
    let msg = dir.join("msg");
    fs::write(&msg, b"verbose").unwrap();
    let public = dir.join("v.pub");
    fs::write(&public, common::run_local(&k.config, &["keys", "public", "sim:v", "--alg", "ES384"]).stdout).unwrap();
    let sig = dir.join("v.sig");
    let signed = common::run(&k.config, &["sign", "--alg", "ES384", "--key", "sim:v", "--out", s(&sig), s(&msg)]);
    assert!(signed.status.success(), "{}", common::stderr(&signed));
    let out = common::run(&k.config, &["-v", "verify", "--pub", s(&public), "--sig", s(&sig), s(&msg)]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    let digest = hex::encode(<sha2::Sha384 as sha2::Digest>::digest(b"verbose"));
    assert!(err.contains("key P-384 sha256:") && err.contains("algorithm ES384, signature encoding der"), "{err}");
    assert!(err.contains(&format!("digest SHA-384 {digest}")), "{err}");
    // Without -v, none of it.
    let quiet = common::run(&k.config, &["verify", "--pub", s(&public), "--sig", s(&sig), s(&msg)]);
    assert!(!common::stderr(&quiet).contains("signature encoding"), "{}", common::stderr(&quiet));
}

/// The progress bar: on stderr, for a file over 64 MiB, only when stderr is a terminal (run
/// under a pseudo-terminal with `script`); never in a pipe, and never for a small file.
#[test]
fn a_progress_bar_only_for_large_inputs_and_only_on_a_terminal() {
    let k = kit();
    let dir = k.dir.path();
    let big = dir.join("big");
    fs::File::create(&big).unwrap().set_len((64 << 20) + 4096).unwrap();
    let small = dir.join("small");
    fs::write(&small, b"small").unwrap();
    let under_pty = |file: &Path| {
        let command = format!("{} --config {} hash --alg SHA-256 {}", s(&common::binary()), s(&k.config), s(file));
        let out = Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("script (bsdutils)");
        assert!(out.status.success(), "{}", common::stdout(&out));
        common::stdout(&out)
    };
    let shown = under_pty(&big);
    assert!(shown.contains("of 64.00 MiB ["), "a bar on the terminal: {shown:?}");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![0u8; (64 << 20) + 4096]));
    assert!(shown.contains(&digest), "and the right digest: {shown:?}");
    assert!(!under_pty(&small).contains(" of "), "no bar for a small file");
    // Not a terminal: nothing but the usual line.
    let piped = common::run_local(&k.config, &["hash", "--alg", "SHA-256", s(&big)]);
    assert!(piped.status.success());
    assert!(!common::stderr(&piped).contains(" of "), "{}", common::stderr(&piped));
    assert_eq!(common::stdout(&piped).trim(), digest);
}

/// A JWK (RFC 7517) is a public key like a PEM one: `keys public --format jwk` writes it (kid:
/// the RFC 7638 thumbprint), `verify --pub` reads it, `trust fingerprint --json` gives the
/// thumbprint; a set of two keys is refused where one key is expected.
#[test]
fn a_jwk_is_a_public_key_like_any_other() {
    let k = kit();
    let dir = k.dir.path();
    let msg = dir.join("msg");
    fs::write(&msg, b"jwk").unwrap();
    for (key, alg) in [("sim:jwk-ec", "ES384"), ("sim:jwk-ed", "EdDSA"), ("sim:jwk-rsa", "PS256")] {
        let out = common::run_local(&k.config, &["keys", "public", key, "--alg", alg, "--format", "jwk"]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let jwk: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(jwk["use"], "sig");
        let file = dir.join(format!("{}.jwk", &key[4..]));
        fs::write(&file, &out.stdout).unwrap();
        let fp =
            valid("trust-fingerprint", &common::run_local(&k.config, &["trust", "fingerprint", "--json", s(&file)]));
        assert_eq!(fp["jwk_thumbprint"], jwk["kid"], "kid is the RFC 7638 thumbprint");
        let sig = dir.join("sig");
        let signed = common::run(&k.config, &["sign", "--alg", alg, "--key", key, "--out", s(&sig), s(&msg)]);
        assert!(signed.status.success(), "{}", common::stderr(&signed));
        let verified = common::run(&k.config, &["verify", "--alg", alg, "--pub", s(&file), "--sig", s(&sig), s(&msg)]);
        assert_eq!(verified.status.code(), Some(0), "{alg}: {}", common::stderr(&verified));
    }
    let set = dir.join("set.jwks");
    let a: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("jwk-ec.jwk")).unwrap()).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("jwk-ed.jwk")).unwrap()).unwrap();
    fs::write(&set, serde_json::to_vec(&serde_json::json!({"keys": [a, b]})).unwrap()).unwrap();
    let out = common::run_local(&k.config, &["trust", "fingerprint", s(&set)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("a JWK Set of 2 keys: give one key here"), "{}", common::stderr(&out));
    // A JWK with a private member is refused, naming it.
    let private = dir.join("private.jwk");
    let mut with_d = a.clone();
    with_d["d"] = serde_json::json!("AAAA");
    fs::write(&private, serde_json::to_vec(&with_d).unwrap()).unwrap();
    let out = common::run_local(&k.config, &["trust", "fingerprint", s(&private)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("\"d\" is private key material"), "{}", common::stderr(&out));
}
