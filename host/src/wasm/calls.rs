//! `CryptoProvider` for a component: each capability's methods as one guest call under the
//! call limits, on a pooled instance (or the instance that holds the key), and the verifier
//! resources a guest opens.

use std::io::Read;

use wasmtime::component::ResourceAny;
use zeroize::Zeroizing;

use super::*;

/// The signing or encryption interface of a live instance; a component whose world has none
/// answers `unsupported` from inside the call closure.
macro_rules! iface {
    ($live:expr, $which:ident) => {
        match $live.bindings.$which() {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl CryptoProvider for WasmProvider {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn stats(&self) -> ProviderStats {
        let instances = self.slots.iter().filter(|s| s.generation.load(Ordering::Acquire) != 0).count();
        let busy = self.slots.iter().filter(|s| s.live.try_lock().is_err()).count();
        ProviderStats {
            instances,
            busy,
            waits: self.waits.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            reconnects: 0,
        }
    }

    fn hashing(&self) -> Option<&dyn Hashing> {
        Some(self)
    }

    fn verification(&self) -> Option<&dyn Verification> {
        Some(self)
    }

    /// Only a component whose world holds keys (its exports decided it when it was admitted).
    fn signing(&self) -> Option<&dyn Signing> {
        self.offers(Capability::Signing).then_some(self as &dyn Signing)
    }

    fn encryption(&self) -> Option<&dyn Encryption> {
        self.offers(Capability::Encryption).then_some(self as &dyn Encryption)
    }
}

impl WasmProvider {
    fn offers(&self, capability: Capability) -> bool {
        self.descriptor.world.is_some_and(|w| w.allows(capability))
    }
}

impl Hashing for WasmProvider {
    fn digest(&self, algorithm: &str, data: &[u8]) -> Result<Vec<u8>, ProviderError> {
        self.fits("data to hash in one call", data.len())?;
        self.call(|live| live.bindings.hashing.call_digest(&mut live.store, algorithm, data))
    }

    fn digest_reader(&self, algorithm: &str, reader: &mut dyn Read) -> Result<Vec<u8>, ProviderError> {
        let timeout = self.shared.limits.call_timeout;
        let (hasher, generation) =
            self.with_live(None, timeout, |live| live.bindings.hashing.call_open_hasher(&mut live.store, algorithm))?;
        let hasher = hasher?;
        let mut buf = vec![0u8; STREAM_CHUNK];
        let result = loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(ProviderError::InvalidInput(format!("reading input: {e}"))),
            };
            // Each chunk is its own call with its own deadline, so a large file is fine.
            if let Err(e) = self.with_live(Some(generation), timeout, |live| {
                live.bindings.hashing.hasher().call_update(&mut live.store, hasher, &buf[..n])
            }) {
                break Err(e);
            }
        };
        let finished = match result {
            Ok(()) => self
                .with_live(Some(generation), timeout, |live| {
                    live.bindings.hashing.hasher().call_finish(&mut live.store, hasher)
                })
                .map(|(r, _)| r),
            Err(e) => Err(e),
        };
        self.on_instance(generation, |live| {
            let _ = hasher.resource_drop(&mut live.store);
        });
        finished?.map_err(Into::into)
    }
}

impl Verification for WasmProvider {
    fn open_verifier(&self, algorithm: &str, spki_der: &[u8]) -> Result<Box<dyn Verifier + '_>, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            live.bindings.verification.call_open_verifier(&mut live.store, algorithm, spki_der)
        })?;
        let resource = r?;
        Ok(Box::new(WasmVerifier { provider: self, resource, generation }))
    }

    fn verify_once(
        &self,
        algorithm: &str,
        spki_der: &[u8],
        input: SignInput<'_>,
        signature: &[u8],
        format: SigFormat,
    ) -> Result<bool, ProviderError> {
        if let SignInput::Message(m) = input {
            self.fits("a message to verify whole", m.len())?;
        }
        let key: [u8; 32] = Sha256::digest(spki_der).into();
        let (r, _) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            let cached = live.verifiers.iter().position(|((a, k), _)| a == algorithm && *k == key);
            let resource = match cached {
                Some(i) => {
                    // Most recently used moves to the end.
                    let entry = live.verifiers.remove(i);
                    let r = entry.1;
                    live.verifiers.push(entry);
                    r
                }
                None => {
                    let opened = live.bindings.verification.call_open_verifier(&mut live.store, algorithm, spki_der)?;
                    let r = match opened {
                        Ok(r) => r,
                        Err(e) => return Ok(Err(e)),
                    };
                    if live.verifiers.len() >= VERIFIER_CACHE {
                        let (_, old) = live.verifiers.remove(0);
                        let _ = old.resource_drop(&mut live.store);
                    }
                    live.verifiers.push(((algorithm.to_string(), key), r));
                    r
                }
            };
            let v = live.bindings.verification.verifier();
            match input {
                SignInput::Message(m) => v.call_verify(&mut live.store, resource, m, signature, format.into()),
                SignInput::Digest(d) => v.call_verify_digest(&mut live.store, resource, d, signature, format.into()),
            }
        })?;
        r.map_err(Into::into)
    }
}

