//! The host's one algorithm table, as data: every JOSE name the host accepts, its family, its
//! hash and the key it needs. Names are looked up here once, at the edge; the rest of the host
//! asks the table instead of matching on name prefixes.

use spki::ObjectIdentifier;
use spki::der::Decode;

use crate::provider::Capability;

/// What kind of key and scheme a signature algorithm is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// ECDSA over a NIST curve; the only family whose signature encoding (DER or P1363) matters.
    Ecdsa,
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1,
    /// RSASSA-PSS, salt as long as the hash, MGF1 with the same hash.
    RsaPss,
    /// Ed25519 (signs whole messages; no prehash).
    EdDsa,
    /// ML-DSA (FIPS 204), pure, empty context (signs whole messages; no prehash).
    MlDsa,
}

/// One signature algorithm.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureAlgorithm {
    /// The JOSE name (RFC 7518, RFC 8037).
    pub name: &'static str,
    pub family: Family,
    /// The hash the host streams the input through before signing or verifying; `None` for
    /// EdDSA and ML-DSA, which take the whole message.
    pub hash: Option<&'static str>,
    /// The key type that decides the algorithm: the curve for ECDSA and EdDSA, the parameter
    /// set for ML-DSA (a public key of this type has no other algorithm). `None` for RSA.
    pub key_type: Option<&'static str>,
}

const fn sig(
    name: &'static str,
    family: Family,
    hash: Option<&'static str>,
    key_type: Option<&'static str>,
) -> SignatureAlgorithm {
    SignatureAlgorithm { name, family, hash, key_type }
}

/// Every signature algorithm the host knows, in the order they are listed to people.
pub const SIGNATURE_ALGORITHMS: [SignatureAlgorithm; 13] = [
    sig("ES256", Family::Ecdsa, Some("SHA-256"), Some("P-256")),
    sig("ES384", Family::Ecdsa, Some("SHA-384"), Some("P-384")),
    sig("ES512", Family::Ecdsa, Some("SHA-512"), Some("P-521")),
    sig("RS256", Family::RsaPkcs1, Some("SHA-256"), None),
    sig("RS384", Family::RsaPkcs1, Some("SHA-384"), None),
    sig("RS512", Family::RsaPkcs1, Some("SHA-512"), None),
    sig("PS256", Family::RsaPss, Some("SHA-256"), None),
    sig("PS384", Family::RsaPss, Some("SHA-384"), None),
    sig("PS512", Family::RsaPss, Some("SHA-512"), None),
    sig("EdDSA", Family::EdDsa, None, Some("Ed25519")),
    sig("ML-DSA-44", Family::MlDsa, None, Some("ML-DSA-44")),
    sig("ML-DSA-65", Family::MlDsa, None, Some("ML-DSA-65")),
    sig("ML-DSA-87", Family::MlDsa, None, Some("ML-DSA-87")),
];

/// An AES-GCM content-encryption algorithm and its key length.
#[derive(Debug, PartialEq, Eq)]
pub struct AeadAlgorithm {
    pub name: &'static str,
    pub key_bytes: usize,
}

/// Every AEAD algorithm the host knows.
pub const AEAD_ALGORITHMS: [AeadAlgorithm; 2] =
    [AeadAlgorithm { name: "A128GCM", key_bytes: 16 }, AeadAlgorithm { name: "A256GCM", key_bytes: 32 }];

/// The signature algorithm called `name` (exact JOSE spelling).
pub fn signature(name: &str) -> Option<&'static SignatureAlgorithm> {
    SIGNATURE_ALGORITHMS.iter().find(|a| a.name == name)
}

/// The AEAD algorithm called `name`.
pub fn aead(name: &str) -> Option<&'static AeadAlgorithm> {
    AEAD_ALGORITHMS.iter().find(|a| a.name == name)
}

