//! Files read and written the careful way: inputs are regular files bounded by size before they
//! are read, outputs never follow a symlink, private files are checked on the open descriptor.

mod snapshot;

pub use snapshot::{Sealed, Stamp, open_stamped, sha256_open};

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Size bounds of inputs that are read whole.
pub mod limits {
    /// A public or private key file (an 8192-bit RSA PKCS#8 PEM is about 6.5 KiB).
    pub const KEY: u64 = 64 << 10;
    /// A signature file (binary or base64; RSA-8192 is 1 KiB raw).
    pub const SIGNATURE: u64 = 64 << 10;
    /// A configuration file.
    pub const CONFIG: u64 = 1 << 20;
    /// A component manifest or trust-anchor file.
    pub const MANIFEST: u64 = 4 << 20;
    /// A PIN file.
    pub const PIN: u64 = 4 << 10;
    /// A provider component (a wasm file).
    pub const COMPONENT: u64 = 64 << 20;
    /// A precompiled artifact in the cache.
    pub const ARTIFACT: u64 = 512 << 20;
}

/// A file that could not be used, with the reason in words.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FsError {
    pub path: PathBuf,
    pub message: String,
}

fn fail(path: &Path, message: impl Into<String>) -> FsError {
    FsError { path: path.to_path_buf(), message: message.into() }
}

fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Opening a fifo for reading blocks until a writer comes; O_NONBLOCK makes the open return at
/// once so the descriptor can be checked (and refused). Reads of regular files ignore it.
fn nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

fn open_input(path: &Path, extra: i32) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(nonblock() | extra).open(path)
}

/// Reads a whole regular file of at most `limit` bytes. The check is made on the open file
/// (not on the path), and the read stops at the bound even if the file grows meanwhile:
/// `/dev/zero`, a fifo or a 3 GiB file never fill memory.
///
/// # Errors
/// The file cannot be opened, is not a regular file, or is larger than `limit`.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, FsError> {
    let file = open_input(path, 0).map_err(|e| fail(path, format!("cannot read {what}: {e}")))?;
    read_open_bounded(path, file, limit, what)
}

/// As [`read_bounded`], refusing a symlink at the final path component as well.
///
/// # Errors
/// As [`read_bounded`], or the path is a symlink.
pub fn read_bounded_nofollow(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, FsError> {
    read_open_bounded(path, open_nofollow(path, what)?, limit, what)
}

/// `path` opened for reading, never through a symlink (refused by name).
fn open_nofollow(path: &Path, what: &str) -> Result<File, FsError> {
    open_input(path, nofollow()).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            fail(path, format!("{what} is a symlink; refused"))
        } else {
            fail(path, format!("cannot read {what}: {e}"))
        }
    })
}

/// Checks on an open file's descriptor that it is a regular file within `limit`; its metadata.
fn regular_within(path: &Path, file: &File, limit: u64, what: &str) -> Result<fs::Metadata, FsError> {
    let meta = file.metadata().map_err(|e| fail(path, format!("cannot stat {what}: {e}")))?;
    if !meta.is_file() {
        return Err(fail(path, format!("{what} is not a regular file; refused")));
    }
    if meta.len() > limit {
        return Err(fail(path, format!("{what} is {} bytes, over the limit of {limit} bytes", meta.len())));
    }
    Ok(meta)
}

/// Reads an already opened file, after checking on its descriptor that it is a regular file
/// within `limit`.
///
/// # Errors
/// Not a regular file, larger than `limit`, or a read error.
pub fn read_open_bounded(path: &Path, file: File, limit: u64, what: &str) -> Result<Vec<u8>, FsError> {
    let len = regular_within(path, &file, limit, what)?.len();
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| fail(path, format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(fail(path, format!("{what} grew past the limit of {limit} bytes while being read")));
    }
    Ok(bytes)
}

/// Opens an input that will be streamed (not read whole): it must be a regular file, so a
/// fifo cannot stall the host and `/dev/zero` cannot feed it forever.
///
/// # Errors
/// The file cannot be opened or is not a regular file.
pub fn open_regular(path: &Path, what: &str) -> Result<File, FsError> {
    let file = open_input(path, 0).map_err(|e| fail(path, format!("cannot read {what}: {e}")))?;
    let meta = file.metadata().map_err(|e| fail(path, format!("cannot stat {what}: {e}")))?;
    if !meta.is_file() {
        return Err(fail(path, format!("{what} is not a regular file; refused")));
    }
    Ok(file)
}

