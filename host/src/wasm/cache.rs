//! The precompiled-component cache. An artifact is native code that runs outside the sandbox,
//! so one is used only when its BLAKE3 hash matches the digest this host recorded when it
//! compiled it (BLAKE3: every start hashes megabytes of it); the records live in a directory
//! apart from the cache (beside the config by default), under the same protection as the
//! config. The bytes hashed are the bytes deserialized.

use std::fs::{self, DirBuilder};
use std::hash::Hasher;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

use crate::error::LoadError;
use crate::fsio::{self, limits};

/// Feeds `Hash` output into sha256, so the engine's compatibility hash becomes a stable key
/// (`DefaultHasher` is not stable across Rust releases).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

/// What an engine contributes to every cache key: sha256 over this host's version and the
/// engine's compatibility hash (wasmtime version, target, settings). Computed once per engine.
fn engine_part(engine: &Engine) -> [u8; 32] {
    let mut h = Sha256Hasher(Sha256::new());
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    h.write(b"\0");
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.finalize().into()
}

/// The largest descriptor record read (a component's claims are bounded well below this).
const DESCRIPTOR_LIMIT: u64 = 256 << 10;

/// The largest stamp record read (one line of digits).
const STAMP_LIMIT: u64 = 256;

fn cache_err(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Cache { path: path.to_path_buf(), message: message.into() }
}

/// A cached artifact whose digest matched its record: in a sealed memory file, or in memory.
pub enum Artifact {
    Sealed(fsio::Sealed),
    Bytes(Vec<u8>),
}

/// Artifacts in one directory, digests of them in another.
#[derive(Debug)]
pub struct NativeCache {
    dir: PathBuf,
    digests: PathBuf,
    /// [`engine_part`] of the engine whose artifacts this cache holds.
    engine: [u8; 32],
}

/// The directory, created (mode 0700) if absent and checked. `Ok(None)` when it cannot be
/// created (a read-only config directory under systemd, say): the host then runs without a
/// cache rather than not at all. A directory that exists but fails a check is an error.
fn private_dir(path: &Path, what: &str) -> Result<Option<PathBuf>, LoadError> {
    if let Err(e) = DirBuilder::new().recursive(true).mode(0o700).create(path) {
        log::warn!(
            "precompiled cache off: cannot create the {what} {} ({e}); set [cache] dir/digest_dir, or enabled = false",
            path.display()
        );
        return Ok(None);
    }
    // Another user's directory (the service's, when root or an operator runs a local command
    // under the system config) is not ours to trust or to write: run uncached. Group- or
    // world-writable stays an error below (someone could plant code in it).
    let me = rustix::process::geteuid().as_raw();
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.is_dir()
        && m.uid() != me
        && m.mode() & 0o022 == 0
    {
        log::warn!(
            "precompiled cache off: the {what} {} belongs to uid {}, not to this user ({me}); compiling afresh",
            path.display(),
            m.uid()
        );
        return Ok(None);
    }
    fsio::check_private_dir(path, what).map(Some).map_err(|e| cache_err(&e.path, e.message))
}

impl NativeCache {
    /// Creates (mode 0700) and checks both directories and every parent of each; `None` (no
    /// cache, with a warning) when one cannot be created.
    ///
    /// # Errors
    /// Either directory, or a parent, could be written by someone other than this user (or
    /// root), or cannot be created.
    pub fn open(dir: &Path, digests: &Path, engine: &Engine) -> Result<Option<NativeCache>, LoadError> {
        let Some(dir) = private_dir(dir, "cache directory")? else { return Ok(None) };
        let Some(digests) = private_dir(digests, "cache digest directory")? else { return Ok(None) };
        if dir == digests {
            return Err(cache_err(
                &dir,
                "the digest directory must not be the cache directory (whoever can write one must not control the other)",
            ));
        }
        Ok(Some(NativeCache { dir, digests, engine: engine_part(engine) }))
    }

