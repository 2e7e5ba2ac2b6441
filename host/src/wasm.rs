//! The component runtime: one engine, pinned and cached components, one sandboxed instance per
//! provider, CPU/memory/stack limits on every call, and traps turned into errors.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use zeroize::Zeroizing;

use crate::bindings::{self, Provider, ProviderPre};
use crate::error::{LoadError, ProviderError};
use crate::provider::{
    CapabilityInfo, CryptoProvider, Descriptor, KeyId, Origin, Priority, Sealed, SigFormat, SignInput, Verifier,
};

/// The only interfaces a provider may import: our `host` interface and the `types` it shares.
const ALLOWED_IMPORTS: [&str; 2] = ["cryptohost:provider/host@0.1.0", "cryptohost:provider/types@0.1.0"];

/// The most randomness one `random-bytes` call hands out.
const MAX_RANDOM_PER_CALL: u32 = 64 * 1024;

/// How often the epoch advances; deadlines are whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How much of a file `digest_reader` hands the guest per call.
const STREAM_CHUNK: usize = 256 * 1024;

/// Per-call sandbox limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock budget of one guest call (epoch deadline).
    pub call_timeout: Duration,
    /// Budget of a key generation call (RSA generation takes seconds in the sandbox).
    pub keygen_timeout: Duration,
    /// Cap on a guest's linear memory.
    pub memory_bytes: usize,
    /// Cap on the wasm stack (engine-wide).
    pub max_wasm_stack: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_millis(500),
            keygen_timeout: Duration::from_secs(60),
            memory_bytes: 64 << 20,
            max_wasm_stack: 512 << 10,
        }
    }
}

/// Where precompiled components are kept between runs.
#[derive(Clone, Debug)]
pub enum CacheSetting {
    /// Compile every start (nothing native is ever read from disk).
    Disabled,
    /// Keep precompiled artifacts here; the directory must belong to this user, mode 0700-ish.
    Dir(PathBuf),
}

/// How a component's bytes are admitted.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The digest pinned in the configuration.
    Pinned(String),
    /// `--dev`: the digest from `components/manifest.json`.
    Manifest(String),
}

/// Advances the engine's epoch so that a guest stuck in a loop hits its deadline.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cryptohost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Shared {
    engine: Engine,
    limits: Limits,
    _ticker: EpochTicker,
}

/// The host-side state of one guest instance.
pub struct GuestState {
    limits: StoreLimits,
    provider: String,
}

impl bindings::cryptohost::provider::types::Host for GuestState {}

impl bindings::cryptohost::provider::host::Host for GuestState {
    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_PER_CALL {
            wasmtime::bail!("random-bytes asked for {len} bytes (at most {MAX_RANDOM_PER_CALL} per call)");
        }
        let mut buf = vec![0u8; len as usize];
        getrandom::fill(&mut buf).map_err(|e| wasmtime::format_err!("OS RNG failed: {e}"))?;
        Ok(buf)
    }

    fn log(&mut self, level: bindings::cryptohost::provider::host::LogLevel, message: String) {
        use bindings::cryptohost::provider::host::LogLevel;
        let level = match level {
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        // A guest controls this text: bound it and keep it on one line.
        let line: String = message.chars().take(1024).map(|c| if c.is_control() { ' ' } else { c }).collect();
        log::log!(target: "cryptohost::guest", level, "[{}] {line}", self.provider);
    }
}

