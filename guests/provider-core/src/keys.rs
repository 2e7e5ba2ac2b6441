//! Key parsing, signing and verification: the only place that touches the curve and RSA crates.
//!
//! Keys are parsed and signatures made with the audited RustCrypto crates. ECDSA P-256 and RSA
//! signatures are checked with `fastverify`, our own variable-time arithmetic for public data
//! (verification only: no secret ever reaches it).

use ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::Generate;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey as RsaPrivateKey, Pss, PublicKey as RsaPublicKey};
use spki::{DecodePublicKey, EncodePublicKey};

use rand_core::CryptoRng;

use crate::alg::{Curve, Hash, RSA_MAX_BITS, RSA_MIN_BITS, Scheme, SigAlg};
use crate::fast::FastKey;
use crate::{CoreError as CryptoError, Format as SignatureFormat};

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";

/// A parsed public key. P-256 and RSA keys are [`FastKey`]s: validated by the RustCrypto
/// parsers, checked with `fastverify`.
pub enum PublicKey {
    Fast(FastKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A private key held inside the provider. Never leaves it unless generated as exportable.
pub enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Rsa(RsaPrivateKey),
    Ed25519(ed25519_dalek::SigningKey),
}

pub(crate) fn invalid_key(msg: impl Into<String>) -> CryptoError {
    CryptoError::InvalidKey(msg.into())
}

pub(crate) fn invalid_input(msg: impl Into<String>) -> CryptoError {
    CryptoError::InvalidInput(msg.into())
}

/// What kind of key a DER SubjectPublicKeyInfo / PKCS#8 algorithm identifier names, in words.
fn describe_algorithm(oid: &str, curve: Option<&str>) -> String {
    match (oid, curve) {
        (OID_RSA_ENCRYPTION, _) => "an RSA key".into(),
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => "an EC P-256 key".into(),
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => "an EC P-384 key".into(),
        (OID_EC_PUBLIC_KEY, Some(OID_P521)) => "an EC P-521 key".into(),
        (OID_EC_PUBLIC_KEY, Some(other)) => format!("an EC key on unsupported curve {other}"),
        (OID_ED25519, _) => "an Ed25519 key".into(),
        (other, _) => format!("a key of unsupported type {other}"),
    }
}

pub(crate) fn describe_spki(der: &[u8]) -> Result<String, CryptoError> {
    let info = spki::SubjectPublicKeyInfoRef::try_from(der)
        .map_err(|e| invalid_key(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
    let oid = info.algorithm.oid.to_string();
    let curve = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
    Ok(describe_algorithm(&oid, curve.as_deref()))
}

fn describe_pkcs8(der: &[u8]) -> Result<String, CryptoError> {
    let info = pkcs8::PrivateKeyInfoRef::try_from(der)
        .map_err(|_| invalid_key("not a DER PKCS#8 PrivateKeyInfo (unencrypted)"))?;
    let oid = info.algorithm.oid.to_string();
    let curve = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
    Ok(describe_algorithm(&oid, curve.as_deref()))
}

/// Refuses a key whose type (as `describe_spki` words it) is not the one `alg` needs.
pub(crate) fn check_kind(alg: &SigAlg, found: &str) -> Result<(), CryptoError> {
    let want = match alg.scheme {
        Scheme::Ecdsa(curve) => format!("an EC {} key", curve.name()),
        Scheme::EdDsa => "an Ed25519 key".into(),
        Scheme::RsaPkcs1v15 | Scheme::RsaPss => "an RSA key".into(),
    };
    if found != want {
        return Err(invalid_key(format!("{} needs {want}, but the public key is {found}", alg.name)));
    }
    Ok(())
}

pub(crate) fn check_rsa_bits(bits: usize) -> Result<(), CryptoError> {
    if bits < RSA_MIN_BITS {
        return Err(invalid_key(format!("RSA key of {bits} bits refused: at least {RSA_MIN_BITS} bits are required")));
    }
    if bits > RSA_MAX_BITS {
        return Err(invalid_key(format!("RSA key of {bits} bits refused: at most {RSA_MAX_BITS} bits are supported")));
    }
    Ok(())
}

pub(crate) fn rsa_bits(key: &RsaPublicKey) -> usize {
    key.n().bit_width() as usize
}

impl PublicKey {
    /// Parses a DER SPKI for `alg`, refusing keys of the wrong type or size.
    pub fn from_spki(alg: &SigAlg, der: &[u8]) -> Result<PublicKey, CryptoError> {
        let found = describe_spki(der)?;
        check_kind(alg, &found)?;
        let bad = |e: spki::Error| invalid_key(format!("{found} that does not parse: {e}"));
        match alg.scheme {
            Scheme::Ecdsa(Curve::P384) => {
                Ok(PublicKey::P384(p384::ecdsa::VerifyingKey::from_public_key_der(der).map_err(bad)?))
            }
            Scheme::Ecdsa(Curve::P521) => {
                Ok(PublicKey::P521(p521::ecdsa::VerifyingKey::from_public_key_der(der).map_err(bad)?))
            }
            Scheme::EdDsa => {
                Ok(PublicKey::Ed25519(ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(bad)?))
            }
            Scheme::Ecdsa(Curve::P256) => Ok(PublicKey::Fast(FastKey::p256(der, &found)?)),
            Scheme::RsaPkcs1v15 | Scheme::RsaPss => Ok(PublicKey::Fast(FastKey::rsa(der, &found)?)),
        }
    }

    /// Verifies `sig` over a whole message (the only way for EdDSA; the others hash first).
    pub fn verify_message(
        &self,
        alg: &SigAlg,
        message: &[u8],
        sig: &[u8],
        format: SignatureFormat,
    ) -> Result<bool, CryptoError> {
        if let PublicKey::Ed25519(vk) = self {
            let Ok(bytes) = <[u8; 64]>::try_from(sig) else {
                return Err(invalid_input(format!("EdDSA signature must be 64 bytes, got {}", sig.len())));
            };
            let sig = ed25519_dalek::Signature::from_bytes(&bytes);
            // Strict: no non-canonical encodings or small-order keys (malleability).
            return Ok(vk.verify_strict(message, &sig).is_ok());
        }
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
        if alg.scheme == Scheme::EdDsa {
            return Err(invalid_input("EdDSA verifies whole messages, not digests"));
        }
        check_digest_len(alg, digest)?;
        macro_rules! ecdsa_verify {
            ($curve:ident, $vk:expr, $field:expr) => {{
                check_ecdsa_sig_len(alg, sig, $field, format)?;
                let parsed = match format {
                    SignatureFormat::P1363 => $curve::ecdsa::Signature::from_slice(sig),
                    SignatureFormat::Der => $curve::ecdsa::Signature::from_der(sig),
                };
                Ok(parsed.is_ok_and(|s| $vk.verify_prehash(digest, &s).is_ok()))
            }};
        }
        match self {
            PublicKey::Fast(key) => key.verify_checked(alg, digest, sig, format),
            PublicKey::P384(vk) => ecdsa_verify!(p384, vk, Curve::P384.field_len()),
            PublicKey::P521(vk) => ecdsa_verify!(p521, vk, Curve::P521.field_len()),
            PublicKey::Ed25519(_) => Err(invalid_input("EdDSA verifies whole messages, not digests")),
        }
    }
}

fn pkcs1v15_scheme(hash: Hash) -> Pkcs1v15Sign {
    match hash {
        Hash::Sha256 => Pkcs1v15Sign::new::<rsa::sha2::Sha256>(),
        Hash::Sha384 => Pkcs1v15Sign::new::<rsa::sha2::Sha384>(),
        Hash::Sha512 => Pkcs1v15Sign::new::<rsa::sha2::Sha512>(),
    }
}

/// An ECDSA signature's length, for a curve whose field elements are `field` bytes: exactly
/// two of them in P1363, at most two plus 16 bytes of DER framing.
pub(crate) fn check_ecdsa_sig_len(
    alg: &SigAlg,
    sig: &[u8],
    field: usize,
    format: SignatureFormat,
) -> Result<(), CryptoError> {
    match format {
        SignatureFormat::P1363 if sig.len() != 2 * field => {
            Err(invalid_input(format!("{} P1363 signature must be {} bytes, got {}", alg.name, 2 * field, sig.len())))
        }
        SignatureFormat::Der if sig.is_empty() || sig.len() > 2 * field + 16 => Err(invalid_input(format!(
            "{} DER signature of {} bytes is impossible (at most {})",
            alg.name,
            sig.len(),
            2 * field + 16
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn check_digest_len(alg: &SigAlg, digest: &[u8]) -> Result<(), CryptoError> {
    if digest.len() != alg.hash.output_len() {
        return Err(invalid_input(format!(
            "{} needs a {}-byte {} digest, got {} bytes",
            alg.name,
            alg.hash.output_len(),
            alg.hash.name(),
            digest.len()
        )));
    }
    Ok(())
}

impl PrivateKey {
    /// Parses an unencrypted PKCS#8 DER private key (EC P-256/384/521 or RSA 2048..8192).
    pub fn from_pkcs8(der: &[u8]) -> Result<PrivateKey, CryptoError> {
        let found = describe_pkcs8(der)?;
        let bad = |e: pkcs8::Error| invalid_key(format!("{found} that does not parse: {e}"));
        match found.as_str() {
            "an EC P-256 key" => Ok(PrivateKey::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?)),
            "an EC P-384 key" => Ok(PrivateKey::P384(p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?)),
            "an EC P-521 key" => Ok(PrivateKey::P521(p521::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?)),
            "an Ed25519 key" => Ok(PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(bad)?)),
            "an RSA key" => {
                let key = RsaPrivateKey::from_pkcs8_der(der).map_err(bad)?;
                check_rsa_bits(rsa_bits(key.as_public_key()))?;
                Ok(PrivateKey::Rsa(key))
            }
            _ => Err(invalid_key(format!("cannot sign with {found}"))),
        }
    }

    /// Generates a fresh key for `alg` from the host's CSPRNG.
    pub fn generate<R: CryptoRng>(alg: &SigAlg, rsa_bits: u32, rng: &mut R) -> Result<PrivateKey, CryptoError> {
        Ok(match alg.scheme {
            Scheme::Ecdsa(Curve::P256) => PrivateKey::P256(p256::ecdsa::SigningKey::generate_from_rng(rng)),
            Scheme::Ecdsa(Curve::P384) => PrivateKey::P384(p384::ecdsa::SigningKey::generate_from_rng(rng)),
            Scheme::Ecdsa(Curve::P521) => PrivateKey::P521(p521::ecdsa::SigningKey::generate_from_rng(rng)),
            Scheme::EdDsa => {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut *seed);
                PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            Scheme::RsaPkcs1v15 | Scheme::RsaPss => {
                let bits = rsa_bits as usize;
                // Generation is capped lower than verification: 8192-bit generation would
                // take minutes in the sandbox.
                if !(RSA_MIN_BITS..=4096).contains(&bits) {
                    return Err(invalid_input(format!(
                        "RSA key size {bits} not supported for generation (2048..=4096)"
                    )));
                }
                let key = RsaPrivateKey::new(rng, bits)
                    .map_err(|e| CryptoError::Failed(format!("RSA key generation failed: {e}")))?;
                PrivateKey::Rsa(key)
            }
        })
    }

    pub fn public_spki(&self) -> Result<Vec<u8>, CryptoError> {
        let doc = match self {
            PrivateKey::P256(k) => k.verifying_key().to_public_key_der(),
            PrivateKey::P384(k) => k.verifying_key().to_public_key_der(),
            PrivateKey::P521(k) => k.verifying_key().to_public_key_der(),
            PrivateKey::Rsa(k) => k.as_public_key().to_public_key_der(),
            PrivateKey::Ed25519(k) => k.verifying_key().to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec()).map_err(|e| CryptoError::Failed(format!("encoding public key: {e}")))
    }

    pub fn to_pkcs8(&self) -> Result<Vec<u8>, CryptoError> {
        let doc = match self {
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
            PrivateKey::P521(k) => k.to_pkcs8_der(),
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
            // PKCS#8 v1 (RFC 8410 section 7, no public key): the v2 form with the public key
            // appended is refused by OpenSSL 3.0, pyca/cryptography and WebCrypto alike.
            PrivateKey::Ed25519(k) => {
                ed25519_dalek::pkcs8::KeypairBytes { secret_key: k.to_bytes(), public_key: None }.to_pkcs8_der()
            }
        };
        doc.map(|d| d.as_bytes().to_vec()).map_err(|e| CryptoError::Failed(format!("encoding private key: {e}")))
    }

    fn kind(&self) -> &'static str {
        match self {
            PrivateKey::P256(_) => "an EC P-256 key",
            PrivateKey::P384(_) => "an EC P-384 key",
            PrivateKey::P521(_) => "an EC P-521 key",
            PrivateKey::Rsa(_) => "an RSA key",
            PrivateKey::Ed25519(_) => "an Ed25519 key",
        }
    }

    /// Signs a whole message (the only way for EdDSA; the others hash first).
    pub fn sign_message<R: CryptoRng>(
        &self,
        alg: &SigAlg,
        message: &[u8],
        format: SignatureFormat,
        rng: &mut R,
    ) -> Result<Vec<u8>, CryptoError> {
        match (alg.scheme, self) {
            (Scheme::EdDsa, PrivateKey::Ed25519(k)) => {
                use ed25519_dalek::Signer;
                Ok(k.sign(message).to_bytes().to_vec())
            }
            _ => self.sign_digest(alg, &alg.hash.digest(message), format, rng),
        }
    }

    /// Signs a digest computed with `alg`'s hash. ECDSA is RFC 6979 deterministic.
    /// `rng` feeds RSA blinding and the PSS salt; ECDSA needs none.
    pub fn sign_digest<R: CryptoRng>(
        &self,
        alg: &SigAlg,
        digest: &[u8],
        format: SignatureFormat,
        rng: &mut R,
    ) -> Result<Vec<u8>, CryptoError> {
        check_digest_len(alg, digest)?;
        let failed = |e: ecdsa::Error| CryptoError::Failed(format!("{} signing failed: {e}", alg.name));
        macro_rules! ecdsa_sign {
            ($curve:ident, $sk:expr) => {{
                let sig: $curve::ecdsa::Signature = $sk.sign_prehash(digest).map_err(failed)?;
                Ok(match format {
                    SignatureFormat::P1363 => sig.to_bytes().to_vec(),
                    SignatureFormat::Der => sig.to_der().as_bytes().to_vec(),
                })
            }};
        }
        match (alg.scheme, self) {
            (Scheme::Ecdsa(Curve::P256), PrivateKey::P256(k)) => ecdsa_sign!(p256, k),
            (Scheme::Ecdsa(Curve::P384), PrivateKey::P384(k)) => ecdsa_sign!(p384, k),
            (Scheme::Ecdsa(Curve::P521), PrivateKey::P521(k)) => ecdsa_sign!(p521, k),
            (Scheme::RsaPkcs1v15, PrivateKey::Rsa(k)) => k
                .sign_with_rng(rng, pkcs1v15_scheme(alg.hash), digest)
                .map_err(|e| CryptoError::Failed(format!("{} signing failed: {e}", alg.name))),
            (Scheme::RsaPss, PrivateKey::Rsa(k)) => {
                let r = match alg.hash {
                    Hash::Sha256 => k.sign_with_rng(rng, Pss::<rsa::sha2::Sha256>::new(), digest),
                    Hash::Sha384 => k.sign_with_rng(rng, Pss::<rsa::sha2::Sha384>::new(), digest),
                    Hash::Sha512 => k.sign_with_rng(rng, Pss::<rsa::sha2::Sha512>::new(), digest),
                };
                r.map_err(|e| CryptoError::Failed(format!("{} signing failed: {e}", alg.name)))
            }
            (Scheme::EdDsa, PrivateKey::Ed25519(_)) => Err(invalid_input("EdDSA signs whole messages, not digests")),
            (scheme, key) => {
                let want = match scheme {
                    Scheme::Ecdsa(c) => format!("an EC {} key", c.name()),
                    Scheme::EdDsa => "an Ed25519 key".into(),
                    _ => "an RSA key".into(),
                };
                Err(invalid_key(format!("{} needs {want}, but this key is {}", alg.name, key.kind())))
            }
        }
    }
}
