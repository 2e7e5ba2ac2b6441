//! Differential tests against RustCrypto `p256` 0.14 on seeded random inputs, plus
//! deliberately constructed special cases of the group law and of the final x-coordinate check.

use fastverify::P256VerifyingKey;
use fastverify::p256::ecdsa::lincomb_for_tests;
use fastverify::p256::field::limbs_from_be;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Group as _;
use p256::elliptic_curve::ff::PrimeField;
use p256::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use p256::{AffinePoint, ProjectivePoint, Scalar};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const N_BE: [u8; 32] = hex_literal("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
const P_BE: [u8; 32] = hex_literal("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");

const fn hex_literal(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        let hi = (b[2 * i] as char).to_digit(16).unwrap() as u8;
        let lo = (b[2 * i + 1] as char).to_digit(16).unwrap() as u8;
        out[i] = hi << 4 | lo;
        i += 1;
    }
    out
}

fn scalar(rng: &mut ChaCha20Rng) -> Scalar {
    loop {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        if let Some(s) = Scalar::from_repr(b.into()).into_option() {
            return s;
        }
    }
}

fn limbs(s: &Scalar) -> [u64; 4] {
    limbs_from_be(&s.to_repr().into())
}

fn theirs_affine(p: &ProjectivePoint) -> Option<([u8; 32], [u8; 32])> {
    let enc = p.to_affine().to_sec1_point(false);
    let bytes = enc.as_bytes();
    if bytes.len() != 65 {
        return None; // identity
    }
    Some((bytes[1..33].try_into().unwrap(), bytes[33..65].try_into().unwrap()))
}

fn ours_key(p: &ProjectivePoint) -> P256VerifyingKey {
    P256VerifyingKey::from_sec1(p.to_affine().to_sec1_point(false).as_bytes()).unwrap()
}

fn theirs_verify(key: &[u8], digest: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
    let Ok(vk) = VerifyingKey::from_sec1_bytes(key) else { return false };
    let Ok(sig) = Signature::from_scalars(*r, *s) else { return false };
    vk.verify_prehash(digest, &sig).is_ok()
}

#[test]
fn random_keys_and_messages() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0001);
    for i in 0..3000 {
        let sk = SigningKey::from_bytes(&scalar(&mut rng).to_repr()).unwrap();
        let vk = sk.verifying_key();
        let uncompressed = vk.to_sec1_point(false);
        let compressed = vk.to_sec1_point(true);
        let ours = P256VerifyingKey::from_sec1(uncompressed.as_bytes()).unwrap();
        assert_eq!(P256VerifyingKey::from_sec1(compressed.as_bytes()).unwrap(), ours);
        let prepared = ours.prepare();
        let len = [32, 48, 64, 16, 20, 28][i % 6];
        let mut digest = vec![0u8; len];
        rng.fill_bytes(&mut digest);
        let sig: Signature = sk.sign_prehash(&digest).unwrap();
        let (r, s) = sig.split_bytes();
        let (r, s): ([u8; 32], [u8; 32]) = (r.into(), s.into());
        assert!(vk.verify_prehash(&digest, &sig).is_ok());
        assert!(ours.verify_prehash(&digest, &r, &s), "case {i}");
        assert!(prepared.verify_prehash(&digest, &r, &s), "case {i}");
        // Also (r, n - s), which ECDSA accepts as well.
        let neg_s: [u8; 32] = (-Scalar::from_repr(s.into()).unwrap()).to_repr().into();
        assert!(ours.verify_prehash(&digest, &r, &neg_s));
        assert!(theirs_verify(uncompressed.as_bytes(), &digest, &r, &neg_s));
        // One flipped bit in the digest, r or s: both implementations must agree (reject).
        let (mut d2, mut r2, mut s2) = (digest.clone(), r, s);
        let bit = (rng.next_u32() % 256) as usize;
        match i % 3 {
            0 => d2[(bit / 8) % len] ^= 1 << (bit % 8),
            1 => r2[bit / 8] ^= 1 << (bit % 8),
            _ => s2[bit / 8] ^= 1 << (bit % 8),
        }
        let want = theirs_verify(uncompressed.as_bytes(), &d2, &r2, &s2);
        assert_eq!(ours.verify_prehash(&d2, &r2, &s2), want, "case {i}");
        assert_eq!(prepared.verify_prehash(&d2, &r2, &s2), want, "case {i}");
        // Random garbage signatures.
        let (mut r3, mut s3) = ([0u8; 32], [0u8; 32]);
        rng.fill_bytes(&mut r3);
        rng.fill_bytes(&mut s3);
        let want = theirs_verify(uncompressed.as_bytes(), &digest, &r3, &s3);
        assert_eq!(ours.verify_prehash(&digest, &r3, &s3), want);
    }
}

