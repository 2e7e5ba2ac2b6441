//! Arithmetic modulo the P-256 group order n — only what ECDSA verification needs.
//!
//! **Variable time.** Verification only; all inputs are public.
//!
//! Values are four little-endian `u64` limbs. Multiplication is Montgomery (`R = 2^256`) with
//! the generic word-by-word reduction: each round picks `m = t0·(-n⁻¹) mod 2^64` so that
//! `t + m·n` is divisible by `2^64`.
//!
//! The trick used by [`verify_scalars`]: if `w = s⁻¹·R` is the Montgomery form of `s⁻¹`, then
//! the Montgomery product of a *plain* integer `e` with `w` is `e·s⁻¹·R·R⁻¹ = e·s⁻¹` already in
//! plain form, so `u1` and `u2` need no conversion back.
//!
//! The one inversion per signature (of `s`) is Kaliski's almost Montgomery inverse
//! ([`invert_vartime`]), a binary extended Euclidean algorithm with no multiplication in its
//! loop: about 6x fewer instructions than Fermat's `s^(n-2)` ([`invert_mont`], kept as the
//! reference the tests compare against), and its data-dependent branches are harmless here
//! because `s` is public.

use super::field::{add4, lt4, sub4};

/// The group order n, little-endian limbs.
pub const N: [u64; 4] = [0xf3b9_cac2_fc63_2551, 0xbce6_faad_a717_9e84, 0xffff_ffff_ffff_ffff, 0xffff_ffff_0000_0000];

/// `-n⁻¹ mod 2^64`, by Newton iteration at compile time (each step doubles the good bits).
const N0_INV: u64 = {
    let mut x: u64 = 1; // n⁻¹ correct to 1 bit (n is odd)
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(N[0].wrapping_mul(x)));
        i += 1;
    }
    x.wrapping_neg()
};

/// Given `v + hi·2^256 < 2n`, returns `v` reduced into `[0, n)`.
#[inline(always)]
const fn reduce_once(v: [u64; 4], hi: u64) -> [u64; 4] {
    let (d, borrow) = sub4(&v, &N);
    if hi == 0 && borrow == 1 { v } else { d }
}

/// `2^512 mod n`.
const R2: [u64; 4] = super::field::r2_mod(&N);

/// Montgomery product `a·b·2^-256 mod n` for `a, b < n` (CIOS: multiply and reduce per word).
#[inline]
pub const fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    // t holds 4 limbs plus two carry limbs.
    let mut t = [0u64; 6];
    let mut i = 0;
    while i < 4 {
        let mut carry = 0u64;
        let mut j = 0;
        while j < 4 {
            let s = a[j] as u128 * b[i] as u128 + t[j] as u128 + carry as u128;
            t[j] = s as u64;
            carry = (s >> 64) as u64;
            j += 1;
        }
        let s = t[4] as u128 + carry as u128;
        t[4] = s as u64;
        t[5] = (s >> 64) as u64;

        let m = t[0].wrapping_mul(N0_INV);
        let s = m as u128 * N[0] as u128 + t[0] as u128; // low word becomes 0
        let mut carry = (s >> 64) as u64;
        let mut j = 1;
        while j < 4 {
            let s = m as u128 * N[j] as u128 + t[j] as u128 + carry as u128;
            t[j - 1] = s as u64;
            carry = (s >> 64) as u64;
            j += 1;
        }
        let s = t[4] as u128 + carry as u128;
        t[3] = s as u64;
        t[4] = t[5] + (s >> 64) as u64;
        i += 1;
    }
    reduce_once([t[0], t[1], t[2], t[3]], t[4])
}

/// Converts a value below n into Montgomery form.
#[inline]
pub const fn to_mont(a: &[u64; 4]) -> [u64; 4] {
    mont_mul(a, &R2)
}

/// `a^(n-2)` in Montgomery form (the inverse of a nonzero `a`), 4-bit fixed window.
pub fn invert_mont(a: &[u64; 4]) -> [u64; 4] {
    let e = sub4(&N, &[2, 0, 0, 0]).0;
    // table[i] = a^i (Montgomery form), i in 0..16
    let one = to_mont(&[1, 0, 0, 0]);
    let mut table = [one; 16];
    let mut i = 1;
    while i < 16 {
        table[i] = mont_mul(&table[i - 1], a);
        i += 1;
    }
    let mut acc = one;
    let mut nib = 64;
    while nib > 0 {
        nib -= 1;
        acc = mont_mul(&acc, &acc);
        acc = mont_mul(&acc, &acc);
        acc = mont_mul(&acc, &acc);
        acc = mont_mul(&acc, &acc);
        let d = ((e[nib / 16] >> ((nib % 16) * 4)) & 0xf) as usize;
        if d != 0 {
            acc = mont_mul(&acc, &table[d]);
        }
    }
    acc
}

