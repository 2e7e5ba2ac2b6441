//! What only a real PKCS#11 module can show: failover, reconnect, wrong PIN, attribute checks,
//! concurrency through the session pool, and the audit log around HSM key use.

use std::process::Command;
use std::sync::Arc;

use cryptohost::audit::AuditInput;
use cryptohost::keys::{KeyError, KeyRef, KeyService};
use cryptohost::pkcs11::Pkcs11Provider;
use cryptohost::provider::Signing;
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{KeyId, ProviderError};

use crate::softhsm::{self, MODULE, SoftHsm};

fn sign(p: &Pkcs11Provider, uri: &str, alg: &str, msg: &[u8]) -> Result<Vec<u8>, ProviderError> {
    p.sign(&KeyId(uri.to_string()), alg, SignInput::Message(msg), SigFormat::Der).map(|s| s.value)
}

#[test]
fn failover_to_the_second_token_when_the_first_becomes_unusable() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["primary", "backup"]);
    let config = hsm.config(&["primary", "backup"], 2, "");
    let (_c, registry) = softhsm::registry(&config);
    let p = softhsm::hsm(&registry);
    // The same key label on both tokens (as a replicated HSM cluster would hold it).
    for token in ["primary", "backup"] {
        p.named_key(&format!("pkcs11:token={token};object=org"), "ES256", 0, true).unwrap();
    }
    let any = "pkcs11:object=org";
    let backup_pub = p.public_key(&KeyId("pkcs11:token=backup;object=org".into())).unwrap();
    let primary_pub = p.public_key(&KeyId("pkcs11:token=primary;object=org".into())).unwrap();
    let first = sign(&p, any, "ES256", b"before").unwrap();
    assert!(
        registry.verify("ES256", &primary_pub, SignInput::Message(b"before"), &first, SigFormat::Der).unwrap().value
    );
    let status = p.status();
    let primary_serial = status[0].serial.clone();
    let served_by = p.sign(&KeyId(any.to_string()), "ES256", SignInput::Message(b"m"), SigFormat::Der).unwrap().device;
    assert_eq!(served_by.as_deref(), Some(primary_serial.as_str()), "the serial comes back with the result");

    // Mid-run, the primary token disappears (deleted by another process).
    hsm.remove_token("primary");

    for i in 0..5 {
        let msg = format!("after {i}");
        let sig = sign(&p, any, "ES256", msg.as_bytes()).expect("signing continues on the backup token");
        let ok =
            registry.verify("ES256", &backup_pub, SignInput::Message(msg.as_bytes()), &sig, SigFormat::Der).unwrap();
        assert!(ok.value, "signed by the backup token's key");
    }
    let status = p.status();
    let backup = status.iter().find(|t| t.label == "backup").unwrap();
    assert!(backup.healthy);
    let served_by = p.sign(&KeyId(any.to_string()), "ES256", SignInput::Message(b"m"), SigFormat::Der).unwrap().device;
    assert_eq!(served_by.as_deref(), Some(backup.serial.as_str()), "failover shows in the result");
    p.disconnect();
}

#[test]
fn reconnects_after_the_module_is_finalized_behind_its_back() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["recon"]);
    let config = hsm.config(&["recon"], 2, "");
    let (_c, registry) = softhsm::registry(&config);
    let p = softhsm::hsm(&registry);
    let uri = "pkcs11:token=recon;object=k";
    p.named_key(uri, "ES256", 0, true).unwrap();
    let spki = p.public_key(&KeyId(uri.into())).unwrap();
    sign(&p, uri, "ES256", b"one").unwrap();

    // Another part of the process finalizes the module: every session and login is gone.
    let other = cryptoki::context::Pkcs11::new(MODULE).unwrap();
    other.finalize().unwrap();

    let sig = sign(&p, uri, "ES256", b"two").expect("the pool reconnects, logs in again, re-finds the key");
    assert!(registry.verify("ES256", &spki, SignInput::Message(b"two"), &sig, SigFormat::Der).unwrap().value);
    p.disconnect();
}

