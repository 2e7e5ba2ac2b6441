//! Shared helpers: the built components, configs that pin them, the `cryptohost` binary.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use cryptohost::config::Manifest;
use cryptohost::{Config, CryptoProvider, Host, Registry, TrustMode};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

pub fn components_dir() -> PathBuf {
    repo_root().join("components")
}

pub fn data(rel: &str) -> PathBuf {
    repo_root().join("tests/data").join(rel)
}

/// The manifest of the components `just build-guests` wrote.
pub fn manifest() -> Manifest {
    let path = components_dir().join("manifest.json");
    Manifest::load(&path).unwrap_or_else(|e| panic!("{e}: run `just build-guests` first"))
}

pub fn digest_of(file: &str) -> String {
    manifest()
        .entry_for_file(file)
        .unwrap_or_else(|| panic!("{file} is not in components/manifest.json: run `just build-guests`"))
        .sha256
        .clone()
}

/// A private precompiled-component cache shared by the test run (mode 0700, ours).
pub fn cache_dir() -> PathBuf {
    let dir = repo_root().join("target/cryptohost-test-cache");
    let _ = fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir);
    dir
}

/// Where the test run records the digests of the artifacts in [`cache_dir`].
pub fn cache_digest_dir() -> PathBuf {
    let dir = repo_root().join("target/cryptohost-test-cache-digests");
    let _ = fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir);
    dir
}

/// One provider line of a generated config.
pub struct P<'a> {
    pub name: &'a str,
    pub file: &'a str,
    pub priority: i32,
}

/// Writes a config into `dir` that pins each named component to its manifest digest.
pub fn write_config(dir: &Path, component_dir: &Path, providers: &[P<'_>], extra: &str) -> PathBuf {
    let mut text = format!(
        "component_dir = {:?}\n[cache]\ndir = {:?}\ndigest_dir = {:?}\n{extra}\n",
        component_dir.display().to_string(),
        cache_dir().display().to_string(),
        cache_digest_dir().display().to_string()
    );
    for p in providers {
        text += &format!(
            "[[provider]]\nname = {:?}\ncomponent = {:?}\nsha256 = {:?}\npriority = {}\n",
            p.name,
            p.file,
            digest_of(p.file),
            p.priority
        );
    }
    let path = dir.join("cryptohost.toml");
    fs::write(&path, text).expect("write config");
    path
}

pub const OFFLINE: P<'static> = P { name: "offline-verification", file: "offline-verification.wasm", priority: 100 };
pub const MISBEHAVING: P<'static> = P { name: "misbehaving", file: "misbehaving.wasm", priority: 200 };
pub const PQC: P<'static> = P { name: "pqc", file: "pqc.wasm", priority: 90 };
pub const FAST: P<'static> = P { name: "fast-verification", file: "fast-verification.wasm", priority: 110 };

/// A registry over the real components, pinned to what was just built (and the host's native
/// hashing, which a config has by default).
pub fn registry(providers: &[P<'_>]) -> (tempfile::TempDir, Host) {
    registry_with(providers, "")
}

/// A registry over the real components alone: the host's native hashing turned off, for tests
/// of how the registry routes between components.
pub fn components_registry(providers: &[P<'_>]) -> (tempfile::TempDir, Host) {
    registry_with(providers, "[native]\nhashing = false\n")
}

/// A registry over the real components with `extra` config text.
pub fn registry_with(providers: &[P<'_>], extra: &str) -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &components_dir(), providers, extra);
    let config = Config::load(&path).expect("config loads");
    let registry = cryptohost::load::open(&config, TrustMode::Pins).expect("components load");
    (dir, registry)
}

pub fn provider<'r>(registry: &'r Registry, name: &str) -> &'r Arc<dyn CryptoProvider> {
    registry.by_name(name).unwrap_or_else(|| panic!("provider {name} not loaded"))
}

/// The `cryptohost` binary next to this test executable (built by `cargo test --workspace`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = dir.join("cryptohost");
    assert!(bin.exists(), "{} missing: build it with `cargo build --release -p cryptohost`", bin.display());
    bin
}

/// Runs `cryptohost --config CONFIG ARGS...`. With `CRYPTOHOST_TEST_MODE=server`, a command
/// a client can send (see [`servable`]) goes through a `cryptohost serve` started for this
/// config instead (`--socket`), under the same expectations: the suite runs in both modes.
pub fn run(config: &Path, args: &[&str]) -> Output {
    if through_server()
        && servable(config, args)
        && let Some(socket) = test_server(config)
    {
        // Run locally first as the twin of the request: then the server's answer must be the
        // same (stdout, exit code, and the audit line but for its time and caller), or the two
        // front ends have drifted apart.
        let twin = twin(config, args);
        let audit = Config::load(config).ok().map(|c| c.audit_path);
        let lines = || audit.as_deref().map(audit_lines).unwrap_or_default();
        let before = lines();
        let local = twin.as_ref().map(|t| {
            let twin_args = t.args(args);
            (run_local(config, &twin_args.iter().map(String::as_str).collect::<Vec<_>>()), t)
        });
        let between = lines();
        let out = Command::new(binary())
            .arg("--config")
            .arg(config)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .expect("run cryptohost");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "cryptohost panicked: {stderr}");
        if let Some((local, twin)) = local {
            let after = lines();
            assert_eq!(local.status.code(), out.status.code(), "{args:?}: exit codes differ between modes: {stderr}");
            twin.compare(args, &local, &out);
            let written = |from: &[serde_json::Value], to: &[serde_json::Value]| -> Vec<serde_json::Value> {
                to.iter().skip(from.len()).cloned().map(comparable).collect()
            };
            assert_eq!(
                written(&before, &between),
                written(&between, &after),
                "{args:?}: the audit lines differ between local and client mode"
            );
        }
        return out;
    }
    run_local(config, args)
}

