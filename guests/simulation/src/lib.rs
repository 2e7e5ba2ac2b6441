//! The HSM simulation provider: the key operations of the PKCS#11 backend (generate or import
//! RSA and EC keys, sign RS/PS/ES, AES-GCM, public key export), with keys in the component's
//! memory. With a `seed` setting, named keys are derived from the seed, so every instance and
//! every run sees the same keys: for development and tests only.

use std::cell::RefCell;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use provider_core::alg::{SIG_ALGS, Scheme, SigAlg};
use provider_core::keyring::Held;
use provider_core::keys::PrivateKey;
use provider_core::rand_core::Rng;
use provider_core::rng::SeededRng;
use provider_core::store::Store;
use zeroize::Zeroizing;

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "keystore",
    });
}

use bindings::cryptohost::provider::types::{Capability, CapabilitySupport, CryptoError, Sealed, SignatureFormat};
use bindings::exports::cryptohost::provider::{encryption, hashing, metadata, signing, verification};

struct Simulation;

provider_core::guest_glue!();

/// RSA size of named keys when the caller gives none.
const DEFAULT_RSA_BITS: u32 = 3072;

/// AES-GCM algorithms and their key sizes.
const AEAD_ALGS: [(&str, usize); 2] = [("A128GCM", 16), ("A256GCM", 32)];

fn aead_key_len(algorithm: &str) -> Result<usize, CryptoError> {
    AEAD_ALGS.iter().find(|(a, _)| *a == algorithm).map(|(_, n)| *n).ok_or_else(|| {
        CryptoError::Unsupported(format!(
            "encryption algorithm {algorithm:?} is not on the allowlist (A128GCM, A256GCM)"
        ))
    })
}

struct Secret {
    bytes: Zeroizing<Vec<u8>>,
}

struct State {
    seed: Option<Zeroizing<Vec<u8>>>,
    keys: Store<Held>,
    secrets: Store<Secret>,
}

thread_local! {
    static STATE: RefCell<State> = const {
        RefCell::new(State { seed: None, keys: Store::new("sim-key"), secrets: Store::new("sim-secret") })
    };
}

impl metadata::Guest for Simulation {
    fn info() -> metadata::ProviderInfo {
        metadata::ProviderInfo {
            name: "simulation".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                CapabilitySupport {
                    capability: Capability::Signing,
                    algorithms: SIG_ALGS.iter().map(|a| a.name.to_string()).collect(),
                },
                CapabilitySupport {
                    capability: Capability::Encryption,
                    algorithms: AEAD_ALGS.iter().map(|(a, _)| a.to_string()).collect(),
                },
            ],
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), CryptoError> {
        for (k, v) in settings {
            match k.as_str() {
                "seed" if !v.is_empty() => STATE.with_borrow_mut(|s| s.seed = Some(Zeroizing::new(v.into_bytes()))),
                "seed" => return Err(CryptoError::InvalidInput("seed must not be empty".into())),
                other => return Err(CryptoError::InvalidInput(format!("simulation has no setting {other:?}"))),
            }
        }
        Ok(())
    }
}

/// The label a named key is derived and cached under: the key type, not the algorithm, so
/// RS256 and PS256 with the same name use the same RSA key.
fn key_label(name: &str, alg: &SigAlg, rsa_bits: u32) -> String {
    match alg.scheme {
        Scheme::Ecdsa(curve) => format!("key\0{name}\0EC-{}", curve.name()),
        Scheme::EdDsa => format!("key\0{name}\0Ed25519"),
        _ => format!("key\0{name}\0RSA-{rsa_bits}"),
    }
}

