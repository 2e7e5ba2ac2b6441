//! The signing-key operations both key-holding guests offer, over their key store.

use rand_core::CryptoRng;

use crate::keys::PrivateKey;
use crate::store::Store;
use crate::{CoreError, Format, sig_alg};

/// A private key in custody, and whether it may ever leave.
pub struct Held {
    pub key: PrivateKey,
    pub exportable: bool,
}

impl Store<Held> {
    /// Imports PKCS#8 DER (never exportable again) and wipes the caller's bytes.
    pub fn import_pkcs8(&mut self, mut der: Vec<u8>) -> Result<String, CoreError> {
        let key = PrivateKey::from_pkcs8(&der);
        zeroize::Zeroize::zeroize(&mut der);
        Ok(self.insert(Held { key: key?, exportable: false }))
    }

    pub fn generate<R: CryptoRng>(
        &mut self,
        algorithm: &str,
        rsa_bits: u32,
        exportable: bool,
        rng: &mut R,
    ) -> Result<String, CoreError> {
        let key = PrivateKey::generate(&sig_alg(algorithm)?, rsa_bits, rng)?;
        Ok(self.insert(Held { key, exportable }))
    }

    pub fn public_key(&self, id: &str) -> Result<Vec<u8>, CoreError> {
        self.get(id)?.key.public_spki()
    }

    /// Only keys generated as exportable ever leave.
    pub fn export_pkcs8(&self, id: &str) -> Result<Vec<u8>, CoreError> {
        let held = self.get(id)?;
        if !held.exportable {
            return Err(CoreError::InvalidKey(format!(
                "key {id:?} is not exportable (only keys generated as exportable are)"
            )));
        }
        held.key.to_pkcs8()
    }

    pub fn sign<R: CryptoRng>(
        &self,
        id: &str,
        algorithm: &str,
        message: &[u8],
        format: Format,
        rng: &mut R,
    ) -> Result<Vec<u8>, CoreError> {
        let alg = sig_alg(algorithm)?;
        self.get(id)?.key.sign_message(&alg, message, format, rng)
    }

    pub fn sign_digest<R: CryptoRng>(
        &self,
        id: &str,
        algorithm: &str,
        digest: &[u8],
        format: Format,
        rng: &mut R,
    ) -> Result<Vec<u8>, CoreError> {
        let alg = sig_alg(algorithm)?;
        self.get(id)?.key.sign_digest(&alg, digest, format, rng)
    }
}