/// `u1·G + u2·Q` against p256's arithmetic, with inputs that force the doubling and
/// identity branches of the incomplete addition formulas.
#[test]
fn lincomb_special_cases() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0002);
    let g = ProjectivePoint::GENERATOR;
    let one = Scalar::ONE;
    let mut cases: Vec<(Scalar, Scalar, Scalar)> = Vec::new(); // (u1, u2, k) with Q = k·G
    for _ in 0..200 {
        let a = scalar(&mut rng);
        let k = scalar(&mut rng);
        let small = Scalar::from((rng.next_u32() % 200 + 1) as u64);
        cases.extend([
            (one, one, one),            // G + G: doubling at the first addition
            (one, one, -one),           // G - G: identity
            (a, a, one),                // Q = G, equal scalars
            (a, a, -one),               // Q = -G: identity at the end
            (a, -a, one),               // identity
            (a, Scalar::ZERO, k),       // u2 = 0
            (Scalar::ZERO, a, k),       // u1 = 0
            (small, one, -small),       // identity
            (small, small, one),        // small equal multiples
            (-(a * k), a, k),           // u1·G + u2·Q = identity for a general Q
            (a * k, a, k),              // = 2·a·k·G
            (small, -one, small + one), // Q = (s+1)G; sG - (s+1)G = -G
            (a, scalar(&mut rng), k),   // generic
            (-one, -one, one),          // -2G
        ]);
    }
    // The prepared path cuts each scalar at 2^128 and adds from tables of 2^128·G and
    // 2^128·Q: halves that cancel, meet at the same position, or are all in one half.
    let t = Scalar::from(u64::MAX) + one; // 2^64
    let t = t * t; // 2^128
    let small = Scalar::from(7u64);
    cases.extend([
        (t, one, t),            // 2^128·G + Q with Q = 2^128·G: doubling at the first step
        (t, -one, t),           // identity
        (-t, one, t),           // n - 2^128 has both halves: they cancel against Q
        (t - one, t, one),      // all-ones low half, Q = G
        (t * small, t, -small), // high halves only: identity
        (t * small, -t * small, one),
        (t + one, -(t + one), one),
    ]);
    for (i, (u1, u2, k)) in cases.iter().enumerate() {
        let q = g * k;
        let want = theirs_affine(&(g * u1 + q * u2));
        let key = ours_key(&q);
        assert_eq!(lincomb_for_tests(&limbs(u1), &limbs(u2), &key, false), want, "case {i}");
        assert_eq!(lincomb_for_tests(&limbs(u1), &limbs(u2), &key, true), want, "case {i}");
    }
}

