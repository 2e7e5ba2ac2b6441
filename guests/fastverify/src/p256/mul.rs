//! The double-scalar multiplication `u1·G + u2·Q` at the heart of ECDSA verification.
//!
//! **Variable time.** Verification only: `u1`, `u2`, `Q` are all public.
//!
//! Both scalars are recoded in width-w NAF (wNAF): digits that are zero or odd with
//! `|d| < 2^(w-1)`, and any nonzero digit followed by at least `w - 1` zeros. A 256-bit scalar
//! has at most 257 digits and on average one nonzero digit per `w + 1` positions.
//!
//! The two recodings are walked together from the top (Shamir's trick / interleaving): one
//! shared doubling per position, plus one addition per nonzero digit of either scalar.
//! `G` uses a static affine table of its odd multiples (width [`G_WINDOW`], generated at build
//! time by `build.rs`), so its additions are mixed additions. `Q` uses either a per-call table
//! of Jacobian odd multiples (width [`Q_WINDOW`], with `Z²`, `Z³` cached), or — for a prepared
//! key — an affine table of width [`PREPARED_WINDOW`] built once with a single inversion.
//!
//! A prepared key also keeps the table of `2^128·Q`, and a static table holds `2^128·G`, so
//! [`lincomb_split`] can write `u1 = a + b·2^128`, `u2 = c + d·2^128` and compute
//! `a·G + b·(2^128·G) + c·Q + d·(2^128·Q)`: four scalars of 128 bits share 128 doublings
//! instead of 256, for about the same number of additions.

use super::field::Fp;
use super::point::{Affine, Cached, Jacobian, batch_to_affine, odd_multiples};

/// wNAF width used for the fixed base G (64 affine points, 4 KiB).
pub const G_WINDOW: u32 = 8;
/// wNAF width for the per-call table of Q (8 points).
pub const Q_WINDOW: u32 = 5;
/// wNAF width for the affine table of a prepared key (32 points).
pub const PREPARED_WINDOW: u32 = 7;

// Digits are stored as i8, so no window may exceed 8 bits.
const _: () = assert!(G_WINDOW <= 8 && Q_WINDOW <= 8 && PREPARED_WINDOW <= 8);

/// Maximum number of wNAF digits of a 256-bit scalar.
const DIGITS: usize = 257;

/// Where [`lincomb_split`] cuts its scalars (and the shift of the `_HI` tables).
pub const SPLIT: u32 = 128;

// Defines `static G_TABLE: [Affine; 1 << (G_WINDOW - 2)]` (G, 3G, 5G, …) and `G_HI_TABLE`
// (the same for 2^SPLIT·G), in Montgomery form.
include!(concat!(env!("OUT_DIR"), "/g_table.rs"));

/// Reads `w` bits of the 256-bit `k` starting at bit `pos` (bits past the top read as 0).
#[inline(always)]
fn bits_at(k: &[u64; 4], pos: usize, w: u32) -> u64 {
    if pos >= 256 {
        return 0;
    }
    let (idx, off) = (pos / 64, (pos % 64) as u32);
    let mut v = k[idx] >> off;
    if off + w > 64 && idx + 1 < 4 {
        v |= k[idx + 1] << (64 - off);
    }
    v & ((1u64 << w) - 1)
}

/// Width-`w` NAF of `k` (`2 <= w <= 8`, as digits are `i8`), least significant digit first.
///
/// Scanning upward, `carry` is what the digits emitted so far overshoot the bits consumed.
/// At an odd window value `v` (window bits plus carry), emit the digit `d ≡ v (mod 2^w)` with
/// `|d| < 2^(w-1)`; then `v - d` is either 0 or `2^w`, i.e. a carry into the next window.
pub fn wnaf(k: &[u64; 4], w: u32) -> [i8; DIGITS] {
    let mut out = [0i8; DIGITS];
    let window = 1u64 << w;
    let mut carry = 0u64;
    let mut pos = 0usize;
    while pos < DIGITS {
        let v = bits_at(k, pos, w) + carry;
        if v & 1 == 0 {
            // bit == carry here, so the carry passes through unchanged.
            pos += 1;
            continue;
        }
        let d = if v < window / 2 {
            carry = 0;
            v as i64
        } else {
            carry = 1;
            v as i64 - window as i64
        };
        out[pos] = d as i8;
        pos += w as usize;
    }
    out
}

