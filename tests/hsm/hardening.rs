//! Regression tests for the PKCS#11 items of the hardening review: one login after a refused
//! PIN, `hsm disconnect` without a login, PIN file checks, no PIN echoed from a URI, no
//! generation over an existing key, AES key length against the algorithm, RSA size in bits,
//! missing tokens in `hsm status`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cryptohost::keys::KeyRef;
use cryptohost::pkcs11::{HsmConfig, PinSource, Pkcs11Provider, Pkcs11Uri, TokenSpec};
use cryptohost::provider::Signing;
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{KeyId, Priority, ProviderError};

use crate::softhsm::{self, MODULE, PIN, PIN_VAR, SoftHsm};

/// A wrong PIN that cannot turn up by chance in a serial number, a path or a digest.
const WRONG_PIN: &str = "Wr0ngPinZq";

fn run_env(config: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut c = Command::new(crate::common::binary());
    c.arg("--config").arg(config).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run cryptohost");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "cryptohost panicked");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn last_audit_line(hsm: &SoftHsm) -> serde_json::Value {
    let text = fs::read_to_string(hsm.audit_path()).expect("audit log");
    serde_json::from_str(text.lines().last().expect("an audit line")).expect("JSON line")
}

fn sign(p: &Pkcs11Provider, uri: &str, alg: &str) -> Result<Vec<u8>, ProviderError> {
    p.sign(&KeyId(uri.to_string()), alg, SignInput::Message(b"m"), SigFormat::Der).map(|s| s.value)
}

#[test]
fn wrong_pin_costs_one_login_for_many_hsm_signers() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["once"]);
    let config = hsm.config(&["once"], 4, "");
    let keys: Vec<String> = (1..=3).map(|i| format!("pkcs11:token=once;object=signer-{i}")).collect();
    for k in &keys {
        let out = run_env(&config, &[], &["keys", "generate", k, "--alg", "ES256"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (spied, log, mut env) = hsm.spy_config(&["once"], 4);
    env.push((PIN_VAR, WRONG_PIN.into()));
    let payload = hsm.dir.path().join("payload.json");
    fs::write(&payload, b"{}").unwrap();
    let envelope = hsm.dir.path().join("envelope.json");
    let mut args = vec!["dsse", "sign", "--alg", "ES256", "--payload-type", "application/json"];
    for k in &keys {
        args.extend(["--key", k.as_str()]);
    }
    args.extend(["--out", envelope.to_str().unwrap(), payload.to_str().unwrap()]);
    let out = run_env(&spied, &env, &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("C_Login: CKR_PIN_INCORRECT"), "{err}");
    assert!(!err.contains(WRONG_PIN), "the PIN must never be printed");
    assert!(!envelope.exists());
    assert_eq!(softhsm::logins_in(&log), 1, "three HSM signers, one wrong PIN: exactly one C_Login; stderr: {err}");
}

#[test]
fn wrong_pin_is_remembered_by_the_provider_across_operations_and_reconnects() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["memo"]);
    let (spied, log, env) = hsm.spy_config(&["memo"], 2);
    // SAFETY: serial() is held; the spy variables are removed again below.
    unsafe {
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        std::env::set_var(PIN_VAR, WRONG_PIN);
    }
    let (_c, registry) = softhsm::registry(&spied);
    let p = softhsm::hsm(&registry);
    let first = p.connect().expect_err("wrong PIN").to_string();
    assert!(first.contains("C_Login: CKR_PIN_INCORRECT"), "{first}");
    let uri = "pkcs11:token=memo;object=k";
    let mut later = vec![
        sign(&p, uri, "ES256").expect_err("sign").to_string(),
        p.public_key(&KeyId(uri.into())).expect_err("public key").to_string(),
        p.list_keys().expect_err("list").to_string(),
        p.named_key("pkcs11:token=memo;object=new", "ES256", 0, true).expect_err("generate").to_string(),
    ];
    // A disconnect and a new connect do not forget it, nor does a corrected environment: only a
    // new process tries again.
    p.disconnect();
    // SAFETY: serial() is held.
    unsafe { std::env::set_var(PIN_VAR, PIN) };
    later.push(p.connect().expect_err("still refused in this process").to_string());
    p.disconnect();
    // SAFETY: serial() is held.
    unsafe {
        for (k, _) in &env {
            std::env::remove_var(k);
        }
    }
    for e in &later {
        assert!(e.contains("refused the PIN earlier in this process"), "{e}");
        assert!(e.contains("C_Login: CKR_PIN_INCORRECT"), "names the call and code: {e}");
        assert!(!e.contains(WRONG_PIN), "the PIN must never be printed");
    }
    assert_eq!(softhsm::logins_in(&log), 1, "one C_Login for the life of the provider");
}

