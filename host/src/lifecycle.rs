//! Key versions and their states, kept in the key-state file (`keys.state.json` in the
//! `[state] dir`). PKCS#11 has no trustworthy creation time and no state attribute, and a
//! seeded simulation "holds" every name it is asked for, so what versions a key has, which one
//! is current, and when each was made are recorded here, each version bound to what the
//! backend can show again: its SPKI fingerprint, and on a token its serial and `CKA_ID` (never
//! an object handle, which lasts one session). The key service checks the binding before a
//! version is used.
//!
//! The states: `staged` (made by a rotation: usable for nothing until promoted), `current`
//! (signs, encrypts; exactly one per key), `retired` (verifies and decrypts only, never signs
//! or encrypts), `destroyed` (gone; refused for everything).
//!
//! A key with no entry (every key made before versions existed, and keys generated under a
//! reference before any rotation) is version 1 and current; its first rotation records it as
//! version 1 (`adopted`: its creation time is unknown, so its age counts from then).
//!
//! The file is written whole to a temporary file and renamed over the old one (a reader sees
//! the old or the new file, never half of one), under an exclusive lock on `keys.state.lock`
//! (the CLI and the server both write it), mode 0600, never through a link. Readers re-read it
//! when it changes (its inode changes with every write). The lock file is created with the
//! first write and never removed: a state file that is missing while its lock file is there
//! was deleted, which is an error (key use would otherwise fall back to version 1 silently).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::fsio;

/// The key-state file's name in the state directory.
pub const STATE_FILE: &str = "keys.state.json";
/// Its lock file's name.
pub const LOCK_FILE: &str = "keys.state.lock";
/// The largest key-state file read (an entry is ~400 bytes: room for thousands of versions).
pub const MAX_STATE_BYTES: u64 = 4 << 20;
const FORMAT: &str = "cryptohost-key-state/1";

/// The state of one version of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionState {
    Staged,
    Current,
    Retired,
    Destroyed,
}

impl VersionState {
    pub fn name(self) -> &'static str {
        match self {
            VersionState::Staged => "staged",
            VersionState::Current => "current",
            VersionState::Retired => "retired",
            VersionState::Destroyed => "destroyed",
        }
    }
}

/// What a use of a key version does, for the state check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Signing or encrypting: only the current version.
    Make,
    /// Decrypting: current and retired versions.
    Read,
    /// Reading a public key: every version but a destroyed one.
    Public,
}

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    pub version: u32,
    pub state: VersionState,
    /// The algorithm it was made for (RS256 and PS256 share an RSA key).
    pub algorithm: String,
    /// When it was made (RFC 3339, UTC); for an adopted version 1, when it was first recorded.
    pub created: String,
    /// Version 1 of a key made before versions existed: `created` is when it was recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// When its state last changed.
    pub changed: String,
    /// The provider that holds it.
    pub provider: String,
    /// SHA-256 of its SubjectPublicKeyInfo, lowercase hex (absent for a secret key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    /// The serial of the token that holds it (HSM keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_serial: Option<String>,
    /// Its `CKA_ID` on the token, lowercase hex (HSM keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cka_id: Option<String>,
}

/// A key and its versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The key's canonical reference, without a version.
    pub key: String,
    pub versions: Vec<VersionEntry>,
}

impl KeyEntry {
    /// The current version.
    pub fn current(&self) -> Option<&VersionEntry> {
        self.versions.iter().find(|v| v.state == VersionState::Current)
    }

    pub fn version(&self, n: u32) -> Option<&VersionEntry> {
        self.versions.iter().find(|v| v.version == n)
    }

    pub fn version_mut(&mut self, n: u32) -> Option<&mut VersionEntry> {
        self.versions.iter_mut().find(|v| v.version == n)
    }

    /// The number the next version gets.
    pub fn next_version(&self) -> u32 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1
    }
}

/// The key-state file's contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    format: String,
    pub keys: Vec<KeyEntry>,
}

impl Default for StateFile {
    fn default() -> StateFile {
        StateFile { format: FORMAT.into(), keys: Vec::new() }
    }
}