/// Creates a new file with `mode` and writes `contents`; never overwrites and never follows a
/// symlink (O_CREAT|O_EXCL fails on any existing path, a dangling symlink included).
///
/// # Errors
/// The path exists (file or symlink), or the write fails.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nofollow())
        .open(path)
        .map_err(|e| fail(path, format!("cannot create (it must not exist yet): {e}")))?;
    f.write_all(contents).and_then(|()| f.sync_all()).map_err(|e| fail(path, format!("cannot write: {e}")))
}

/// Writes `contents` to a fresh temporary file in the target's directory and renames it over
/// `path`. A symlink planted at `path` is replaced, never written through; readers see the old
/// file or the new one, never half of one. Only a regular file or a symlink is ever replaced: a
/// device, fifo, socket or directory at `path` is refused (as root, `--out /dev/null` would
/// otherwise replace the system's device node with a file).
///
/// # Errors
/// The directory is not writable, `path` is something other than a regular file or a symlink,
/// or the write fails.
pub fn replace_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    replace_atomic_with(path, mode, |f| f.write_all(contents))
}

/// As [`replace_atomic`], with the contents written by `write` (streamed: never held whole).
///
/// # Errors
/// As [`replace_atomic`], or `write` fails (the temporary file is removed).
pub fn replace_atomic_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), FsError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(m) = fs::symlink_metadata(path) {
        let t = m.file_type();
        if !(t.is_file() || t.is_symlink()) {
            return Err(fail(
                path,
                format!("is a {}, not a regular file: refused (outputs replace only files)", kind_of(&t)),
            ));
        }
    }
    let name = path.file_name().ok_or_else(|| fail(path, "has no file name"))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| fail(path, format!("no randomness for a temporary name: {e}")))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), hex::encode(nonce)));
    let written = (|| {
        let f = OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(nofollow()).open(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(256 << 10, f);
        write(&mut w)?;
        let f = w.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(path, format!("cannot write: {e}")));
    }
    Ok(())
}

