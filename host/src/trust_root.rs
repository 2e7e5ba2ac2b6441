//! The trust root's own verifier: what checks an installed kit (its bundle signature under the
//! bootstrap key, and the publisher's signature over the component manifest) before any of
//! the kit's components is compiled. It cannot be a component: a kit would then bring the code
//! that vouches for itself. So it is native (RustCrypto `p256`/`p384`, `sha2`), small, and does
//! only this: SHA-256/384/512 and ES256/ES384 verification. Kit and publisher keys are
//! therefore P-256 or P-384 keys. It is a provider like any other, so the DSSE code runs
//! unchanged over a registry that holds only it.

use std::io::Read;

use crate::error::ProviderError;
use crate::provider::{
    Capability, CapabilityInfo, CryptoProvider, Descriptor, Hashing, Origin, Priority, SigFormat, SignInput,
    Verification, Verifier,
};
use crate::registry::Registry;

/// The algorithms the trust root verifies.
pub const ALGORITHMS: [&str; 2] = ["ES256", "ES384"];

/// The native verifier for trust roots.
pub struct RootVerifier {
    descriptor: Descriptor,
}

/// A registry holding only the trust root's verifier.
pub fn registry() -> Registry {
    Registry::new(vec![std::sync::Arc::new(RootVerifier::new())])
}

impl RootVerifier {
    pub fn new() -> RootVerifier {
        RootVerifier {
            descriptor: Descriptor {
                name: "trust-root".into(),
                reported_name: "trust-root".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                priority: Priority(0),
                origin: Origin::Native { module: "built in (kit and publisher signatures)".into() },
                capabilities: vec![
                    CapabilityInfo {
                        capability: Capability::Hashing,
                        algorithms: vec!["SHA-256".into(), "SHA-384".into(), "SHA-512".into()],
                    },
                    CapabilityInfo {
                        capability: Capability::Verification,
                        algorithms: ALGORITHMS.iter().map(|a| a.to_string()).collect(),
                    },
                ],
                world: None,
            },
        }
    }
}

impl Default for RootVerifier {
    fn default() -> Self {
        RootVerifier::new()
    }
}

enum Key {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

struct RootKey(Key);

fn bad_sig() -> ProviderError {
    ProviderError::InvalidInput("the signature is not a well-formed ECDSA signature for this curve".into())
}

impl Verifier for RootKey {
    fn verify(&self, input: SignInput<'_>, signature: &[u8], format: SigFormat) -> Result<bool, ProviderError> {
        use p256::ecdsa::signature::Verifier as _;
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        Ok(match &self.0 {
            Key::P256(k) => {
                let sig = match format {
                    SigFormat::Der => p256::ecdsa::Signature::from_der(signature),
                    SigFormat::P1363 => p256::ecdsa::Signature::from_slice(signature),
                }
                .map_err(|_| bad_sig())?;
                match input {
                    SignInput::Message(m) => k.verify(m, &sig).is_ok(),
                    SignInput::Digest(d) if d.len() == 32 => k.verify_prehash(d, &sig).is_ok(),
                    SignInput::Digest(_) => {
                        return Err(ProviderError::InvalidInput("ES256 takes a SHA-256 digest".into()));
                    }
                }
            }
            Key::P384(k) => {
                let sig = match format {
                    SigFormat::Der => p384::ecdsa::Signature::from_der(signature),
                    SigFormat::P1363 => p384::ecdsa::Signature::from_slice(signature),
                }
                .map_err(|_| bad_sig())?;
                match input {
                    SignInput::Message(m) => k.verify(m, &sig).is_ok(),
                    SignInput::Digest(d) if d.len() == 48 => k.verify_prehash(d, &sig).is_ok(),
                    SignInput::Digest(_) => {
                        return Err(ProviderError::InvalidInput("ES384 takes a SHA-384 digest".into()));
                    }
                }
            }
        })
    }
}

fn unsupported<T>() -> Result<T, ProviderError> {
    Err(ProviderError::Unsupported("the trust root's verifier only hashes and verifies ES256/ES384".into()))
}

impl CryptoProvider for RootVerifier {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn hashing(&self) -> Option<&dyn Hashing> {
        Some(self)
    }

    fn verification(&self) -> Option<&dyn Verification> {
        Some(self)
    }
}

impl Hashing for RootVerifier {
    fn digest(&self, algorithm: &str, data: &[u8]) -> Result<Vec<u8>, ProviderError> {
        crate::native::digest(algorithm, data).map_or_else(unsupported, Ok)
    }

    fn digest_reader(&self, algorithm: &str, reader: &mut dyn Read) -> Result<Vec<u8>, ProviderError> {
        crate::native::digest_reader(algorithm, reader)?.map_or_else(unsupported, Ok)
    }
}

impl Verification for RootVerifier {
    fn open_verifier(&self, algorithm: &str, spki_der: &[u8]) -> Result<Box<dyn Verifier + '_>, ProviderError> {
        use p256::pkcs8::DecodePublicKey;
        let bad = |e: String| ProviderError::InvalidKey(format!("{algorithm}: {e}"));
        let key = match algorithm {
            "ES256" => {
                Key::P256(p256::ecdsa::VerifyingKey::from_public_key_der(spki_der).map_err(|e| bad(e.to_string()))?)
            }
            "ES384" => {
                Key::P384(p384::ecdsa::VerifyingKey::from_public_key_der(spki_der).map_err(|e| bad(e.to_string()))?)
            }
            _ => {
                return Err(ProviderError::Unsupported(format!(
                    "{algorithm}: kit and publisher signatures are checked natively, and only ES256 and ES384 are"
                )));
            }
        };
        Ok(Box::new(RootKey(key)))
    }
}
