//! Files read and written the careful way: inputs are regular files bounded by size before they
//! are read, outputs never follow a symlink, private files are checked on the open descriptor.

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

/// What the kernel records of a file's identity and last changes: device, inode, size, and the
/// modification and status-change times to the nanosecond. Any write, truncation, chmod, chown
/// or rename of the file moves its ctime, which no unprivileged process can set back; a file
/// replaced by another has another inode or ctime. So an unchanged stamp means an unchanged
/// file, with one exception that [`Stamp::settled`] rules out: file times come from a coarse
/// clock, and a write within the same tick as the change before it leaves them as they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// How long a file must have been still before its stamp stands for its content: far longer
/// than any filesystem's timestamp tick.
const SETTLE_SECS: i64 = 2;

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// One line: `dev ino size mtime_s mtime_ns ctime_s ctime_ns`.
    pub fn encode(&self) -> String {
        let Stamp { dev, ino, size, mtime, ctime } = self;
        format!("{dev} {ino} {size} {} {} {} {}", mtime.0, mtime.1, ctime.0, ctime.1)
    }

    /// The inverse of [`Stamp::encode`]; `None` for anything else.
    pub fn parse(line: &str) -> Option<Stamp> {
        let mut it = line.split(' ');
        let mut next = || it.next()?.parse::<i64>().ok();
        let (dev, ino, size) = (next()?, next()?, next()?);
        let stamp = Stamp {
            dev: u64::try_from(dev).ok()?,
            ino: u64::try_from(ino).ok()?,
            size: u64::try_from(size).ok()?,
            mtime: (next()?, next()?),
            ctime: (next()?, next()?),
        };
        it.next().is_none().then_some(stamp)
    }

    /// True when the file's last change (its ctime) is at least [`SETTLE_SECS`] older than
    /// the clock now: only then can no later write hide inside the same timestamp tick.
    pub fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.ctime.0.saturating_add(SETTLE_SECS) < now
    }
}

/// `path` opened for reading, never through a symlink, checked on its descriptor to be a
/// regular file within `limit`; with its stamp.
///
/// # Errors
/// A symlink, not a regular file, over `limit`, or an open or stat error.
pub fn open_stamped(path: &Path, limit: u64, what: &str) -> Result<(File, Stamp), FsError> {
    let file = open_nofollow(path, what)?;
    let stamp = Stamp::of(&regular_within(path, &file, limit, what)?);
    Ok((file, stamp))
}

/// The SHA-256 of an open file read to its end (at most `limit` bytes), with its stamp taken
/// after the read: read through a small buffer, so hashing a large file maps no memory for it
/// (what checking a pin costs when the bytes themselves are not needed).
///
/// # Errors
/// A read error, or the file grew past `limit` while being read.
pub fn sha256_open(path: &Path, file: File, limit: u64, what: &str) -> Result<([u8; 32], Stamp), FsError> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let mut reader = file.take(limit + 1);
    // `std::io::copy` reads through a small stack buffer.
    let total = std::io::copy(&mut reader, &mut hash).map_err(|e| fail(path, format!("cannot read {what}: {e}")))?;
    if total > limit {
        return Err(fail(path, format!("{what} grew past the limit of {limit} bytes while being read")));
    }
    let meta = reader.into_inner().metadata().map_err(|e| fail(path, format!("cannot stat {what}: {e}")))?;
    Ok((hash.finalize().into(), Stamp::of(&meta)))
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

/// A private, sealed in-memory copy of a file: once sealed, no one (this process included) can
/// write, grow or shrink it, so what is hashed from it is what is later mapped from it.
pub struct Sealed {
    file: File,
    len: u64,
}

