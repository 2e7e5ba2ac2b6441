//! Side by side, in one run: RustCrypto natively, the component's own code (provider-core and
//! fastverify) natively, the guest called through wasmtime (verifier opened once), and the full
//! registry path (ephemeral verifier per call, as the CLI does). The sandbox's own cost is
//! "wasm-guest" over "component code natively".
//! Needs `just build-guests` first (`just bench` does it).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::provider::{Capability, SigFormat, SignInput};
use cryptohost::{Config, Host, TrustMode};

fn registry() -> (tempfile::TempDir, Host) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let components = root.join("components");
    let manifest = Manifest::load(&components.join("manifest.json")).expect("run `just build-guests` first");
    let entry = manifest.entry_for_file("offline-verification.wasm").expect("offline-verification built");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n[native]\nhashing = false\n[[provider]]\nname = \"offline-verification\"\ncomponent = \"offline-verification.wasm\"\nsha256 = {:?}\npriority = 100\n",
        components.display().to_string(),
        entry.sha256
    );
    let path: PathBuf = dir.path().join("cryptohost.toml");
    std::fs::write(&path, text).expect("config");
    let registry = cryptohost::load::open(&Config::load(&path).expect("config"), TrustMode::Pins).expect("load");
    (dir, registry)
}

/// Native verification of the same key and signature with the same RustCrypto crates.
/// A native verifier: (message, signature) -> valid.
type NativeVerify = Box<dyn Fn(&[u8], &[u8]) -> bool>;

fn native_verifier(alg: &str, spki: &[u8]) -> NativeVerify {
    use p256::pkcs8::DecodePublicKey;
    use signature_verify::*;
    match alg {
        "ES256" => {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(spki).expect("p256 spki");
            Box::new(move |m, s| {
                let sig = p256::ecdsa::Signature::from_der(s).expect("der");
                vk.verify(m, &sig).is_ok()
            })
        }
        "ES384" => {
            let vk = p384::ecdsa::VerifyingKey::from_public_key_der(spki).expect("p384 spki");
            Box::new(move |m, s| {
                let sig = p384::ecdsa::Signature::from_der(s).expect("der");
                vk.verify(m, &sig).is_ok()
            })
        }
        "RS256" => {
            let pk = rsa::PublicKey::from_public_key_der(spki).expect("rsa spki");
            Box::new(move |m, s| {
                let d = <sha2_011::Sha256 as sha2_011::Digest>::digest(m);
                pk.verify(rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), &d, s).is_ok()
            })
        }
        "PS256" => {
            let pk = rsa::PublicKey::from_public_key_der(spki).expect("rsa spki");
            Box::new(move |m, s| {
                let d = <sha2_011::Sha256 as sha2_011::Digest>::digest(m);
                pk.verify(rsa::Pss::<rsa::sha2::Sha256>::new(), &d, s).is_ok()
            })
        }
        "ES512" => {
            let vk = p521::ecdsa::VerifyingKey::from_public_key_der(spki).expect("p521 spki");
            Box::new(move |m, s| {
                let sig = p521::ecdsa::Signature::from_der(s).expect("der");
                vk.verify(m, &sig).is_ok()
            })
        }
        other => panic!("no native verifier for {other}"),
    }
}

mod signature_verify {
    pub use p256::ecdsa::signature::Verifier;
}

/// The component's own code (provider-core, with fastverify for P-256 and RSA), natively.
fn component_code_natively(alg: &str, spki: &[u8]) -> NativeVerify {
    let sig_alg = provider_core::sig_alg(alg).expect("known algorithm");
    let key = provider_core::keys::PublicKey::from_spki(&sig_alg, spki).expect("spki");
    Box::new(move |m, s| key.verify_message(&sig_alg, m, s, provider_core::Format::Der).expect("verify"))
}