impl Signing for WasmProvider {
    fn import_pkcs8(&self, pkcs8_der: &[u8]) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            iface!(live, signing).call_import_pkcs8(&mut live.store, pkcs8_der)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn generate(&self, algorithm: &str, rsa_bits: u32, exportable: bool) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.keygen_timeout, |live| {
            iface!(live, signing).call_generate(&mut live.store, algorithm, rsa_bits, exportable)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn public_key(&self, key: &KeyId) -> Result<Vec<u8>, ProviderError> {
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            iface!(live, signing).call_public_key(&mut live.store, id)
        })?;
        r.map_err(Into::into)
    }

    fn export_pkcs8(&self, key: &KeyId) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            iface!(live, signing).call_export_pkcs8(&mut live.store, id)
        })?;
        r.map(Zeroizing::new).map_err(Into::into)
    }

    fn sign(
        &self,
        key: &KeyId,
        algorithm: &str,
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<OnDevice<Vec<u8>>, ProviderError> {
        if let SignInput::Message(m) = input {
            self.fits(&format!("a message to sign whole ({algorithm})"), m.len())?;
        }
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            let s = iface!(live, signing);
            match input {
                SignInput::Message(m) => s.call_sign(&mut live.store, id, algorithm, m, format.into()),
                SignInput::Digest(d) => s.call_sign_digest(&mut live.store, id, algorithm, d, format.into()),
            }
        })?;
        r.map(OnDevice::one).map_err(Into::into)
    }

    fn named_key(&self, name: &str, algorithm: &str, rsa_bits: u32, create: bool) -> Result<KeyId, ProviderError> {
        let timeout = if create { self.shared.limits.keygen_timeout } else { self.shared.limits.call_timeout };
        // A seeded simulation derives (generates) the key even when `create` is false.
        let timeout = timeout.max(self.shared.limits.keygen_timeout);
        let (r, generation) = self.with_live(None, timeout, |live| {
            iface!(live, signing).call_named_key(&mut live.store, name, algorithm, rsa_bits, create)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn delete_key(&self, key: &KeyId) {
        let Ok((generation, id)) = split_key(key) else { return };
        // A reset instance already forgot the key with everything else.
        let _ =
            self.with_live(Some(generation), self.shared.limits.call_timeout, |live| match live.bindings.signing() {
                Ok(sig) => sig.call_delete_key(&mut live.store, id),
                Err(_) => Ok(()),
            });
    }
}

impl Encryption for WasmProvider {
    fn named_secret(&self, name: &str, algorithm: &str, create: bool) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            iface!(live, encryption).call_named_secret(&mut live.store, name, algorithm, create)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn import_secret(&self, algorithm: &str, key: &[u8]) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            iface!(live, encryption).call_import_secret(&mut live.store, algorithm, key)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn encrypt(&self, key: &KeyId, plaintext: &[u8], aad: &[u8]) -> Result<OnDevice<Sealed>, ProviderError> {
        self.fits("plaintext plus AAD", plaintext.len().saturating_add(aad.len()))?;
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            iface!(live, encryption).call_encrypt(&mut live.store, id, plaintext, aad)
        })?;
        let sealed = r?;
        Ok(OnDevice::one(Sealed { nonce: sealed.nonce, ciphertext: sealed.ciphertext }))
    }

    fn decrypt(
        &self,
        key: &KeyId,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<OnDevice<Zeroizing<Vec<u8>>>, ProviderError> {
        self.fits("ciphertext plus AAD", ciphertext.len().saturating_add(aad.len()))?;
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            iface!(live, encryption).call_decrypt(&mut live.store, id, nonce, ciphertext, aad)
        })?;
        r.map(|p| OnDevice::one(Zeroizing::new(p))).map_err(Into::into)
    }
}

/// A verifier resource inside a guest instance.
struct WasmVerifier<'a> {
    provider: &'a WasmProvider,
    resource: ResourceAny,
    generation: u64,
}

impl Verifier for WasmVerifier<'_> {
    fn verify(&self, input: SignInput<'_>, signature: &[u8], format: SigFormat) -> Result<bool, ProviderError> {
        let p = self.provider;
        if let SignInput::Message(m) = input {
            p.fits("a message to verify whole", m.len())?;
        }
        let (r, _) = p.with_live(Some(self.generation), p.shared.limits.call_timeout, |live| {
            let v = live.bindings.verification.verifier();
            match input {
                SignInput::Message(m) => v.call_verify(&mut live.store, self.resource, m, signature, format.into()),
                SignInput::Digest(d) => {
                    v.call_verify_digest(&mut live.store, self.resource, d, signature, format.into())
                }
            }
        })?;
        r.map_err(Into::into)
    }
}

impl Drop for WasmVerifier<'_> {
    fn drop(&mut self) {
        let resource = self.resource;
        self.provider.on_instance(self.generation, |live| {
            let _ = resource.resource_drop(&mut live.store);
        });
    }
}