#[test]
fn wrong_pin_is_one_clear_error_without_the_pin() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["pin"]);
    let config = hsm.config(&["pin"], 4, "");
    // SAFETY: serial() is held.
    unsafe { std::env::set_var(softhsm::PIN_VAR, "98765") };
    let (_c, registry) = softhsm::registry(&config);
    let p = softhsm::hsm(&registry);
    let err = p.named_key("pkcs11:token=pin;object=k", "ES256", 0, true).expect_err("wrong PIN").to_string();
    assert!(err.contains("CKR_PIN_INCORRECT"), "{err}");
    assert!(err.contains("C_Login"), "{err}");
    assert!(!err.contains("98765") && !err.contains(softhsm::PIN), "the PIN must never appear: {err}");
    assert_eq!(err.matches("CKR_PIN_INCORRECT").count(), 1, "one error, not one per token or retry: {err}");
    // Debug output of the configuration does not carry the PIN either (but for chance digits
    // inside its digests: the config's own SHA-256, and the 16-digit prefix of it that names
    // its state directory, change with its temporary directory).
    let dbg = format!("{:?}", cryptohost::Config::load(&config).unwrap());
    for pin in ["98765", softhsm::PIN] {
        assert!(
            !softhsm::shows_outside_digests(&dbg, pin, 16),
            "the configuration's Debug output shows {pin:?}: {dbg}"
        );
    }
    p.disconnect();
}

#[test]
fn keys_with_the_wrong_attributes_are_refused_naming_why() {
    use cryptoki::object::Attribute;
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["attrs"]);
    let config = hsm.config(&["attrs"], 1, "");
    let (_c, registry) = softhsm::registry(&config);
    let p = softhsm::hsm(&registry);
    p.connect().unwrap();
    softhsm::raw_keypair(
        "attrs",
        "extractable",
        "ec",
        vec![Attribute::Sign(true), Attribute::Sensitive(true), Attribute::Extractable(true)],
    );
    softhsm::raw_keypair(
        "attrs",
        "nosign",
        "ec",
        vec![Attribute::Sign(false), Attribute::Sensitive(true), Attribute::Extractable(false)],
    );
    softhsm::raw_keypair(
        "attrs",
        "weak",
        "rsa1024",
        vec![Attribute::Sign(true), Attribute::Sensitive(true), Attribute::Extractable(false)],
    );
    softhsm::raw_keypair(
        "attrs",
        "good-ec",
        "ec",
        vec![Attribute::Sign(true), Attribute::Sensitive(true), Attribute::Extractable(false)],
    );
    softhsm::raw_keypair(
        "attrs",
        "insensitive",
        "rsa2048",
        vec![Attribute::Sign(true), Attribute::Sensitive(false), Attribute::Extractable(false)],
    );
    let cases = [
        ("extractable", "ES256", "CKA_EXTRACTABLE is true"),
        ("nosign", "ES256", "CKA_SIGN is false"),
        ("weak", "RS256", "1024 bits; at least 2048"),
        ("good-ec", "RS256", "CKA_KEY_TYPE"),
        ("good-ec", "ES384", "CKA_EC_PARAMS"),
        ("insensitive", "PS256", "CKA_SENSITIVE is false"),
    ];
    for (label, alg, why) in cases {
        let err = sign(&p, &format!("pkcs11:token=attrs;object={label}"), alg, b"m").expect_err(label).to_string();
        assert!(err.contains(why), "{label} with {alg}: {err:?} should say {why:?}");
    }
    sign(&p, "pkcs11:token=attrs;object=good-ec", "ES256", b"m").expect("a proper key signs");
    p.disconnect();
}

