//! `fastverify`: fast, verification-only public-key arithmetic.
//!
//! **Everything in this crate is variable time and meant for public data only**: public keys,
//! digests and signatures. It contains no signing code and must never be given a secret.
//!
//! - [`p256`]: ECDSA over NIST P-256 with our own field, scalar and group arithmetic
//!   (Montgomery field, Jacobian a = -3 formulas, interleaved wNAF with a static G table).
//! - [`rsa`]: the RSA public operation on crypto-bigint plus PKCS#1 v1.5 and PSS checks.
//!
//! No function panics on any input: malformed data yields `Err` or `false`.

#![forbid(unsafe_code)]

pub mod p256;
pub mod rsa;

pub use p256::der::{parse_der, parse_p1363};
pub use p256::ecdsa::{P256PreparedKey, P256Verifier, P256VerifyingKey};
pub use rsa::{HashAlg, RsaPublicKey, exponent_from_be, rsa_public};

/// Errors from key parsing and the RSA public operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Wrong length or tag for the encoding.
    InvalidEncoding,
    /// A point coordinate is not below the field prime.
    CoordinateOutOfRange,
    /// The point does not satisfy the curve equation (or has no square root).
    NotOnCurve,
    /// The encoding denotes the point at infinity.
    Identity,
    /// The RSA modulus is zero or even.
    InvalidModulus,
    /// The RSA modulus is shorter than [`rsa::MIN_MODULUS_BITS`].
    ModulusTooSmall,
    /// The RSA modulus is longer than [`rsa::MAX_MODULUS_BITS`].
    ModulusTooLarge,
    /// The RSA exponent is even, below 3, or longer than 64 bits.
    InvalidExponent,
    /// The signature is not exactly as long as the modulus.
    SignatureLength,
    /// The signature, as an integer, is not below the modulus.
    SignatureOutOfRange,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Error {}
