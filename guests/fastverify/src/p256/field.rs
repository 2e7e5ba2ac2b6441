//! Arithmetic in the P-256 base field GF(p), p = 2^256 - 2^224 + 2^192 + 2^96 - 1.
//!
//! **Variable time.** This module is written for signature *verification* only, where every
//! input is public. Branches and early exits depend on the values; never use it with secrets.
//!
//! Elements are kept in Montgomery form `a·R mod p` with `R = 2^256`, as four little-endian
//! `u64` limbs, always fully reduced into `[0, p)` (so equality and zero tests are plain limb
//! comparisons).
//!
//! Multiplication forms the 512-bit product with `u128` partial products (on wasm32 with the
//! `wide-arithmetic` feature each is a single `i64.mul_wide_u`), then runs four Montgomery
//! reduction rounds. Because `p ≡ -1 (mod 2^64)`, the round multiplier is simply `m = t0`
//! (`-p⁻¹ mod 2^64 = 1`), and because of the shape of `p`, adding `m·p` needs only one real
//! multiplication (by the top limb `p3 = 2^64 - 2^32 + 1`); the other limbs are shifts:
//! `t0 + m·p0 = m·2^64` (the low limb vanishes, carrying `m`), `m·p1 + m = m·2^32`, `p2 = 0`.

/// The field modulus, little-endian limbs.
pub const P: [u64; 4] = [0xffff_ffff_ffff_ffff, 0x0000_0000_ffff_ffff, 0x0000_0000_0000_0000, 0xffff_ffff_0000_0001];

/// An element of GF(p) in Montgomery form, fully reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fp(pub [u64; 4]);

/// `a + b + carry`, returning (sum, carry). On wasm32 (wide arithmetic) a `u128` sum is two
/// `i64.add128`; elsewhere the overflowing form maps onto `adc` chains. Both forms are
/// compared by a unit test.
#[inline(always)]
pub(crate) const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    if cfg!(target_arch = "wasm32") { adc_wide(a, b, carry) } else { adc_split(a, b, carry) }
}

#[inline(always)]
const fn adc_wide(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let s = a as u128 + b as u128 + carry as u128;
    (s as u64, (s >> 64) as u64)
}

#[inline(always)]
const fn adc_split(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let (s1, c1) = a.overflowing_add(b);
    let (s2, c2) = s1.overflowing_add(carry);
    (s2, (c1 | c2) as u64)
}

/// `a - b - borrow`, returning (difference, borrow in {0, 1}); same two forms as [`adc`].
#[inline(always)]
pub(crate) const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    if cfg!(target_arch = "wasm32") { sbb_wide(a, b, borrow) } else { sbb_split(a, b, borrow) }
}

#[inline(always)]
const fn sbb_wide(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    // a - b - borrow lies in [-2^64, 2^64): bit 127 of the wrapped result is the borrow.
    let d = (a as u128).wrapping_sub(b as u128).wrapping_sub(borrow as u128);
    (d as u64, (d >> 127) as u64)
}

#[inline(always)]
const fn sbb_split(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let (d1, b1) = a.overflowing_sub(b);
    let (d2, b2) = d1.overflowing_sub(borrow);
    (d2, (b1 | b2) as u64)
}

/// 256-bit subtraction, returning (a - b mod 2^256, borrow).
#[inline(always)]
pub(crate) const fn sub4(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let (r0, c) = sbb(a[0], b[0], 0);
    let (r1, c) = sbb(a[1], b[1], c);
    let (r2, c) = sbb(a[2], b[2], c);
    let (r3, c) = sbb(a[3], b[3], c);
    ([r0, r1, r2, r3], c)
}

/// 256-bit addition, returning (a + b mod 2^256, carry).
#[inline(always)]
pub(crate) const fn add4(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let (r0, c) = adc(a[0], b[0], 0);
    let (r1, c) = adc(a[1], b[1], c);
    let (r2, c) = adc(a[2], b[2], c);
    let (r3, c) = adc(a[3], b[3], c);
    ([r0, r1, r2, r3], c)
}

/// True when `a < b` as 256-bit integers.
#[inline(always)]
pub(crate) const fn lt4(a: &[u64; 4], b: &[u64; 4]) -> bool {
    sub4(a, b).1 == 1
}