/// `x·2^-k mod n` for `x < n` and any `k`: in steps of at most 63 bits, add the multiple
/// `m·n` (`m = x·(-n⁻¹) mod 2^s`) that makes `x` divisible by `2^s`, then shift. The result
/// stays below n because `(x + m·n) / 2^s < (n + (2^s - 1)·n) / 2^s = n`.
fn halve_k(x: &mut [u64; 4], mut k: u32) {
    while k > 0 {
        let s = k.min(63);
        let m = x[0].wrapping_mul(N0_INV) & ((1u64 << s) - 1);
        let mut t = [0u64; 5];
        let mut carry = 0u64;
        for j in 0..4 {
            let v = m as u128 * N[j] as u128 + x[j] as u128 + carry as u128;
            t[j] = v as u64;
            carry = (v >> 64) as u64;
        }
        t[4] = carry;
        for j in 0..4 {
            x[j] = (t[j] >> s) | (t[j + 1] << (64 - s));
        }
        k -= s;
    }
}

/// `a >> t` for `0 < t < 256` (bits shifted out are dropped).
#[inline(always)]
fn shr4(a: &[u64; 4], t: u32) -> [u64; 4] {
    if t < 64 {
        // The common case (t is 1 or 2 on average): one funnel shift per limb.
        let c = 64 - t;
        return [(a[0] >> t) | (a[1] << c), (a[1] >> t) | (a[2] << c), (a[2] >> t) | (a[3] << c), a[3] >> t];
    }
    let (limbs, bits) = ((t / 64) as usize, t % 64);
    let mut out = [0u64; 4];
    for j in 0..4 - limbs {
        let hi = if bits > 0 && j + limbs + 1 < 4 { a[j + limbs + 1] << (64 - bits) } else { 0 };
        out[j] = (a[j + limbs] >> bits) | hi;
    }
    out
}

/// `a << t` for `0 < t < 256` (the caller knows the result fits in 256 bits).
#[inline(always)]
fn shl4(a: &[u64; 4], t: u32) -> [u64; 4] {
    if t < 64 {
        let c = 64 - t;
        return [a[0] << t, (a[1] << t) | (a[0] >> c), (a[2] << t) | (a[1] >> c), (a[3] << t) | (a[2] >> c)];
    }
    let (limbs, bits) = ((t / 64) as usize, t % 64);
    let mut out = [0u64; 4];
    for j in limbs..4 {
        let lo = if bits > 0 && j > limbs { a[j - limbs - 1] >> (64 - bits) } else { 0 };
        out[j] = (a[j - limbs] << bits) | lo;
    }
    out
}

/// Trailing zero bits of a nonzero 256-bit value.
#[inline(always)]
fn ctz4(a: &[u64; 4]) -> u32 {
    if a[0] != 0 {
        a[0].trailing_zeros()
    } else if a[1] != 0 {
        64 + a[1].trailing_zeros()
    } else if a[2] != 0 {
        128 + a[2].trailing_zeros()
    } else {
        192 + a[3].trailing_zeros()
    }
}

/// `a⁻¹·R mod n` (the Montgomery form of the inverse) for `0 < a < n`, by Kaliski's almost
/// Montgomery inverse: a binary extended Euclidean algorithm that only shifts, adds and
/// subtracts in its loop and divides out the accumulated power of two once at the end.
/// Returns 0 for `a = 0`.
///
/// Invariant: `u·s + v·r = n` with `u, v ≥ 1` until the last step, so `r, s ≤ n` fit in four
/// limbs. Each step halves u or v (after making it even by a subtraction) and doubles the
/// coefficient of the other; `k` counts the halvings. At the end `n - r ≡ a⁻¹·2^k (mod n)`.
pub fn invert_vartime(a: &[u64; 4]) -> [u64; 4] {
    if (a[0] | a[1] | a[2] | a[3]) == 0 {
        return [0; 4];
    }
    let (mut u, mut v) = (N, *a);
    let (mut r, mut s) = ([0u64; 4], [1u64, 0, 0, 0]);
    let mut k = ctz4(&v);
    if k > 0 {
        v = shr4(&v, k); // r = 0: its doubling is a no-op
    }
    // u and v are odd here, and after every step.
    let r2 = loop {
        let (d, borrow) = sub4(&u, &v);
        if borrow == 0 {
            if (d[0] | d[1] | d[2] | d[3]) == 0 {
                // u = v = 1 (gcd(a, n) = 1): the last step, v = 0, s += r, r doubled.
                let (r2, carry) = add4(&r, &r);
                break (r2, carry);
            }
            let t = ctz4(&d);
            u = shr4(&d, t);
            r = add4(&r, &s).0;
            s = shl4(&s, t);
            k += t;
        } else {
            let d = sub4(&v, &u).0;
            let t = ctz4(&d);
            v = shr4(&d, t);
            s = add4(&s, &r).0;
            r = shl4(&r, t);
            k += t;
        }
    };
    k += 1;
    // r = 2r < 2n (257 bits: the carry): reduce once, then x = n - r = a⁻¹·2^k mod n.
    let (r, carry) = r2;
    let (d, borrow) = sub4(&r, &N);
    let r = if carry == 1 || borrow == 0 { d } else { r };
    let mut x = sub4(&N, &r).0;
    if x == N {
        x = [0; 4];
    }
    // a⁻¹·2^256 = x·2^(256-k): k lies in [256, 512] for a 256-bit n.
    if k >= 256 {
        halve_k(&mut x, k - 256);
    } else {
        for _ in k..256 {
            let (d, c) = add4(&x, &x);
            x = reduce_once(d, c);
        }
    }
    x
}

