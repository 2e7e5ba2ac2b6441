//! Group commit for the audit log: lines that arrive while a sync is under way are written and
//! synced together by the next one, so N concurrent key uses cost about one `fdatasync`
//! instead of N. Every caller still returns only after a sync that covers its own line has
//! succeeded (or with the error of the one that failed), so "a result was returned" still means
//! "its line is on disk".
//!
//! The first caller that finds no sync under way leads: it takes every line queued so far (its
//! own among them), writes and syncs them while later callers queue the next batch, then wakes
//! everyone whose batch is settled. A caller whose batch is not yet settled either waits or,
//! once the sync before it has finished, leads the next one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::tlog::merkle::{self, Hash, Tree};

/// Appends and syncs lines in batches (see the module).
pub(super) struct Journal {
    file: Mutex<Log>,
    hints: std::sync::Arc<Hints>,
    state: Mutex<State>,
    settled: Condvar,
}

/// The open log and its Merkle tree: every line of the file (this process's and every other
/// writer's) is a leaf, in file order. Each batch is written under an exclusive `flock` on the
/// file, after reading the lines other processes appended since (the tree never misses one).
pub(super) struct Log {
    file: File,
    /// Where the log lives (a rotation renames the file away; writers then reopen this path).
    path: std::path::PathBuf,
    /// What every new file's genesis line says (host version, config digest, policy).
    genesis: serde_json::Value,
    /// The tree of the file's first `offset` bytes.
    tree: Tree,
    offset: u64,
    /// The offset of the edge record this process started from (0: none; see `edge`).
    recorded: u64,
    /// Checkpoints every this many lines (0: none).
    every: u64,
    /// The size at which the next checkpoint is due.
    next_mark: u64,
    /// A checkpoint is due at this (size, root), for the key service to sign.
    due: Option<(u64, Hash)>,
    /// What callers may read without waiting for the lock a sync holds.
    hints: std::sync::Arc<Hints>,
}

impl Drop for Log {
    /// Leaves the edge record for the next open, once the log has grown enough since the one
    /// this process read, and only if the path still names this file (not after a rotation).
    fn drop(&mut self) {
        if self.offset >= self.recorded.saturating_add(super::edge::REFRESH_BYTES)
            && matches!(self.unless_rotated(), Ok(Some(_)))
        {
            super::edge::save(&self.path, &self.file, &self.tree, self.offset);
        }
    }
}

/// Read without the log's lock (which a batch holds through its sync): whether a checkpoint
/// is due, and the file's length. Every key use asks; waiting behind a sync to learn "no" would
/// serialize concurrent requests.
#[derive(Default)]
pub(super) struct Hints {
    pub due: std::sync::atomic::AtomicBool,
    pub len: std::sync::atomic::AtomicU64,
}

impl Log {
    /// Reads the whole file into its tree (under the lock: no writer is mid-batch), cutting off
    /// a torn last line (a writer killed before its sync: its caller never had a result).
    pub(super) fn open(
        path: &std::path::Path,
        file: File,
        every: u64,
        genesis: serde_json::Value,
        hints: std::sync::Arc<Hints>,
    ) -> std::io::Result<Log> {
        let mut log = Log::empty(path, file, every, genesis, hints);
        lock(&log.file)?;
        // Only the lines after the edge record (when it holds for this file) are read.
        if let Some((tree, offset)) = super::edge::load(path, &log.file) {
            (log.tree, log.offset, log.recorded) = (tree, offset, offset);
        }
        let opened = log.catch_up().and_then(|()| {
            log.next_mark = next_mark(log.tree.size(), every);
            // A new log starts with its genesis line (under the lock: one writer makes it).
            if log.tree.size() == 0 { log.write_genesis(None) } else { Ok(()) }
        });
        unlock(&log.file);
        opened?;
        log.next_mark = next_mark(log.tree.size(), every);
        log.hints.len.store(log.offset, std::sync::atomic::Ordering::Relaxed);
        log.hints.due.store(log.due.is_some(), std::sync::atomic::Ordering::Relaxed);
        Ok(log)
    }

    /// A log over `file` whose lines are not read yet.
    fn empty(
        path: &std::path::Path,
        file: File,
        every: u64,
        genesis: serde_json::Value,
        hints: std::sync::Arc<Hints>,
    ) -> Log {
        Log {
            file,
            path: path.to_path_buf(),
            genesis,
            tree: Tree::new(),
            offset: 0,
            recorded: 0,
            every,
            next_mark: 0,
            due: None,
            hints,
        }
    }

    /// Writes the genesis line of a new file: what wrote it, and the file before it.
    fn write_genesis(&mut self, previous: Option<serde_json::Value>) -> std::io::Result<()> {
        let mut line = serde_json::json!({"time": super::now_rfc3339(), "event": "genesis"});
        if let (Some(l), Some(g)) = (line.as_object_mut(), self.genesis.as_object()) {
            l.extend(g.clone());
            if let Some(p) = previous {
                l.insert("previous".into(), p);
            }
        }
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        write_locked(self, &bytes)
    }