/// What a non-regular file is, in words.
fn kind_of(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "directory"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Checks that `dir` and every directory above it can be changed only by this user or root:
/// the directory itself owned by this user and not writable by group or others; each parent
/// owned by this user or root, and not group/other-writable unless sticky (like `/tmp`, where
/// others cannot rename our entries). Returns the canonical path, which callers use from then
/// on so that no symlink along the way can be swapped later.
///
/// # Errors
/// The directory cannot be resolved, or someone else could write it or a parent.
pub fn check_private_dir(dir: &Path, what: &str) -> Result<PathBuf, FsError> {
    let own = fs::symlink_metadata(dir).map_err(|e| fail(dir, format!("cannot stat {what}: {e}")))?;
    if own.file_type().is_symlink() {
        return Err(fail(dir, format!("{what} is a symlink; refused")));
    }
    let canonical = fs::canonicalize(dir).map_err(|e| fail(dir, format!("cannot resolve {what}: {e}")))?;
    let me = rustix::process::geteuid().as_raw();
    let meta = fs::metadata(&canonical).map_err(|e| fail(dir, format!("cannot stat {what}: {e}")))?;
    if !meta.is_dir() {
        return Err(fail(dir, format!("{what} is not a directory")));
    }
    if meta.uid() != me {
        return Err(fail(dir, format!("{what} is owned by uid {}, not by this user ({me}); refused", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(fail(
            dir,
            format!("{what} is writable by group or others (mode {:o}); refused", meta.mode() & 0o7777),
        ));
    }
    for parent in canonical.ancestors().skip(1) {
        if let Some(why) = guarded(parent).err() {
            return Err(fail(parent, format!("a parent of the {what} {}: {why}; refused", canonical.display())));
        }
    }
    Ok(canonical)
}

/// Whether only this user or root can change what is in directory `dir`: owned by one of them,
/// and not writable by group or others unless sticky (like `/tmp`, where others cannot rename
/// or remove our entries).
///
/// # Errors
/// Why not, in words.
pub fn guarded(dir: &Path) -> Result<(), String> {
    let m = fs::metadata(dir).map_err(|e| format!("cannot stat {}: {e}", dir.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != me && m.uid() != 0 {
        return Err(format!("{} is owned by uid {}, neither this user nor root", dir.display(), m.uid()));
    }
    if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o}) and not sticky",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Checks that `path` (a config, a component or anchors directory, a PKCS#11 module: what
/// becomes code or trust here) can be changed only by this user or root: owned by one of them,
/// and not writable by group or others. The rule is named in the refusal.
///
/// # Errors
/// It cannot be examined, or someone else could change it.
pub fn trusted(path: &Path, what: &str) -> Result<(), FsError> {
    let m = fs::metadata(path).map_err(|e| fail(path, format!("cannot examine {what}: {e}")))?;
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != me && m.uid() != 0 {
        return Err(fail(
            path,
            format!(
                "{what} is owned by uid {}, neither this user ({me}) nor root: refused (what becomes code or trust \
                 must be changeable by this user or root only)",
                m.uid()
            ),
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(fail(
            path,
            format!(
                "{what} is writable by group or others (mode {:o}): refused (what becomes code or trust must be \
                 changeable by this user or root only; `chmod go-w {}`)",
                m.mode() & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Opens a file inside a private directory for reading: no symlink at the final component,
/// a regular file owned by this user and not writable by group or others (checked on the
/// descriptor), at most `limit` bytes. `Ok(None)` when it does not exist.
///
/// # Errors
/// It exists but fails a check, or cannot be read.
pub fn read_private(path: &Path, limit: u64, what: &str) -> Result<Option<Vec<u8>>, FsError> {
    match open_private(path, what)? {
        Some(file) => read_open_bounded(path, file, limit, what).map(Some),
        None => Ok(None),
    }
}

/// `path` opened for reading when it exists, with the checks of [`read_private`] on its
/// descriptor (no symlink, owned by this user, not group- or other-writable); `Ok(None)` when
/// it does not exist. The caller bounds what it reads.
///
/// # Errors
/// As [`read_private`], but for the size.
pub fn open_private(path: &Path, what: &str) -> Result<Option<File>, FsError> {
    let file = match open_input(path, nofollow()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(fail(path, format!("{what} is a symlink; refused")));
        }
        Err(e) => return Err(fail(path, format!("cannot open {what}: {e}"))),
    };
    let meta = file.metadata().map_err(|e| fail(path, format!("cannot stat {what}: {e}")))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(fail(path, format!("{what} is owned by uid {}, not by this user ({me}); refused", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(fail(
            path,
            format!("{what} is writable by group or others (mode {:o}); refused", meta.mode() & 0o7777),
        ));
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};

    #[test]
    fn bounded_reads_refuse_devices_and_oversized_files() {
        let e = read_bounded(Path::new("/dev/zero"), 10, "payload").unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        fs::write(&big, vec![0u8; 11]).unwrap();
        assert!(read_bounded(&big, 10, "signature").unwrap_err().message.contains("over the limit"));
        assert_eq!(read_bounded(&big, 11, "signature").unwrap().len(), 11);
    }

    #[test]
    fn outputs_never_write_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("out");
        symlink(&victim, &link).unwrap();
        assert!(write_new(&link, b"evil", 0o644).is_err());
        replace_atomic(&link, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&link).unwrap(), b"new");
        // A fifo, socket or directory at the target is refused, never replaced by a file (a
        // device node the same way; the test makes none, and never touches the system's).
        let fifo = dir.path().join("fifo");
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for (target, kind) in [(fifo.as_path(), "fifo"), (socket.as_path(), "socket"), (dir.path(), "directory")] {
            let err = replace_atomic(target, b"x", 0o644).unwrap_err().to_string();
            assert!(err.contains(&format!("is a {kind}")), "{err}");
        }
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "left as it was");
        assert!(fs::symlink_metadata(&socket).unwrap().file_type().is_socket());
    }

    #[test]
    fn private_files_are_checked_on_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(read_private(&f, 10, "artifact").unwrap_err().message.contains("writable by group"));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&f, 10, "artifact").unwrap().unwrap(), b"x");
        let link = dir.path().join("l");
        symlink(&f, &link).unwrap();
        assert!(read_private(&link, 10, "artifact").unwrap_err().message.contains("symlink"));
        assert!(read_private(&dir.path().join("absent"), 10, "artifact").unwrap().is_none());
    }

    #[test]
    fn private_dirs_need_private_parents() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        let inner = open.join("cache");
        fs::create_dir_all(&inner).unwrap();
        fs::set_permissions(&inner, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_private_dir(&inner, "cache directory").unwrap_err();
        assert!(e.message.contains("parent"), "{e}");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        check_private_dir(&inner, "cache directory").unwrap();
    }
}
