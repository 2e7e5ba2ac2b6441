//! The pqc provider (ML-DSA, FIPS 204) through the `cryptohost` binary: keygen/sign/verify for
//! every size, RFC 9881 key formats, OpenSSL interop where the installed OpenSSL knows ML-DSA,
//! DSSE, a hybrid ES256 + ML-DSA-65 envelope, and bad input (exit 2 with a clear message, never
//! a trap).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, OFFLINE, PQC, run, stderr, stdout};
use crate::pqc::{LEVELS, pkcs8, seed_form, spki, tlv};
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = common::write_config(dir.path(), &common::components_dir(), &[OFFLINE, PQC], "");
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

    fn run(&self, args: &[&str]) -> std::process::Output {
        run(&self.config, args)
    }

    /// `keygen` for `alg`; returns (private PEM, public PEM).
    fn keygen(&self, alg: &str, stem: &str) -> (PathBuf, PathBuf) {
        let (key, public) = (self.path(&format!("{stem}.key.pem")), self.path(&format!("{stem}.pub.pem")));
        let o = self.run(&["keygen", "--alg", alg, "--out", s(&key), "--pub", s(&public)]);
        assert!(o.status.success(), "keygen {alg}: {}", stderr(&o));
        (key, public)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// OpenSSL checks `sig` over the whole file `msg` under the SPKI PEM `public`.
fn openssl_verifies(public: &Path, msg: &Path, sig: &Path) {
    common::openssl(&[
        "pkeyutl",
        "-verify",
        "-rawin",
        "-pubin",
        "-inkey",
        s(public),
        "-in",
        s(msg),
        "-sigfile",
        s(sig),
    ]);
}

fn pem_der(path: &Path) -> Vec<u8> {
    let text = fs::read_to_string(path).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap()
}

#[test]
fn keygen_sign_verify_round_trips_for_every_size_through_the_cli() {
    let setup = Setup::new();
    let msg = setup.file("message.txt", b"a post-quantum SBOM\n");
    let tampered = setup.file("tampered.txt", b"a post-quantum SBOm\n");
    for (alg, arc, public_len, sig_len) in LEVELS {
        let (key, public) = setup.keygen(alg, alg);
        // RFC 9881: PKCS#8 in the seed form only (54 bytes: the seed and nothing else) and an
        // SPKI with no parameters around the raw FIPS 204 public key.
        let der = pem_der(&key);
        assert_eq!(der.len(), 54, "{alg}: private key is not the seed form");
        let seed = &der[der.len() - 32..];
        assert_eq!(der, pkcs8(arc, &seed_form(seed)), "{alg}: private key encoding");
        let spki_der = pem_der(&public);
        assert_eq!(spki_der.len(), spki(arc, &vec![0; public_len]).len(), "{alg}: SPKI length");
        assert_eq!(spki_der[..4 + 13], spki(arc, &vec![0; public_len])[..4 + 13], "{alg}: SPKI header");

        let sig = setup.path(&format!("{alg}.sig"));
        let o = setup.run(&["sign", "--alg", alg, "--key", s(&key), "--out", s(&sig), s(&msg)]);
        assert!(o.status.success(), "sign {alg}: {}", stderr(&o));
        assert!(stderr(&o).contains("served by pqc"), "{alg}: {}", stderr(&o));
        assert_eq!(fs::read(&sig).unwrap().len(), sig_len, "{alg}: signature length");

        let o = setup.run(&["verify", "--alg", alg, "--pub", s(&public), "--sig", s(&sig), s(&msg)]);
        assert_eq!(o.status.code(), Some(0), "verify {alg}: {}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "valid");
        let o = setup.run(&["verify", "--alg", alg, "--pub", s(&public), "--sig", s(&sig), s(&tampered)]);
        assert_eq!(o.status.code(), Some(1), "tampered {alg}: {}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "invalid");

        // Hedged: the same key and message sign differently every time, and both verify.
        let o = setup.run(&["sign", "--alg", alg, "--key", s(&key), s(&msg)]);
        assert!(o.status.success(), "{}", stderr(&o));
        let again = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, stdout(&o).trim()).unwrap();
        assert_ne!(again, fs::read(&sig).unwrap(), "{alg}: two signatures are equal: signing is not hedged");
        let sig2 = setup.file(&format!("{alg}.2.sig"), &again);
        let o = setup.run(&["verify", "--alg", alg, "--pub", s(&public), "--sig", s(&sig2), s(&msg)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    // A key verifies only its own parameter set.
    let (_, public65) = (setup.path("ML-DSA-65.key.pem"), setup.path("ML-DSA-65.pub.pem"));
    let o = setup.run(&[
        "verify",
        "--alg",
        "ML-DSA-44",
        "--pub",
        s(&public65),
        "--sig",
        s(&setup.path("ML-DSA-65.sig")),
        s(&msg),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ML-DSA-44 needs an ML-DSA-44 public key, but this is an ML-DSA-65 key"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_ml_dsa_input_is_a_clear_error_never_a_trap() {
    let setup = Setup::new();
    let msg = setup.file("message.txt", b"payload\n");
    let (key, public) = setup.keygen("ML-DSA-65", "k");
    let sig = setup.path("k.sig");
    let o = setup.run(&["sign", "--alg", "ML-DSA-65", "--key", s(&key), "--out", s(&sig), s(&msg)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let good_sig = fs::read(&sig).unwrap();

    let check = |args: &[&str], needle: &str| {
        let o = setup.run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in: {err}");
        assert!(!err.contains("trap") && !err.contains("fault"), "{args:?}: {err}");
    };

    // A signature one byte short, and one byte long.
    let short = setup.file("short.sig", &good_sig[..good_sig.len() - 1]);
    check(
        &["verify", "--alg", "ML-DSA-65", "--pub", s(&public), "--sig", s(&short), s(&msg)],
        "an ML-DSA-65 signature is 3309 bytes, this one is 3308",
    );
    let long = setup.file("long.sig", &[&good_sig[..], &[0]].concat());
    check(
        &["verify", "--alg", "ML-DSA-65", "--pub", s(&public), "--sig", s(&long), s(&msg)],
        "an ML-DSA-65 signature is 3309 bytes, this one is 3310",
    );

    // A truncated public key: the raw key inside a well-formed SPKI, one byte short.
    let raw = &pem_der(&public)[22..];
    let cut = setup.file("cut.pub.der", &spki(18, &raw[..raw.len() - 1]));
    check(
        &["verify", "--alg", "ML-DSA-65", "--pub", s(&cut), "--sig", s(&sig), s(&msg)],
        "an ML-DSA-65 public key is 1952 bytes, this one is 1951",
    );
    // A truncated file: not DER any more.
    let der = pem_der(&public);
    let torn = setup.file("torn.pub.der", &der[..der.len() / 2]);
    check(
        &["verify", "--alg", "ML-DSA-65", "--pub", s(&torn), "--sig", s(&sig), s(&msg)],
        "not a DER SubjectPublicKeyInfo",
    );
    let private = pem_der(&key);
    let torn_key = setup.file("torn.key.der", &private[..private.len() - 5]);
    check(&["sign", "--alg", "ML-DSA-65", "--key", s(&torn_key), s(&msg)], "not a DER PKCS#8 PrivateKeyInfo");

    // Seeds of the wrong size, and a key without its seed.
    for n in [0usize, 31, 33, 64] {
        let k = setup.file(&format!("seed{n}.der"), &pkcs8(18, &seed_form(&vec![7u8; n])));
        check(
            &["sign", "--alg", "ML-DSA-65", "--key", s(&k), s(&msg)],
            &format!("an ML-DSA-65 seed is 32 bytes, this one is {n}"),
        );
    }
    let expanded = setup.file("expanded.der", &pkcs8(18, &tlv(0x04, &[0u8; 4032])));
    check(&["sign", "--alg", "ML-DSA-65", "--key", s(&expanded), s(&msg)], "expandedKey form only");

    // A key of another type or size than --alg says.
    check(&["sign", "--alg", "ML-DSA-87", "--key", s(&key), s(&msg)], "ML-DSA-87 needs an ML-DSA-87 key");
    let (ec_key, _) = setup.keygen("ES256", "ec");
    check(&["sign", "--alg", "ML-DSA-65", "--key", s(&ec_key), s(&msg)], "ML-DSA keys only");
}

#[test]
fn openssl_interop_where_openssl_knows_ml_dsa() {
    let listed = Command::new("openssl").args(["list", "-signature-algorithms"]).output().expect("openssl runs");
    if !String::from_utf8_lossy(&listed.stdout).to_ascii_uppercase().contains("ML-DSA-65") {
        let version = Command::new("openssl").arg("version").output().expect("openssl runs");
        println!(
            "NOTE: the installed {} does not list ML-DSA (`openssl list -signature-algorithms`; OpenSSL 3.5 \
             or later does): the ML-DSA OpenSSL interop part did not run",
            String::from_utf8_lossy(&version.stdout).trim()
        );
        return;
    }
    let setup = Setup::new();
    let msg = setup.file("message.txt", b"signed on one side, checked on the other\n");
    let tampered = setup.file("tampered.txt", b"signed on one side, checked on the otheR\n");
    for (alg, ..) in LEVELS {
        // OpenSSL's key (its default PKCS#8 form) -> cryptohost signs -> OpenSSL verifies.
        let key = setup.path(&format!("{alg}.ossl.key.pem"));
        let public = setup.path(&format!("{alg}.ossl.pub.pem"));
        common::openssl(&["genpkey", "-algorithm", alg, "-out", s(&key)]);
        common::openssl(&["pkey", "-in", s(&key), "-pubout", "-out", s(&public)]);
        let sig = setup.path(&format!("{alg}.ch.sig"));
        let o = setup.run(&["sign", "--alg", alg, "--key", s(&key), "--out", s(&sig), s(&msg)]);
        assert!(o.status.success(), "cryptohost signs with OpenSSL's {alg} key: {}", stderr(&o));
        openssl_verifies(&public, &msg, &sig);

        // OpenSSL signs -> cryptohost verifies (and rejects a tampered file).
        let osig = setup.path(&format!("{alg}.ossl.sig"));
        common::openssl(&["pkeyutl", "-sign", "-rawin", "-inkey", s(&key), "-in", s(&msg), "-out", s(&osig)]);
        let o = setup.run(&["verify", "--alg", alg, "--pub", s(&public), "--sig", s(&osig), s(&msg)]);
        assert_eq!(o.status.code(), Some(0), "{alg}: {}", stderr(&o));
        let o = setup.run(&["verify", "--alg", alg, "--pub", s(&public), "--sig", s(&osig), s(&tampered)]);
        assert_eq!(o.status.code(), Some(1), "{alg}: {}", stderr(&o));

        // cryptohost's seed-form key and SPKI -> OpenSSL reads them and checks our signature.
        let (ckey, cpub) = setup.keygen(alg, &format!("{alg}.ch"));
        let csig = setup.path(&format!("{alg}.ch2.sig"));
        let o = setup.run(&["sign", "--alg", alg, "--key", s(&ckey), "--out", s(&csig), s(&msg)]);
        assert!(o.status.success(), "{}", stderr(&o));
        openssl_verifies(&cpub, &msg, &csig);
        let derived = setup.path(&format!("{alg}.derived.pub.pem"));
        common::openssl(&["pkey", "-in", s(&ckey), "-pubout", "-out", s(&derived)]);
        assert_eq!(pem_der(&derived), pem_der(&cpub), "{alg}: OpenSSL derives another public key from our seed");
    }
}

#[test]
fn dsse_with_ml_dsa_65() {
    let setup = Setup::new();
    let payload = setup.file("statement.json", br#"{"_type":"https://in-toto.io/Statement/v1"}"#);
    let (key, public) = setup.keygen("ML-DSA-65", "pq");
    let (_, ec_public) = setup.keygen("ES256", "ec");
    let envelope = setup.path("envelope.json");
    let o = setup.run(&[
        "dsse",
        "sign",
        "--key",
        s(&key),
        "--alg",
        "ML-DSA-65",
        "--payload-type",
        "application/vnd.in-toto+json",
        "--out",
        s(&envelope),
        s(&payload),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = setup.run(&["dsse", "verify", "--pub", s(&public), s(&envelope)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Under another key: not valid.
    let o = setup.run(&["dsse", "verify", "--pub", s(&ec_public), s(&envelope)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // A changed payload type changes the PAE: not valid.
    let mut env: serde_json::Value = serde_json::from_slice(&fs::read(&envelope).unwrap()).unwrap();
    env["payloadType"] = "text/plain".into();
    let changed = setup.file("changed.json", env.to_string().as_bytes());
    let o = setup.run(&["dsse", "verify", "--pub", s(&public), s(&changed)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // An ML-DSA key names its own algorithm: --pub ES256:KEY is refused.
    let o = setup.run(&["dsse", "verify", "--pub", &format!("ES256:{}", s(&public)), s(&envelope)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("only verifies ML-DSA-65"), "{}", stderr(&o));
}

#[test]
fn hybrid_envelope_es256_and_ml_dsa_65_needs_both_for_threshold_2() {
    let setup = Setup::new();
    let payload = setup.file("statement.json", br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#);
    let (ec_key, ec_public) = setup.keygen("ES256", "classic");
    let (pq_key, pq_public) = setup.keygen("ML-DSA-65", "pq");
    let mut text = fs::read_to_string(&setup.config).unwrap();
    text += &format!(
        "\n[profiles.classic]\nkey = \"file:{}\"\nalgorithm = \"ES256\"\n[profiles.pq]\nkey = \"file:{}\"\nalgorithm = \"ML-DSA-65\"\n",
        s(&ec_key),
        s(&pq_key)
    );
    fs::write(&setup.config, text).unwrap();

    let envelope = setup.path("hybrid.json");
    let o = setup.run(&[
        "dsse",
        "sign",
        "--profile",
        "classic",
        "--profile",
        "pq",
        "--payload-type",
        "application/vnd.in-toto+json",
        "--out",
        s(&envelope),
        s(&payload),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 signature(s)"), "{}", stderr(&o));
    let env: serde_json::Value = serde_json::from_slice(&fs::read(&envelope).unwrap()).unwrap();
    assert_eq!(env["signatures"].as_array().map(Vec::len), Some(2));

    let verify = |env: &Path, keys: &[&Path], threshold: &str| {
        let mut args = vec!["dsse", "verify", "--threshold", threshold];
        for k in keys {
            args.extend(["--pub", s(k)]);
        }
        args.push(s(env));
        setup.run(&args)
    };
    let o = verify(&envelope, &[&ec_public, &pq_public], "2");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Both keys are named as signers, by file, locally and through a server alike.
    let both = ["classic.pub.pem", "pq.pub.pem"];
    assert!(both.iter().all(|k| stderr(&o).contains(k)), "{}", stderr(&o));
    // Either key alone does not reach 2.
    for one in [&ec_public, &pq_public] {
        let o = verify(&envelope, &[one], "2");
        assert_eq!(o.status.code(), Some(1), "{}: {}", one.display(), stderr(&o));
    }
    // Strip the post-quantum signature: the classical one alone still counts once, not twice.
    let mut classic_only = env.clone();
    let sigs = env["signatures"].as_array().unwrap();
    let ec_sig = sigs.iter().find(|x| x["sig"].as_str().is_some_and(|b| b.len() < 200)).unwrap().clone();
    classic_only["signatures"] = serde_json::json!([ec_sig.clone(), ec_sig]);
    let stripped = setup.file("stripped.json", classic_only.to_string().as_bytes());
    let o = verify(&stripped, &[&ec_public, &pq_public], "2");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = verify(&stripped, &[&ec_public, &pq_public], "1");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
