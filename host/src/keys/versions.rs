//! Key versions: making a version (`generate`'s version 1, `rotate`'s next, staged) and the
//! steps between states (promote, retire, destroy), under the key-state file's lock, each
//! audited. Which version a use means, and the binding check, are in the parent.

use super::*;

/// A version just made, and what the key-state file records about it.
pub(super) struct Made {
    pub(super) spki: Vec<u8>,
    pub(super) provider: String,
    pub(super) origin: KeyOrigin,
    pub(super) entry: VersionEntry,
}

/// A rotation's result: the new (staged) version.
#[derive(Debug)]
pub struct Rotated {
    pub key: String,
    pub version: u32,
    /// Its public key (empty for a secret key).
    pub spki: Vec<u8>,
    pub entry: VersionEntry,
}

/// A change of one version's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Promote,
    Retire,
    Destroy,
}

impl Step {
    pub fn operation(self) -> &'static str {
        match self {
            Step::Promote => "promote",
            Step::Retire => "retire",
            Step::Destroy => "destroy",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Step::Promote => "promoted",
            Step::Retire => "retired",
            Step::Destroy => "destroyed",
        }
    }

    fn to(self) -> VersionState {
        match self {
            Step::Promote => VersionState::Current,
            Step::Retire => VersionState::Retired,
            Step::Destroy => VersionState::Destroyed,
        }
    }
}