#[test]
fn four_threads_times_250_signs_through_the_pool() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["busy"]);
    let config = hsm.config(&["busy"], 2, "");
    let (_c, registry) = softhsm::registry(&config);
    let p = softhsm::hsm(&registry);
    let uri = "pkcs11:token=busy;object=k";
    p.named_key(uri, "ES256", 0, true).unwrap();
    let spki = p.public_key(&KeyId(uri.into())).unwrap();
    let signatures: Vec<(String, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let p: Arc<Pkcs11Provider> = p.clone();
                s.spawn(move || {
                    (0..250)
                        .map(|i| {
                            let msg = format!("thread {t} message {i}");
                            let sig = sign(&p, uri, "ES256", msg.as_bytes()).expect("no errors under concurrency");
                            (msg, sig)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(signatures.len(), 1000);
    let verifier = registry.by_name("offline-verification").unwrap().open_verifier("ES256", &spki).unwrap();
    for (msg, sig) in &signatures {
        assert!(verifier.verify(SignInput::Message(msg.as_bytes()), sig, SigFormat::Der).unwrap(), "{msg}");
    }
    let status = p.status();
    assert!(status[0].sessions_open <= 2, "pool size respected: {status:?}");
    p.disconnect();
}

#[test]
fn audit_log_has_one_line_per_key_use_and_fails_closed() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["audit"]);
    let config = hsm.config(&["audit"], 1, "");
    let (_c, registry) = softhsm::registry(&config);
    let audit = hsm.audit_path();
    let service = KeyService::new(&registry, &audit, 0).unwrap();
    let hsm_key = KeyRef::parse("pkcs11:token=audit;object=k").unwrap();
    let sim_key = KeyRef::parse("sim:k").unwrap();
    service.generate(&hsm_key, "ES256", 0).unwrap();
    let input = [7u8; 32];
    let audited = AuditInput::whole(&input).with_digest("SHA-256", &[9u8; 32]);
    service.sign(&hsm_key, "ES256", SignInput::Message(b"m"), &audited, SigFormat::Der).unwrap();
    service.sign(&sim_key, "ES256", SignInput::Message(b"m"), &audited, SigFormat::Der).unwrap();
    let refused = service.sign(&hsm_key, "RS256", SignInput::Message(b"m"), &audited, SigFormat::Der);
    assert!(refused.is_err());
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|l| l["event"] != "genesis")
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    let hsm_sign = &lines[1];
    for field in ["time", "operation", "key", "algorithm", "provider", "provider_origin", "input_sha256", "outcome"] {
        assert!(hsm_sign.get(field).is_some(), "missing {field}: {hsm_sign}");
    }
    assert_eq!(hsm_sign["operation"], "sign");
    assert_eq!(hsm_sign["key"], "pkcs11:token=audit;object=k");
    assert_eq!(hsm_sign["provider"], "hsm");
    assert_eq!(hsm_sign["provider_origin"]["pkcs11_module"], MODULE);
    assert!(hsm_sign["provider_origin"]["token_serial"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(hsm_sign["input_sha256"], hex::encode(input));
    assert_eq!(hsm_sign["signed_digest"], serde_json::json!({"hash": "SHA-256", "hex": hex::encode([9u8; 32])}));
    assert_eq!(hsm_sign["outcome"], "ok");
    assert!(hsm_sign["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[2]["provider_origin"]["sha256"], crate::common::digest_of("simulation.wasm"));
    assert!(lines[3]["outcome"].as_str().unwrap().starts_with("error:"));
    assert!(!softhsm::log_shows_pin(&text), "no PIN in the audit log");

    // Unwritable audit log: the key is not used.
    let err = KeyService::new(&registry, hsm.dir.path(), 0).err().expect("a directory is not a log");
    assert!(matches!(err, KeyError::Audit(_)), "{err}");
    // A device (here /dev/full, where every write fails) is not a log: refused at open, so
    // no key is used.
    let err = KeyService::new(&registry, std::path::Path::new("/dev/full"), 0).err().expect("not a regular file");
    assert!(err.to_string().contains("audit log") && err.to_string().contains("not a regular file"), "{err}");
    softhsm::hsm(&registry).disconnect();
}

#[test]
fn cli_with_softhsm_init_and_the_example_config() {
    let _g = softhsm::serial();
    let dir = tempfile::tempdir().unwrap();
    let root = crate::common::repo_root();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let env = [("SOFTHSM2_CONF", conf.to_str().unwrap()), ("CRYPTOHOST_PIN", "2468")];
    let run = |args: &[&str]| {
        let mut c = Command::new(crate::common::binary());
        c.current_dir(&root).args(["--config", "examples/softhsm.toml"]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let mut init = Command::new("bash");
    init.current_dir(&root).arg("scripts/softhsm-init.sh");
    for (k, v) in env {
        init.env(k, v);
    }
    let out = init.output().unwrap();
    assert!(
        out.status.success(),
        "softhsm-init: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let msg = dir.path().join("m");
    std::fs::write(&msg, b"release notes").unwrap();
    let public = run(&["keys", "public", "pkcs11:token=cryptohost-dev;object=org-es256"]);
    assert!(public.status.success(), "{}", String::from_utf8_lossy(&public.stderr));
    let pem = String::from_utf8_lossy(&public.stdout).into_owned();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let pubf = dir.path().join("org.pub");
    std::fs::write(&pubf, &pem).unwrap();
    let sig = dir.path().join("sig");
    let signed = run(&[
        "sign",
        "--alg",
        "ES256",
        "--key",
        "pkcs11:token=cryptohost-dev;object=org-es256",
        "--out",
        sig.to_str().unwrap(),
        msg.to_str().unwrap(),
    ]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let verified = run(&[
        "verify",
        "--alg",
        "ES256",
        "--pub",
        pubf.to_str().unwrap(),
        "--sig",
        sig.to_str().unwrap(),
        msg.to_str().unwrap(),
    ]);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stderr));
    let ossl = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubf)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ossl.stdout).contains("Verified OK"));
    let listed = run(&["keys", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    for k in ["org-es256", "org-rsa", "org-aes"] {
        assert!(text.contains(&format!("object={k}")), "{k} missing from {text}");
    }
    let status = run(&["hsm", "status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("healthy"));
    let all_output =
        format!("{}{}{}", String::from_utf8_lossy(&signed.stderr), String::from_utf8_lossy(&listed.stderr), text);
    assert!(!all_output.contains("2468"), "the PIN must not be printed");
}

#[test]
fn dual_stack_dsse_hsm_profile_plus_software_eddsa() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["dual"]);
    let config = hsm.config(&["dual"], 1, "");
    let dir = hsm.dir.path();
    // Through a server too, in the suite's server mode.
    let run = |args: &[&str]| crate::common::run(&config, args);
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let out = run(&[
        "keys",
        "generate",
        "pkcs11:token=dual;object=org-es256",
        "--alg",
        "ES256",
        "--pub",
        &s(&dir.join("org.pub")),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["keygen", "--alg", "EdDSA", "--out", &s(&dir.join("ed.pem")), "--pub", &s(&dir.join("ed.pub"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "\n[profiles.org-hsm]\nkey = \"pkcs11:token=dual;object=org-es256\"\nalgorithm = \"ES256\"\nkey_id = \"org-key-001\"\n[profiles.software-eddsa]\nkey = \"file:{}\"\nalgorithm = \"EdDSA\"\n",
        dir.join("ed.pem").display()
    );
    std::fs::write(&config, text).unwrap();
    let doc = dir.join("sbom.json");
    std::fs::write(&doc, b"{\"bomFormat\":\"CycloneDX\"}").unwrap();
    let env = dir.join("sbom.dsse.json");
    let out = run(&[
        "dsse",
        "sign",
        "--profile",
        "org-hsm",
        "--profile",
        "software-eddsa",
        "--payload-type",
        "application/vnd.cyclonedx+json",
        "--out",
        &s(&env),
        &s(&doc),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&env).unwrap()).unwrap();
    let keyids: Vec<&str> =
        written["signatures"].as_array().unwrap().iter().map(|s| s["keyid"].as_str().unwrap()).collect();
    assert!(keyids.contains(&"org-key-001"), "{keyids:?}");
    let out = run(&[
        "dsse",
        "verify",
        "--pub",
        &s(&dir.join("org.pub")),
        "--pub",
        &s(&dir.join("ed.pub")),
        "--threshold",
        "2",
        &s(&env),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Both key uses are in the audit log: the HSM one with its token serial.
    let audit = std::fs::read_to_string(hsm.audit_path()).unwrap();
    assert!(
        audit.contains("\"key\":\"pkcs11:token=dual;object=org-es256\"") && audit.contains("\"algorithm\":\"EdDSA\""),
        "{audit}"
    );
}

#[test]
fn hybrid_dsse_es256_from_the_hsm_plus_ml_dsa_65_needs_both_at_threshold_2() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["hybrid"]);
    let config = hsm.config(&["hybrid"], 1, "");
    let dir = hsm.dir.path();
    // Through a server too, in the suite's server mode.
    let run = |args: &[&str]| crate::common::run(&config, args);
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let out = run(&[
        "keys",
        "generate",
        "pkcs11:token=hybrid;object=org-es256",
        "--alg",
        "ES256",
        "--pub",
        &s(&dir.join("org.pub")),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The post-quantum provider beside the HSM, and a profile for each half.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "\n[[provider]]\nname = \"pqc\"\ncomponent = \"pqc.wasm\"\nsha256 = {:?}\npriority = 90\nrole = \"signer\"\n",
        crate::common::digest_of("pqc.wasm")
    );
    std::fs::write(&config, &text).unwrap();
    let out =
        run(&["keygen", "--alg", "ML-DSA-65", "--out", &s(&dir.join("pq.pem")), "--pub", &s(&dir.join("pq.pub"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    text += &format!(
        "\n[profiles.classic]\nkey = \"pkcs11:token=hybrid;object=org-es256\"\nalgorithm = \"ES256\"\n[profiles.pq]\nkey = \"file:{}\"\nalgorithm = \"ML-DSA-65\"\n",
        dir.join("pq.pem").display()
    );
    std::fs::write(&config, text).unwrap();
    let doc = dir.join("statement.json");
    std::fs::write(&doc, br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#).unwrap();
    let env = dir.join("hybrid.dsse.json");
    let out = run(&[
        "dsse",
        "sign",
        "--profile",
        "classic",
        "--profile",
        "pq",
        "--payload-type",
        "application/vnd.in-toto+json",
        "--out",
        &s(&env),
        &s(&doc),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verify = |pubs: &[&str]| {
        let mut args = vec!["dsse".to_string(), "verify".into()];
        for p in pubs {
            args.push("--pub".into());
            args.push(s(&dir.join(p)));
        }
        args.extend(["--threshold".into(), "2".into(), s(&env)]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args).status.code()
    };
    assert_eq!(verify(&["org.pub", "pq.pub"]), Some(0), "the HSM's ES256 and ML-DSA-65 together");
    assert_eq!(verify(&["org.pub"]), Some(1), "the classical half alone is not enough");
    assert_eq!(verify(&["pq.pub"]), Some(1), "the post-quantum half alone is not enough");
    let audit = std::fs::read_to_string(hsm.audit_path()).unwrap();
    assert!(audit.contains("\"algorithm\":\"ML-DSA-65\"") && audit.contains("object=org-es256"), "{audit}");
}

/// `doctor` against SoftHSM2: the tokens are reached without a single C_Login, and each HSM
/// precondition broken alone is the check that fails, by name.
#[test]
fn doctor_reaches_the_tokens_without_a_login_and_names_each_hsm_failure() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["doctor"]);
    let (spied, log, env) = hsm.spy_config(&["doctor"], 1);
    let doctor = |config: &std::path::Path, without_pin: bool| {
        let mut c = Command::new(crate::common::binary());
        c.args(["--config", config.to_str().unwrap(), "doctor", "--json"]).env_remove("CRYPTOHOST_SOCKET");
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        if without_pin {
            c.env_remove(softhsm::PIN_VAR);
        }
        let out = c.output().unwrap();
        let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let failed: Vec<String> =
            checks.iter().filter(|c| c["ok"] == false).map(|c| c["check"].as_str().unwrap().to_string()).collect();
        (out.status.code(), failed, checks)
    };
    let (code, failed, checks) = doctor(&spied, false);
    assert_eq!((code, failed), (Some(0), vec![]), "{checks:?}");
    assert!(checks.iter().any(|c| c["check"] == "hsm tokens"), "{checks:?}");
    assert_eq!(softhsm::logins_in(&log), 0, "doctor never logs in");
    // Unless asked: --login logs in with the configured PIN, and a wrong PIN fails that check.
    let login = |pin: Option<&str>| {
        let mut c = Command::new(crate::common::binary());
        c.args(["--config", spied.to_str().unwrap(), "doctor", "--login"]).env_remove("CRYPTOHOST_SOCKET");
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(p) = pin {
            c.env(softhsm::PIN_VAR, p);
        }
        c.output().unwrap()
    };
    let out = login(None);
    assert_eq!(out.status.code(), Some(0), "{}", crate::common::stdout(&out));
    assert!(crate::common::stdout(&out).contains("logged in with the configured PIN"));
    assert!(softhsm::logins_in(&log) > 0, "--login logs in");
    let out = login(Some("999999"));
    assert_eq!(out.status.code(), Some(1), "{}", crate::common::stdout(&out));
    let text = crate::common::stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains("hsm tokens")), "{text}");
    assert!(!text.contains("999999"), "the PIN is never shown: {text}");
    // The PIN's source missing: only that check fails (the PIN itself is never read).
    let (code, failed, checks) = doctor(&spied, true);
    assert_eq!((code, failed), (Some(1), vec!["hsm pin source".to_string()]), "{checks:?}");
    // A token the module does not have.
    let text = std::fs::read_to_string(&spied).unwrap().replace("tokens = [\"doctor\"]", "tokens = [\"absent\"]");
    let absent = hsm.dir.path().join("absent.toml");
    std::fs::write(&absent, text).unwrap();
    let (code, failed, checks) = doctor(&absent, false);
    assert_eq!((code, failed), (Some(1), vec!["hsm tokens".to_string()]), "{checks:?}");
    // A module that does not match its pin: named by the module check (and, since it is then
    // never loaded, no token is reached either).
    let plain = hsm.config(&["doctor"], 1, &format!("module_sha256 = \"{}\"\n", "00".repeat(32)));
    let (code, failed, checks) = doctor(&plain, false);
    assert_eq!(code, Some(1));
    assert!(failed.contains(&"hsm module".to_string()), "{checks:?}");
    let module = checks.iter().find(|c| c["check"] == "hsm module").unwrap();
    assert!(module["detail"].as_str().unwrap().contains("pinned 0000"), "{module}");
}

/// The HSM commands' `--json` against their committed schemas (`docs/cli-json/`), against
/// SoftHSM2: keys generate, keys list, hsm status, connect and disconnect.
#[test]
fn hsm_json_outputs_validate_against_their_schemas() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["schema"]);
    let config = hsm.config(&["schema"], 1, "");
    let valid = |name: &str, args: &[&str]| -> serde_json::Value {
        let out = crate::common::run_local(&config, args);
        assert!(out.status.success(), "{args:?}: {}", crate::common::stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        let path = crate::common::repo_root().join(format!("docs/cli-json/{name}.json"));
        let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}\n{doc:#}");
        doc
    };
    let key = "pkcs11:token=schema;object=json-key";
    let made = valid("keys-generate", &["keys", "generate", key, "--alg", "ES256", "--json"]);
    assert!(made["public_key"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
    let listed = valid("keys-list", &["keys", "list", "--json"]);
    assert!(listed.as_array().unwrap().iter().any(|k| k["uri"].as_str().unwrap().contains("json-key")), "{listed}");
    valid("hsm-status", &["hsm", "status", "--json"]);
    valid("hsm-connect", &["hsm", "connect", "--json"]);
    let gone = valid("hsm-disconnect", &["hsm", "disconnect", "--json"]);
    assert_eq!(gone["action"], "disconnect");
}
