//! Priority selection and fallback across real components.

use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{Capability, ProviderError};

use crate::common::{self, MISBEHAVING, OFFLINE, P};

#[test]
fn higher_priority_serves() {
    let (_dir, registry) = common::components_registry(&[OFFLINE, MISBEHAVING]);
    // Both offer SHA-512; misbehaving (200) outranks offline-verification (100).
    let served = registry.digest("SHA-512", b"abc").expect("served");
    assert_eq!(served.provider.descriptor().name, "misbehaving");
    assert!(served.skipped.is_empty());
}

#[test]
fn lower_priority_serves_when_the_higher_answers_unsupported() {
    let (_dir, registry) = common::components_registry(&[OFFLINE, MISBEHAVING]);
    let served = registry.digest("SHA256", b"abc").expect("served");
    assert_eq!(served.provider.descriptor().name, "offline-verification");
    assert_eq!(hex::encode(&served.value)[..8], *"ba7816bf");
    assert_eq!(served.skipped.len(), 1);
    assert_eq!(served.skipped[0].0, "misbehaving");
    assert!(matches!(served.skipped[0].1, ProviderError::Unsupported(_)));
}

#[test]
fn lower_priority_serves_when_the_higher_traps() {
    let (_dir, registry) = common::registry(&[OFFLINE, MISBEHAVING]);
    let key = common::provider(&registry, "offline-verification").generate("ES256", 0, false).unwrap();
    let p = common::provider(&registry, "offline-verification");
    let spki = p.public_key(&key).unwrap();
    let sig = p.sign(&key, "ES256", SignInput::Message(b"m"), SigFormat::Der).unwrap();
    let served = registry.verify("ES256", &spki, SignInput::Message(b"m"), &sig, SigFormat::Der).expect("served");
    assert!(served.value);
    assert_eq!(served.provider.descriptor().name, "offline-verification");
    assert!(matches!(served.skipped[0].1, ProviderError::Fault(_)), "{:?}", served.skipped);
}

#[test]
fn priority_is_configuration_not_code() {
    let low = P { priority: 50, ..MISBEHAVING };
    let (_dir, registry) = common::components_registry(&[OFFLINE, low]);
    let served = registry.digest("SHA-512", b"abc").expect("served");
    assert_eq!(served.provider.descriptor().name, "offline-verification");
    let order: Vec<_> = registry.providers().iter().map(|p| p.descriptor().priority.0).collect();
    assert_eq!(order, [100, 50]);
}

/// The host's native hashing is a provider with a priority like the components: first by
/// default, below a component when configured so, absent when turned off or under
/// `components_only` (and refused when asked for beside it).
#[test]
fn native_hashing_has_a_priority_and_can_be_turned_off() {
    let (_dir, registry) = common::registry(&[OFFLINE]);
    let served = registry.digest("SHA-256", b"abc").expect("served");
    assert_eq!(served.provider.descriptor().name, "native-sha2");
    assert!(matches!(&served.provider.descriptor().origin, cryptohost::provider::Origin::Native { module }
        if module.contains(env!("CARGO_PKG_VERSION")) && module.contains("sha2")));
    let (_dir, registry) = common::registry_with(&[OFFLINE], "[native]\npriority = 50\n");
    let served = registry.digest("SHA-256", b"abc").expect("served");
    assert_eq!(served.provider.descriptor().name, "offline-verification", "the component (100) outranks it (50)");
    let order: Vec<_> = registry.providers().iter().map(|p| p.descriptor().priority.0).collect();
    assert_eq!(order, [100, 50]);
    let (_dir, registry) = common::components_registry(&[OFFLINE]);
    assert!(registry.by_name("native-sha2").is_none());
    let (_dir, registry) = common::registry_with(&[OFFLINE], "[policy]\ncomponents_only = true\n");
    assert!(registry.by_name("native-sha2").is_none(), "components_only leaves it out");
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config(
        dir.path(),
        &common::components_dir(),
        &[OFFLINE],
        "[native]\nhashing = true\n[policy]\ncomponents_only = true\n",
    );
    let err = cryptohost::Config::load(&path).expect_err("a contradiction").to_string();
    assert!(err.contains("native.hashing") && err.contains("components_only"), "{err}");
    let named = common::P { name: "native-sha2", ..OFFLINE };
    let path = common::write_config(dir.path(), &common::components_dir(), &[named], "");
    let config = cryptohost::Config::load(&path).expect("parses");
    let err = cryptohost::load::open(&config, cryptohost::TrustMode::Pins).err().expect("name reserved").to_string();
    assert!(err.contains("native hashing provider"), "{err}");
}

#[test]
fn nothing_offers_it() {
    let (_dir, registry) = common::registry(&[OFFLINE]);
    let err = registry
        .serve(Capability::Encryption, "A256GCM", |p, a| p.digest(a, b""))
        .err()
        .expect("no encryption provider")
        .to_string();
    assert!(err.contains("no configured provider offers encryption with A256GCM"), "{err}");
}

#[test]
fn a_fault_while_holding_a_key_is_never_retried_on_another_provider() {
    use cryptohost::RegistryError;
    let (_dir, registry) = common::components_registry(&[OFFLINE, MISBEHAVING]);
    let key = cryptohost::keyfile::read_private_key(&common::data("dsse/spec-example/private-key.pem")).unwrap();
    // misbehaving (200) takes the key and traps; offline-verification (100) could sign, but
    // the key is not handed on after a fault.
    let err = registry
        .sign_with_pkcs8("ES256", &key, SignInput::Message(b"m"), SigFormat::Der)
        .err()
        .expect("the fault is the answer");
    match err {
        RegistryError::Provider { provider, error: ProviderError::Fault(_) } => assert_eq!(provider, "misbehaving"),
        other => panic!("expected misbehaving's fault, got {other}"),
    }
    // Hashing carries no key: it still falls back after a trap.
    let served = registry.serve(Capability::Hashing, "SHA-256", |p, a| p.digest(a, b"panic")).expect("fallback");
    assert_eq!(served.provider.descriptor().name, "offline-verification");
}

