//! The component runtime: one engine, pinned and cached components, one sandboxed instance per
//! provider, CPU/memory/stack limits on every call, and traps turned into errors.

mod admit;
mod budget;
mod cache;
mod calls;
mod deferred;
pub use admit::Inspection;
pub use deferred::Admission;
pub mod world;

pub use budget::BudgetExceeded;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};
use wasmtime::{Config, Engine, Store, Trap};

use crate::bindings::{self, Keystore};
use crate::error::{LoadError, ProviderError};
use crate::fsio::{self, limits as file_limits};
use crate::provider::{
    Capability, CapabilityInfo, CryptoProvider, Descriptor, Encryption, Hashing, KeyId, OnDevice, Origin, Priority,
    ProviderStats, Sealed, SigFormat, SignInput, Signing, Verification, Verifier,
};
use budget::{Budget, LOG_LINE_CHARS, LOG_LINES_PER_CALL};
use cache::NativeCache;
use wasmtime::component::InstancePre;

/// The only interfaces a provider may import: our `host` interface and the `types` it shares.
const ALLOWED_IMPORTS: [&str; 2] = ["cryptohost:provider/host@0.2.0", "cryptohost:provider/types@0.2.0"];

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
    /// One budget for all of a guest instance's linear memories and table elements.
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
    /// Keep precompiled artifacts in `dir`, and the BLAKE3 hash of each, recorded when this host
    /// compiled it, in `digests` (kept apart: whoever can write the cache must not be able to
    /// vouch for what is in it). Both must belong to this user, as must every parent directory
    /// (or root).
    Dir { dir: PathBuf, digests: PathBuf },
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
                let mut next = std::time::Instant::now() + EPOCH_TICK;
                while !flag.load(Ordering::Relaxed) {
                    // Parked, not asleep: a stopping host unparks it at once (a one-shot
                    // command does not wait out a tick to exit). A wake before the tick is due
                    // (spurious, or the stop) does not advance the epoch.
                    let now = std::time::Instant::now();
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    engine.increment_epoch();
                    next += EPOCH_TICK;
                    if next < now {
                        next = now + EPOCH_TICK;
                    }
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
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

struct Shared {
    engine: Engine,
    limits: Limits,
    /// Started with the first store: a command that never runs a guest starts no thread.
    ticker: OnceLock<EpochTicker>,
}

/// The host-side state of one guest instance.
pub struct GuestState {
    budget: Budget,
    provider: String,
    /// Log lines this call may still write, and how many were dropped.
    log_left: u32,
    log_dropped: u32,
}

impl GuestState {
    fn new(provider: &str, memory_bytes: usize) -> GuestState {
        GuestState {
            budget: Budget::new(memory_bytes),
            provider: provider.to_string(),
            log_left: LOG_LINES_PER_CALL,
            log_dropped: 0,
        }
    }
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
        // A guest never speaks at error level: errors are the host's word. Its lines go to
        // their own log target, which the CLI prints with a `guest NAME` prefix.
        let level = match level {
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn | LogLevel::Error => log::Level::Warn,
        };
        if self.log_left == 0 {
            self.log_dropped = self.log_dropped.saturating_add(1);
            return;
        }
        self.log_left -= 1;
        // A guest controls this text: bound it and keep it on one line.
        let line: String = message.chars().take(LOG_LINE_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
        log::log!(target: GUEST_LOG_TARGET, level, "{}: {line}", self.provider);
    }
}

/// The `log` target of lines a guest wrote (the CLI prefixes them so they never pass for the
/// host's own).
pub const GUEST_LOG_TARGET: &str = "cryptohost::guest";

/// The one engine and linker of a process, and the precompiled-component cache.
pub struct Runtime {
    shared: Arc<Shared>,
    linker: Linker<GuestState>,
    cache: Option<NativeCache>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn component_err(file: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Component { file: file.to_path_buf(), message: message.into() }
}

impl Runtime {
    /// Builds the engine (wide arithmetic, epoch interruption, stack cap) and the linker that
    /// offers guests nothing but the `host` interface.
    ///
    /// # Errors
    /// The engine cannot be built, or the cache directory is not private to this user.
    pub fn new(limits: Limits, cache: CacheSetting) -> Result<Runtime, LoadError> {
        Runtime::build(limits, cache, None)
    }

    /// As [`Runtime::new`], with wasmtime's pooling allocator sized for `instances` component
    /// instances at once (the long-running server: the sum of every provider's pool). Each
    /// slot is reserved once, at the memory budget's size, and reused: making an instance
    /// (at start, after a trap) maps nothing new, and the pool is the hard cap on how many
    /// exist.
    ///
    /// # Errors
    /// As [`Runtime::new`], or the pool cannot be reserved.
    pub fn pooled(limits: Limits, cache: CacheSetting, instances: u32) -> Result<Runtime, LoadError> {
        Runtime::build(limits, cache, Some(instances.max(1)))
    }

    fn build(limits: Limits, cache: CacheSetting, pooled: Option<u32>) -> Result<Runtime, LoadError> {
        let mut config = Config::new();
        if let Some(n) = pooled {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            pool.total_component_instances(n)
                .max_core_instances_per_component(budget::MAX_CORE_INSTANCES)
                .total_core_instances(n.saturating_mul(budget::MAX_CORE_INSTANCES))
                .max_memories_per_component(budget::MAX_MEMORIES)
                .max_memories_per_module(budget::MAX_MEMORIES)
                .total_memories(n.saturating_mul(budget::MAX_MEMORIES))
                .max_tables_per_component(budget::MAX_TABLES)
                .max_tables_per_module(budget::MAX_TABLES)
                .total_tables(n.saturating_mul(budget::MAX_TABLES))
                .table_elements(budget::POOLED_TABLE_ELEMENTS)
                .max_memory_size(limits.memory_bytes)
                // A freed slot keeps nothing resident: a guest's memory never outlives it.
                .linear_memory_keep_resident(0)
                .table_keep_resident(0);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        config.wasm_component_model(true);
        // Guests are built with +wide-arithmetic: a 64x64->128 multiply in one instruction
        // is what keeps the sandbox within 1.5x of native for EC and RSA.
        config.wasm_wide_arithmetic(true);
        config.epoch_interruption(true);
        // No wasm-offset map in the compiled code: about 12% of every artifact, read and
        // hashed at each start, for trap messages that name the function but not the offset.
        config.generate_address_map(false);
        config.max_wasm_stack(limits.max_wasm_stack);
        let engine = Engine::new(&config)
            .map_err(|e| LoadError::Config { path: PathBuf::from("<engine>"), message: e.to_string() })?;

        let mut linker = Linker::new(&engine);
        Keystore::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Config { path: PathBuf::from("<linker>"), message: e.to_string() })?;

        let cache = match cache {
            CacheSetting::Disabled => None,
            CacheSetting::Dir { dir, digests } => NativeCache::open(&dir, &digests, &engine)?,
        };

        Ok(Runtime { shared: Arc::new(Shared { engine, limits, ticker: OnceLock::new() }), linker, cache })
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Where a component's precompiled artifact and its digest record live (for operators and
    /// tests); `None` with the cache off.
    pub fn cache_paths(&self, sha256: &str) -> Option<(PathBuf, PathBuf)> {
        let c = self.cache.as_ref()?;
        let key = c.key(sha256);
        Some((c.artifact_path(&key), c.digest_path(&key)))
    }

    /// Where the stamp of component file `file`, pinned to `sha256`, is recorded once it has
    /// been hashed (see [`Runtime::load`]); `None` with the cache off.
    pub fn stamp_path(&self, file: &Path, sha256: &str) -> Option<PathBuf> {
        let c = self.cache.as_ref()?;
        Some(c.stamp_path(&c.key(sha256), file))
    }

    /// The component whose sha256 is `sha256` (its pin, already checked against the file): its
    /// precompiled artifact from the cache when the artifact's bytes match the digest recorded
    /// when this host compiled it (the component file is then not read again), else the file
    /// read, checked against `sha256` once more (it may have changed since) and compiled.
    fn component(&self, file: &Path, sha256: &str) -> Result<Component, LoadError> {
        let engine = &self.shared.engine;
        let key = self.cache.as_ref().map(|c| c.key(sha256));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(native) = cache.load(key)
        {
            // SAFETY: these bytes are native code. They are exactly the bytes whose BLAKE3 hash
            // matched the record this host wrote when it compiled this component (already
            // verified against its pin) under this engine's settings; the record sits outside
            // the cache directory, and both directories and their parents are writable only by
            // this user or root. The bytes were hashed where they are deserialized from: a
            // memory file sealed against every write before hashing, or memory of our own.
            let loaded = match &native {
                // Mapped from the sealed file; where the kernel will not map it executable
                // (`vm.memfd_noexec`), its sealed bytes are copied into memory instead.
                cache::Artifact::Sealed(sealed) => unsafe { Component::deserialize_file(engine, sealed.proc_path()) }
                    .or_else(|e| {
                        log::debug!("cannot map the sealed artifact ({e}); copying it");
                        let bytes = sealed.bytes().map_err(wasmtime::Error::from)?;
                        unsafe { Component::deserialize(engine, &bytes) }
                    }),
                cache::Artifact::Bytes(bytes) => unsafe { Component::deserialize(engine, bytes) },
            };
            match loaded {
                Ok(c) => return Ok(c),
                Err(e) => log::warn!("ignoring unusable cached artifact for {}: {e}", file.display()),
            }
        }
        // No symlink at the final component: a link to /etc/shadow must not even be hashed.
        let bytes = fsio::read_bounded_nofollow(file, file_limits::COMPONENT, "component")
            .map_err(|e| component_err(file, e.message))?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(LoadError::PinMismatch { file: file.to_path_buf(), expected: sha256.to_string(), actual });
        }
        let component =
            Component::new(engine, &bytes).map_err(|e| component_err(file, format!("does not compile: {e}")))?;
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            match component.serialize() {
                Ok(native) => cache.store(key, &native),
                Err(e) => log::warn!("could not serialize {}: {e}", file.display()),
            }
        }
        Ok(component)
    }
}

/// A live instance: its own store (guest state never leaks across instances), bindings, and
/// the verifiers it has open.
struct Live {
    store: Store<GuestState>,
    bindings: world::Handles,
    generation: u64,
    /// Opened verifiers by (algorithm, sha256 of the SPKI), most recently used last: a verify
    /// under a key this instance has seen does not parse the key again.
    verifiers: Vec<((String, [u8; 32]), ResourceAny)>,
}

/// Verifiers kept open per instance.
const VERIFIER_CACHE: usize = 64;

/// One instance place of a provider's pool. `generation` mirrors the instance inside (0 when
/// empty) so that a call pinned to an instance finds its slot without waiting on the others.
struct Slot {
    live: Mutex<Option<Live>>,
    generation: AtomicU64,
}

/// A provider backed by a sandboxed component.
pub struct WasmProvider {
    shared: Arc<Shared>,
    pre: InstancePre<GuestState>,
    /// Where its world's interfaces sit, found once.
    indices: world::Indices,
    descriptor: Descriptor,
    /// The instance pool: each slot runs one call at a time, so calls to this provider run in
    /// parallel up to the pool size. Instances are made on first use. After a fault an
    /// instance is dropped, and the next call in that slot builds a fresh one: a trapped
    /// instance is never entered again.
    slots: Vec<Slot>,
    next: std::sync::atomic::AtomicUsize,
    /// Calls that found every instance busy and waited.
    waits: AtomicU64,
    /// Calls that ended in a trap (the instance was discarded).
    traps: AtomicU64,
    generations: AtomicU64,
    /// Handed to every fresh instance through `metadata.configure` (may hold secrets such as
    /// the simulation seed: never logged).
    settings: Settings,
}

/// Provider settings, wiped from memory when the provider goes.
pub struct Settings(Vec<(String, String)>);

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
        None => match err.downcast_ref::<BudgetExceeded>() {
            Some(b) => format!("stopped at its memory limit ({} MiB): {b}", limits.memory_bytes >> 20),
            None => format!("failed: {}", err.root_cause()),
        },
    }
}

