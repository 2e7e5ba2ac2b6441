//! The sandbox: deadlines, memory and stack caps, traps, pinning, and the import allowlist.

use std::fs;
use std::time::{Duration, Instant};

use cryptohost::provider::Hashing;
use cryptohost::{Config, LoadError, ProviderError, TrustMode};

use crate::common::{self, MISBEHAVING, OFFLINE, P};

/// Runs a misbehaving request and checks the fault, then that the provider serves again.
fn misbehave(command: &str, expect: &str) {
    let (_dir, registry) = common::registry(&[MISBEHAVING]);
    let p = common::provider(&registry, "misbehaving");
    let started = Instant::now();
    let err = p.digest("SHA-256", command.as_bytes()).expect_err("the guest must be stopped");
    // A hang guard, not a benchmark: the deadline is 500 ms; anything near 10 s is a hang.
    assert!(started.elapsed() < Duration::from_secs(10), "{command}: took {:?}", started.elapsed());
    assert!(matches!(err, ProviderError::Fault(_)), "{command}: expected a fault, got {err:?}");
    let msg = err.to_string();
    assert!(msg.contains(expect), "{command}: {msg:?} should mention {expect:?}");
    assert!(msg.contains("discarded"), "{msg}");
    // A fresh instance serves the next call.
    let ok = p.digest("SHA-512", b"abc").expect("next call after a fault");
    assert_eq!(hex::encode(ok)[..16], *"ddaf35a193617aba");
}

#[test]
fn endless_loop_is_stopped_at_the_deadline() {
    misbehave("loop", "CPU deadline");
}

#[test]
fn endless_allocation_is_stopped_at_the_memory_cap() {
    misbehave("grow", "memory limit");
}

#[test]
fn guest_panic_becomes_an_error() {
    misbehave("panic", "unreachable");
}

#[test]
fn stack_overflow_is_stopped() {
    misbehave("recurse", "stack overflow");
}

#[test]
fn keys_do_not_survive_a_fault() {
    let (_dir, registry) = common::registry(&[OFFLINE, MISBEHAVING]);
    let p = common::provider(&registry, "offline-verification");
    let key = p.generate("ES256", 0, false).expect("generate");
    assert!(p.public_key(&key).is_ok());
    // A fault in another provider does not touch this one.
    let m = common::provider(&registry, "misbehaving");
    assert!(m.digest("SHA-256", b"panic").is_err());
    assert!(p.public_key(&key).is_ok());
    // The private key never leaves: not exportable unless generated so.
    let err = p.export_pkcs8(&key).expect_err("not exportable");
    assert!(matches!(err, ProviderError::InvalidKey(_)), "{err:?}");
}

fn load_err(dir: &std::path::Path, component_dir: &std::path::Path, providers: &[P<'_>]) -> LoadError {
    let path = common::write_config(dir, component_dir, providers, "");
    let config = Config::load(&path).expect("config parses");
    cryptohost::load::open(&config, TrustMode::Pins).err().expect("load must be refused")
}

#[test]
fn tampered_component_is_refused_naming_file_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let comp = dir.path().join("components");
    fs::create_dir(&comp).unwrap();
    let mut bytes = fs::read(common::components_dir().join("offline-verification.wasm")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(comp.join("offline-verification.wasm"), &bytes).unwrap();
    let err = load_err(dir.path(), &comp, &[OFFLINE]);
    let msg = err.to_string();
    assert!(matches!(err, LoadError::PinMismatch { .. }), "{msg}");
    assert!(msg.contains("offline-verification.wasm"), "{msg}");
    assert!(msg.contains(&common::digest_of("offline-verification.wasm")), "{msg}");
    assert!(msg.contains("actual"), "{msg}");
}

#[test]
fn unpinned_component_is_refused_unless_dev() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n[[provider]]\nname = \"offline-verification\"\ncomponent = \"offline-verification.wasm\"\npriority = 1\n",
        common::components_dir().display().to_string()
    );
    let path = dir.path().join("c.toml");
    fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let err = cryptohost::load::open(&config, TrustMode::Pins).err().expect("unpinned refused").to_string();
    assert!(err.contains("no sha256 pin"), "{err}");
    // --dev trusts the manifest instead, and loads.
    let registry = cryptohost::load::open(&config, TrustMode::DevManifest).expect("dev mode loads from the manifest");
    assert_eq!(registry.providers().len(), 2, "the component and the native hashing");
}