#[test]
fn hsm_disconnect_and_status_never_log_in() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["disc"]);
    let (spied, log, mut env) = hsm.spy_config(&["disc"], 1);
    env.push((PIN_VAR, WRONG_PIN.into()));
    let out = run_env(&spied, &env, &["hsm", "disconnect"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not connected"), "{}", stdout(&out));
    assert_eq!(softhsm::logins_in(&log), 0, "disconnect must not cost a PIN try");
    // Nor does status: it loads the module and finds the token, and says it is not logged in.
    let out = run_env(&spied, &env, &["hsm", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("disc (serial") && stdout(&out).contains("not logged in"), "{}", stdout(&out));
    let out = run_env(&spied, &env, &["hsm", "status", "--json"]);
    let tokens: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((tokens[0]["present"].as_bool(), tokens[0]["logged_in"].as_bool()), (Some(true), Some(false)));
    assert_eq!(softhsm::logins_in(&log), 0, "status must not cost a PIN try");
    // The same spy setup does count a login when one is made (the counts above can fail).
    let out = run_env(&spied, &env, &["hsm", "connect"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(softhsm::logins_in(&log), 1);
}

fn pin_file_provider(file: &Path, token: &str) -> Pkcs11Provider {
    Pkcs11Provider::new(HsmConfig {
        name: "hsm".into(),
        module: MODULE.into(),
        module_sha256: None,
        tokens: vec![TokenSpec::Label(token.into())],
        pin: PinSource::File(file.to_path_buf()),
        pool_size: 1,
        priority: Priority(300),
        require_non_extractable: true,
    })
}

#[test]
fn pin_file_must_be_private_regular_owned_and_small() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["pinfile"]);
    let dir = hsm.dir.path();
    let write = |name: &str, content: &[u8], mode: u32| -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let good = write("good.pin", format!("{PIN}\n").as_bytes(), 0o600);
    let p = pin_file_provider(&good, "pinfile");
    p.connect().expect("a private PIN file owned by the user is read");
    p.disconnect();

    // Bad files hold a wrong PIN: refused before any login, and never echoed.
    let bad = format!("{WRONG_PIN}\n");
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (write("group.pin", bad.as_bytes(), 0o640), "mode 0640 lets group or others read or write it"),
        (write("others.pin", bad.as_bytes(), 0o604), "mode 0604"),
        (write("writable.pin", bad.as_bytes(), 0o620), "mode 0620"),
        (write("big.pin", &[b'1'; 5000], 0o600), "a PIN file holds at most 4096"),
    ];
    let link = dir.join("link.pin");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    cases.push((link, "is a symbolic link"));
    let fifo = dir.join("fifo.pin");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    cases.push((fifo, "is not a regular file"));
    let foreign = write("foreign.pin", bad.as_bytes(), 0o600);
    match std::os::unix::fs::chown(&foreign, Some(4242), None) {
        Ok(()) => cases.push((foreign, "is owned by uid 4242, not by the user running cryptohost")),
        Err(e) => eprintln!("not root ({e}): the foreign-owner case needs chown and is not run"),
    }
    for (path, why) in cases {
        let p = pin_file_provider(&path, "pinfile");
        let err = p.connect().expect_err(why).to_string();
        p.disconnect();
        assert!(err.contains(why), "{}: {err:?} should say {why:?}", path.display());
        assert!(err.contains(&path.display().to_string()), "names the file: {err}");
        assert!(!err.contains(WRONG_PIN), "the PIN must never be printed: {err}");
    }
}

#[test]
fn pin_in_a_key_uri_is_refused_without_echoing_it() {
    let secret = "S3cretPinQx";
    for text in [
        format!("pkcs11:token=t;object=k?pin-value={secret}"),
        format!("pkcs11:token=t?PIN-VALUE={secret}"),
        format!("pkcs11:token=t;pin-value={secret}"),
    ] {
        // The whole error as it is printed: its message, and the reference it shows (redacted).
        let err = KeyRef::parse(&text).expect_err(&text).to_string();
        assert!(err.contains("must not carry a PIN"), "{text}: {err}");
        assert!(!err.contains(secret), "the error echoes the PIN: {err}");
        assert!(!Pkcs11Uri::redacted(&text).contains(secret));
    }
    // In a profile of the config file, the error names the line and field, not the PIN.
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::write_config(
        dir.path(),
        &crate::common::components_dir(),
        &[crate::common::OFFLINE],
        &format!("[profiles.p]\nkey = \"pkcs11:token=t;object=k?pin-value={secret}\"\nalgorithm = \"ES256\"\n"),
    );
    let out = crate::common::run(&config, &["dsse", "sign", "--profile", "p", "--payload-type", "x", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("profiles.p.key") && err.contains("must not carry a PIN"), "{err}");
    assert!(!err.contains(secret), "the PIN must never be printed: {err}");
}

#[test]
fn keys_generate_refuses_an_existing_label_naming_the_key() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["gen"]);
    let config = hsm.config(&["gen"], 1, "");
    let uri = "pkcs11:token=gen;object=X";
    let out = run_env(&config, &[], &["keys", "generate", uri, "--alg", "ES256"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = stdout(&run_env(&config, &[], &["keys", "public", uri]));
    assert!(public.contains("BEGIN PUBLIC KEY"), "{public}");

    let mut attempts = vec![(uri, "RS256"), (uri, "ES256"), (uri, "A256GCM")];
    let aes = "pkcs11:token=gen;object=vault";
    let out = run_env(&config, &[], &["keys", "generate", aes, "--alg", "A256GCM"]);
    assert!(out.status.success(), "{}", stderr(&out));
    attempts.extend([(aes, "A128GCM"), (aes, "ES256")]);
    for (reference, alg) in attempts {
        let out = run_env(&config, &[], &["keys", "generate", reference, "--alg", alg, "--rsa-bits", "2048"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{reference} {alg}: {err}");
        assert!(!stdout(&out).contains("generated"), "{}", stdout(&out));
        assert!(err.contains("already exists"), "{err}");
        let label = reference.rsplit('=').next().unwrap();
        let kind = if label == "X" { "CKK_EC" } else { "CKK_AES secret key" };
        assert!(err.contains(kind) && err.contains(&format!("label {label:?}")), "names the existing key: {err}");
        assert!(err.contains("id %") && err.contains("token \"gen\""), "names its id and token: {err}");
        let line = last_audit_line(&hsm);
        assert_eq!(line["operation"], "generate");
        assert_eq!(line["algorithm"], alg);
        assert_eq!(line["key"], reference);
        let outcome = line["outcome"].as_str().unwrap();
        assert!(outcome.starts_with("error:") && outcome.contains("already exists"), "{outcome}");
    }
    // The existing key was neither replaced nor joined by a second one.
    assert_eq!(stdout(&run_env(&config, &[], &["keys", "public", uri])), public);
    let listed = stdout(&run_env(&config, &[], &["keys", "list"]));
    assert_eq!(listed.matches("object=X").count(), 1, "{listed}");
    assert_eq!(listed.matches("object=vault").count(), 1, "{listed}");
}

#[test]
fn aes_gcm_refuses_a_key_whose_length_does_not_fit_the_algorithm() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["aeslen"]);
    let config = hsm.config(&["aeslen"], 1, "");
    let dir = hsm.dir.path();
    let uri = "pkcs11:token=aeslen;object=k128";
    let out = run_env(&config, &[], &["keys", "generate", uri, "--alg", "A128GCM"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = dir.join("plain");
    fs::write(&plain, b"attack at dawn").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();

    let sealed = dir.join("sealed-256");
    let out = run_env(&config, &[], &["encrypt", "--key", uri, "--alg", "A256GCM", "--out", &s(&sealed), &s(&plain)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "A256GCM with a 128-bit key must be refused: {err}");
    assert!(err.contains("CKA_VALUE_LEN is 16 bytes; A256GCM needs a 32-byte"), "{err}");
    assert!(!sealed.exists());
    let line = last_audit_line(&hsm);
    assert_eq!(line["operation"], "encrypt");
    assert_eq!(line["algorithm"], "A256GCM");
    assert!(line["outcome"].as_str().unwrap().starts_with("error:"), "{line}");

    let sealed = dir.join("sealed-128");
    let out = run_env(&config, &[], &["encrypt", "--key", uri, "--alg", "A128GCM", "--out", &s(&sealed), &s(&plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(last_audit_line(&hsm)["outcome"], "ok");
    let opened = dir.join("opened");
    let out = run_env(&config, &[], &["decrypt", "--key", uri, "--alg", "A256GCM", "--out", &s(&opened), &s(&sealed)]);
    assert_eq!(out.status.code(), Some(2), "decrypt checks the length too: {}", stderr(&out));
    assert!(stderr(&out).contains("CKA_VALUE_LEN is 16 bytes"), "{}", stderr(&out));
    let out = run_env(&config, &[], &["decrypt", "--key", uri, "--alg", "A128GCM", "--out", &s(&opened), &s(&sealed)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&opened).unwrap(), b"attack at dawn");
}

#[test]
fn rsa_key_size_is_counted_in_bits_not_bytes() {
    use cryptoki::object::Attribute;
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["bits"]);
    let config = hsm.config(&["bits"], 1, "");
    let (_c, registry) = softhsm::registry(&config);
    let p = softhsm::hsm(&registry);
    p.connect().unwrap();
    let attrs = || vec![Attribute::Sign(true), Attribute::Sensitive(true), Attribute::Extractable(false)];
    softhsm::raw_keypair("bits", "odd", "rsa2041", attrs());
    softhsm::raw_keypair("bits", "even", "rsa2048", attrs());
    for alg in ["RS256", "PS256"] {
        let err = sign(&p, "pkcs11:token=bits;object=odd", alg).expect_err("2,041 bits < 2,048").to_string();
        assert!(err.contains("CKA_MODULUS is 2041 bits; at least 2048"), "{alg}: {err}");
        sign(&p, "pkcs11:token=bits;object=even", alg).expect("a 2,048-bit key signs");
    }
    p.disconnect();
}

#[test]
fn hsm_status_lists_missing_tokens() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["here"]);
    let config = hsm.config(&["here", "gone", "serial:0123456789abcdef"], 1, "");
    let out = run_env(&config, &[], &["hsm", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("here (serial") && text.contains("healthy"), "{text}");
    assert!(text.contains("gone: MISSING"), "{text}");
    assert!(text.contains("serial 0123456789abcdef: MISSING"), "{text}");
    let out = run_env(&config, &[], &["hsm", "status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(status.len(), 3, "every configured token, in order: {status:?}");
    assert_eq!((status[0]["label"].as_str(), status[0]["present"].as_bool()), (Some("here"), Some(true)));
    assert_eq!((status[1]["label"].as_str(), status[1]["present"].as_bool()), (Some("gone"), Some(false)));
    assert_eq!(status[2]["serial"], "0123456789abcdef");
    assert_eq!(status[2]["present"], false);
    assert!(status[1]["slot"].is_null());
}

#[test]
fn hsm_ecdsa_is_randomized_as_the_readme_says() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["rand"]);
    let config = hsm.config(&["rand"], 1, "");
    let (_c, registry) = softhsm::registry(&config);
    let p = softhsm::hsm(&registry);
    let uri = "pkcs11:token=rand;object=k";
    p.named_key(uri, "ES256", 0, true).unwrap();
    let spki = p.public_key(&KeyId(uri.into())).unwrap();
    let (a, b) = (sign(&p, uri, "ES256").unwrap(), sign(&p, uri, "ES256").unwrap());
    assert_ne!(a, b, "CKM_ECDSA picks a fresh nonce: not RFC 6979");
    for sig in [a, b] {
        assert!(registry.verify("ES256", &spki, SignInput::Message(b"m"), &sig, SigFormat::Der).unwrap().value);
    }
    p.disconnect();
}

#[test]
fn the_module_is_hashed_before_it_is_loaded_and_a_different_one_is_refused() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["pinned"]);
    let sum = Command::new("sha256sum").arg(MODULE).output().unwrap();
    let digest = stdout(&sum).split_whitespace().next().unwrap().to_string();
    let msg = hsm.dir.path().join("msg");
    fs::write(&msg, b"signed by a checked module").unwrap();
    let key = "pkcs11:token=pinned;object=pinned-es256";
    // Pinned to its real digest: it loads (from the hashed bytes), and nothing is warned.
    let good = hsm.config(&["pinned"], 1, &format!("module_sha256 = {digest:?}"));
    let out = run_env(&good, &[], &["keys", "generate", key, "--alg", "ES256"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("module_sha256"), "{}", stderr(&out));
    let out = run_env(&good, &[], &["sign", "--alg", "ES256", "--key", key, msg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Without a pin it still loads, and every start says so.
    let plain = hsm.config(&["pinned"], 1, "");
    let out = run_env(&plain, &[], &["hsm", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("has no module_sha256"), "{}", stderr(&out));
    // Pinned to another digest: refused before anything is loaded, naming both digests.
    let other = "ab".repeat(32);
    let bad = hsm.config(&["pinned"], 1, &format!("module_sha256 = {other:?}"));
    let out = run_env(&bad, &[], &["sign", "--alg", "ES256", "--key", key, msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("refusing to load it") && err.contains(&digest) && err.contains(&other), "{err}");
    // A malformed pin, and strict = true without one, are configuration errors.
    let malformed = hsm.config(&["pinned"], 1, "module_sha256 = \"aa\"");
    let out = run_env(&malformed, &[], &["hsm", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hsm.module_sha256"), "{}", stderr(&out));
    let strict = hsm.config(&["pinned"], 1, "");
    let text = fs::read_to_string(&strict).unwrap();
    fs::write(&strict, format!("strict = true\n{text}")).unwrap();
    let out = run_env(&strict, &[], &["hsm", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("strict = true") && stderr(&out).contains("no module_sha256"), "{}", stderr(&out));
}
