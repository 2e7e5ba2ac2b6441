//! Variable-time Montgomery arithmetic for the RSA public operation (public data only).
//!
//! Numbers are little-endian `u64` limbs; `R = 2^(64·N)` for an N-limb modulus. Products are
//! `u64 × u64 → u128`: with wasm's wide-arithmetic proposal each is one `i64.mul_wide_u` and
//! each 128-bit addition one `i64.add128`.
//!
//! - Multiplication: the full product by rows, two rows per pass over the accumulator, then
//!   the reduction.
//! - Squaring: the cross products once (two rows per pass), doubled, plus the diagonal, then
//!   the reduction. Up to 2048 bits the row pairs are straight-line code of constant length
//!   ([`sqr_product_fixed`]): RSA-2048 verify, 7% fewer instructions in the sandbox (2% less time).
//! - Reduction: two rows per pass (the second row's multiplier is known once the first row's
//!   second word is), which halves the loads and stores of the 2N-limb accumulator; inner
//!   loops are unrolled by 8, since in wasm every loop header is also an epoch check.
//! - "Almost Montgomery" outputs: every result is only guaranteed to lie in `[0, R)` (it is
//!   reduced by `n` only when it would not fit in N limbs), which is enough for inputs in
//!   `[0, R)`; [`Modulus::pow_u64`] reduces fully at the end.
//! - The common sizes (1024, 1536, 2048, 3072, 4096 bits) use fixed-size arrays so that LLVM
//!   knows every length (no bounds checks, unrolled inner loops); any other size uses the
//!   same kernels on slices.
//!
//! **Never use with secret data**: the running time depends on the values.

use crypto_bigint::modular::BoxedMontyParams;
use crypto_bigint::{BoxedUint, Odd};

/// An odd modulus with its Montgomery constants.
#[derive(Clone, Debug)]
pub struct Modulus {
    /// The modulus, little-endian limbs, top limb nonzero.
    n: Vec<u64>,
    /// `-n^-1 mod 2^64`.
    n0: u64,
    /// `R^2 mod n`.
    r2: Vec<u64>,
}

#[inline(always)]
fn mulw(a: u64, b: u64) -> u128 {
    a as u128 * b as u128
}

/// `-n^-1 mod 2^64` for odd `n` (Newton iteration: each step doubles the correct bits).
fn neg_inv(n: u64) -> u64 {
    let mut x = n; // correct to 3 bits for odd n
    for _ in 0..5 {
        x = x.wrapping_mul(2u64.wrapping_sub(n.wrapping_mul(x)));
    }
    x.wrapping_neg()
}

/// Big-endian bytes to `limbs` little-endian limbs (the value must fit).
pub fn limbs_from_be(bytes: &[u8], limbs: usize) -> Vec<u64> {
    let mut out = vec![0u64; limbs];
    for (k, chunk) in bytes.rchunks(8).enumerate().take(limbs) {
        out[k] = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64);
    }
    out
}

/// The low `len` bytes of a little-endian limb vector, big-endian.
pub fn limbs_to_be(limbs: &[u64], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (k, byte) in out.iter_mut().rev().enumerate() {
        if let Some(limb) = limbs.get(k / 8) {
            *byte = (limb >> (8 * (k % 8))) as u8;
        }
    }
    out
}

