//! The server beside the same operation in-process, in one run: ES256 and RS256 verify, a
//! 1 MiB hash, and ES256 signs with a simulation key and a SoftHSM2 key, at 1, 2 and 8
//! concurrent clients over the Unix socket (clients and server share the machine's cores), and
//! at one client that polls for its answers ([`Client::busy_poll`]).
//!
//! After the criterion groups it prints latency per request at one client, and what the server
//! adds at p50 over the in-process call, for the default client and the polling one. Beside
//! them is the machine's own floor: a bare Unix-socket echo that holds each answer as long as
//! the in-process call takes (no HTTP, no JSON, no server), so what the kernel and the virtual
//! machine charge for a round trip is told apart from what the server's stack adds. All series
//! run in interleaved blocks, and "adds" is the median over rounds of each block's p50 minus the
//! in-process block's p50 in the same round: the speed of a shared machine drifts, and pairing
//! in time keeps that drift out of the difference. A sign through the server also writes and
//! syncs its audit line; the in-process sign does not. Needs `just build-guests` and SoftHSM2
//! (`just bench-service` does both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::provider::Signing;
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{Config, Host, TrustMode};
use cryptohost_client::{Client, SignRequest, VerifyRequest};

struct Fixture {
    _dir: tempfile::TempDir,
    server: Child,
    socket: PathBuf,
    /// The same config, its audit log's checkpoints signed by an Ed25519 file key every 1000
    /// lines (the other server's log is a Merkle tree too, with no checkpoints).
    signed: Child,
    signed_socket: PathBuf,
    host: Host,
    /// The server's config with an audit log of its own (`inproc-audit.jsonl`, same disk), for
    /// signing through the request layer in this process.
    config: Config,
    audit: cryptohost::request::Audit,
    /// A file on the same disk for the `fdatasync` floor.
    floor: std::fs::File,
    /// (algorithm, SPKI DER, PEM, signature over MESSAGE)
    keys: Vec<(String, Vec<u8>, String, Vec<u8>)>,
}

const MESSAGE: &[u8] = b"a release manifest, signed once and verified many times";
const HSM_KEY: &str = "pkcs11:token=bench;object=bench-ec";

impl Drop for Fixture {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.signed] {
            let _ = child.kill();
            let _ = child.wait();
        }
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
         [service]\nlisten = \"unix:{}\"\nbody_budget_mib = 1024\n[[service.allow]]\nusers = [\"{}\"]\noperations = [\"sign\"]\nkeys = [\"sim:bench-*\", \"{HSM_KEY}\"]\n",
        components.display().to_string(),
        pin("offline-verification.wasm"),
        pin("simulation.wasm"),
        socket.display(),
        uid()
    );
    let path = dir.path().join("cryptohost.toml");
    std::fs::write(&path, &text).expect("config");
    let mut config = Config::load(&path).expect("config");
    let host = cryptohost::load::open(&config, TrustMode::Pins).expect("load");
    config.audit_path = dir.path().join("inproc-audit.jsonl");
    let audit = cryptohost::request::Audit::at(config.audit_path.clone(), config.audit_options());
    let floor = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(dir.path().join("fdatasync-floor"))
        .expect("floor file");
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
    // The twin with signed checkpoints: its own directory (log, socket), the same components.
    let twin = dir.path().join("signed");
    std::fs::create_dir(&twin).expect("twin dir");
    let signed_socket = twin.join("bench.sock");
    let made = Command::new(env!("CARGO_BIN_EXE_cryptohost"))
        .args(["--config", path.to_str().expect("utf-8"), "keygen", "--alg", "EdDSA", "--out"])
        .arg(twin.join("audit.key"))
        .stdout(Stdio::null())
        .status()
        .expect("keygen");
    assert!(made.success());
    let twin_text = text.replace(&socket.display().to_string(), &signed_socket.display().to_string()).replace(
        "[hsm]\n",
        "[audit]\npath = \"audit.jsonl\"\nkey = \"file:audit.key\"\ncheckpoint_every = 1000\n[hsm]\n",
    );
    let twin_path = twin.join("cryptohost.toml");
    std::fs::write(&twin_path, twin_text).expect("twin config");
    let signed = Command::new(env!("CARGO_BIN_EXE_cryptohost"))
        .args(["--config", twin_path.to_str().expect("utf-8"), "serve"])
        .stderr(Stdio::null())
        .spawn()
        .expect("start the twin server");
    while std::os::unix::net::UnixStream::connect(&signed_socket).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the twin server did not start");
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
    Fixture { _dir: dir, server, socket, signed, signed_socket, host, config, audit, floor, keys }
}

