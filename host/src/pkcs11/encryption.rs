//! AES-GCM with secret keys on the token: find/generate (length checked against the algorithm), encrypt, decrypt.

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use sha2::Digest;
use zeroize::Zeroizing;

use super::Pkcs11Provider;
use super::connection::Token;
use super::errors::{OpError, ck_message, rv};
use super::signing::taken;
use crate::error::ProviderError;
use crate::keyref::Pkcs11Uri;
use crate::provider::{KeyId, Sealed};

pub(super) const ENCRYPTION: [&str; 2] = ["A128GCM", "A256GCM"];

/// The AES key length (bytes) of an AES-GCM algorithm, from the host's algorithm table.
pub(super) fn aes_key_len(algorithm: &str) -> Result<u64, ProviderError> {
    crate::alg::aead(algorithm)
        .filter(|a| ENCRYPTION.contains(&a.name))
        .map(|a| a.key_bytes as u64)
        .ok_or_else(|| ProviderError::Unsupported(format!("the PKCS#11 backend does not encrypt with {algorithm}")))
}

/// The AES-GCM algorithm of a key length, if any.
fn alg_of_len(len: u64) -> Option<&'static str> {
    ENCRYPTION.into_iter().find(|a| aes_key_len(a).ok() == Some(len))
}

/// A secret key id: a URI, plus `;session` for imported session objects.
fn secret_uri(key: &KeyId) -> Result<(Pkcs11Uri, bool), ProviderError> {
    let (text, session) = match key.0.strip_suffix(";session") {
        Some(t) => (t, true),
        None => (key.0.as_str(), false),
    };
    Ok((Pkcs11Uri::parse(text).map_err(ProviderError::InvalidKey)?, session))
}

