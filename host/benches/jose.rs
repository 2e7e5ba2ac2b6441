//! ES256 JWS verify of a compact token with a 1 KiB payload, in one run: through the request
//! layer in-process (parse, header rules, the key classified, the signing input hashed and
//! verified through the offline verification component), the providers' work alone (hash +
//! verify), the same request through a running `cryptohost serve` (the typed client over the
//! Unix socket), the whole one-shot `cryptohost jws verify` process, and Node's `jose`
//! (`compactVerify`, in its own process, timed by itself over the same iteration count). Node's
//! `jose` is the one `just jose-peers` installs under target/interop/node; without it that
//! series is left out and said so. Needs `just build-guests`.

use std::hint::black_box;
use std::io::Cursor;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::request::{Allow, Audit, Context, GivenJoseKey, JoseTrust, JwsVerify};
use cryptohost::{Config, TrustMode};
use cryptohost_client::Client;
use cryptohost_client::api::{DssePublicKey, JoseKeys, JwsVerifyRequest};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// Node's `compactVerify` over `iters` iterations, timed inside node.
fn node_verify(script: &Path, token: &str, jwk: &str, iters: u64) -> Option<Duration> {
    let out = Command::new("node").arg(script).args([token, jwk, &iters.to_string()]).output().ok()?;
    if !out.status.success() {
        eprintln!("node: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let ns: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_nanos(ns))
}

const NODE_BENCH: &str = r#"
import { compactVerify, importJWK } from "jose";
const [token, jwkText, iters] = process.argv.slice(2);
const key = await importJWK(JSON.parse(jwkText), "ES256");
for (let i = 0; i < 50; i++) await compactVerify(token, key);
const n = Number(iters);
const start = process.hrtime.bigint();
for (let i = 0; i < n; i++) await compactVerify(token, key);
process.stdout.write(String(process.hrtime.bigint() - start));
"#;

fn bench_jose(c: &mut Criterion) {
    let root = root();
    let components = root.join("components");
    let manifest = Manifest::load(&components.join("manifest.json")).expect("run `just build-guests` first");
    let pin = |f: &str| manifest.entry_for_file(f).expect("built").sha256.clone();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("jose.sock");
    // The precompiled cache on, as a deployed CLI has it (warmed by the first run below).
    let cache = dir.path().join("cache");
    let digests = dir.path().join("cache-digests");
    for d in [&cache, &digests] {
        std::fs::DirBuilder::new().mode(0o700).create(d).unwrap();
    }
    let text = format!(
        "component_dir = {:?}\n[cache]\ndir = {:?}\ndigest_dir = {:?}\n\
         [[provider]]\nname = \"offline-verification\"\ncomponent = \"offline-verification.wasm\"\nsha256 = {:?}\npriority = 100\n\
         [service]\nlisten = \"unix:{}\"\n",
        components.display().to_string(),
        cache.display().to_string(),
        digests.display().to_string(),
        pin("offline-verification.wasm"),
        socket.display()
    );
    let path = dir.path().join("cryptohost.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let host = cryptohost::load::open(&config, TrustMode::Pins).unwrap();
    let audit = Audit::at(config.audit_path.clone(), config.audit_options());
    let ctx = Context::new(&host, &config, &audit, &Allow);

    // An ES256 key made in the component, and a compact JWS over 1 KiB signed with it.
    let p = host.by_name("offline-verification").unwrap().clone();
    let id = p.generate("ES256", 0, false).unwrap();
    let spki = p.public_key(&id).unwrap();
    let pem = cryptohost::keyfile::to_pem("PUBLIC KEY", &spki).unwrap().to_string();
    let jwk = serde_json::Value::Object(cryptohost::jose::jwk::publish(&spki, None).unwrap()).to_string();
    let payload = vec![b'x'; 1024];
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#), URL_SAFE_NO_PAD.encode(&payload));
    let digest = p.digest_reader("SHA-256", &mut Cursor::new(input.as_bytes())).unwrap();
    let sig = p.sign(&id, "ES256", SignInput::Digest(&digest), SigFormat::P1363).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
    let token_file = dir.path().join("token.jws");
    std::fs::write(&token_file, &token).unwrap();
    let pub_file = dir.path().join("key.pub");
    std::fs::write(&pub_file, &pem).unwrap();

    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_cryptohost"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server"),
    );
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Client::new(&socket);
    let request = JwsVerifyRequest {
        jws: token.clone(),
        keys: JoseKeys {
            public_keys: vec![DssePublicKey { public_key: pem.clone(), algorithm: None, name: None }],
            ..Default::default()
        },
        ..Default::default()
    };
    let verifier = p.open_verifier("ES256", &spki).unwrap();

    let mut g = c.benchmark_group("jws-verify-es256-1KiB");
    g.bench_function("in-process (request layer)", |b| {
        b.iter(|| {
            let req = JwsVerify {
                jws: std::borrow::Cow::Borrowed(black_box(token.as_bytes())),
                trust: JoseTrust::Keys(vec![GivenJoseKey {
                    name: "k".into(),
                    bytes: pem.as_bytes().to_vec(),
                    algorithm: None,
                }]),
                threshold: 1,
                detached: None,
                at: None,
            };
            assert!(cryptohost::request::jws_verify(&ctx, req).unwrap().valid)
        })
    });
    g.bench_function("providers only (hash + verify)", |b| {
        b.iter(|| {
            let d = p.digest_reader("SHA-256", &mut Cursor::new(black_box(input.as_bytes()))).unwrap();
            assert!(verifier.verify(SignInput::Digest(&d), &sig, SigFormat::P1363).unwrap())
        })
    });
    g.bench_function("through the server (client over the socket)", |b| {
        b.iter(|| assert!(client.jws_verify(black_box(&request)).unwrap().valid))
    });
    g.bench_function("one-shot CLI process", |b| {
        b.iter(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_cryptohost"))
                .args(["--config", path.to_str().unwrap(), "-q", "jws", "verify", "--pub"])
                .args([&pub_file, &token_file])
                .output()
                .unwrap();
            assert!(out.status.success())
        })
    });
    // Beside the node_modules the peers were installed into, so that `import "jose"` finds it.
    let script = root.join("target/interop/node/cryptohost-jose-bench.mjs");
    if std::fs::write(&script, NODE_BENCH).is_ok() && node_verify(&script, &token, &jwk, 1).is_some() {
        g.bench_function("node jose compactVerify (in its process)", |b| {
            b.iter_custom(|iters| node_verify(&script, &token, &jwk, iters).expect("node"))
        });
    } else {
        eprintln!("jose bench: Node's jose is not installed (just jose-peers): that series is left out");
    }
    g.finish();
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench_jose
}
criterion_main!(benches);
