//! PKCS#10 certification requests (RFC 2986) for keys whose private half lives elsewhere.
//!
//! [`build_csr`] assembles a `CertificationRequestInfo` from an RFC 4514 subject, optional
//! subjectAltNames and the caller's SubjectPublicKeyInfo, hands its DER to a signing closure
//! (a PKCS#11 token, a sandboxed provider, ...), checks that the signature has the shape the
//! algorithm calls for and returns the DER `CertificationRequest`. Nothing here touches private
//! keys, files or the network.
//!
//! What goes on the wire:
//! - version 0; the subject as an RDNSequence, root first (an RFC 4514 string names the most
//!   specific RDN first, so its RDNs are reversed); multi-valued RDNs are DER-sorted SETs.
//! - countryName and serialNumber are PrintableString, emailAddress and domainComponent
//!   IA5String (as X.520, PKCS#9 and RFC 4519 define them, and as OpenSSL writes them); every
//!   other attribute is UTF8String. A value written as `#hex` (RFC 4514) is embedded as the DER
//!   value it spells.
//! - SANs, if any, go into one PKCS#9 extensionRequest attribute holding one non-critical
//!   subjectAltName extension; without SANs the attributes are an empty SET.
//! - signatureAlgorithm: ecdsa-with-SHA256/384/512 with absent parameters; sha*WithRSAEncryption
//!   with NULL parameters; id-RSASSA-PSS with explicit RSASSA-PSS-params (see
//!   [`CsrAlgorithm`]); Ed25519 and ML-DSA with absent parameters.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use const_oid::db::{fips204, rfc2985, rfc4519, rfc5912, rfc8410};
use der::asn1::{Any, BitString, Ia5String, ObjectIdentifier, OctetString, SetOfVec, UintRef};
use der::{Choice, Decode, Encode, Sequence, Tag, ValueOrd};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

mod san;
mod subject;
#[cfg(test)]
mod tests;

pub use san::San;
use san::*;
pub use subject::encode_subject;
use subject::*;

/// Longest subject string accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 4096;
/// Most subjectAltNames accepted in one request.
pub const MAX_SANS: usize = 100;
/// Longest single subjectAltName value accepted, in bytes.
pub const MAX_SAN_LEN: usize = 2048;
/// The PEM label of a PKCS#10 request (RFC 7468 section 7).
pub const PEM_LABEL: &str = "CERTIFICATE REQUEST";

/// organizationIdentifier (X.520, 2.5.4.97); const-oid's database does not name it.
const ORGANIZATION_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.97");

/// Why a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("the subject is empty")]
    EmptySubject,
    #[error("the subject is {len} bytes long; at most {max} are allowed")]
    SubjectTooLong { len: usize, max: usize },
    #[error("unknown attribute type {0:?} in the subject (known: {known}; or give a dotted OID)", known = KNOWN_ATTRIBUTE_NAMES)]
    UnknownAttribute(String),
    #[error("bad escape in the subject: {0}")]
    BadEscape(String),
    #[error("invalid subject: {0}")]
    InvalidSubject(String),
    #[error("{count} subjectAltNames given; at most {max} are allowed")]
    TooManySans { count: usize, max: usize },
    #[error("invalid IP address {0:?} in a subjectAltName")]
    InvalidIp(String),
    #[error("invalid subjectAltName {text:?}: {reason}")]
    InvalidSan { text: String, reason: String },
    #[error("unsupported signature algorithm {0:?} (supported: {supported})", supported = SUPPORTED_ALGORITHMS)]
    UnsupportedAlgorithm(String),
    #[error("invalid SubjectPublicKeyInfo: {0}")]
    InvalidSpki(String),
    #[error("algorithm {algorithm} needs {expected}, but the public key is {found}")]
    KeyMismatch { algorithm: CsrAlgorithm, expected: &'static str, found: String },
    #[error("the signer failed: {0}")]
    Signer(String),
    #[error("the signer returned an unusable {algorithm} signature: {reason}")]
    BadSignature { algorithm: CsrAlgorithm, reason: String },
    #[error("DER encoding failed: {0}")]
    Der(#[from] der::Error),
    #[error("PEM encoding failed: {0}")]
    Pem(pem_rfc7468::Error),
}

// ---------------------------------------------------------------------------------------------
// Algorithms
// ---------------------------------------------------------------------------------------------

const SUPPORTED_ALGORITHMS: &str =
    "ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA, ML-DSA-44, ML-DSA-65, ML-DSA-87";

/// The signature algorithms a request can be signed with, named as in JOSE (RFC 7518, RFC 8037)
/// and FIPS 204.
///
/// PS256/384/512 are encoded as `id-RSASSA-PSS` with `RSASSA-PSS-params` spelling out the hash,
/// MGF1 with the same hash and a salt as long as the hash, each hash AlgorithmIdentifier with
/// NULL parameters and the trailer field left at its DEFAULT (so absent, as DER demands) — the
/// bytes OpenSSL 3 writes for `-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CsrAlgorithm {
    Es256,
    Es384,
    Es512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    EdDsa,
    MlDsa44,
    MlDsa65,
    MlDsa87,
}