/// A source of additions `acc + d·Q` for odd wNAF digits `d`.
pub trait QTable {
    const WINDOW: u32;
    fn add_digit(&self, acc: &Jacobian, d: i8) -> Jacobian;
}

/// Per-call table for Q: `Q, 3Q, …, 15Q` in Jacobian form with cached `Z²`, `Z³`.
pub struct JacobianTable(pub [Cached; 1 << (Q_WINDOW - 2)]);

impl JacobianTable {
    pub fn new(q: &Affine) -> JacobianTable {
        let pts = odd_multiples(&q.to_jacobian(), 1 << (Q_WINDOW - 2));
        let mut t = [q.to_jacobian().to_cached(); 1 << (Q_WINDOW - 2)];
        for (slot, p) in t.iter_mut().zip(pts.iter()) {
            *slot = p.to_cached();
        }
        JacobianTable(t)
    }
}

impl QTable for JacobianTable {
    const WINDOW: u32 = Q_WINDOW;
    #[inline(always)]
    fn add_digit(&self, acc: &Jacobian, d: i8) -> Jacobian {
        let e = &self.0[(d.unsigned_abs() / 2) as usize];
        if d > 0 { acc.add_cached(e) } else { acc.add_cached(&e.neg()) }
    }
}

/// Affine table of odd multiples, built once (for G statically, for Q per prepared key).
#[derive(Clone, Debug)]
pub struct AffineTable<const W: u32>(pub Vec<Affine>);

impl<const W: u32> AffineTable<W> {
    /// `Q, 3Q, …` up to `(2^(W-1) - 1)Q`, normalised with one inversion.
    pub fn new(q: &Affine) -> Option<AffineTable<W>> {
        Self::of(&q.to_jacobian())
    }

    /// The same for a Jacobian point; `None` if an odd multiple is the point at infinity.
    pub fn of(q: &Jacobian) -> Option<AffineTable<W>> {
        let pts = odd_multiples(q, 1 << (W - 2));
        batch_to_affine(&pts).map(AffineTable)
    }
}

impl<const W: u32> QTable for AffineTable<W> {
    const WINDOW: u32 = W;
    #[inline(always)]
    fn add_digit(&self, acc: &Jacobian, d: i8) -> Jacobian {
        add_from(&self.0, acc, d)
    }
}

#[inline(always)]
fn add_from(table: &[Affine], acc: &Jacobian, d: i8) -> Jacobian {
    match table.get((d.unsigned_abs() / 2) as usize) {
        Some(e) if d > 0 => acc.add_affine(e),
        Some(e) => acc.add_affine(&e.neg()),
        None => *acc, // unreachable for digits of the table's width
    }
}

#[inline(always)]
fn add_g(acc: &Jacobian, d: i8) -> Jacobian {
    add_from(&G_TABLE, acc, d)
}

/// `u1·G + u2·Q` by interleaved wNAF; the result may be the point at infinity.
pub fn lincomb<T: QTable>(u1: &[u64; 4], u2: &[u64; 4], q: &T) -> Jacobian {
    let n1 = wnaf(u1, G_WINDOW);
    let n2 = wnaf(u2, T::WINDOW);
    let mut top = DIGITS;
    while top > 0 && n1[top - 1] == 0 && n2[top - 1] == 0 {
        top -= 1;
    }
    let mut acc = Jacobian::IDENTITY;
    for i in (0..top).rev() {
        acc = acc.double();
        if n1[i] != 0 {
            acc = add_g(&acc, n1[i]);
        }
        if n2[i] != 0 {
            acc = q.add_digit(&acc, n2[i]);
        }
    }
    acc
}

/// The low and high 128 bits of a 256-bit scalar, each as a 256-bit value.
#[inline(always)]
fn split(k: &[u64; 4]) -> ([u64; 4], [u64; 4]) {
    ([k[0], k[1], 0, 0], [k[2], k[3], 0, 0])
}