impl KeyService<'_> {
    /// Makes version `version` of the key `base` on its provider (non-extractable; on a token,
    /// under the version's label) and describes it for the key-state file, as `current`.
    pub(super) fn make_version(
        &self,
        base: &KeyRef,
        version: u32,
        algorithm: &str,
        rsa_bits: u32,
    ) -> Result<Made, KeyError> {
        let secret = crate::alg::aead(algorithm).is_some();
        let at = provider_reference(base, version)
            .map_err(|message| KeyError::Version { key: base.to_string(), message })?;
        let (prefix, name) = Self::namespace(&at)?;
        let key = if secret {
            Self::held(self.registry.named_secret(prefix, &name, algorithm, true), base)?
        } else {
            Self::held(self.registry.named_key(prefix, &name, algorithm, rsa_bits, true), base)?
        };
        self.describe(key.provider.as_ref(), &key.id, version, algorithm, secret, crate::audit::now_rfc3339())
    }

    /// What the key-state file records about a version held as `id`.
    fn describe(
        &self,
        p: &dyn CryptoProvider,
        id: &KeyId,
        version: u32,
        algorithm: &str,
        secret: bool,
        created: String,
    ) -> Result<Made, KeyError> {
        let provider = p.descriptor().name.clone();
        let failed = |error| KeyError::Provider { provider: provider.clone(), error };
        let spki = if secret {
            Vec::new()
        } else {
            p.signing().ok_or_else(|| failed(lacks(p, Capability::Signing)))?.public_key(id).map_err(failed)?
        };
        let location = p.key_location(id, secret).map_err(failed)?;
        let entry = VersionEntry {
            version,
            state: VersionState::Current,
            algorithm: algorithm.to_string(),
            changed: created.clone(),
            created,
            adopted: false,
            provider: provider.clone(),
            spki_sha256: (!secret).then(|| crate::lifecycle::fingerprint(&spki)),
            token_serial: location.as_ref().map(|l| l.token_serial.clone()),
            cka_id: location.as_ref().map(|l| hex::encode(&l.cka_id)),
        };
        Ok(Made { spki, provider, origin: origin_of(p, None), entry })
    }

    fn states_required(&self) -> Result<&Arc<KeyStates>, KeyError> {
        self.states
            .as_ref()
            .ok_or_else(|| KeyError::Input("key versions need the key-state file (a [state] dir)".into()))
    }

    /// Makes the next version of a held key, **staged**: it is used for nothing until
    /// promoted. A key with no recorded versions is first recorded as version 1 (adopted: its
    /// creation time unknown). `algorithm` defaults to the current version's.
    ///
    /// # Errors
    /// A file or versioned reference, no algorithm known, the provider refuses, or the audit
    /// log or key-state file fails.
    pub fn rotate(&self, reference: &KeyRef, algorithm: Option<&str>, rsa_bits: u32) -> Result<Rotated, KeyError> {
        let base = reference.at_version(None);
        let key = base.to_string();
        let mut shown = base.clone();
        let mut alg_used = algorithm.unwrap_or_default().to_string();
        let result = (|| {
            if !reference.is_held() {
                return Err(KeyError::Reference {
                    reference: key.clone(),
                    message: "a key file has no versions".into(),
                });
            }
            if reference.version().is_some() {
                return Err(KeyError::Version {
                    key: key.clone(),
                    message: "rotate the key, not one of its versions (drop x-version)".into(),
                });
            }
            let states = self.states_required()?;
            states.update(|f| {
                let now = crate::audit::now_rfc3339();
                if f.entry(&key).is_none() {
                    // Version 1, from before versions were recorded: bound now.
                    let alg = algorithm.ok_or_else(|| KeyError::Version {
                        key: key.clone(),
                        message: "has no recorded versions yet: give its algorithm (--alg) for the first rotation"
                            .into(),
                    })?;
                    let secret = crate::alg::aead(alg).is_some();
                    if let KeyRef::Named { name, .. }
                    | KeyRef::Pkcs11(crate::keyref::Pkcs11Uri { object: Some(name), .. }) = &base
                        && names_a_version(name)
                    {
                        return Err(KeyError::Reference {
                            reference: key.clone(),
                            message: "names a key version by its own name: rotate the key itself".into(),
                        });
                    }
                    let (prefix, name) = Self::namespace(&base)?;
                    let held = if secret {
                        Self::held(self.registry.named_secret(prefix, &name, alg, false), &base)?
                    } else {
                        Self::held(self.registry.named_key(prefix, &name, alg, rsa_bits, false), &base)?
                    };
                    let mut made = self.describe(held.provider.as_ref(), &held.id, 1, alg, secret, now.clone())?;
                    made.entry.adopted = true;
                    f.keys.push(crate::lifecycle::KeyEntry { key: key.clone(), versions: vec![made.entry] });
                }
                let entry = f.entry(&key).cloned().ok_or_else(|| KeyError::Input("lost the entry".into()))?;
                let alg = match algorithm {
                    Some(a) => a.to_string(),
                    None => entry.current().or(entry.versions.last()).map(|v| v.algorithm.clone()).unwrap_or_default(),
                };
                alg_used.clone_from(&alg);
                let next = entry.next_version();
                if next > crate::keyref::MAX_VERSION {
                    return Err(KeyError::Version {
                        key: key.clone(),
                        message: format!("has reached version {}", crate::keyref::MAX_VERSION),
                    });
                }
                if let Some(c) = entry.current()
                    && (crate::alg::aead(&alg).is_some()) != (crate::alg::aead(&c.algorithm).is_some())
                {
                    return Err(KeyError::Version {
                        key: key.clone(),
                        message: format!("is a {} key; its next version cannot be {alg}", c.algorithm),
                    });
                }
                self.registry.policy().generate(&alg, rsa_bits)?;
                let mut made = self.make_version(&base, next, &alg, rsa_bits)?;
                made.entry.state = VersionState::Staged;
                shown = base.at_version(Some(next));
                let e = f.entry_mut(&key).ok_or_else(|| KeyError::Input("lost the entry".into()))?;
                e.versions.push(made.entry.clone());
                Ok((
                    Rotated { key: key.clone(), version: next, spki: made.spki, entry: made.entry },
                    made.provider,
                    made.origin,
                ))
            })
        })();
        let (rotated, _, _) = self.audited("rotate", &shown, &alg_used, &AuditInput::none(), result)?;
        // A rotation is a moment to pin the log: a checkpoint now.
        self.audit.want_checkpoint();
        self.checkpoint_if_due()?;
        Ok(rotated)
    }

    /// Changes the state of one version under the key-state file's lock: `promote` (the version
    /// becomes current, the current one retired), `retire` (a staged version; never the current
    /// one), `destroy` (its objects destroyed on the device; never the current version). Every
    /// step is audited.
    ///
    /// # Errors
    /// The key has no such version, the step does not fit its state, the provider refuses to
    /// destroy, or the audit log or key-state file fails.
    pub fn change_state(&self, reference: &KeyRef, version: u32, step: Step) -> Result<VersionEntry, KeyError> {
        let base = reference.at_version(None);
        let key = base.to_string();
        let shown = base.at_version(Some(version));
        let mut algorithm = String::new();
        let result = (|| {
            let states = self.states_required()?;
            let refused = |message: String| KeyError::Version { key: key.clone(), message };
            states.update(|f| {
                let entry = f
                    .entry(&key)
                    .cloned()
                    .ok_or_else(|| refused("has no recorded versions (it was never rotated)".into()))?;
                let v = entry.version(version).cloned().ok_or_else(|| refused(format!("has no version {version}")))?;
                algorithm.clone_from(&v.algorithm);
                let now = crate::audit::now_rfc3339();
                let e = f.entry_mut(&key).ok_or_else(|| refused("lost its entry".into()))?;
                match (step, v.state) {
                    (Step::Promote, VersionState::Staged | VersionState::Retired) => {
                        for other in &mut e.versions {
                            if other.state == VersionState::Current {
                                other.state = VersionState::Retired;
                                other.changed.clone_from(&now);
                            }
                        }
                    }
                    (Step::Retire, VersionState::Staged) => {}
                    (Step::Retire, VersionState::Current) => {
                        return Err(refused(format!(
                            "version {version} is current: promote another version first (it then retires this one)"
                        )));
                    }
                    (Step::Destroy, VersionState::Current) => {
                        return Err(refused(format!(
                            "version {version} is current and is never destroyed: promote another version first"
                        )));
                    }
                    (Step::Destroy, VersionState::Staged | VersionState::Retired) => {
                        let at = provider_reference(&base, version).map_err(refused)?;
                        let (prefix, name) = Self::namespace(&at)?;
                        let secret = crate::alg::aead(&v.algorithm).is_some();
                        let held = if secret {
                            Self::held(self.registry.named_secret(prefix, &name, &v.algorithm, false), &base)
                        } else {
                            Self::held(self.registry.named_key(prefix, &name, &v.algorithm, 0, false), &base)
                        };
                        // A key already gone from the device is recorded as destroyed all the same.
                        if let Ok(held) = held {
                            held.provider.destroy_key(&held.id, secret).map_err(|error| KeyError::Provider {
                                provider: held.provider.descriptor().name.clone(),
                                error,
                            })?;
                        }
                    }
                    (_, state) => {
                        return Err(refused(format!(
                            "version {version} is {}: it cannot be {}",
                            state.name(),
                            step.past()
                        )));
                    }
                }
                let target = e.version_mut(version).ok_or_else(|| refused(format!("has no version {version}")))?;
                target.state = step.to();
                target.changed = now;
                let provider = target.provider.clone();
                Ok((target.clone(), provider, KeyOrigin::None))
            })
        })();
        let (entry, _, _) = self.audited(step.operation(), &shown, &algorithm, &AuditInput::none(), result)?;
        Ok(entry)
    }
}

/// The reference a provider knows version `version` of `base` by: the key's own name for
/// version 1, else its versioned name ([`versioned_name`]). A token key's later versions are
/// found by label alone (their `CKA_ID` is derived from that label when they are made).
pub(super) fn provider_reference(base: &KeyRef, version: u32) -> Result<KeyRef, String> {
    if version <= 1 {
        return Ok(base.clone());
    }
    match base {
        KeyRef::Named { prefix, name, .. } => {
            Ok(KeyRef::Named { prefix: prefix.clone(), name: versioned_name(name, version), version: None })
        }
        KeyRef::Pkcs11(u) => {
            let label = u.object.as_ref().ok_or_else(|| {
                "names its key by id= alone: versions are named by label, so give object= (the label) as well"
                    .to_string()
            })?;
            Ok(KeyRef::Pkcs11(crate::keyref::Pkcs11Uri {
                object: Some(versioned_name(label, version)),
                id: None,
                version: None,
                ..u.clone()
            }))
        }
        KeyRef::File(_) => Err("a key file has no versions".into()),
    }
}
