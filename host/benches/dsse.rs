//! DSSE verification of a 1 KiB and a 1 MiB payload with one and three signatures, side by
//! side with the provider work alone (hashing the PAE + one verify per signature), so the
//! share of time spent outside the providers shows. Needs `just build-guests`.

use std::hint::black_box;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::dsse::{EncodedEnvelope, Envelope, Signature, TrustedKey, pae, verify, verify_encoded};
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{Config, Host, TrustMode};

fn registry() -> (tempfile::TempDir, Host) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let components = root.join("components");
    let manifest = Manifest::load(&components.join("manifest.json")).expect("run `just build-guests` first");
    let entry = manifest.entry_for_file("offline-verification.wasm").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n[[provider]]\nname = \"offline-verification\"\ncomponent = \"offline-verification.wasm\"\nsha256 = {:?}\npriority = 100\n",
        components.display().to_string(),
        entry.sha256
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let r = cryptohost::load::open(&Config::load(&path).unwrap(), TrustMode::Pins).unwrap();
    (dir, r)
}

fn bench_dsse(c: &mut Criterion) {
    let (_dir, registry) = registry();
    let p = registry.by_name("offline-verification").unwrap().clone();
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = p.generate("ES256", 0, false).unwrap();
        let spki = p.public_key(&id).unwrap();
        keys.push(TrustedKey {
            name: format!("k{i}"),
            // Keys count by fingerprint: three keys are three fingerprints.
            fingerprint: cryptohost::dsse::fingerprint(&registry, &spki).unwrap(),
            spki,
            algorithm: "ES256".into(),
            hints: vec![],
        });
        ids.push(id);
    }
    for size in [1usize << 10, 1 << 20] {
        let payload = vec![b'x'; size];
        let body = pae("application/vnd.in-toto+json", &payload);
        let digest = p.digest_reader("SHA-256", &mut Cursor::new(&body)).unwrap();
        for n in [1usize, 3] {
            let signatures = (0..n)
                .map(|i| Signature {
                    keyid: format!("k{i}"),
                    sig: p.sign(&ids[i], "ES256", SignInput::Digest(&digest), SigFormat::Der).unwrap(),
                })
                .collect();
            let env =
                Envelope { payload: payload.clone(), payload_type: "application/vnd.in-toto+json".into(), signatures };
            let json = env.to_json();
            let trusted = &keys[..n];
            let verifiers: Vec<_> = trusted.iter().map(|k| p.open_verifier("ES256", &k.spki).unwrap()).collect();
            let label = format!("dsse-verify-{}KiB-{n}sig", size >> 10);
            let mut g = c.benchmark_group(&label);
            g.bench_function("full (parse + PAE + registry)", |b| {
                b.iter(|| {
                    let env = Envelope::parse(black_box(json.as_bytes()), 64 << 20, 16).unwrap();
                    assert!(verify(&registry, &env, trusted, n, SigFormat::Der).unwrap().valid)
                })
            });
            // What `dsse verify` does: the payload left in base64, hashed as it is decoded.
            g.bench_function("full, payload streamed from base64 (the CLI's path)", |b| {
                b.iter(|| {
                    let env = EncodedEnvelope::parse(black_box(json.as_bytes()), 64 << 20, 16).unwrap();
                    assert!(verify_encoded(&registry, &env, trusted, n, SigFormat::Der).unwrap().valid)
                })
            });
            g.bench_function("providers only (hash PAE + verify)", |b| {
                b.iter(|| {
                    let d = p.digest_reader("SHA-256", &mut Cursor::new(black_box(&body))).unwrap();
                    for (v, s) in verifiers.iter().zip(&env.signatures) {
                        assert!(v.verify(SignInput::Digest(&d), &s.sig, SigFormat::Der).unwrap());
                    }
                })
            });
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_dsse
}
criterion_main!(benches);
