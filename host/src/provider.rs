//! The `CryptoProvider` trait that every backend implements, wasm component or native.

use std::fmt;
use std::io::Read;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::ProviderError;

/// Provider priority: **higher wins**. Among providers that offer an algorithm, the registry
/// asks the one with the highest priority first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Priority(pub i32);

/// A capability, as the WIT `capability` enum names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Hashing,
    Verification,
    Signing,
    Encryption,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 4] =
        [Capability::Hashing, Capability::Verification, Capability::Signing, Capability::Encryption];

    /// The capability of a WIT name.
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Capability::Hashing => "hashing",
            Capability::Verification => "verification",
            Capability::Signing => "signing",
            Capability::Encryption => "encryption",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// ECDSA signature encoding; always chosen by the caller, never guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SigFormat {
    /// IEEE P1363 r||s (JWS).
    P1363,
    /// ASN.1 DER (cosign, DSSE tooling, OpenSSL).
    #[default]
    Der,
}

impl fmt::Display for SigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SigFormat::P1363 => "p1363",
            SigFormat::Der => "der",
        })
    }
}

impl std::str::FromStr for SigFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "p1363" | "raw" | "jws" => Ok(SigFormat::P1363),
            "der" | "asn1" => Ok(SigFormat::Der),
            other => Err(format!("unknown signature format {other:?} (expected der or p1363)")),
        }
    }
}

/// Where a provider's code came from: what the audit log and `providers` report (the wire
/// schema's type: a component file and its sha256, or native code).
pub use cryptohost_client::api::Origin;

/// What one capability of a provider covers.
#[derive(Clone, Debug, Serialize)]
pub struct CapabilityInfo {
    pub capability: Capability,
    pub algorithms: Vec<String>,
}

/// A provider's identity as the registry sees it.
/// A component's capability-scoped world (`cryptohost:provider@0.2.0`), each one the one
/// before plus an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// metadata, hashing, verification: holds no keys.
    Verifier,
    /// + signing.
    Signer,
    /// + encryption.
    Keystore,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Verifier => "verifier",
            World::Signer => "signer",
            World::Keystore => "keystore",
        }
    }

    /// The capabilities a component of this world may offer.
    pub fn allows(self, capability: Capability) -> bool {
        match capability {
            Capability::Hashing | Capability::Verification => true,
            Capability::Signing => self >= World::Signer,
            Capability::Encryption => self >= World::Keystore,
        }
    }
}

