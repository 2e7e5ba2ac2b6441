//! Key references and key use: `pkcs11:` URIs go to the HSM backend, `PREFIX:NAME` (e.g.
//! `sim:NAME`) to the provider configured for that prefix, `file:PATH` (or a plain path) is a
//! PKCS#8 file imported into the highest-priority signing provider. Every use of a private or
//! secret key is audited before its result is returned.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::audit::{AuditInput, AuditLog, AuditRecord, Caller, KeyOrigin, now_rfc3339};
use crate::error::{ProviderError, RegistryError};

use crate::keyfile;
pub use crate::keyref::KeyRef;
use crate::provider::{Capability, CryptoProvider, KeyId, Origin, Sealed, SigFormat, SignInput, lacks};
use crate::registry::{GeneratedKey, HeldKey, Registry};

/// Errors of key use, for a person.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key reference {reference:?}: {message}")]
    Reference { reference: String, message: String },
    #[error("{provider}: {error}")]
    Provider { provider: String, error: ProviderError },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    File(#[from] keyfile::FileError),
    #[error("{0}")]
    Input(String),
    #[error("{provider}: the key was made but could not be stored: {message}")]
    Output { provider: String, message: String },
    /// The deployment policy refuses the algorithm or the key (audited as `refused by policy`).
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyRefusal),
}

impl KeyError {
    /// The policy's refusal, when that is what this is.
    pub fn policy(&self) -> Option<&crate::policy::PolicyRefusal> {
        match self {
            KeyError::Policy(r) | KeyError::Registry(RegistryError::Policy(r)) => Some(r),
            _ => None,
        }
    }
}

/// A signature and who made it.
#[derive(Debug)]
pub struct Signed {
    pub signature: Vec<u8>,
    pub provider: String,
    pub origin: KeyOrigin,
}

/// Key operations with routing and auditing.
pub struct KeyService<'r> {
    registry: &'r Registry,
    audit: Arc<AuditLog>,
    /// Who asked, when the request came over the server's socket.
    caller: Option<Caller>,
}

/// What the audit log says about where a provider's code came from.
/// `device` is the serial of the token that served, as the provider returned it with the
/// result (never looked up afterwards, when failover may have moved on).
fn origin_of(p: &dyn CryptoProvider, device: Option<String>) -> KeyOrigin {
    match &p.descriptor().origin {
        Origin::Component { file, sha256, publisher } => {
            KeyOrigin::Component { component: file.clone(), sha256: sha256.clone(), publisher: publisher.clone() }
        }
        Origin::Native { module } => KeyOrigin::Pkcs11 { pkcs11_module: module.clone(), token_serial: device },
    }
}

/// Where a resolved key lives.
enum Resolved {
    Held(Arc<dyn CryptoProvider>, KeyId),
    /// A PKCS#8 file: imported into whichever signing provider serves the algorithm.
    Pkcs8(Zeroizing<Vec<u8>>),
}