/// Runs `cryptohost --config CONFIG ARGS...` in this process's mode of old: locally, whatever
/// `CRYPTOHOST_TEST_MODE` says.
pub fn run_local(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(binary()).arg("--config").arg(config).args(args).output().expect("run cryptohost");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "cryptohost panicked: {stderr}");
    assert_ne!(out.status.code(), Some(101), "cryptohost panicked: {stderr}");
    out
}

/// The lines of an audit log that one request writes alike in both modes: not the log's own
/// structure (genesis, checkpoints), and not the verification lines only a server's peers get
/// (written after their answer).
fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    let structural = |l: &serde_json::Value| {
        l["event"].as_str().is_some_and(|e| ["genesis", "checkpoint", "verify", "verify-not-written"].contains(&e))
    };
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l| !structural(l))
        .collect()
}

/// An audit line without what differs between two runs of one request: when, and who asked.
pub fn comparable(mut line: serde_json::Value) -> serde_json::Value {
    if let Some(o) = line.as_object_mut() {
        o.remove("time");
        o.remove("caller");
    }
    line
}

/// How a command's local twin runs and is compared with the server's answer.
struct Twin {
    /// Signatures that are randomized (PSS, ML-DSA, ECDSA in an HSM) are masked.
    mask_signatures: bool,
    /// A file made new (`O_EXCL`) by the command: the twin writes beside it, and the two files
    /// are compared (their lengths only when `exact_file` is off: AES-GCM's fresh nonce).
    new_file: Option<(String, bool)>,
}

impl Twin {
    /// The twin's arguments: the new file, if any, renamed.
    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if let Some((file, _)) = &self.new_file
            && let Some(i) = out.iter().position(|a| a == file)
        {
            out[i] = format!("{file}.local-twin");
        }
        out
    }

    fn compare(&self, args: &[&str], local: &Output, remote: &Output) {
        let mut local_out = stdout(local);
        if let Some((file, exact)) = &self.new_file {
            let twin = format!("{file}.local-twin");
            local_out = local_out.replace(&twin, file);
            if let (Ok(a), Ok(b)) = (fs::read(&twin), fs::read(file)) {
                if *exact {
                    assert!(a == b, "{args:?}: the file written differs between modes");
                } else {
                    assert_eq!(a.len(), b.len(), "{args:?}: the file written differs in length between modes");
                }
            }
            let _ = fs::remove_file(&twin);
        }
        let (l, r) =
            if self.mask_signatures { (mask(&local_out), mask(&stdout(remote))) } else { (local_out, stdout(remote)) };
        assert_eq!(l, r, "{args:?}: stdout differs between local and client mode");
    }
}