/// Given `v + hi·2^256 < 2p`, returns `v` reduced into `[0, p)`.
#[inline(always)]
const fn reduce_once(v: [u64; 4], hi: u64) -> [u64; 4] {
    // v - p as v + (2^256 - p) mod 2^256, whose carry-out is set exactly when v >= p: an
    // add-with-carry chain, cheaper than a borrow chain in wasm (ES256 verify -1.8% there and
    // natively).
    let (d, carry) = add4(&v, &P_NEG);
    // Keep v when v < p with no carry-out above it (branch-free: this outcome is data
    // dependent and would mispredict).
    select(&v, &d, !(carry | hi) & 1)
}

/// `2^256 - p`, little-endian limbs.
const P_NEG: [u64; 4] = [1, 0xffff_ffff_0000_0000, 0xffff_ffff_ffff_ffff, 0x0000_0000_ffff_fffe];

/// `if keep_a == 1 { a } else { b }` (`keep_a` is 0 or 1), written per limb so that LLVM emits
/// selects: a conditional move natively and in the sandbox (Cranelift lowers wasm's `select` to
/// `cmov`). The mask form became and/andn/or chains in the sandbox: 2.5% of an ES256 verification.
#[inline(always)]
const fn select(a: &[u64; 4], b: &[u64; 4], keep_a: u64) -> [u64; 4] {
    let k = keep_a & 1 == 1;
    [if k { a[0] } else { b[0] }, if k { a[1] } else { b[1] }, if k { a[2] } else { b[2] }, if k { a[3] } else { b[3] }]
}

/// Montgomery reduction of a 512-bit value `t < p·2^256`: returns `t / 2^256 mod p`.
#[inline(always)]
const fn mont_reduce(t: &[u64; 8]) -> [u64; 4] {
    let (mut r0, mut r1, mut r2, mut r3) = (t[0], t[1], t[2], t[3]);
    let mut i = 0;
    while i < 4 {
        // r <- (r + m·p) / 2^64 with m = r0. The window stays below 2^256 because
        // (2^256 + 2^64·p) / 2^64 = 2^192 + p < 2^256.
        let m = r0;
        // m·2^32 is a 96-bit value: its high 32 bits ride in the carry into n1.
        let s = r1 as u128 + ((m as u128) << 32);
        let n0 = s as u64;
        let s = r2 as u128 + (s >> 64);
        let n1 = s as u64;
        let mp3 = m as u128 * P[3] as u128;
        let s = r3 as u128 + (mp3 as u64) as u128 + (s >> 64);
        let n2 = s as u64;
        let n3 = ((mp3 >> 64) + (s >> 64)) as u64;
        (r0, r1, r2, r3) = (n0, n1, n2, n3);
        i += 1;
    }
    // Add the high half; the result is below 2p.
    let (s, c) = add4(&[r0, r1, r2, r3], &[t[4], t[5], t[6], t[7]]);
    reduce_once(s, c)
}

/// Schoolbook 256x256 -> 512-bit product.
#[inline(always)]
const fn mul_wide(a: &[u64; 4], b: &[u64; 4]) -> [u64; 8] {
    let mut t = [0u64; 8];
    let mut i = 0;
    while i < 4 {
        let mut carry = 0u64;
        let mut j = 0;
        while j < 4 {
            // (2^64-1)^2 + 2(2^64-1) = 2^128 - 1: never overflows.
            let s = a[j] as u128 * b[i] as u128 + t[i + j] as u128 + carry as u128;
            t[i + j] = s as u64;
            carry = (s >> 64) as u64;
            j += 1;
        }
        t[i + 4] = carry;
        i += 1;
    }
    t
}

/// 256-bit square as 512 bits: off-diagonal products once, doubled, plus the diagonal.
#[inline(always)]
const fn sqr_wide(a: &[u64; 4]) -> [u64; 8] {
    let mut t = [0u64; 8];
    // Off-diagonal a[i]·a[j], i < j.
    let mut i = 0;
    while i < 3 {
        let mut carry = 0u64;
        let mut j = i + 1;
        while j < 4 {
            let s = a[i] as u128 * a[j] as u128 + t[i + j] as u128 + carry as u128;
            t[i + j] = s as u64;
            carry = (s >> 64) as u64;
            j += 1;
        }
        t[i + 4] = carry;
        i += 1;
    }
    // Double (t < 2^511 before doubling, so no bit is lost).
    t[7] = t[6] >> 63;
    t[6] = (t[6] << 1) | (t[5] >> 63);
    t[5] = (t[5] << 1) | (t[4] >> 63);
    t[4] = (t[4] << 1) | (t[3] >> 63);
    t[3] = (t[3] << 1) | (t[2] >> 63);
    t[2] = (t[2] << 1) | (t[1] >> 63);
    t[1] <<= 1;
    // Add the squares a[i]^2 at limb 2i.
    let mut carry = 0u64;
    let mut k = 0;
    while k < 4 {
        let sq = a[k] as u128 * a[k] as u128;
        let (lo, c) = adc(t[2 * k], sq as u64, carry);
        let (hi, c) = adc(t[2 * k + 1], (sq >> 64) as u64, c);
        t[2 * k] = lo;
        t[2 * k + 1] = hi;
        carry = c;
        k += 1;
    }
    t
}

