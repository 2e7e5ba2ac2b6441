//! Arbitrary bytes into every public entry point: errors or `false`, never a panic.

use fastverify::{HashAlg, P256VerifyingKey, RsaPublicKey, exponent_from_be, parse_der, parse_p1363, rsa_public};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn bytes(rng: &mut ChaCha20Rng, max: usize) -> Vec<u8> {
    let len = (rng.next_u32() as usize) % (max + 1);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    // Bias towards structured prefixes sometimes.
    if len > 0 && rng.next_u32().is_multiple_of(3) {
        v[0] = [0x00, 0x02, 0x03, 0x04, 0x30, 0xff][rng.next_u32() as usize % 6];
    }
    v
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let g = hex::decode(
        "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    )
    .unwrap();
    let key = P256VerifyingKey::from_sec1(&g).unwrap();
    let rsa_n = vec![0xc5u8; 256];
    let rsa = RsaPublicKey::new(&rsa_n, 65537).unwrap();
    for i in 0..3000 {
        let _ = P256VerifyingKey::from_sec1(&bytes(&mut rng, 70));
        let mut sec = vec![0u8; if i % 2 == 0 { 65 } else { 33 }];
        rng.fill_bytes(&mut sec);
        sec[0] = if i % 2 == 0 { 4 } else { 2 + (i as u8 / 2) % 2 };
        let _ = P256VerifyingKey::from_sec1(&sec);
        let sig = bytes(&mut rng, 80);
        let _ = parse_der(&sig);
        let _ = parse_p1363(&sig);
        let (mut r, mut s) = ([0u8; 32], [0u8; 32]);
        rng.fill_bytes(&mut r);
        rng.fill_bytes(&mut s);
        if i % 5 == 0 {
            r = [0xff; 32];
        }
        let digest = bytes(&mut rng, 100);
        assert!(!key.verify_prehash(&digest, &r, &s));
        let _ = RsaPublicKey::from_be(&bytes(&mut rng, 300), &bytes(&mut rng, 10));
        let _ = exponent_from_be(&bytes(&mut rng, 12));
        let sig = bytes(&mut rng, 260);
        let _ = rsa_public(&rsa_n, 3 + 2 * (i as u64 % 5), &sig);
        for h in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let d = bytes(&mut rng, 70);
            assert!(!rsa.verify_pkcs1v15(h, &d, &sig));
            assert!(!rsa.verify_pss(h, &d, &sig, (rng.next_u32() % 300) as usize));
        }
        let mut full = vec![0u8; 256];
        rng.fill_bytes(&mut full);
        full[0] &= 0x7f;
        assert!(!rsa.verify_pss(HashAlg::Sha256, &[0; 32], &full, 32));
        assert!(!rsa.verify_pss(HashAlg::Sha512, &[0; 64], &full, 1000));
        assert!(!rsa.verify_pkcs1v15(HashAlg::Sha384, &[0; 48], &full));
    }
}

#[test]
fn der_strictness() {
    let ok = |v: &[u8]| parse_der(v).is_some();
    assert!(ok(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]));
    assert!(!ok(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])); // long-form length
    assert!(!ok(&[0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00])); // trailing inside
    assert!(!ok(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00])); // trailing outside
    assert!(!ok(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01])); // negative
    assert!(!ok(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01])); // non-minimal
    assert!(ok(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x81, 0x02, 0x01, 0x01])); // needed zero
    assert!(!ok(&[0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x01])); // empty integer
    assert!(!ok(&[0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])); // wrong tag
    let mut big = vec![0x30, 0x26, 0x02, 0x21, 0x01];
    big.extend_from_slice(&[0u8; 32]);
    big.extend_from_slice(&[0x02, 0x01, 0x01]);
    assert!(!ok(&big)); // 33-byte integer without a sign byte: > 256 bits
}
