//! Differential tests of the RSA Montgomery multiplication and squaring (`fastverify::rsa::monty`)
//! against crypto-bigint's `BoxedMontyForm`, on random odd moduli of several sizes, random
//! operands and the edge values 0, 1, n-1 (and, for the "almost Montgomery" inputs the kernels
//! accept, values in [n, R)).

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use fastverify::rsa::monty::{Modulus, limbs_from_be, limbs_to_be};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn random_modulus(rng: &mut ChaCha20Rng, bits: usize) -> Vec<u64> {
    let limbs = bits.div_ceil(64);
    let mut n = vec![0u64; limbs];
    for l in n.iter_mut() {
        *l = rng.next_u64();
    }
    let top_bits = bits - 64 * (limbs - 1);
    n[limbs - 1] &= u64::MAX >> (64 - top_bits);
    n[limbs - 1] |= 1 << (top_bits - 1);
    n[0] |= 1;
    n
}

struct Ref {
    params: BoxedMontyParams,
    limbs: usize,
}

impl Ref {
    fn new(n: &[u64]) -> Ref {
        let limbs = n.len();
        let big = BoxedUint::from_be_slice(&limbs_to_be(n, limbs * 8), 64 * limbs as u32).unwrap();
        Ref { params: BoxedMontyParams::new_vartime(Odd::new(big).unwrap()), limbs }
    }
    fn big(&self, x: &[u64]) -> BoxedUint {
        BoxedUint::from_be_slice(&limbs_to_be(x, self.limbs * 8), 64 * self.limbs as u32).unwrap()
    }
    /// a·b·R^-1 mod n, for a, b < n (given as Montgomery representations).
    fn mul(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let a = BoxedMontyForm::from_montgomery(self.big(a), &self.params);
        let b = BoxedMontyForm::from_montgomery(self.big(b), &self.params);
        limbs_from_be(&(a * b).as_montgomery().to_be_bytes(), self.limbs)
    }
    fn square(&self, a: &[u64]) -> Vec<u64> {
        let a = BoxedMontyForm::from_montgomery(self.big(a), &self.params);
        limbs_from_be(&a.square().as_montgomery().to_be_bytes(), self.limbs)
    }
    fn pow(&self, s: &[u64], e: u64) -> Vec<u64> {
        let s = BoxedMontyForm::new(self.big(s), &self.params);
        let e = BoxedUint::from(e);
        limbs_from_be(&s.pow(&e).retrieve().to_be_bytes(), self.limbs)
    }
}

/// Outputs must lie in [0, R) (they do by type) and be congruent to the reference: reduce by
/// at most a few subtractions (R/n can be large for sizes that are not a multiple of 64, so
/// reduce through crypto-bigint's remainder instead of repeated subtraction).
fn reduced(m: &Modulus, x: Vec<u64>) -> Vec<u64> {
    assert_eq!(x.len(), m.limbs());
    let l = m.limbs();
    let be = |v: &[u64]| BoxedUint::from_be_slice(&limbs_to_be(v, l * 8), 64 * l as u32).unwrap();
    let n = crypto_bigint::NonZero::new(be(m.modulus())).unwrap();
    limbs_from_be(&be(&x).rem_vartime(&n).to_be_bytes(), l)
}

/// a + k·n (mod R) with the result still below R, if possible: an unreduced representative.
fn unreduce(n: &[u64], a: &[u64]) -> Vec<u64> {
    let mut out = a.to_vec();
    let mut carry = 0u128;
    for (o, &y) in out.iter_mut().zip(n) {
        let s = *o as u128 + y as u128 + carry;
        *o = s as u64;
        carry = s >> 64;
    }
    if carry == 0 { out } else { a.to_vec() }
}

fn check_size(rng: &mut ChaCha20Rng, bits: usize, moduli: usize, rounds: usize) {
    for mi in 0..moduli {
        let mut n = random_modulus(rng, bits);
        if mi == 1 {
            // All-ones top limb (largest moduli of this size) and a tiny one.
            let l = n.len();
            n[l - 1] = u64::MAX >> ((64 * l - bits) as u32);
        }
        let m = Modulus::new(n.clone()).unwrap();
        let r = Ref::new(&n);
        let limbs = n.len();
        let mut n_minus_1 = n.clone();
        n_minus_1[0] -= 1;
        let mut one = vec![0u64; limbs];
        one[0] = 1;
        let zero = vec![0u64; limbs];
        let mut values = vec![zero, one, n_minus_1.clone()];
        // R^2 mod n and n-2
        values.push(m.r2().to_vec());
        let mut nm2 = n_minus_1.clone();
        nm2[0] -= 1;
        values.push(nm2);
        for _ in 0..rounds {
            let mut v: Vec<u64> = (0..limbs).map(|_| rng.next_u64()).collect();
            v[limbs - 1] &= u64::MAX >> (64 * limbs - bits); // below 2^bits < 2n
            m.reduce(&mut v);
            values.push(v);
        }
        for (i, a) in values.iter().enumerate() {
            let want_sq = r.square(a);
            assert_eq!(reduced(&m, m.square(a)), want_sq, "square bits={bits} i={i}");
            assert_eq!(reduced(&m, m.square_dispatch(a)), want_sq, "square_dispatch bits={bits} i={i}");
            let ua = unreduce(&n, a);
            assert_eq!(reduced(&m, m.square(&ua)), want_sq, "square unreduced bits={bits} i={i}");
            assert_eq!(reduced(&m, m.square_dispatch(&ua)), want_sq);
            for (j, b) in values.iter().enumerate().skip(i % 3).step_by(3) {
                let want = r.mul(a, b);
                assert_eq!(reduced(&m, m.mul(a, b)), want, "mul bits={bits} i={i} j={j}");
                assert_eq!(reduced(&m, m.mul_dispatch(a, b)), want, "mul_dispatch bits={bits}");
                let ub = unreduce(&n, b);
                assert_eq!(reduced(&m, m.mul(&ua, &ub)), want, "mul unreduced bits={bits}");
                assert_eq!(reduced(&m, m.mul_dispatch(&ua, &ub)), want);
            }
        }
        // Chains of almost-Montgomery results (outputs fed back without reduction).
        let mut x = values[values.len() - 1].clone();
        let mut x_ref = x.clone();
        for k in 0..40 {
            if k % 5 == 4 {
                x = m.mul_dispatch(&x, &values[6]);
                x_ref = r.mul(&x_ref, &values[6]);
            } else {
                x = m.square_dispatch(&x);
                x_ref = r.square(&x_ref);
            }
            assert_eq!(reduced(&m, x.clone()), x_ref, "chain bits={bits} k={k}");
        }
        // Full exponentiations, including edge bases and exponents.
        for (i, s) in values.iter().enumerate().take(8) {
            for e in [1u64, 3, 17, 65537, 0x1_0000_0003] {
                assert_eq!(m.pow_u64(s, e), r.pow(s, e), "pow bits={bits} i={i} e={e}");
            }
        }
    }
}

#[test]
fn monty_vs_crypto_bigint() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x6d6f_6e74);
    for bits in [1024, 1536, 2048, 2049, 3072, 4096, 8192] {
        let (moduli, rounds) = if bits >= 8192 { (2, 6) } else { (4, 12) };
        check_size(&mut rng, bits, moduli, rounds);
    }
    for bits in [64, 65, 130, 1000, 1087, 2047, 4095, 4097, 16384] {
        check_size(&mut rng, bits, 1, 4);
    }
}
