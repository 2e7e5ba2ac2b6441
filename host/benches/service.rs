//! The server beside the same operation in-process, in one run: ES256 and RS256 verify, a
//! 1 MiB hash, and ES256 signs with a simulation key and a SoftHSM2 key, at 1, 2 and 8
//! concurrent clients over the Unix socket (clients and server share the machine's cores).
//! After the criterion groups it prints p50/p99 latency per request at one client. A sign
//! through the server also writes and syncs its audit line; the in-process sign does not.
//! Needs `just build-guests` and SoftHSM2 (`just bench-service` does both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{Config, CryptoProvider, Host, TrustMode};
use cryptohost_client::{Client, Input, KeyName, PublicKey, SignRequest, VerifyRequest};

struct Fixture {
    _dir: tempfile::TempDir,
    server: Child,
    socket: PathBuf,
    host: Host,
    /// (algorithm, SPKI DER, PEM, signature over MESSAGE)
    keys: Vec<(String, Vec<u8>, String, Vec<u8>)>,
}

const MESSAGE: &[u8] = b"a release manifest, signed once and verified many times";
const HSM_KEY: &str = "pkcs11:token=bench;object=bench-ec";

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn uid() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("0")
        .to_string()
}

fn fixture() -> Fixture {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let components = root.join("components");
    let manifest = Manifest::load(&components.join("manifest.json")).expect("run `just build-guests` first");
    let pin = |f: &str| manifest.entry_for_file(f).expect("built").sha256.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("bench.sock");
    // A SoftHSM2 token of our own, with one ES256 key, made before the server starts.
    std::fs::create_dir(dir.path().join("tokens")).expect("tokens");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.path().display()
        ),
    )
    .expect("softhsm2.conf");
    // SAFETY: set before any thread or PKCS#11 module exists in this process.
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var("BENCH_PIN", "1234");
    }
    let made = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "bench", "--so-pin", "87654321", "--pin", "1234"])
        .stdout(Stdio::null())
        .status()
        .expect("softhsm2-util (just setup)");
    assert!(made.success());
    let text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n\
         [[provider]]\nname = \"offline-verification\"\ncomponent = \"offline-verification.wasm\"\nsha256 = {:?}\npriority = 100\n\
         [[provider]]\nname = \"simulation\"\ncomponent = \"simulation.wasm\"\nsha256 = {:?}\npriority = 50\nkey_prefix = \"sim\"\nsettings = {{ seed = \"bench\" }}\n\
         [hsm]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntokens = [\"bench\"]\npin_env = \"BENCH_PIN\"\npool_size = 2\n\
         [service]\nlisten = \"unix:{}\"\n[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\"]\nkeys = [\"sim:bench-*\", \"{HSM_KEY}\"]\n",
        components.display().to_string(),
        pin("offline-verification.wasm"),
        pin("simulation.wasm"),
        socket.display(),
        uid()
    );
    let path = dir.path().join("cryptohost.toml");
    std::fs::write(&path, text).expect("config");
    let host = cryptohost::load::open(&Config::load(&path).expect("config"), TrustMode::Pins).expect("load");
    host.hsm().expect("hsm").named_key(HSM_KEY, "ES256", 0, true).expect("an ES256 key on the token");
    // The server gets the module to itself until the key exists.
    host.hsm().expect("hsm").disconnect();
    let server = Command::new(env!("CARGO_BIN_EXE_cryptohost"))
        .args(["--config", path.to_str().expect("utf-8"), "serve"])
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sim = host.by_prefix("sim").expect("simulation").clone();
    let keys = ["ES256", "RS256"]
        .iter()
        .map(|alg| {
            let id = sim.named_key(&format!("bench-{alg}"), alg, 2048, false).expect("seeded key");
            let spki = sim.public_key(&id).expect("spki");
            let sig = sim.sign(&id, alg, SignInput::Message(MESSAGE), SigFormat::Der).expect("sign");
            let pem = cryptohost::keyfile::to_pem("PUBLIC KEY", &spki).expect("pem").to_string();
            (alg.to_string(), spki, pem, sig)
        })
        .collect();
    Fixture { _dir: dir, server, socket, host, keys }
}

