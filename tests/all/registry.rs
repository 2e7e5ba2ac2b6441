//! Priority selection and fallback across real components.

use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{Capability, ProviderError};

use crate::common::{self, MISBEHAVING, OFFLINE, P};

#[test]
fn higher_priority_serves() {
    let (_dir, registry) = common::registry(&[OFFLINE, MISBEHAVING]);
    // Both offer SHA-512; misbehaving (200) outranks offline-verification (100).
    let served = registry.digest("SHA-512", b"abc").expect("served");
    assert_eq!(served.provider.descriptor().name, "misbehaving");
    assert!(served.skipped.is_empty());
}

#[test]
fn lower_priority_serves_when_the_higher_answers_unsupported() {
    let (_dir, registry) = common::registry(&[OFFLINE, MISBEHAVING]);
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
    let (_dir, registry) = common::registry(&[OFFLINE, low]);
    let served = registry.digest("SHA-512", b"abc").expect("served");
    assert_eq!(served.provider.descriptor().name, "offline-verification");
    let order: Vec<_> = registry.providers().iter().map(|p| p.descriptor().priority.0).collect();
    assert_eq!(order, [100, 50]);
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