#[test]
fn components_not_in_the_config_are_not_loaded() {
    // components/ holds misbehaving.wasm too; only the configured provider is loaded.
    let (_dir, registry) = common::registry(&[OFFLINE]);
    let names: Vec<_> = registry.providers().iter().map(|p| p.descriptor().name.clone()).collect();
    assert_eq!(names, ["native-sha2", "offline-verification"], "the host's own hashing, and the one component");
}

#[test]
fn component_importing_wasi_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let comp = dir.path().join("components");
    fs::create_dir(&comp).unwrap();
    let wasm = wat::parse_str(
        r#"(component
             (import "wasi:cli/environment@0.2.0" (instance
               (export "get-arguments" (func (result (list string))))))
           )"#,
    )
    .expect("valid component text");
    fs::write(comp.join("wasi-user.wasm"), &wasm).unwrap();
    let sha = hex::encode(sha2_digest(&wasm));
    let text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n[[provider]]\nname = \"wasi-user\"\ncomponent = \"wasi-user.wasm\"\nsha256 = {sha:?}\npriority = 1\n",
        comp.display().to_string()
    );
    let path = dir.path().join("c.toml");
    fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let err = cryptohost::load::open(&config, TrustMode::Pins).err().expect("WASI import refused").to_string();
    assert!(err.contains("wasi:cli/environment@0.2.0") && err.contains("may import only"), "{err}");
}

#[test]
fn not_a_component_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let comp = dir.path().join("components");
    fs::create_dir(&comp).unwrap();
    let junk = b"this is not wasm at all".to_vec();
    fs::write(comp.join("junk.wasm"), &junk).unwrap();
    let sha = hex::encode(sha2_digest(&junk));
    let text = format!(
        "component_dir = {:?}\n[cache]\nenabled = false\n[[provider]]\nname = \"junk\"\ncomponent = \"junk.wasm\"\nsha256 = {sha:?}\npriority = 1\n",
        comp.display().to_string()
    );
    let path = dir.path().join("c.toml");
    fs::write(&path, text).unwrap();
    let err =
        cryptohost::load::open(&Config::load(&path).unwrap(), TrustMode::Pins).err().expect("refused").to_string();
    assert!(err.contains("junk.wasm") && err.contains("does not compile"), "{err}");
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