    /// Whether another writer renamed the file away (a rotation): the path is another file now.
    fn rotated_away(&self) -> std::io::Result<bool> {
        Ok(self.unless_rotated()?.is_none())
    }

    /// The open file's metadata, or `None` if another writer renamed it away (a rotation: the
    /// path is another file now). Under the lock this is the file's state for the whole batch.
    fn unless_rotated(&self) -> std::io::Result<Option<std::fs::Metadata>> {
        let here = self.file.metadata()?;
        let moved = match std::fs::symlink_metadata(&self.path) {
            Ok(there) => there.ino() != here.ino() || there.dev() != here.dev(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        Ok(if moved { None } else { Some(here) })
    }

    /// The file at the log's path now (after another writer's rotation).
    fn reopen(&mut self) -> std::io::Result<()> {
        let file = super::open_file(&self.path).map_err(std::io::Error::other)?;
        *self = Log::open(&self.path.clone(), file, self.every, self.genesis.clone(), self.hints.clone())?;
        Ok(())
    }

    /// Rotates the log: under its lock, renames the file to `<log>.<time>` and starts a new
    /// one whose genesis names the old file, its line count, its whole tree's root and
    /// `checkpoint` (its last signed checkpoint). Returns the old file's new path.
    pub(super) fn rotate(&mut self, checkpoint: Option<String>) -> std::io::Result<Option<std::path::PathBuf>> {
        use base64::Engine as _;
        lock(&self.file)?;
        let rotated = (|| {
            if self.rotated_away()? {
                return Ok(None);
            }
            self.catch_up()?;
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
            let mut name = self.path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
            name.push(format!(".{stamp}"));
            let old = self.path.with_file_name(name);
            std::fs::rename(&self.path, &old)?;
            let previous = serde_json::json!({
                "file": old.file_name().map(|n| n.to_string_lossy().into_owned()),
                "lines": self.tree.size(),
                "root": base64::engine::general_purpose::STANDARD.encode(self.tree.root()),
                "checkpoint": checkpoint,
            });
            let file = super::open_file(&self.path).map_err(std::io::Error::other)?;
            let mut next = Log::empty(&self.path, file, self.every, self.genesis.clone(), self.hints.clone());
            next.next_mark = next_mark(0, next.every);
            lock(&next.file)?;
            let written = next.write_genesis(Some(previous));
            unlock(&next.file);
            written?;
            next.next_mark = next_mark(next.tree.size(), next.every);
            Ok(Some((next, old)))
        })();
        unlock(&self.file);
        match rotated {
            Ok(Some((next, old))) => {
                *self = next;
                Ok(Some(old))
            }
            Ok(None) => {
                self.reopen()?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Pushes the lines written since `offset` (by any process) into the tree, hashing as it
    /// reads (no line is held whole). Must hold the lock. A last line without its newline is a
    /// torn line (a writer stopped mid-write, before its sync: its caller never had a result):
    /// it is cut off, but only if it could be one line; more bytes than that without a newline
    /// are no log this host wrote, and are refused, never cut.
    fn catch_up(&mut self) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        self.catch_up_to(len)
    }

    /// As [`Log::catch_up`], the file being `len` bytes long (from a metadata taken under the
    /// lock). Afterwards the file is exactly `offset` bytes long.
    fn catch_up_to(&mut self, len: u64) -> std::io::Result<()> {
        use sha2::Digest as _;
        if len == self.offset {
            return Ok(());
        }
        if len < self.offset {
            return Err(std::io::Error::other(format!(
                "the log is {len} bytes, shorter than the {} this process has seen: it was truncated or replaced \
                 (its tree would no longer match): reload or restart, and run `cryptohost audit verify`",
                self.offset
            )));
        }
        let mut at = self.offset;
        let mut line = sha2::Sha256::new();
        line.update([0u8]);
        let mut line_len: u64 = 0;
        let mut buf = vec![0u8; 1 << 16];
        while at < len {
            let want = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = self.file.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break;
            }
            at += n as u64;
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                line.update(&rest[..i]);
                let leaf: Hash = std::mem::replace(&mut line, sha2::Sha256::new()).finalize().into();
                line.update([0u8]);
                self.tree.push(leaf).map_err(std::io::Error::other)?;
                self.offset += line_len + i as u64 + 1;
                line_len = 0;
                rest = &rest[i + 1..];
            }
            line.update(rest);
            line_len += rest.len() as u64;
        }
        if line_len > 0 {
            if line_len > super::verify::MAX_LINE as u64 {
                return Err(std::io::Error::other(format!(
                    "the log ends in {line_len} bytes without a newline, more than any audit line: it is not a log \
                     this host wrote (refusing to append to it, or to cut it)"
                )));
            }
            log::warn!("audit log: cutting off a torn last line of {line_len} bytes (a writer stopped mid-line)");
            self.file.set_len(self.offset)?;
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes `lines` as one batch (tests: the journal's own path, without a journal).
    #[cfg(test)]
    pub(super) fn append_for_tests(&mut self, lines: &[u8]) -> std::io::Result<()> {
        write_whole(self, lines)
    }

    /// The tree's size and root now.
    pub(super) fn head(&self) -> (u64, Hash) {
        (self.tree.size(), self.tree.root())
    }

    /// Takes the due checkpoint, if any.
    pub(super) fn due(&self) -> Option<(u64, Hash)> {
        self.due
    }

    /// The checkpoint at `size` was written: nothing is due until the next mark.
    pub(super) fn checkpointed(&mut self, size: u64) {
        if self.due.is_some_and(|(s, _)| s <= size) {
            self.due = None;
            self.hints.due.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Asks for a checkpoint of the tree as it is now (reload, rotation, a clean stop).
    pub(super) fn want_checkpoint(&mut self) {
        if self.tree.size() > 0 {
            self.due = Some(self.head());
            self.hints.due.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn next_mark(size: u64, every: u64) -> u64 {
    size.checked_div(every).map_or(u64::MAX, |n| (n + 1).saturating_mul(every))
}

fn lock(f: &File) -> std::io::Result<()> {
    rustix::fs::flock(f, rustix::fs::FlockOperation::LockExclusive).map_err(std::io::Error::from)
}

fn unlock(f: &File) {
    let _ = rustix::fs::flock(f, rustix::fs::FlockOperation::Unlock);
}

#[derive(Default)]
struct State {
    /// Lines of the batch being queued, and how many callers wait on them.
    queued: Vec<u8>,
    queued_callers: usize,
    /// The batch being queued (batches are numbered from 1).
    batch: u64,
    /// Every batch up to this one has been written and synced, or has failed.
    settled: u64,
    /// A sync is under way.
    leading: bool,
    /// Failed batches: the error, and how many of their callers have yet to read it.
    failed: BTreeMap<u64, (String, usize)>,
}

impl Journal {
    pub(super) fn new(log: Log) -> Journal {
        Journal {
            hints: log.hints.clone(),
            file: Mutex::new(log),
            state: Mutex::new(State { batch: 1, ..State::default() }),
            settled: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The log and its tree (to read the head, take a due checkpoint).
    pub(super) fn log(&self) -> MutexGuard<'_, Log> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What can be read without the log's lock.
    pub(super) fn hints(&self) -> &Hints {
        &self.hints
    }

    /// Appends `line` (a whole line, newline included) and returns once a sync covering it
    /// has succeeded; the error of the write or sync otherwise.
    pub(super) fn append(&self, line: &[u8]) -> Result<(), String> {
        let mut st = self.state();
        st.queued.extend_from_slice(line);
        st.queued_callers += 1;
        let mine = st.batch;
        loop {
            if st.settled >= mine {
                let Some((error, unread)) = st.failed.get_mut(&mine) else { return Ok(()) };
                let error = error.clone();
                *unread -= 1;
                if *unread == 0 {
                    st.failed.remove(&mine);
                }
                return Err(error);
            }
            if st.leading {
                st = self.settled.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: take the queued batch (this caller's line is in it, or in one already
            // settled, checked above), and let later lines queue the next one meanwhile.
            st.leading = true;
            let lines = std::mem::take(&mut st.queued);
            let callers = std::mem::take(&mut st.queued_callers);
            let this = st.batch;
            st.batch += 1;
            drop(st);
            let written = {
                let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
                write_whole(&mut f, &lines)
            };
            st = self.state();
            st.leading = false;
            if let Err(e) = written {
                st.failed.insert(this, (format!("cannot write: {e}"), callers));
            }
            st.settled = this;
            self.settled.notify_all();
        }
    }
}

/// Writes and syncs a batch under the file's lock, after catching the tree up with other
/// writers' lines, and pushes the batch's lines into the tree; or leaves the file as it was:
/// after a failed write (a full disk writes half a batch) the file is cut back to its length
/// before the batch, so the next batch never continues a torn line, and no line of a failed
/// batch ever becomes a leaf (or reaches a checkpoint). If even the cut fails, the error says
/// the log may end in a torn line.
fn write_whole(log: &mut Log, lines: &[u8]) -> std::io::Result<()> {
    lock(&log.file)?;
    // Another writer rotated the log: the lines go to the new file.
    let meta = match log.unless_rotated() {
        Ok(Some(meta)) => meta,
        Ok(None) => {
            unlock(&log.file);
            log.reopen()?;
            lock(&log.file)?;
            match log.file.metadata() {
                Ok(meta) => meta,
                Err(e) => {
                    unlock(&log.file);
                    return Err(e);
                }
            }
        }
        Err(e) => {
            unlock(&log.file);
            return Err(e);
        }
    };
    let written = write_locked_as(log, &meta, lines);
    unlock(&log.file);
    written
}

fn write_locked(log: &mut Log, lines: &[u8]) -> std::io::Result<()> {
    let meta = log.file.metadata()?;
    write_locked_as(log, &meta, lines)
}

/// Catches up and writes a batch, `meta` being the open file's metadata taken under the lock
/// (one `fstat` per batch).
fn write_locked_as(log: &mut Log, meta: &std::fs::Metadata, lines: &[u8]) -> std::io::Result<()> {
    log.catch_up_to(meta.len())?;
    write_batch(&mut log.file, meta, log.offset, lines)?;
    let body = lines.strip_suffix(b"\n").unwrap_or(lines);
    for line in body.split(|&b| b == b'\n').filter(|_| !lines.is_empty()) {
        log.tree.push(merkle::leaf_hash(line)).map_err(std::io::Error::other)?;
    }
    log.offset += lines.len() as u64;
    if log.tree.size() >= log.next_mark {
        log.due = Some(log.head());
        log.next_mark = next_mark(log.tree.size(), log.every);
        log.hints.due.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    log.hints.len.store(log.offset, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Appends and syncs `lines` to `f`, which `meta` describes and which is `before` bytes long
/// (caught up, under the lock).
fn write_batch(f: &mut File, meta: &std::fs::Metadata, before: u64, lines: &[u8]) -> std::io::Result<()> {
    // The open log is checked before every batch: lines written to a deleted file, or to one
    // anybody may now edit, would be a record nobody can rely on (fail closed, and say why).
    if meta.nlink() == 0 {
        return Err(std::io::Error::other(
            "the log was deleted while open (lines would go nowhere anyone can read): reload or restart",
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "the log became writable by group or others (mode {:o}): anyone could add or change lines",
            meta.mode() & 0o7777
        )));
    }
    let written = f.write_all(lines).and_then(|()| f.sync_data());
    if let Err(e) = written {
        if let Err(cut) = f.set_len(before).and_then(|()| f.sync_data()) {
            return Err(std::io::Error::other(format!(
                "{e}; cutting the log back to its last whole line also failed ({cut}): it may end in a torn line"
            )));
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn concurrent_lines_are_all_written_whole_each_caller_after_its_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(&path).expect("create");
        let journal = Arc::new(Journal::new(
            Log::open(&path, file, 0, serde_json::json!({}), std::sync::Arc::default()).expect("open"),
        ));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let j = journal.clone();
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let line = format!("{{\"thread\":{t},\"line\":{i}}}\n");
                        j.append(line.as_bytes()).expect("written");
                        // Returned: the line is in the file already.
                        let text = std::fs::read_to_string(&path).expect("read");
                        assert!(text.contains(line.as_str()), "line {t}/{i} missing after its append returned");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<_> = text.lines().filter(|l| !l.contains("\"genesis\"")).collect();
        assert_eq!(lines.len(), 1600);
        assert!(
            text.lines().next().is_some_and(|l| l.contains("\"event\":\"genesis\"")),
            "a new log starts with its genesis"
        );
        for t in 0..8 {
            // Each thread's lines whole and in its own order.
            let mine: Vec<_> = lines.iter().filter(|l| l.starts_with(&format!("{{\"thread\":{t},"))).collect();
            assert_eq!(mine.len(), 200);
            for (i, l) in mine.iter().enumerate() {
                assert_eq!(**l, format!("{{\"thread\":{t},\"line\":{i}}}"));
            }
        }
        let st = journal.state();
        assert!(st.failed.is_empty() && !st.leading && st.queued.is_empty());
    }

    #[test]
    fn a_failed_write_fails_every_caller_of_its_batch_and_the_journal_goes_on() {
        // A read-only descriptor: every write fails.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, b"").expect("create");
        std::fs::write(&path, b"{}\n").expect("one line");
        let file = File::open(&path).expect("open read-only");
        let journal = Arc::new(Journal::new(
            Log::open(&path, file, 0, serde_json::json!({}), std::sync::Arc::default()).expect("log"),
        ));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let j = journal.clone();
                std::thread::spawn(move || (0..50).filter(|_| j.append(b"{}\n").is_err()).count())
            })
            .collect();
        let failed: usize = threads.into_iter().map(|t| t.join().expect("no panic")).sum();
        assert_eq!(failed, 200, "every append failed and said so");
        let st = journal.state();
        assert!(st.failed.is_empty(), "every failure was read and dropped");
    }
}
