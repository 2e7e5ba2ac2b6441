//! The fast verification provider: ES256, RS256/384/512 and PS256/384/512 signatures checked
//! with `fastverify` (our variable-time arithmetic for public data), and SHA-2, as a component
//! in the `verifier` world. It holds no keys and contains no signing code, so its component is
//! a fraction of offline-verification's: a one-shot `verify` maps, hashes and instantiates
//! that much less. ES384, ES512 and EdDSA are left to the providers below it.

use provider_core::alg::{Hash, SIG_ALGS};
use provider_core::fast;

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "verifier",
    });
}

use bindings::cryptohost::provider::types::{Capability, CapabilitySupport, CryptoError};
use bindings::exports::cryptohost::provider::metadata;

struct Provider;

provider_core::guest_glue!();
provider_core::hashing_glue!();

impl metadata::Guest for Provider {
    fn info() -> metadata::ProviderInfo {
        metadata::ProviderInfo {
            name: "fast-verification".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                CapabilitySupport {
                    capability: Capability::Hashing,
                    algorithms: Hash::ALL.iter().map(|h| h.name().to_string()).collect(),
                },
                CapabilitySupport {
                    capability: Capability::Verification,
                    algorithms: SIG_ALGS.iter().filter(|a| fast::offers(a)).map(|a| a.name.to_string()).collect(),
                },
            ],
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), CryptoError> {
        match settings.first() {
            None => Ok(()),
            Some((k, _)) => Err(CryptoError::InvalidInput(format!("fast-verification has no setting {k:?}"))),
        }
    }
}

provider_core::verification_glue!(provider_core::fast::FastKey);

bindings::export!(Provider with_types_in bindings);
