//! P-256 group law in Jacobian coordinates, for verification.
//!
//! **Variable time.** Verification only; all inputs are public. The formulas are the classic
//! *incomplete* ones, so every special case is detected and handled explicitly instead:
//! the point at infinity (`Z = 0`), `P == Q` (fall back to doubling) and `P == -Q` (the sum is
//! the point at infinity).
//!
//! A Jacobian triple `(X, Y, Z)` stands for the affine point `(X/Z², Y/Z³)`. The curve is
//! `y² = x³ - 3x + b`; `a = -3` lets doubling compute `3X² + aZ⁴` as `3(X - Z²)(X + Z²)`.
//!
//! Costs in field multiplications (M) and squarings (S):
//! - [`Jacobian::double`]: 4M + 4S.
//! - [`Jacobian::add_affine`]: 8M + 3S (mixed addition, `Z2 = 1`).
//! - [`Jacobian::add_cached`]: 11M + 3S (general addition where the second point carries its
//!   precomputed `Z²` and `Z³`, which saves 1M + 1S per use against the usual 12M + 4S).

use super::field::Fp;

/// The curve coefficient b, canonical little-endian limbs.
pub const B: [u64; 4] = [0x3bce_3c3e_27d2_604b, 0x651d_06b0_cc53_b0f6, 0xb3eb_bd55_7698_86bc, 0x5ac6_35d8_aa3a_93e7];

/// The base point G, canonical little-endian limbs.
pub const GX: [u64; 4] = [0xf4a1_3945_d898_c296, 0x7703_7d81_2deb_33a0, 0xf8bc_e6e5_63a4_40f2, 0x6b17_d1f2_e12c_4247];
pub const GY: [u64; 4] = [0xcbb6_4068_37bf_51f5, 0x2bce_3357_6b31_5ece, 0x8ee7_eb4a_7c0f_9e16, 0x4fe3_42e2_fe1a_7f9b];

/// A finite affine point (never the point at infinity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine {
    pub x: Fp,
    pub y: Fp,
}

/// A Jacobian point; `z == 0` encodes the point at infinity.
#[derive(Clone, Copy, Debug)]
pub struct Jacobian {
    pub x: Fp,
    pub y: Fp,
    pub z: Fp,
}

/// A finite Jacobian point with `Z²` and `Z³` precomputed, for repeated additions.
#[derive(Clone, Copy, Debug)]
pub struct Cached {
    pub x: Fp,
    pub y: Fp,
    pub z: Fp,
    pub zz: Fp,
    pub zzz: Fp,
}

impl Affine {
    /// True when `y² = x³ - 3x + b`.
    pub fn is_on_curve(&self) -> bool {
        self.y.square() == curve_rhs(&self.x)
    }

    #[inline(always)]
    pub fn neg(&self) -> Affine {
        Affine { x: self.x, y: self.y.neg() }
    }

    pub fn to_jacobian(self) -> Jacobian {
        Jacobian { x: self.x, y: self.y, z: Fp::ONE }
    }

    pub fn generator() -> Affine {
        Affine { x: Fp::from_canonical(GX), y: Fp::from_canonical(GY) }
    }
}

/// `x³ - 3x + b`.
pub fn curve_rhs(x: &Fp) -> Fp {
    let b = Fp::from_canonical(B);
    let three_x = x.double().add(x);
    x.square().mul(x).sub(&three_x).add(&b)
}

impl Cached {
    #[inline(always)]
    pub fn neg(&self) -> Cached {
        Cached { y: self.y.neg(), ..*self }
    }
}

impl Jacobian {
    pub const IDENTITY: Jacobian = Jacobian { x: Fp::ONE, y: Fp::ONE, z: Fp::ZERO };

    #[inline(always)]
    pub fn is_identity(&self) -> bool {
        self.z.is_zero()
    }

    pub fn to_cached(self) -> Cached {
        let zz = self.z.square();
        Cached { x: self.x, y: self.y, z: self.z, zz, zzz: zz.mul(&self.z) }
    }

    /// Affine coordinates, or `None` for the point at infinity (one field inversion).
    pub fn to_affine(self) -> Option<Affine> {
        if self.is_identity() {
            return None;
        }
        let zinv = self.z.invert();
        let zinv2 = zinv.square();
        Some(Affine { x: self.x.mul(&zinv2), y: self.y.mul(&zinv2.mul(&zinv)) })
    }

    /// `2·P` for a = -3, arranged to need few additions (4M + 4S + 9 additions + 1 halving):
    /// with `S = 2Y`, `M = 3(X - Z²)(X + Z²)` (= 3X² + aZ⁴) and `B = S²·X` (= 4XY²):
    /// `X3 = M² - 2B`, `Y3 = M·(B - X3) - S⁴/2` (= ... - 8Y⁴), `Z3 = S·Z` (= 2YZ).
    /// Doubling the identity gives the identity; no point of odd order has `Y = 0`, so no
    /// other special case exists.
    #[inline]
    pub fn double(&self) -> Jacobian {
        if self.is_identity() {
            return *self;
        }
        let s = self.y.double();
        let zz = self.z.square();
        let ss = s.square(); // 4Y²
        let z3 = s.mul(&self.z);
        let t = self.x.add(&zz).mul(&self.x.sub(&zz));
        let m = t.double().add(&t);
        let b = ss.mul(&self.x);
        let x3 = m.square().sub(&b.double());
        let y3 = m.mul(&b.sub(&x3)).sub(&ss.square().halve());
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// `P + Q` for an affine `Q` (mixed addition), with every special case handled.
    #[inline]
    pub fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_identity() {
            return q.to_jacobian();
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1); // X2·Z1²
        let s2 = q.y.mul(&z1z1.mul(&self.z)); // Y2·Z1³
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() {
            // Same x: either the same point (double) or its negation (infinity).
            return if r.is_zero() { self.double() } else { Jacobian::IDENTITY };
        }
        self.finish_add(&h, &r, &self.x, &self.y, self.z.mul(&h))
    }