impl StateFile {
    pub fn entry(&self, key: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.key == key)
    }

    pub fn entry_mut(&mut self, key: &str) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|k| k.key == key)
    }

    /// Every entry well formed: one current version at most, versions unique and in range.
    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format {:?} is not {FORMAT:?}", self.format));
        }
        let mut seen = std::collections::BTreeSet::new();
        for k in &self.keys {
            if !seen.insert(k.key.as_str()) {
                return Err(format!("{} is listed twice", k.key));
            }
            let current = k.versions.iter().filter(|v| v.state == VersionState::Current).count();
            if current > 1 {
                return Err(format!("{} has {current} current versions (at most one may be)", k.key));
            }
            let mut versions = std::collections::BTreeSet::new();
            for v in &k.versions {
                if v.version == 0 || v.version > crate::keyref::MAX_VERSION || !versions.insert(v.version) {
                    return Err(format!("{}: version {} is out of range or listed twice", k.key, v.version));
                }
            }
        }
        Ok(())
    }
}

/// The key-state file could not be used: key use that depends on it is refused.
#[derive(Debug, thiserror::Error)]
#[error("key-state file {path}: {message}")]
pub struct StateError {
    pub path: PathBuf,
    pub message: String,
}

/// The key-state file of one state directory, re-read when it changes.
pub struct KeyStates {
    dir: PathBuf,
    cache: Mutex<Option<(Stamp, Arc<StateFile>)>>,
}

/// What identifies one written version of the file (every write renames a new inode in).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime_ns: i64,
    len: u64,
}

impl KeyStates {
    /// The key-state file in `dir` (the `[state] dir`); nothing is read or created yet.
    pub fn in_dir(dir: &Path) -> KeyStates {
        KeyStates { dir: dir.to_path_buf(), cache: Mutex::new(None) }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn fail(&self, message: impl Into<String>) -> StateError {
        StateError { path: self.path(), message: message.into() }
    }

    /// The file as it is now (an empty one when there is none yet).
    ///
    /// # Errors
    /// It cannot be read, is not a key-state file, is writable by others, or was deleted.
    pub fn snapshot(&self) -> Result<Arc<StateFile>, StateError> {
        self.read(false)
    }

    /// As [`KeyStates::snapshot`]; `first` when the lock file did not exist before this
    /// writer made it (no file yet is then no deletion).
    fn read(&self, first: bool) -> Result<Arc<StateFile>, StateError> {
        let path = self.path();
        // Whoever can change the directory can delete the file and its lock file together
        // (and so roll every key back to version 1 unnoticed): only this user or root may.
        if self.dir.exists() {
            fsio::guarded(&self.dir).map_err(|why| self.fail(format!("its directory: {why}")))?;
        }
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !first && self.dir.join(LOCK_FILE).exists() {
                    return Err(self.fail(format!(
                        "is missing, but {} shows it was written before: it was deleted. Key use is refused until \
                         it is restored (without it, rotated keys would silently fall back to version 1)",
                        self.dir.join(LOCK_FILE).display()
                    )));
                }
                return Ok(Arc::new(StateFile::default()));
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(self.fail("is a symbolic link; refused"));
            }
            Err(e) => return Err(self.fail(format!("cannot open: {e}"))),
        };
        let meta = file.metadata().map_err(|e| self.fail(format!("cannot stat: {e}")))?;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(self.fail(format!("is owned by uid {}, neither this user ({me}) nor root", meta.uid())));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(self.fail(format!(
                "is writable by group or others (mode {:o}): whoever can write it can promote any version",
                meta.mode() & 0o7777
            )));
        }
        let stamp = Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            len: meta.len(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, parsed)) = cache.as_ref()
            && *s == stamp
        {
            return Ok(parsed.clone());
        }
        let bytes = fsio::read_open_bounded(&path, file, MAX_STATE_BYTES, "key-state file")
            .map_err(|e| self.fail(e.message))?;
        let parsed: StateFile =
            serde_json::from_slice(&bytes).map_err(|e| self.fail(format!("is not a key-state file: {e}")))?;
        parsed.check().map_err(|m| self.fail(m))?;
        let parsed = Arc::new(parsed);
        *cache = Some((stamp, parsed.clone()));
        Ok(parsed)
    }

    /// Reads, changes and writes the file under the exclusive lock; nothing is written when `f`
    /// fails. The directory is created (0700) when missing.
    ///
    /// # Errors
    /// `f`'s error, or the file cannot be locked, read or written.
    pub fn update<T, E: From<StateError>>(&self, f: impl FnOnce(&mut StateFile) -> Result<T, E>) -> Result<T, E> {
        if !self.dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| self.fail(format!("cannot create the state directory: {e}")))?;
        }
        let first = !self.dir.join(LOCK_FILE).exists();
        let lock = self.lock()?;
        let mut state = (*self.read(first)?).clone();
        let value = f(&mut state)?;
        state.check().map_err(|m| self.fail(m))?;
        let mut bytes = serde_json::to_vec_pretty(&state).map_err(|e| self.fail(e.to_string()))?;
        bytes.push(b'\n');
        fsio::replace_atomic(&self.path(), &bytes, 0o600).map_err(|e| self.fail(e.message))?;
        // The rename is made durable before the lock is released.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        drop(lock);
        Ok(value)
    }

    fn lock(&self) -> Result<File, StateError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| self.fail(format!("cannot open the lock file {}: {e}", path.display())))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.fail(format!("cannot lock {}: {e}", path.display())))?;
        Ok(file)
    }
}

