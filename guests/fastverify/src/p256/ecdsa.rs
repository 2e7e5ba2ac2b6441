//! ECDSA P-256 public keys and the verification equation (SEC1 v2 §4.1.4, FIPS 186-5 §6.4.2).
//!
//! **Variable time, verification only.** All inputs are public.
//!
//! Given a public key `Q`, a digest `H` and a signature `(r, s)`:
//! 1. reject unless `0 < r < n` and `0 < s < n`;
//! 2. `e` = the leftmost 256 bits of `H` as an integer (shorter digests taken whole), mod n;
//! 3. `w = s⁻¹ mod n`, `u1 = e·w`, `u2 = r·w`;
//! 4. `R = u1·G + u2·Q`; reject if `R` is the point at infinity;
//! 5. accept iff `x(R) mod n == r`.
//!
//! Step 5 avoids the field inversion: with `R = (X, Y, Z)` Jacobian, `x(R) = X/Z²`, and since
//! `x(R) < p < 2n`, `x(R) mod n == r` iff `X == r·Z²` or (when `r + n < p`) `X == (r+n)·Z²`.

use core::cell::{Cell, OnceCell};

use super::field::{Fp, P, lt4};
use super::mul::{AffineTable, JacobianTable, PREPARED_WINDOW, SPLIT, lincomb, lincomb_split};
use super::point::{Affine, Jacobian, curve_rhs, double_n};
use super::scalar::{add_n, digest_to_scalar, nonzero_below_n, verify_scalars};
use crate::Error;

/// A validated P-256 public key (a finite point on the curve).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P256VerifyingKey {
    q: Affine,
}

/// A public key that builds its [`P256PreparedKey`] table on its second verification: a key
/// verified with once pays nothing for a table it would not use, and a key kept to verify many
/// signatures (an opened verifier) gets the faster path from then on. Single-threaded
/// (interior mutability without locks), as a component instance is.
#[derive(Clone, Debug)]
pub struct P256Verifier {
    key: P256VerifyingKey,
    uses: Cell<u8>,
    prepared: OnceCell<P256PreparedKey>,
}

impl P256Verifier {
    pub fn new(key: P256VerifyingKey) -> Self {
        P256Verifier { key, uses: Cell::new(0), prepared: OnceCell::new() }
    }

    pub fn key(&self) -> &P256VerifyingKey {
        &self.key
    }

    /// True once the table has been built (for tests).
    pub fn is_prepared(&self) -> bool {
        self.prepared.get().is_some()
    }

    /// Same result as [`P256VerifyingKey::verify_prehash`].
    pub fn verify_prehash(&self, digest: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
        if let Some(prepared) = self.prepared.get() {
            return prepared.verify_prehash(digest, r, s);
        }
        let uses = self.uses.get().saturating_add(1);
        self.uses.set(uses);
        if uses < 2 {
            return self.key.verify_prehash(digest, r, s);
        }
        self.prepared.get_or_init(|| self.key.prepare()).verify_prehash(digest, r, s)
    }
}

/// A public key with width-7 affine tables of the odd multiples of `Q` and of `2^128·Q`
/// precomputed (128 doublings and two inversions, once), for callers that verify many
/// signatures under the same key: each verification then needs 128 doublings instead of 256,
/// and mixed additions for Q too.
#[derive(Clone, Debug)]
pub struct P256PreparedKey {
    key: P256VerifyingKey,
    table: AffineTable<PREPARED_WINDOW>,
    table_hi: AffineTable<PREPARED_WINDOW>,
}

