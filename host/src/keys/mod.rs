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
use crate::keyref::{names_a_version, versioned_name};
use crate::lifecycle::{KeyStates, Use, VersionEntry, VersionState};
use crate::provider::{Capability, CryptoProvider, KeyId, Origin, Sealed, SigFormat, SignInput, lacks};
use crate::registry::{GeneratedKey, HeldKey, Registry};

mod versions;
use versions::provider_reference;
pub use versions::{Rotated, Step};

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
    /// The version's state forbids the use (staged or retired asked to sign, destroyed), or the
    /// lifecycle step does not fit the key's versions.
    #[error("{key}: {message}")]
    Version { key: String, message: String },
    /// The key-state file cannot be used, or a version no longer matches its binding.
    #[error(transparent)]
    State(#[from] crate::lifecycle::StateError),
    #[error("{key} version {version}: {message}; nothing was done with it")]
    Binding { key: String, version: u32, message: String },
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
    /// The key-state file (versions of rotated keys); without it every key is version 1.
    states: Option<Arc<KeyStates>>,
    /// The audit key (`[audit] key`): it signs checkpoints, nothing else.
    audit_key: Option<AuditKey>,
    /// `[rotation]`: the oldest a version may be when it signs.
    rotation: Option<crate::config::Rotation>,
}

/// The key that signs the audit log's checkpoints, and how.
#[derive(Clone, Debug)]
pub struct AuditKey {
    pub key: KeyRef,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    /// The checkpoints' origin line, and the note key name.
    pub origin: String,
}

/// Which version of a held key a use means.
pub(crate) struct Versioned {
    /// The reference as the audit line and answers name it: with `x-version` when the key has
    /// recorded versions.
    pub shown: KeyRef,
    /// The reference its provider knows (the version's own name, no `x-version`).
    pub provider_ref: KeyRef,
    /// The version's entry, when the key has recorded versions.
    pub entry: Option<VersionEntry>,
    pub version: u32,
}

