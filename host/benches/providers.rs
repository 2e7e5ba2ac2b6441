//! Side by side, in one run: RustCrypto natively, the component's own code (provider-core and
//! fastverify) natively, the guest called through wasmtime (verifier opened once), and the full
//! registry path (ephemeral verifier per call, as the CLI does). The sandbox's own cost is
//! "wasm-guest" over "component code natively". After the criterion groups, [`paired`]
//! measures that cost and the throughput against `openssl speed` again, interleaved in rounds
//! of seconds, so that the machine's drift between criterion's groups stays out of the ratios.
//! Needs `just build-guests` first (`just bench` does it).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::provider::{Capability, SigFormat, SignInput};
use cryptohost::{Config, Host, TrustMode};

fn registry() -> (tempfile::TempDir, Host) {
    registry_of(&["offline-verification"])
}

/// A registry of the named components (each pinned to its built digest, the first at the
/// highest priority), with the precompiled cache and the native hashing provider off.
fn registry_of(names: &[&str]) -> (tempfile::TempDir, Host) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let components = root.join("components");
    let manifest = Manifest::load(&components.join("manifest.json")).expect("run `just build-guests` first");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n[native]\nhashing = false\n",
        components.display().to_string()
    );
    for (i, name) in names.iter().enumerate() {
        let file = format!("{name}.wasm");
        let entry = manifest.entry_for_file(&file).unwrap_or_else(|| panic!("{file} built"));
        text += &format!(
            "[[provider]]\nname = {name:?}\ncomponent = {file:?}\nsha256 = {:?}\npriority = {}\n",
            entry.sha256,
            200 - i
        );
    }
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

/// Rounds of the paired measurement below, and the wall time of each block in a round.
const ROUNDS: usize = 9;
const BLOCK: std::time::Duration = std::time::Duration::from_millis(400);

/// Operations per second of `op`, over one block of wall time.
fn rate(op: &mut dyn FnMut()) -> f64 {
    let start = std::time::Instant::now();
    let mut n = 0u64;
    loop {
        op();
        n += 1;
        let t = start.elapsed();
        if t >= BLOCK {
            return n as f64 / t.as_secs_f64();
        }
    }
}

/// OpenSSL's own (sign/s, verify/s) for `alg` (an `openssl speed` name): one burst of one
/// second each, in wall-clock time like every other block here (`-elapsed`; by default
/// `openssl speed` divides by its CPU time, which leaves out what other tenants take).
fn openssl_rates(alg: &str) -> Option<(f64, f64)> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-elapsed", "-seconds", "1", "-mr", alg])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `+F2:k:bits:sign/s:verify/s` (RSA), `+F4:k:bits:sign/s:verify/s` (ECDSA),
    // `+F6:k:bits:name:sign/s:verify/s` (EdDSA).
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let at = match f.first() {
            Some(&"+F2" | &"+F4") => 3,
            Some(&"+F6") => 4,
            _ => return None,
        };
        Some((f.get(at)?.parse().ok()?, f.get(at + 1)?.parse().ok()?))
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One paired case: the component's code natively, the same through wasmtime, and OpenSSL's
/// rate for the same operation (sign or verify of `openssl`'s algorithm).
struct Case<'a> {
    name: String,
    openssl: &'static str,
    verify: bool,
    native: Box<dyn FnMut() + 'a>,
    guest: Box<dyn FnMut() + 'a>,
}