/// A document with its signatures replaced by a placeholder: `signature` and `sig` fields of
/// JSON, or a whole line of base64.
fn mask(text: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, v) in o.iter_mut() {
                    if k == "signature" || k == "sig" {
                        *v = serde_json::json!("<signature>");
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            // A JWS inside an answer (`jws sign --json`): masked as the document itself is.
            serde_json::Value::String(s) if s.split('.').count() == 3 || s.starts_with('{') => *s = mask(s),
            _ => {}
        }
    }
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&mut v);
        return v.to_string();
    }
    let b64 = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    // A compact JWS: its third part is the signature.
    let compact = |l: &str| {
        let parts: Vec<&str> = l.split('.').collect();
        let url = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        (parts.len() == 3 && parts.iter().all(|p| url(p))).then(|| format!("{}.{}.<signature>", parts[0], parts[1]))
    };
    text.lines()
        .map(|l| match compact(l) {
            Some(masked) => masked,
            None if b64(l) => "<signature>".to_string(),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The local twin of a servable command, if it has one: every one but a key generated on a
/// token (refused the second time) or a secret made with a fresh nonce and nothing to compare.
fn twin(config: &Path, args: &[&str]) -> Option<Twin> {
    // PKCS#1 v1.5 is deterministic everywhere; ECDSA only in the software providers (RFC 6979).
    let deterministic = |alg: &str, key: &str| {
        alg.starts_with("RS") || (!key.starts_with("pkcs11:") && (alg.starts_with("ES") || alg == "EdDSA"))
    };
    let loaded = Config::load(config).ok();
    let profiles = loaded.as_ref().map(|c| c.profiles.clone()).unwrap_or_default();
    let value = |flag: &str| args.windows(2).filter(|w| w[0] == flag).map(|w| w[1]).collect::<Vec<_>>();
    let exact = Twin { mask_signatures: false, new_file: None };
    let out = |flag: &str, exact: bool| value(flag).first().map(|f| (f.to_string(), exact));
    match args.first().copied() {
        Some("hash" | "verify") => Some(exact),
        Some("sign" | "dsse" | "jws" | "jwt") if args.get(1) == Some(&"verify") => Some(exact),
        // iat and exp are the time of each sign: nothing to compare.
        Some("jwt") if args.contains(&"--expires-in") => None,
        Some("sign" | "dsse" | "jws" | "jwt") => {
            let alg = value("--alg").first().copied().unwrap_or("");
            let keys_ok = value("--key").iter().all(|k| deterministic(alg, k));
            let profiles_ok = value("--profile").iter().chain(value("--key-id").iter()).all(|name| {
                profiles
                    .iter()
                    .find(|(n, p)| n.as_str() == *name || p.key_id.as_deref() == Some(name))
                    .is_some_and(|(_, p)| deterministic(&p.algorithm, &p.key.to_string()))
            });
            // (--out is replaced by a rename, never made new: the twin may write it first.)
            Some(Twin { mask_signatures: !(keys_ok && profiles_ok), new_file: None })
        }
        Some("keys") => match args.get(1).copied() {
            Some("public" | "list") => Some(exact),
            // A seeded simulation derives the same key each time; a token refuses the second.
            Some("generate") => {
                let seeded = loaded.as_ref().is_some_and(|c| {
                    c.providers
                        .iter()
                        .any(|p| p.key_prefix.as_deref() == Some("sim") && p.settings.contains_key("seed"))
                });
                (seeded && args.get(2).is_some_and(|k| k.starts_with("sim:")))
                    .then(|| Twin { mask_signatures: false, new_file: out("--pub", true) })
            }
            _ => None,
        },
        Some("decrypt") => Some(Twin { mask_signatures: false, new_file: out("--out", true) }),
        Some("encrypt") => Some(Twin { mask_signatures: false, new_file: out("--out", false) }),
        _ => None,
    }
}

/// Runs the CLI as a client of the server on `socket`, with a config that does not exist (a
/// client needs none).
pub fn client(socket: &Path, args: &[&str]) -> Output {
    let out = Command::new(binary())
        .args(["--config", "/nonexistent/cryptohost.toml", "--socket"])
        .arg(socket)
        .args(args)
        .output()
        .expect("run cryptohost");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs openssl, panicking with its stderr on failure.
pub fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl").args(args).output().expect("openssl is installed (just setup)");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Whether this run sends client commands through a server (`CRYPTOHOST_TEST_MODE=server`).
/// For a test that never runs a command through [`run`] (it spawns the binary or a server
/// itself, or calls the library): the suite's server-mode pass would repeat it unchanged, so it
/// runs in the local pass only. True (after saying so) when this is the server-mode pass.
pub fn server_pass_repeats_this() -> bool {
    let repeat = through_server();
    if repeat {
        eprintln!("mode-independent: run in the local pass only");
    }
    repeat
}

pub fn through_server() -> bool {
    std::env::var("CRYPTOHOST_TEST_MODE").is_ok_and(|m| m == "server")
}

/// Commands a client sends to a server, when they name no file a server would have to open:
/// a key file (`--key k.pem`, `keys public k.pem`) or an anchors directory stays local, as do
/// the commands that are local by nature (keygen, pin, providers, bundle, trust, serve).
fn servable(config: &Path, args: &[&str]) -> bool {
    let Some(command) = args.first() else { return false };
    if !["hash", "verify", "sign", "dsse", "jws", "jwt", "keys", "encrypt", "decrypt", "hsm"].contains(command) {
        return false;
    }
    let held = |k: &str| k.starts_with("sim:") || k.starts_with("pkcs11:");
    // A profile (by name or key id) whose key is a file is local too.
    let profiles = Config::load(config).map(|c| c.profiles).unwrap_or_default();
    let profile_held = |name: &str| profiles.get(name).is_some_and(|p| p.key.is_held());
    let key_id_held = |id: &str| profiles.values().any(|p| p.key_id.as_deref() == Some(id) && p.key.is_held());
    for (i, a) in args.iter().enumerate() {
        let next = args.get(i + 1).copied().unwrap_or("");
        match *a {
            "--anchors" | "--max-payload-mib" => return false,
            "--key" if !held(next) => return false,
            "--profile" if !profile_held(next) => return false,
            "--key-id" if ["dsse", "jws", "jwt"].contains(&args[0]) && !key_id_held(next) => return false,
            _ => {}
        }
    }
    if args.len() >= 3 && args[0] == "keys" && ["public", "generate"].contains(&args[1]) && !held(args[2]) {
        return false;
    }
    true
}

/// A running `cryptohost serve` for one config, stopped when the test's thread ends.
struct TestServer {
    child: std::process::Child,
    socket: PathBuf,
    /// The config text and the component files it was started on: a test that rewrites
    /// either gets a new server.
    state: String,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.socket);
    }
}

thread_local! {
    static SERVERS: std::cell::RefCell<std::collections::HashMap<PathBuf, TestServer>> =
        std::cell::RefCell::default();
}

/// What a server for `config` was started on.
fn server_state(config: &Path) -> String {
    let text = fs::read_to_string(config).unwrap_or_default();
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("component_dir = "))
        .map(|d| PathBuf::from(d.trim().trim_matches('"')))
        .unwrap_or_default();
    let mut files: Vec<String> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some(format!("{:?} {} {:?}", e.file_name(), m.len(), m.modified().ok()))
        })
        .collect();
    files.sort();
    format!("{text}\n{}", files.join("\n"))
}

