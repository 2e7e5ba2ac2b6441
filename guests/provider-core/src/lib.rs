//! What the provider guests share: the algorithm allowlist, key parsing, signing and
//! verification over RustCrypto, and randomness adapters. No bindings here: each guest maps
//! these types to its own generated WIT types.

pub mod alg;
pub mod fast;
pub mod keyring;
pub mod keys;
pub mod rng;
pub mod store;

pub use rand_core;

/// Why an operation failed; mirrors the WIT `crypto-error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    Unsupported(String),
    InvalidKey(String),
    InvalidInput(String),
    KeyNotFound(String),
    Failed(String),
}

/// ECDSA signature encoding; mirrors the WIT `signature-format` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    P1363,
    Der,
}

/// Refusal for a signature algorithm name outside the allowlist.
pub fn unknown_sig_alg(name: &str) -> CoreError {
    CoreError::Unsupported(format!(
        "signature algorithm {name:?} is not on the allowlist ({})",
        alg::SIG_ALGS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    ))
}

/// Looks up a signature algorithm or refuses it by name.
pub fn sig_alg(name: &str) -> Result<alg::SigAlg, CoreError> {
    alg::sig_alg(name).ok_or_else(|| unknown_sig_alg(name))
}

/// Looks up a hash algorithm (accepting `SHA256` spellings) or refuses it by name.
pub fn hash_alg(name: &str) -> Result<alg::Hash, CoreError> {
    alg::Hash::parse(name).ok_or_else(|| {
        CoreError::Unsupported(format!("hash algorithm {name:?} is not on the allowlist (SHA-256, SHA-384, SHA-512)"))
    })
}

/// Conversions every guest needs between these types and its own generated WIT bindings
/// (expects the bindings in a module named `bindings`): `err`, `format` and `host_rng`.
#[macro_export]
macro_rules! guest_glue {
    () => {
        fn err(e: $crate::CoreError) -> bindings::cryptohost::provider::types::CryptoError {
            use bindings::cryptohost::provider::types::CryptoError as E;
            match e {
                $crate::CoreError::Unsupported(m) => E::Unsupported(m),
                $crate::CoreError::InvalidKey(m) => E::InvalidKey(m),
                $crate::CoreError::InvalidInput(m) => E::InvalidInput(m),
                $crate::CoreError::KeyNotFound(m) => E::KeyNotFound(m),
                $crate::CoreError::Failed(m) => E::Failed(m),
            }
        }

        fn format(f: bindings::cryptohost::provider::types::SignatureFormat) -> $crate::Format {
            match f {
                bindings::cryptohost::provider::types::SignatureFormat::P1363 => $crate::Format::P1363,
                bindings::cryptohost::provider::types::SignatureFormat::Der => $crate::Format::Der,
            }
        }

        fn host_rng() -> $crate::rng::HostRng {
            $crate::rng::HostRng(bindings::cryptohost::provider::host::random_bytes)
        }
    };
}

/// The `hashing` interface over [`alg::Hasher`], for a guest whose provider type is named
/// `Provider` (expects its bindings in `bindings` and [`guest_glue!`]'s `err`).
#[macro_export]
macro_rules! hashing_glue {
    () => {
        pub struct StreamHasher(std::cell::RefCell<$crate::alg::Hasher>);

        impl bindings::exports::cryptohost::provider::hashing::GuestHasher for StreamHasher {
            fn update(&self, data: Vec<u8>) {
                self.0.borrow_mut().update(&data);
            }

            fn finish(&self) -> Result<Vec<u8>, bindings::cryptohost::provider::types::CryptoError> {
                self.0.borrow_mut().finish().ok_or_else(|| {
                    bindings::cryptohost::provider::types::CryptoError::InvalidInput("hasher already finished".into())
                })
            }
        }

        impl bindings::exports::cryptohost::provider::hashing::Guest for Provider {
            type Hasher = StreamHasher;

            fn digest(
                algorithm: String,
                data: Vec<u8>,
            ) -> Result<Vec<u8>, bindings::cryptohost::provider::types::CryptoError> {
                Ok($crate::hash_alg(&algorithm).map_err(err)?.digest(&data))
            }

            fn open_hasher(
                algorithm: String,
            ) -> Result<
                bindings::exports::cryptohost::provider::hashing::Hasher,
                bindings::cryptohost::provider::types::CryptoError,
            > {
                let hash = $crate::hash_alg(&algorithm).map_err(err)?;
                Ok(bindings::exports::cryptohost::provider::hashing::Hasher::new(StreamHasher(
                    std::cell::RefCell::new($crate::alg::Hasher::new(hash)),
                )))
            }
        }
    };
}

/// The `verification` interface over a key type with `from_spki(&SigAlg, &[u8])`,
/// `verify_message` and `verify_digest` ([`keys::PublicKey`] or [`fast::FastKey`]), for a guest
/// whose provider type is named `Provider` (expects its bindings in `bindings` and
/// [`guest_glue!`]'s `err` and `format`).
#[macro_export]
macro_rules! verification_glue {
    ($key:ty) => {
        /// The ephemeral verifier: one parsed public key bound to one algorithm.
        pub struct Verifier {
            alg: $crate::alg::SigAlg,
            key: $key,
        }

        impl bindings::exports::cryptohost::provider::verification::GuestVerifier for Verifier {
            fn verify(
                &self,
                message: Vec<u8>,
                signature: Vec<u8>,
                f: bindings::cryptohost::provider::types::SignatureFormat,
            ) -> Result<bool, bindings::cryptohost::provider::types::CryptoError> {
                self.key.verify_message(&self.alg, &message, &signature, format(f)).map_err(err)
            }

            fn verify_digest(
                &self,
                digest: Vec<u8>,
                signature: Vec<u8>,
                f: bindings::cryptohost::provider::types::SignatureFormat,
            ) -> Result<bool, bindings::cryptohost::provider::types::CryptoError> {
                self.key.verify_digest(&self.alg, &digest, &signature, format(f)).map_err(err)
            }

            fn algorithm(&self) -> String {
                self.alg.name.to_string()
            }
        }

        impl bindings::exports::cryptohost::provider::verification::Guest for Provider {
            type Verifier = Verifier;

            fn open_verifier(
                algorithm: String,
                spki_der: Vec<u8>,
            ) -> Result<
                bindings::exports::cryptohost::provider::verification::Verifier,
                bindings::cryptohost::provider::types::CryptoError,
            > {
                let alg = $crate::sig_alg(&algorithm).map_err(err)?;
                let key = <$key>::from_spki(&alg, &spki_der).map_err(err)?;
                Ok(bindings::exports::cryptohost::provider::verification::Verifier::new(Verifier { alg, key }))
            }
        }
    };
}
