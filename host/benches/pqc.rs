//! ML-DSA-65 side by side, in one run: the `ml-dsa` crate natively, the pqc guest called
//! through wasmtime (key imported once, verifier opened once), and the registry path (an
//! ephemeral verifier per call, as the CLI does). Same key, same message, hedged signing on
//! both sides. Needs `just build-guests` first (`just bench` does it).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{Config, Host, TrustMode};
use ml_dsa::common::getrandom::SysRng;
use ml_dsa::pkcs8::EncodePrivateKey;
use ml_dsa::{EncodedSignature, ExpandedSigningKey, Generate, MlDsa65, Signature, SigningKey};

fn registry() -> (tempfile::TempDir, Host) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let components = root.join("components");
    let manifest = Manifest::load(&components.join("manifest.json")).expect("run `just build-guests` first");
    let entry = manifest.entry_for_file("pqc.wasm").expect("pqc built");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n[[provider]]\nname = \"pqc\"\ncomponent = \"pqc.wasm\"\nsha256 = {:?}\npriority = 90\n",
        components.display().to_string(),
        entry.sha256
    );
    let path: PathBuf = dir.path().join("cryptohost.toml");
    std::fs::write(&path, text).expect("config");
    let registry = cryptohost::load::open(&Config::load(&path).expect("config"), TrustMode::Pins).expect("load");
    (dir, registry)
}

const ALG: &str = "ML-DSA-65";

fn bench_ml_dsa_65(c: &mut Criterion) {
    let (_dir, registry) = registry();
    let p = registry.by_name("pqc").expect("loaded").clone();
    let msg = b"a 64-byte message, about the size of a DSSE PAE over a small doc.";

    // One key for both sides: generated natively, imported into the guest in RFC 9881 seed form.
    let key = SigningKey::<MlDsa65>::generate();
    let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
    let guest_key = p.import_pkcs8(pkcs8.as_bytes()).expect("the guest imports the seed form");
    let spki = p.public_key(&guest_key).expect("spki");
    let expanded = ExpandedSigningKey::<MlDsa65>::from_seed(&key.to_seed());
    let public = expanded.verifying_key();

    let native_verify = |m: &[u8], s: &[u8]| {
        let encoded = EncodedSignature::<MlDsa65>::try_from(s).expect("length");
        Signature::<MlDsa65>::decode(&encoded).is_some_and(|sig| public.verify_with_context(m, &[], &sig))
    };
    let sig = p.sign(&guest_key, ALG, SignInput::Message(msg), SigFormat::Der).expect("sign");
    assert!(native_verify(msg, &sig), "native rejects the guest's signature");
    let native_sig = expanded.sign_randomized(msg, &[], &mut SysRng).expect("native sign").encode();
    let verifier = p.open_verifier(ALG, &spki).expect("verifier");
    assert!(verifier.verify(SignInput::Message(msg), &native_sig, SigFormat::Der).unwrap(), "guest rejects native");

    let mut g = c.benchmark_group("sign-ML-DSA-65");
    g.bench_function("native", |b| {
        b.iter(|| expanded.sign_randomized(black_box(msg), &[], &mut SysRng).expect("sign").encode())
    });
    g.bench_function("wasm-guest", |b| {
        b.iter(|| p.sign(&guest_key, ALG, SignInput::Message(black_box(msg)), SigFormat::Der).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("verify-ML-DSA-65");
    g.bench_function("native", |b| b.iter(|| assert!(native_verify(black_box(msg), black_box(&sig)))));
    g.bench_function("wasm-guest", |b| {
        b.iter(|| assert!(verifier.verify(SignInput::Message(black_box(msg)), &sig, SigFormat::Der).unwrap()))
    });
    g.bench_function("registry", |b| {
        b.iter(|| {
            let served = registry.verify(ALG, &spki, SignInput::Message(black_box(msg)), &sig, SigFormat::Der).unwrap();
            assert!(served.value)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench_ml_dsa_65
}
criterion_main!(benches);
