//! Picks a provider for (capability, algorithm) by priority, falls back on `unsupported` or a
//! fault, and reports which provider served each call.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::alg;
use crate::config::{Config, Manifest};
use crate::error::{LoadError, ProviderError, RegistryError};
use crate::fsio;
use crate::pkcs11::Pkcs11Provider;
use crate::provider::{Capability, CryptoProvider, SigFormat, SignInput};
use crate::wasm::{Runtime, Trust};

/// A result and the provider that produced it.
pub struct Served<T> {
    pub value: T,
    pub provider: Arc<dyn CryptoProvider>,
    /// Providers asked first that answered `unsupported` or faulted.
    pub skipped: Vec<(String, ProviderError)>,
}

impl<T> Served<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Served<U> {
        Served { value: f(self.value), provider: self.provider, skipped: self.skipped }
    }
}

/// A freshly generated key pair.
pub struct GeneratedKey {
    pub pkcs8_der: Zeroizing<Vec<u8>>,
    pub spki_der: Vec<u8>,
}

/// All loaded providers, highest priority first.
pub struct Registry {
    providers: Vec<Arc<dyn CryptoProvider>>,
    /// Key reference prefixes (`sim` in `sim:NAME`) and the provider that holds those keys.
    prefixes: Vec<(String, Arc<dyn CryptoProvider>)>,
    hsm: Option<Arc<Pkcs11Provider>>,
    // Declared last: providers hold instances of this runtime's engine.
    _runtime: Option<Runtime>,
}

/// How `Registry::open` decides which component bytes to trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustMode {
    /// Every provider's `sha256` in the config must match (production).
    Pins,
    /// `--dev`: trust `manifest.json` in the component directory instead of pins.
    DevManifest,
}

impl Registry {
    /// A registry over the given providers (sorted here: higher priority first; equal
    /// priorities keep their given order).
    pub fn new(mut providers: Vec<Arc<dyn CryptoProvider>>) -> Registry {
        providers.sort_by_key(|p| std::cmp::Reverse(p.descriptor().priority));
        Registry { providers, prefixes: Vec::new(), hsm: None, _runtime: None }
    }

    /// Loads every provider the configuration names (and nothing else in the directory).
    ///
    /// # Errors
    /// A component is missing, does not match its pin (or the manifest in dev mode), is not
    /// a valid provider, or the configuration leaves a provider unpinned outside dev mode.
    pub fn open(config: &Config, trust: TrustMode) -> Result<Registry, LoadError> {
        let runtime = Runtime::new(config.limits.clone(), config.cache.clone())?;
        let manifest = match trust {
            TrustMode::Pins => None,
            TrustMode::DevManifest => Some(Manifest::load(&config.component_dir.join("manifest.json"))?),
        };
        let mut providers: Vec<Arc<dyn CryptoProvider>> = Vec::new();
        let mut prefixes = Vec::new();
        for p in &config.providers {
            let file = config.component_dir.join(&p.component);
            let trust = match (&manifest, &p.sha256) {
                (None, Some(pin)) => Trust::Pinned(pin.clone()),
                (None, None) => {
                    return Err(LoadError::Config {
                        path: config.path.clone(),
                        message: format!(
                            "provider {:?} has no sha256 pin; review the build and run `just pin`, or start with --dev",
                            p.name
                        ),
                    });
                }
                (Some(m), pin) => {
                    let name = p.component.to_string_lossy();
                    let entry = m.entry_for_file(&name).ok_or_else(|| LoadError::Component {
                        file: file.clone(),
                        message: "not listed in manifest.json (dev mode trusts only the manifest)".into(),
                    })?;
                    if pin.as_ref().is_some_and(|pin| *pin != entry.sha256) {
                        log::warn!(
                            "dev mode: provider {} is pinned to a different digest than the manifest; using the manifest",
                            p.name
                        );
                    }
                    Trust::Manifest(entry.sha256.clone())
                }
            };
            let settings = p.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let provider: Arc<dyn CryptoProvider> =
                Arc::new(runtime.load(&p.name, &file, &trust, p.priority, settings)?);
            if let Some(prefix) = &p.key_prefix {
                prefixes.push((prefix.clone(), provider.clone()));
            }
            providers.push(provider);
        }
        // The HSM connects lazily, on its first key operation: verification never needs it.
        let hsm = config.hsm.clone().map(|h| Arc::new(Pkcs11Provider::new(h)));
        if let Some(h) = &hsm {
            providers.push(h.clone());
        }
        let mut registry = Registry::new(providers);
        registry.prefixes = prefixes;
        registry.hsm = hsm;
        registry._runtime = Some(runtime);
        Ok(registry)
    }

