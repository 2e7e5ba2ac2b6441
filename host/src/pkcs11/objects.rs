//! Key objects on a token: find by URI, list, name one already there, check attributes before use.

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::Pkcs11Provider;
use super::connection::Token;
use super::encoding::{self, Curve};
use super::encryption::aes_key_len;
use super::errors::{OpError, ck_message};
use super::pool::lock;
use crate::error::ProviderError;
use crate::keyref::Pkcs11Uri;

/// One key on a token, for `cryptohost keys list` (the wire schema's type).
pub use cryptohost_client::api::KeyListing;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

pub(super) fn class_name(c: ObjectClass) -> &'static str {
    if c == ObjectClass::PRIVATE_KEY {
        "private key"
    } else if c == ObjectClass::PUBLIC_KEY {
        "public key"
    } else if c == ObjectClass::SECRET_KEY {
        "secret key"
    } else {
        "object"
    }
}

/// The bit length of a big-endian unsigned integer (CKA_MODULUS): leading zero bits do not
/// count, so a 2,041-bit modulus is 2,041 bits, not the 2,048 its 256 bytes could hold.
pub fn modulus_bits(modulus: &[u8]) -> usize {
    match modulus.iter().position(|&b| b != 0) {
        Some(i) => (modulus.len() - i) * 8 - modulus[i].leading_zeros() as usize,
        None => 0,
    }
}

