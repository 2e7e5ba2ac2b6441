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

/// The longest error message a component's answer carries on: it reaches the caller, the logs
/// and the audit log, and a hostile component must not fill them.
pub const MAX_GUEST_MESSAGE: usize = 1024;

/// `m` cut to [`MAX_GUEST_MESSAGE`] bytes (at a character boundary), saying how much was cut.
fn bounded(mut m: String) -> String {
    if m.len() > MAX_GUEST_MESSAGE {
        let total = m.len();
        let mut end = MAX_GUEST_MESSAGE;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
        m.push_str(&format!("... ({} more bytes cut)", total - end));
    }
    m
}

impl From<CryptoError> for ProviderError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Unsupported(m) => ProviderError::Unsupported(bounded(m)),
            CryptoError::InvalidKey(m) => ProviderError::InvalidKey(bounded(m)),
            CryptoError::InvalidInput(m) => ProviderError::InvalidInput(bounded(m)),
            CryptoError::KeyNotFound(m) => ProviderError::KeyNotFound(bounded(m)),
            CryptoError::Failed(m) => ProviderError::Failed(bounded(m)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_components_error_message_is_cut_at_a_character_boundary() {
        let e: ProviderError = CryptoError::Failed("é".repeat(MAX_GUEST_MESSAGE)).into();
        let ProviderError::Failed(m) = e else { panic!() };
        assert!(m.len() < MAX_GUEST_MESSAGE + 40 && m.ends_with("(1024 more bytes cut)"), "{}", m.len());
        let e: ProviderError = CryptoError::InvalidKey("short".into()).into();
        assert_eq!(e.to_string(), "invalid key: short");
    }
}
