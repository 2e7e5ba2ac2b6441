//! Algorithm names as the host needs them: canonical spellings, and each signature's hash.

use crate::provider::Capability;

/// The hash each JOSE signature algorithm uses (so the host can stream a large input through
/// a hashing provider and hand the signer or verifier only the digest).
const SIG_HASH: [(&str, &str); 9] = [
    ("ES256", "SHA-256"),
    ("ES384", "SHA-384"),
    ("ES512", "SHA-512"),
    ("RS256", "SHA-256"),
    ("RS384", "SHA-384"),
    ("RS512", "SHA-512"),
    ("PS256", "SHA-256"),
    ("PS384", "SHA-384"),
    ("PS512", "SHA-512"),
];

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

/// The hash of a JOSE signature algorithm, if it is one we know.
pub fn signature_hash(algorithm: &str) -> Option<&'static str> {
    SIG_HASH.iter().find(|(a, _)| *a == algorithm).map(|(_, h)| *h)
}

/// Every signature algorithm the host knows: the JOSE RSA/ECDSA set (which prehash) and EdDSA
/// (which signs whole messages).
pub fn is_signature_algorithm(algorithm: &str) -> bool {
    algorithm == "EdDSA" || signature_hash(algorithm).is_some()
}

/// Whether the algorithm is ECDSA (the only family where the signature encoding matters).
pub fn is_ecdsa(algorithm: &str) -> bool {
    algorithm.starts_with("ES")
}

/// The algorithm of a public key when its type decides it (EC curve, Ed25519), from the OID in
/// its DER SubjectPublicKeyInfo; `None` for RSA (RS* or PS* is the caller's choice).
pub fn algorithm_of_spki(spki: &[u8]) -> Option<&'static str> {
    let head = &spki[..spki.len().min(40)];
    let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
    if has(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]) {
        Some("ES256")
    } else if has(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]) {
        Some("ES384")
    } else if has(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]) {
        Some("ES512")
    } else if has(&[0x06, 0x03, 0x2b, 0x65, 0x70]) {
        Some("EdDSA")
    } else {
        None
    }
}