impl std::str::FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> Result<World, String> {
        match s {
            "verifier" => Ok(World::Verifier),
            "signer" => Ok(World::Signer),
            "keystore" => Ok(World::Keystore),
            other => Err(format!("{other:?} is not a world (verifier, signer, keystore)")),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Descriptor {
    /// The name given in the configuration.
    pub name: String,
    /// The name and version the provider reports for itself.
    pub reported_name: String,
    pub version: String,
    pub priority: Priority,
    pub origin: Origin,
    pub capabilities: Vec<CapabilityInfo>,
    /// A component's world; `None` for a native backend (the HSM).
    pub world: Option<World>,
}

impl Descriptor {
    pub fn supports(&self, capability: Capability, algorithm: &str) -> bool {
        self.capabilities.iter().any(|c| c.capability == capability && c.algorithms.iter().any(|a| a == algorithm))
    }
}

/// Either a whole message (the provider hashes it) or a digest the host already computed.
#[derive(Clone, Copy, Debug)]
pub enum SignInput<'a> {
    Message(&'a [u8]),
    Digest(&'a [u8]),
}

/// An opened verifier: a public key bound to an algorithm, used many times.
pub trait Verifier: Send {
    /// `Ok(false)` when the signature does not verify; an error only for unusable input.
    fn verify(&self, input: SignInput<'_>, signature: &[u8], format: SigFormat) -> Result<bool, ProviderError>;
}

/// A provider's handle for a key it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyId(pub String);

/// AES-GCM output: the fresh nonce and ciphertext||tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// What a provider says about its own running state, for metrics. Counters only grow for the
/// life of the provider (a reload starts new ones).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderStats {
    /// Instances (components) or sessions (PKCS#11) that exist now.
    pub instances: usize,
    /// Of those, how many are running a call right now.
    pub busy: usize,
    /// Calls that found every instance or session busy and waited.
    pub waits: u64,
    /// Calls that ended in a guest trap (the instance was discarded).
    pub traps: u64,
    /// Reconnects after a lost session or a finalized module (PKCS#11).
    pub reconnects: u64,
}

/// A result and the device that produced it: the HSM's token serial, which failover may change
/// between calls (what the audit line records, taken with the result, never looked up after);
/// `None` for a provider that is one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnDevice<T> {
    pub value: T,
    pub device: Option<String>,
}

impl<T> OnDevice<T> {
    /// A result of a provider that is one device.
    pub fn one(value: T) -> OnDevice<T> {
        OnDevice { value, device: None }
    }
}

/// Every backend, wasm component or native, is one of these: a descriptor, and the capabilities
/// it offers, as the WIT worlds bound them (a verifier hashes and verifies; a signer also holds
/// keys and signs; a keystore also encrypts). A capability it lacks is `None`, and the registry
/// never asks it for one.
pub trait CryptoProvider: Send + Sync {
    fn descriptor(&self) -> &Descriptor;

    /// Its running state (pool use, traps, reconnects); nothing by default.
    fn stats(&self) -> ProviderStats {
        ProviderStats::default()
    }

    fn hashing(&self) -> Option<&dyn Hashing> {
        None
    }

    fn verification(&self) -> Option<&dyn Verification> {
        None
    }

    fn signing(&self) -> Option<&dyn Signing> {
        None
    }

    fn encryption(&self) -> Option<&dyn Encryption> {
        None
    }

    /// Where a named key (a key pair, or with `secret` an AES key) lives on its device, so that
    /// a key version can be bound to it: the token's serial and the object's `CKA_ID`. A
    /// provider whose keys live in no device (a component) has nothing to say.
    fn key_location(&self, _key: &KeyId, _secret: bool) -> Result<Option<KeyLocation>, ProviderError> {
        Ok(None)
    }

    /// Destroys a named key for good: on a token, its objects. A component forgets it (a seeded
    /// simulation would derive it again from its name: the key-state file's `destroyed` is what
    /// keeps it from being used).
    fn destroy_key(&self, key: &KeyId, _secret: bool) -> Result<(), ProviderError> {
        if let Some(s) = self.signing() {
            s.delete_key(key);
        }
        Ok(())
    }
}

/// Where a key lives on a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLocation {
    pub token_serial: String,
    pub cka_id: Vec<u8>,
}

/// SHA-2, one-shot and streamed.
pub trait Hashing: Send + Sync {
    /// One-shot digest.
    fn digest(&self, algorithm: &str, data: &[u8]) -> Result<Vec<u8>, ProviderError>;

    /// Streams `reader` through an incremental hash, in bounded chunks.
    fn digest_reader(&self, algorithm: &str, reader: &mut dyn Read) -> Result<Vec<u8>, ProviderError>;
}

/// Ephemeral verifiers from SPKI public keys.
pub trait Verification: Send + Sync {
    /// Opens a verifier for `algorithm` from a DER SubjectPublicKeyInfo.
    fn open_verifier(&self, algorithm: &str, spki_der: &[u8]) -> Result<Box<dyn Verifier + '_>, ProviderError>;

    /// Verifies once with the key: a provider may keep the opened verifier for the next call
    /// under the same key (the wasm runtime keeps a bounded cache per instance).
    fn verify_once(
        &self,
        algorithm: &str,
        spki_der: &[u8],
        input: SignInput<'_>,
        signature: &[u8],
        format: SigFormat,
    ) -> Result<bool, ProviderError> {
        self.open_verifier(algorithm, spki_der)?.verify(input, signature, format)
    }
}

/// Keys held inside the provider, and signing with them.
pub trait Signing: Send + Sync {
    /// Imports a PKCS#8 DER private key; it never leaves the provider again.
    fn import_pkcs8(&self, pkcs8_der: &[u8]) -> Result<KeyId, ProviderError>;

    /// Generates an anonymous key pair; only an `exportable` key may be exported with
    /// `export_pkcs8`. A provider whose keys all have names (the HSM) need not.
    fn generate(&self, _algorithm: &str, _rsa_bits: u32, _exportable: bool) -> Result<KeyId, ProviderError> {
        Err(ProviderError::Unsupported("anonymous keys: name the key".into()))
    }