/// A named EC curve: its OID, its name and the byte length of its field elements.
struct Curve {
    oid: ObjectIdentifier,
    name: &'static str,
    field_len: usize,
}

/// A SHA-2 hash: its OID and its output length in bytes.
struct Hash {
    oid: ObjectIdentifier,
    len: u8,
}

/// An ML-DSA parameter set: its OID and the byte lengths of its public keys and signatures.
struct MlDsaLevel {
    oid: ObjectIdentifier,
    public_key_len: usize,
    signature_len: usize,
}

const SHA256: Hash = Hash { oid: rfc5912::ID_SHA_256, len: 32 };
const SHA384: Hash = Hash { oid: rfc5912::ID_SHA_384, len: 48 };
const SHA512: Hash = Hash { oid: rfc5912::ID_SHA_512, len: 64 };

impl CsrAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [CsrAlgorithm; 13] = [
        Self::Es256,
        Self::Es384,
        Self::Es512,
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::EdDsa,
        Self::MlDsa44,
        Self::MlDsa65,
        Self::MlDsa87,
    ];

    /// The algorithm's name, as [`CsrAlgorithm::parse`] accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::EdDsa => "EdDSA",
            Self::MlDsa44 => "ML-DSA-44",
            Self::MlDsa65 => "ML-DSA-65",
            Self::MlDsa87 => "ML-DSA-87",
        }
    }

    /// Looks an algorithm up by its exact name; `Ed25519` is taken for `EdDSA`.
    pub fn parse(name: &str) -> Result<Self, CsrError> {
        if name == "Ed25519" {
            return Ok(Self::EdDsa);
        }
        Self::ALL
            .into_iter()
            .find(|alg| alg.name() == name)
            .ok_or_else(|| CsrError::UnsupportedAlgorithm(name.to_owned()))
    }

    fn curve(self) -> Option<Curve> {
        match self {
            Self::Es256 => Some(Curve { oid: rfc5912::SECP_256_R_1, name: "P-256", field_len: 32 }),
            Self::Es384 => Some(Curve { oid: rfc5912::SECP_384_R_1, name: "P-384", field_len: 48 }),
            Self::Es512 => Some(Curve { oid: rfc5912::SECP_521_R_1, name: "P-521", field_len: 66 }),
            _ => None,
        }
    }

    /// The hash of an RSA algorithm (PKCS#1 v1.5 or PSS).
    fn rsa_hash(self) -> Option<Hash> {
        match self {
            Self::Rs256 | Self::Ps256 => Some(SHA256),
            Self::Rs384 | Self::Ps384 => Some(SHA384),
            Self::Rs512 | Self::Ps512 => Some(SHA512),
            _ => None,
        }
    }

    fn ml_dsa(self) -> Option<MlDsaLevel> {
        match self {
            Self::MlDsa44 => Some(MlDsaLevel { oid: fips204::ID_ML_DSA_44, public_key_len: 1312, signature_len: 2420 }),
            Self::MlDsa65 => Some(MlDsaLevel { oid: fips204::ID_ML_DSA_65, public_key_len: 1952, signature_len: 3309 }),
            Self::MlDsa87 => Some(MlDsaLevel { oid: fips204::ID_ML_DSA_87, public_key_len: 2592, signature_len: 4627 }),
            _ => None,
        }
    }

    /// The kind of key the algorithm signs with, for error messages.
    fn expected_key(self) -> &'static str {
        match self {
            Self::Es256 => "an EC P-256 key",
            Self::Es384 => "an EC P-384 key",
            Self::Es512 => "an EC P-521 key",
            Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 | Self::Ps384 | Self::Ps512 => {
                "an RSA key (rsaEncryption)"
            }
            Self::EdDsa => "an Ed25519 key",
            Self::MlDsa44 => "an ML-DSA-44 key",
            Self::MlDsa65 => "an ML-DSA-65 key",
            Self::MlDsa87 => "an ML-DSA-87 key",
        }
    }

    /// The CSR's signatureAlgorithm.
    fn signature_algorithm(self) -> Result<AlgorithmIdentifierOwned, CsrError> {
        let (oid, parameters) = match self {
            Self::Es256 => (rfc5912::ECDSA_WITH_SHA_256, None),
            Self::Es384 => (rfc5912::ECDSA_WITH_SHA_384, None),
            Self::Es512 => (rfc5912::ECDSA_WITH_SHA_512, None),
            Self::Rs256 => (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, Some(Any::null())),
            Self::Rs384 => (rfc5912::SHA_384_WITH_RSA_ENCRYPTION, Some(Any::null())),
            Self::Rs512 => (rfc5912::SHA_512_WITH_RSA_ENCRYPTION, Some(Any::null())),
            Self::Ps256 => (rfc5912::ID_RSASSA_PSS, Some(pss_parameters(&SHA256)?)),
            Self::Ps384 => (rfc5912::ID_RSASSA_PSS, Some(pss_parameters(&SHA384)?)),
            Self::Ps512 => (rfc5912::ID_RSASSA_PSS, Some(pss_parameters(&SHA512)?)),
            Self::EdDsa => (rfc8410::ID_ED_25519, None),
            Self::MlDsa44 => (fips204::ID_ML_DSA_44, None),
            Self::MlDsa65 => (fips204::ID_ML_DSA_65, None),
            Self::MlDsa87 => (fips204::ID_ML_DSA_87, None),
        };
        Ok(AlgorithmIdentifierOwned { oid, parameters })
    }
}

