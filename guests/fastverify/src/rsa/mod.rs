//! RSA signature verification: the public operation `s^e mod n` and the two padding checks
//! (PKCS#1 v1.5 and PSS, RFC 8017 §8).
//!
//! **Variable time, verification only.** The exponent, modulus and signature are public, so
//! the exponentiation is a plain left-to-right square-and-multiply over the bits of `e`
//! (for `e = 65537`: 16 squarings and 1 multiplication), instead of a constant-time window.
//! Never use this code with a private exponent.
//!
//! Arithmetic is our own variable-time Montgomery multiplication and squaring on `u64` limbs
//! ([`monty`]); crypto-bigint only computes `R² mod n` when a key is built.

mod hash;
#[doc(hidden)]
pub mod monty;
mod pkcs1v15;
mod pss;

pub use hash::HashAlg;

use crate::Error;
use monty::Modulus;

/// Smallest modulus accepted, in bits. Callers should enforce their own (higher) policy.
pub const MIN_MODULUS_BITS: u32 = 1024;
/// Largest modulus accepted, in bits (bounds the work per call).
pub const MAX_MODULUS_BITS: u32 = 16384;

/// A validated RSA public key with its Montgomery parameters precomputed.
#[derive(Clone, Debug)]
pub struct RsaPublicKey {
    modulus: Modulus,
    e: u64,
    /// Modulus length in bytes (`k` in RFC 8017).
    k: usize,
    /// Modulus length in bits.
    bits: u32,
}

/// Parses a big-endian public exponent of at most 8 significant bytes.
pub fn exponent_from_be(bytes: &[u8]) -> Result<u64, Error> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = &bytes[first..];
    if digits.len() > 8 {
        return Err(Error::InvalidExponent);
    }
    Ok(digits.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
}

impl RsaPublicKey {
    /// Builds a key from a big-endian modulus (leading zero bytes allowed) and exponent.
    /// Rejects an even modulus, one outside [`MIN_MODULUS_BITS`]..=[`MAX_MODULUS_BITS`], and
    /// an exponent that is even or below 3.
    pub fn new(modulus_be: &[u8], e: u64) -> Result<Self, Error> {
        if e < 3 || e.is_multiple_of(2) {
            return Err(Error::InvalidExponent);
        }
        let first = modulus_be.iter().position(|&b| b != 0).ok_or(Error::InvalidModulus)?;
        let digits = &modulus_be[first..];
        if digits.len() > (MAX_MODULUS_BITS / 8) as usize {
            return Err(Error::ModulusTooLarge);
        }
        let bits = digits.len() as u32 * 8 - digits[0].leading_zeros();
        if bits < MIN_MODULUS_BITS {
            return Err(Error::ModulusTooSmall);
        }
        let n = monty::limbs_from_be(digits, digits.len().div_ceil(8));
        let modulus = Modulus::new(n).ok_or(Error::InvalidModulus)?;
        Ok(RsaPublicKey { modulus, e, k: digits.len(), bits })
    }

    /// Like [`RsaPublicKey::new`] with a big-endian exponent.
    pub fn from_be(modulus_be: &[u8], exponent_be: &[u8]) -> Result<Self, Error> {
        Self::new(modulus_be, exponent_from_be(exponent_be)?)
    }

    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        self.k
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The RSAVP1 primitive: `sig^e mod n` as `k` big-endian bytes. The signature must be
    /// exactly `k` bytes and, as an integer, below n.
    pub fn public_op(&self, sig: &[u8]) -> Result<Vec<u8>, Error> {
        if sig.len() != self.k {
            return Err(Error::SignatureLength);
        }
        let s = monty::limbs_from_be(sig, self.modulus.limbs());
        if !self.modulus.is_reduced(&s) {
            return Err(Error::SignatureOutOfRange);
        }
        // m = s^e mod n < n < 256^k, so k bytes hold it.
        Ok(monty::limbs_to_be(&self.modulus.pow_u64(&s, self.e), self.k))
    }

    /// RSASSA-PKCS1-v1_5 verification of a precomputed digest (RFC 8017 §8.2.2).
    pub fn verify_pkcs1v15(&self, hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
        match self.public_op(sig) {
            Ok(em) => pkcs1v15::encoding_matches(&em, hash, digest),
            Err(_) => false,
        }
    }

    /// RSASSA-PSS verification of a precomputed digest (RFC 8017 §8.1.2) with MGF1 over the
    /// same hash and the given salt length (JOSE PS256/384/512 use the digest length).
    pub fn verify_pss(&self, hash: HashAlg, digest: &[u8], sig: &[u8], salt_len: usize) -> bool {
        // EM has emLen = ceil((modBits - 1) / 8) bytes; when modBits - 1 is a multiple of 8
        // the k-byte I2OSP output carries one extra leading byte, which must be zero.
        let em_bits = self.bits as usize - 1;
        let em_len = em_bits.div_ceil(8);
        match self.public_op(sig) {
            Ok(m) => {
                let extra = m.len().saturating_sub(em_len);
                if m[..extra].iter().any(|&b| b != 0) {
                    return false;
                }
                pss::emsa_pss_verify(&m[extra..], em_bits, hash, digest, salt_len)
            }
            Err(_) => false,
        }
    }
}

/// One-shot `sig^e mod n` (see [`RsaPublicKey::public_op`]).
pub fn rsa_public(modulus_be: &[u8], exponent: u64, sig: &[u8]) -> Result<Vec<u8>, Error> {
    RsaPublicKey::new(modulus_be, exponent)?.public_op(sig)
}