/// `a >= b` for equal-length limb slices.
#[inline(always)]
fn geq(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a -= b` (mod 2^(64·len)).
#[inline(always)]
fn sub_assign(a: &mut [u64], b: &[u64]) {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = (*x as u128).wrapping_sub(y as u128).wrapping_sub(borrow as u128);
        *x = d as u64;
        borrow = (d >> 127) as u64;
    }
}

/// One step of a multiply-accumulate row: `t + a·b + c` → (low word, carry).
#[inline(always)]
fn mac(t: u64, a: u64, b: u64, c: u64) -> (u64, u64) {
    let s = mulw(a, b) + t as u128 + c as u128;
    (s as u64, (s >> 64) as u64)
}

/// `t[..a.len()] += a·b + c`; returns the carry word. Unrolled by 4 (fewer loop headers:
/// each one costs a bounds/epoch check in wasm).
#[inline(always)]
fn mac_row(t: &mut [u64], a: &[u64], b: u64, mut c: u64) -> u64 {
    let t = &mut t[..a.len()];
    let mut tc = t.chunks_exact_mut(4);
    let mut ac = a.chunks_exact(4);
    for (tt, aa) in (&mut tc).zip(&mut ac) {
        (tt[0], c) = mac(tt[0], aa[0], b, c);
        (tt[1], c) = mac(tt[1], aa[1], b, c);
        (tt[2], c) = mac(tt[2], aa[2], b, c);
        (tt[3], c) = mac(tt[3], aa[3], b, c);
    }
    for (x, &y) in tc.into_remainder().iter_mut().zip(ac.remainder()) {
        (*x, c) = mac(*x, y, b, c);
    }
    c
}

/// `t[..len+1] += b0·a + b1·a·2^64` for `len = a.len()`, where the caller has already
/// accounted for position 0 (`c0` is row 0's carry into position 1, `c1` row 1's carry out of
/// position 1 — i.e. the sweep starts at position 2). Returns the two rows' carries out of
/// position `len` (row 0 has nothing there but its carry; row 1 its last product).
#[inline(always)]
fn mac_row2(t: &mut [u64], a: &[u64], b0: u64, b1: u64, mut c0: u64, mut c1: u64) -> (u64, u64) {
    let len = a.len();
    // Position p (2 <= p < len): t[p] + a[p]·b0 + c0, then + a[p-1]·b1 + c1.
    let t = &mut t[2..len];
    let a_hi = &a[2..len];
    let a_lo = &a[1..len - 1];
    let mut tc = t.chunks_exact_mut(8);
    let mut hc = a_hi.chunks_exact(8);
    let mut lc = a_lo.chunks_exact(8);
    for ((tt, h), l) in (&mut tc).zip(&mut hc).zip(&mut lc) {
        for k in 0..8 {
            let (x, y) = mac(tt[k], h[k], b0, c0);
            (tt[k], c1) = mac(x, l[k], b1, c1);
            c0 = y;
        }
    }
    for ((x, &h), &l) in tc.into_remainder().iter_mut().zip(hc.remainder()).zip(lc.remainder()) {
        let (v, y) = mac(*x, h, b0, c0);
        (*x, c1) = mac(v, l, b1, c1);
        c0 = y;
    }
    (c0, c1)
}

/// `out = a·b·R^-1` up to a multiple of n, `out < R` (for `a, b < R`). `t`: 2N limbs of
/// scratch. Product by rows (two rows per sweep, unrolled by 8), then [`redc_kernel`].
#[inline(always)]
fn mul_kernel(a: &[u64], b: &[u64], n: &[u64], n0: u64, t: &mut [u64], out: &mut [u64]) {
    mul_product(a, b, n.len(), t);
    redc_kernel(t, n, n0, out);
}

/// The full product `t = a·b` of two `len`-limb values (`t`: at least 2·len limbs).
#[inline(always)]
fn mul_product(a: &[u64], b: &[u64], len: usize, t: &mut [u64]) {
    let (a, b, t) = (&a[..len], &b[..len], &mut t[..2 * len]);
    t[..len].fill(0);
    let mut i = 0;
    while i + 1 < len {
        let (b0, b1) = (b[i], b[i + 1]);
        let row = &mut t[i..];
        let (lo, c0) = mac(row[0], a[0], b0, 0);
        row[0] = lo;
        let (x, c0) = mac(row[1], a[1], b0, c0);
        let (lo, c1) = mac(x, a[0], b1, 0);
        row[1] = lo;
        let (c0, c1) = mac_row2(row, a, b0, b1, c0, c1);
        // Position len: row 0's carry (the word there is still zero) plus row 1's last product.
        let (lo, c1) = mac(c0, a[len - 1], b1, c1);
        row[len] = lo;
        row[len + 1] = c1;
        i += 2;
    }
    if i < len {
        let c = mac_row(&mut t[i..], a, b[i], 0);
        t[i + len] = c;
    }
}

/// `out = a²·R^-1` up to a multiple of n, `out < R` (for `a < R`). `t`: 2N limbs of scratch.
#[inline(always)]
fn sqr_kernel(a: &[u64], n: &[u64], n0: u64, t: &mut [u64], out: &mut [u64]) {
    sqr_product(a, n.len(), t);
    redc_kernel(t, n, n0, out);
}

/// The square `t = a²` of a `len`-limb value (`t`: at least 2·len limbs).
#[inline(always)]
fn sqr_product(a: &[u64], len: usize, t: &mut [u64]) {
    let (a, t) = (&a[..len], &mut t[..2 * len]);
    // Cross products a[i]·a[j], i < j: row i adds a[i]·a[i+1..] at t[2i+1..]. Rows go in
    // pairs (i, i+1), one sweep per pair: with `a' = a[i+1..]` and the window `w = t[2i+1..]`,
    // row i adds a'[p]·a[i] at w[p] and row i+1 adds a'[p-1]·a[i+1] at w[p] for p >= 2 (its
    // p = 1 term would be the square a[i+1]², which belongs to the diagonal) — the shape of
    // [`mac_row2`]. Each pair writes its two carry words fresh at w[L], w[L+1].
    t[..len + 1].fill(0);
    t[2 * len - 1] = 0;
    let mut i = 0;
    while i + 2 < len {
        sqr_pair(&a[i + 1..], a[i], &mut t[2 * i + 1..]);
        i += 2;
    }
    sqr_finish(a, len, i, t);
}