impl fmt::Display for CsrAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CsrAlgorithm {
    type Err = CsrError;

    fn from_str(name: &str) -> Result<Self, CsrError> {
        Self::parse(name)
    }
}

/// RSASSA-PSS-params (RFC 4055 section 3.1). The trailer field is always 1, its DEFAULT, so DER
/// leaves it out; saltLength is never 20 here, so it is always written.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct RsaPssParams {
    #[asn1(context_specific = "0")]
    hash_algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1")]
    mask_gen_algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "2")]
    salt_length: u8,
}

fn pss_parameters(hash: &Hash) -> Result<Any, CsrError> {
    let hash_algorithm = AlgorithmIdentifierOwned { oid: hash.oid, parameters: Some(Any::null()) };
    let mask_gen_algorithm =
        AlgorithmIdentifierOwned { oid: rfc5912::ID_MGF_1, parameters: Some(Any::encode_from(&hash_algorithm)?) };
    Ok(Any::encode_from(&RsaPssParams { hash_algorithm, mask_gen_algorithm, salt_length: hash.len })?)
}

// ---------------------------------------------------------------------------------------------
// The public key
// ---------------------------------------------------------------------------------------------

/// RSAPublicKey (RFC 8017 appendix A.1.1); only the modulus length is used.
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// Ecdsa-Sig-Value (RFC 3279 section 2.2.3).
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// What a checked public key tells about the signatures that go with it.
enum KeyFacts {
    /// An EC key: the byte length of its field elements.
    Ec { field_len: usize },
    /// An RSA key: the byte length of its modulus, which every signature has.
    Rsa { modulus_len: usize },
    /// A fixed signature length (Ed25519, ML-DSA).
    Fixed { signature_len: usize },
}

fn named_curve(spki: &SubjectPublicKeyInfoOwned) -> Option<ObjectIdentifier> {
    spki.algorithm.parameters.as_ref().and_then(|params| params.decode_as::<ObjectIdentifier>().ok())
}