impl<'r> KeyService<'r> {
    /// Opens the audit log first: a key is never used if its use cannot be recorded.
    ///
    /// # Errors
    /// The audit log cannot be opened.
    pub fn new(registry: &'r Registry, audit_path: &Path) -> Result<KeyService<'r>, KeyError> {
        Ok(KeyService { registry, audit: Arc::new(AuditLog::open(audit_path)?), caller: None })
    }

    /// Key operations over an audit log already open (the server's, shared by all requests),
    /// on behalf of `caller` (absent for the one-shot CLI), whose identity every audit line
    /// records.
    pub fn with_log(registry: &'r Registry, audit: Arc<AuditLog>, caller: Option<Caller>) -> KeyService<'r> {
        KeyService { registry, audit, caller }
    }

    /// The registry it routes through.
    pub fn registry(&self) -> &'r Registry {
        self.registry
    }

    /// The audit log every key use is written to.
    pub fn audit_log(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// Who the lines name (absent for the one-shot CLI).
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// The namespace a held key's reference lives in (`pkcs11`, or the `PREFIX` of `PREFIX:NAME`)
    /// and the name its provider knows it by.
    fn namespace(reference: &KeyRef) -> Result<(&str, String), KeyError> {
        match reference {
            KeyRef::Pkcs11(u) => Ok(("pkcs11", u.to_uri())),
            KeyRef::Named { prefix, name } => Ok((prefix.as_str(), name.clone())),
            KeyRef::File(_) => Err(KeyError::Reference {
                reference: reference.to_string(),
                message: "a key file has no provider of its own".into(),
            }),
        }
    }

    /// A held key through the registry; a refusal names the provider (and reaches the audit
    /// line as that provider's).
    fn held(held: Result<HeldKey, RegistryError>, reference: &KeyRef) -> Result<HeldKey, KeyError> {
        held.map_err(|e| match e {
            RegistryError::Provider { provider, error } => KeyError::Provider { provider, error },
            RegistryError::NoNamespace { .. } => {
                KeyError::Reference { reference: reference.to_string(), message: e.to_string() }
            }
            other => KeyError::Registry(other),
        })
    }

    fn resolve(&self, reference: &KeyRef, algorithm: &str, rsa_bits: u32, create: bool) -> Result<Resolved, KeyError> {
        if let KeyRef::File(path) = reference {
            return Ok(Resolved::Pkcs8(keyfile::read_private_key(path)?));
        }
        let (prefix, name) = Self::namespace(reference)?;
        let key = Self::held(self.registry.named_key(prefix, &name, algorithm, rsa_bits, create), reference)?;
        Ok(Resolved::Held(key.provider, key.id))
    }

    /// Audits an operation's outcome; the result is only handed back once the line is on disk.
    fn audited<T>(
        &self,
        operation: &str,
        reference: &KeyRef,
        algorithm: &str,
        input: &AuditInput,
        result: Result<(T, String, KeyOrigin), KeyError>,
    ) -> Result<(T, String, KeyOrigin), KeyError> {
        let line = |provider: &str, provider_origin: KeyOrigin, outcome: String| AuditRecord {
            time: now_rfc3339(),
            operation: operation.into(),
            key: reference.to_string(),
            algorithm: algorithm.into(),
            provider: provider.into(),
            provider_origin,
            signed_digest: input.signed_digest.clone(),
            input_sha256: input.input_sha256.clone(),
            outcome,
            caller: self.caller.clone(),
        };
        match result {
            Ok((value, provider, origin)) => {
                self.audit.append(&line(&provider, origin.clone(), "ok".into()))?;
                Ok((value, provider, origin))
            }
            Err(e) => {
                let provider = match &e {
                    KeyError::Provider { provider, .. } | KeyError::Output { provider, .. } => provider.clone(),
                    _ => String::new(),
                };
                // A policy refusal is its own outcome, not an error of the key or provider.
                let outcome = match e.policy() {
                    Some(r) => r.to_string(),
                    None => format!("error: {e}"),
                };
                self.audit.append(&line(&provider, KeyOrigin::None, outcome))?;
                Err(e)
            }
        }
    }

    /// Signs `input` (a message, or a digest computed with the algorithm's hash) with a key.
    /// `audit` is what the audit log records about the input.
    ///
    /// # Errors
    /// Bad reference, the provider refuses, or the audit log cannot be written.
    pub fn sign(
        &self,
        reference: &KeyRef,
        algorithm: &str,
        input: SignInput<'_>,
        audit: &AuditInput,
        format: SigFormat,
    ) -> Result<Signed, KeyError> {
        let result = (|| {
            self.registry.policy().allows(Capability::Signing, algorithm)?;
            match self.resolve(reference, algorithm, 0, false)? {
                Resolved::Held(p, id) => {
                    let failed = |error| KeyError::Provider { provider: p.descriptor().name.clone(), error };
                    let signing = p.signing().ok_or_else(|| failed(lacks(p.as_ref(), Capability::Signing)))?;
                    let signed = signing.sign(&id, algorithm, input, format).map_err(failed)?;
                    Ok((signed.value, p.descriptor().name.clone(), origin_of(p.as_ref(), signed.device)))
                }
                Resolved::Pkcs8(der) => {
                    let served = self.registry.sign_with_pkcs8(algorithm, &der, input, format)?;
                    let origin = origin_of(served.provider.as_ref(), None);
                    Ok((served.value, served.provider.descriptor().name.clone(), origin))
                }
            }
        })();
        let (signature, provider, origin) = self.audited("sign", reference, algorithm, audit, result)?;
        Ok(Signed { signature, provider, origin })
    }

    /// Whether the deployment policy lets `reference` sign with `algorithm`: the algorithm, and
    /// an RSA key's size (asked of the key's provider, only when the policy sets a minimum).
    /// Asked before any input is read; a refusal is audited as `refused by policy`.
    ///
    /// # Errors
    /// The policy refuses (and the line is written), or the key's public half cannot be read.
    pub fn check_sign(&self, reference: &KeyRef, algorithm: &str) -> Result<(), KeyError> {
        let policy = self.registry.policy();
        let result = (|| -> Result<(), KeyError> {
            policy.allows(Capability::Signing, algorithm)?;
            let rsa = crate::alg::signature(algorithm)
                .is_some_and(|a| matches!(a.family, crate::alg::Family::RsaPkcs1 | crate::alg::Family::RsaPss));
            if rsa && policy.min_rsa_bits().is_some() {
                let (spki, _) = self.public_key(reference, algorithm, 0)?;
                policy.public_key(&spki)?;
            }
            Ok(())
        })();
        match result {
            Err(e) if e.policy().is_some() => {
                self.audited("sign", reference, algorithm, &AuditInput::none(), Err(e)).map(|_: ((), _, _)| ())
            }
            other => other,
        }
    }

    /// The public key (SPKI DER) of a key reference, and the provider that holds it.
    ///
    /// # Errors
    /// Bad reference or the provider refuses.
    pub fn public_key(
        &self,
        reference: &KeyRef,
        algorithm: &str,
        rsa_bits: u32,
    ) -> Result<(Vec<u8>, String), KeyError> {
        match self.resolve(reference, algorithm, rsa_bits, false)? {
            Resolved::Held(p, id) => {
                let spki = p
                    .public_key(&id)
                    .map_err(|error| KeyError::Provider { provider: p.descriptor().name.clone(), error })?;
                Ok((spki, p.descriptor().name.clone()))
            }
            Resolved::Pkcs8(der) => {
                let served = self.registry.serve_keyed(Capability::Signing, algorithm, |p, _| {
                    let id = p.import_pkcs8(&der)?;
                    let spki = p.public_key(&id);
                    p.delete_key(&id);
                    spki
                })?;
                Ok((served.value, served.provider.descriptor().name.clone()))
            }
        }
    }

    /// Generates a named key (HSM or simulation) and returns its public key (empty for a
    /// secret key) and the provider that holds it.
    ///
    /// # Errors
    /// A file reference (use `keygen`), the provider refuses, or the audit log fails.
    pub fn generate(&self, reference: &KeyRef, algorithm: &str, rsa_bits: u32) -> Result<(Vec<u8>, String), KeyError> {
        if let KeyRef::File(_) = reference {
            return Err(KeyError::Reference {
                reference: reference.to_string(),
                message: "key files are made with `cryptohost keygen --out FILE`".into(),
            });
        }
        let secret = crate::alg::aead(algorithm).is_some();
        let result = (|| {
            let (prefix, name) = Self::namespace(reference)?;
            if secret {
                let key = Self::held(self.registry.named_secret(prefix, &name, algorithm, true), reference)?;
                let p = key.provider;
                return Ok((Vec::new(), p.descriptor().name.clone(), origin_of(p.as_ref(), None)));
            }
            let key = Self::held(self.registry.named_key(prefix, &name, algorithm, rsa_bits, true), reference)?;
            let p = key.provider;
            let spki = p
                .public_key(&key.id)
                .map_err(|error| KeyError::Provider { provider: p.descriptor().name.clone(), error })?;
            Ok((spki, p.descriptor().name.clone(), origin_of(p.as_ref(), None)))
        })();
        let (spki, provider, _) = self.audited("generate", reference, algorithm, &AuditInput::none(), result)?;
        Ok((spki, provider))
    }

    /// Generates an exportable key pair in the serving signing provider, to be written to
    /// `out` as a PKCS#8 file (audited as a `generate` of `file:OUT`).
    ///
    /// # Errors
    /// No provider generates it, or the audit log cannot be written.
    /// `write` stores the key (the CLI writes the files); the audit line records whether that
    /// worked, so a key that never reached its file is not audited as `ok`.
    pub fn generate_file_key(
        &self,
        out: &Path,
        algorithm: &str,
        rsa_bits: u32,
        write: impl FnOnce(&GeneratedKey) -> Result<(), String>,
    ) -> Result<String, KeyError> {
        let reference = KeyRef::File(out.to_path_buf());
        let result =
            self.registry.generate_exportable(algorithm, rsa_bits).map_err(KeyError::from).and_then(|served| {
                let origin = origin_of(served.provider.as_ref(), None);
                let name = served.provider.descriptor().name.clone();
                write(&served.value).map_err(|message| KeyError::Output { provider: name.clone(), message })?;
                Ok(((), name, origin))
            });
        let ((), provider, _) = self.audited("generate", &reference, algorithm, &AuditInput::none(), result)?;
        Ok(provider)
    }

    fn secret(&self, reference: &KeyRef, algorithm: &str) -> Result<(Arc<dyn CryptoProvider>, KeyId), KeyError> {
        self.registry.policy().allows(Capability::Encryption, algorithm)?;
        let (prefix, name) = Self::namespace(reference)?;
        let key = Self::held(self.registry.named_secret(prefix, &name, algorithm, false), reference)?;
        Ok((key.provider, key.id))
    }

    /// AES-GCM encryption with a named secret key.
    ///
    /// # Errors
    /// Bad reference, the provider refuses, or the audit log fails.
    pub fn encrypt(
        &self,
        reference: &KeyRef,
        algorithm: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(Sealed, String), KeyError> {
        let audit = AuditInput::whole(&Sha256::digest(plaintext));
        let result = (|| {
            let (p, id) = self.secret(reference, algorithm)?;
            let failed = |error| KeyError::Provider { provider: p.descriptor().name.clone(), error };
            let encryption = p.encryption().ok_or_else(|| failed(lacks(p.as_ref(), Capability::Encryption)))?;
            let sealed = encryption.encrypt(&id, plaintext, aad).map_err(failed)?;
            Ok((sealed.value, p.descriptor().name.clone(), origin_of(p.as_ref(), sealed.device)))
        })();
        let (sealed, provider, _) = self.audited("encrypt", reference, algorithm, &audit, result)?;
        Ok((sealed, provider))
    }

    /// AES-GCM decryption with a named secret key.
    ///
    /// # Errors
    /// Bad reference, authentication failure, or the audit log fails.
    pub fn decrypt(
        &self,
        reference: &KeyRef,
        algorithm: &str,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, String), KeyError> {
        let audit = AuditInput::whole(&Sha256::digest(ciphertext));
        let result = (|| {
            let (p, id) = self.secret(reference, algorithm)?;
            let failed = |error| KeyError::Provider { provider: p.descriptor().name.clone(), error };
            let encryption = p.encryption().ok_or_else(|| failed(lacks(p.as_ref(), Capability::Encryption)))?;
            let plain = encryption.decrypt(&id, nonce, ciphertext, aad).map_err(failed)?;
            Ok((plain.value, p.descriptor().name.clone(), origin_of(p.as_ref(), plain.device)))
        })();
        let (plain, provider, _) = self.audited("decrypt", reference, algorithm, &audit, result)?;
        Ok((plain, provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::fake::fake;

    #[test]
    fn a_refused_key_use_is_audited_as_an_error_naming_the_provider() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = fake("vault", 1, Err(ProviderError::Failed("the device is gone".into())));
        let registry = Registry::with_namespaces(vec![held.clone()], vec![("fk".into(), held.clone())]);
        let log = dir.path().join("audit.jsonl");
        let service = KeyService::new(&registry, &log).expect("log opens");
        let key = KeyRef::parse("fk:signer").expect("reference");
        let input = AuditInput::whole(&[1; 32]).with_digest("SHA-256", &[2; 32]);
        let err = service.sign(&key, "ES256", SignInput::Digest(&[2; 32]), &input, SigFormat::Der).expect_err("fails");
        assert!(matches!(err, KeyError::Provider { ref provider, .. } if provider == "vault"), "{err}");
        let text = std::fs::read_to_string(&log).expect("a line");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
        assert_eq!(line["operation"], "sign");
        assert_eq!(line["key"], "fk:signer");
        assert_eq!(line["provider"], "vault");
        assert!(line["outcome"].as_str().expect("outcome").starts_with("error: "), "{line}");
        assert_eq!(line["signed_digest"]["hex"], hex::encode([2; 32]));
        assert_eq!(line["input_sha256"], hex::encode([1; 32]));
    }
}
