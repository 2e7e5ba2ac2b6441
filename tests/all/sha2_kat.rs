//! SHA-2 known answers (FIPS 180-4 example messages) through the component, one-shot and
//! streamed.

use std::io::Cursor;

use crate::common;

fn message(test: &serde_json::Value) -> Vec<u8> {
    if let Some(hex) = test["msg_hex"].as_str() {
        return hex::decode(hex).expect("hex message");
    }
    // The one generated message: "byte 0x61 ('a') repeated 1,000,000 times".
    let n = test["msg_len_bytes"].as_u64().expect("length") as usize;
    assert!(test["msg_generator"].as_str().is_some_and(|g| g.contains("0x61")), "unknown generator");
    vec![b'a'; n]
}

#[test]
fn fips180_examples_one_shot_and_streamed() {
    let text = std::fs::read_to_string(common::data("sha2/fips180_examples.json")).expect("KAT file");
    let kats: serde_json::Value = serde_json::from_str(&text).expect("KAT json");
    let (_dir, registry) = common::registry(&[common::OFFLINE]);
    let mut checked = 0;
    for test in kats["tests"].as_array().expect("tests") {
        let msg = message(test);
        for (field, alg) in [("sha256", "SHA-256"), ("sha384", "SHA-384"), ("sha512", "SHA512")] {
            let want = test[field].as_str().expect("digest");
            let one_shot = registry.digest(alg, &msg).expect("digest");
            assert_eq!(hex::encode(&one_shot.value), want, "{} {alg} one-shot", test["name"]);
            let p = one_shot.provider.clone();
            let streamed = p.digest_reader(alg, &mut Cursor::new(&msg)).expect("streamed digest");
            assert_eq!(hex::encode(&streamed), want, "{} {alg} streamed", test["name"]);
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

#[test]
fn unknown_hash_is_refused_by_name() {
    let (_dir, registry) = common::registry(&[common::OFFLINE]);
    let err = registry.digest("MD5", b"x").err().expect("MD5 refused").to_string();
    assert!(err.contains("MD5"), "{err}");
    let p = common::provider(&registry, "offline-verification");
    let err = p.digest("SHA-1", b"x").expect_err("SHA-1 refused").to_string();
    assert!(err.contains("not on the allowlist"), "{err}");
}