/// A short description of the key an SPKI holds, for error messages.
fn describe_key(spki: &SubjectPublicKeyInfoOwned) -> String {
    let oid = spki.algorithm.oid;
    let text = if oid == rfc5912::ID_EC_PUBLIC_KEY {
        match named_curve(spki) {
            Some(rfc5912::SECP_256_R_1) => "an EC P-256 key",
            Some(rfc5912::SECP_384_R_1) => "an EC P-384 key",
            Some(rfc5912::SECP_521_R_1) => "an EC P-521 key",
            Some(curve) => return format!("an EC key on curve {curve}"),
            None => "an EC key without a named curve",
        }
    } else if oid == rfc5912::RSA_ENCRYPTION {
        "an RSA key"
    } else if oid == rfc5912::ID_RSASSA_PSS {
        "an RSA key restricted to PSS (id-RSASSA-PSS)"
    } else if oid == rfc8410::ID_ED_25519 {
        "an Ed25519 key"
    } else if oid == rfc8410::ID_ED_448 {
        "an Ed448 key"
    } else if oid == fips204::ID_ML_DSA_44 {
        "an ML-DSA-44 key"
    } else if oid == fips204::ID_ML_DSA_65 {
        "an ML-DSA-65 key"
    } else if oid == fips204::ID_ML_DSA_87 {
        "an ML-DSA-87 key"
    } else {
        return format!("a key of algorithm {oid}");
    };
    text.to_owned()
}

/// Checks that the SPKI holds the kind of key `alg` signs with, and that the key is well formed.
fn check_key(alg: CsrAlgorithm, spki: &SubjectPublicKeyInfoOwned) -> Result<KeyFacts, CsrError> {
    let mismatch = || CsrError::KeyMismatch { algorithm: alg, expected: alg.expected_key(), found: describe_key(spki) };
    let params = spki.algorithm.parameters.as_ref();
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CsrError::InvalidSpki("the subjectPublicKey BIT STRING has unused bits".to_owned()))?;

    if let Some(curve) = alg.curve() {
        if spki.algorithm.oid != rfc5912::ID_EC_PUBLIC_KEY || named_curve(spki) != Some(curve.oid) {
            return Err(mismatch());
        }
        let uncompressed = 1 + 2 * curve.field_len;
        let compressed = 1 + curve.field_len;
        let well_formed = match key.first() {
            Some(0x04) => key.len() == uncompressed,
            Some(0x02 | 0x03) => key.len() == compressed,
            _ => false,
        };
        if !well_formed {
            return Err(CsrError::InvalidSpki(format!(
                "a {} point is {uncompressed} bytes starting 04 (or {compressed} starting 02/03), not {} bytes",
                curve.name,
                key.len()
            )));
        }
        return Ok(KeyFacts::Ec { field_len: curve.field_len });
    }

    if alg.rsa_hash().is_some() {
        if spki.algorithm.oid != rfc5912::RSA_ENCRYPTION {
            return Err(mismatch());
        }
        if !params.is_some_and(Any::is_null) {
            return Err(CsrError::InvalidSpki("rsaEncryption parameters must be NULL".to_owned()));
        }
        let rsa =
            RsaPublicKey::from_der(key).map_err(|err| CsrError::InvalidSpki(format!("not an RSAPublicKey: {err}")))?;
        let modulus_len = rsa.modulus.as_bytes().len();
        if modulus_len < 128 || rsa.public_exponent.as_bytes().is_empty() {
            return Err(CsrError::InvalidSpki(format!("an RSA modulus of {} bits is too short", modulus_len * 8)));
        }
        return Ok(KeyFacts::Rsa { modulus_len });
    }

    if let Some(level) = alg.ml_dsa() {
        if spki.algorithm.oid != level.oid {
            return Err(mismatch());
        }
        if params.is_some() {
            return Err(CsrError::InvalidSpki(format!("{alg} key parameters must be absent")));
        }
        if key.len() != level.public_key_len {
            return Err(CsrError::InvalidSpki(format!(
                "an {alg} public key is {} bytes, not {}",
                level.public_key_len,
                key.len()
            )));
        }
        return Ok(KeyFacts::Fixed { signature_len: level.signature_len });
    }

    // EdDSA
    if spki.algorithm.oid != rfc8410::ID_ED_25519 {
        return Err(mismatch());
    }
    if params.is_some() {
        return Err(CsrError::InvalidSpki("Ed25519 key parameters must be absent".to_owned()));
    }
    if key.len() != 32 {
        return Err(CsrError::InvalidSpki(format!("an Ed25519 public key is 32 bytes, not {}", key.len())));
    }
    Ok(KeyFacts::Fixed { signature_len: 64 })
}

