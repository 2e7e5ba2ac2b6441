//! What `bundle install` remembers about the kits installed in one place, kept outside the kit:
//! the newest kit's `createdAt` and every revocation any installed kit carried. A kit older
//! than the newest one installed there is refused on every load, and a revocation, once seen,
//! stays in force even if the kit that carried it is replaced by one that does not.
//!
//! Whoever can write this file can roll the kit back, so it must live where the account that
//! runs `serve` cannot write (by default beside the kit directory: `<dir>.state.json`; the
//! `[kit] state` setting moves it). It is read without following a link and refused when group
//! or others could write it or its directory.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::BundleError;
use super::kit::Revoked;
use crate::fsio;

/// The largest state file read (a revocation is ~150 bytes: room for thousands).
pub const MAX_STATE_BYTES: u64 = 1 << 20;
const VERSION: u32 = 1;

/// The state file's contents.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KitState {
    pub version: u32,
    /// The `createdAt` of the newest kit installed here (or of the one an operator chose with
    /// `--allow-downgrade`).
    pub highest_created_at: String,
    /// Every revocation seen in any kit installed here.
    pub revoked: Vec<Revoked>,
}

impl KitState {
    /// The state after installing a kit created at `created_at` that revokes `revoked`:
    /// revocations are only ever added.
    #[must_use]
    pub fn after_install(previous: Option<&KitState>, created_at: &str, revoked: &[Revoked]) -> KitState {
        let mut all: Vec<Revoked> = previous.map(|s| s.revoked.clone()).unwrap_or_default();
        for r in revoked {
            if !all.iter().any(|a| a.sha256 == r.sha256) {
                all.push(r.clone());
            }
        }
        KitState { version: VERSION, highest_created_at: created_at.to_string(), revoked: all }
    }

    /// The newest `createdAt` recorded, as a time.
    ///
    /// # Errors
    /// The recorded time does not parse.
    pub fn highest(&self, path: &Path) -> Result<OffsetDateTime, BundleError> {
        crate::trust::parse_time(&self.highest_created_at)
            .map_err(|e| BundleError::Refused(format!("kit state {}: highestCreatedAt {e}", path.display())))
    }

    /// The revocation of a component digest, if any kit installed here revoked it.
    pub fn revocation(&self, sha256: &str) -> Option<&Revoked> {
        self.revoked.iter().find(|r| r.sha256 == sha256)
    }
}

/// Where the state of a kit installed in `dir` is kept unless configured: beside the
/// directory, `<dir>.state.json` (never inside it: replacing the kit must not replace it). A
/// name too long for that (a file name is at most 255 bytes) keeps its first 200 bytes and a
/// digest of the whole name, so `bundle install` and the config still agree.
#[must_use]
pub fn default_path(dir: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    const SUFFIX: &str = ".state.json";
    let name = dir.file_name().map_or(b"kit".as_slice(), OsStrExt::as_bytes);
    let mut file = name.to_vec();
    if name.len() + SUFFIX.len() > 255 {
        use sha2::Digest as _;
        file.truncate(200);
        file.push(b'-');
        file.extend_from_slice(hex::encode(&sha2::Sha256::digest(name)[..8]).as_bytes());
    }
    file.extend_from_slice(SUFFIX.as_bytes());
    dir.with_file_name(std::ffi::OsStr::from_bytes(&file))
}

