//! The `cryptohost` binary: OpenSSL interop both ways for every algorithm, and bad input.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{self, FAST, OFFLINE, openssl, run, stderr, stdout};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        Setup::with(&[OFFLINE])
    }

    fn with(providers: &[common::P<'_>]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = common::write_config(dir.path(), &common::components_dir(), providers, "");
        Setup { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, contents).unwrap();
        p
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }
}

/// The openssl digest flag and `-sigopt`s of a JOSE algorithm (PSS: salt = hash length, MGF1
/// with the same hash).
fn openssl_opts(alg: &str) -> (String, Vec<String>) {
    let bits = &alg[2..];
    let sigopts = if alg.starts_with("PS") {
        ["rsa_padding_mode:pss", "rsa_pss_saltlen:digest", &format!("rsa_mgf1_md:sha{bits}")]
            .iter()
            .flat_map(|o| ["-sigopt".to_string(), o.to_string()])
            .collect()
    } else {
        Vec::new()
    };
    (format!("-sha{bits}"), sigopts)
}

fn openssl_key(setup: &Setup, alg: &str) -> (PathBuf, PathBuf) {
    let key = setup.path(&format!("{alg}.key.pem"));
    let public = setup.path(&format!("{alg}.pub.pem"));
    let genopts: Vec<&str> = match &alg[..2] {
        "ES" => {
            let curve = match alg {
                "ES256" => "ec_paramgen_curve:P-256",
                "ES384" => "ec_paramgen_curve:P-384",
                _ => "ec_paramgen_curve:P-521",
            };
            vec!["-algorithm", "EC", "-pkeyopt", curve]
        }
        _ => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    };
    let mut args = vec!["genpkey"];
    args.extend(genopts);
    args.extend(["-out", Setup::s(&key)]);
    openssl(&args);
    openssl(&["pkey", "-in", Setup::s(&key), "-pubout", "-out", Setup::s(&public)]);
    (key, public)
}

const ALL: [&str; 9] = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