    /// Every provider, highest priority first.
    pub fn providers(&self) -> &[Arc<dyn CryptoProvider>] {
        &self.providers
    }

    /// The provider that holds keys named `PREFIX:NAME`.
    pub fn by_prefix(&self, prefix: &str) -> Option<&Arc<dyn CryptoProvider>> {
        self.prefixes.iter().find(|(p, _)| p == prefix).map(|(_, provider)| provider)
    }

    /// The PKCS#11 backend, when configured.
    pub fn hsm(&self) -> Option<&Arc<Pkcs11Provider>> {
        self.hsm.as_ref()
    }

    /// A provider by its configured name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn CryptoProvider>> {
        self.providers.iter().find(|p| p.descriptor().name == name)
    }

    /// Runs `f` on the highest-priority provider that offers `algorithm` for `capability`,
    /// then on the next ones while they answer `unsupported` or fault.
    ///
    /// # Errors
    /// No provider offers it (listing what each answered), or the serving provider refused
    /// for a reason that another provider would not change (bad key, bad input).
    pub fn serve<T>(
        &self,
        capability: Capability,
        algorithm: &str,
        f: impl FnMut(&dyn CryptoProvider, &str) -> Result<T, ProviderError>,
    ) -> Result<Served<T>, RegistryError> {
        self.serve_with(capability, algorithm, ProviderError::falls_back, f)
    }

    /// As [`Registry::serve`], for an operation that hands a provider key material: it moves
    /// on to the next provider only when one answers `unsupported`. After a fault the key may
    /// have been half-used in a sandbox that just misbehaved; it is never sent to a second one.
    ///
    /// # Errors
    /// As [`Registry::serve`]; a fault is returned, not retried elsewhere.
    pub fn serve_keyed<T>(
        &self,
        capability: Capability,
        algorithm: &str,
        f: impl FnMut(&dyn CryptoProvider, &str) -> Result<T, ProviderError>,
    ) -> Result<Served<T>, RegistryError> {
        self.serve_with(capability, algorithm, |e| matches!(e, ProviderError::Unsupported(_)), f)
    }

    fn serve_with<T>(
        &self,
        capability: Capability,
        algorithm: &str,
        falls_back: impl Fn(&ProviderError) -> bool,
        mut f: impl FnMut(&dyn CryptoProvider, &str) -> Result<T, ProviderError>,
    ) -> Result<Served<T>, RegistryError> {
        let algorithm = alg::canonical(capability, algorithm);
        let mut skipped = Vec::new();
        for p in &self.providers {
            if !p.descriptor().supports(capability, &algorithm) {
                continue;
            }
            match f(p.as_ref(), &algorithm) {
                Ok(value) => return Ok(Served { value, provider: p.clone(), skipped }),
                Err(e) if falls_back(&e) => skipped.push((p.descriptor().name.clone(), e)),
                Err(error) => return Err(RegistryError::Provider { provider: p.descriptor().name.clone(), error }),
            }
        }
        Err(RegistryError::NoProvider { capability: capability.to_string(), algorithm, tried: skipped })
    }

    /// One-shot digest.
    ///
    /// # Errors
    /// As [`Registry::serve`].
    pub fn digest(&self, algorithm: &str, data: &[u8]) -> Result<Served<Vec<u8>>, RegistryError> {
        self.serve(Capability::Hashing, algorithm, |p, a| p.digest(a, data))
    }

    /// Streams a file through the serving provider's incremental hash (never all in memory).
    /// The file must be a regular file (a fifo or `/dev/zero` would never end).
    ///
    /// # Errors
    /// The file cannot be opened or is not a regular file, or as [`Registry::serve`].
    pub fn digest_file(&self, algorithm: &str, path: &Path) -> Result<Served<Vec<u8>>, RegistryError> {
        let file = fsio::open_regular(path, "input").map_err(|e| RegistryError::Input(e.to_string()))?;
        self.digest_open_file(algorithm, &file, None)
    }

    /// Streams an open file through the serving provider's incremental hash. With `audit`, the
    /// same bytes also go through a native SHA-256 (what the audit log records), so both
    /// digests come from one read of one open file. A provider that faults halfway is retried
    /// on the next from the start of the file, with `audit` reset.
    ///
    /// # Errors
    /// A read or seek fails, or as [`Registry::serve`].
    pub fn digest_open_file(
        &self,
        algorithm: &str,
        file: &File,
        mut audit: Option<&mut Sha256>,
    ) -> Result<Served<Vec<u8>>, RegistryError> {
        self.serve(Capability::Hashing, algorithm, |p, a| {
            let mut f = file;
            f.seek(SeekFrom::Start(0)).map_err(|e| ProviderError::InvalidInput(format!("rewinding input: {e}")))?;
            let audit = audit.as_deref_mut();
            let mut tee = Tee { inner: f, audit };
            if let Some(h) = tee.audit.as_deref_mut() {
                *h = Sha256::new();
            }
            p.digest_reader(a, &mut tee)
        })
    }

    /// Verifies a signature with an ephemeral verifier from `spki_der`.
    ///
    /// # Errors
    /// As [`Registry::serve`]; a signature that does not verify is `Ok(false)`, not an error.
    pub fn verify(
        &self,
        algorithm: &str,
        spki_der: &[u8],
        input: SignInput<'_>,
        signature: &[u8],
        format: SigFormat,
    ) -> Result<Served<bool>, RegistryError> {
        self.serve(Capability::Verification, algorithm, |p, a| {
            p.open_verifier(a, spki_der)?.verify(input, signature, format)
        })
    }

    /// Hashes a file (streamed, through a hashing provider) and verifies the signature over
    /// the digest. Returns the verification result and the provider that hashed.
    ///
    /// # Errors
    /// Unknown algorithm, unreadable file, or as [`Registry::verify`].
    pub fn verify_file(
        &self,
        algorithm: &str,
        spki_der: &[u8],
        path: &Path,
        signature: &[u8],
        format: SigFormat,
    ) -> Result<(Served<bool>, Served<Vec<u8>>), RegistryError> {
        let hash = self.signature_hash(algorithm, Capability::Verification)?;
        let digest = self.digest_file(hash, path)?;
        let verified = self.verify(algorithm, spki_der, SignInput::Digest(&digest.value), signature, format)?;
        Ok((verified, digest))
    }

    /// Imports a PKCS#8 key into the serving signing provider and signs with it.
    ///
    /// # Errors
    /// As [`Registry::serve`].
    pub fn sign_with_pkcs8(
        &self,
        algorithm: &str,
        pkcs8_der: &[u8],
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<Served<Vec<u8>>, RegistryError> {
        self.serve_keyed(Capability::Signing, algorithm, |p, a| {
            let key = p.import_pkcs8(pkcs8_der)?;
            let signed = p.sign(&key, a, input, format);
            // Imported for this one signature: the provider forgets it now.
            p.delete_key(&key);
            signed
        })
    }

    /// Generates an exportable key pair in the serving signing provider.
    ///
    /// # Errors
    /// As [`Registry::serve`].
    pub fn generate_exportable(&self, algorithm: &str, rsa_bits: u32) -> Result<Served<GeneratedKey>, RegistryError> {
        self.serve_keyed(Capability::Signing, algorithm, |p, a| {
            let key = p.generate(a, rsa_bits, true)?;
            let pair = (|| Ok(GeneratedKey { pkcs8_der: p.export_pkcs8(&key)?, spki_der: p.public_key(&key)? }))();
            // The key leaves as a file; the copy in the provider goes.
            p.delete_key(&key);
            pair
        })
    }

    /// The hash of a signature algorithm, or an error naming the algorithm.
    ///
    /// # Errors
    /// The algorithm is not a known JOSE signature algorithm.
    pub fn signature_hash(&self, algorithm: &str, capability: Capability) -> Result<&'static str, RegistryError> {
        alg::signature_hash(algorithm).ok_or_else(|| RegistryError::NoProvider {
            capability: capability.to_string(),
            algorithm: algorithm.to_string(),
            tried: Vec::new(),
        })
    }
}

/// A reader that also feeds every byte it reads to an optional SHA-256.
struct Tee<'a, R> {
    inner: R,
    audit: Option<&'a mut Sha256>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.audit.as_deref_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
