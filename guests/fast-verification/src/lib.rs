//! The fast verification provider: ES256, RS256/384/512 and PS256/384/512 signatures checked
//! with `fastverify` (our variable-time arithmetic for public data), and SHA-2, as a component
//! in the `verifier` world. It holds no keys and contains no signing code, so its component is
//! a fraction of offline-verification's: a one-shot `verify` maps, hashes and instantiates
//! that much less. ES384, ES512 and EdDSA are left to the providers below it.

use provider_core::alg::{Hash, SIG_ALGS, SigAlg};
use provider_core::fast::{self, FastKey};

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "verifier",
    });
}

use bindings::cryptohost::provider::types::{Capability, CapabilitySupport, CryptoError, SignatureFormat};
use bindings::exports::cryptohost::provider::{metadata, verification};

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

/// The ephemeral verifier: one parsed public key bound to one algorithm.
pub struct Verifier {
    alg: SigAlg,
    key: FastKey,
}

impl verification::GuestVerifier for Verifier {
    fn verify(&self, message: Vec<u8>, signature: Vec<u8>, f: SignatureFormat) -> Result<bool, CryptoError> {
        self.key.verify_message(&self.alg, &message, &signature, format(f)).map_err(err)
    }

    fn verify_digest(&self, digest: Vec<u8>, signature: Vec<u8>, f: SignatureFormat) -> Result<bool, CryptoError> {
        self.key.verify_digest(&self.alg, &digest, &signature, format(f)).map_err(err)
    }

    fn algorithm(&self) -> String {
        self.alg.name.to_string()
    }
}

impl verification::Guest for Provider {
    type Verifier = Verifier;

    fn open_verifier(algorithm: String, spki_der: Vec<u8>) -> Result<verification::Verifier, CryptoError> {
        let alg = provider_core::sig_alg(&algorithm).map_err(err)?;
        let key = FastKey::from_spki(&alg, &spki_der).map_err(err)?;
        Ok(verification::Verifier::new(Verifier { alg, key }))
    }
}

bindings::export!(Provider with_types_in bindings);