    /// The public half of a held key, as DER SubjectPublicKeyInfo.
    fn public_key(&self, key: &KeyId) -> Result<Vec<u8>, ProviderError>;

    /// The private key as PKCS#8 DER: only for keys generated as exportable (by default none).
    fn export_pkcs8(&self, _key: &KeyId) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        Err(ProviderError::InvalidKey("this provider's keys never leave it".into()))
    }

    /// Signs with a held key, saying which device served.
    fn sign(
        &self,
        key: &KeyId,
        algorithm: &str,
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<OnDevice<Vec<u8>>, ProviderError>;

    /// Forgets a key this provider holds only for one operation (an imported PKCS#8 key, an
    /// exportable key once exported). Backends whose keys outlive the process (the HSM) ignore
    /// it. Unknown keys are ignored.
    fn delete_key(&self, _key: &KeyId) {}

    /// The key called `name` (a PKCS#11 URI for the HSM, a simulation key name). With `create`,
    /// a new non-exportable key is generated under the name; the HSM refuses a name that any
    /// key already holds (never handing back an old key as new), while a seeded simulation
    /// derives the same key for a name every time, so there "generate" and "find" agree.
    fn named_key(&self, name: &str, algorithm: &str, rsa_bits: u32, create: bool) -> Result<KeyId, ProviderError>;
}

/// AES-GCM with secret keys held inside the provider.
pub trait Encryption: Send + Sync {
    /// The secret key called `name` for `algorithm` (A128GCM, A256GCM), generated when absent
    /// and `create` is set.
    fn named_secret(&self, name: &str, algorithm: &str, create: bool) -> Result<KeyId, ProviderError>;

    /// Imports raw secret key bytes (tests and migration; an HSM may refuse).
    fn import_secret(&self, algorithm: &str, key: &[u8]) -> Result<KeyId, ProviderError>;

    /// AES-GCM with a fresh 96-bit nonce chosen by the provider, saying which device served.
    fn encrypt(&self, key: &KeyId, plaintext: &[u8], aad: &[u8]) -> Result<OnDevice<Sealed>, ProviderError>;