impl signing::Guest for Simulation {
    fn named_key(name: String, algorithm: String, rsa_bits: u32, create: bool) -> Result<String, CryptoError> {
        let alg = provider_core::sig_alg(&algorithm).map_err(err)?;
        // 0 means "the default size", so a caller that does not know the size finds the key.
        let rsa_bits = if rsa_bits == 0 { DEFAULT_RSA_BITS } else { rsa_bits };
        let label = key_label(&name, &alg, rsa_bits);
        if let Some(id) = STATE.with_borrow(|s| s.keys.named(&label).cloned()) {
            return Ok(id);
        }
        let seed = STATE.with_borrow(|s| s.seed.clone());
        let key = match seed {
            Some(seed) => PrivateKey::generate(&alg, rsa_bits, &mut SeededRng::new(&seed, label.as_bytes())),
            None if create => PrivateKey::generate(&alg, rsa_bits, &mut host_rng()),
            None => return Err(CryptoError::KeyNotFound(format!("no simulated key named {name:?} for {algorithm}"))),
        }
        .map_err(err)?;
        Ok(STATE.with_borrow_mut(|s| s.keys.insert_named(&label, Held { key, exportable: false })))
    }

    fn import_pkcs8(pkcs8_der: Vec<u8>) -> Result<String, CryptoError> {
        STATE.with_borrow_mut(|st| st.keys.import_pkcs8(pkcs8_der)).map_err(err)
    }

    fn generate(algorithm: String, rsa_bits: u32, exportable: bool) -> Result<String, CryptoError> {
        STATE.with_borrow_mut(|st| st.keys.generate(&algorithm, rsa_bits, exportable, &mut host_rng())).map_err(err)
    }

    fn public_key(key_id: String) -> Result<Vec<u8>, CryptoError> {
        STATE.with_borrow(|st| st.keys.public_key(&key_id)).map_err(err)
    }

    fn export_pkcs8(key_id: String) -> Result<Vec<u8>, CryptoError> {
        STATE.with_borrow(|st| st.keys.export_pkcs8(&key_id)).map_err(err)
    }

    fn sign(key_id: String, algorithm: String, message: Vec<u8>, f: SignatureFormat) -> Result<Vec<u8>, CryptoError> {
        STATE.with_borrow(|st| st.keys.sign(&key_id, &algorithm, &message, format(f), &mut host_rng())).map_err(err)
    }

    fn sign_digest(
        key_id: String,
        algorithm: String,
        digest: Vec<u8>,
        f: SignatureFormat,
    ) -> Result<Vec<u8>, CryptoError> {
        STATE
            .with_borrow(|st| st.keys.sign_digest(&key_id, &algorithm, &digest, format(f), &mut host_rng()))
            .map_err(err)
    }

    fn delete_key(key_id: String) {
        STATE.with_borrow_mut(|s| s.keys.remove(&key_id));
    }
}

fn seal(
    algorithm_len: usize,
    key: &[u8],
    nonce: &[u8],
    payload: Payload<'_, '_>,
    encrypt: bool,
) -> Result<Vec<u8>, ()> {
    let nonce = aes_gcm::Nonce::try_from(nonce).map_err(|_| ())?;
    match algorithm_len {
        16 => {
            let c = Aes128Gcm::new_from_slice(key).map_err(|_| ())?;
            if encrypt { c.encrypt(&nonce, payload) } else { c.decrypt(&nonce, payload) }.map_err(|_| ())
        }
        _ => {
            let c = Aes256Gcm::new_from_slice(key).map_err(|_| ())?;
            if encrypt { c.encrypt(&nonce, payload) } else { c.decrypt(&nonce, payload) }.map_err(|_| ())
        }
    }
}

fn with_secret<T>(id: &str, f: impl FnOnce(&Secret) -> Result<T, CryptoError>) -> Result<T, CryptoError> {
    STATE.with_borrow(|s| match s.secrets.get(id) {
        Ok(secret) => f(secret),
        Err(e) => Err(err(e)),
    })
}

impl encryption::Guest for Simulation {
    fn generate_secret(algorithm: String) -> Result<String, CryptoError> {
        let len = aead_key_len(&algorithm)?;
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        host_rng().fill_bytes(&mut bytes);
        Ok(STATE.with_borrow_mut(|s| s.secrets.insert(Secret { bytes })))
    }

    fn import_secret(algorithm: String, key: Vec<u8>) -> Result<String, CryptoError> {
        let len = aead_key_len(&algorithm)?;
        let bytes = Zeroizing::new(key);
        if bytes.len() != len {
            return Err(CryptoError::InvalidKey(format!(
                "{algorithm} needs a {len}-byte key, got {} bytes",
                bytes.len()
            )));
        }
        Ok(STATE.with_borrow_mut(|s| s.secrets.insert(Secret { bytes })))
    }

