//! SHA-2 known answers (FIPS 180-4 example messages) through the host's native hashing and the
//! component, one-shot and streamed, and the two compared on every length.

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

/// The providers that hash in a default registry over the offline component: the host's
/// native SHA-2 (served first) and the component.
const HASHERS: [&str; 2] = ["native-sha2", "offline-verification"];

#[test]
fn fips180_examples_one_shot_and_streamed_through_native_and_component() {
    let text = std::fs::read_to_string(common::data("sha2/fips180_examples.json")).expect("KAT file");
    let kats: serde_json::Value = serde_json::from_str(&text).expect("KAT json");
    let (_dir, registry) = common::registry(&[common::OFFLINE]);
    let mut checked = 0;
    for test in kats["tests"].as_array().expect("tests") {
        let msg = message(test);
        for (field, alg) in [("sha256", "SHA-256"), ("sha384", "SHA-384"), ("sha512", "SHA512")] {
            let want = test[field].as_str().expect("digest");
            let routed = registry.digest(alg, &msg).expect("digest");
            assert_eq!(routed.provider.descriptor().name, "native-sha2", "native hashing is served first");
            assert_eq!(hex::encode(&routed.value), want, "{} {alg} routed", test["name"]);
            for name in HASHERS {
                let p = common::provider(&registry, name);
                let canonical = if alg == "SHA512" { "SHA-512" } else { alg };
                let one_shot = p.digest(canonical, &msg).expect("digest");
                assert_eq!(hex::encode(&one_shot), want, "{} {alg} one-shot by {name}", test["name"]);
                let streamed = p.digest_reader(canonical, &mut Cursor::new(&msg)).expect("streamed digest");
                assert_eq!(hex::encode(&streamed), want, "{} {alg} streamed by {name}", test["name"]);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

/// Every length from 0 to 300 bytes and lengths around the native reader's chunk and the SHA-2
/// block sizes: the native provider and the component give the same digests.
#[test]
fn native_and_component_agree_on_every_length_and_chunk_edge() {
    let (_dir, registry) = common::registry(&[common::OFFLINE]);
    let (native, component) = (common::provider(&registry, HASHERS[0]), common::provider(&registry, HASHERS[1]));
    let edge = cryptohost::native::READ_CHUNK;
    let data: Vec<u8> = (0..edge * 2 + 200).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    let lengths = (0..=300).chain([edge - 1, edge, edge + 1, edge + 63, edge + 64, 2 * edge + 129]);
    for len in lengths {
        for alg in ["SHA-256", "SHA-384", "SHA-512"] {
            let m = &data[..len];
            let want = component.digest(alg, m).expect("component digest");
            assert_eq!(native.digest(alg, m).expect("native digest"), want, "{alg} of {len} bytes");
            let streamed = native.digest_reader(alg, &mut Cursor::new(m)).expect("native streamed");
            assert_eq!(streamed, want, "{alg} of {len} bytes, streamed");
        }
    }
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