/// SHA-256 of a SubjectPublicKeyInfo, lowercase hex: how entries name a public key.
pub fn fingerprint(spki: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(spki))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, state: VersionState) -> KeyEntry {
        KeyEntry {
            key: key.into(),
            versions: vec![VersionEntry {
                version: 1,
                state,
                algorithm: "ES256".into(),
                created: "2026-01-01T00:00:00Z".into(),
                adopted: false,
                changed: "2026-01-01T00:00:00Z".into(),
                provider: "sim".into(),
                spki_sha256: Some("00".repeat(32)),
                token_serial: None,
                cka_id: None,
            }],
        }
    }

    #[test]
    fn written_under_the_lock_read_back_and_a_deleted_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = KeyStates::in_dir(&dir.path().join("state"));
        assert!(states.snapshot().expect("none yet").keys.is_empty());
        states
            .update(|s| {
                s.keys.push(entry("sim:a", VersionState::Current));
                Ok::<_, StateError>(())
            })
            .expect("written");
        let mode = std::fs::metadata(states.path()).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            states.snapshot().expect("read").entry("sim:a").and_then(|e| e.current()).map(|v| v.version),
            Some(1)
        );
        // A failing change writes nothing.
        let err = states.update(|s| {
            s.keys.clear();
            Err::<(), _>(StateError { path: PathBuf::new(), message: "no".into() })
        });
        assert!(err.is_err());
        assert_eq!(states.snapshot().expect("read").keys.len(), 1);
        // Two current versions are refused.
        let err = states
            .update(|s| {
                let mut v = s.keys[0].versions[0].clone();
                v.version = 2;
                s.keys[0].versions.push(v);
                Ok::<_, StateError>(())
            })
            .expect_err("two current");
        assert!(err.message.contains("2 current versions"), "{err}");
        std::fs::remove_file(states.path()).expect("deleted");
        let err = states.snapshot().expect_err("deleted is an error");
        assert!(err.message.contains("was deleted"), "{err}");
        std::fs::write(states.path(), b"{\"format\":\"x\",\"keys\":[]}").expect("write");
        std::fs::set_permissions(states.path(), std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        assert!(states.snapshot().expect_err("bad format").message.contains("format"));
        std::fs::set_permissions(states.path(), std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
        assert!(states.snapshot().expect_err("writable").message.contains("writable by group or others"));
        std::fs::set_permissions(states.path(), std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        // A directory others can change: they could delete the file and its lock together.
        let dir = dir.path().join("state");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
        assert!(states.snapshot().expect_err("open dir").message.contains("its directory"));
    }
}
