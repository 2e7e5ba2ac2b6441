//! SoftHSM2 signing side by side, in one run: cryptoki directly on one session, through
//! cryptohost's pool (size 1, one thread; size 2, two threads), and through the simulation
//! component. Needs `just setup` (SoftHSM2) and `just build-guests`.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use cryptohost::config::Manifest;
use cryptohost::provider::Signing;
use cryptohost::provider::{SigFormat, SignInput};
use cryptohost::{Config, Host, KeyId, TrustMode};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";

struct Fixture {
    _dir: tempfile::TempDir,
    pool1: Host,
    pool2: Host,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.path().display()
        ),
    )
    .unwrap();
    // SAFETY: set before any thread or PKCS#11 module exists in this process.
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var("BENCH_PIN", PIN);
    }
    let ok = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "bench", "--so-pin", "87654321", "--pin", PIN])
        .status()
        .unwrap();
    assert!(ok.success());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let components = root.join("components");
    let manifest = Manifest::load(&components.join("manifest.json")).expect("run `just build-guests` first");
    let pin = |f: &str| manifest.entry_for_file(f).unwrap().sha256.clone();
    let write = |pool: usize| {
        let text = format!(
            "component_dir = {:?}\n[cache]\nenabled = false\n[[provider]]\nname = \"simulation\"\ncomponent = \"simulation.wasm\"\nsha256 = {:?}\npriority = 50\nkey_prefix = \"sim\"\n[hsm]\nmodule = {MODULE:?}\ntokens = [\"bench\"]\npin_env = \"BENCH_PIN\"\npool_size = {pool}\n",
            components.display().to_string(),
            pin("simulation.wasm")
        );
        let path = dir.path().join(format!("pool{pool}.toml"));
        std::fs::write(&path, text).unwrap();
        cryptohost::load::open(&Config::load(&path).unwrap(), TrustMode::Pins).unwrap()
    };
    let pool1 = write(1);
    let pool2 = write(2);
    let hsm = pool1.hsm().unwrap();
    hsm.named_key("pkcs11:token=bench;object=ec", "ES256", 0, true).unwrap();
    hsm.named_key("pkcs11:token=bench;object=rsa", "RS256", 2048, true).unwrap();
    Fixture { _dir: dir, pool1, pool2 }
}

/// Long-lived signing threads (spawning per sample would measure thread start-up, and the
/// first PKCS#11 calls on a new thread, instead of signing).
struct Workers {
    jobs: Vec<std::sync::mpsc::Sender<u64>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Workers {
    /// One thread per operation closure; each runs its closure `n` times per job.
    fn start(ops: Vec<Box<dyn FnMut() + Send>>) -> Workers {
        let (done_tx, done) = std::sync::mpsc::channel();
        let jobs = ops
            .into_iter()
            .map(|mut op| {
                let (tx, rx) = std::sync::mpsc::channel::<u64>();
                let done_tx = done_tx.clone();
                std::thread::spawn(move || {
                    for n in rx {
                        for _ in 0..n {
                            op();
                        }
                        let _ = done_tx.send(());
                    }
                });
                tx
            })
            .collect();
        Workers { jobs, done }
    }

    /// Signs `n` times spread over the workers; returns the wall time.
    fn run(&self, n: u64) -> Duration {
        let k = self.jobs.len() as u64;
        let start = Instant::now();
        for (i, job) in self.jobs.iter().enumerate() {
            job.send(n / k + u64::from((i as u64) < n % k)).unwrap();
        }
        for _ in 0..k {
            self.done.recv().unwrap();
        }
        start.elapsed()
    }
}

fn bench_hsm(c: &mut Criterion) {
    let fx = fixture();
    let digest = [0x42u8; 32];
    // Direct cryptoki: one session, no pool, same mechanisms as cryptohost uses.
    let ctx = cryptoki::context::Pkcs11::new(MODULE).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == "bench")
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(PIN.to_string())));
    let find = |label: &str| {
        session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(label.as_bytes().to_vec())])
            .unwrap()[0]
    };
    let (ec, rsa) = (find("ec"), find("rsa"));
    let mut info = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ];
    info.extend_from_slice(&digest);

    let p1 = fx.pool1.hsm().unwrap().clone();
    let p2 = fx.pool2.hsm().unwrap().clone();
    let sim = fx.pool1.by_name("simulation").unwrap().clone();
    for (alg, label, handle, mech, input) in [
        ("ES256", "ec", ec, Mechanism::Ecdsa, digest.to_vec()),
        ("RS256", "rsa", rsa, Mechanism::RsaPkcs, info.clone()),
    ] {
        let key = KeyId(format!("pkcs11:token=bench;object={label}"));
        let sim_key = sim.named_key(&format!("bench-{label}"), alg, 2048, true).unwrap();
        let mut g = c.benchmark_group(format!("hsm-sign-{alg}"));
        g.bench_function("cryptoki-direct-1-session", |b| {
            b.iter(|| black_box(session.sign(&mech, handle, &input).unwrap()))
        });
        g.bench_function("cryptohost-pool1-1-thread", |b| {
            b.iter(|| black_box(p1.sign(&key, alg, SignInput::Digest(&digest), SigFormat::P1363).unwrap()))
        });
        // The module's own scaling, without cryptohost: two sessions on two threads.
        let direct2 = Workers::start(
            (0..2)
                .map(|_| {
                    let s = ctx.open_rw_session(slot).unwrap();
                    let (rsa, input) = (alg == "RS256", input.clone());
                    Box::new(move || {
                        let mech = if rsa { Mechanism::RsaPkcs } else { Mechanism::Ecdsa };
                        black_box(s.sign(&mech, handle, &input).unwrap());
                    }) as Box<dyn FnMut() + Send>
                })
                .collect(),
        );
        g.bench_function("cryptoki-direct-2-sessions-2-threads", |b| b.iter_custom(|n| direct2.run(n)));
        let ours2 = Workers::start(
            (0..2)
                .map(|_| {
                    let (p, key) = (p2.clone(), key.clone());
                    Box::new(move || {
                        black_box(p.sign(&key, alg, SignInput::Digest(&digest), SigFormat::P1363).unwrap());
                    }) as Box<dyn FnMut() + Send>
                })
                .collect(),
        );
        g.bench_function("cryptohost-pool2-2-threads", |b| b.iter_custom(|n| ours2.run(n)));
        g.bench_function("simulation-wasm", |b| {
            b.iter(|| black_box(sim.sign(&sim_key, alg, SignInput::Digest(&digest), SigFormat::P1363).unwrap()))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_hsm
}
criterion_main!(benches);