/// Every signature algorithm name, for messages ("expected one of ...").
pub fn signature_names() -> String {
    SIGNATURE_ALGORITHMS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

/// `SHA256`, `sha-256`, `sha256` -> `SHA-256` (and 384, 512). Other names are returned as given.
pub fn canonical_hash(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    let bits = upper.strip_prefix("SHA-").or_else(|| upper.strip_prefix("SHA"));
    match bits {
        Some(b @ ("256" | "384" | "512")) => format!("SHA-{b}"),
        _ => name.to_string(),
    }
}

/// The canonical name of `name` for `capability` (only hash names have variants).
pub fn canonical(capability: Capability, name: &str) -> String {
    match capability {
        Capability::Hashing => canonical_hash(name),
        _ => name.to_string(),
    }
}

/// The digest length of a hash (canonical name), in bytes.
pub fn hash_len(hash: &str) -> Option<usize> {
    match hash {
        "SHA-256" => Some(32),
        "SHA-384" => Some(48),
        "SHA-512" => Some(64),
        _ => None,
    }
}

/// The hash of a JOSE signature algorithm, if it is one we know and it prehashes.
pub fn signature_hash(algorithm: &str) -> Option<&'static str> {
    signature(algorithm).and_then(|a| a.hash)
}

/// Whether the host knows this signature algorithm.
pub fn is_signature_algorithm(algorithm: &str) -> bool {
    signature(algorithm).is_some()
}

/// Whether the algorithm is ECDSA (the only family where the signature encoding matters).
pub fn is_ecdsa(algorithm: &str) -> bool {
    signature(algorithm).is_some_and(|a| a.family == Family::Ecdsa)
}

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const CURVES: [(ObjectIdentifier, &str); 3] = [
    (ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"), "P-256"),
    (ObjectIdentifier::new_unwrap("1.3.132.0.34"), "P-384"),
    (ObjectIdentifier::new_unwrap("1.3.132.0.35"), "P-521"),
];
/// Key types whose SPKI algorithm OID alone names them, with no parameters (RFC 8410, RFC 9881).
const OID_KEY_TYPES: [(ObjectIdentifier, &str); 4] = [
    (ObjectIdentifier::new_unwrap("1.3.101.112"), "Ed25519"),
    (ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.17"), "ML-DSA-44"),
    (ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18"), "ML-DSA-65"),
    (ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.19"), "ML-DSA-87"),
];

/// The key type of a DER SubjectPublicKeyInfo, read with a strict DER parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// An EC key on a named curve, Ed25519 or ML-DSA: the key decides the algorithm.
    Fixed(&'static SignatureAlgorithm),
    /// RSA: RS* or PS* is the caller's choice.
    Rsa,
}

/// What key an SPKI holds. Refuses what two people could encode differently for one key (a
/// compressed EC point, non-DER bytes, trailing data), so that one key has one fingerprint.
///
/// # Errors
/// Not a DER SPKI, an unknown key type or curve, or a compressed EC point.
pub fn key_kind(spki_der: &[u8]) -> Result<KeyKind, String> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| format!("not a DER SubjectPublicKeyInfo: {e}"))?;
    let oid = info.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        return Ok(KeyKind::Rsa);
    }
    let by_type = |key_type: &str| SIGNATURE_ALGORITHMS.iter().find(|a| a.key_type == Some(key_type));
    if let Some((_, key_type)) = OID_KEY_TYPES.iter().find(|(o, _)| *o == oid) {
        if info.algorithm.parameters.is_some() {
            // One key, one encoding: parameters here would give the same key a second fingerprint.
            return Err(format!("a {key_type} key with AlgorithmIdentifier parameters, which must be absent"));
        }
        return by_type(key_type).map(KeyKind::Fixed).ok_or_else(|| format!("no {key_type} algorithm"));
    }
    if oid == ID_EC_PUBLIC_KEY {
        let param = info
            .algorithm
            .parameters_oid()
            .map_err(|_| "an EC key without a named curve (explicit curve parameters are refused)".to_string())?;
        let curve = CURVES
            .iter()
            .find(|(o, _)| *o == param)
            .map(|(_, c)| *c)
            .ok_or_else(|| format!("an EC key on curve {param}, which is not P-256, P-384 or P-521"))?;
        let point = info.subject_public_key.raw_bytes();
        if point.first() != Some(&0x04) {
            return Err("a compressed (or otherwise non-uncompressed) EC point; give the uncompressed SPKI \
                 (`openssl ec -pubin -in KEY -pubout -conv_form uncompressed`)"
                .into());
        }
        return by_type(curve).map(KeyKind::Fixed).ok_or_else(|| format!("no algorithm for {curve}"));
    }
    Err(format!("a key of type {oid}, which is not RSA, EC, Ed25519 or ML-DSA"))
}

/// The algorithm of a public key when its type decides it (EC curve, Ed25519, ML-DSA); `None` for RSA
/// and for anything that does not parse.
pub fn algorithm_of_spki(spki: &[u8]) -> Option<&'static str> {
    match key_kind(spki) {
        Ok(KeyKind::Fixed(a)) => Some(a.name),
        _ => None,
    }
}