/// Cross-product rows i and i+1 of a square, one sweep: `ap = a[i+1..]`, `b0 = a[i]`,
/// `w = t[2i+1..]` (at least `ap.len() + 2` words).
#[inline(always)]
fn sqr_pair(ap: &[u64], b0: u64, w: &mut [u64]) {
    let b1 = ap[0];
    let l = ap.len();
    let (lo, c0) = mac(w[0], ap[0], b0, 0);
    w[0] = lo;
    let (lo, c0) = mac(w[1], ap[1], b0, c0);
    w[1] = lo;
    let (c0, c1) = mac_row2(w, ap, b0, b1, c0, 0);
    let (lo, c1) = mac(c0, ap[l - 1], b1, c1);
    w[l] = lo;
    w[l + 1] = c1;
}

/// [`sqr_product`] for a size known at compile time (`N >= 2`). Up to 32 limbs (2048 bits) the
/// row pairs are straight-line code of constant length: no loop header (in wasm each is an epoch check)
/// and no remainder loop, which cost about a third of the squaring's cross products. Each
/// pair works through an opaque view of `t` and `a` (`black_box`), with constant bounds:
/// otherwise LLVM forwards every word from pair to pair in registers, more than Cranelift can
/// hold, and the spills cost more than the loops saved. Larger sizes take the loops: the
/// straight-line code would grow by tens of KiB per size for the less common keys.
#[inline(always)]
fn sqr_product_fixed<const N: usize>(a: &[u64; N], t: &mut Scratch) {
    if N > 32 {
        return sqr_product(a, N, t);
    }
    let t = &mut t[..2 * N];
    t[..N + 1].fill(0);
    t[2 * N - 1] = 0;
    macro_rules! pairs {
        ($($i:literal)*) => {
            $(if $i + 2 < N {
                let w = &mut core::hint::black_box(&mut t[..])[2 * $i + 1..N + $i + 2];
                let ap = &core::hint::black_box(&a[..])[$i + 1..N];
                sqr_pair(ap, a[$i], w);
            })*
        };
    }
    pairs!(0 2 4 6 8 10 12 14 16 18 20 22 24 26 28 30);
    // Where the loop over pairs would stand after the pairs above: the first even i with
    // i + 2 >= N.
    sqr_finish(a, N, N - 2 + N % 2, t);
}