/// As the shipped config: fast-verification verifies ES256, RS* and PS*, offline-verification
/// signs everything and verifies the rest.
#[test]
fn openssl_interop_both_ways_for_every_algorithm() {
    let setup = Setup::with(&[FAST, OFFLINE]);
    let msg = setup.file("message.txt", b"an SBOM, an attestation, or a VEX document\n");
    let tampered = setup.file("tampered.txt", b"an SBOM, an attestation, or a VEX documenT\n");
    for alg in ALL {
        let (key, public) = openssl_key(&setup, alg);
        let (digest, sigopts) = openssl_opts(alg);

        // cryptohost signs, OpenSSL verifies.
        let sig = setup.path(&format!("{alg}.ours.sig"));
        let out = run(
            &setup.config,
            &["sign", "--alg", alg, "--key", Setup::s(&key), "--out", Setup::s(&sig), Setup::s(&msg)],
        );
        assert_eq!(out.status.code(), Some(0), "{alg} sign: {}", stderr(&out));
        assert!(stderr(&out).contains("served by offline-verification"), "{}", stderr(&out));
        let mut args = vec!["dgst", digest.as_str(), "-verify", Setup::s(&public), "-signature", Setup::s(&sig)];
        args.extend(sigopts.iter().map(String::as_str));
        args.push(Setup::s(&msg));
        let verified = openssl(&args);
        assert!(stdout(&verified).contains("Verified OK"), "{alg}: openssl rejects our signature");

        // OpenSSL signs, cryptohost verifies; a tampered file is invalid (exit 1).
        let theirs = setup.path(&format!("{alg}.theirs.sig"));
        let mut args = vec!["dgst", digest.as_str(), "-sign", Setup::s(&key), "-out", Setup::s(&theirs)];
        args.extend(sigopts.iter().map(String::as_str));
        args.push(Setup::s(&msg));
        openssl(&args);
        let out = run(
            &setup.config,
            &["verify", "--alg", alg, "--pub", Setup::s(&public), "--sig", Setup::s(&theirs), Setup::s(&msg)],
        );
        assert_eq!(out.status.code(), Some(0), "{alg}: openssl signature rejected: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "valid");
        let verifier = if matches!(alg, "ES384" | "ES512") { "offline-verification" } else { "fast-verification" };
        assert!(stderr(&out).contains(&format!("verify: served by {verifier}")), "{alg}: {}", stderr(&out));
        let out = run(
            &setup.config,
            &["verify", "--alg", alg, "--pub", Setup::s(&public), "--sig", Setup::s(&theirs), Setup::s(&tampered)],
        );
        assert_eq!(out.status.code(), Some(1), "{alg}: tampered file accepted: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "invalid");
    }
}

#[test]
fn p1363_and_base64_signatures() {
    let setup = Setup::new();
    let msg = setup.file("m", b"jws payload");
    let (key, public) = openssl_key(&setup, "ES256");
    let out = run(
        &setup.config,
        &["sign", "--alg", "ES256", "--key", Setup::s(&key), "--sig-format", "p1363", Setup::s(&msg)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let b64 = stdout(&out);
    let raw = cryptohost::keyfile::decode_base64(b64.trim().as_bytes()).expect("base64 on stdout");
    assert_eq!(raw.len(), 64, "P1363 ES256 is r||s, 64 bytes");
    let sig = setup.file("sig.b64", b64.as_bytes());
    let out = run(
        &setup.config,
        &[
            "verify",
            "--alg",
            "ES256",
            "--pub",
            Setup::s(&public),
            "--sig",
            Setup::s(&sig),
            "--sig-format",
            "p1363",
            Setup::s(&msg),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The same bytes read as DER are not a DER signature: never guessed.
    let out = run(
        &setup.config,
        &[
            "verify",
            "--alg",
            "ES256",
            "--pub",
            Setup::s(&public),
            "--sig",
            Setup::s(&sig),
            "--sig-format",
            "der",
            Setup::s(&msg),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn keygen_writes_keys_openssl_can_use() {
    let setup = Setup::new();
    let msg = setup.file("m", b"generated inside the sandbox");
    for (alg, bits) in [("ES384", "0"), ("PS256", "2048")] {
        let key = setup.path(&format!("{alg}.gen.pem"));
        let public = setup.path(&format!("{alg}.gen.pub"));
        let out = run(
            &setup.config,
            &["keygen", "--alg", alg, "--rsa-bits", bits, "--out", Setup::s(&key), "--pub", Setup::s(&public)],
        );
        assert_eq!(out.status.code(), Some(0), "{alg}: {}", stderr(&out));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let (digest, sigopts) = openssl_opts(alg);
        let sig = setup.path(&format!("{alg}.gen.sig"));
        let mut args = vec!["dgst", digest.as_str(), "-sign", Setup::s(&key), "-out", Setup::s(&sig)];
        args.extend(sigopts.iter().map(String::as_str));
        args.push(Setup::s(&msg));
        openssl(&args);
        let out = run(
            &setup.config,
            &["verify", "--alg", alg, "--pub", Setup::s(&public), "--sig", Setup::s(&sig), Setup::s(&msg)],
        );
        assert_eq!(out.status.code(), Some(0), "{alg}: {}", stderr(&out));
        // Never overwrites.
        let again = run(&setup.config, &["keygen", "--alg", alg, "--out", Setup::s(&key)]);
        assert_eq!(again.status.code(), Some(2));
        assert!(stderr(&again).contains("must not exist"), "{}", stderr(&again));
    }
    // Ed25519 is written as PKCS#8 v1 (RFC 8410 section 7): OpenSSL 3.0 signs with it (it
    // refuses the v2 form with the public key appended, as pyca/cryptography and WebCrypto do).
    let (key, public) = (setup.path("ed.gen.pem"), setup.path("ed.gen.pub"));
    let out = run(&setup.config, &["keygen", "--alg", "EdDSA", "--out", Setup::s(&key), "--pub", Setup::s(&public)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sig = setup.path("ed.gen.sig");
    openssl(&["pkeyutl", "-sign", "-rawin", "-inkey", Setup::s(&key), "-in", Setup::s(&msg), "-out", Setup::s(&sig)]);
    let out = run(
        &setup.config,
        &["verify", "--alg", "EdDSA", "--pub", Setup::s(&public), "--sig", Setup::s(&sig), Setup::s(&msg)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn hash_streams_and_matches_openssl() {
    let setup = Setup::new();
    // Larger than the guest's whole memory cap (64 MiB): only streaming can hash it.
    let big = setup.path("big.bin");
    let f = fs::File::create(&big).unwrap();
    f.set_len(96 << 20).unwrap();
    for (alg, flag) in [("SHA-256", "-sha256"), ("SHA384", "-sha384"), ("sha-512", "-sha512")] {
        let out = run(&setup.config, &["hash", "--alg", alg, Setup::s(&big)]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let theirs = stdout(&openssl(&["dgst", flag, "-r", Setup::s(&big)]));
        assert_eq!(stdout(&out).trim(), theirs.split_whitespace().next().unwrap(), "{alg}");
    }
    let out = run(&setup.config, &["hash", "--alg", "SHA-256", "--json", Setup::s(&big)]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["provider"]["name"], "native-sha2", "the host's native hashing serves first");
    assert_eq!(v["provider"]["origin"]["kind"], "native");
    assert_eq!(v["algorithm"], "SHA-256");
}

#[test]
fn providers_lists_name_file_digest_priority_and_algorithms() {
    let setup = Setup::new();
    let out = run(&setup.config, &["providers", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let native = &v[0];
    assert_eq!(native["name"], "native-sha2");
    assert_eq!(native["priority"], 400);
    assert_eq!(native["origin"]["kind"], "native");
    assert_eq!(native["version"], env!("CARGO_PKG_VERSION"));
    assert!(native["origin"]["module"].as_str().is_some_and(|m| m.contains("RustCrypto sha2")), "{native}");
    let p = &v[1];
    assert_eq!(p["name"], "offline-verification");
    assert_eq!(p["priority"], 100);
    assert_eq!(p["origin"]["file"], "offline-verification.wasm");
    assert_eq!(p["origin"]["sha256"], common::digest_of("offline-verification.wasm"));
    let text = serde_json::to_string(&p["capabilities"]).unwrap();
    for alg in ALL.iter().chain(&["SHA-256", "SHA-384", "SHA-512"]) {
        assert!(text.contains(alg), "{alg} missing from {text}");
    }
}

/// Runs a command that must fail with exit code 2 and a message containing `expect`.
fn bad(setup: &Setup, args: &[&str], expect: &str) {
    let out = run(&setup.config, args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(expect), "{args:?}: {:?} should contain {expect:?}", stderr(&out));
}

#[test]
fn bad_input_gets_exit_2_and_a_specific_message() {
    let setup = Setup::new();
    let msg = setup.file("m", b"message");
    let empty = setup.file("empty.pem", b"");
    let garbage =
        setup.file("garbage.pem", b"-----BEGIN PRIVATE KEY-----\nnot base64 at all!!\n-----END PRIVATE KEY-----\n");
    let noise = setup.file("noise.bin", b"\x01\x02\x03 definitely not a key");
    let (ec_key, ec_pub) = openssl_key(&setup, "ES256");
    let rsa1024 = setup.path("rsa1024.pem");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", Setup::s(&rsa1024)]);
    let rsa1024_pub = setup.path("rsa1024.pub");
    openssl(&["pkey", "-in", Setup::s(&rsa1024), "-pubout", "-out", Setup::s(&rsa1024_pub)]);
    let s = Setup::s;

    bad(&setup, &["sign", "--alg", "ES256", "--key", s(&empty), s(&msg)], "empty");
    bad(&setup, &["sign", "--alg", "ES256", "--key", s(&garbage), s(&msg)], "not valid PEM");
    bad(&setup, &["sign", "--alg", "ES256", "--key", s(&noise), s(&msg)], "neither PEM nor DER");
    bad(&setup, &["sign", "--alg", "RS256", "--key", s(&rsa1024), s(&msg)], "at least 2048 bits");
    bad(&setup, &["sign", "--alg", "RS256", "--key", s(&ec_key), s(&msg)], "RS256 needs an RSA key");
    bad(&setup, &["sign", "--alg", "ES999", "--key", s(&ec_key), s(&msg)], "unknown signature algorithm \"ES999\"");
    bad(&setup, &["sign", "--alg", "ES256", "--key", s(&ec_key), s(&setup.path("missing"))], "missing");

    let sig = setup.path("sig");
    let out = run(
        &setup.config,
        &["sign", "--alg", "ES256", "--key", s(&ec_key), "--sig-format", "p1363", "--out", s(&sig), s(&msg)],
    );
    assert_eq!(out.status.code(), Some(0));
    let short = setup.file("short.sig", &fs::read(&sig).unwrap()[..63]);
    bad(
        &setup,
        &["verify", "--alg", "ES256", "--pub", s(&ec_pub), "--sig", s(&short), "--sig-format", "p1363", s(&msg)],
        "must be 64 bytes, got 63",
    );
    bad(
        &setup,
        &["verify", "--alg", "HS256", "--pub", s(&ec_pub), "--sig", s(&sig), s(&msg)],
        "unknown signature algorithm",
    );
    bad(
        &setup,
        &["verify", "--alg", "RS256", "--pub", s(&rsa1024_pub), "--sig", s(&sig), s(&msg)],
        "at least 2048 bits",
    );
    bad(
        &setup,
        &["verify", "--alg", "ES384", "--pub", s(&ec_pub), "--sig", s(&sig), s(&msg)],
        "ES384 needs an EC P-384 key",
    );
    bad(&setup, &["verify", "--alg", "ES256", "--pub", s(&empty), "--sig", s(&sig), s(&msg)], "empty");
    bad(&setup, &["verify", "--alg", "ES256", "--pub", s(&ec_key), "--sig", s(&sig), s(&msg)], "is a private key");
    bad(
        &setup,
        &["verify", "--alg", "ES256", "--pub", s(&ec_pub), "--sig", s(&empty), s(&msg)],
        "signature file is empty",
    );
    let (rsa_key, rsa_pub) = openssl_key(&setup, "RS256");
    let rsa_sig = setup.path("rsa.sig");
    assert_eq!(
        run(&setup.config, &["sign", "--alg", "RS256", "--key", s(&rsa_key), "--out", s(&rsa_sig), s(&msg)])
            .status
            .code(),
        Some(0)
    );
    let cut = setup.file("rsa-short.sig", &fs::read(&rsa_sig).unwrap()[..255]);
    bad(&setup, &["verify", "--alg", "RS256", "--pub", s(&rsa_pub), "--sig", s(&cut), s(&msg)], "must be 256 bytes");
    bad(&setup, &["hash", "--alg", "MD5", s(&msg)], "MD5");
    bad(&setup, &["hash", "--alg", "SHA-256", s(setup.dir.path())], "not a regular file");
}

#[test]
fn bad_config_and_tampered_component_through_the_cli() {
    let setup = Setup::new();
    let msg = setup.file("m", b"x");
    let broken = setup.file("broken.toml", b"component_dir = \"components\"\n[[provider]]\nname = 3\n");
    let out = common::run(&broken, &["hash", "--alg", "SHA-256", Setup::s(&msg)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.toml") && stderr(&out).contains("line 3"), "{}", stderr(&out));

    let comp = setup.path("components");
    fs::create_dir(&comp).unwrap();
    let mut bytes = fs::read(common::components_dir().join("offline-verification.wasm")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(comp.join("offline-verification.wasm"), bytes).unwrap();
    let sub = setup.path("sub");
    fs::create_dir(&sub).unwrap();
    let config = common::write_config(&sub, &comp, &[OFFLINE], "");
    let out = common::run(&config, &["hash", "--alg", "SHA-256", Setup::s(&msg)]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.contains("does not match its pin") && e.contains(&common::digest_of("offline-verification.wasm")), "{e}");
}

#[test]
fn attacker_sized_and_non_regular_inputs_are_refused_before_reading() {
    let setup = Setup::new();
    let s = Setup::s;
    let msg = setup.file("m", b"message");
    let (ec_key, ec_pub) = openssl_key(&setup, "ES256");
    // A 3 GiB signature or envelope (sparse: costs no disk) is refused by size, not read.
    let huge = setup.path("huge");
    fs::File::create(&huge).unwrap().set_len(3 << 30).unwrap();
    bad(&setup, &["verify", "--alg", "ES256", "--pub", s(&ec_pub), "--sig", s(&huge), s(&msg)], "over the limit");
    bad(&setup, &["verify", "--alg", "ES256", "--pub", s(&huge), "--sig", s(&huge), s(&msg)], "over the limit");
    bad(&setup, &["dsse", "verify", "--pub", s(&ec_pub), s(&huge)], "over the limit");
    bad(&setup, &["sign", "--alg", "ES256", "--key", s(&huge), s(&msg)], "over the limit");
    // Devices and fifos are not regular files: no endless read, no blocked open.
    for input in ["/dev/zero", "/dev/urandom"] {
        bad(&setup, &["hash", "--alg", "SHA-256", input], "not a regular file");
        bad(&setup, &["sign", "--alg", "ES256", "--key", s(&ec_key), input], "not a regular file");
        bad(
            &setup,
            &["dsse", "sign", "--key", s(&ec_key), "--alg", "ES256", "--payload-type", "t", input],
            "not a regular file",
        );
    }
    let fifo = setup.path("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    bad(&setup, &["sign", "--alg", "ES256", "--key", s(&fifo), s(&msg)], "not a regular file");
    bad(&setup, &["verify", "--alg", "ES256", "--pub", s(&fifo), "--sig", s(&msg), s(&msg)], "not a regular file");
    bad(&setup, &["hash", "--alg", "SHA-256", s(&fifo)], "not a regular file");
    // A config or manifest of absurd size is refused the same way.
    let big_config = setup.path("big.toml");
    fs::File::create(&big_config).unwrap().set_len(2 << 30).unwrap();
    let out =
        std::process::Command::new(common::binary()).args(["--config", s(&big_config), "providers"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("over the limit"), "{}", stderr(&out));
}

#[test]
fn outputs_never_follow_symlinks() {
    use std::os::unix::fs::symlink;
    let setup = Setup::new();
    let s = Setup::s;
    let msg = setup.file("m", b"message");
    let (ec_key, ec_pub) = openssl_key(&setup, "ES256");
    let victim = setup.file("victim", b"precious");
    let planted = |name: &str| {
        let p = setup.path(name);
        symlink(&victim, &p).unwrap();
        p
    };
    // sign --out replaces the link with the signature; the victim is untouched.
    let out_link = planted("sig.out");
    let out = run(&setup.config, &["sign", "--alg", "ES256", "--key", s(&ec_key), "--out", s(&out_link), s(&msg)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(!fs::symlink_metadata(&out_link).unwrap().file_type().is_symlink());
    // dsse sign --out and dsse verify --payload-out likewise.
    let env_link = planted("env.out");
    let out = run(
        &setup.config,
        &["dsse", "sign", "--key", s(&ec_key), "--alg", "ES256", "--payload-type", "t", "--out", s(&env_link), s(&msg)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let payload_link = planted("payload.out");
    let out =
        run(&setup.config, &["dsse", "verify", "--pub", s(&ec_pub), "--payload-out", s(&payload_link), s(&env_link)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(fs::read(&payload_link).unwrap(), b"message");
    // keygen never writes through a link (dangling or not) and never overwrites.
    let key_link = setup.path("new.key");
    symlink(setup.path("does-not-exist-yet"), &key_link).unwrap();
    let out = run(&setup.config, &["keygen", "--alg", "ES256", "--out", s(&key_link)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!setup.path("does-not-exist-yet").exists());
    // The audit log is never opened through a symlink.
    let audit_link = setup.dir.path().join("audit.jsonl");
    let _ = fs::remove_file(&audit_link);
    symlink(&victim, &audit_link).unwrap();
    let out = run(&setup.config, &["sign", "--alg", "ES256", "--key", s(&ec_key), s(&msg)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn the_audit_line_hashes_exactly_the_bytes_signed() {
    use sha2::Digest;
    let setup = Setup::new();
    let s = Setup::s;
    let (ec_key, ec_pub) = openssl_key(&setup, "ES384");
    let msg = setup.file("m", b"signed bytes");
    let sig = setup.path("m.sig");
    let out = run(&setup.config, &["sign", "--alg", "ES384", "--key", s(&ec_key), "--out", s(&sig), s(&msg)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let audit = fs::read_to_string(setup.dir.path().join("audit.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(line["input_sha256"], hex::encode(sha2::Sha256::digest(b"signed bytes")));
    assert_eq!(line["provider_origin"]["component"], "offline-verification.wasm");
    let out = run(&setup.config, &["verify", "--alg", "ES384", "--pub", s(&ec_pub), "--sig", s(&sig), s(&msg)]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_key_that_could_not_be_written_is_not_audited_as_ok() {
    let setup = Setup::new();
    let out_path = setup.path("no-such-dir/key.pem");
    let out = run(&setup.config, &["keygen", "--alg", "ES256", "--out", Setup::s(&out_path)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("could not be stored"), "{}", stderr(&out));
    let audit = fs::read_to_string(setup.dir.path().join("audit.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(line["operation"], "generate");
    assert!(line["outcome"].as_str().unwrap().starts_with("error"), "{line}");
}

#[test]
fn a_pin_typed_into_a_key_uri_is_refused_and_never_echoed() {
    let setup = Setup::new();
    let msg = setup.file("m", b"message");
    for uri in ["pkcs11:token=t;object=k?pin-value=hunter2secret", "pkcs11:token=t;object=k;PIN-VALUE=hunter2secret"] {
        for args in [vec!["keys", "public", uri], vec!["sign", "--alg", "ES256", "--key", uri, Setup::s(&msg)]] {
            let out = run(&setup.config, &args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(!stderr(&out).contains("hunter2secret"), "{args:?} echoed the PIN: {}", stderr(&out));
            assert!(stderr(&out).to_lowercase().contains("pin"), "{args:?}: {}", stderr(&out));
        }
    }
}

#[test]
fn verify_takes_the_algorithm_from_a_key_whose_type_decides_it() {
    let setup = Setup::new();
    let msg = setup.file("msg", b"no --alg needed");
    for (alg, algo_args) in [
        ("ES384", vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("EdDSA", vec!["-algorithm", "ED25519"]),
    ] {
        let key = setup.path(&format!("{alg}.pem"));
        let public = setup.path(&format!("{alg}.pub"));
        let mut genpkey = vec!["genpkey"];
        genpkey.extend(&algo_args);
        genpkey.extend(["-out", Setup::s(&key)]);
        assert!(openssl(&genpkey).status.success());
        assert!(openssl(&["pkey", "-in", Setup::s(&key), "-pubout", "-out", Setup::s(&public)]).status.success());
        let sig = setup.path(&format!("{alg}.sig"));
        let out = run(
            &setup.config,
            &["sign", "--alg", alg, "--key", Setup::s(&key), "--out", Setup::s(&sig), Setup::s(&msg)],
        );
        assert_eq!(out.status.code(), Some(0), "{alg}: {}", stderr(&out));
        let out = run(&setup.config, &["verify", "--pub", Setup::s(&public), "--sig", Setup::s(&sig), Setup::s(&msg)]);
        assert_eq!(
            (out.status.code(), stdout(&out).trim().to_string()),
            (Some(0), "valid".to_string()),
            "{alg}: {}",
            stderr(&out)
        );
        // A different --alg than the key's is refused, never substituted.
        let out = run(
            &setup.config,
            &["verify", "--alg", "ES256", "--pub", Setup::s(&public), "--sig", Setup::s(&sig), Setup::s(&msg)],
        );
        assert_eq!(out.status.code(), Some(2), "{alg}: {}", stdout(&out));
    }
    // An RSA key fits RS* and PS*: it needs --alg, and the error says so.
    let key = setup.path("rsa.pem");
    let public = setup.path("rsa.pub");
    assert!(
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", Setup::s(&key)])
            .status
            .success()
    );
    assert!(openssl(&["pkey", "-in", Setup::s(&key), "-pubout", "-out", Setup::s(&public)]).status.success());
    let out = run(&setup.config, &["verify", "--pub", Setup::s(&public), "--sig", Setup::s(&msg), Setup::s(&msg)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give --alg"), "{}", stderr(&out));
}

#[test]
fn quiet_drops_the_served_by_lines_and_nothing_else() {
    let setup = Setup::new();
    let msg = setup.file("msg", b"quiet");
    let loud = run(&setup.config, &["hash", "--alg", "SHA-256", Setup::s(&msg)]);
    let quiet = run(&setup.config, &["-q", "hash", "--alg", "SHA-256", Setup::s(&msg)]);
    assert!(stderr(&loud).contains("served by"), "{}", stderr(&loud));
    assert!(!stderr(&quiet).contains("served by"), "{}", stderr(&quiet));
    assert_eq!((quiet.status.code(), quiet.stdout), (Some(0), loud.stdout));
    // Errors still speak.
    let out = run(&setup.config, &["-q", "hash", "--alg", "SHA-256", "/nonexistent"]);
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
}