/// One request of each kind through the client.
fn remote(client: &Client, f: &Fixture, op: &str, big: &[u8]) {
    match op {
        "verify ES256" | "verify RS256" => {
            let k = &f.keys[usize::from(op.ends_with("RS256"))];
            let v = client
                .verify(&VerifyRequest {
                    algorithm: &k.0,
                    key: PublicKey::Pem(&k.2),
                    signature: &k.3,
                    input: Input::Data(MESSAGE),
                    signature_format: "der",
                })
                .expect("verify");
            assert_eq!(v["valid"], true);
        }
        "hash 1 MiB" => {
            client.hash("SHA-256", &mut std::io::Cursor::new(big)).expect("hash");
        }
        _ => {
            let key = if op.contains("SoftHSM") { HSM_KEY } else { "sim:bench-es256" };
            client
                .sign(&SignRequest {
                    key: KeyName::Reference(key),
                    algorithm: "ES256",
                    input: Input::Data(MESSAGE),
                    signature_format: "der",
                })
                .expect("sign");
        }
    }
}

/// The same operation in this process, through the registry.
fn local(f: &Fixture, op: &str, big: &[u8]) {
    match op {
        "verify ES256" | "verify RS256" => {
            let k = &f.keys[usize::from(op.ends_with("RS256"))];
            let d = f.host.digest("SHA-256", MESSAGE).expect("digest").value;
            assert!(f.host.verify(&k.0, &k.1, SignInput::Digest(&d), &k.3, SigFormat::Der).expect("verify").value);
        }
        "hash 1 MiB" => {
            f.host.digest_stream("SHA-256", &mut std::io::Cursor::new(big)).expect("hash");
        }
        _ if op.contains("SoftHSM") => {
            let hsm = f.host.hsm().expect("hsm");
            let id = hsm.named_key(HSM_KEY, "ES256", 0, false).expect("key");
            hsm.sign(&id, "ES256", SignInput::Message(MESSAGE), SigFormat::Der).expect("sign");
        }
        _ => {
            let sim = f.host.by_prefix("sim").expect("sim");
            let id = sim.named_key("bench-es256", "ES256", 0, false).expect("key");
            sim.sign(&id, "ES256", SignInput::Message(MESSAGE), SigFormat::Der).expect("sign");
        }
    }
}

const OPS: [&str; 5] =
    ["verify ES256", "verify RS256", "hash 1 MiB", "sign ES256 (simulation)", "sign ES256 (SoftHSM)"];

fn bench(c: &mut Criterion) {
    let f = Arc::new(fixture());
    let big = Arc::new(vec![0x5au8; 1 << 20]);
    for op in OPS {
        let mut g = c.benchmark_group(format!("service/{op}"));
        g.sample_size(20).measurement_time(Duration::from_secs(3));
        g.bench_function("in-process", |b| b.iter(|| local(&f, op, &big)));
        for clients in [1usize, 2, 8] {
            g.bench_function(format!("server, {clients} client(s)"), |b| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(clients as u64);
                    let started = Instant::now();
                    let handles: Vec<_> = (0..clients)
                        .map(|_| {
                            let f = f.clone();
                            let big = big.clone();
                            std::thread::spawn(move || {
                                let client = Client::new(&f.socket);
                                for _ in 0..per {
                                    remote(&client, &f, op, &big);
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().expect("no request error");
                    }
                    // Wall time per request: the throughput of all clients together.
                    started.elapsed().mul_f64(iters as f64 / (per * clients as u64) as f64)
                });
            });
        }
        g.finish();
    }
    // Latency percentiles at one client, and what the server adds at p50.
    println!("\nlatency per request at 1 client (500 requests each):");
    let client = Client::new(&f.socket);
    // The transport's floor: a request that does no work (GET /v1/health).
    let mut floor: Vec<Duration> = (0..500)
        .map(|_| {
            let t = Instant::now();
            client.health().expect("health");
            t.elapsed()
        })
        .collect();
    floor.sort();
    println!(
        "  {:<26} server p50 {:>9.1?} p99 {:>9.1?} (a round trip that does no work)",
        "health", floor[250], floor[495]
    );
    for op in OPS {
        let mut remote_t: Vec<Duration> = (0..500)
            .map(|_| {
                let t = Instant::now();
                remote(&client, &f, op, &big);
                t.elapsed()
            })
            .collect();
        let mut local_t: Vec<Duration> = (0..500)
            .map(|_| {
                let t = Instant::now();
                local(&f, op, &big);
                t.elapsed()
            })
            .collect();
        remote_t.sort();
        local_t.sort();
        let p = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize];
        println!(
            "  {op:<26} server p50 {:>9.1?} p99 {:>9.1?} | in-process p50 {:>9.1?} p99 {:>9.1?} | server adds {:>8.1?} at p50",
            p(&remote_t, 0.5),
            p(&remote_t, 0.99),
            p(&local_t, 0.5),
            p(&local_t, 0.99),
            p(&remote_t, 0.5).saturating_sub(p(&local_t, 0.5))
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