impl Pkcs11Provider {
    /// The secret key a URI names, for `algorithm`; a key of another length is refused here,
    /// so A256GCM never runs with a 128-bit key. With `create`, a new AES key generated under
    /// the URI, refused when a key already holds its label or id.
    pub(super) fn named_aes_key(&self, name: &str, algorithm: &str, create: bool) -> Result<KeyId, ProviderError> {
        let len = aes_key_len(algorithm)?;
        let uri = Pkcs11Uri::parse(name).map_err(ProviderError::InvalidKey)?;
        if !create {
            self.run(&format!("find {uri}"), Some(&uri), |s, t| {
                let handle = self.find(s, t, &uri, ObjectClass::SECRET_KEY)?;
                // Direction-neutral here; encrypt/decrypt check CKA_ENCRYPT/CKA_DECRYPT.
                self.check_secret_len(s, handle, &uri, algorithm)
            })?;
            return Ok(KeyId(uri.to_uri()));
        }
        let label = uri
            .object
            .clone()
            .ok_or_else(|| ProviderError::InvalidKey("a key to generate needs object= (its label)".into()))?;
        self.refuse_if_taken(&uri)?;
        self.run(&format!("generate {uri}"), Some(&uri), |s, t| {
            if let Some(existing) = self.existing_key(s, t, &uri)? {
                return Err(OpError::Refused(taken(&uri, &existing)));
            }
            let id = uri.id.clone().unwrap_or_else(|| sha2::Sha256::digest(label.as_bytes())[..8].to_vec());
            s.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(len.into()),
                    Attribute::Label(label.clone().into_bytes()),
                    Attribute::Id(id),
                ],
            )?;
            Ok(())
        })?;
        Ok(KeyId(uri.to_uri()))
    }

    pub(super) fn import_aes_key(&self, algorithm: &str, key: &[u8]) -> Result<KeyId, ProviderError> {
        let want = aes_key_len(algorithm)? as usize;
        if key.len() != want {
            return Err(ProviderError::InvalidKey(format!("{algorithm} needs a {want}-byte key, got {}", key.len())));
        }
        // A session object (CKA_TOKEN false): it vanishes with the application, and is still
        // sensitive and non-extractable once created.
        let label = format!("cryptohost-import-{}", hex::encode(&sha2::Sha256::digest(key)[..8]));
        let uri = Pkcs11Uri { object: Some(label.clone()), ..Default::default() };
        self.run("import secret", None, |s, _| {
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Value(key.to_vec()),
                Attribute::Label(label.clone().into_bytes()),
            ])?;
            Ok(())
        })?;
        Ok(KeyId(format!("{};type=secret-key;session", uri.to_uri())))
    }

    pub(super) fn gcm_encrypt(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(Sealed, String), ProviderError> {
        let (uri, session_object) = secret_uri(key)?;
        self.run_served(&format!("encrypt with {uri}"), Some(&uri), |s, t| {
            let handle = self.find_secret(s, t, &uri, session_object)?;
            let alg = self.secret_alg(s, handle, &uri)?;
            self.check_secret(s, handle, &uri.to_uri(), alg, true)?;
            // A fresh 96-bit nonce from the OS CSPRNG for every encryption.
            let mut nonce = [0u8; 12];
            getrandom::fill(&mut nonce).map_err(|e| OpError::Refused(ProviderError::Failed(format!("OS RNG: {e}"))))?;
            let mut iv = nonce;
            let params = GcmParams::new(&mut iv, aad, 128u64.into())?;
            let ciphertext = s.encrypt(&Mechanism::AesGcm(params), handle, plaintext)?;
            Ok(Sealed { nonce: nonce.to_vec(), ciphertext })
        })
    }

    pub(super) fn gcm_decrypt(
        &self,
        key: &KeyId,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, String), ProviderError> {
        if nonce.len() != 12 {
            return Err(ProviderError::InvalidInput(format!("AES-GCM nonce must be 12 bytes, got {}", nonce.len())));
        }
        if ciphertext.len() < 16 {
            return Err(ProviderError::InvalidInput("AES-GCM ciphertext is shorter than its 16-byte tag".into()));
        }
        let (uri, session_object) = secret_uri(key)?;
        self.run_served(&format!("decrypt with {uri}"), Some(&uri), |s, t| {
            let handle = self.find_secret(s, t, &uri, session_object)?;
            let alg = self.secret_alg(s, handle, &uri)?;
            self.check_secret(s, handle, &uri.to_uri(), alg, false)?;
            let mut iv = [0u8; 12];
            iv.copy_from_slice(nonce);
            let params = GcmParams::new(&mut iv, aad, 128u64.into())?;
            match s.decrypt(&Mechanism::AesGcm(params), handle, ciphertext) {
                Ok(p) => Ok(Zeroizing::new(p)),
                // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR; others use
                // CKR_ENCRYPTED_DATA_INVALID. Either way it is bad input, not a failing token.
                Err(e)
                    if matches!(
                        rv(&e),
                        Some(
                            RvError::EncryptedDataInvalid
                                | RvError::EncryptedDataLenRange
                                | RvError::GeneralError
                                | RvError::FunctionFailed
                        )
                    ) =>
                {
                    Err(OpError::Refused(ProviderError::InvalidInput(format!(
                        "AES-GCM authentication failed (wrong key, nonce, AAD or tag): {}",
                        ck_message(&e)
                    ))))
                }
                Err(e) => Err(OpError::Ck(e)),
            }
        })
    }

    fn find_secret(
        &self,
        s: &Session,
        t: &Token,
        uri: &Pkcs11Uri,
        session_object: bool,
    ) -> Result<ObjectHandle, OpError> {
        if !session_object {
            return self.find(s, t, uri, ObjectClass::SECRET_KEY);
        }
        let template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(false),
            Attribute::Label(uri.object.clone().unwrap_or_default().into_bytes()),
        ];
        s.find_objects(&template)?.first().copied().ok_or_else(|| OpError::Missing(format!("no session secret {uri}")))
    }

    /// CKA_VALUE_LEN of a secret key.
    fn secret_len(&self, s: &Session, handle: ObjectHandle) -> Result<Option<u64>, OpError> {
        Ok(s.get_attributes(handle, &[AttributeType::ValueLen])?.into_iter().find_map(|a| match a {
            Attribute::ValueLen(l) => Some(u64::from(l)),
            _ => None,
        }))
    }

    /// The AES-GCM algorithm a secret key's length fits; any other length is refused.
    fn secret_alg(&self, s: &Session, handle: ObjectHandle, uri: &Pkcs11Uri) -> Result<&'static str, OpError> {
        let len = self.secret_len(s, handle)?;
        len.and_then(alg_of_len).ok_or_else(|| {
            OpError::Refused(ProviderError::InvalidKey(format!(
                "{uri}: CKA_VALUE_LEN is {}; AES-GCM here needs 16 (A128GCM) or 32 (A256GCM) bytes",
                len.map_or_else(|| "missing".to_string(), |l| format!("{l} bytes"))
            )))
        })
    }

    /// Refuses a secret key whose length does not fit the algorithm asked for.
    fn check_secret_len(
        &self,
        s: &Session,
        handle: ObjectHandle,
        uri: &Pkcs11Uri,
        algorithm: &str,
    ) -> Result<(), OpError> {
        let want = aes_key_len(algorithm).map_err(OpError::Refused)?;
        match self.secret_len(s, handle)? {
            Some(len) if len == want => Ok(()),
            len => Err(OpError::Refused(ProviderError::InvalidKey(format!(
                "{uri} refused for {algorithm}: CKA_VALUE_LEN is {}; {algorithm} needs a {want}-byte ({}-bit) key{}",
                len.map_or_else(|| "missing".to_string(), |l| format!("{l} bytes")),
                want * 8,
                len.and_then(alg_of_len).map(|a| format!(" (this key is for {a})")).unwrap_or_default()
            )))),
        }
    }
}
