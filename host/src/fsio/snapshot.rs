//! Snapshots of files: a file's [`Stamp`] (what the kernel records of its identity and last
//! changes) for checks that may skip re-reading an unchanged file, and a [`Sealed`] copy whose
//! bytes no one can change once it is made.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{FsError, fail, open_nofollow, regular_within};

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

/// A private, sealed in-memory copy of a file: once sealed, no one (this process included) can
/// write, grow or shrink it, so what is hashed from it is what is later mapped from it.
pub struct Sealed {
    file: File,
    len: u64,
}

impl Sealed {
    /// Copies `file` (at most `limit` bytes; the kernel copies where it can) into a new memory
    /// file and seals it.
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

    /// Feeds the sealed bytes, in order, to `each` (read through a 256 KiB buffer).
    fn read_chunks(&self, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 256 << 10];
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

    /// The BLAKE3 hash of the sealed bytes, read through a read-only mapping of them (no copy;
    /// through a buffer where the kernel will not map them).
    ///
    /// # Errors
    /// A read error.
    pub fn blake3(&self) -> std::io::Result<[u8; 32]> {
        let mut hash = blake3::Hasher::new();
        match self.map() {
            Some(map) => {
                hash.update(map.bytes());
            }
            None => self.read_chunks(|c| {
                hash.update(c);
            })?,
        }
        Ok(*hash.finalize().as_bytes())
    }

    /// A read-only mapping of the sealed bytes; `None` when empty or when the kernel refuses.
    fn map(&self) -> Option<Mapping> {
        use rustix::mm::{MapFlags, ProtFlags};
        let len = usize::try_from(self.len).ok().filter(|&l| l > 0)?;
        // SAFETY: a fresh mapping chosen by the kernel (no address given), read-only, of a file
        // sealed against writes, growth and shrinking: its bytes cannot change or go away while
        // mapped (no SIGBUS from truncation), so reading them as a slice is sound. Unmapped once,
        // in `Mapping::drop`.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, ProtFlags::READ, MapFlags::SHARED, &self.file, 0) };
        match ptr {
            Ok(ptr) => Some(Mapping { ptr, len }),
            Err(e) => {
                log::debug!("cannot map the sealed copy ({e}); reading it");
                None
            }
        }
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

/// A read-only mapping of a [`Sealed`] copy, unmapped on drop.
struct Mapping {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

impl Mapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes that no one can change (see `Sealed::map`),
        // and the slice cannot outlive the mapping.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Sealed::map`, unmapped exactly once; no slice of it
        // outlives `self`.
        if let Err(e) = unsafe { rustix::mm::munmap(self.ptr, self.len) } {
            log::debug!("cannot unmap the sealed copy: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sealed_copy_hashes_like_the_file_and_cannot_be_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        let sealed = Sealed::copy_of(&path, File::open(&path).unwrap(), 1 << 20, "artifact").unwrap();
        assert_eq!(sealed.blake3().unwrap(), *blake3::hash(&bytes).as_bytes());
        // The file changed afterwards: the copy did not.
        fs::write(&path, b"something else").unwrap();
        assert_eq!(fs::read(sealed.proc_path()).unwrap(), bytes);
        assert_eq!(sealed.bytes().unwrap(), bytes);
        // No one can write it, even through a fresh open of it.
        let w = OpenOptions::new().write(true).open(sealed.proc_path());
        let wrote = w.and_then(|mut f| f.write_all(b"x"));
        assert!(wrote.is_err(), "a sealed copy was writable");
        assert_eq!(sealed.blake3().unwrap(), *blake3::hash(&bytes).as_bytes());
        // Empty: nothing to map, hashed all the same.
        let empty = dir.path().join("empty");
        fs::write(&empty, b"").unwrap();
        let sealed_empty = Sealed::copy_of(&empty, File::open(&empty).unwrap(), 1000, "artifact").unwrap();
        assert_eq!(sealed_empty.blake3().unwrap(), *blake3::hash(b"").as_bytes());
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
}
