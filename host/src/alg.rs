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