/// Checks that what the signer returned has the shape `alg` calls for. It does not verify it: the
/// signer is trusted to have signed the bytes it was given with the key it was asked for.
fn check_signature(alg: CsrAlgorithm, facts: &KeyFacts, signature: &[u8]) -> Result<(), CsrError> {
    let bad = |reason: String| CsrError::BadSignature { algorithm: alg, reason };
    match *facts {
        KeyFacts::Ec { field_len } => {
            let value = EcdsaSigValue::from_der(signature).map_err(|_| {
                bad(format!(
                    "expected a DER Ecdsa-Sig-Value (SEQUENCE of two INTEGERs), got {} bytes that are not one{}",
                    signature.len(),
                    if signature.len() == 2 * field_len { " (raw r||s?)" } else { "" }
                ))
            })?;
            for (name, int) in [("r", value.r), ("s", value.s)] {
                let bytes = int.as_bytes();
                if bytes.iter().all(|&b| b == 0) {
                    return Err(bad(format!("{name} is zero")));
                }
                if bytes.len() > field_len {
                    return Err(bad(format!("{name} is {} bytes, longer than the curve order", bytes.len())));
                }
            }
        }
        KeyFacts::Rsa { modulus_len } => {
            if signature.len() != modulus_len {
                return Err(bad(format!(
                    "{} bytes, but signatures with this key are {modulus_len} bytes (the modulus length)",
                    signature.len()
                )));
            }
        }
        KeyFacts::Fixed { signature_len } => {
            if signature.len() != signature_len {
                return Err(bad(format!("{} bytes, not {signature_len}", signature.len())));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------------

/// Attribute (RFC 2986 section 4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence, ValueOrd)]
struct Attribute {
    oid: ObjectIdentifier,
    values: SetOfVec<Any>,
}

/// CertificationRequestInfo (RFC 2986 section 4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct CertificationRequestInfo {
    version: u8,
    subject: RdnSequence,
    subject_pk_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    attributes: SetOfVec<Attribute>,
}

/// CertificationRequest (RFC 2986 section 4.2).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct CertificationRequest {
    info: CertificationRequestInfo,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// What to ask for: the subject, as an RFC 4514 string such as
/// `"CN=signer.example,O=Example Org,C=DE"` (most specific RDN first), and the subjectAltNames.
#[derive(Clone, Copy, Debug)]
pub struct CsrRequest<'a> {
    pub subject: &'a str,
    pub sans: &'a [San],
}

/// Builds a DER PKCS#10 request for the public key `spki_der` (a DER SubjectPublicKeyInfo),
/// signed with `algorithm` (see [`CsrAlgorithm`]) by `sign`.
///
/// `sign` receives the DER CertificationRequestInfo — the whole message; it hashes it itself — and
/// returns the signature as it goes into the BIT STRING: a DER Ecdsa-Sig-Value for ES*, the
/// modulus-length signature for RS*/PS*, 64 bytes for EdDSA, the FIPS 204 encoding for ML-DSA.
/// Its shape is checked, not its validity.
pub fn build_csr<E: fmt::Display>(
    req: &CsrRequest<'_>,
    spki_der: &[u8],
    algorithm: &str,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, CsrError> {
    let alg = CsrAlgorithm::parse(algorithm)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|err| CsrError::InvalidSpki(err.to_string()))?;
    let facts = check_key(alg, &spki)?;
    let info = CertificationRequestInfo {
        version: 0,
        subject: parse_subject(req.subject)?,
        subject_pk_info: spki,
        attributes: attributes(req.sans)?,
    };
    let signature_algorithm = alg.signature_algorithm()?;
    let tbs = info.to_der()?;
    let signature = sign(&tbs).map_err(|err| CsrError::Signer(err.to_string()))?;
    check_signature(alg, &facts, &signature)?;
    let request = CertificationRequest { info, signature_algorithm, signature: BitString::from_bytes(&signature)? };
    Ok(request.to_der()?)
}

/// PEM-encodes a DER request as `-----BEGIN CERTIFICATE REQUEST-----`, with LF line endings.
pub fn to_pem(der: &[u8]) -> Result<String, CsrError> {
    pem_rfc7468::encode_string(PEM_LABEL, pem_rfc7468::LineEnding::LF, der).map_err(CsrError::Pem)
}