/// The algorithm to use with a public key: the key's own for EC, Ed25519 and ML-DSA (a different
/// `requested` one is refused, never substituted), `requested` for RSA (RS* or PS*).
///
/// # Errors
/// The key does not parse, an RSA key without an RS*/PS* algorithm, or a mismatch.
pub fn algorithm_for_key(spki: &[u8], requested: Option<&str>) -> Result<&'static str, String> {
    match (key_kind(spki)?, requested) {
        (KeyKind::Fixed(a), None) => Ok(a.name),
        (KeyKind::Fixed(a), Some(r)) if r == a.name => Ok(a.name),
        (KeyKind::Fixed(a), Some(r)) => {
            Err(format!("is a {} key, which only verifies {}, not {r}", a.key_type.unwrap_or("?"), a.name))
        }
        (KeyKind::Rsa, None) => Err("is an RSA key: say which algorithm (RS256 ... PS512)".into()),
        (KeyKind::Rsa, Some(r)) => match signature(r) {
            Some(a) if matches!(a.family, Family::RsaPkcs1 | Family::RsaPss) => Ok(a.name),
            _ => Err(format!("is an RSA key, and {r:?} is not an RSA algorithm (RS256 ... PS512)")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        for a in &SIGNATURE_ALGORITHMS {
            assert_eq!(signature(a.name), Some(a));
            assert_eq!(a.hash.is_none(), matches!(a.family, Family::EdDsa | Family::MlDsa), "{}", a.name);
            assert_eq!(a.key_type.is_some(), a.family != Family::RsaPkcs1 && a.family != Family::RsaPss, "{}", a.name);
        }
        assert!(signature("es256").is_none() && signature("HS256").is_none());
        assert_eq!(aead("A256GCM").map(|a| a.key_bytes), Some(32));
    }

    /// An RFC 9881 SPKI for the ML-DSA OID with last arc `arc` (2.16.840.1.101.3.4.3.arc),
    /// optionally with a NULL parameter, around `len` zero bytes.
    fn ml_dsa_spki(arc: u8, len: usize, null_params: bool) -> Vec<u8> {
        let mut alg = vec![0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, arc];
        if null_params {
            alg.extend([0x05, 0x00]);
        }
        let bits_len = len + 1;
        let mut body = vec![0x30, alg.len() as u8];
        body.extend(alg);
        body.extend([0x03, 0x82, (bits_len >> 8) as u8, bits_len as u8, 0x00]);
        body.extend(std::iter::repeat_n(0u8, len));
        let mut out = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn an_ml_dsa_key_names_its_algorithm() {
        for (arc, len, name) in [(17, 1312, "ML-DSA-44"), (18, 1952, "ML-DSA-65"), (19, 2592, "ML-DSA-87")] {
            let spki = ml_dsa_spki(arc, len, false);
            assert_eq!(algorithm_of_spki(&spki), Some(name));
            assert_eq!(algorithm_for_key(&spki, None), Ok(name));
            assert_eq!(algorithm_for_key(&spki, Some(name)), Ok(name));
            let e = algorithm_for_key(&spki, Some("ES256")).unwrap_err();
            assert!(e.contains(&format!("is a {name} key, which only verifies {name}")), "{e}");
            let a = signature(name).unwrap();
            assert_eq!((a.family, a.hash), (Family::MlDsa, None));
            // Parameters would give one key a second encoding, so a second fingerprint.
            let e = key_kind(&ml_dsa_spki(arc, len, true)).unwrap_err();
            assert!(e.contains("parameters"), "{e}");
        }
        let e = key_kind(&ml_dsa_spki(20, 1952, false)).unwrap_err();
        assert!(e.contains("2.16.840.1.101.3.4.3.20") && e.contains("ML-DSA"), "{e}");
    }
}