/// Reads the state file: `Ok(None)` when there is none. A symbolic link, a file that is not
/// regular or is over [`MAX_STATE_BYTES`], one that group or others can write, or one in a
/// directory they can write (not sticky), is refused.
///
/// # Errors
/// As above, or the contents are not a state file.
pub fn read(path: &Path) -> Result<Option<KitState>, BundleError> {
    let refused = |m: String| BundleError::Refused(format!("kit state {}: {m}", path.display()));
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(refused("is a symbolic link; refused".into()));
        }
        Err(e) => return Err(refused(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| refused(e.to_string()))?;
    if meta.mode() & 0o022 != 0 {
        return Err(refused(format!(
            "is writable by group or others (mode {:o}); whoever can write it can roll the kit back",
            meta.mode() & 0o7777
        )));
    }
    let bytes = fsio::read_open_bounded(path, file, MAX_STATE_BYTES, "kit state").map_err(|e| refused(e.message))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dmeta = std::fs::metadata(dir).map_err(|e| refused(format!("its directory: {e}")))?;
    if dmeta.mode() & 0o022 != 0 && dmeta.mode() & 0o1000 == 0 {
        return Err(refused(format!(
            "its directory {} is writable by group or others (mode {:o}); refused",
            dir.display(),
            dmeta.mode() & 0o7777
        )));
    }
    let state: KitState = serde_json::from_slice(&bytes).map_err(|e| refused(format!("not a kit state file: {e}")))?;
    if state.version != VERSION {
        return Err(refused(format!("version {} is not {VERSION}", state.version)));
    }
    state.highest(path)?;
    Ok(Some(state))
}

/// Writes the state file in one step (a link at `path` is replaced, never followed), mode 0644.
///
/// # Errors
/// The write fails.
pub fn write(path: &Path, state: &KitState) -> Result<(), BundleError> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| BundleError::Refused(e.to_string()))?;
    bytes.push(b'\n');
    fsio::replace_atomic(path, &bytes, 0o644)
        .map_err(|e| BundleError::Refused(format!("writing kit state {}: {}", path.display(), e.message)))
}

/// Warns when the account running now could write the state file: then a compromise of that
/// account could roll the kit back. Root can write anything, so it is not warned about.
pub fn warn_if_writable_by_me(path: &Path) {
    let me = rustix::process::geteuid();
    if me.is_root() {
        return;
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let owned = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.uid() == me.as_raw());
    if owned(path) || owned(dir) {
        log::warn!(
            "the kit state {} can be changed by this account (uid {}): whoever runs as it could roll the \
             installed kit back; keep it where only the installing account can write",
            path.display(),
            me.as_raw()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn revoked(d: &str) -> Revoked {
        Revoked { sha256: d.into(), reason: "test".into() }
    }

    #[test]
    fn revocations_are_only_added() {
        let first = KitState::after_install(None, "2026-01-01T00:00:00Z", &[revoked("aa")]);
        let second = KitState::after_install(Some(&first), "2026-02-01T00:00:00Z", &[revoked("bb"), revoked("aa")]);
        let digests: Vec<&str> = second.revoked.iter().map(|r| r.sha256.as_str()).collect();
        assert_eq!(digests, ["aa", "bb"]);
        let third = KitState::after_install(Some(&second), "2026-03-01T00:00:00Z", &[]);
        assert_eq!(third.revoked.len(), 2);
        assert!(third.revocation("bb").is_some() && third.revocation("cc").is_none());
    }

    #[test]
    fn the_default_path_is_beside_the_kit_never_inside() {
        assert_eq!(default_path(Path::new("/etc/cryptohost/kit")), Path::new("/etc/cryptohost/kit.state.json"));
        assert_eq!(default_path(Path::new("kit/")), Path::new("kit.state.json"));
        let long = default_path(&Path::new("/k").join("i".repeat(250)));
        let name = long.file_name().unwrap().len();
        assert!(name <= 255 && long.to_string_lossy().ends_with(".state.json"), "{name}");
        assert_ne!(long, default_path(&Path::new("/k").join("i".repeat(251))));
    }

    #[test]
    fn a_state_file_others_can_write_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("kit.state.json");
        assert!(read(&path).unwrap().is_none());
        write(&path, &KitState::after_install(None, "2026-01-01T00:00:00Z", &[])).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().highest_created_at, "2026-01-01T00:00:00Z");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("writable by group or others"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("its directory"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(read(&link).unwrap_err().to_string().contains("symbolic link"));
        std::fs::write(&path, b"{\"version\":1}").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("not a kit state file"));
    }
}
