//! `keys csr`: PKCS#10 requests signed by held keys through the registry, checked by OpenSSL
//! (`req -verify`, the subject and the SANs) for every key type the simulation holds, and an
//! ML-DSA-65 request (which this OpenSSL cannot read) checked by splitting it and verifying its
//! signature over the CertificationRequestInfo. The SoftHSM2 keys' requests are in `tests/hsm`.

use std::fs;
use std::path::Path;

use crate::common::{self, OFFLINE, P, PQC, run, stderr, stdout};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn config(dir: &Path) -> std::path::PathBuf {
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let path = common::write_config(dir, &common::components_dir(), &[OFFLINE, PQC, sim], "");
    let text = fs::read_to_string(&path).unwrap().replace(
        "name = \"simulation\"\n",
        "name = \"simulation\"\nkey_prefix = \"sim\"\nsettings = { seed = \"csr\" }\n",
    );
    fs::write(&path, format!("{text}\n[state]\ndir = \"state\"\n")).unwrap();
    path
}

/// One DER TLV at the start of `der`: (header length, content length).
fn tlv(der: &[u8]) -> (usize, usize) {
    match der[1] {
        n if n < 0x80 => (2, n as usize),
        0x81 => (3, der[2] as usize),
        0x82 => (4, (der[2] as usize) << 8 | der[3] as usize),
        0x83 => (5, (der[2] as usize) << 16 | (der[3] as usize) << 8 | der[4] as usize),
        other => panic!("length form {other:#x}"),
    }
}

/// (CertificationRequestInfo DER, signature bytes) of a DER request.
fn split(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (h, _) = tlv(der);
    let body = &der[h..];
    let (ih, il) = tlv(body);
    let info = body[..ih + il].to_vec();
    let rest = &body[ih + il..];
    let (ah, al) = tlv(rest);
    let bits = &rest[ah + al..];
    let (bh, bl) = tlv(bits);
    assert_eq!(bits[0], 0x03, "a BIT STRING");
    assert_eq!(bits[bh], 0, "no unused bits");
    (info, bits[bh + 1..bh + bl].to_vec())
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[test]
fn requests_for_every_simulation_key_type_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let subject = "CN=signer.example,OU=Release\\, Tools,O=Example Org,C=DE";
    for alg in ["ES256", "ES384", "ES512", "RS256", "PS256", "PS384", "EdDSA"] {
        let out_path = dir.path().join(format!("{alg}.csr"));
        let out = run(
            &config,
            &[
                "keys",
                "csr",
                &format!("sim:csr-{alg}"),
                "--alg",
                alg,
                "--subject",
                subject,
                "--san",
                "signer.example",
                "--san",
                "ip:192.0.2.7",
                "--san",
                "email:ops@example.com",
                "--out",
                s(&out_path),
            ],
        );
        assert!(out.status.success(), "{alg}: {}", stderr(&out));
        let verified =
            Command::new("openssl").args(["req", "-in", s(&out_path), "-noout", "-verify"]).output().unwrap();
        let said = format!("{}{}", stdout(&verified), stderr(&verified));
        assert!(said.contains("verify OK"), "{alg}: {said}");
        let text = stdout(&common::openssl(&["req", "-in", s(&out_path), "-noout", "-text"]));
        assert!(text.contains("DNS:signer.example, IP Address:192.0.2.7, email:ops@example.com"), "{alg}: {text}");
        let name = stdout(&common::openssl(&["req", "-in", s(&out_path), "-noout", "-subject", "-nameopt", "RFC2253"]));
        assert_eq!(name.trim(), format!("subject={subject}"), "{alg}");
        // The request's key is the key's public key.
        let public = dir.path().join(format!("{alg}.pub"));
        fs::write(&public, run(&config, &["keys", "public", &format!("sim:csr-{alg}"), "--alg", alg]).stdout).unwrap();
        let from_csr = stdout(&common::openssl(&["req", "-in", s(&out_path), "-noout", "-pubkey"]));
        assert_eq!(from_csr, fs::read_to_string(&public).unwrap(), "{alg}");
        // A flipped signature byte: OpenSSL refuses it.
        let mut der = pem_to_der(&fs::read_to_string(&out_path).unwrap());
        let last = der.len() - 1;
        der[last] ^= 1;
        let bad = dir.path().join(format!("{alg}.bad.der"));
        fs::write(&bad, &der).unwrap();
        let refused = Command::new("openssl")
            .args(["req", "-in", s(&bad), "-inform", "DER", "-noout", "-verify"])
            .output()
            .unwrap();
        let said = format!("{}{}", stdout(&refused), stderr(&refused));
        assert!(!said.contains("verify OK"), "{alg}: a tampered request verified: {said}");
    }
    // Each request is a key use, audited with what was signed.
    let audit = fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let signs = audit.lines().filter(|l| l.contains("\"sim:csr-") && l.contains("\"input_sha256\"")).count();
    assert!(signs >= 7, "{audit}");
}

use std::process::Command;

#[test]
fn an_ml_dsa_request_carries_a_signature_over_its_request_info() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (key, public) = (dir.path().join("pq.pem"), dir.path().join("pq.pub"));
    assert!(run(&config, &["keygen", "--alg", "ML-DSA-65", "--out", s(&key), "--pub", s(&public)]).status.success());
    let csr = dir.path().join("pq.csr");
    // A key file is the CLI's own (a server never opens a client's file): run locally.
    let out = common::run_local(
        &config,
        &["keys", "csr", &format!("file:{}", s(&key)), "--alg", "ML-DSA-65", "--subject", "CN=pq", "--out", s(&csr)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let der = pem_to_der(&fs::read_to_string(&csr).unwrap());
    let parsed =
        stdout(&common::openssl(&["asn1parse", "-inform", "DER", "-in", s(&write(dir.path(), "pq.der", &der))]));
    assert_eq!(parsed.matches("2.16.840.1.101.3.4.3.18").count(), 2, "the key's and the signature's OID: {parsed}");
    let (info, signature) = split(&der);
    let (info_path, sig_path) = (write(dir.path(), "info.der", &info), write(dir.path(), "sig.bin", &signature));
    let out = run(&config, &["verify", "--pub", s(&public), "--sig", s(&sig_path), s(&info_path)]);
    assert!(out.status.success() && stdout(&out).contains("valid"), "{}{}", stdout(&out), stderr(&out));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_subjects_sans_and_staged_keys_are_refused_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let csr = |args: &[&str]| {
        let mut all = vec!["keys", "csr", "sim:c", "--alg", "ES256"];
        all.extend_from_slice(args);
        run(&config, &all)
    };
    for (args, why) in [
        (&["--subject", ""][..], "the subject is empty"),
        (&["--subject", "XX=1"][..], "unknown attribute type"),
        (&["--subject", "C=Germany"][..], "C"),
        (&["--subject", "CN=a", "--san", "ip:300.1.1.1"][..], "invalid IP address"),
        (&["--subject", "CN=a\\"][..], "escape"),
    ] {
        let out = csr(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    // An algorithm that does not fit the key type.
    let out = run(&config, &["keys", "csr", "sim:c", "--alg", "EdDSA", "--subject", "CN=a"]);
    assert!(out.status.success(), "a sim name holds a key per type: {}", stderr(&out));
    // A staged version signs no request.
    assert!(run(&config, &["keys", "rotate", "sim:c", "--alg", "ES256"]).status.success());
    let out = run(&config, &["keys", "csr", "sim:c;x-version=2", "--alg", "ES256", "--subject", "CN=a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("staged"), "{}", stderr(&out));
}