/// The sandbox's cost and the throughput against OpenSSL, paired in time: in each of
/// [`ROUNDS`] rounds every case runs a block natively, a block through the component and (per
/// algorithm) a burst of `openssl speed`, one after the other; each ratio is taken within its
/// round and the median over rounds is reported with its range. A shared machine's speed drifts
/// by up to half between criterion's groups, which run minutes apart; a round is seconds.
/// Verification goes through fast-verification where it serves the algorithm (as the default
/// priorities route it), else offline-verification; signing through offline-verification. Each
/// is called as the request layer calls a provider: the host hashes the message natively (on
/// both sides) and the digest is verified or signed, EdDSA excepted; for ES256 and PS256 a
/// second row sends the whole message into the component, which hashes it itself.
/// Printed, and written to target/paired.json for `just bench-report`.
fn paired(_: &mut Criterion) {
    let (_dir, registry) = registry_of(&["fast-verification", "offline-verification"]);
    let fast = registry.by_name("fast-verification").expect("loaded").clone();
    let offline = registry.by_name("offline-verification").expect("loaded").clone();
    let msg: &[u8] = b"a 64-byte message, about the size of a DSSE PAE over a small doc.";
    let openssl_name = |alg: &str| match alg {
        "ES256" => "ecdsap256",
        "ES384" => "ecdsap384",
        "ES512" => "ecdsap521",
        "EdDSA" => "ed25519",
        _ => "rsa2048",
    };
    let mut cases: Vec<Case<'_>> = Vec::new();
    for alg in ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"] {
        let key = offline.generate(alg, 2048, true).expect("generate");
        let spki = offline.public_key(&key).expect("spki");
        let sig = offline.sign(&key, alg, SignInput::Message(msg), SigFormat::Der).expect("sign");
        let sig_alg = provider_core::sig_alg(alg).expect("known algorithm");
        // The component's code natively, and fast-verification where it serves the algorithm
        // (as the registry routes it), each with the key parsed once.
        let both = || {
            let own = provider_core::keys::PublicKey::from_spki(&sig_alg, &spki).expect("spki");
            let verifier =
                fast.open_verifier(alg, &spki).or_else(|_| offline.open_verifier(alg, &spki)).expect("verifier");
            (own, verifier)
        };
        // As the request layer calls a provider (what `sign`, `verify`, DSSE and the server
        // run): for a hash-then-sign algorithm the host hashes the input (natively, with the
        // native hashing provider on, the default) and the component signs or verifies the
        // digest; EdDSA takes the whole message. Both sides hash the same way each time.
        let prehash = (!matches!(sig_alg.scheme, provider_core::alg::Scheme::EdDsa)).then_some(sig_alg.hash);
        // One verify case: the digest of `hash` when given, else the whole message.
        let verify_case = |name: String, hash: Option<provider_core::alg::Hash>| {
            let (own, verifier) = both();
            let (alg_n, sig_n, sig_g) = (sig_alg, sig.clone(), sig.clone());
            Case {
                name,
                openssl: openssl_name(alg),
                verify: true,
                native: Box::new(move || {
                    let ok = match hash {
                        Some(h) => {
                            own.verify_digest(&alg_n, &h.digest(black_box(msg)), &sig_n, provider_core::Format::Der)
                        }
                        None => own.verify_message(&alg_n, black_box(msg), &sig_n, provider_core::Format::Der),
                    };
                    assert!(ok.expect("verify"))
                }),
                guest: Box::new(move || {
                    let ok = match hash {
                        Some(h) => {
                            verifier.verify(SignInput::Digest(&h.digest(black_box(msg))), &sig_g, SigFormat::Der)
                        }
                        None => verifier.verify(SignInput::Message(black_box(msg)), &sig_g, SigFormat::Der),
                    };
                    assert!(ok.unwrap())
                }),
            }
        };
        cases.push(verify_case(format!("verify {alg}"), prehash));
        if matches!(alg, "ES256" | "PS256") {
            // The same verification with the whole message sent into the component, which
            // then hashes it itself, without SHA-NI (as under `[policy] components_only`).
            cases.push(verify_case(format!("verify {alg}, message hashed in the component"), None));
        }
        let pkcs8 = offline.export_pkcs8(&key).expect("export");
        let own = provider_core::keys::PrivateKey::from_pkcs8(&pkcs8).expect("pkcs8");
        let mut rng = provider_core::rng::HostRng(os_random);
        let p = offline.clone();
        cases.push(Case {
            name: format!("sign {alg}"),
            openssl: openssl_name(alg),
            verify: false,
            native: Box::new(move || {
                let f = provider_core::Format::Der;
                black_box(match prehash {
                    Some(h) => own.sign_digest(&sig_alg, &h.digest(black_box(msg)), f, &mut rng).unwrap(),
                    None => own.sign_message(&sig_alg, black_box(msg), f, &mut rng).unwrap(),
                });
            }),
            guest: Box::new(move || {
                black_box(match prehash {
                    Some(h) => p.sign(&key, alg, SignInput::Digest(&h.digest(black_box(msg))), SigFormat::Der).unwrap(),
                    None => p.sign(&key, alg, SignInput::Message(black_box(msg)), SigFormat::Der).unwrap(),
                });
            }),
        });
    }
    // Per case: (native/s, guest/s, OpenSSL/s) of each round.
    let mut rates: Vec<Vec<(f64, f64, Option<f64>)>> = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        eprintln!("paired: round {}/{ROUNDS}", round + 1);
        let mut peer: std::collections::HashMap<&str, Option<(f64, f64)>> = Default::default();
        for (i, c) in cases.iter_mut().enumerate() {
            let theirs = *peer.entry(c.openssl).or_insert_with(|| openssl_rates(c.openssl));
            let native = rate(&mut c.native);
            let guest = rate(&mut c.guest);
            rates[i].push((native, guest, theirs.map(|(s, v)| if c.verify { v } else { s })));
        }
    }
    println!("\nthe sandbox's cost and OpenSSL's throughput, paired ({ROUNDS} rounds; median [min, max] over rounds):");
    let mut json = Vec::new();
    for (c, r) in cases.iter().zip(&rates) {
        let mut cost: Vec<f64> = r.iter().map(|(n, g, _)| n / g).collect();
        let mut vs: Vec<f64> = r.iter().filter_map(|(_, g, o)| o.map(|o| g / o)).collect();
        let mut guest: Vec<f64> = r.iter().map(|(_, g, _)| *g).collect();
        let mut theirs: Vec<f64> = r.iter().filter_map(|(_, _, o)| *o).collect();
        let range =
            |v: &[f64]| (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(0.0, f64::max));
        let (cost_m, cost_r) = (median(&mut cost), range(&cost));
        let (guest_m, theirs_m) = (median(&mut guest), if theirs.is_empty() { 0.0 } else { median(&mut theirs) });
        let (vs_m, vs_r) = if vs.is_empty() { (0.0, (0.0, 0.0)) } else { (median(&mut vs), range(&vs)) };
        println!(
            "  {:<14} sandbox cost {cost_m:.2}x [{:.2}, {:.2}] | component {guest_m:>9.0}/s, OpenSSL {theirs_m:>9.0}/s: {vs_m:.2} [{:.2}, {:.2}]",
            c.name, cost_r.0, cost_r.1, vs_r.0, vs_r.1
        );
        json.push(serde_json::json!({
            "case": c.name,
            "rounds": ROUNDS,
            "sandbox_cost": [cost_m, cost_r.0, cost_r.1],
            "component_per_s": guest_m,
            "openssl_per_s": theirs_m,
            "component_over_openssl": [vs_m, vs_r.0, vs_r.1],
        }));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let text = serde_json::to_string_pretty(&json).expect("JSON");
    std::fs::write(root.join("target/paired.json"), text + "\n").expect("target/paired.json");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench_verify, bench_sign, bench_sha256, bench_dispatch, paired
}
criterion_main!(benches);