impl Sealed {
    /// Copies `file` (at most `limit` bytes; the kernel copies, no buffer of ours holds it) into
    /// a new memory file and seals it.
    ///
    /// # Errors
    /// No memory files here (then read the file instead), a copy error, or over `limit`.
    pub fn copy_of(path: &Path, file: File, limit: u64, what: &str) -> Result<Sealed, FsError> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let err = |m: String| fail(path, m);
        let len = regular_within(path, &file, limit, what)?.len();
        let memfd = rustix::fs::memfd_create("cryptohost-sealed", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| err(format!("cannot make a memory file for {what}: {e}")))?;
        let mut mem = File::from(memfd);
        let copied =
            std::io::copy(&mut file.take(limit + 1), &mut mem).map_err(|e| err(format!("cannot copy {what}: {e}")))?;
        if copied != len {
            return Err(err(format!("{what} changed size while being read ({len} -> {copied} bytes)")));
        }
        rustix::fs::fcntl_add_seals(&mem, SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL)
            .map_err(|e| err(format!("cannot seal the copy of {what}: {e}")))?;
        Ok(Sealed { file: mem, len })
    }

    /// Feeds the sealed bytes, in order, to `each` (read through a 64 KiB buffer).
    fn read_chunks(&self, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 64 << 10];
        let mut at = 0u64;
        while at < self.len {
            let n = self.file.read_at(&mut buf, at)?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "sealed copy ended early"));
            }
            each(&buf[..n]);
            at += n as u64;
        }
        Ok(())
    }

    /// The SHA-256 of the sealed bytes.
    ///
    /// # Errors
    /// A read error.
    pub fn sha256(&self) -> std::io::Result<[u8; 32]> {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        self.read_chunks(|c| hash.update(c))?;
        Ok(hash.finalize().into())
    }

    /// The sealed bytes, in memory.
    ///
    /// # Errors
    /// A read error.
    pub fn bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.read_chunks(|c| out.extend_from_slice(c))?;
        Ok(out)
    }

    /// A path that opens these sealed bytes (the descriptor's entry under `/proc/self/fd`).
    pub fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};

    #[test]
    fn a_sealed_copy_hashes_like_the_file_and_cannot_be_changed() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        let sealed = Sealed::copy_of(&path, File::open(&path).unwrap(), 1 << 20, "artifact").unwrap();
        assert_eq!(sealed.sha256().unwrap(), <[u8; 32]>::from(sha2::Sha256::digest(&bytes)));
        // The file changed afterwards: the copy did not.
        fs::write(&path, b"something else").unwrap();
        assert_eq!(fs::read(sealed.proc_path()).unwrap(), bytes);
        assert_eq!(sealed.bytes().unwrap(), bytes);
        // No one can write it, even through a fresh open of it.
        let w = OpenOptions::new().write(true).open(sealed.proc_path());
        let wrote = w.and_then(|mut f| f.write_all(b"x"));
        assert!(wrote.is_err(), "a sealed copy was writable");
        assert_eq!(sealed.sha256().unwrap(), <[u8; 32]>::from(sha2::Sha256::digest(&bytes)));
        // Over the limit: refused before copying.
        fs::write(&path, &bytes).unwrap();
        assert!(Sealed::copy_of(&path, File::open(&path).unwrap(), 1000, "artifact").is_err());
    }

    #[test]
    fn stamps_round_trip_and_settle_only_when_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let (_, stamp) = open_stamped(&path, 10, "f").unwrap();
        assert_eq!(Stamp::parse(&stamp.encode()), Some(stamp));
        for bad in ["", "1 2 3", "1 2 3 4 5 6 7 8", "-1 2 3 4 5 6 7", "a b c d e f g", "1  2 3 4 5 6"] {
            assert_eq!(Stamp::parse(bad), None, "{bad:?}");
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let at = |secs: i64| Stamp { ctime: (secs, 0), ..stamp };
        assert!(at(now - 3600).settled());
        assert!(!at(now).settled() && !at(now + 3600).settled());
        // The stamp after the read names the same file.
        let (file, _) = open_stamped(&path, 10, "f").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let (_, after) = sha256_open(&path, file, 10, "f").unwrap();
        assert_eq!((after.dev, after.ino), (stamp.dev, stamp.ino));
        assert!(open_stamped(&path, 0, "f").is_err(), "over the limit");
    }

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