impl P256VerifyingKey {
    /// Parses a SEC1 point: uncompressed `04 || X || Y` (65 bytes) or compressed
    /// `02/03 || X` (33 bytes). Rejects coordinates `>= p`, points not on the curve, the
    /// identity encoding (`00`), hybrid encodings and every other length.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        let coord = |b: &[u8]| -> Result<Fp, Error> {
            let arr: &[u8; 32] = b.try_into().map_err(|_| Error::InvalidEncoding)?;
            Fp::from_be_bytes(arr).ok_or(Error::CoordinateOutOfRange)
        };
        match bytes.first() {
            Some(0x04) if bytes.len() == 65 => {
                let q = Affine { x: coord(&bytes[1..33])?, y: coord(&bytes[33..65])? };
                if !q.is_on_curve() {
                    return Err(Error::NotOnCurve);
                }
                Ok(P256VerifyingKey { q })
            }
            Some(&tag @ (0x02 | 0x03)) if bytes.len() == 33 => {
                let x = coord(&bytes[1..33])?;
                let y = curve_rhs(&x).sqrt().ok_or(Error::NotOnCurve)?;
                // P-256 has no point with y = 0, so the two roots differ in parity.
                let y = if y.is_odd() == (tag == 0x03) { y } else { y.neg() };
                Ok(P256VerifyingKey { q: Affine { x, y } })
            }
            Some(0x00) if bytes.len() == 1 => Err(Error::Identity),
            _ => Err(Error::InvalidEncoding),
        }
    }

    /// Uncompressed SEC1 encoding `04 || X || Y`.
    pub fn to_sec1_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.q.x.to_be_bytes());
        out[33..].copy_from_slice(&self.q.y.to_be_bytes());
        out
    }

    /// Verifies `(r, s)` (32-byte big-endian integers) over a message digest.
    pub fn verify_prehash(&self, digest: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
        let table = JacobianTable::new(&self.q);
        verify_with(|u1, u2| lincomb(u1, u2, &table), digest, r, s)
    }

    /// Builds the per-key precomputed tables.
    pub fn prepare(&self) -> P256PreparedKey {
        // Odd multiples of a point of prime order n (Q, 2^128·Q) are never the identity.
        let table = AffineTable::new(&self.q).unwrap_or(AffineTable(Vec::new()));
        let hi = double_n(&self.q.to_jacobian(), SPLIT);
        let table_hi = AffineTable::of(&hi).unwrap_or(AffineTable(Vec::new()));
        P256PreparedKey { key: *self, table, table_hi }
    }

    /// The affine point (crate-internal, for tests).
    pub(crate) fn point(&self) -> &Affine {
        &self.q
    }
}

impl P256PreparedKey {
    pub fn key(&self) -> &P256VerifyingKey {
        &self.key
    }

    /// Same as [`P256VerifyingKey::verify_prehash`], using the cached table.
    pub fn verify_prehash(&self, digest: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
        let full = 1 << (PREPARED_WINDOW - 2);
        if self.table.0.len() != full || self.table_hi.0.len() != full {
            return self.key.verify_prehash(digest, r, s);
        }
        verify_with(|u1, u2| lincomb_split(u1, u2, &self.table, &self.table_hi), digest, r, s)
    }
}

/// The ECDSA checks around `R = u1·G + u2·Q`, computed by `lincomb`.
#[inline(always)]
fn verify_with(lincomb: impl Fn(&[u64; 4], &[u64; 4]) -> Jacobian, digest: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
    let (Some(r), Some(s)) = (nonzero_below_n(r), nonzero_below_n(s)) else {
        return false;
    };
    let e = digest_to_scalar(digest);
    let (u1, u2) = verify_scalars(&e, &r, &s);
    x_matches(&lincomb(&u1, &u2), &r)
}

/// `x(R) mod n == r` without inverting Z (see the module docs). `r` is below n.
fn x_matches(point: &Jacobian, r: &[u64; 4]) -> bool {
    if point.is_identity() {
        return false;
    }
    let zz = point.z.square();
    if Fp::from_canonical(*r).mul(&zz) == point.x {
        return true;
    }
    let (r_plus_n, carry) = add_n(r);
    carry == 0 && lt4(&r_plus_n, &P) && Fp::from_canonical(r_plus_n).mul(&zz) == point.x
}

/// `u1·G + u2·Q` for arbitrary scalars below n, as affine bytes (None for infinity).
/// Exposed for tests of the special cases of the group law.
#[doc(hidden)]
pub fn lincomb_for_tests(
    u1: &[u64; 4],
    u2: &[u64; 4],
    key: &P256VerifyingKey,
    prepared: bool,
) -> Option<([u8; 32], [u8; 32])> {
    let p = if prepared {
        let k = key.prepare();
        lincomb_split(u1, u2, &k.table, &k.table_hi)
    } else {
        lincomb(u1, u2, &JacobianTable::new(key.point()))
    };
    p.to_affine().map(|a| (a.x.to_be_bytes(), a.y.to_be_bytes()))
}