/// One request of each kind through the client.
fn remote(client: &Client, f: &Fixture, op: &str, big: &[u8]) {
    match op {
        "verify ES256" | "verify RS256" => {
            let k = &f.keys[usize::from(op.ends_with("RS256"))];
            let v = client
                .verify(&VerifyRequest {
                    algorithm: k.0.clone(),
                    public_key: Some(k.2.clone()),
                    signature: k.3.clone(),
                    data: Some(MESSAGE.to_vec()),
                    signature_format: Some("der".into()),
                    ..Default::default()
                })
                .expect("verify");
            assert!(v.valid);
        }
        "hash 1 MiB" => {
            client.hash("SHA-256", &mut std::io::Cursor::new(big)).expect("hash");
        }
        _ => {
            let key = if op.contains("SoftHSM") { HSM_KEY } else { "sim:bench-es256" };
            client
                .sign(&SignRequest {
                    key: Some(key.into()),
                    algorithm: Some("ES256".into()),
                    data: Some(MESSAGE.to_vec()),
                    signature_format: Some("der".into()),
                    ..Default::default()
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
        let polling = Client::new(&f.socket).busy_poll(Duration::from_millis(1));
        g.bench_function("server, 1 polling client", |b| b.iter(|| remote(&polling, &f, op, &big)));
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
    audit_checkpoints(c, &f, &big);
    latency(&f, &big);
    sign_parts(&f);
}

/// What the signed checkpoints cost a sign through the server: the same sign against the two
/// servers, one after the other at 1 and 8 clients (the Merkle tree itself is in both).
fn audit_checkpoints(c: &mut Criterion, f: &Arc<Fixture>, big: &Arc<Vec<u8>>) {
    let mut g = c.benchmark_group("service/sign ES256 (simulation), audit checkpoints");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for clients in [1usize, 8] {
        for (name, socket) in [("off", f.socket.clone()), ("every 1000 lines", f.signed_socket.clone())] {
            g.bench_function(format!("checkpoints {name}, {clients} client(s)"), |b| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(clients as u64);
                    let started = Instant::now();
                    let handles: Vec<_> = (0..clients)
                        .map(|_| {
                            let (f, big, socket) = (f.clone(), big.clone(), socket.clone());
                            std::thread::spawn(move || {
                                let client = Client::new(&socket);
                                for _ in 0..per {
                                    remote(&client, &f, "sign ES256 (simulation)", &big);
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().expect("no request error");
                    }
                    started.elapsed().mul_f64(iters as f64 / (per * clients as u64) as f64)
                });
            });
        }
    }
    g.finish();
}

/// Rounds of interleaved blocks per series: the machine's speed drifts (other tenants), so
/// every series samples the same stretches of time.
const ROUNDS: usize = 40;
const BLOCK: usize = 25;

/// Each of `n` calls of `op`, timed.
fn timed(n: usize, mut op: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            op();
            t.elapsed()
        })
        .collect()
}

fn p50(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(v: &mut [Duration]) -> Duration {
    v.sort();
    v[(v.len() - 1) * 99 / 100]
}

/// Latency at one client, and what the server adds at p50 over the in-process call: with the
/// default client (asleep in `read` until the answer comes) and with a polling client
/// ([`Client::busy_poll`]). Beside them, the machine's own floor: a bare Unix-socket echo that
/// holds each answer as long as the in-process call takes (no HTTP, no JSON, no server).
fn latency(f: &Arc<Fixture>, big: &[u8]) {
    println!("\nlatency per request at 1 client ({ROUNDS} rounds of {BLOCK} requests per series, interleaved):");
    let blocking = Client::new(&f.socket);
    let polling = Client::new(&f.socket).busy_poll(Duration::from_millis(1));
    let echo = Echo::start(&f.socket.with_extension("echo"));
    let time = |n: usize, op: Box<dyn FnMut() + '_>| timed(n, op);
    let mut health = Vec::new();
    for _ in 0..ROUNDS {
        health.extend(time(BLOCK, Box::new(|| drop(blocking.health().expect("health")))));
    }
    println!(
        "  {:<24} server p50 {:>8.1?} p99 {:>8.1?} (a request that does no work)",
        "health",
        p50(&mut health),
        p99(&mut health)
    );
    for op in OPS {
        // The echo holds its answers as long as the in-process call took, measured first.
        let mut warm = time(BLOCK * 2, Box::new(|| local(f, op, big)));
        let hold = p50(&mut warm);
        // Per series: every request's time, and each round's block p50 minus the p50 of the
        // in-process block of the same round (what the server adds, paired in time).
        let mut all: [Vec<Duration>; 5] = Default::default();
        let mut adds: [Vec<i64>; 4] = Default::default();
        for _ in 0..ROUNDS {
            let mut l = time(BLOCK, Box::new(|| local(f, op, big)));
            let mut rounds = [
                time(BLOCK, Box::new(|| remote(&blocking, f, op, big))),
                time(BLOCK, Box::new(|| remote(&polling, f, op, big))),
                time(BLOCK, Box::new(|| echo.ask(hold, Duration::ZERO))),
                time(BLOCK, Box::new(|| echo.ask(hold, Duration::from_millis(1)))),
            ];
            // The echo is measured against what it was told to hold.
            let base = p50(&mut l).as_nanos() as i64;
            for (i, r) in rounds.iter_mut().enumerate() {
                let against = if i < 2 { base } else { hold.as_nanos() as i64 };
                adds[i].push(p50(r).as_nanos() as i64 - against);
                all[i + 1].extend_from_slice(r);
            }
            all[0].extend(l);
        }
        let added = |v: &mut Vec<i64>| {
            v.sort();
            Duration::from_nanos(v[v.len() / 2].max(0) as u64)
        };
        let [l, b, p, _, _] = &mut all;
        let [ab, ap, aeb, aep] = &mut adds;
        println!(
            "  {op:<24} in-process p50 {:>8.1?} | server p50 {:>8.1?} p99 {:>8.1?}, adds {:>7.1?} \
             | polling client p50 {:>8.1?}, adds {:>7.1?} | socket echo adds {:>7.1?}, polling {:>7.1?}",
            p50(l),
            p50(b),
            p99(b),
            added(ab),
            p50(p),
            added(ap),
            added(aeb),
            added(aep),
        );
    }
}

/// One sign through the request layer in this process: the server's path without HTTP, JSON
/// and the hop to the blocking pool (the gate allows all, the audit line is written and synced).
fn request_layer_sign(f: &Fixture) {
    let req = SignRequest {
        key: Some("sim:bench-es256".into()),
        algorithm: Some("ES256".into()),
        data: Some(MESSAGE.to_vec()),
        signature_format: Some("der".into()),
        ..Default::default()
    };
    let ctx = cryptohost::request::Context::new(&f.host, &f.config, &f.audit, &cryptohost::request::Allow);
    let sign = cryptohost::request::Sign::from_wire(&req).expect("request");
    cryptohost::request::sign(&ctx, sign).expect("sign");
}

/// The disk's floor for a synced audit line: a 300-byte append and `fdatasync`.
fn fdatasync_floor(f: &Fixture) {
    use std::io::Write;
    let mut file = &f.floor;
    file.write_all(&[b'x'; 300]).expect("append");
    file.sync_data().expect("fdatasync");
}

/// Where a sign's time goes at one client, each part paired in time with the one below it:
/// the provider call, the request layer with its synced audit line, the disk's `fdatasync`
/// floor, an HTTP round trip that does no work, and the sign through the server.
fn sign_parts(f: &Arc<Fixture>) {
    let client = Client::new(&f.socket);
    type Series<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let series: [Series<'_>; 5] = [
        ("provider sign (in-process)", Box::new(|| local(f, "sign ES256 (simulation)", &[]))),
        ("request layer + synced audit line", Box::new(|| request_layer_sign(f))),
        ("fdatasync of a 300-byte append", Box::new(|| fdatasync_floor(f))),
        ("server: health (no work)", Box::new(|| drop(client.health().expect("health")))),
        ("server: sign", Box::new(|| remote(&client, f, "sign ES256 (simulation)", &[]))),
    ];
    let mut all: [Vec<Duration>; 5] = Default::default();
    let mut round_p50: [Vec<i64>; 5] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (_, op)) in series.iter().enumerate() {
            let mut v = timed(BLOCK, op);
            round_p50[i].push(p50(&mut v).as_nanos() as i64);
            all[i].extend(v);
        }
    }
    let median_us = |mut d: Vec<i64>| {
        d.sort();
        d[d.len() / 2] as f64 / 1000.0
    };
    // The median over rounds of (this block's p50 - that block's p50): paired in time.
    let diff = |a: usize, b: usize| median_us(round_p50[a].iter().zip(&round_p50[b]).map(|(x, y)| x - y).collect());
    println!("\nsign ES256 (simulation) at 1 client, by part ({ROUNDS} rounds of {BLOCK}, interleaved):");
    for (i, (name, _)) in series.iter().enumerate() {
        println!("  {name:<36} p50 {:>8.1?} p99 {:>8.1?}", p50(&mut all[i]), p99(&mut all[i]));
    }
    println!(
        "  the audit line adds {:.0} us over the provider call (the fdatasync alone: {:.0} us); \
         the server adds {:.0} us over the request layer (an HTTP round trip alone: {:.0} us)",
        diff(1, 0),
        median_us(round_p50[2].clone()),
        diff(4, 1),
        median_us(round_p50[3].clone()),
    );
}

/// A bare Unix-socket echo on its own thread: each 8-byte request names how many nanoseconds
/// to hold the answer (spinning, as a computation would); the answer is the same 8 bytes.
struct Echo {
    conn: std::sync::Mutex<std::os::unix::net::UnixStream>,
}

impl Echo {
    fn start(path: &Path) -> Echo {
        use std::io::{Read, Write};
        let listener = std::os::unix::net::UnixListener::bind(path).expect("echo socket");
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else { return };
            let mut req = [0u8; 8];
            while s.read_exact(&mut req).is_ok() {
                let hold = Duration::from_nanos(u64::from_le_bytes(req));
                let t = Instant::now();
                while t.elapsed() < hold {
                    std::hint::spin_loop();
                }
                if s.write_all(&req).is_err() {
                    return;
                }
            }
        });
        Echo { conn: std::sync::Mutex::new(std::os::unix::net::UnixStream::connect(path).expect("echo connect")) }
    }

    /// One round trip; `poll` > 0 polls for the answer that long before sleeping, as the
    /// polling client does.
    fn ask(&self, hold: Duration, poll: Duration) {
        use std::io::{Read, Write};
        let mut s = self.conn.lock().expect("echo");
        s.write_all(&(hold.as_nanos() as u64).to_le_bytes()).expect("echo write");
        let mut answer = [0u8; 8];
        if !poll.is_zero() {
            let t = Instant::now();
            s.set_nonblocking(true).expect("nonblocking");
            let mut got = 0;
            while got < 8 && t.elapsed() < poll {
                match s.read(&mut answer[got..]) {
                    Ok(n) => got += n,
                    Err(_) => std::thread::yield_now(),
                }
            }
            s.set_nonblocking(false).expect("blocking");
            s.read_exact(&mut answer[got..]).expect("echo read");
        } else {
            s.read_exact(&mut answer).expect("echo read");
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