    /// AES-GCM decryption; a wrong key, nonce, AAD or tag is `InvalidInput`.
    fn decrypt(
        &self,
        key: &KeyId,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<OnDevice<Zeroizing<Vec<u8>>>, ProviderError>;
}

/// What a provider answers for a capability it does not have.
pub fn lacks(p: &dyn CryptoProvider, capability: Capability) -> ProviderError {
    ProviderError::Unsupported(format!("{} offers no {capability}", p.descriptor().name))
}

/// Each capability's calls on any provider, `unsupported` where it has none: for callers that
/// need neither the device that served nor the capability handle (the registry's routing
/// closures, the conformance suite, tests and benches). The key service, which audits the
/// device, goes through the capability itself.
impl dyn CryptoProvider + '_ {
    fn need<'c, T: ?Sized>(&self, c: Option<&'c T>, capability: Capability) -> Result<&'c T, ProviderError> {
        c.ok_or_else(|| lacks(self, capability))
    }

    pub fn digest(&self, algorithm: &str, data: &[u8]) -> Result<Vec<u8>, ProviderError> {
        self.need(self.hashing(), Capability::Hashing)?.digest(algorithm, data)
    }

    pub fn digest_reader(&self, algorithm: &str, reader: &mut dyn Read) -> Result<Vec<u8>, ProviderError> {
        self.need(self.hashing(), Capability::Hashing)?.digest_reader(algorithm, reader)
    }

    pub fn open_verifier(&self, algorithm: &str, spki_der: &[u8]) -> Result<Box<dyn Verifier + '_>, ProviderError> {
        self.need(self.verification(), Capability::Verification)?.open_verifier(algorithm, spki_der)
    }

    pub fn verify_once(
        &self,
        algorithm: &str,
        spki_der: &[u8],
        input: SignInput<'_>,
        signature: &[u8],
        format: SigFormat,
    ) -> Result<bool, ProviderError> {
        self.need(self.verification(), Capability::Verification)?
            .verify_once(algorithm, spki_der, input, signature, format)
    }

    pub fn import_pkcs8(&self, pkcs8_der: &[u8]) -> Result<KeyId, ProviderError> {
        self.need(self.signing(), Capability::Signing)?.import_pkcs8(pkcs8_der)
    }

    pub fn generate(&self, algorithm: &str, rsa_bits: u32, exportable: bool) -> Result<KeyId, ProviderError> {
        self.need(self.signing(), Capability::Signing)?.generate(algorithm, rsa_bits, exportable)
    }

    pub fn public_key(&self, key: &KeyId) -> Result<Vec<u8>, ProviderError> {
        self.need(self.signing(), Capability::Signing)?.public_key(key)
    }

    pub fn export_pkcs8(&self, key: &KeyId) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        self.need(self.signing(), Capability::Signing)?.export_pkcs8(key)
    }

    /// The signature alone.
    pub fn sign(
        &self,
        key: &KeyId,
        algorithm: &str,
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<Vec<u8>, ProviderError> {
        Ok(self.need(self.signing(), Capability::Signing)?.sign(key, algorithm, input, format)?.value)
    }

    pub fn delete_key(&self, key: &KeyId) {
        if let Some(s) = self.signing() {
            s.delete_key(key);
        }
    }

    pub fn named_key(&self, name: &str, algorithm: &str, rsa_bits: u32, create: bool) -> Result<KeyId, ProviderError> {
        self.need(self.signing(), Capability::Signing)?.named_key(name, algorithm, rsa_bits, create)
    }

    pub fn named_secret(&self, name: &str, algorithm: &str, create: bool) -> Result<KeyId, ProviderError> {
        self.need(self.encryption(), Capability::Encryption)?.named_secret(name, algorithm, create)
    }

    pub fn import_secret(&self, algorithm: &str, key: &[u8]) -> Result<KeyId, ProviderError> {
        self.need(self.encryption(), Capability::Encryption)?.import_secret(algorithm, key)
    }

    /// The sealed output alone.
    pub fn encrypt(&self, key: &KeyId, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, ProviderError> {
        Ok(self.need(self.encryption(), Capability::Encryption)?.encrypt(key, plaintext, aad)?.value)
    }

    /// The plaintext alone.
    pub fn decrypt(
        &self,
        key: &KeyId,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        Ok(self.need(self.encryption(), Capability::Encryption)?.decrypt(key, nonce, ciphertext, aad)?.value)
    }
}

/// A provider for unit tests: it signs with whatever answer it is given, and counts its calls.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    pub struct Fake(pub Descriptor, pub Result<Vec<u8>, ProviderError>, pub std::sync::atomic::AtomicUsize);

    impl CryptoProvider for Fake {
        fn descriptor(&self) -> &Descriptor {
            &self.0
        }
        fn signing(&self) -> Option<&dyn Signing> {
            Some(self)
        }
    }

    impl Signing for Fake {
        fn import_pkcs8(&self, _: &[u8]) -> Result<KeyId, ProviderError> {
            Ok(KeyId("imported".into()))
        }
        fn public_key(&self, _: &KeyId) -> Result<Vec<u8>, ProviderError> {
            self.1.clone()
        }
        fn sign(&self, _: &KeyId, _: &str, _: SignInput<'_>, _: SigFormat) -> Result<OnDevice<Vec<u8>>, ProviderError> {
            self.2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.1.clone().map(OnDevice::one)
        }
        fn named_key(&self, name: &str, _: &str, _: u32, _: bool) -> Result<KeyId, ProviderError> {
            Ok(KeyId(name.into()))
        }
    }

    /// A fake named `name` at `priority` that signs ES256 with `answer`.
    pub fn fake(name: &str, priority: i32, answer: Result<Vec<u8>, ProviderError>) -> std::sync::Arc<Fake> {
        let descriptor = Descriptor {
            name: name.into(),
            reported_name: name.into(),
            version: "0".into(),
            priority: Priority(priority),
            origin: Origin::Native { module: "fake".into() },
            capabilities: vec![CapabilityInfo { capability: Capability::Signing, algorithms: vec!["ES256".into()] }],
            world: None,
        };
        std::sync::Arc::new(Fake(descriptor, answer, Default::default()))
    }
}
