//! The HSM backend over PKCS#11 (`cryptoki`): a session pool per token, login once, multi-token
//! failover, keys by PKCS#11 URI, attribute checks before use, and reconnect after the module
//! or its sessions go away. Private and secret keys never leave the token.
//!
//! One file per concern: `config` (the `[hsm]` section, the PIN), `errors`, `pool`,
//! `connection` (login, failover, reconnect), `objects` (finding keys, attribute checks),
//! `signing`, `encryption`, `encoding` (DER through the RustCrypto crates), `uri`.

mod config;
mod connection;
mod encoding;
mod encryption;
mod errors;
mod objects;
mod pool;
mod signing;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use zeroize::Zeroizing;

pub use crate::keyref::Pkcs11Uri;
pub use config::{HsmConfig, MAX_PIN_FILE_BYTES, PinSource, TokenSpec, read_pin_file};
pub use connection::TokenStatus;
pub use objects::{KeyListing, MIN_RSA_BITS, modulus_bits};

use crate::error::ProviderError;
use crate::provider::{
    Capability, CapabilityInfo, CryptoProvider, Descriptor, Encryption, KeyId, OnDevice, Origin, Sealed, SigFormat,
    SignInput, Signing,
};
use connection::Connection;

/// The PKCS#11 backend.
pub struct Pkcs11Provider {
    config: HsmConfig,
    descriptor: Descriptor,
    conn: RwLock<Option<Connection>>,
    /// Serializes connect/reconnect.
    connecting: Mutex<()>,
    /// Token serial -> the C_Login error with which it refused the PIN. Kept for the life of
    /// the process (across reconnects and disconnects): no second C_Login is made on it.
    pin_refused: Mutex<HashMap<String, String>>,
    /// Reconnects after a lost session or a finalized module.
    reconnects: std::sync::atomic::AtomicU64,
}

impl Pkcs11Provider {
    /// A backend for `config`; nothing is loaded until the first operation (or `connect`).
    pub fn new(config: HsmConfig) -> Pkcs11Provider {
        let descriptor = Descriptor {
            name: config.name.clone(),
            reported_name: "pkcs11".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            priority: config.priority,
            origin: Origin::Native { module: config.module.display().to_string() },
            world: None,
            capabilities: vec![
                CapabilityInfo {
                    capability: Capability::Signing,
                    algorithms: signing::SIGNING.iter().map(|s| s.to_string()).collect(),
                },
                CapabilityInfo {
                    capability: Capability::Encryption,
                    algorithms: encryption::ENCRYPTION.iter().map(|s| s.to_string()).collect(),
                },
            ],
        };
        Pkcs11Provider {
            config,
            descriptor,
            conn: RwLock::new(None),
            connecting: Mutex::new(()),
            pin_refused: Mutex::new(HashMap::new()),
            reconnects: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

fn parse_key(key: &KeyId) -> Result<Pkcs11Uri, ProviderError> {
    Pkcs11Uri::parse(&key.0).map_err(ProviderError::InvalidKey)
}

fn unsupported(what: &str) -> ProviderError {
    ProviderError::Unsupported(format!("the PKCS#11 backend does not offer {what}"))
}

/// The HSM signs and encrypts; it never hashes or verifies (nothing public needs it).
impl CryptoProvider for Pkcs11Provider {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn stats(&self) -> crate::provider::ProviderStats {
        self.pool_stats()
    }

    fn signing(&self) -> Option<&dyn Signing> {
        Some(self)
    }

    fn encryption(&self) -> Option<&dyn Encryption> {
        Some(self)
    }

    fn key_location(&self, key: &KeyId, secret: bool) -> Result<Option<crate::provider::KeyLocation>, ProviderError> {
        let uri = parse_key(key)?;
        self.locate(&uri, secret).map(Some)
    }

    fn destroy_key(&self, key: &KeyId, secret: bool) -> Result<(), ProviderError> {
        let uri = parse_key(key)?;
        self.destroy(&uri, secret)
    }
}

impl Signing for Pkcs11Provider {
    fn import_pkcs8(&self, _pkcs8_der: &[u8]) -> Result<KeyId, ProviderError> {
        Err(unsupported("importing private keys"))
    }

    fn generate(&self, _algorithm: &str, _rsa_bits: u32, _exportable: bool) -> Result<KeyId, ProviderError> {
        Err(unsupported("anonymous keys: name the key with a pkcs11: URI"))
    }

    fn public_key(&self, key: &KeyId) -> Result<Vec<u8>, ProviderError> {
        let uri = parse_key(key)?;
        self.run(&format!("public key of {uri}"), Some(&uri), |s, t| self.public_spki(s, t, &uri))
    }

    fn export_pkcs8(&self, _key: &KeyId) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        Err(ProviderError::InvalidKey("HSM keys never leave the token".into()))
    }

    /// The device is the serial of the token that signed (failover may have moved on).
    fn sign(
        &self,
        key: &KeyId,
        algorithm: &str,
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<OnDevice<Vec<u8>>, ProviderError> {
        let (value, serial) = self.sign_with(key, algorithm, input, format)?;
        Ok(OnDevice { value, device: Some(serial) })
    }

    /// With `create`, generates: an existing key under the name is refused, never reused.
    fn named_key(&self, name: &str, algorithm: &str, rsa_bits: u32, create: bool) -> Result<KeyId, ProviderError> {
        self.named_key_pair(name, algorithm, rsa_bits, create)
    }
}

impl Encryption for Pkcs11Provider {
    /// With `create`, generates: an existing key under the name is refused, never reused.
    fn named_secret(&self, name: &str, algorithm: &str, create: bool) -> Result<KeyId, ProviderError> {
        self.named_aes_key(name, algorithm, create)
    }

    fn import_secret(&self, algorithm: &str, key: &[u8]) -> Result<KeyId, ProviderError> {
        self.import_aes_key(algorithm, key)
    }

    fn encrypt(&self, key: &KeyId, plaintext: &[u8], aad: &[u8]) -> Result<OnDevice<Sealed>, ProviderError> {
        let (value, serial) = self.gcm_encrypt(key, plaintext, aad)?;
        Ok(OnDevice { value, device: Some(serial) })
    }

    fn decrypt(
        &self,
        key: &KeyId,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<OnDevice<Zeroizing<Vec<u8>>>, ProviderError> {
        let (value, serial) = self.gcm_decrypt(key, nonce, ciphertext, aad)?;
        Ok(OnDevice { value, device: Some(serial) })
    }
}