    /// `P + Q` for a finite `Q` with precomputed `Z²`, `Z³`; special cases handled.
    #[inline]
    pub fn add_cached(&self, q: &Cached) -> Jacobian {
        if self.is_identity() {
            return Jacobian { x: q.x, y: q.y, z: q.z };
        }
        let z1z1 = self.z.square();
        let u1 = self.x.mul(&q.zz); // X1·Z2²
        let u2 = q.x.mul(&z1z1); // X2·Z1²
        let s1 = self.y.mul(&q.zzz); // Y1·Z2³
        let s2 = q.y.mul(&z1z1.mul(&self.z)); // Y2·Z1³
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        if h.is_zero() {
            return if r.is_zero() { self.double() } else { Jacobian::IDENTITY };
        }
        self.finish_add(&h, &r, &u1, &s1, self.z.mul(&q.z).mul(&h))
    }

    /// General `P + Q` for two Jacobian points (used to build tables).
    pub fn add(&self, q: &Jacobian) -> Jacobian {
        if q.is_identity() {
            return *self;
        }
        self.add_cached(&q.to_cached())
    }

    /// Shared tail of both additions, from `H = U2 - U1`, `R = S2 - S1`:
    /// `X3 = R² - H³ - 2·U1·H²`, `Y3 = R·(U1·H² - X3) - S1·H³`, `Z3` given.
    #[inline(always)]
    fn finish_add(&self, h: &Fp, r: &Fp, u1: &Fp, s1: &Fp, z3: Fp) -> Jacobian {
        let hh = h.square();
        let hhh = hh.mul(h);
        let v = u1.mul(&hh);
        let x3 = r.square().sub(&hhh).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&hhh));
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// Same point? (compares `X1·Z2² = X2·Z1²` and `Y1·Z2³ = Y2·Z1³`).
    pub fn eq_point(&self, other: &Jacobian) -> bool {
        match (self.is_identity(), other.is_identity()) {
            (true, true) => true,
            (false, false) => {
                let (z1z1, z2z2) = (self.z.square(), other.z.square());
                self.x.mul(&z2z2) == other.x.mul(&z1z1)
                    && self.y.mul(&z2z2.mul(&other.z)) == other.y.mul(&z1z1.mul(&self.z))
            }
            _ => false,
        }
    }
}

/// Converts many Jacobian points to affine with one inversion (Montgomery's trick):
/// prefix products `c_i = z_0···z_i`, invert `c_last`, then peel one factor at a time.
/// Returns `None` if any point is the point at infinity.
pub fn batch_to_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
    if points.iter().any(Jacobian::is_identity) {
        return None;
    }
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fp::ONE;
    for p in points {
        acc = acc.mul(&p.z);
        prefix.push(acc);
    }
    let mut inv = acc.invert();
    let mut out = vec![Affine { x: Fp::ZERO, y: Fp::ZERO }; points.len()];
    for i in (0..points.len()).rev() {
        // inv = (z_0···z_i)⁻¹; z_i⁻¹ = inv · (z_0···z_{i-1})
        let zinv = if i == 0 { inv } else { inv.mul(&prefix[i - 1]) };
        inv = inv.mul(&points[i].z);
        let zinv2 = zinv.square();
        out[i] = Affine { x: points[i].x.mul(&zinv2), y: points[i].y.mul(&zinv2.mul(&zinv)) };
    }
    Some(out)
}

/// The odd multiples `P, 3P, 5P, …, (2·count - 1)P` in Jacobian form.
pub fn odd_multiples(p: &Jacobian, count: usize) -> Vec<Jacobian> {
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return out;
    }
    out.push(*p);
    let twice = p.double().to_cached();
    for i in 1..count {
        out.push(out[i - 1].add_cached(&twice));
    }
    out
}

/// `2^k·P` by `k` doublings.
pub fn double_n(p: &Jacobian, k: u32) -> Jacobian {
    let mut acc = *p;
    for _ in 0..k {
        acc = acc.double();
    }
    acc
}

/// The odd multiples `G', 3G', …, (2·count - 1)G'` of `G' = 2^shift·G` as affine points (used
/// by the build script to emit the static tables, and by tests to check them).
pub fn generator_odd_multiples(count: usize, shift: u32) -> Vec<Affine> {
    let g = double_n(&Affine::generator().to_jacobian(), shift);
    // No odd multiple below n of a point of order n is the identity, so this cannot fail.
    batch_to_affine(&odd_multiples(&g, count)).unwrap_or_default()
}