/// Signatures built by hand so that verification walks the doubling path, ends at infinity,
/// or has x(R) >= n (accepted through the `r + n` comparison) or r close to n.
#[test]
fn constructed_signatures() {
    let g = ProjectivePoint::GENERATOR;
    // Q = G, e = r, s = r: u1 = u2 = 1, R = G + G is computed by the doubling branch.
    let r2g: [u8; 32] = theirs_affine(&g.double()).unwrap().0;
    let key_g = ours_key(&g);
    let sec_g = g.to_affine().to_sec1_point(false);
    assert!(key_g.verify_prehash(&r2g, &r2g, &r2g));
    assert!(theirs_verify(sec_g.as_bytes(), &r2g, &r2g, &r2g));
    // Q = -G, e = r, s = r: R = G - G is the identity: reject.
    let key_neg = ours_key(&(-g));
    assert!(!key_neg.verify_prehash(&r2g, &r2g, &r2g));
    let sec_neg = (-g).to_affine().to_sec1_point(false);
    assert!(!theirs_verify(sec_neg.as_bytes(), &r2g, &r2g, &r2g));

    // Points R whose x is just above n (x(R) >= n) or just below n. With Q = R, e = 0 and
    // s = r, u1 = 0 and u2 = 1, so R' = Q and the signature is valid iff x(Q) mod n == r.
    let n = u256(&N_BE);
    let p = u256(&P_BE);
    let (mut above, mut below) = (0, 0);
    for j in 1u64..200 {
        for (x, is_above) in [(n + j as u128, true), (n - j as u128, false)] {
            let x = to_be(x);
            if u256(&x) >= p {
                continue;
            }
            let mut sec = [0u8; 33];
            sec[0] = 0x02;
            sec[1..].copy_from_slice(&x);
            let Ok(ours) = P256VerifyingKey::from_sec1(&sec) else {
                assert!(AffinePoint::from_sec1_bytes(&sec).is_err());
                continue;
            };
            let r = to_be(u256(&x) % n);
            let zero = [0u8; 32];
            assert!(ours.verify_prehash(&zero, &r, &r), "x = n ± {j}");
            assert!(ours.prepare().verify_prehash(&N_BE, &r, &r)); // e = n ≡ 0 too
            assert!(theirs_verify(&sec, &zero, &r, &r), "p256 x = n ± {j}");
            // r + n (>= n) must be rejected, as must r' = r ± 1.
            if is_above {
                assert!(!ours.verify_prehash(&zero, &x, &r));
                above += 1;
            } else {
                below += 1;
            }
            let r1 = to_be(u256(&r) + 1);
            assert!(!ours.verify_prehash(&zero, &r1, &r1));
            assert!(!theirs_verify(&sec, &zero, &r1, &r1));
        }
    }
    assert!(above > 20 && below > 20, "{above} {below}");
    // r = n, s = n, r = 0: out of range.
    assert!(!key_g.verify_prehash(&r2g, &N_BE, &r2g));
    assert!(!key_g.verify_prehash(&r2g, &r2g, &N_BE));
    assert!(!key_g.verify_prehash(&r2g, &[0; 32], &r2g));
    assert!(!key_g.verify_prehash(&r2g, &r2g, &[0; 32]));
}

#[test]
fn sec1_parsing_edge_cases() {
    let g = ProjectivePoint::GENERATOR.to_affine().to_sec1_point(false);
    let good = g.as_bytes();
    assert!(P256VerifyingKey::from_sec1(good).is_ok());
    assert!(P256VerifyingKey::from_sec1(&[0x00]).is_err());
    assert!(P256VerifyingKey::from_sec1(&[]).is_err());
    assert!(P256VerifyingKey::from_sec1(&good[..64]).is_err());
    let mut hybrid = good.to_vec();
    hybrid[0] = 0x06;
    assert!(P256VerifyingKey::from_sec1(&hybrid).is_err());
    let mut off = good.to_vec();
    off[64] ^= 1;
    assert!(P256VerifyingKey::from_sec1(&off).is_err());
    // x = p (>= p) with an otherwise valid-looking layout.
    let mut big = good.to_vec();
    big[1..33].copy_from_slice(&P_BE);
    assert!(P256VerifyingKey::from_sec1(&big).is_err());
    let mut c = [0u8; 33];
    c[0] = 0x03;
    c[1..].copy_from_slice(&P_BE);
    assert!(P256VerifyingKey::from_sec1(&c).is_err());
    // Round trip through our own encoder.
    let k = P256VerifyingKey::from_sec1(good).unwrap();
    assert_eq!(&k.to_sec1_uncompressed()[..], good);
}

/// Tiny 256-bit integer helpers on u128 pairs, enough for n ± small and comparisons.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct U256(u128, u128); // (high, low)

fn u256(b: &[u8; 32]) -> U256 {
    U256(u128::from_be_bytes(b[..16].try_into().unwrap()), u128::from_be_bytes(b[16..].try_into().unwrap()))
}
fn to_be(v: U256) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&v.0.to_be_bytes());
    out[16..].copy_from_slice(&v.1.to_be_bytes());
    out
}
impl std::ops::Add<u128> for U256 {
    type Output = U256;
    fn add(self, x: u128) -> U256 {
        let (lo, c) = self.1.overflowing_add(x);
        U256(self.0 + c as u128, lo)
    }
}
impl std::ops::Sub<u128> for U256 {
    type Output = U256;
    fn sub(self, x: u128) -> U256 {
        let (lo, b) = self.1.overflowing_sub(x);
        U256(self.0 - b as u128, lo)
    }
}
impl std::ops::Rem for U256 {
    type Output = U256;
    /// Only for `self < 2·m`.
    fn rem(self, m: U256) -> U256 {
        if self >= m {
            let (lo, b) = self.1.overflowing_sub(m.1);
            U256(self.0 - m.0 - b as u128, lo)
        } else {
            self
        }
    }
}