/// Verification, each algorithm four ways in one group: the RustCrypto crates natively, the
/// component's own code natively, the component through wasmtime, and the registry.
fn bench_verify(c: &mut Criterion) {
    let (_dir, registry) = registry();
    let p = registry.by_name("offline-verification").expect("loaded").clone();
    let msg = b"a 64-byte message, about the size of a DSSE PAE over a small doc.";
    for alg in ["ES256", "ES384", "ES512", "PS256", "RS256"] {
        let key = p.generate(alg, 2048, false).expect("generate");
        let spki = p.public_key(&key).expect("spki");
        let sig = p.sign(&key, alg, SignInput::Message(msg), SigFormat::Der).expect("sign");
        let native = native_verifier(alg, &spki);
        assert!(native(msg, &sig), "native rejects the guest's signature");
        let own = component_code_natively(alg, &spki);
        assert!(own(msg, &sig), "the component's code, natively, rejects the guest's signature");
        let verifier = p.open_verifier(alg, &spki).expect("verifier");

        let mut g = c.benchmark_group(format!("verify-{alg}"));
        g.bench_function("native", |b| b.iter(|| assert!(native(black_box(msg), black_box(&sig)))));
        g.bench_function("component code natively", |b| b.iter(|| assert!(own(black_box(msg), black_box(&sig)))));
        g.bench_function("wasm-guest", |b| {
            b.iter(|| assert!(verifier.verify(SignInput::Message(black_box(msg)), &sig, SigFormat::Der).unwrap()))
        });
        g.bench_function("registry", |b| {
            b.iter(|| {
                let served =
                    registry.verify(alg, &spki, SignInput::Message(black_box(msg)), &sig, SigFormat::Der).unwrap();
                assert!(served.value)
            })
        });
        g.finish();
    }
}

/// The host's CSPRNG, as the guest's `random-bytes` import gives it (a fresh vector per call).
fn os_random(len: u32) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    getrandom::fill(&mut v).expect("OS randomness");
    v
}

/// Signing: the component's own code natively against the component through wasmtime, with the
/// same key (generated in the component as exportable, imported natively from its PKCS#8).
fn bench_sign(c: &mut Criterion) {
    let (_dir, registry) = registry();
    let p = registry.by_name("offline-verification").expect("loaded").clone();
    let msg = b"a 64-byte message, about the size of a DSSE PAE over a small doc.";
    for alg in ["ES256", "ES384", "ES512", "PS256", "RS256"] {
        let key = p.generate(alg, 2048, true).expect("generate");
        let pkcs8 = p.export_pkcs8(&key).expect("export");
        let spki = p.public_key(&key).expect("spki");
        let own = provider_core::keys::PrivateKey::from_pkcs8(&pkcs8).expect("pkcs8");
        let sig_alg = provider_core::sig_alg(alg).expect("known algorithm");
        let mut rng = provider_core::rng::HostRng(os_random);
        let native_sig = own.sign_message(&sig_alg, msg, provider_core::Format::Der, &mut rng).expect("sign");
        let verify = component_code_natively(alg, &spki);
        assert!(verify(msg, &native_sig), "the native signature does not verify");

        let mut g = c.benchmark_group(format!("sign-{alg}"));
        g.bench_function("component code natively", |b| {
            b.iter(|| own.sign_message(&sig_alg, black_box(msg), provider_core::Format::Der, &mut rng).unwrap())
        });
        g.bench_function("wasm-guest", |b| {
            b.iter(|| p.sign(&key, alg, SignInput::Message(black_box(msg)), SigFormat::Der).unwrap())
        });
        g.finish();
    }
}

fn bench_sha256(c: &mut Criterion) {
    let (_dir, registry) = registry();
    let p = registry.by_name("offline-verification").expect("loaded").clone();
    let data = vec![0x5au8; 1 << 20];
    let mut g = c.benchmark_group("sha256-1MiB");
    g.throughput(criterion::Throughput::Bytes(data.len() as u64));
    // The guest's own code (RustCrypto sha2 0.11) natively, the host's native hashing provider
    // (sha2 0.10 with SHA-NI), the guest through wasmtime, and the registry routing to the guest.
    let native = cryptohost::native::NativeHashing::new(cryptohost::Priority(cryptohost::native::DEFAULT_PRIORITY));
    g.bench_function("native", |b| b.iter(|| <sha2_011::Sha256 as sha2_011::Digest>::digest(black_box(&data))));
    g.bench_function("native-sha2 provider", |b| {
        b.iter(|| cryptohost::provider::Hashing::digest(&native, "SHA-256", black_box(&data)).unwrap())
    });
    g.bench_function("wasm-guest", |b| b.iter(|| p.digest("SHA-256", black_box(&data)).unwrap()));
    g.bench_function("registry (to the guest)", |b| b.iter(|| registry.digest("SHA-256", black_box(&data)).unwrap()));
    g.finish();
}

/// The registry's own cost: selection and fallback bookkeeping around a call that does nothing.
fn bench_dispatch(c: &mut Criterion) {
    let (_dir, registry) = registry();
    let mut g = c.benchmark_group("registry-dispatch");
    g.bench_function("serve-noop", |b| {
        b.iter(|| registry.serve(Capability::Verification, black_box("ES256"), |_, _| Ok(())).unwrap())
    });
    g.bench_function("guest-call-tiny", |b| b.iter(|| registry.digest("SHA-256", black_box(b"")).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench_verify, bench_sign, bench_sha256, bench_dispatch
}
criterion_main!(benches);
