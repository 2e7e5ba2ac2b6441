//! Picks a provider for (capability, algorithm) by priority, falls back on `unsupported` or a
//! fault, and reports which provider served each call.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::alg;
use crate::error::{ProviderError, RegistryError};
use crate::fsio;
use crate::policy::Policy;
use crate::provider::{Capability, CryptoProvider, KeyId, SigFormat, SignInput};

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

/// A key held inside a provider (the HSM, the simulation), and its handle there.
pub struct HeldKey {
    pub provider: Arc<dyn CryptoProvider>,
    pub id: KeyId,
}

/// A freshly generated key pair.
pub struct GeneratedKey {
    pub pkcs8_der: Zeroizing<Vec<u8>>,
    pub spki_der: Vec<u8>,
}

/// All loaded providers, highest priority first. The registry knows providers only through
/// the [`CryptoProvider`] trait; what backs each one (a component, the HSM) is the loader's
/// business (`crate::load`).
pub struct Registry {
    providers: Vec<Arc<dyn CryptoProvider>>,
    /// Key namespaces (`sim` in `sim:NAME`, `pkcs11` for PKCS#11 URIs) and the provider that
    /// holds those keys.
    prefixes: Vec<(String, Arc<dyn CryptoProvider>)>,
    /// Calls it routed, by (provider, capability, algorithm, outcome).
    calls: std::sync::Mutex<std::collections::BTreeMap<CallKey, u64>>,
    /// The deployment policy every routed signing, verification and encryption obeys.
    policy: Arc<Policy>,
}

/// (provider, capability, algorithm, outcome): what [`Registry::calls`] counts.
pub type CallKey = (String, &'static str, String, &'static str);

/// How a routed call ended for one provider.
fn outcome(result: &Result<(), &ProviderError>, fell_back: bool) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(_) if fell_back => "fell_back",
        Err(ProviderError::Fault(_)) => "fault",
        Err(_) => "refused",
    }
}

impl Registry {
    /// A registry over the given providers (sorted here: higher priority first; equal
    /// priorities keep their given order).
    pub fn new(providers: Vec<Arc<dyn CryptoProvider>>) -> Registry {
        Registry::with_namespaces(providers, Vec::new())
    }

    /// As [`Registry::new`], with key namespaces: keys `PREFIX:...` are held by that provider.
    pub fn with_namespaces(
        mut providers: Vec<Arc<dyn CryptoProvider>>,
        prefixes: Vec<(String, Arc<dyn CryptoProvider>)>,
    ) -> Registry {
        providers.sort_by_key(|p| std::cmp::Reverse(p.descriptor().priority));
        Registry { providers, prefixes, calls: std::sync::Mutex::default(), policy: Arc::default() }
    }

    /// The same registry under a deployment policy.
    pub fn with_policy(self, policy: Arc<Policy>) -> Registry {
        Registry { policy, ..self }
    }