/// `u1·G + u2·Q` by interleaved wNAF over four 128-bit halves (see the module docs), with the
/// tables of `Q` and `2^128·Q` of a prepared key. The result may be the point at infinity.
pub fn lincomb_split<const W: u32>(
    u1: &[u64; 4],
    u2: &[u64; 4],
    q: &AffineTable<W>,
    q_hi: &AffineTable<W>,
) -> Jacobian {
    let ((a, b), (c, d)) = (split(u1), split(u2));
    let (na, nb) = (wnaf(&a, G_WINDOW), wnaf(&b, G_WINDOW));
    let (nc, nd) = (wnaf(&c, W), wnaf(&d, W));
    // A 128-bit value has at most 129 digits.
    let mut top = SPLIT as usize + 1;
    while top > 0 && na[top - 1] == 0 && nb[top - 1] == 0 && nc[top - 1] == 0 && nd[top - 1] == 0 {
        top -= 1;
    }
    let mut acc = Jacobian::IDENTITY;
    for i in (0..top).rev() {
        acc = acc.double();
        if na[i] != 0 {
            acc = add_g(&acc, na[i]);
        }
        if nb[i] != 0 {
            acc = add_from(&G_HI_TABLE, &acc, nb[i]);
        }
        if nc[i] != 0 {
            acc = q.add_digit(&acc, nc[i]);
        }
        if nd[i] != 0 {
            acc = q_hi.add_digit(&acc, nd[i]);
        }
    }
    acc
}

/// The static G table (exposed for tests).
pub fn g_table() -> &'static [Affine] {
    &G_TABLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p256::point::generator_odd_multiples;

    /// Rebuilds the integer from its digits, mod 2^320 (Horner, two's complement limbs).
    fn rebuild(d: &[i8; DIGITS]) -> [u64; 4] {
        let mut v = [0u64; 5];
        for &x in d.iter().rev() {
            let mut carry = 0u64;
            for limb in v.iter_mut() {
                let nc = *limb >> 63;
                *limb = (*limb << 1) | carry;
                carry = nc;
            }
            let add = x as i64 as u64; // sign-extended
            let ext = if x < 0 { u64::MAX } else { 0 };
            let mut c = 0u64;
            for (i, limb) in v.iter_mut().enumerate() {
                let a = if i == 0 { add } else { ext };
                let s = *limb as u128 + a as u128 + c as u128;
                *limb = s as u64;
                c = (s >> 64) as u64;
            }
        }
        assert_eq!(v[4], 0);
        [v[0], v[1], v[2], v[3]]
    }

    #[test]
    fn wnaf_shape_and_value() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases = vec![[0; 4], [1, 0, 0, 0], [u64::MAX; 4], [0, 0, 0, 1 << 63]];
        for _ in 0..500 {
            cases.push([next(), next(), next(), next()]);
        }
        for k in cases {
            for w in [2u32, 4, 5, 6, 7, 8] {
                let d = wnaf(&k, w);
                assert_eq!(rebuild(&d), k, "w={w}");
                let mut i = 0;
                while i < DIGITS {
                    if d[i] != 0 {
                        assert!(d[i] % 2 != 0 && (d[i].unsigned_abs() as u32) < (1 << (w - 1)));
                        let end = (i + w as usize).min(DIGITS);
                        assert!(d[i + 1..end].iter().all(|&x| x == 0));
                    }
                    i += 1;
                }
            }
        }
    }

    #[test]
    fn static_tables_match_runtime() {
        let t = generator_odd_multiples(1 << (G_WINDOW - 2), 0);
        assert_eq!(t.as_slice(), g_table());
        assert!(t.iter().all(|p| p.is_on_curve()));
        let t = generator_odd_multiples(1 << (G_WINDOW - 2), SPLIT);
        assert_eq!(t.as_slice(), G_HI_TABLE.as_slice());
        assert!(t.iter().all(|p| p.is_on_curve()));
        // wNAF digits of a value below 2^SPLIT stop at position SPLIT.
        for w in [G_WINDOW, PREPARED_WINDOW] {
            let d = wnaf(&[u64::MAX, u64::MAX, 0, 0], w);
            assert!(d[SPLIT as usize + 1..].iter().all(|&x| x == 0));
        }
    }
}
