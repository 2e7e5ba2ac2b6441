//! The algorithm allowlist as data: every name this provider answers to, and what it means.

/// A SHA-2 hash function.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub const ALL: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// Accepts `SHA-256`, `SHA256`, `sha-256` and `sha256` (and the same for 384/512); the
    /// canonical spelling is `SHA-256`. Anything else is not on the allowlist.
    pub fn parse(name: &str) -> Option<Hash> {
        let upper = name.to_ascii_uppercase();
        let compact = upper.strip_prefix("SHA-").or_else(|| upper.strip_prefix("SHA"))?;
        match compact {
            "256" => Some(Hash::Sha256),
            "384" => Some(Hash::Sha384),
            "512" => Some(Hash::Sha512),
            _ => None,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A streaming SHA-2 hash (the `hashing` interface's hasher); finished once [`Hasher::finish`]
/// has returned its digest.
pub struct Hasher(Option<HasherState>);

enum HasherState {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(hash: Hash) -> Hasher {
        use sha2::Digest;
        Hasher(Some(match hash {
            Hash::Sha256 => HasherState::Sha256(sha2::Sha256::new()),
            Hash::Sha384 => HasherState::Sha384(sha2::Sha384::new()),
            Hash::Sha512 => HasherState::Sha512(sha2::Sha512::new()),
        }))
    }

    /// Feeds `data`; nothing once finished.
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match &mut self.0 {
            Some(HasherState::Sha256(h)) => h.update(data),
            Some(HasherState::Sha384(h)) => h.update(data),
            Some(HasherState::Sha512(h)) => h.update(data),
            None => {}
        }
    }

    /// The digest, or `None` if it was already taken.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        use sha2::Digest;
        Some(match self.0.take()? {
            HasherState::Sha256(h) => h.finalize().to_vec(),
            HasherState::Sha384(h) => h.finalize().to_vec(),
            HasherState::Sha512(h) => h.finalize().to_vec(),
        })
    }
}

/// A NIST prime curve.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Length of one scalar in a P1363 signature.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// How a signature algorithm uses its key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scheme {
    Ecdsa(Curve),
    RsaPkcs1v15,
    /// RSASSA-PSS with salt length = hash length and MGF1 with the same hash (as JOSE requires).
    RsaPss,
    /// Ed25519 (RFC 8032, pure: it signs whole messages, never a digest).
    EdDsa,
}

/// One JOSE signature algorithm.
#[derive(Clone, Copy, Debug)]
pub struct SigAlg {
    pub name: &'static str,
    pub scheme: Scheme,
    pub hash: Hash,
}

/// The allowlist. Nothing outside this table is ever accepted.
pub const SIG_ALGS: [SigAlg; 10] = [
    SigAlg { name: "ES256", scheme: Scheme::Ecdsa(Curve::P256), hash: Hash::Sha256 },
    SigAlg { name: "ES384", scheme: Scheme::Ecdsa(Curve::P384), hash: Hash::Sha384 },
    SigAlg { name: "ES512", scheme: Scheme::Ecdsa(Curve::P521), hash: Hash::Sha512 },
    SigAlg { name: "RS256", scheme: Scheme::RsaPkcs1v15, hash: Hash::Sha256 },
    SigAlg { name: "RS384", scheme: Scheme::RsaPkcs1v15, hash: Hash::Sha384 },
    SigAlg { name: "RS512", scheme: Scheme::RsaPkcs1v15, hash: Hash::Sha512 },
    SigAlg { name: "PS256", scheme: Scheme::RsaPss, hash: Hash::Sha256 },
    SigAlg { name: "PS384", scheme: Scheme::RsaPss, hash: Hash::Sha384 },
    SigAlg { name: "PS512", scheme: Scheme::RsaPss, hash: Hash::Sha512 },
    // Ed25519 hashes internally with SHA-512; `hash` only matters to callers that prehash,
    // which EdDSA refuses.
    SigAlg { name: "EdDSA", scheme: Scheme::EdDsa, hash: Hash::Sha512 },
];

/// RSA keys below this size are refused for signing and verification.
pub const RSA_MIN_BITS: usize = 2048;
/// RSA keys above this size are refused (bounds the work one call can cause).
pub const RSA_MAX_BITS: usize = 8192;

/// Looks up a JOSE signature algorithm by its exact (case-sensitive) name.
pub fn sig_alg(name: &str) -> Option<SigAlg> {
    SIG_ALGS.iter().copied().find(|a| a.name == name)
}