/// `2^512 mod m` for a 256-bit odd modulus `m` with its top bit set (p and n here), at compile
/// time: 1 doubled modulo `m` 512 times. The Montgomery `R^2` of both the field and the scalars.
pub(crate) const fn r2_mod(m: &[u64; 4]) -> [u64; 4] {
    let mut v = [1u64, 0, 0, 0];
    let mut i = 0;
    while i < 512 {
        let (d, c) = add4(&v, &v);
        let (e, borrow) = sub4(&d, m);
        v = if c == 0 && borrow == 1 { d } else { e };
        i += 1;
    }
    v
}

/// `2^512 mod p`.
const R2: [u64; 4] = r2_mod(&P);

impl Fp {
    pub const ZERO: Fp = Fp([0; 4]);
    /// 1 in Montgomery form: `R mod p = 2^256 - p`.
    pub const ONE: Fp = Fp(sub4(&[0; 4], &P).0);

    /// Converts a canonical integer (< p, little-endian limbs) into Montgomery form.
    #[inline]
    pub const fn from_canonical(v: [u64; 4]) -> Fp {
        Fp(mont_reduce(&mul_wide(&v, &R2)))
    }

    /// Returns the canonical integer (little-endian limbs) of this element.
    #[inline]
    pub const fn to_canonical(self) -> [u64; 4] {
        let a = self.0;
        mont_reduce(&[a[0], a[1], a[2], a[3], 0, 0, 0, 0])
    }

    /// Parses a 32-byte big-endian integer; `None` unless it is below p.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Option<Fp> {
        let v = limbs_from_be(bytes);
        if lt4(&v, &P) { Some(Fp::from_canonical(v)) } else { None }
    }

    /// Big-endian encoding of the canonical value.
    pub fn to_be_bytes(self) -> [u8; 32] {
        limbs_to_be(&self.to_canonical())
    }

    #[inline(always)]
    pub const fn is_zero(&self) -> bool {
        (self.0[0] | self.0[1] | self.0[2] | self.0[3]) == 0
    }

    #[inline(always)]
    pub const fn mul(&self, rhs: &Fp) -> Fp {
        Fp(mont_reduce(&mul_wide(&self.0, &rhs.0)))
    }

    #[inline(always)]
    pub const fn square(&self) -> Fp {
        Fp(mont_reduce(&sqr_wide(&self.0)))
    }

    #[inline(always)]
    pub const fn add(&self, rhs: &Fp) -> Fp {
        let (s, c) = add4(&self.0, &rhs.0);
        Fp(reduce_once(s, c))
    }

    #[inline(always)]
    pub const fn sub(&self, rhs: &Fp) -> Fp {
        let (d, borrow) = sub4(&self.0, &rhs.0);
        // Add p back on borrow, branch-free: p masked by the borrow.
        let m = 0u64.wrapping_sub(borrow);
        Fp(add4(&d, &[P[0] & m, P[1] & m, 0, P[3] & m]).0)
    }

    #[inline(always)]
    pub const fn double(&self) -> Fp {
        self.add(self)
    }

    /// `self / 2`: add p when odd (making the value even), then shift the 257-bit sum right.
    #[inline(always)]
    pub const fn halve(&self) -> Fp {
        let m = 0u64.wrapping_sub(self.0[0] & 1);
        let (t, c) = add4(&self.0, &[P[0] & m, P[1] & m, 0, P[3] & m]);
        Fp([
            (t[0] >> 1) | (t[1] << 63),
            (t[1] >> 1) | (t[2] << 63),
            (t[2] >> 1) | (t[3] << 63),
            (t[3] >> 1) | (c << 63),
        ])
    }

    #[inline(always)]
    pub const fn neg(&self) -> Fp {
        Fp::ZERO.sub(self)
    }

    /// `self^e` for a public exponent given as little-endian limbs (left-to-right binary).
    pub const fn pow_vartime(&self, e: &[u64; 4]) -> Fp {
        let mut acc = Fp::ONE;
        let mut i = 256;
        while i > 0 {
            i -= 1;
            acc = acc.square();
            if (e[i / 64] >> (i % 64)) & 1 == 1 {
                acc = acc.mul(self);
            }
        }
        acc
    }

    /// Multiplicative inverse by Fermat (`a^(p-2)`); the inverse of 0 is 0.
    pub const fn invert(&self) -> Fp {
        self.pow_vartime(&sub4(&P, &[2, 0, 0, 0]).0)
    }

    /// A square root if one exists. Since `p ≡ 3 (mod 4)`, a candidate is `a^((p+1)/4)`.
    pub fn sqrt(&self) -> Option<Fp> {
        // (p + 1) / 4 = p >> 2 plus one (p ≡ 3 mod 4).
        let e = add4(&shr2(&P), &[1, 0, 0, 0]).0;
        let r = self.pow_vartime(&e);
        if r.square() == *self { Some(r) } else { None }
    }

    /// True when the canonical value is odd (the SEC1 "y parity").
    pub fn is_odd(&self) -> bool {
        self.to_canonical()[0] & 1 == 1
    }
}