/// The one engine and linker of a process, and the precompiled-component cache.
pub struct Runtime {
    shared: Arc<Shared>,
    linker: Linker<GuestState>,
    cache: Option<PathBuf>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn component_err(file: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Component { file: file.to_path_buf(), message: message.into() }
}

fn cache_err(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Cache { path: path.to_path_buf(), message: message.into() }
}

/// Refuses a cache path that someone other than this user could have written.
fn check_private(path: &Path, what: &str) -> Result<(), LoadError> {
    let meta = fs::symlink_metadata(path).map_err(|e| cache_err(path, e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        return Err(cache_err(path, format!("{what} is a symlink; refused")));
    }
    if meta.uid() != me {
        return Err(cache_err(
            path,
            format!("{what} is owned by uid {}, not by this user ({me}); refused", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(cache_err(
            path,
            format!("{what} is writable by group or others (mode {:o}); refused", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

impl Runtime {
    /// Builds the engine (wide arithmetic, epoch interruption, stack cap) and the linker that
    /// offers guests nothing but the `host` interface.
    ///
    /// # Errors
    /// The engine cannot be built, or the cache directory is not private to this user.
    pub fn new(limits: Limits, cache: CacheSetting) -> Result<Runtime, LoadError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Guests are built with +wide-arithmetic: a 64x64->128 multiply in one instruction
        // is what keeps the sandbox within 1.5x of native for EC and RSA.
        config.wasm_wide_arithmetic(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(limits.max_wasm_stack);
        let engine = Engine::new(&config)
            .map_err(|e| LoadError::Config { path: PathBuf::from("<engine>"), message: e.to_string() })?;

        let mut linker = Linker::new(&engine);
        Provider::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Config { path: PathBuf::from("<linker>"), message: e.to_string() })?;

        let cache = match cache {
            CacheSetting::Disabled => None,
            CacheSetting::Dir(dir) => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| cache_err(&dir, format!("cannot create: {e}")))?;
                check_private(&dir, "cache directory")?;
                Some(dir)
            }
        };

        let ticker = EpochTicker::start(engine.clone());
        Ok(Runtime { shared: Arc::new(Shared { engine, limits, _ticker: ticker }), linker, cache })
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The cache file for a component digest under this engine's settings.
    fn cache_path(&self, dir: &Path, sha256: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.shared.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
    }

    /// Compiles a component, or loads its precompiled artifact from the private cache.
    fn compile(&self, file: &Path, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        let engine = &self.shared.engine;
        let Some(dir) = &self.cache else {
            return Component::new(engine, bytes).map_err(|e| component_err(file, format!("does not compile: {e}")));
        };
        let path = self.cache_path(dir, sha256);
        if path.exists() {
            check_private(&path, "cached artifact")?;
            // SAFETY: the artifact is native code. It sits in a directory that only this user
            // can write (checked above, owner and mode, no symlink), under a name keyed by the
            // component's sha256 (already verified against its pin) and this engine's
            // settings, so it was written by this host from exactly these bytes.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => log::warn!("ignoring unusable cached artifact {}: {e}", path.display()),
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| component_err(file, format!("does not compile: {e}")))?;
        match component.serialize() {
            Ok(native) => {
                if let Err(e) = write_private_atomic(&path, &native) {
                    log::warn!("could not cache {}: {e}", path.display());
                }
            }
            Err(e) => log::warn!("could not serialize {}: {e}", file.display()),
        }
        Ok(component)
    }

    /// Loads, checks and describes one provider component.
    ///
    /// # Errors
    /// The file cannot be read, its digest does not match `trust`, it imports anything but
    /// the `host` interface, it does not implement the provider world, or its metadata traps.
    pub fn load(
        &self,
        name: &str,
        file: &Path,
        trust: &Trust,
        priority: Priority,
        settings: Vec<(String, String)>,
    ) -> Result<WasmProvider, LoadError> {
        let bytes = fs::read(file).map_err(|source| LoadError::Io { path: file.to_path_buf(), source })?;
        let actual = sha256_hex(&bytes);
        let expected = match trust {
            Trust::Pinned(d) | Trust::Manifest(d) => d.to_ascii_lowercase(),
        };
        if actual != expected {
            return Err(LoadError::PinMismatch { file: file.to_path_buf(), expected, actual });
        }
        let component = self.compile(file, &bytes, &actual)?;

        let ty = component.component_type();
        for (import, _) in ty.imports(&self.shared.engine) {
            if !ALLOWED_IMPORTS.contains(&import) {
                return Err(component_err(
                    file,
                    format!(
                        "imports `{import}`; a provider may import only {} (refused: no WASI or other host access)",
                        ALLOWED_IMPORTS[0]
                    ),
                ));
            }
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| component_err(file, format!("cannot be linked: {e}")))?;
        let pre = ProviderPre::new(instance_pre)
            .map_err(|e| component_err(file, format!("does not implement the cryptohost:provider world: {e}")))?;

        let mut provider = WasmProvider {
            shared: self.shared.clone(),
            pre,
            descriptor: Descriptor {
                name: name.to_string(),
                reported_name: String::new(),
                version: String::new(),
                priority,
                origin: Origin::Component {
                    file: file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                    sha256: actual,
                },
                capabilities: Vec::new(),
            },
            slot: Mutex::new(None),
            generations: AtomicU64::new(0),
            settings: Settings(settings),
        };
        let timeout = self.shared.limits.call_timeout;
        let (info, _) = provider
            .with_live(None, timeout, |live| live.bindings.cryptohost_provider_metadata().call_info(&mut live.store))
            .map_err(|e| component_err(file, format!("metadata call failed: {e}")))?;
        provider.descriptor.reported_name = info.name;
        provider.descriptor.version = info.version;
        provider.descriptor.capabilities = info
            .capabilities
            .into_iter()
            .map(|c| CapabilityInfo { capability: c.capability.into(), algorithms: c.algorithms })
            .collect();
        Ok(provider)
    }
}

fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path)
}

/// A live instance: its own store (guest state never leaks across instances) and bindings.
struct Live {
    store: Store<GuestState>,
    bindings: Provider,
    generation: u64,
}

/// A provider backed by a sandboxed component.
pub struct WasmProvider {
    shared: Arc<Shared>,
    pre: ProviderPre<GuestState>,
    descriptor: Descriptor,
    /// One instance at a time. After a fault it is dropped, and the next call builds a fresh
    /// one: a trapped instance is never entered again.
    slot: Mutex<Option<Live>>,
    generations: AtomicU64,
    /// Handed to every fresh instance through `metadata.configure` (may hold secrets such as
    /// the simulation seed: never logged).
    settings: Settings,
}

/// Provider settings, wiped from memory when the provider goes.
struct Settings(Vec<(String, String)>);

impl Drop for Settings {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for (_, v) in &mut self.0 {
            v.zeroize();
        }
    }
}

/// Words for a trap, including which limit was hit.
fn describe_fault(err: &wasmtime::Error, timeout: Duration, limits: &Limits) -> String {
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("stopped at its CPU deadline ({} ms)", timeout.as_millis()),
        Some(Trap::StackOverflow) => {
            format!("stopped: wasm stack overflow (limit {} KiB)", limits.max_wasm_stack / 1024)
        }
        Some(Trap::UnreachableCodeReached) => "trapped: unreachable code (a panic or abort in the guest)".into(),
        Some(trap) => format!("trapped: {trap}"),
        None => {
            let root = err.root_cause().to_string();
            if root.contains("memory") && root.contains("grow") {
                format!("stopped at its memory limit ({} MiB): {root}", limits.memory_bytes >> 20)
            } else {
                format!("failed: {root}")
            }
        }
    }
}

fn lock(slot: &Mutex<Option<Live>>) -> MutexGuard<'_, Option<Live>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WasmProvider {
    fn instantiate(&self) -> Result<Live, ProviderError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.shared.limits.memory_bytes)
            .instances(16)
            .memories(4)
            .tables(16)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.shared.engine, GuestState { limits, provider: self.descriptor.name.clone() });
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(self.shared.limits.call_timeout));
        store.epoch_deadline_trap();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| ProviderError::Fault(format!("{}: instantiation failed: {e}", self.descriptor.name)))?;
        let configured = bindings
            .cryptohost_provider_metadata()
            .call_configure(&mut store, &self.settings.0)
            .map_err(|e| ProviderError::Fault(format!("{}: configure trapped: {e}", self.descriptor.name)))?;
        if let Err(e) = configured {
            return Err(ProviderError::from(e));
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Live { store, bindings, generation })
    }

    /// Runs `f` on the live instance under the call limits. With `pin` set, the call must
    /// reach the same instance that created a key or resource; a fresh one would not hold it.
    fn with_live<T>(
        &self,
        pin: Option<u64>,
        timeout: Duration,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<T>,
    ) -> Result<(T, u64), ProviderError> {
        let mut slot = lock(&self.slot);
        if slot.is_none() {
            if pin.is_some() {
                return Err(self.lost());
            }
            *slot = Some(self.instantiate()?);
        }
        let Some(live) = slot.as_mut() else { return Err(self.lost()) };
        if pin.is_some_and(|g| g != live.generation) {
            return Err(self.lost());
        }
        live.store.set_epoch_deadline(ticks(timeout));
        match f(live) {
            Ok(v) => Ok((v, live.generation)),
            Err(e) => {
                let what = describe_fault(&e, timeout, &self.shared.limits);
                *slot = None;
                log::warn!("provider {}: {what}; instance discarded", self.descriptor.name);
                Err(ProviderError::Fault(format!("{} {what}; its instance was discarded", self.descriptor.name)))
            }
        }
    }

    fn lost(&self) -> ProviderError {
        ProviderError::KeyNotFound(format!(
            "{}: the instance that held this key or verifier was reset after a fault",
            self.descriptor.name
        ))
    }

    fn call<T>(
        &self,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<Result<T, bindings::CryptoError>>,
    ) -> Result<T, ProviderError> {
        let (r, _) = self.with_live(None, self.shared.limits.call_timeout, f)?;
        r.map_err(Into::into)
    }
}