fn lock(slot: &Mutex<Option<Live>>) -> MutexGuard<'_, Option<Live>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A store as every guest gets it: one budget for all memories and tables, the call deadline
/// armed, the log ration full.
fn new_store(shared: &Shared, provider: &str) -> Store<GuestState> {
    shared.ticker.get_or_init(|| EpochTicker::start(shared.engine.clone()));
    let mut store = Store::new(&shared.engine, GuestState::new(provider, shared.limits.memory_bytes));
    store.limiter(|s| &mut s.budget);
    store.set_epoch_deadline(ticks(shared.limits.call_timeout));
    store.epoch_deadline_trap();
    store
}

impl WasmProvider {
    /// Records the publisher key id that signed the component manifest admitting it.
    pub fn set_publisher(&mut self, key_id: &str) {
        if let Origin::Component { publisher, .. } = &mut self.descriptor.origin {
            *publisher = Some(key_id.to_string());
        }
    }

    fn instantiate(&self) -> Result<Live, ProviderError> {
        let shared = &self.shared;
        let mut store = new_store(shared, &self.descriptor.name);
        let bindings =
            self.pre.instantiate(&mut store).and_then(|i| self.indices.load(&mut store, &i)).map_err(|e| {
                let what = describe_fault(&e, shared.limits.call_timeout, &shared.limits);
                ProviderError::Fault(format!("{}: instantiation {what}", self.descriptor.name))
            })?;
        let configured = bindings
            .metadata
            .call_configure(&mut store, &self.settings.0)
            .map_err(|e| ProviderError::Fault(format!("{}: configure trapped: {e}", self.descriptor.name)))?;
        if let Err(e) = configured {
            return Err(ProviderError::from(e));
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Live { store, bindings, generation, verifiers: Vec::new() })
    }