impl Pkcs11Provider {
    /// Every private and secret key on the configured tokens, as PKCS#11 URIs.
    ///
    /// # Errors
    /// The HSM cannot be reached or logged in to.
    pub fn list_keys(&self) -> Result<Vec<KeyListing>, ProviderError> {
        self.ensure_connected()?;
        let guard = self.conn.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(conn) = guard.as_ref() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for token in &conn.tokens {
            let listed = self.attempt(token, &conn.ctx, &|s: &Session, t: &Token| {
                let mut found = Vec::new();
                for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
                    for h in s.find_objects(&[Attribute::Class(class), Attribute::Token(true)])? {
                        let Named { label, id, key_type: kt } = label_id_type(s, h)?;
                        let uri = Pkcs11Uri {
                            token: Some(t.label.clone()),
                            object: Some(String::from_utf8_lossy(&label).into_owned()),
                            id: (!id.is_empty()).then_some(id),
                            ..Default::default()
                        };
                        found.push(KeyListing {
                            uri: uri.to_uri(),
                            class: class_name(class).into(),
                            key_type: kt.map(|k| format!("{k}")).unwrap_or_default(),
                            token_serial: t.serial.clone(),
                            version: None,
                            state: None,
                            age_days: None,
                        });
                    }
                }
                Ok(found)
            });
            match listed {
                Ok((mut v, _)) => out.append(&mut v),
                Err((OpError::Refused(e), _)) => return Err(e),
                Err((OpError::Ck(e), label)) => {
                    return Err(ProviderError::Failed(format!("{label}: {}", ck_message(&e))));
                }
                Err((OpError::Missing(m), _)) => return Err(ProviderError::KeyNotFound(m)),
            }
        }
        Ok(out)
    }

    /// The serial of the token that holds the key `uri` names (a private key, or with `secret`
    /// an AES key) and the key's `CKA_ID`.
    pub(super) fn locate(&self, uri: &Pkcs11Uri, secret: bool) -> Result<crate::provider::KeyLocation, ProviderError> {
        let class = if secret { ObjectClass::SECRET_KEY } else { ObjectClass::PRIVATE_KEY };
        let (id, serial) = self.run_served(&format!("location of {uri}"), Some(uri), |s, t| {
            let h = self.find(s, t, uri, class)?;
            Ok(label_id_type(s, h)?.id)
        })?;
        Ok(crate::provider::KeyLocation { token_serial: serial, cka_id: id })
    }

    /// Destroys the key `uri` names: its private and public objects (or with `secret` the AES
    /// key). A public object that is already gone is not an error; a missing private key is.
    pub(super) fn destroy(&self, uri: &Pkcs11Uri, secret: bool) -> Result<(), ProviderError> {
        let classes: &[ObjectClass] =
            if secret { &[ObjectClass::SECRET_KEY] } else { &[ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] };
        self.run(&format!("destroy {uri}"), Some(uri), |s, t| {
            for (i, class) in classes.iter().enumerate() {
                let handle = match self.find(s, t, uri, *class) {
                    Ok(h) => h,
                    Err(OpError::Missing(_)) if i > 0 => continue,
                    Err(e) => return Err(e),
                };
                s.destroy_object(handle)?;
                // The handle is gone with the object: forget every cached handle of this token
                // for it (a handle number may be reused by the next object made).
                lock(&t.handles).retain(|_, h| *h != handle);
            }
            Ok(())
        })
    }

    /// Finds (and caches) the object a URI names, of `class`, on `token`.
    pub(super) fn find(
        &self,
        session: &Session,
        token: &Token,
        uri: &Pkcs11Uri,
        class: ObjectClass,
    ) -> Result<ObjectHandle, OpError> {
        let cache_key = (
            format!("{}|{}", uri.object.as_deref().unwrap_or(""), hex::encode(uri.id.as_deref().unwrap_or(&[]))),
            u64::from(class),
        );
        if let Some(h) = lock(&token.handles).get(&cache_key) {
            return Ok(*h);
        }
        let mut template = vec![Attribute::Class(class), Attribute::Token(true)];
        if let Some(label) = &uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let found = session.find_objects(&template)?;
        match found.as_slice() {
            [one] => {
                lock(&token.handles).insert(cache_key, *one);
                Ok(*one)
            }
            [] => Err(OpError::Missing(format!("no {} {uri}", class_name(class)))),
            many => Err(OpError::Refused(ProviderError::InvalidKey(format!(
                "{uri} matches {} {} objects on token {:?}; add id= to make it unique",
                many.len(),
                class_name(class),
                token.label
            )))),
        }
    }

    /// A key already on `token` that a key generated under `uri` would collide with: one with
    /// the same label, or the same id when the URI gives one. Described for a person (class,
    /// type, label, id, token), so a refusal can name it.
    pub(super) fn existing_key(
        &self,
        session: &Session,
        token: &Token,
        uri: &Pkcs11Uri,
    ) -> Result<Option<String>, OpError> {
        let mut templates = Vec::new();
        if let Some(label) = &uri.object {
            templates.push(vec![Attribute::Token(true), Attribute::Label(label.as_bytes().to_vec())]);
        }
        if let Some(id) = &uri.id {
            templates.push(vec![Attribute::Token(true), Attribute::Id(id.clone())]);
        }
        for template in templates {
            for h in session.find_objects(&template)? {
                let class = session.get_attributes(h, &[AttributeType::Class])?.into_iter().find_map(|a| match a {
                    Attribute::Class(c) => Some(c),
                    _ => None,
                });
                let Some(class) = class.filter(|c| {
                    [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY, ObjectClass::SECRET_KEY].contains(c)
                }) else {
                    continue;
                };
                let Named { label, id, key_type: kt } = label_id_type(session, h)?;
                return Ok(Some(format!(
                    "{} {} with label {:?} and id {} on token {:?} (serial {})",
                    kt.map(|k| format!("{k}")).unwrap_or_else(|| "(no type)".into()),
                    class_name(class),
                    String::from_utf8_lossy(&label),
                    if id.is_empty() { "(none)".to_string() } else { format!("%{}", hex::encode(&id)) },
                    token.label,
                    token.serial
                )));
            }
        }
        Ok(None)
    }

    /// Checks a private key against the algorithm before it is used (memoized per handle).
    pub(super) fn check_key(
        &self,
        session: &Session,
        token: &Token,
        handle: ObjectHandle,
        uri: &Pkcs11Uri,
        alg: &str,
    ) -> Result<(), OpError> {
        let memo = format!("{handle:?}/{alg}");
        if lock(&token.checked).contains(&memo) {
            return Ok(());
        }
        self.check_key_attributes(session, handle, uri, alg)?;
        lock(&token.checked).insert(memo);
        Ok(())
    }

    fn check_key_attributes(
        &self,
        session: &Session,
        handle: ObjectHandle,
        uri: &Pkcs11Uri,
        alg: &str,
    ) -> Result<(), OpError> {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Sign,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Modulus,
                AttributeType::EcParams,
            ],
        )?;
        let refuse =
            |why: String| Err(OpError::Refused(ProviderError::InvalidKey(format!("{uri} refused for {alg}: {why}"))));
        let mut key_type = None;
        let (mut sign, mut sensitive, mut extractable) = (false, false, true);
        let (mut bits, mut params) = (0usize, Vec::new());
        for a in attrs {
            match a {
                Attribute::KeyType(k) => key_type = Some(k),
                Attribute::Sign(b) => sign = b,
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                Attribute::Modulus(m) => bits = modulus_bits(&m),
                Attribute::EcParams(p) => params = p,
                _ => {}
            }
        }
        match (alg, key_type, Curve::for_alg(alg)) {
            (_, Some(KeyType::EC), Some(want)) => {
                if encoding::curve_of(&params) != Some(want) {
                    return refuse(format!("CKA_EC_PARAMS is not the curve {alg} needs ({})", want.name()));
                }
            }
            (a, Some(KeyType::RSA), _)
                if crate::alg::signature(a)
                    .is_some_and(|s| matches!(s.family, crate::alg::Family::RsaPkcs1 | crate::alg::Family::RsaPss)) =>
            {
                if bits < MIN_RSA_BITS {
                    return refuse(format!("CKA_MODULUS is {bits} bits; at least {MIN_RSA_BITS} are required"));
                }
            }
            (_, k, _) => return refuse(format!("CKA_KEY_TYPE {k:?} does not fit {alg}")),
        }
        if !sign {
            return refuse("CKA_SIGN is false".into());
        }
        if self.config.require_non_extractable {
            if !sensitive {
                return refuse("CKA_SENSITIVE is false (set require_non_extractable = false to allow)".into());
            }
            if extractable {
                return refuse("CKA_EXTRACTABLE is true (set require_non_extractable = false to allow)".into());
            }
        }
        Ok(())
    }

    /// Checks a secret key against an AES-GCM algorithm: type AES, CKA_VALUE_LEN the
    /// algorithm's key length, CKA_ENCRYPT/CKA_DECRYPT, and the extractability rule.
    pub(super) fn check_secret(
        &self,
        session: &Session,
        handle: ObjectHandle,
        uri: &str,
        alg: &str,
        for_encrypt: bool,
    ) -> Result<(), OpError> {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::ValueLen,
                AttributeType::Sensitive,
                AttributeType::Extractable,
            ],
        )?;
        let want_len = aes_key_len(alg).map_err(OpError::Refused)?;
        let refuse =
            |why: String| Err(OpError::Refused(ProviderError::InvalidKey(format!("{uri} refused for {alg}: {why}"))));
        let (mut ok_type, mut enc, mut dec, mut len, mut sensitive, mut extractable) =
            (false, false, false, 0u64, false, true);
        for a in attrs {
            match a {
                Attribute::KeyType(k) => ok_type = k == KeyType::AES,
                Attribute::Encrypt(b) => enc = b,
                Attribute::Decrypt(b) => dec = b,
                Attribute::ValueLen(l) => len = l.into(),
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                _ => {}
            }
        }
        if !ok_type {
            return refuse("CKA_KEY_TYPE is not CKK_AES".into());
        }
        if len != want_len {
            return refuse(format!("CKA_VALUE_LEN is {len} bytes; {alg} needs a {want_len}-byte key"));
        }
        if for_encrypt && !enc {
            return refuse("CKA_ENCRYPT is false".into());
        }
        if !for_encrypt && !dec {
            return refuse("CKA_DECRYPT is false".into());
        }
        if self.config.require_non_extractable && (!sensitive || extractable) {
            return refuse(if extractable {
                "CKA_EXTRACTABLE is true".into()
            } else {
                "CKA_SENSITIVE is false".into()
            });
        }
        Ok(())
    }
}

