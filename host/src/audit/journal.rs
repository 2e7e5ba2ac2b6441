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
use std::os::unix::fs::MetadataExt;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Appends and syncs lines in batches (see the module).
pub(super) struct Journal {
    file: Mutex<File>,
    state: Mutex<State>,
    settled: Condvar,
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
    pub(super) fn new(file: File) -> Journal {
        Journal {
            file: Mutex::new(file),
            state: Mutex::new(State { batch: 1, ..State::default() }),
            settled: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Writes and syncs a batch, or leaves the file as it was: after a failed write (a full disk
/// writes half a batch) the file is cut back to its length before the batch, so the next batch
/// never continues a torn line. If even that fails, the error says the log may end in a torn
/// line.
fn write_whole(f: &mut File, lines: &[u8]) -> std::io::Result<()> {
    let meta = f.metadata()?;
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
    let before = meta.len();
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
        let journal = Arc::new(Journal::new(File::create(&path).expect("create")));
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
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1600);
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
        let journal = Arc::new(Journal::new(File::open(&path).expect("open read-only")));
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
