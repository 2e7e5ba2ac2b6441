//! Components admitted at start and loaded on first use. A one-shot command uses one provider,
//! or none; compiling (or deserializing) and instantiating every configured component before
//! the first call costs it most of its run. So at start each component's pin is checked (its
//! file hashed as it is read), and what it offers is taken from the record this host wrote the
//! last time it loaded that exact component (by the same key as its precompiled artifact, in
//! the digest directory under the config's protection): its world, name, version and
//! algorithms. The config's role, the policy and the key prefixes are checked against that at
//! start, as before. Only the artifact's load, the instance and its `configure` wait for the
//! first call that reaches the provider; what the component then says of itself must match the
//! record, or the provider faults. Without a record (a first start, the cache off) a component
//! is loaded at start, as `serve` and `doctor` always load them.

use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::*;

/// What a component said of itself, as recorded for the next start.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    world: String,
    reported_name: String,
    version: String,
    /// (capability, algorithms), in the component's order.
    capabilities: Vec<(String, Vec<String>)>,
}

impl Record {
    fn of(d: &Descriptor) -> Option<Record> {
        Some(Record {
            world: d.world?.name().to_string(),
            reported_name: d.reported_name.clone(),
            version: d.version.clone(),
            capabilities: d
                .capabilities
                .iter()
                .map(|c| (c.capability.name().to_string(), c.algorithms.clone()))
                .collect(),
        })
    }

    /// The record's world and capabilities, held to the rules a component's own answer is
    /// held to (bounded claims, capabilities within the world); `None` for anything else.
    fn parse(bytes: &[u8]) -> Option<(crate::provider::World, Record)> {
        let record: Record = serde_json::from_slice(bytes).ok()?;
        let world: crate::provider::World = record.world.parse().ok()?;
        let lists: Vec<&[String]> = record.capabilities.iter().map(|(_, a)| a.as_slice()).collect();
        admit::claims_bounded(&record.reported_name, &record.version, &lists).ok()?;
        for (c, _) in &record.capabilities {
            if !world.allows(Capability::from_name(c)?) {
                return None;
            }
        }
        Some((world, record))
    }

    fn capabilities(&self) -> Vec<CapabilityInfo> {
        self.capabilities
            .iter()
            .filter_map(|(c, a)| Some(CapabilityInfo { capability: Capability::from_name(c)?, algorithms: a.clone() }))
            .collect()
    }
}

impl Runtime {
    /// Records what a loaded component said of itself (a no-op with the cache off, or when the
    /// record already says it).
    pub(super) fn record_descriptor(&self, d: &Descriptor) {
        let (Some(cache), Some(record), Origin::Component { sha256, .. }) = (&self.cache, Record::of(d), &d.origin)
        else {
            return;
        };
        let key = cache.key(sha256);
        if cache.load_descriptor(&key).and_then(|b| Record::parse(&b)).is_some_and(|(_, r)| r == record) {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(&record) {
            cache.store_descriptor(&key, &bytes);
        }
    }

    fn recorded_descriptor(&self, sha256: &str) -> Option<(crate::provider::World, Record)> {
        let cache = self.cache.as_ref()?;
        let bytes = cache.load_descriptor(&cache.key(sha256))?;
        let parsed = Record::parse(&bytes);
        if parsed.is_none() {
            log::warn!("ignoring an unusable component descriptor record; loading the component to ask it");
        }
        parsed
    }

    /// Admits a provider component: its pin is checked now. It is compiled, instantiated and
    /// asked what it offers now when `lazy` is off or this host holds no record of it, else
    /// on the first call that reaches it.
    ///
    /// # Errors
    /// The file cannot be read or does not match its pin; loaded now, as [`Runtime::load`].
    pub fn admit(self: &Arc<Self>, a: Admission, lazy: bool) -> Result<Arc<dyn CryptoProvider>, LoadError> {
        let actual = self.check_pin(&a.file, &a.trust)?;
        let recorded = if lazy { self.recorded_descriptor(&actual) } else { None };
        let Some((world, record)) = recorded else {
            let mut p = self.load_admitted(&a.name, &a.file, &actual, a.priority, a.settings.0.clone(), a.instances)?;
            if let Some(publisher) = &a.publisher {
                p.set_publisher(publisher);
            }
            return Ok(Arc::new(p));
        };
        let descriptor = Descriptor {
            name: a.name.clone(),
            capabilities: record.capabilities(),
            reported_name: record.reported_name,
            version: record.version,
            priority: a.priority,
            origin: Origin::Component {
                file: a.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                sha256: actual,
                publisher: a.publisher.clone(),
            },
            world: Some(world),
        };
        Ok(Arc::new(Deferred {
            runtime: self.clone(),
            descriptor,
            admission: Mutex::new(Some(a)),
            loaded: OnceLock::new(),
        }))
    }
}

/// A provider component to admit: where it is, the bytes it must be, how it is configured.
pub struct Admission {
    name: String,
    file: PathBuf,
    trust: Trust,
    priority: Priority,
    /// Handed to each instance's `configure` (may hold secrets: never logged, wiped on drop).
    settings: Settings,
    instances: usize,
    /// The publisher key id that signed the kit's component manifest admitting it.
    publisher: Option<String>,
}

impl Admission {
    /// Provider `name` from `file`, which must be the bytes `trust` names, configured with
    /// `settings`: one instance, no publisher.
    pub fn new(name: &str, file: PathBuf, trust: Trust, priority: Priority, settings: Vec<(String, String)>) -> Self {
        Admission {
            name: name.to_string(),
            file,
            trust,
            priority,
            settings: Settings(settings),
            instances: 1,
            publisher: None,
        }
    }