/// The end of a square: the last row alone when one is left (`i + 1 < len`), then the
/// doubling and the squares on the diagonal.
#[inline(always)]
fn sqr_finish(a: &[u64], len: usize, i: usize, t: &mut [u64]) {
    if i + 1 < len {
        // The last row alone: a[len-2]·a[len-1].
        let c = mac_row(&mut t[2 * i + 1..], &a[i + 1..], a[i], 0);
        t[i + len] = c;
    }
    // Double and add the squares a[i]².
    let mut shifted_out = 0u64;
    let mut c = 0u64;
    for (tt, &ai) in t.chunks_exact_mut(2).zip(a) {
        let sq = mulw(ai, ai);
        let (lo, hi) = (tt[0], tt[1]);
        let dlo = (lo << 1) | shifted_out;
        let dhi = (hi << 1) | (lo >> 63);
        shifted_out = hi >> 63;
        let s = dlo as u128 + (sq as u64) as u128 + c as u128;
        tt[0] = s as u64;
        let s = dhi as u128 + (sq >> 64) + (s >> 64);
        tt[1] = s as u64;
        c = (s >> 64) as u64;
    }
}

/// Montgomery reduction of a 2N-limb `t < R²`: `out = t·R^-1` up to a multiple of n,
/// `out < R`. Destroys `t`.
#[inline(always)]
fn redc_kernel(t: &mut [u64], n: &[u64], n0: u64, out: &mut [u64]) {
    let len = n.len();
    let t = &mut t[..2 * len];
    let mut extra = 0u64;
    let mut i = 0;
    // Two rows per sweep: row i adds m0·n at t[i..], row i+1 adds m1·n at t[i+1..]; m1 is
    // known once the row-i sum at position i+1 is, so both rows share one pass over t.
    while i + 1 < len {
        let row = &mut t[i..];
        let m0 = row[0].wrapping_mul(n0);
        let (_, c0) = mac(row[0], m0, n[0], 0);
        let (t1, c0) = mac(row[1], m0, n[1], c0);
        let m1 = t1.wrapping_mul(n0);
        let (_, c1) = mac(t1, m1, n[0], 0);
        let (c0, c1) = mac_row2(row, n, m0, m1, c0, c1);
        // Position len: row 0's carry and the pending carry, plus row 1's last product.
        let s = row[len] as u128 + c0 as u128 + extra as u128;
        let (lo, c1) = mac(s as u64, m1, n[len - 1], c1);
        row[len] = lo;
        // Position len+1: both carries.
        let s3 = row[len + 1] as u128 + (s >> 64) + c1 as u128;
        row[len + 1] = s3 as u64;
        extra = (s3 >> 64) as u64;
        i += 2;
    }
    if i < len {
        let m = t[i].wrapping_mul(n0);
        let c = mac_row(&mut t[i..], n, m, 0);
        let s = t[i + len] as u128 + c as u128 + extra as u128;
        t[i + len] = s as u64;
        extra = (s >> 64) as u64;
    }
    out.copy_from_slice(&t[len..]);
    if extra != 0 {
        sub_assign(out, n);
    }
}

/// Scratch for the fixed-size kernels: 2N limbs for N up to 64. The kernels clear what they
/// read before writing it, so one buffer serves a whole exponentiation.
type Scratch = [u64; 128];

