//! Differential tests against RustCrypto `rsa` 0.10 with seeded random keys and messages.

use fastverify::{HashAlg, RsaPublicKey, rsa_public};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign, PrivateKey, PublicKey, pss::Pss};
use sha2::{Sha256, Sha384, Sha512};

fn pick(i: usize) -> HashAlg {
    [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512][i % 3]
}

fn pkcs1(h: HashAlg) -> Pkcs1v15Sign {
    match h {
        HashAlg::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
        HashAlg::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
        HashAlg::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
    }
}

fn pss_sign(sk: &PrivateKey, rng: &mut ChaCha20Rng, h: HashAlg, salt: usize, d: &[u8]) -> Vec<u8> {
    match h {
        HashAlg::Sha256 => sk.sign_with_rng(rng, Pss::<Sha256>::new_with_salt(salt), d),
        HashAlg::Sha384 => sk.sign_with_rng(rng, Pss::<Sha384>::new_with_salt(salt), d),
        HashAlg::Sha512 => sk.sign_with_rng(rng, Pss::<Sha512>::new_with_salt(salt), d),
    }
    .unwrap()
}

fn pss_verify(pk: &PublicKey, h: HashAlg, salt: usize, d: &[u8], sig: &[u8]) -> bool {
    match h {
        HashAlg::Sha256 => pk.verify(Pss::<Sha256>::new_with_salt(salt), d, sig),
        HashAlg::Sha384 => pk.verify(Pss::<Sha384>::new_with_salt(salt), d, sig),
        HashAlg::Sha512 => pk.verify(Pss::<Sha512>::new_with_salt(salt), d, sig),
    }
    .is_ok()
}

fn ours(pk: &PublicKey) -> RsaPublicKey {
    RsaPublicKey::from_be(&pk.n().to_be_bytes(), &pk.e().to_be_bytes()).unwrap()
}

fn check_key(rng: &mut ChaCha20Rng, sk: &PrivateKey, messages: usize) {
    let pk = sk.to_public_key();
    let key = ours(&pk);
    for i in 0..messages {
        let h = pick(i);
        let mut digest = vec![0u8; h.output_len()];
        rng.fill_bytes(&mut digest);

        // PKCS#1 v1.5
        let sig = sk.sign(pkcs1(h), &digest).unwrap();
        assert!(pk.verify(pkcs1(h), &digest, &sig).is_ok());
        assert!(key.verify_pkcs1v15(h, &digest, &sig));
        assert!(!key.verify_pkcs1v15(pick(i + 1), &digest[..pick(i + 1).output_len().min(digest.len())], &sig));
        let em = key.public_op(&sig).unwrap();
        assert_eq!(em, rsa_public(&pk.n().to_be_bytes(), 65537.min(exp_u64(&pk)), &sig).unwrap());

        // PSS, salt = hash length (JOSE) and, every few rounds, other lengths.
        let max_salt = (key.bits() as usize - 1).div_ceil(8) - h.output_len() - 2;
        let salt = [h.output_len(), 0, 20, 1][i % 4].min(max_salt);
        let sig_pss = pss_sign(sk, rng, h, salt, &digest);
        assert!(pss_verify(&pk, h, salt, &digest, &sig_pss));
        assert!(key.verify_pss(h, &digest, &sig_pss, salt));
        assert!(!key.verify_pss(h, &digest, &sig_pss, salt + 1));
        assert!(!key.verify_pkcs1v15(h, &digest, &sig_pss));
        assert!(!key.verify_pss(h, &digest, &sig, salt));

        // Tamper with one bit of the digest or signature: both must reject.
        let bit = rng.next_u32() as usize;
        let (mut d2, mut s2, mut p2) = (digest.clone(), sig.clone(), sig_pss.clone());
        match i % 3 {
            0 => flip(&mut d2, bit),
            1 => flip(&mut s2, bit),
            _ => flip(&mut p2, bit),
        }
        let want = pk.verify(pkcs1(h), &d2, &s2).is_ok();
        assert_eq!(key.verify_pkcs1v15(h, &d2, &s2), want);
        let want = pss_verify(&pk, h, salt, &d2, &p2);
        assert_eq!(key.verify_pss(h, &d2, &p2, salt), want);
        assert_eq!(want, i % 3 == 1); // untouched only when the PKCS#1 signature was hit
    }
    // Signature out of range or of the wrong length.
    let n_full = pk.n().to_be_bytes();
    let n = &n_full[n_full.len() - key.size()..];
    assert!(key.public_op(n).is_err());
    let mut above = n.to_vec();
    *above.last_mut().unwrap() = 0xff;
    assert!(key.public_op(&above).is_err() || above.as_slice() < n);
    assert!(key.public_op(&n[1..]).is_err());
    let mut longer = vec![0u8];
    longer.extend_from_slice(n);
    assert!(key.public_op(&longer).is_err());
    assert!(key.public_op(&vec![0u8; n.len()]).is_ok()); // 0^e = 0
}

fn flip(v: &mut [u8], bit: usize) {
    let i = (bit / 8) % v.len();
    v[i] ^= 1 << (bit % 8);
}

fn exp_u64(pk: &PublicKey) -> u64 {
    fastverify::exponent_from_be(&pk.e().to_be_bytes()).unwrap()
}

#[test]
fn random_keys_and_messages() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0003);
    let mut keys = Vec::new();
    for bits in [1024usize, 1025, 1031, 2048, 2048, 2049, 3072] {
        keys.push(PrivateKey::new(&mut rng, bits).unwrap());
    }
    for e in [3u64, 17] {
        keys.push(PrivateKey::new_with_exp(&mut rng, 2048, BoxedUint::from(e)).unwrap());
    }
    for (i, sk) in keys.iter().enumerate() {
        let m = if sk.to_public_key().n().bit_width() > 2048 { 200 } else { 600 };
        check_key(&mut rng, sk, m);
        println!("key {i} ({} bits) ok", sk.to_public_key().n().bit_width());
    }
}

#[test]
fn key_validation() {
    let mut n = vec![0xffu8; 256];
    assert!(RsaPublicKey::new(&n, 65537).is_ok());
    assert_eq!(RsaPublicKey::new(&n, 65536).unwrap_err(), fastverify::Error::InvalidExponent);
    assert_eq!(RsaPublicKey::new(&n, 1).unwrap_err(), fastverify::Error::InvalidExponent);
    assert!(RsaPublicKey::new(&n, 3).is_ok());
    n[255] = 0xfe;
    assert_eq!(RsaPublicKey::new(&n, 65537).unwrap_err(), fastverify::Error::InvalidModulus);
    assert_eq!(RsaPublicKey::new(&[0xff; 127], 3).unwrap_err(), fastverify::Error::ModulusTooSmall);
    assert!(RsaPublicKey::new(&[0xff; 128], 3).is_ok());
    assert_eq!(RsaPublicKey::new(&[0; 300], 3).unwrap_err(), fastverify::Error::InvalidModulus);
    assert_eq!(RsaPublicKey::new(&[], 3).unwrap_err(), fastverify::Error::InvalidModulus);
    assert_eq!(RsaPublicKey::new(&[0xff; 2049], 3).unwrap_err(), fastverify::Error::ModulusTooLarge);
    let mut lead = vec![0u8; 3];
    lead.extend_from_slice(&[0xff; 256]);
    assert_eq!(RsaPublicKey::new(&lead, 3).unwrap().size(), 256);
    assert_eq!(fastverify::exponent_from_be(&[0, 0, 1, 0, 1]), Ok(65537));
    assert!(fastverify::exponent_from_be(&[1; 9]).is_err());
}