/// Parses a 32-byte big-endian scalar and accepts it only if `0 < v < n`.
pub fn nonzero_below_n(bytes: &[u8; 32]) -> Option<[u64; 4]> {
    let v = super::field::limbs_from_be(bytes);
    let zero = (v[0] | v[1] | v[2] | v[3]) == 0;
    if !zero && lt4(&v, &N) { Some(v) } else { None }
}

/// The ECDSA message representative `e`: the leftmost 256 bits of the digest as an integer
/// (shorter digests are taken whole, i.e. left-padded), reduced modulo n. Since the integer is
/// below `2^256 < 2n`, one conditional subtraction suffices.
pub fn digest_to_scalar(digest: &[u8]) -> [u64; 4] {
    let mut buf = [0u8; 32];
    let take = digest.len().min(32);
    buf[32 - take..].copy_from_slice(&digest[..take]);
    reduce_once(super::field::limbs_from_be(&buf), 0)
}

/// Computes `(u1, u2) = (e·s⁻¹ mod n, r·s⁻¹ mod n)` as plain integers.
pub fn verify_scalars(e: &[u64; 4], r: &[u64; 4], s: &[u64; 4]) -> ([u64; 4], [u64; 4]) {
    let w = invert_vartime(s); // s⁻¹·R
    (mont_mul(e, &w), mont_mul(r, &w))
}

/// `a + b` as a 256-bit integer with carry-out (used for the `r + n` candidate).
pub const fn add_n(a: &[u64; 4]) -> ([u64; 4], u64) {
    add4(a, &N)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_products() {
        assert_eq!(N0_INV.wrapping_mul(N[0]), u64::MAX); // -1 mod 2^64
        let one = [1u64, 0, 0, 0];
        for a in [[2u64, 0, 0, 0], [0x1234, 5, 6, 7], sub4(&N, &one).0] {
            let w = invert_mont(&to_mont(&a));
            assert_eq!(mont_mul(&a, &w), one);
            assert_eq!(invert_vartime(&a), w);
            let (u1, u2) = verify_scalars(&a, &one, &a);
            assert_eq!(u1, one);
            assert_eq!(mont_mul(&to_mont(&u2), &a), one);
        }
        // Many more inputs, against Fermat's inverse: a walk through the group by products,
        // and small and large values (long runs of shifts, both branches).
        let mut a = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0x0f1e_2d3c_4b5a_6978, 0x1122_3344_5566_7788];
        for i in 0..2000u64 {
            let w = invert_mont(&to_mont(&a));
            assert_eq!(invert_vartime(&a), w, "{a:x?}");
            a = mont_mul(&to_mont(&a), &[i + 3, i, 0, 1 << 40]);
            if a == [0; 4] {
                a = [i + 1, 0, 0, 0];
            }
        }
        for a in [
            [1u64, 0, 0, 0],
            [3, 0, 0, 0],
            [0, 0, 0, 1],
            [0, 0, 0, 1 << 63],
            [1 << 63, 0, 0, 0],
            sub4(&N, &[2, 0, 0, 0]).0,
        ] {
            assert_eq!(invert_vartime(&a), invert_mont(&to_mont(&a)), "{a:x?}");
        }
        // n - 1 squared is 1.
        let m1 = sub4(&N, &one).0;
        assert_eq!(mont_mul(&to_mont(&m1), &m1), one);
        // Digest handling: a 32-byte all-ones digest reduces below n.
        assert_eq!(digest_to_scalar(&[0xff; 32]), sub4(&[u64::MAX; 4], &N).0);
        assert_eq!(digest_to_scalar(&[0x01, 0x02]), [0x0102, 0, 0, 0]);
        let mut long = [0u8; 64];
        long[31] = 5;
        long[63] = 9;
        assert_eq!(digest_to_scalar(&long), [5, 0, 0, 0]);
    }
}
