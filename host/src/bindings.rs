//! The one `bindgen!` of the host: Rust types for the `cryptohost:provider@0.2.0` WIT package.

wasmtime::component::bindgen!({
    // The widest world: the narrower ones are its subsets, and each component gets handles
    // to the interfaces its own world exports only (wasm/world.rs).
    world: "keystore",
    path: "../wit",
    imports: {
        // A guest asking for more randomness than the host hands out per call is a guest
        // bug: trap it rather than return a short buffer.
        "cryptohost:provider/host.random-bytes": trappable,
    },
});

pub use self::cryptohost::provider::types::{CryptoError, SignatureFormat};

use crate::error::ProviderError;
use crate::provider::{Capability, SigFormat};

impl From<CryptoError> for ProviderError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Unsupported(m) => ProviderError::Unsupported(m),
            CryptoError::InvalidKey(m) => ProviderError::InvalidKey(m),
            CryptoError::InvalidInput(m) => ProviderError::InvalidInput(m),
            CryptoError::KeyNotFound(m) => ProviderError::KeyNotFound(m),
            CryptoError::Failed(m) => ProviderError::Failed(m),
        }
    }
}

impl From<SigFormat> for SignatureFormat {
    fn from(f: SigFormat) -> Self {
        match f {
            SigFormat::P1363 => SignatureFormat::P1363,
            SigFormat::Der => SignatureFormat::Der,
        }
    }
}

impl From<self::cryptohost::provider::types::Capability> for Capability {
    fn from(c: self::cryptohost::provider::types::Capability) -> Self {
        use self::cryptohost::provider::types::Capability as W;
        match c {
            W::Hashing => Capability::Hashing,
            W::Verification => Capability::Verification,
            W::Signing => Capability::Signing,
            W::Encryption => Capability::Encryption,
        }
    }
}