/// CKA_LABEL, CKA_ID and CKA_KEY_TYPE of an object (empty / `None` when absent).
struct Named {
    label: Vec<u8>,
    id: Vec<u8>,
    key_type: Option<KeyType>,
}

fn label_id_type(s: &Session, h: ObjectHandle) -> Result<Named, OpError> {
    let mut n = Named { label: Vec::new(), id: Vec::new(), key_type: None };
    for a in s.get_attributes(h, &[AttributeType::Label, AttributeType::Id, AttributeType::KeyType])? {
        match a {
            Attribute::Label(l) => n.label = l,
            Attribute::Id(i) => n.id = i,
            Attribute::KeyType(k) => n.key_type = Some(k),
            _ => {}
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::modulus_bits;

    #[test]
    fn modulus_bits_counts_bits_not_bytes() {
        // 256 bytes whose top byte is 0x01: a 2,041-bit modulus, which the byte count called 2,048.
        let mut m = vec![0xffu8; 256];
        m[0] = 0x01;
        assert_eq!(modulus_bits(&m), 2041);
        m[0] = 0x80;
        assert_eq!(modulus_bits(&m), 2048);
        m[0] = 0x7f;
        assert_eq!(modulus_bits(&m), 2047);
        // Leading zero bytes (some modules pad) do not count either.
        let mut padded = vec![0u8; 2];
        padded.extend_from_slice(&m);
        assert_eq!(modulus_bits(&padded), 2047);
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[1]), 1);
    }
}
