//! The offline verification provider: JOSE signatures (ES/RS/PS, EdDSA), SHA-2 and key custody
//! for software keys, as a sandboxed component in the `signer` world that imports nothing but
//! the cryptohost `host` interface. It holds no secret keys: no `encryption` interface at all.

use std::cell::RefCell;

use provider_core::alg::{Hash, SIG_ALGS};
use provider_core::keyring::Held;
use provider_core::store::Store;

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "signer",
    });
}

use bindings::cryptohost::provider::types::{Capability, CapabilitySupport, CryptoError, SignatureFormat};
use bindings::exports::cryptohost::provider::{metadata, signing};

struct Provider;

provider_core::guest_glue!();

impl metadata::Guest for Provider {
    fn info() -> metadata::ProviderInfo {
        let sigs: Vec<String> = SIG_ALGS.iter().map(|a| a.name.to_string()).collect();
        metadata::ProviderInfo {
            name: "offline-verification".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                CapabilitySupport {
                    capability: Capability::Hashing,
                    algorithms: Hash::ALL.iter().map(|h| h.name().to_string()).collect(),
                },
                CapabilitySupport { capability: Capability::Verification, algorithms: sigs.clone() },
                CapabilitySupport { capability: Capability::Signing, algorithms: sigs },
            ],
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), CryptoError> {
        match settings.first() {
            None => Ok(()),
            Some((k, _)) => Err(CryptoError::InvalidInput(format!("offline-verification has no setting {k:?}"))),
        }
    }
}

provider_core::hashing_glue!();

provider_core::verification_glue!(provider_core::keys::PublicKey);

thread_local! {
    static KEYS: RefCell<Store<Held>> = const { RefCell::new(Store::new("key")) };
}

impl signing::Guest for Provider {
    fn import_pkcs8(pkcs8_der: Vec<u8>) -> Result<String, CryptoError> {
        KEYS.with_borrow_mut(|s| s.import_pkcs8(pkcs8_der)).map_err(err)
    }

    fn generate(algorithm: String, rsa_bits: u32, exportable: bool) -> Result<String, CryptoError> {
        KEYS.with_borrow_mut(|s| s.generate(&algorithm, rsa_bits, exportable, &mut host_rng())).map_err(err)
    }

    fn public_key(key_id: String) -> Result<Vec<u8>, CryptoError> {
        KEYS.with_borrow(|s| s.public_key(&key_id)).map_err(err)
    }

    fn export_pkcs8(key_id: String) -> Result<Vec<u8>, CryptoError> {
        KEYS.with_borrow(|s| s.export_pkcs8(&key_id)).map_err(err)
    }

    fn sign(key_id: String, algorithm: String, message: Vec<u8>, f: SignatureFormat) -> Result<Vec<u8>, CryptoError> {
        KEYS.with_borrow(|s| s.sign(&key_id, &algorithm, &message, format(f), &mut host_rng())).map_err(err)
    }

    fn sign_digest(
        key_id: String,
        algorithm: String,
        digest: Vec<u8>,
        f: SignatureFormat,
    ) -> Result<Vec<u8>, CryptoError> {
        KEYS.with_borrow(|s| s.sign_digest(&key_id, &algorithm, &digest, format(f), &mut host_rng())).map_err(err)
    }

    fn named_key(_name: String, _algorithm: String, _rsa_bits: u32, _create: bool) -> Result<String, CryptoError> {
        Err(CryptoError::Unsupported(
            "offline-verification keys have no names: import a PKCS#8 file (file:PATH)".into(),
        ))
    }

    fn delete_key(key_id: String) {
        KEYS.with_borrow_mut(|s| s.remove(&key_id));
    }
}

bindings::export!(Provider with_types_in bindings);