    /// Runs `f` on the live instance under the call limits. With `pin` set, the call must
    /// reach the same instance that created a key or resource; a fresh one would not hold it.
    fn with_live<T>(
        &self,
        pin: Option<u64>,
        timeout: Duration,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<T>,
    ) -> Result<(T, u64), ProviderError> {
        let (index, mut slot) = match pin {
            Some(g) => {
                let i = self
                    .slots
                    .iter()
                    .position(|s| s.generation.load(Ordering::Acquire) == g)
                    .ok_or_else(|| self.lost())?;
                (i, lock(&self.slots[i].live))
            }
            None => self.free_slot(),
        };
        if slot.is_none() {
            if pin.is_some() {
                return Err(self.lost());
            }
            let live = self.instantiate()?;
            self.slots[index].generation.store(live.generation, Ordering::Release);
            *slot = Some(live);
        }
        let Some(live) = slot.as_mut() else { return Err(self.lost()) };
        if pin.is_some_and(|g| g != live.generation) {
            return Err(self.lost());
        }
        live.store.set_epoch_deadline(ticks(timeout));
        live.store.data_mut().log_left = LOG_LINES_PER_CALL;
        let result = f(live);
        let dropped = std::mem::take(&mut live.store.data_mut().log_dropped);
        if dropped > 0 {
            log::warn!(
                target: GUEST_LOG_TARGET,
                "{}: {dropped} more log line(s) in one call were dropped (at most {LOG_LINES_PER_CALL} per call)",
                self.descriptor.name
            );
        }
        match result {
            Ok(v) => Ok((v, live.generation)),
            Err(e) => {
                let what = describe_fault(&e, timeout, &self.shared.limits);
                self.traps.fetch_add(1, Ordering::Relaxed);
                *slot = None;
                self.slots[index].generation.store(0, Ordering::Release);
                log::warn!("provider {}: {what}; instance discarded", self.descriptor.name);
                Err(ProviderError::Fault(format!("{} {what}; its instance was discarded", self.descriptor.name)))
            }
        }
    }