use cryptohost::KeyId;
use cryptohost::provider::{Hashing, OnDevice, Signing, Verification};

/// A real provider whose signing records which keys it was told to forget.
struct Recording {
    inner: std::sync::Arc<dyn cryptohost::CryptoProvider>,
    deleted: std::sync::Mutex<Vec<cryptohost::KeyId>>,
    imported: std::sync::Mutex<Vec<cryptohost::KeyId>>,
}

impl cryptohost::CryptoProvider for Recording {
    fn descriptor(&self) -> &cryptohost::Descriptor {
        self.inner.descriptor()
    }
    fn hashing(&self) -> Option<&dyn Hashing> {
        self.inner.hashing()
    }
    fn verification(&self) -> Option<&dyn Verification> {
        self.inner.verification()
    }
    fn signing(&self) -> Option<&dyn Signing> {
        Some(self)
    }
}

impl Signing for Recording {
    fn import_pkcs8(&self, der: &[u8]) -> Result<KeyId, ProviderError> {
        let id = self.inner.import_pkcs8(der)?;
        self.imported.lock().unwrap().push(id.clone());
        Ok(id)
    }
    fn generate(&self, a: &str, b: u32, e: bool) -> Result<KeyId, ProviderError> {
        let id = self.inner.generate(a, b, e)?;
        self.imported.lock().unwrap().push(id.clone());
        Ok(id)
    }
    fn public_key(&self, k: &KeyId) -> Result<Vec<u8>, ProviderError> {
        self.inner.public_key(k)
    }
    fn export_pkcs8(&self, k: &KeyId) -> Result<zeroize::Zeroizing<Vec<u8>>, ProviderError> {
        self.inner.export_pkcs8(k)
    }
    fn sign(&self, k: &KeyId, a: &str, i: SignInput<'_>, f: SigFormat) -> Result<OnDevice<Vec<u8>>, ProviderError> {
        self.inner.sign(k, a, i, f).map(OnDevice::one)
    }
    fn delete_key(&self, k: &KeyId) {
        self.deleted.lock().unwrap().push(k.clone());
        self.inner.delete_key(k);
    }
    fn named_key(&self, n: &str, a: &str, b: u32, c: bool) -> Result<KeyId, ProviderError> {
        self.inner.named_key(n, a, b, c)
    }
}

#[test]
fn keys_imported_or_exported_for_one_operation_are_deleted_from_the_guest() {
    let (_dir, loaded) = common::registry(&[OFFLINE]);
    let inner = common::provider(&loaded, "offline-verification").clone();
    let recording = std::sync::Arc::new(Recording {
        inner: inner.clone(),
        deleted: Default::default(),
        imported: Default::default(),
    });
    let registry = cryptohost::Registry::new(vec![recording.clone()]);
    let key = cryptohost::keyfile::read_private_key(&common::data("dsse/spec-example/private-key.pem")).unwrap();
    registry.sign_with_pkcs8("ES256", &key, SignInput::Message(b"m"), SigFormat::Der).expect("signs");
    registry.generate_exportable("ES256", 0).expect("generates");
    let imported = recording.imported.lock().unwrap().clone();
    assert_eq!(imported.len(), 2);
    assert_eq!(*recording.deleted.lock().unwrap(), imported, "every key made for one operation is deleted");
    // And the guest really forgot them.
    for id in &imported {
        let err = inner.public_key(id).expect_err("deleted");
        assert!(matches!(err, ProviderError::KeyNotFound(_)), "{err:?}");
    }
}

#[test]
fn a_pooled_provider_serves_a_second_call_while_the_first_is_busy() {
    let (_dir, registry) = common::registry(&[OFFLINE]);
    let p = common::provider(&registry, "offline-verification").clone();
    let slow = p.clone();
    // A 4096-bit RSA key generation in the sandbox takes seconds and holds one instance.
    let busy = std::thread::spawn(move || slow.generate("RS256", 4096, false).is_ok());
    // Synchronized on the pool's own state, not on a clock: once the key generation holds an
    // instance, another call must be served by another instance without waiting.
    while p.stats().busy == 0 {
        assert!(!busy.is_finished(), "the key generation ended before it was seen holding an instance");
        std::thread::yield_now();
    }
    let waits = p.stats().waits;
    let digest = p.digest("SHA-256", b"abc").expect("served while the other instance is busy");
    assert_eq!(hex::encode(digest)[..8], *"ba7816bf");
    assert_eq!(p.stats().waits, waits, "the digest waited for the busy instance");
    assert!(busy.join().unwrap());
}

#[test]
fn cached_verifiers_are_keyed_by_algorithm_and_key() {
    let (_dir, registry) = common::registry(&[OFFLINE]);
    let p = common::provider(&registry, "offline-verification");
    let keys: Vec<_> = (0..70).map(|_| p.generate("ES256", 0, false).unwrap()).collect();
    let spkis: Vec<_> = keys.iter().map(|k| p.public_key(k).unwrap()).collect();
    let sig = p.sign(&keys[0], "ES256", SignInput::Message(b"m"), SigFormat::Der).unwrap();
    // More keys than one instance caches: every answer still belongs to its own key.
    for round in 0..2 {
        for (i, spki) in spkis.iter().enumerate() {
            let ok = registry.verify("ES256", spki, SignInput::Message(b"m"), &sig, SigFormat::Der).unwrap().value;
            assert_eq!(ok, i == 0, "round {round}, key {i}");
        }
    }
}