    fn named_secret(name: String, algorithm: String, create: bool) -> Result<String, CryptoError> {
        let len = aead_key_len(&algorithm)?;
        let label = format!("secret\0{name}\0{algorithm}");
        if let Some(id) = STATE.with_borrow(|s| s.secrets.named(&label).cloned()) {
            return Ok(id);
        }
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        match STATE.with_borrow(|s| s.seed.clone()) {
            Some(seed) => SeededRng::new(&seed, label.as_bytes()).fill_bytes(&mut bytes),
            None if create => host_rng().fill_bytes(&mut bytes),
            None => {
                return Err(CryptoError::KeyNotFound(format!("no simulated secret named {name:?} for {algorithm}")));
            }
        }
        Ok(STATE.with_borrow_mut(|s| s.secrets.insert_named(&label, Secret { bytes })))
    }

    fn encrypt(key_id: String, plaintext: Vec<u8>, aad: Vec<u8>) -> Result<Sealed, CryptoError> {
        with_secret(&key_id, |secret| {
            // A fresh 96-bit nonce from the host's CSPRNG for every encryption.
            let mut nonce = vec![0u8; 12];
            host_rng().fill_bytes(&mut nonce);
            let ciphertext =
                seal(secret.bytes.len(), &secret.bytes, &nonce, Payload { msg: &plaintext, aad: &aad }, true)
                    .map_err(|()| CryptoError::Failed("AES-GCM encryption failed".into()))?;
            Ok(Sealed { nonce, ciphertext })
        })
    }

    fn decrypt(key_id: String, nonce: Vec<u8>, ciphertext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if nonce.len() != 12 {
            return Err(CryptoError::InvalidInput(format!("AES-GCM nonce must be 12 bytes, got {}", nonce.len())));
        }
        if ciphertext.len() < 16 {
            return Err(CryptoError::InvalidInput("AES-GCM ciphertext is shorter than its 16-byte tag".into()));
        }
        with_secret(&key_id, |secret| {
            seal(secret.bytes.len(), &secret.bytes, &nonce, Payload { msg: &ciphertext, aad: &aad }, false).map_err(
                |()| CryptoError::InvalidInput("AES-GCM authentication failed (wrong key, nonce, AAD or tag)".into()),
            )
        })
    }
}

fn unsupported(what: &str) -> CryptoError {
    CryptoError::Unsupported(format!("the simulation provider does not offer {what}"))
}

pub struct NoHasher;

impl hashing::GuestHasher for NoHasher {
    fn update(&self, _data: Vec<u8>) {}
    fn finish(&self) -> Result<Vec<u8>, CryptoError> {
        Err(unsupported("hashing"))
    }
}

impl hashing::Guest for Simulation {
    type Hasher = NoHasher;
    fn digest(_algorithm: String, _data: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        Err(unsupported("hashing"))
    }
    fn open_hasher(_algorithm: String) -> Result<hashing::Hasher, CryptoError> {
        Err(unsupported("hashing"))
    }
}

pub struct NoVerifier;

impl verification::GuestVerifier for NoVerifier {
    fn verify(&self, _m: Vec<u8>, _s: Vec<u8>, _f: SignatureFormat) -> Result<bool, CryptoError> {
        Err(unsupported("verification"))
    }
    fn verify_digest(&self, _d: Vec<u8>, _s: Vec<u8>, _f: SignatureFormat) -> Result<bool, CryptoError> {
        Err(unsupported("verification"))
    }
    fn algorithm(&self) -> String {
        String::new()
    }
}

impl verification::Guest for Simulation {
    type Verifier = NoVerifier;
    fn open_verifier(_algorithm: String, _spki: Vec<u8>) -> Result<verification::Verifier, CryptoError> {
        Err(unsupported("verification (the offline-verification provider verifies)"))
    }
}

bindings::export!(Simulation with_types_in bindings);