    /// With a pool of up to `n` instances (see [`Runtime::load_pooled`]).
    #[must_use]
    pub fn instances(self, n: usize) -> Self {
        Admission { instances: n, ..self }
    }

    /// Admitted by a kit's component manifest that this publisher key signed.
    #[must_use]
    pub fn publisher(self, key_id: &str) -> Self {
        Admission { publisher: Some(key_id.to_string()), ..self }
    }
}

/// A component admitted at start, loaded on first use.
struct Deferred {
    runtime: Arc<Runtime>,
    descriptor: Descriptor,
    /// What the load needs; taken by it (the settings go into the loaded provider).
    admission: Mutex<Option<Admission>>,
    loaded: OnceLock<Result<WasmProvider, Failed>>,
}

impl Deferred {
    /// The loaded provider, loading it on the first call: the same component as admitted, which
    /// must describe itself as its record did. A load that failed stays failed (each call then
    /// answers with that fault).
    fn provider(&self) -> Result<&WasmProvider, &Failed> {
        self.loaded
            .get_or_init(|| {
                let a = self
                    .admission
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                    .ok_or_else(|| Failed(format!("{}: loaded twice", self.descriptor.name)))?;
                let Origin::Component { sha256, .. } = &self.descriptor.origin else {
                    return Err(Failed(format!("{}: not a component", a.name)));
                };
                let settings = std::mem::take(&mut { a.settings }.0);
                let mut p = self
                    .runtime
                    .load_admitted(&a.name, &a.file, sha256, a.priority, settings, a.instances)
                    .map_err(|e| Failed(format!("{}: loading on first use: {e}", a.name)))?;
                if let Some(publisher) = &a.publisher {
                    p.set_publisher(publisher);
                }
                if Record::of(&p.descriptor) != Record::of(&self.descriptor) {
                    // Routing went by the record; the component's own answer is now recorded.
                    return Err(Failed(format!(
                        "{}: the component describes itself differently from the record this host made when it last \
                         loaded it (now replaced); run again",
                        a.name
                    )));
                }
                Ok(p)
            })
            .as_ref()
    }

    fn offers(&self, capability: Capability) -> bool {
        self.descriptor.world.is_some_and(|w| w.allows(capability))
    }
}

impl CryptoProvider for Deferred {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn stats(&self) -> ProviderStats {
        match self.loaded.get() {
            Some(Ok(p)) => p.stats(),
            _ => ProviderStats::default(),
        }
    }

    fn hashing(&self) -> Option<&dyn Hashing> {
        Some(match self.provider() {
            Ok(p) => p,
            Err(f) => f,
        })
    }

    fn verification(&self) -> Option<&dyn Verification> {
        Some(match self.provider() {
            Ok(p) => p,
            Err(f) => f,
        })
    }

    fn signing(&self) -> Option<&dyn Signing> {
        if !self.offers(Capability::Signing) {
            return None;
        }
        match self.provider() {
            Ok(p) => p.signing(),
            Err(f) => Some(f),
        }
    }

    fn encryption(&self) -> Option<&dyn Encryption> {
        if !self.offers(Capability::Encryption) {
            return None;
        }
        match self.provider() {
            Ok(p) => p.encryption(),
            Err(f) => Some(f),
        }
    }
}

/// A deferred load that failed: every call answers with its fault.
struct Failed(String);

impl Failed {
    fn fault<T>(&self) -> Result<T, ProviderError> {
        Err(ProviderError::Fault(self.0.clone()))
    }
}

impl Hashing for Failed {
    fn digest(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, ProviderError> {
        self.fault()
    }
    fn digest_reader(&self, _: &str, _: &mut dyn std::io::Read) -> Result<Vec<u8>, ProviderError> {
        self.fault()
    }
}

impl Verification for Failed {
    fn open_verifier(&self, _: &str, _: &[u8]) -> Result<Box<dyn Verifier + '_>, ProviderError> {
        self.fault()
    }
}

impl Signing for Failed {
    fn import_pkcs8(&self, _: &[u8]) -> Result<KeyId, ProviderError> {
        self.fault()
    }
    fn public_key(&self, _: &KeyId) -> Result<Vec<u8>, ProviderError> {
        self.fault()
    }
    fn sign(&self, _: &KeyId, _: &str, _: SignInput<'_>, _: SigFormat) -> Result<OnDevice<Vec<u8>>, ProviderError> {
        self.fault()
    }
    fn named_key(&self, _: &str, _: &str, _: u32, _: bool) -> Result<KeyId, ProviderError> {
        self.fault()
    }
}

impl Encryption for Failed {
    fn named_secret(&self, _: &str, _: &str, _: bool) -> Result<KeyId, ProviderError> {
        self.fault()
    }
    fn import_secret(&self, _: &str, _: &[u8]) -> Result<KeyId, ProviderError> {
        self.fault()
    }
    fn encrypt(&self, _: &KeyId, _: &[u8], _: &[u8]) -> Result<OnDevice<Sealed>, ProviderError> {
        self.fault()
    }
    fn decrypt(&self, _: &KeyId, _: &[u8], _: &[u8], _: &[u8]) -> Result<OnDevice<Zeroizing<Vec<u8>>>, ProviderError> {
        self.fault()
    }
}