/// Fixed-size Montgomery multiplication in place, `acc = acc·b·R^-1` (`N` known at compile
/// time): the product is formed in `t` before `acc` is written.
#[inline(never)]
fn mul_fixed<const N: usize>(acc: &mut [u64; N], b: &[u64; N], n: &[u64; N], n0: u64, t: &mut Scratch) {
    mul_product(acc, b, N, t);
    redc_kernel(&mut t[..2 * N], n, n0, acc);
}

/// Fixed-size Montgomery squaring in place, `acc = acc²·R^-1` (`N` known at compile time;
/// `N <= 64`).
#[inline(never)]
fn sqr_fixed<const N: usize>(acc: &mut [u64; N], n: &[u64; N], n0: u64, t: &mut Scratch) {
    sqr_product_fixed(acc, t);
    redc_kernel(&mut t[..2 * N], n, n0, acc);
}

fn pow_fixed<const N: usize>(m: &Modulus, s: &[u64], e: u64) -> Option<Vec<u64>> {
    let n: &[u64; N] = m.n.as_slice().try_into().ok()?;
    let r2: &[u64; N] = m.r2.as_slice().try_into().ok()?;
    let s: &[u64; N] = s.try_into().ok()?;
    let n0 = m.n0;
    // base = s·R; then left-to-right square-and-multiply; the last multiplication uses the
    // plain s, which leaves the result in plain form (MontMul(x·R, s) = x·s).
    let mut t: Scratch = [0; 128];
    let mut base = *s;
    mul_fixed(&mut base, r2, n, n0, &mut t);
    let mut acc = base;
    let top = 63 - e.leading_zeros();
    for i in (1..top).rev() {
        sqr_fixed(&mut acc, n, n0, &mut t);
        if (e >> i) & 1 == 1 {
            mul_fixed(&mut acc, &base, n, n0, &mut t);
        }
    }
    if top > 0 {
        sqr_fixed(&mut acc, n, n0, &mut t);
        mul_fixed(&mut acc, s, n, n0, &mut t);
    } else {
        acc = *s;
    }
    let mut out = acc.to_vec();
    m.finish(&mut out);
    Some(out)
}

impl Modulus {
    /// The modulus from little-endian limbs; `None` unless it is odd, above 1 and its top
    /// limb is nonzero.
    pub fn new(n: Vec<u64>) -> Option<Self> {
        let len = n.len();
        if len == 0 || n[0] & 1 == 0 || n[len - 1] == 0 || (len == 1 && n[0] == 1) {
            return None;
        }
        // R^2 mod n through crypto-bigint (setup only), with R = 2^(64·len) explicitly.
        let be = limbs_to_be(&n, len * 8);
        let big = BoxedUint::from_be_slice(&be, 64 * len as u32).ok()?;
        let big: Odd<BoxedUint> = Option::from(Odd::new(big))?;
        let params = BoxedMontyParams::new_vartime(big);
        let r2 = limbs_from_be(&params.as_ref().r2().to_be_bytes(), len);
        Some(Modulus { n0: neg_inv(n[0]), n, r2 })
    }

    /// Number of limbs N.
    pub fn limbs(&self) -> usize {
        self.n.len()
    }

    /// The modulus limbs.
    pub fn modulus(&self) -> &[u64] {
        &self.n
    }

    /// `R^2 mod n`.
    pub fn r2(&self) -> &[u64] {
        &self.r2
    }

    /// Montgomery product: `a·b·R^-1 mod n`, as a value in `[0, R)` (not necessarily below n).
    /// Inputs: N limbs each, any value below R.
    pub fn mul(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut t = vec![0u64; 2 * self.limbs()];
        let mut out = vec![0u64; self.limbs()];
        mul_kernel(a, b, &self.n, self.n0, &mut t, &mut out);
        out
    }

    /// Montgomery square: `a²·R^-1 mod n`, as a value in `[0, R)`.
    pub fn square(&self, a: &[u64]) -> Vec<u64> {
        let mut t = vec![0u64; 2 * self.limbs()];
        let mut out = vec![0u64; self.limbs()];
        sqr_kernel(a, &self.n, self.n0, &mut t, &mut out);
        out
    }