    /// The deployment policy it routes under.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// How many calls it routed to each provider, by capability, algorithm and outcome (`ok`,
    /// `fell_back`: unsupported or faulted and the next provider was asked, `fault`, `refused`).
    pub fn calls(&self) -> Vec<(CallKey, u64)> {
        let calls = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        calls.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn count(&self, provider: &dyn CryptoProvider, capability: Capability, algorithm: &str, outcome: &'static str) {
        let key = (provider.descriptor().name.clone(), capability.name(), algorithm.to_string(), outcome);
        *self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default() += 1;
    }

    /// Every provider, highest priority first.
    pub fn providers(&self) -> &[Arc<dyn CryptoProvider>] {
        &self.providers
    }

    /// The provider that holds keys named `PREFIX:NAME`.
    pub fn by_prefix(&self, prefix: &str) -> Option<&Arc<dyn CryptoProvider>> {
        self.prefixes.iter().find(|(p, _)| p == prefix).map(|(_, provider)| provider)
    }

    /// The signing key `name` in the namespace `prefix` (`sim`, `pkcs11`, ...): found, or with
    /// `create` generated (non-exportable) by the provider that holds that namespace.
    ///
    /// # Errors
    /// No provider holds the namespace, or the provider refuses.
    pub fn named_key(
        &self,
        prefix: &str,
        name: &str,
        algorithm: &str,
        rsa_bits: u32,
        create: bool,
    ) -> Result<HeldKey, RegistryError> {
        if create {
            self.policy.generate(algorithm, rsa_bits)?;
        }
        let provider = self.holder(prefix)?;
        let id = provider
            .named_key(name, algorithm, rsa_bits, create)
            .map_err(|error| RegistryError::Provider { provider: provider.descriptor().name.clone(), error })?;
        Ok(HeldKey { provider, id })
    }

    /// The secret (AES) key `name` in the namespace `prefix`, as [`Registry::named_key`].
    ///
    /// # Errors
    /// No provider holds the namespace, or the provider refuses.
    pub fn named_secret(
        &self,
        prefix: &str,
        name: &str,
        algorithm: &str,
        create: bool,
    ) -> Result<HeldKey, RegistryError> {
        if create {
            self.policy.generate(algorithm, 0)?;
        }
        let provider = self.holder(prefix)?;
        let id = provider
            .named_secret(name, algorithm, create)
            .map_err(|error| RegistryError::Provider { provider: provider.descriptor().name.clone(), error })?;
        Ok(HeldKey { provider, id })
    }

    fn holder(&self, prefix: &str) -> Result<Arc<dyn CryptoProvider>, RegistryError> {
        self.by_prefix(prefix).cloned().ok_or_else(|| RegistryError::NoNamespace { prefix: prefix.to_string() })
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

    /// As [`Registry::serve`], moving on to the next provider while `falls_back` says so (a
    /// caller whose input cannot be replayed allows only `unsupported`).
    ///
    /// # Errors
    /// As [`Registry::serve`].
    pub fn serve_with<T>(
        &self,
        capability: Capability,
        algorithm: &str,
        falls_back: impl Fn(&ProviderError) -> bool,
        mut f: impl FnMut(&dyn CryptoProvider, &str) -> Result<T, ProviderError>,
    ) -> Result<Served<T>, RegistryError> {
        let algorithm = alg::canonical(capability, algorithm);
        // Hashing is exempt here: fingerprints and file digests are SHA-256 by their format.
        // A hash a caller names is checked by the request layer, and the hash a signature
        // algorithm uses by the policy's rule for that algorithm.
        if capability != Capability::Hashing {
            self.policy.allows(capability, &algorithm)?;
        }
        let mut skipped = Vec::new();
        for p in &self.providers {
            if !p.descriptor().supports(capability, &algorithm) {
                continue;
            }
            let result = f(p.as_ref(), &algorithm);
            let fell_back = result.as_ref().is_err_and(&falls_back);
            self.count(p.as_ref(), capability, &algorithm, outcome(&result.as_ref().map(|_| ()), fell_back));
            match result {
                Ok(value) => return Ok(Served { value, provider: p.clone(), skipped }),
                Err(e) if fell_back => skipped.push((p.descriptor().name.clone(), e)),
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
    /// The file must be a regular file (a fifo or `/dev/zero` would never end). A provider that
    /// faults halfway is retried on the next from the start of the file.
    ///
    /// # Errors
    /// The file cannot be opened or is not a regular file, a read or seek fails, or as
    /// [`Registry::serve`].
    pub fn digest_file(&self, algorithm: &str, path: &Path) -> Result<Served<Vec<u8>>, RegistryError> {
        let file = fsio::open_regular(path, "input").map_err(|e| RegistryError::Input(e.to_string()))?;
        self.serve(Capability::Hashing, algorithm, |p, a| {
            let mut f = &file;
            f.seek(SeekFrom::Start(0)).map_err(|e| ProviderError::InvalidInput(format!("rewinding input: {e}")))?;
            p.digest_reader(a, &mut f)
        })
    }

    /// Streams a reader that cannot be rewound (a request body) through a hashing provider. It
    /// moves on to another provider only when one answers `unsupported`, which happens before
    /// anything is read; after a fault halfway the stream is gone, so the fault is the answer
    /// (a second provider would hash only the rest).
    ///
    /// # Errors
    /// As [`Registry::serve`]; a fault is returned, not retried.
    pub fn digest_stream(&self, algorithm: &str, reader: &mut dyn Read) -> Result<Served<Vec<u8>>, RegistryError> {
        self.serve_with(
            Capability::Hashing,
            algorithm,
            |e| matches!(e, ProviderError::Unsupported(_)),
            |p, a| p.digest_reader(a, &mut *reader),
        )
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
        self.policy.allows(Capability::Verification, algorithm)?;
        self.policy.public_key(spki_der)?;
        self.serve(Capability::Verification, algorithm, |p, a| p.verify_once(a, spki_der, input, signature, format))
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
        self.policy.generate(algorithm, rsa_bits)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::fake::fake;
    use std::sync::atomic::Ordering;

    fn sign(registry: &Registry) -> Result<Served<Vec<u8>>, RegistryError> {
        registry.sign_with_pkcs8("ES256", b"key", SignInput::Message(b"m"), SigFormat::Der)
    }

    #[test]
    fn an_unsupported_answer_moves_on_to_the_next_provider_and_says_so() {
        let (first, second) =
            (fake("first", 2, Err(ProviderError::Unsupported("no".into()))), fake("second", 1, Ok(vec![7])));
        let registry = Registry::new(vec![second.clone(), first.clone()]);
        let served = sign(&registry).expect("the second signs");
        assert_eq!((served.value, served.provider.descriptor().name.as_str()), (vec![7], "second"));
        assert_eq!(served.skipped.len(), 1);
        assert_eq!(served.skipped[0].0, "first", "asked first: higher priority");
        assert_eq!((first.2.load(Ordering::Relaxed), second.2.load(Ordering::Relaxed)), (1, 1));
    }

    #[test]
    fn a_fault_with_key_material_is_the_answer_never_retried_elsewhere() {
        let (first, second) =
            (fake("first", 2, Err(ProviderError::Fault("trap".into()))), fake("second", 1, Ok(vec![7])));
        let registry = Registry::new(vec![first.clone(), second.clone()]);
        match sign(&registry) {
            Err(RegistryError::Provider { provider, error: ProviderError::Fault(_) }) => assert_eq!(provider, "first"),
            other => panic!("expected first's fault, got {:?}", other.map(|s| s.value)),
        }
        assert_eq!(second.2.load(Ordering::Relaxed), 0, "the key never reached a second provider");
        // Without key material a fault falls back (a digest, a verification).
        assert!(ProviderError::Fault("x".into()).falls_back());
    }
}