    /// The cache key of a component under this cache's engine: sha256 over the component's
    /// sha256 and [`engine_part`].
    pub fn key(&self, component_sha256: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"cryptohost precompiled component v3\0");
        h.update(component_sha256.as_bytes());
        h.update(b"\0");
        h.update(self.engine);
        hex::encode(h.finalize())
    }

    /// Where this host records the stamp of the component file `file` that hashed to the
    /// pinned digest under `key`: beside the digests, under the same protection.
    pub fn stamp_path(&self, key: &str, file: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let which = hex::encode(Sha256::digest(file.as_os_str().as_bytes()));
        self.digests.join(format!("{key}.{}.stamp", &which[..16]))
    }

    /// True when this host recorded that `file`, with exactly `stamp`, hashed to `sha256`
    /// (see [`fsio::Stamp`]): its pin then holds without reading it again.
    pub fn stamp_matches(&self, key: &str, file: &Path, sha256: &str, stamp: &fsio::Stamp) -> bool {
        let record = match fsio::read_private(&self.stamp_path(key, file), STAMP_LIMIT, "component stamp record") {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(e) => {
                log::warn!("{e}; hashing the component");
                return false;
            }
        };
        let text = String::from_utf8_lossy(&record);
        let Some((digest, line)) = text.trim_end().split_once(' ') else { return false };
        digest == sha256 && fsio::Stamp::parse(line).is_some_and(|s| s == *stamp)
    }

    /// Records that `file`, with `stamp`, hashed to `sha256`. A failure only costs the next
    /// start a hash.
    pub fn store_stamp(&self, key: &str, file: &Path, sha256: &str, stamp: &fsio::Stamp) {
        let line = format!("{sha256} {}\n", stamp.encode());
        if let Err(e) = fsio::replace_atomic(&self.stamp_path(key, file), line.as_bytes(), 0o600) {
            log::warn!("could not record a component's stamp: {e}");
        }
    }

    pub fn artifact_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    pub fn digest_path(&self, key: &str) -> PathBuf {
        self.digests.join(format!("{key}.blake3"))
    }

    /// The artifact, if there is one and it matches its recorded digest. Anything else (no
    /// record, a mismatch, a file someone else could have written) is `None` with a warning for
    /// the operator, and the caller compiles afresh.
    ///
    /// The artifact is copied by the kernel into a sealed memory file and hashed there, so the
    /// bytes hashed are the bytes mapped, with no copy of ours in between (where memory files
    /// or `/proc` are missing, it is read into memory and hashed there instead).
    pub fn load(&self, key: &str) -> Option<Artifact> {
        let record_path = self.digest_path(key);
        let record = match fsio::read_private(&record_path, 128, "cache digest record") {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                log::warn!("{e}; compiling afresh");
                return None;
            }
        };
        let expected = String::from_utf8_lossy(&record).trim().to_string();
        let path = self.artifact_path(key);
        let file = match fsio::open_private(&path, "cached artifact") {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => {
                log::warn!("{e}; compiling afresh");
                return None;
            }
        };
        let sealed = if Path::new("/proc/self/fd").is_dir() {
            fsio::Sealed::copy_of(&path, file, limits::ARTIFACT, "cached artifact")
                .map_err(|e| log::debug!("{e}; reading the artifact instead"))
                .ok()
        } else {
            drop(file);
            None
        };
        let (artifact, actual) = match sealed {
            Some(s) => match s.blake3() {
                Ok(d) => (Artifact::Sealed(s), hex::encode(d)),
                Err(e) => {
                    log::warn!("cannot read the sealed copy of {}: {e}; compiling afresh", path.display());
                    return None;
                }
            },
            None => match fsio::read_private(&path, limits::ARTIFACT, "cached artifact") {
                Ok(Some(b)) => {
                    let d = hex::encode(blake3::hash(&b).as_bytes());
                    (Artifact::Bytes(b), d)
                }
                Ok(None) => return None,
                Err(e) => {
                    log::warn!("{e}; compiling afresh");
                    return None;
                }
            },
        };
        if actual != expected {
            log::warn!(
                "cached artifact {} does not match the digest recorded when it was compiled (recorded {expected}, \
                 found {actual}); it was changed after this host wrote it. Not used; compiling afresh",
                path.display()
            );
            return None;
        }
        Some(artifact)
    }

    /// Where the record of what a component reported of itself lives: beside the digests,
    /// under the config's protection (it decides routing before the component runs).
    pub fn descriptor_path(&self, key: &str) -> PathBuf {
        self.digests.join(format!("{key}.descriptor.json"))
    }

    /// The descriptor record, when there is one this user wrote and no one else could have.
    pub fn load_descriptor(&self, key: &str) -> Option<Vec<u8>> {
        match fsio::read_private(&self.descriptor_path(key), DESCRIPTOR_LIMIT, "component descriptor record") {
            Ok(r) => r,
            Err(e) => {
                log::warn!("{e}; loading the component to ask it");
                None
            }
        }
    }

    /// Writes a descriptor record atomically; a failure only costs the next start a load.
    pub fn store_descriptor(&self, key: &str, bytes: &[u8]) {
        if let Err(e) = fsio::replace_atomic(&self.descriptor_path(key), bytes, 0o600) {
            log::warn!("could not record a component's descriptor: {e}");
        }
    }

    /// Writes an artifact and then its digest record, each atomically (temp file + rename).
    /// A failure only costs the next start a compile.
    pub fn store(&self, key: &str, bytes: &[u8]) {
        let digest = hex::encode(blake3::hash(bytes).as_bytes());
        let written = fsio::replace_atomic(&self.artifact_path(key), bytes, 0o600)
            .and_then(|()| fsio::replace_atomic(&self.digest_path(key), format!("{digest}\n").as_bytes(), 0o600));
        if let Err(e) = written {
            log::warn!("could not cache a precompiled component: {e}");
            let _ = fs::remove_file(self.digest_path(key));
        }
    }
}