    /// Same as [`Modulus::mul`] through the fixed-size code when N is one of the common sizes.
    pub fn mul_dispatch(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        macro_rules! fixed {
            ($($k:literal)*) => {
                match self.limbs() {
                    $($k => {
                        let (Ok(acc), Ok(b), Ok(n)) = (<[u64; $k]>::try_from(a), b.try_into(), self.n.as_slice().try_into()) else {
                            return self.mul(a, b);
                        };
                        let mut acc = acc;
                        mul_fixed::<$k>(&mut acc, b, n, self.n0, &mut [0; 128]);
                        acc.to_vec()
                    })*
                    _ => self.mul(a, b),
                }
            };
        }
        fixed!(16 24 32 48 64)
    }

    /// Same as [`Modulus::square`] through the fixed-size code when N is a common size.
    pub fn square_dispatch(&self, a: &[u64]) -> Vec<u64> {
        macro_rules! fixed {
            ($($k:literal)*) => {
                match self.limbs() {
                    $($k => {
                        let (Ok(acc), Ok(n)) = (<[u64; $k]>::try_from(a), self.n.as_slice().try_into()) else {
                            return self.square(a);
                        };
                        let mut acc = acc;
                        sqr_fixed::<$k>(&mut acc, n, self.n0, &mut [0; 128]);
                        acc.to_vec()
                    })*
                    _ => self.square(a),
                }
            };
        }
        fixed!(16 24 32 48 64)
    }

    /// Fully reduces a value below 2n (one conditional subtraction).
    fn finish(&self, x: &mut [u64]) {
        if geq(x, &self.n) {
            sub_assign(x, &self.n);
        }
    }

    /// Fully reduces an N-limb value below a small multiple of n (repeated subtraction).
    pub fn reduce(&self, x: &mut [u64]) {
        while geq(x, &self.n) {
            sub_assign(x, &self.n);
        }
    }

    /// `s^e mod n`, fully reduced, for `s < n` (N limbs) and any `e >= 1`.
    pub fn pow_u64(&self, s: &[u64], e: u64) -> Vec<u64> {
        if e == 0 {
            let mut one = vec![0u64; self.limbs()];
            one[0] = 1;
            self.reduce(&mut one);
            return one;
        }
        let fixed = match self.limbs() {
            16 => pow_fixed::<16>(self, s, e),
            24 => pow_fixed::<24>(self, s, e),
            32 => pow_fixed::<32>(self, s, e),
            48 => pow_fixed::<48>(self, s, e),
            64 => pow_fixed::<64>(self, s, e),
            _ => None,
        };
        if let Some(out) = fixed {
            return out;
        }
        let len = self.limbs();
        let (n, n0) = (&self.n[..], self.n0);
        let mut t = vec![0u64; 2 * len];
        let mut base = vec![0u64; len];
        mul_kernel(s, &self.r2, n, n0, &mut t, &mut base);
        let mut acc = base.clone();
        let mut tmp = vec![0u64; len];
        let top = 63 - e.leading_zeros();
        for i in (1..top).rev() {
            sqr_kernel(&acc, n, n0, &mut t, &mut tmp);
            if (e >> i) & 1 == 1 {
                mul_kernel(&tmp, &base, n, n0, &mut t, &mut acc);
            } else {
                core::mem::swap(&mut acc, &mut tmp);
            }
        }
        if top > 0 {
            sqr_kernel(&acc, n, n0, &mut t, &mut tmp);
            mul_kernel(&tmp, s, n, n0, &mut t, &mut acc);
        } else {
            acc.copy_from_slice(&s[..len]);
        }
        self.finish(&mut acc);
        acc
    }

    /// `x < n` for an N-limb `x`.
    pub fn is_reduced(&self, x: &[u64]) -> bool {
        !geq(x, &self.n)
    }
}
