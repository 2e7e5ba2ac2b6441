//! The post-quantum signature provider: ML-DSA-44/65/87 (FIPS 204, pure, empty context, hedged)
//! keygen, signing and verification as a sandboxed component in the `signer` world. It signs
//! whole messages only (no digests) and offers no hashing.

mod mldsa;

use std::cell::RefCell;

use mldsa::{Level, PrivateKey, PublicKey};
use provider_core::store::Store;

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "signer",
    });
}

use bindings::cryptohost::provider::types::{Capability, CapabilitySupport, CryptoError, SignatureFormat};
use bindings::exports::cryptohost::provider::{hashing, metadata, signing, verification};

struct Provider;

provider_core::guest_glue!();

fn whole_messages_only(what: &str) -> CryptoError {
    CryptoError::InvalidInput(format!(
        "ML-DSA {what} whole messages, not digests (pure ML-DSA; HashML-DSA is not offered)"
    ))
}

impl metadata::Guest for Provider {
    fn info() -> metadata::ProviderInfo {
        let algs: Vec<String> = Level::ALL.iter().map(|l| l.name().to_string()).collect();
        metadata::ProviderInfo {
            name: "pqc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                CapabilitySupport { capability: Capability::Verification, algorithms: algs.clone() },
                CapabilitySupport { capability: Capability::Signing, algorithms: algs },
            ],
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), CryptoError> {
        match settings.first() {
            None => Ok(()),
            Some((k, _)) => Err(CryptoError::InvalidInput(format!("the pqc provider has no setting {k:?}"))),
        }
    }
}

fn no_hashing() -> CryptoError {
    CryptoError::Unsupported("the pqc provider does not offer hashing (ML-DSA hashes inside, with SHAKE256)".into())
}

/// Never handed out: `open-hasher` always refuses.
pub struct NoHasher;

impl hashing::GuestHasher for NoHasher {
    fn update(&self, _data: Vec<u8>) {}

    fn finish(&self) -> Result<Vec<u8>, CryptoError> {
        Err(no_hashing())
    }
}

impl hashing::Guest for Provider {
    type Hasher = NoHasher;

    fn digest(_algorithm: String, _data: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        Err(no_hashing())
    }

    fn open_hasher(_algorithm: String) -> Result<hashing::Hasher, CryptoError> {
        Err(no_hashing())
    }
}

/// The ephemeral verifier: one parsed ML-DSA public key, bound to its parameter set.
pub struct Verifier(PublicKey);

impl verification::GuestVerifier for Verifier {
    fn verify(&self, message: Vec<u8>, signature: Vec<u8>, _f: SignatureFormat) -> Result<bool, CryptoError> {
        self.0.verify(&message, &signature).map_err(err)
    }

    fn verify_digest(&self, _digest: Vec<u8>, _signature: Vec<u8>, _f: SignatureFormat) -> Result<bool, CryptoError> {
        Err(whole_messages_only("verifies"))
    }

    fn algorithm(&self) -> String {
        self.0.level().name().to_string()
    }
}

impl verification::Guest for Provider {
    type Verifier = Verifier;

    fn open_verifier(algorithm: String, spki_der: Vec<u8>) -> Result<verification::Verifier, CryptoError> {
        let level = mldsa::level(&algorithm).map_err(err)?;
        let key = PublicKey::from_spki(level, &spki_der).map_err(err)?;
        Ok(verification::Verifier::new(Verifier(key)))
    }
}

/// A private key in custody, and whether it may ever leave (only generated-as-exportable keys).
struct Held {
    key: PrivateKey,
    exportable: bool,
}

thread_local! {
    static KEYS: RefCell<Store<Held>> = const { RefCell::new(Store::new("pqc-key")) };
}

impl signing::Guest for Provider {
    fn import_pkcs8(mut pkcs8_der: Vec<u8>) -> Result<String, CryptoError> {
        let key = PrivateKey::from_pkcs8(&pkcs8_der);
        zeroize::Zeroize::zeroize(&mut pkcs8_der);
        let key = key.map_err(err)?;
        Ok(KEYS.with_borrow_mut(|s| s.insert(Held { key, exportable: false })))
    }

    fn generate(algorithm: String, _rsa_bits: u32, exportable: bool) -> Result<String, CryptoError> {
        let level = mldsa::level(&algorithm).map_err(err)?;
        let key = PrivateKey::generate(level, &mut host_rng()).map_err(err)?;
        Ok(KEYS.with_borrow_mut(|s| s.insert(Held { key, exportable })))
    }

    fn public_key(key_id: String) -> Result<Vec<u8>, CryptoError> {
        KEYS.with_borrow(|s| s.get(&key_id)?.key.public_spki()).map_err(err)
    }

    fn export_pkcs8(key_id: String) -> Result<Vec<u8>, CryptoError> {
        KEYS.with_borrow(|s| {
            let held = s.get(&key_id)?;
            if !held.exportable {
                return Err(provider_core::CoreError::InvalidKey(format!(
                    "key {key_id:?} is not exportable (only keys generated as exportable are)"
                )));
            }
            held.key.to_pkcs8()
        })
        .map_err(err)
    }

    fn sign(key_id: String, algorithm: String, message: Vec<u8>, _f: SignatureFormat) -> Result<Vec<u8>, CryptoError> {
        let level = mldsa::level(&algorithm).map_err(err)?;
        KEYS.with_borrow(|s| s.get(&key_id)?.key.sign(level, &message, &mut host_rng())).map_err(err)
    }

    fn sign_digest(
        _key_id: String,
        algorithm: String,
        _digest: Vec<u8>,
        _f: SignatureFormat,
    ) -> Result<Vec<u8>, CryptoError> {
        mldsa::level(&algorithm).map_err(err)?;
        Err(whole_messages_only("signs"))
    }

    fn named_key(_name: String, _algorithm: String, _rsa_bits: u32, _create: bool) -> Result<String, CryptoError> {
        Err(CryptoError::Unsupported(
            "pqc keys have no names: generate one (`cryptohost keygen --alg ML-DSA-65`) or import a PKCS#8 file".into(),
        ))
    }

    fn delete_key(key_id: String) {
        KEYS.with_borrow_mut(|s| s.remove(&key_id));
    }
}

bindings::export!(Provider with_types_in bindings);
