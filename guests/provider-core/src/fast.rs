//! The keys `fastverify` checks: ECDSA P-256 and RSA (PKCS#1 v1.5 and PSS). Parsed and
//! validated by the RustCrypto parsers, then held in `fastverify`'s form. Verification only:
//! nothing here ever sees a secret.
//!
//! The offline-verification provider uses these for ES256, RS* and PS*; the fast-verification
//! provider offers nothing else, so its component carries none of the signing code.

use rsa::PublicKey as RsaPublicKey;
use rsa::traits::PublicKeyParts;
use spki::DecodePublicKey;

use crate::alg::{Curve, Hash, Scheme, SigAlg};
use crate::keys::{
    check_digest_len, check_ecdsa_sig_len, check_kind, check_rsa_bits, describe_spki, invalid_input, invalid_key,
    rsa_bits,
};
use crate::{CoreError as CryptoError, Format as SignatureFormat};

/// A P-256 or RSA public key. A P-256 key builds its per-key table on its second verification
/// (an opened verifier reused), so a key verified with once pays nothing for it.
pub enum FastKey {
    P256(fastverify::P256Verifier),
    Rsa(fastverify::RsaPublicKey),
}

/// Whether `alg` is one that a [`FastKey`] verifies.
pub fn offers(alg: &SigAlg) -> bool {
    matches!(alg.scheme, Scheme::Ecdsa(Curve::P256) | Scheme::RsaPkcs1v15 | Scheme::RsaPss)
}

impl FastKey {
    /// Parses a DER SPKI for `alg`, refusing keys of the wrong type or size; `unsupported` for
    /// an algorithm outside [`offers`].
    pub fn from_spki(alg: &SigAlg, der: &[u8]) -> Result<FastKey, CryptoError> {
        if !offers(alg) {
            return Err(CryptoError::Unsupported(format!("{} is not verified here (ES256, RS*, PS* only)", alg.name)));
        }
        let found = describe_spki(der)?;
        check_kind(alg, &found)?;
        match alg.scheme {
            Scheme::Ecdsa(_) => FastKey::p256(der, &found),
            _ => FastKey::rsa(der, &found),
        }
    }

    /// A P-256 SPKI already described as `found` (and checked to be one).
    pub(crate) fn p256(der: &[u8], found: &str) -> Result<FastKey, CryptoError> {
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map_err(|e| invalid_key(format!("{found} that does not parse: {e}")))?;
        let point = key.to_sec1_point(false);
        let fast = fastverify::P256VerifyingKey::from_sec1(point.as_bytes())
            .map_err(|e| invalid_key(format!("{found} that does not parse: {e}")))?;
        Ok(FastKey::P256(fastverify::P256Verifier::new(fast)))
    }

    /// An RSA SPKI already described as `found` (and checked to be one).
    pub(crate) fn rsa(der: &[u8], found: &str) -> Result<FastKey, CryptoError> {
        let key = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| invalid_key(format!("{found} that does not parse: {e}")))?;
        check_rsa_bits(rsa_bits(&key))?;
        let fast =
            fastverify::RsaPublicKey::new(&key.n_bytes(), fastverify::exponent_from_be(&key.e_bytes()).unwrap_or(0))
                .map_err(|_| {
                    invalid_key("an RSA key whose public exponent is not odd, at least 3 and at most 64 bits")
                })?;
        Ok(FastKey::Rsa(fast))
    }

    /// Verifies `sig` over a whole message, hashed with `alg`'s hash.
    pub fn verify_message(
        &self,
        alg: &SigAlg,
        message: &[u8],
        sig: &[u8],
        format: SignatureFormat,
    ) -> Result<bool, CryptoError> {
        self.verify_digest(alg, &alg.hash.digest(message), sig, format)
    }

    /// Verifies `sig` over the already-hashed `digest`. `Ok(false)` for any signature that
    /// does not verify; an error only for input whose structure is wrong for the algorithm.
    pub fn verify_digest(
        &self,
        alg: &SigAlg,
        digest: &[u8],
        sig: &[u8],
        format: SignatureFormat,
    ) -> Result<bool, CryptoError> {
        check_digest_len(alg, digest)?;
        self.verify_checked(alg, digest, sig, format)
    }

    /// As [`FastKey::verify_digest`], for a digest whose length is already checked.
    pub(crate) fn verify_checked(
        &self,
        alg: &SigAlg,
        digest: &[u8],
        sig: &[u8],
        format: SignatureFormat,
    ) -> Result<bool, CryptoError> {
        match self {
            FastKey::P256(vk) => {
                check_ecdsa_sig_len(alg, sig, Curve::P256.field_len(), format)?;
                let parsed = match format {
                    SignatureFormat::P1363 => fastverify::parse_p1363(sig),
                    SignatureFormat::Der => fastverify::parse_der(sig),
                };
                Ok(parsed.is_some_and(|(r, s)| vk.verify_prehash(digest, &r, &s)))
            }
            FastKey::Rsa(key) => {
                if sig.len() != key.size() {
                    return Err(invalid_input(format!(
                        "{} signature must be {} bytes for this {}-bit key, got {}",
                        alg.name,
                        key.size(),
                        key.bits(),
                        sig.len()
                    )));
                }
                let hash = match alg.hash {
                    Hash::Sha256 => fastverify::HashAlg::Sha256,
                    Hash::Sha384 => fastverify::HashAlg::Sha384,
                    Hash::Sha512 => fastverify::HashAlg::Sha512,
                };
                Ok(match alg.scheme {
                    Scheme::RsaPkcs1v15 => key.verify_pkcs1v15(hash, digest, sig),
                    // JOSE PS256/384/512 (RFC 7518 section 3.5): MGF1 with the same hash and a
                    // salt as long as the digest.
                    Scheme::RsaPss => key.verify_pss(hash, digest, sig, hash.output_len()),
                    Scheme::Ecdsa(_) | Scheme::EdDsa => false,
                })
            }
        }
    }
}