#[test]
fn precompiled_cache_is_reused_and_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let text = format!(
        "component_dir = {:?}\n[cache]\ndir = {:?}\n[[provider]]\nname = \"offline-verification\"\ncomponent = \"offline-verification.wasm\"\nsha256 = {:?}\npriority = 1\n",
        common::components_dir().display().to_string(),
        cache.display().to_string(),
        common::digest_of("offline-verification.wasm")
    );
    let path = dir.path().join("c.toml");
    fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    drop(cryptohost::load::open(&config, TrustMode::Pins).expect("first start compiles"));
    let cached: Vec<_> = fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1, "one artifact cached: {cached:?}");
    // Its digest is recorded beside the config, not in the cache.
    let all: Vec<_> = fs::read_dir(dir.path().join("cache-digests")).unwrap().map(|e| e.unwrap().path()).collect();
    let records: Vec<_> = all.iter().filter(|p| p.extension().is_some_and(|e| e == "blake3")).collect();
    assert_eq!(records.len(), 1, "one digest record: {all:?}");
    let described = all.iter().filter(|p| p.to_string_lossy().ends_with(".descriptor.json")).count();
    assert_eq!(described, 1, "and one descriptor record: {all:?}");
    // (and, when the component file was older than a few seconds, the stamp of its pin check)
    let stamp = |p: &std::path::PathBuf| p.to_string_lossy().ends_with(".stamp");
    assert!(all.iter().filter(|p| !stamp(p)).count() == 2 && all.len() <= 3, "{all:?}");
    let recorded = fs::read_to_string(records[0]).unwrap();
    assert_eq!(recorded.trim(), blake3::hash(&fs::read(&cached[0]).unwrap()).to_hex().as_str());
    // The second start loads the artifact and serves.
    let registry = cryptohost::load::open(&config, TrustMode::Pins).expect("second start");
    assert!(registry.digest("SHA-256", b"abc").is_ok());
    drop(registry);
    // A cache directory others can write is refused.
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    let err = cryptohost::load::open(&config, TrustMode::Pins).err().expect("refused").to_string();
    assert!(err.contains("writable by group or others"), "{err}");
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).unwrap();
    // So is a digest directory others can write: whoever writes it vouches for native code.
    fs::set_permissions(dir.path().join("cache-digests"), fs::Permissions::from_mode(0o770)).unwrap();
    let err = cryptohost::load::open(&config, TrustMode::Pins).err().expect("refused").to_string();
    assert!(err.contains("cache digest directory") && err.contains("writable by group or others"), "{err}");
}