/// What the audit log says about where a provider's code came from.
/// `device` is the serial of the token that served, as the provider returned it with the
/// result (never looked up afterwards, when failover may have moved on).
fn origin_of(p: &dyn CryptoProvider, device: Option<String>) -> KeyOrigin {
    match &p.descriptor().origin {
        Origin::Native { module } => KeyOrigin::Pkcs11 { pkcs11_module: module.clone(), token_serial: device },
        component => crate::audit::component_origin(component),
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
    pub fn new(registry: &'r Registry, audit_path: &Path, checkpoint_every: u64) -> Result<KeyService<'r>, KeyError> {
        let audit = Arc::new(AuditLog::open(audit_path, checkpoint_every)?);
        Ok(KeyService { registry, audit, caller: None, states: None, audit_key: None, rotation: None })
    }

    /// Key operations over an audit log already open (the server's, shared by all requests),
    /// on behalf of `caller` (absent for the one-shot CLI), whose identity every audit line
    /// records.
    pub fn with_log(registry: &'r Registry, audit: Arc<AuditLog>, caller: Option<Caller>) -> KeyService<'r> {
        KeyService { registry, audit, caller, states: None, audit_key: None, rotation: None }
    }

    /// Warns (or with `enforce` refuses) when a version older than the limit signs.
    #[must_use]
    pub fn with_rotation(mut self, rotation: Option<crate::config::Rotation>) -> KeyService<'r> {
        self.rotation = rotation;
        self
    }

    /// The `[rotation]` check of a version about to sign: its age from the key-state file (a
    /// key with no recorded versions has no known age and is not checked).
    fn check_age(&self, v: &Versioned) -> Result<(), KeyError> {
        let (Some(rotation), Some(entry)) = (&self.rotation, &v.entry) else { return Ok(()) };
        let Ok(created) = crate::trust::parse_time(&entry.created) else { return Ok(()) };
        let age = (time::OffsetDateTime::now_utc() - created).whole_days();
        if age <= i64::from(rotation.max_age_days) {
            return Ok(());
        }
        let base = v.shown.at_version(None);
        let what = format!(
            "version {} is {age} days old, past [rotation] max_age_days = {}: rotate it (`keys rotate {base}`)",
            v.version, rotation.max_age_days
        );
        if rotation.enforce {
            return Err(KeyError::Version {
                key: base.to_string(),
                message: format!("{what}; refused ([rotation] enforce)"),
            });
        }
        log::warn!("{base}: {what}");
        Ok(())
    }

    /// Signs the audit log's due checkpoints with `key` (which then signs nothing else).
    #[must_use]
    pub fn with_audit_key(mut self, key: Option<AuditKey>) -> KeyService<'r> {
        self.audit_key = key;
        self
    }

    /// Signs and appends the checkpoint that is due, if one is and an audit key is configured.
    /// Called after every key-use line: if the audit key cannot sign, the key use fails (its line
    /// is written, its result withheld) until it can: fail closed, so that no stretch of the log
    /// goes unsigned while keys are used.
    ///
    /// # Errors
    /// The audit key cannot sign, or the checkpoint cannot be written.
    pub fn checkpoint_if_due(&self) -> Result<(), KeyError> {
        self.sign_due_checkpoint()?;
        // At [audit] max_mib: a last checkpoint, then a new file whose genesis names this one.
        if self.audit.over_size() {
            self.audit.want_checkpoint();
            self.sign_due_checkpoint()?;
            if let Some(old) = self.audit.rotate()? {
                log::warn!("audit log rotated: the full log is now {}", old.display());
            }
        }
        Ok(())
    }

    fn sign_due_checkpoint(&self) -> Result<(), KeyError> {
        let Some(audit_key) = &self.audit_key else { return Ok(()) };
        let Some((size, root)) = self.audit.due_checkpoint() else { return Ok(()) };
        let note = self.sign_checkpoint(audit_key, size, &root).map_err(|e| {
            KeyError::Input(format!(
                "the audit log's checkpoint (size {size}) could not be signed with {}: {e}",
                audit_key.key
            ))
        })?;
        self.audit.append_checkpoint(size, &root, &note)?;
        Ok(())
    }

    /// The audit key's note verifier: its name (the origin), signature type and public key.
    ///
    /// # Errors
    /// The key cannot be read, or is not an Ed25519 / ECDSA P-256 key.
    pub fn audit_verifier(&self, audit_key: &AuditKey) -> Result<crate::audit::tlog::note::Verifier, KeyError> {
        let (spki, _) = self.public_key(&audit_key.key, &audit_key.algorithm, 0)?;
        crate::audit::tlog::verifier(&audit_key.origin, &spki).map_err(KeyError::Input)
    }

    /// A signed note of the checkpoint (origin, size, root), signed by the audit key without a
    /// line of its own (the checkpoint line is the record).
    fn sign_checkpoint(&self, audit_key: &AuditKey, size: u64, root: &[u8; 32]) -> Result<String, KeyError> {
        use crate::audit::tlog::note;
        let verifier = self.audit_verifier(audit_key)?;
        let body =
            note::Checkpoint::new(&audit_key.origin, size, *root).body().map_err(|e| KeyError::Input(e.to_string()))?;
        let mut failure = None;
        let signed = note::sign_note_as(&body, &verifier, |text: &[u8]| {
            let result = self.sign_unaudited(&audit_key.key, &audit_key.algorithm, text);
            result.map_err(|e| {
                let m = e.to_string();
                failure = Some(e);
                m
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        signed.map_err(|e| KeyError::Input(e.to_string()))
    }

    /// Signs `text` (hashed here for ES256) with `reference`, writing no line: for checkpoints.
    fn sign_unaudited(&self, reference: &KeyRef, algorithm: &str, text: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest;
        let input = match crate::alg::signature_hash(algorithm) {
            Some(h) => {
                digest = self.registry.digest(h, text)?.value;
                SignInput::Digest(&digest)
            }
            None => SignInput::Message(text),
        };
        let mut shown = reference.clone();
        match self.resolve(reference, algorithm, 0, Use::Make, &mut shown)? {
            Resolved::Held(p, id) => {
                let failed = |error| KeyError::Provider { provider: p.descriptor().name.clone(), error };
                let signing = p.signing().ok_or_else(|| failed(lacks(p.as_ref(), Capability::Signing)))?;
                Ok(signing.sign(&id, algorithm, input, SigFormat::Der).map_err(failed)?.value)
            }
            Resolved::Pkcs8(der) => Ok(self.registry.sign_with_pkcs8(algorithm, &der, input, SigFormat::Der)?.value),
        }
    }

    /// Key versions as the key-state file records them.
    #[must_use]
    pub fn with_states(mut self, states: Arc<KeyStates>) -> KeyService<'r> {
        self.states = Some(states);
        self
    }

    /// The key-state file, when configured.
    pub fn states(&self) -> Option<&Arc<KeyStates>> {
        self.states.as_ref()
    }

    /// Which version of `reference` a use means: the one it names (`x-version`), else the
    /// current one; refused when the version's state does not allow `use_`. A key with no
    /// recorded versions is version 1.
    ///
    /// # Errors
    /// A reference to a version's own name, an unknown version, a state that forbids the use,
    /// or a key-state file that cannot be read.
    pub(crate) fn version_of(&self, reference: &KeyRef, use_: Use) -> Result<Versioned, KeyError> {
        let (base_name, wanted) = match reference {
            KeyRef::File(_) => {
                return Ok(Versioned {
                    shown: reference.clone(),
                    provider_ref: reference.clone(),
                    entry: None,
                    version: 1,
                });
            }
            KeyRef::Named { name, version, .. } => (Some(name.as_str()), *version),
            KeyRef::Pkcs11(u) => (u.object.as_deref(), u.version),
        };
        let base = reference.at_version(None);
        let key = base.to_string();
        let refused = |message: String| KeyError::Version { key: key.clone(), message };
        if base_name.is_some_and(names_a_version) {
            return Err(KeyError::Reference {
                reference: reference.to_string(),
                message: "names a key version by its own name: name it with x-version=N (its state is checked \
                          there)"
                    .into(),
            });
        }
        let snapshot = match &self.states {
            Some(s) => Some(s.snapshot()?),
            None => None,
        };
        let entry = snapshot.as_ref().and_then(|s| s.entry(&key)).cloned();
        let Some(entry) = entry else {
            return match wanted {
                None | Some(1) => Ok(Versioned { shown: base.clone(), provider_ref: base, entry: None, version: 1 }),
                Some(n) => Err(refused(format!("has no version {n}: it was never rotated (it has version 1 only)"))),
            };
        };
        let v = match wanted {
            Some(n) => entry.version(n).cloned().ok_or_else(|| {
                let have: Vec<String> = entry.versions.iter().map(|v| v.version.to_string()).collect();
                refused(format!("has no version {n} (its versions: {})", have.join(", ")))
            })?,
            None => entry.current().cloned().ok_or_else(|| {
                refused("has no current version (every version is staged, retired or destroyed)".into())
            })?,
        };
        let allowed = match use_ {
            Use::Make => v.state == VersionState::Current,
            Use::Read => matches!(v.state, VersionState::Current | VersionState::Retired),
            Use::Public => v.state != VersionState::Destroyed,
        };
        if !allowed {
            let why = match (v.state, use_) {
                (VersionState::Staged, _) => "is staged: it is used for nothing until `keys promote` makes it current",
                (VersionState::Retired, _) => "is retired: it still verifies and decrypts, but never signs or encrypts",
                (VersionState::Destroyed, _) => "was destroyed",
                (VersionState::Current, _) => "cannot be used so",
            };
            return Err(refused(format!("version {} {why}", v.version)));
        }
        let provider_ref = provider_reference(&base, v.version).map_err(refused)?;
        Ok(Versioned { shown: base.at_version(Some(v.version)), provider_ref, version: v.version, entry: Some(v) })
    }

    /// Checks that the key a version resolved to is the one its entry was bound to: the same
    /// SPKI fingerprint, and on a token the same `CKA_ID`. An entry whose key is gone or
    /// changed is an error naming both.
    fn check_binding(&self, v: &Versioned, p: &dyn CryptoProvider, id: &KeyId, secret: bool) -> Result<(), KeyError> {
        let Some(entry) = &v.entry else { return Ok(()) };
        let failed = |message: String| KeyError::Binding {
            key: v.shown.at_version(None).to_string(),
            version: v.version,
            message,
        };
        if let Some(want) = &entry.spki_sha256 {
            let spki = p.signing().map_or_else(|| Err(lacks(p, Capability::Signing)), |s| s.public_key(id));
            let spki = spki.map_err(|e| {
                failed(format!("its key cannot be read ({e}); the key-state file binds it to SPKI sha256 {want}"))
            })?;
            let have = crate::lifecycle::fingerprint(&spki);
            if &have != want {
                return Err(failed(format!(
                    "the key under its name has SPKI sha256 {have}, but the key-state file binds it to {want}"
                )));
            }
        }
        if let Some(want) = &entry.cka_id {
            let at = p
                .key_location(id, secret)
                .map_err(|e| failed(format!("its key cannot be found on the token ({e})")))?;
            if let Some(at) = at
                && &hex::encode(&at.cka_id) != want
            {
                return Err(failed(format!(
                    "the key under its name has CKA_ID {} on token {}, but the key-state file binds it to CKA_ID {want}",
                    hex::encode(&at.cka_id),
                    at.token_serial
                )));
            }
        }
        Ok(())
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
            KeyRef::Named { prefix, name, .. } => Ok((prefix.as_str(), name.clone())),
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

    /// The key a use of `reference` means, through the registry: its version resolved and its
    /// state and binding checked ([`KeyService::version_of`]). `shown` becomes the reference the
    /// audit line names (with the version, once the key has versions).
    fn resolve(
        &self,
        reference: &KeyRef,
        algorithm: &str,
        rsa_bits: u32,
        use_: Use,
        shown: &mut KeyRef,
    ) -> Result<Resolved, KeyError> {
        if let KeyRef::File(path) = reference {
            return Ok(Resolved::Pkcs8(keyfile::read_private_key(path)?));
        }
        let v = self.version_of(reference, use_)?;
        *shown = v.shown.clone();
        if use_ == Use::Make {
            self.check_age(&v)?;
        }
        let (prefix, name) = Self::namespace(&v.provider_ref)?;
        let key = Self::held(self.registry.named_key(prefix, &name, algorithm, rsa_bits, false), reference)?;
        self.check_binding(&v, key.provider.as_ref(), &key.id, false)?;
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
                self.checkpoint_if_due()?;
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
                self.checkpoint_if_due()?;
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
        let mut shown = reference.clone();
        let result = (|| {
            if let Some(a) = &self.audit_key
                && a.key.at_version(None) == reference.at_version(None)
            {
                return Err(KeyError::Reference {
                    reference: reference.to_string(),
                    message: "is the audit key ([audit] key): it signs the audit log's checkpoints and nothing else"
                        .into(),
                });
            }
            self.registry.policy().allows(Capability::Signing, algorithm)?;
            match self.resolve(reference, algorithm, 0, Use::Make, &mut shown)? {
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
        let (signature, provider, origin) = self.audited("sign", &shown, algorithm, audit, result)?;
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
        let mut shown = reference.clone();
        match self.resolve(reference, algorithm, rsa_bits, Use::Public, &mut shown)? {
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

    /// Generates a named key (HSM or simulation) as version 1 and returns its public key
    /// (empty for a secret key) and the provider that holds it. The key-state file records it
    /// (created now, bound to its fingerprint) when one is configured. A key that already has
    /// later versions is refused: `rotate` makes the next one.
    ///
    /// # Errors
    /// A file reference (use `keygen`), a versioned reference, the provider refuses, or the
    /// audit log or key-state file fails.
    pub fn generate(&self, reference: &KeyRef, algorithm: &str, rsa_bits: u32) -> Result<(Vec<u8>, String), KeyError> {
        if let KeyRef::File(_) = reference {
            return Err(KeyError::Reference {
                reference: reference.to_string(),
                message: "key files are made with `cryptohost keygen --out FILE`".into(),
            });
        }
        let result = (|| {
            if reference.version().is_some() {
                return Err(KeyError::Version {
                    key: reference.at_version(None).to_string(),
                    message: "`keys generate` makes version 1; `keys rotate` makes the next version".into(),
                });
            }
            // Refuses a name that is itself a version's, and a key that has later versions.
            let v = self.version_of(reference, Use::Public)?;
            if v.version > 1 {
                return Err(KeyError::Version {
                    key: reference.to_string(),
                    message: format!(
                        "already has versions (version {} is current): `keys rotate` makes the next",
                        v.version
                    ),
                });
            }
            let made = self.make_version(reference, 1, algorithm, rsa_bits)?;
            if let Some(states) = &self.states {
                // Recorded: a new key, or one whose recorded key was gone (a token initialized
                // again) and is made anew now, deliberately (the generate line says so).
                let key = reference.to_string();
                let entry = made.entry.clone();
                states.update(|f| {
                    match f.entry_mut(&key) {
                        None => f.keys.push(crate::lifecycle::KeyEntry { key: key.clone(), versions: vec![entry] }),
                        Some(e) if e.versions.len() == 1 && e.versions[0].spki_sha256 != entry.spki_sha256 => {
                            log::warn!("{key}: the key-state file's version 1 was another key, gone from its device: recorded anew");
                            e.versions = vec![entry];
                        }
                        Some(_) => {}
                    }
                    Ok::<_, KeyError>(())
                })?;
            }
            Ok((made.spki, made.provider, made.origin))
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

    /// A secret key for `use_` (encrypting: the current version; decrypting: current or
    /// retired), its version checked as [`KeyService::resolve`] does.
    fn secret(
        &self,
        reference: &KeyRef,
        algorithm: &str,
        use_: Use,
        shown: &mut KeyRef,
    ) -> Result<(Arc<dyn CryptoProvider>, KeyId), KeyError> {
        self.registry.policy().allows(Capability::Encryption, algorithm)?;
        let v = self.version_of(reference, use_)?;
        *shown = v.shown.clone();
        if use_ == Use::Make {
            self.check_age(&v)?;
        }
        let (prefix, name) = Self::namespace(&v.provider_ref)?;
        let key = Self::held(self.registry.named_secret(prefix, &name, algorithm, false), reference)?;
        self.check_binding(&v, key.provider.as_ref(), &key.id, true)?;
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
        let mut shown = reference.clone();
        let result = (|| {
            let (p, id) = self.secret(reference, algorithm, Use::Make, &mut shown)?;
            let failed = |error| KeyError::Provider { provider: p.descriptor().name.clone(), error };
            let encryption = p.encryption().ok_or_else(|| failed(lacks(p.as_ref(), Capability::Encryption)))?;
            let sealed = encryption.encrypt(&id, plaintext, aad).map_err(failed)?;
            Ok((sealed.value, p.descriptor().name.clone(), origin_of(p.as_ref(), sealed.device)))
        })();
        let (sealed, provider, _) = self.audited("encrypt", &shown, algorithm, &audit, result)?;
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
        let mut shown = reference.clone();
        let result = (|| {
            let (p, id) = self.secret(reference, algorithm, Use::Read, &mut shown)?;
            let failed = |error| KeyError::Provider { provider: p.descriptor().name.clone(), error };
            let encryption = p.encryption().ok_or_else(|| failed(lacks(p.as_ref(), Capability::Encryption)))?;
            let plain = encryption.decrypt(&id, nonce, ciphertext, aad).map_err(failed)?;
            Ok((plain.value, p.descriptor().name.clone(), origin_of(p.as_ref(), plain.device)))
        })();
        let (plain, provider, _) = self.audited("decrypt", &shown, algorithm, &audit, result)?;
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
        let service = KeyService::new(&registry, &log, 0).expect("log opens");
        let key = KeyRef::parse("fk:signer").expect("reference");
        let input = AuditInput::whole(&[1; 32]).with_digest("SHA-256", &[2; 32]);
        let err = service.sign(&key, "ES256", SignInput::Digest(&[2; 32]), &input, SigFormat::Der).expect_err("fails");
        assert!(matches!(err, KeyError::Provider { ref provider, .. } if provider == "vault"), "{err}");
        let text = std::fs::read_to_string(&log).expect("a line");
        let line: serde_json::Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
        assert_eq!(line["operation"], "sign");
        assert_eq!(line["key"], "fk:signer");
        assert_eq!(line["provider"], "vault");
        assert!(line["outcome"].as_str().expect("outcome").starts_with("error: "), "{line}");
        assert_eq!(line["signed_digest"]["hex"], hex::encode([2; 32]));
        assert_eq!(line["input_sha256"], hex::encode([1; 32]));
    }
}