impl Drop for WasmVerifier<'_> {
    fn drop(&mut self) {
        let mut slot = lock(&self.provider.slot);
        if let Some(live) = slot.as_mut().filter(|l| l.generation == self.generation) {
            let _ = self.resource.resource_drop(&mut live.store);
        }
    }
}

impl CryptoProvider for WasmProvider {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn digest(&self, algorithm: &str, data: &[u8]) -> Result<Vec<u8>, ProviderError> {
        self.call(|live| live.bindings.cryptohost_provider_hashing().call_digest(&mut live.store, algorithm, data))
    }

    fn digest_reader(&self, algorithm: &str, reader: &mut dyn Read) -> Result<Vec<u8>, ProviderError> {
        let timeout = self.shared.limits.call_timeout;
        let (hasher, generation) = self.with_live(None, timeout, |live| {
            live.bindings.cryptohost_provider_hashing().call_open_hasher(&mut live.store, algorithm)
        })?;
        let hasher = hasher?;
        let mut buf = vec![0u8; STREAM_CHUNK];
        let result = loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(ProviderError::InvalidInput(format!("reading input: {e}"))),
            };
            // Each chunk is its own call with its own deadline, so a large file is fine.
            if let Err(e) = self.with_live(Some(generation), timeout, |live| {
                live.bindings.cryptohost_provider_hashing().hasher().call_update(&mut live.store, hasher, &buf[..n])
            }) {
                break Err(e);
            }
        };
        let finished = match result {
            Ok(()) => self
                .with_live(Some(generation), timeout, |live| {
                    live.bindings.cryptohost_provider_hashing().hasher().call_finish(&mut live.store, hasher)
                })
                .map(|(r, _)| r),
            Err(e) => Err(e),
        };
        let mut slot = lock(&self.slot);
        if let Some(live) = slot.as_mut().filter(|l| l.generation == generation) {
            let _ = hasher.resource_drop(&mut live.store);
        }
        drop(slot);
        finished?.map_err(Into::into)
    }

    fn open_verifier(&self, algorithm: &str, spki_der: &[u8]) -> Result<Box<dyn Verifier + '_>, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_verification().call_open_verifier(&mut live.store, algorithm, spki_der)
        })?;
        let resource = r?;
        Ok(Box::new(WasmVerifier { provider: self, resource, generation }))
    }

    fn import_pkcs8(&self, pkcs8_der: &[u8]) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_signing().call_import_pkcs8(&mut live.store, pkcs8_der)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn generate(&self, algorithm: &str, rsa_bits: u32, exportable: bool) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.keygen_timeout, |live| {
            live.bindings.cryptohost_provider_signing().call_generate(&mut live.store, algorithm, rsa_bits, exportable)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn public_key(&self, key: &KeyId) -> Result<Vec<u8>, ProviderError> {
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_signing().call_public_key(&mut live.store, id)
        })?;
        r.map_err(Into::into)
    }

    fn export_pkcs8(&self, key: &KeyId) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_signing().call_export_pkcs8(&mut live.store, id)
        })?;
        r.map(Zeroizing::new).map_err(Into::into)
    }

    fn sign(
        &self,
        key: &KeyId,
        algorithm: &str,
        input: SignInput<'_>,
        format: SigFormat,
    ) -> Result<Vec<u8>, ProviderError> {
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            let s = live.bindings.cryptohost_provider_signing();
            match input {
                SignInput::Message(m) => s.call_sign(&mut live.store, id, algorithm, m, format.into()),
                SignInput::Digest(d) => s.call_sign_digest(&mut live.store, id, algorithm, d, format.into()),
            }
        })?;
        r.map_err(Into::into)
    }

    fn named_key(&self, name: &str, algorithm: &str, rsa_bits: u32, create: bool) -> Result<KeyId, ProviderError> {
        let timeout = if create { self.shared.limits.keygen_timeout } else { self.shared.limits.call_timeout };
        // A seeded simulation derives (generates) the key even when `create` is false.
        let timeout = timeout.max(self.shared.limits.keygen_timeout);
        let (r, generation) = self.with_live(None, timeout, |live| {
            live.bindings.cryptohost_provider_signing().call_named_key(
                &mut live.store,
                name,
                algorithm,
                rsa_bits,
                create,
            )
        })?;
        Ok(key_id(generation, &r?))
    }

    fn named_secret(&self, name: &str, algorithm: &str, create: bool) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_encryption().call_named_secret(&mut live.store, name, algorithm, create)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn import_secret(&self, algorithm: &str, key: &[u8]) -> Result<KeyId, ProviderError> {
        let (r, generation) = self.with_live(None, self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_encryption().call_import_secret(&mut live.store, algorithm, key)
        })?;
        Ok(key_id(generation, &r?))
    }

    fn encrypt(&self, key: &KeyId, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, ProviderError> {
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_encryption().call_encrypt(&mut live.store, id, plaintext, aad)
        })?;
        let sealed = r?;
        Ok(Sealed { nonce: sealed.nonce, ciphertext: sealed.ciphertext })
    }

    fn decrypt(
        &self,
        key: &KeyId,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let (generation, id) = split_key(key)?;
        let (r, _) = self.with_live(Some(generation), self.shared.limits.call_timeout, |live| {
            live.bindings.cryptohost_provider_encryption().call_decrypt(&mut live.store, id, nonce, ciphertext, aad)
        })?;
        r.map(Zeroizing::new).map_err(Into::into)
    }
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// A key id is `generation:guest-id`, so a key is never looked up in an instance that did not
/// create it.
fn key_id(generation: u64, guest: &str) -> KeyId {
    KeyId(format!("{generation}:{guest}"))
}

fn split_key(key: &KeyId) -> Result<(u64, &str), ProviderError> {
    key.0
        .split_once(':')
        .and_then(|(g, k)| Some((g.parse().ok()?, k)))
        .ok_or_else(|| ProviderError::KeyNotFound(format!("{:?} is not a key id of this provider", key.0)))
}

/// A verifier resource inside a guest instance.
struct WasmVerifier<'a> {
    provider: &'a WasmProvider,
    resource: ResourceAny,
    generation: u64,
}

impl Verifier for WasmVerifier<'_> {
    fn verify(&self, input: SignInput<'_>, signature: &[u8], format: SigFormat) -> Result<bool, ProviderError> {
        let p = self.provider;
        let (r, _) = p.with_live(Some(self.generation), p.shared.limits.call_timeout, |live| {
            let v = live.bindings.cryptohost_provider_verification().verifier();
            match input {
                SignInput::Message(m) => v.call_verify(&mut live.store, self.resource, m, signature, format.into()),
                SignInput::Digest(d) => {
                    v.call_verify_digest(&mut live.store, self.resource, d, signature, format.into())
                }
            }
        })?;
        r.map_err(Into::into)
    }
}
