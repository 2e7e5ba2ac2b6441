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

/// A registry over the real components, pinned to what was just built.
pub fn registry(providers: &[P<'_>]) -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &components_dir(), providers, "");
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

/// Runs `cryptohost --config CONFIG ARGS...`.
pub fn run(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(binary()).arg("--config").arg(config).args(args).output().expect("run cryptohost");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "cryptohost panicked: {stderr}");
    assert_ne!(out.status.code(), Some(101), "cryptohost panicked: {stderr}");
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