const fn shr2(a: &[u64; 4]) -> [u64; 4] {
    [(a[0] >> 2) | (a[1] << 62), (a[1] >> 2) | (a[2] << 62), (a[2] >> 2) | (a[3] << 62), a[3] >> 2]
}

/// 32 big-endian bytes to little-endian limbs.
pub const fn limbs_from_be(b: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut i = 0;
    while i < 4 {
        let mut w = 0u64;
        let mut j = 0;
        while j < 8 {
            w = (w << 8) | b[(3 - i) * 8 + j] as u64;
            j += 1;
        }
        out[i] = w;
        i += 1;
    }
    out
}

/// Little-endian limbs to 32 big-endian bytes.
pub const fn limbs_to_be(v: &[u64; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 4 {
        let bytes = v[3 - i].to_be_bytes();
        let mut j = 0;
        while j < 8 {
            out[i * 8 + j] = bytes[j];
            j += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_forms_agree() {
        let vals = [0, 1, 2, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1, 0x1234_5678_9abc];
        for a in vals {
            for b in vals {
                for c in [0, 1] {
                    assert_eq!(adc_wide(a, b, c), adc_split(a, b, c));
                    assert_eq!(sbb_wide(a, b, c), sbb_split(a, b, c));
                }
            }
        }
    }

    #[test]
    fn roundtrip_and_constants() {
        assert_eq!(Fp::ONE.to_canonical(), [1, 0, 0, 0]);
        let x = [0x1234_5678_9abc_def0, 42, 7, 0x0fff_ffff_ffff_ffff];
        assert_eq!(Fp::from_canonical(x).to_canonical(), x);
        let a = Fp::from_canonical(x);
        assert_eq!(a.mul(&Fp::ONE), a);
        assert_eq!(a.square(), a.mul(&a));
        assert_eq!(a.mul(&a.invert()), Fp::ONE);
        let pm1 = sub4(&P, &[1, 0, 0, 0]).0;
        let m1 = Fp::from_canonical(pm1);
        assert_eq!(m1.square(), Fp::ONE);
        assert_eq!(m1.add(&Fp::ONE), Fp::ZERO);
        assert_eq!(Fp::ZERO.sub(&Fp::ONE), m1);
        assert_eq!(a.halve().double(), a);
        assert_eq!(m1.halve().double(), m1);
        assert_eq!(Fp::ONE.halve().double(), Fp::ONE);
        // 2^256 - p is what reduce_once adds: p + it wraps to exactly 2^256.
        assert_eq!(add4(&P, &P_NEG), ([0; 4], 1));
        assert_eq!(reduce_once(pm1, 0), pm1);
        assert_eq!(reduce_once(P, 0), [0; 4]);
        assert_eq!(reduce_once(add4(&P, &[5, 0, 0, 0]).0, 0), [5, 0, 0, 0]);
        // 2p - 1, the largest input, overflows 256 bits: it comes with its carry-out.
        let (v, hi) = add4(&P, &pm1);
        assert_eq!(hi, 1);
        assert_eq!(reduce_once(v, hi), pm1);
    }
}