    /// A slot for an unpinned call: the first idle one, lowest index first (the instance used
    /// most recently is the one whose memory and verifier cache are warm); when all are busy,
    /// wait for one, spreading the waiters round the pool (the caller's own limit decides how
    /// many wait). Waits are counted.
    fn free_slot(&self) -> (usize, MutexGuard<'_, Option<Live>>) {
        for (i, slot) in self.slots.iter().enumerate() {
            if let Ok(guard) = slot.live.try_lock() {
                return (i, guard);
            }
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        (i, lock(&self.slots[i].live))
    }

    /// Runs `f` on the instance holding `generation`, if it still does (for cleanup).
    fn on_instance(&self, generation: u64, f: impl FnOnce(&mut Live)) {
        if let Some(slot) = self.slots.iter().find(|s| s.generation.load(Ordering::Acquire) == generation) {
            let mut guard = lock(&slot.live);
            if let Some(live) = guard.as_mut().filter(|l| l.generation == generation) {
                f(live);
            }
        }
    }

    /// How many instances the pool may hold.
    pub fn instances(&self) -> usize {
        self.slots.len()
    }

    /// The most bytes one argument may carry into a guest: a quarter of its memory budget, so
    /// the copy, the guest's own working memory and its output always fit. Larger input gets a
    /// clear refusal here instead of a fault inside the guest (which would also have sent a
    /// key operation looking for another provider).
    fn max_input(&self) -> usize {
        self.shared.limits.memory_bytes / 4
    }

    fn fits(&self, what: &str, len: usize) -> Result<(), ProviderError> {
        let max = self.max_input();
        if len > max {
            return Err(ProviderError::InvalidInput(format!(
                "{what} of {len} bytes is over the {max}-byte limit of what one call may hand the sandbox \
                 (a quarter of its {} MiB memory budget, [limits] memory_mib)",
                self.shared.limits.memory_bytes >> 20
            )));
        }
        Ok(())
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