/// The socket of a server for `config` (started on first use, restarted when the config or
/// its components change), or `None` when no server starts on this config (a broken config
/// or component: the local run then shows the error).
fn test_server(config: &Path) -> Option<PathBuf> {
    let state = server_state(config);
    let key = config.to_path_buf();
    if let Some(socket) = SERVERS.with(|s| s.borrow().get(&key).filter(|t| t.state == state).map(|t| t.socket.clone()))
    {
        return Some(socket);
    }
    SERVERS.with(|s| s.borrow_mut().remove(&key));
    let dir = config.parent()?;
    let socket = dir.join("test-server.sock");
    let _ = fs::remove_file(&socket);
    let log = fs::File::create(dir.join("test-server.log")).ok()?;
    // The test's own config, plus a rule that lets this test's user use every held key and
    // profile (what an operator would grant the service account of a signing pipeline).
    let served = dir.join("test-server.toml");
    let uid = fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").and_then(|v| v.split_whitespace().next()).map(str::to_string))?;
    let rule = format!(
        "\n[[service.allow]]\nusers = [\"{uid}\"]\noperations = [\"sign\", \"encrypt\", \"decrypt\", \"generate\", \"admin\"]\n\
         keys = [\"sim:*\", \"pkcs11:token=*\"]\nprofiles = [\"*\"]\n"
    );
    fs::write(&served, fs::read_to_string(config).ok()? + &rule).ok()?;
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(&served)
        .args(["serve", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .ok()?;
    let started = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if child.try_wait().ok().flatten().is_some() || started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            let why = fs::read_to_string(dir.join("test-server.log")).unwrap_or_default();
            eprintln!("NOTE: no server starts on {} ({}): this command runs locally", config.display(), why.trim());
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    SERVERS.with(|s| s.borrow_mut().insert(key, TestServer { child, socket: socket.clone(), state }));
    Some(socket)
}