/// After a first start has recorded what a component offers, a one-shot start checks its pin
/// and routes by the record, and loads it only at its first use; a record that lies (edited to
/// claim an algorithm) makes that use fault and is replaced; a tampered component is still
/// refused at start.
#[test]
fn components_load_on_first_use_under_their_checked_pins_and_records() {
    use cryptohost::load::{Start, open_with};
    let dir = tempfile::tempdir().unwrap();
    // Its own cache and records (the suite's are shared by tests running at once).
    let config_text = |components: &std::path::Path| {
        format!(
            "component_dir = {:?}\n[cache]\ndir = {:?}\n[native]\nhashing = false\n[[provider]]\nname = \"offline-verification\"\n\
             component = \"offline-verification.wasm\"\nsha256 = {:?}\npriority = 1\n",
            components.display().to_string(),
            dir.path().join("cache").display().to_string(),
            common::digest_of("offline-verification.wasm")
        )
    };
    let path = dir.path().join("c.toml");
    fs::write(&path, config_text(&common::components_dir())).unwrap();
    let config = Config::load(&path).unwrap();
    let eager = open_with(&config, TrustMode::Pins, Start::Eager).expect("loads");
    assert_eq!(eager.providers()[0].stats().instances, 1, "loaded at start: its metadata was asked");
    let described = eager.providers()[0].descriptor().capabilities.clone();
    drop(eager);
    let lazy = cryptohost::load::open(&config, TrustMode::Pins).expect("starts");
    let p = lazy.providers()[0].clone();
    assert_eq!(p.stats().instances, 0, "not instantiated at start");
    assert_eq!(format!("{:?}", p.descriptor().capabilities), format!("{described:?}"), "routed by its record");
    assert_eq!(hex::encode(lazy.digest("SHA-256", b"abc").unwrap().value)[..8], *"ba7816bf");
    assert_eq!(p.stats().instances, 1, "instantiated by its first use");
    drop((p, lazy));

    // The record edited to claim an algorithm the component lacks: routed there, the first use
    // faults naming the mismatch, and the record is replaced by what the component says.
    let record = fs::read_dir(dir.path().join("cache-digests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".descriptor.json"))
        .expect("a descriptor record");
    let text = fs::read_to_string(&record).unwrap();
    fs::write(&record, text.replace("\"SHA-256\"", "\"SHA-256\",\"SHA3-256\"")).unwrap();
    let lazy = cryptohost::load::open(&config, TrustMode::Pins).expect("starts");
    let err = lazy.digest("SHA-256", b"abc").err().expect("a lying record faults").to_string();
    assert!(err.contains("describes itself differently"), "{err}");
    drop(lazy);
    assert!(!fs::read_to_string(&record).unwrap().contains("SHA3-256"), "the record was replaced");
    let lazy = cryptohost::load::open(&config, TrustMode::Pins).expect("starts");
    assert!(lazy.digest("SHA-256", b"abc").is_ok());
    drop(lazy);

    // A record others could have written is not believed: the component is loaded at start.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&record, fs::Permissions::from_mode(0o666)).unwrap();
    let started = cryptohost::load::open(&config, TrustMode::Pins).expect("starts");
    assert_eq!(started.providers()[0].stats().instances, 1, "loaded at start, not by the record");
    drop(started);

    // The component's bytes changed: refused at start, lazily or not.
    let comp = dir.path().join("components");
    fs::create_dir(&comp).unwrap();
    let mut bytes = fs::read(common::components_dir().join("offline-verification.wasm")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(comp.join("offline-verification.wasm"), &bytes).unwrap();
    fs::write(&path, config_text(&comp)).unwrap();
    let err =
        cryptohost::load::open(&Config::load(&path).unwrap(), TrustMode::Pins).err().expect("refused").to_string();
    assert!(err.contains("offline-verification.wasm"), "{err}");
}

/// A runtime with its own cache and digest directories.
fn cached_runtime(root: &std::path::Path) -> cryptohost::wasm::Runtime {
    use cryptohost::wasm::{CacheSetting, Limits, Runtime};
    let setting = CacheSetting::Dir { dir: root.join("cache"), digests: root.join("digests") };
    Runtime::new(Limits::default(), setting).expect("runtime")
}

fn load(runtime: &cryptohost::wasm::Runtime, name: &str, file: &str) -> cryptohost::wasm::WasmProvider {
    use cryptohost::wasm::Trust;
    let path = common::components_dir().join(file);
    runtime
        .load(name, &path, &Trust::Pinned(common::digest_of(file)), cryptohost::Priority(1), Vec::new())
        .expect("loads")
}

/// A component's pin is checked by hashing the file, or, once this host has hashed that file to
/// its pin and recorded its stamp (inode, size, change times) beside the cache's digests, by
/// the stamp. Any change to the file moves its ctime, so a changed file is hashed again and
/// refused. Even a stamp forged in the digest directory runs no other code: the artifact is
/// found by the pinned digest, and a compile re-hashes the file.
#[test]
fn a_stamped_pin_check_skips_the_hash_but_never_runs_other_code() {
    use cryptohost::CryptoProvider;
    use cryptohost::fsio::Stamp;
    use cryptohost::wasm::Trust;
    let root = tempfile::tempdir().unwrap();
    let comp = root.path().join("components");
    fs::create_dir(&comp).unwrap();
    let file = comp.join("offline-verification.wasm");
    fs::copy(common::components_dir().join("offline-verification.wasm"), &file).unwrap();
    let pin = common::digest_of("offline-verification.wasm");
    let runtime = cached_runtime(root.path());
    let stamp_path = runtime.stamp_path(&file, &pin).expect("cache on");
    let load = || runtime.load("ov", &file, &Trust::Pinned(pin.clone()), cryptohost::Priority(1), Vec::new());
    let stamp_of = |f: &std::path::Path| Stamp::of(&fs::metadata(f).unwrap());

    // A file changed seconds ago is hashed and not stamped yet (a write in the same timestamp
    // tick could follow unseen); once it has been still for a while, its check records a stamp.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(stamp_of(&file).settled());
    load().expect("hashed, matches, compiled");
    let recorded = fs::read_to_string(&stamp_path).expect("a stamp was recorded");
    assert_eq!(recorded, format!("{pin} {}\n", stamp_of(&file).encode()));
    assert!(load().is_ok(), "checked by its stamp");

    // The file's bytes changed: its ctime moved, so it is hashed again and refused.
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&file, &bytes).unwrap();
    assert_ne!(stamp_of(&file).encode(), recorded.split_once(' ').unwrap().1.trim_end());
    let err = load().err().expect("a changed file is hashed and refused").to_string();
    assert!(err.contains(&pin), "{err}");

    // A stamp forged for the changed file (writing the digest directory is already trusted:
    // it vouches for native code) passes the pin check, yet the code that runs is the pinned
    // component's cached artifact...
    fs::write(&stamp_path, format!("{pin} {}\n", stamp_of(&file).encode())).unwrap();
    let p = load().expect("passes by the forged stamp");
    assert_eq!(p.descriptor().reported_name, "offline-verification");
    assert!(p.digest("SHA-256", b"abc").is_ok(), "the pinned artifact runs");
    drop(p);
    // ...and with no artifact to take, the compile re-hashes the file and refuses it.
    let (artifact, _) = runtime.cache_paths(&pin).unwrap();
    fs::remove_file(&artifact).unwrap();
    let err = load().err().expect("the compile re-hashes").to_string();
    assert!(err.contains(&pin), "{err}");

    // A stamp record that is not one is ignored (the file is hashed).
    fs::copy(common::components_dir().join("offline-verification.wasm"), &file).unwrap();
    fs::write(&stamp_path, "not a stamp\n").unwrap();
    assert!(load().is_ok());
}

#[test]
fn a_planted_or_corrupted_cached_artifact_is_recompiled_never_run() {
    use cryptohost::CryptoProvider;
    let root = tempfile::tempdir().unwrap();
    let runtime = cached_runtime(root.path());
    // Both components compiled once, so both have artifacts and digest records.
    let offline = load(&runtime, "offline-verification", "offline-verification.wasm");
    let sim = load(&runtime, "simulation", "simulation.wasm");
    assert_eq!(offline.descriptor().reported_name, "offline-verification");
    assert_eq!(sim.descriptor().reported_name, "simulation");
    drop((offline, sim));
    let (offline_artifact, _) = runtime.cache_paths(&common::digest_of("offline-verification.wasm")).unwrap();
    let (sim_artifact, _) = runtime.cache_paths(&common::digest_of("simulation.wasm")).unwrap();
    let genuine = fs::read(&offline_artifact).unwrap();

    // An attacker who can write the cache puts the simulation's native code where the
    // offline-verification artifact was. Had it run, it would report itself as `simulation`.
    fs::copy(&sim_artifact, &offline_artifact).unwrap();
    let runtime = cached_runtime(root.path());
    let p = load(&runtime, "offline-verification", "offline-verification.wasm");
    assert_eq!(p.descriptor().reported_name, "offline-verification", "the planted artifact ran");
    assert!(p.digest("SHA-256", b"abc").is_ok());
    assert_eq!(fs::read(&offline_artifact).unwrap(), genuine, "the artifact is compiled afresh and rewritten");
    drop(p);

    // A corrupted artifact (one byte flipped in its code) is not run either.
    let mut bytes = genuine.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&offline_artifact, &bytes).unwrap();
    let runtime = cached_runtime(root.path());
    let p = load(&runtime, "offline-verification", "offline-verification.wasm");
    assert_eq!(p.descriptor().reported_name, "offline-verification");
    assert_eq!(fs::read(&offline_artifact).unwrap(), genuine);
    drop(p);

    // A symlink in place of the artifact is not followed.
    fs::remove_file(&offline_artifact).unwrap();
    std::os::unix::fs::symlink(&sim_artifact, &offline_artifact).unwrap();
    let runtime = cached_runtime(root.path());
    let p = load(&runtime, "offline-verification", "offline-verification.wasm");
    assert_eq!(p.descriptor().reported_name, "offline-verification");
    assert!(!fs::symlink_metadata(&offline_artifact).unwrap().file_type().is_symlink());
}

#[test]
fn a_cache_under_a_directory_others_can_write_is_refused() {
    use cryptohost::wasm::{CacheSetting, Limits, Runtime};
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    // Private itself, but inside a directory anyone can rename things in.
    let setting = CacheSetting::Dir { dir: shared.join("cache"), digests: root.path().join("digests") };
    let err = Runtime::new(Limits::default(), setting).err().expect("refused").to_string();
    assert!(err.contains("parent") && err.contains("writable by group or others"), "{err}");
}

/// Every log record of this test process, kept for the assertions below.
struct Capture(std::sync::Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        self.0.lock().unwrap().push((r.level(), r.target().to_string(), r.args().to_string()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));

#[test]
fn guest_log_lines_are_rationed_capped_and_never_at_error_level() {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    let (_dir, registry) = common::registry(&[MISBEHAVING]);
    let p = common::provider(&registry, "misbehaving");
    // The guest writes 100,000 lines of 4 KiB at error level, each posing as the host.
    assert!(p.digest("SHA-256", b"spam").is_err());
    let records = CAPTURE.0.lock().unwrap().clone();
    let spam: Vec<_> = records.iter().filter(|(_, _, m)| m.contains("forged by a guest")).collect();
    assert!(!spam.is_empty(), "the guest's lines reach the log");
    assert!(spam.len() <= 32, "{} lines from one call", spam.len());
    for (level, target, message) in &spam {
        assert_eq!(*target, cryptohost::wasm::GUEST_LOG_TARGET, "guest lines have their own target");
        assert!(*level > log::Level::Error, "a guest logged at error level");
        assert!(message.starts_with("misbehaving: "), "prefixed with the provider: {message:.60}");
        assert!(message.len() < 600, "a {}-byte line", message.len());
    }
    assert!(
        records.iter().any(|(_, _, m)| m.contains("misbehaving") && m.contains("log line(s) in one call were dropped")),
        "the drop is reported once"
    );
}

#[test]
fn a_symlink_in_the_component_directory_is_refused_without_hashing_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let comps = dir.path().join("components");
    fs::create_dir(&comps).unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, b"root:$6$hash:19000:0:99999:7:::\n").unwrap();
    std::os::unix::fs::symlink(&secret, comps.join("offline-verification.wasm")).unwrap();
    let path = common::write_config(dir.path(), &comps, &[OFFLINE], "");
    let config = Config::load(&path).unwrap();
    let err = cryptohost::load::open(&config, TrustMode::Pins).err().expect("refused").to_string();
    assert!(err.contains("symlink"), "{err}");
    let secret_digest = hex::encode(sha2_digest(&fs::read(&secret).unwrap()));
    assert!(!err.contains(&secret_digest), "the link target's digest leaked: {err}");
}

#[test]
fn oversized_messages_are_refused_before_they_reach_the_guest() {
    // A quarter of the 64 MiB budget is the most one call may hand a guest: an EdDSA message
    // over it is refused clearly instead of faulting inside the sandbox.
    let (_dir, registry) = common::registry(&[OFFLINE]);
    let p = common::provider(&registry, "offline-verification");
    let key = p.generate("EdDSA", 0, false).expect("ed25519");
    let big = vec![0u8; (16 << 20) + 1];
    let err = p.sign(&key, "EdDSA", cryptohost::SignInput::Message(&big), cryptohost::SigFormat::Der).unwrap_err();
    assert!(matches!(err, ProviderError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("memory budget"), "{err}");
    let ok = p.sign(&key, "EdDSA", cryptohost::SignInput::Message(&big[..1 << 20]), cryptohost::SigFormat::Der);
    assert!(ok.is_ok(), "{ok:?}");
}
