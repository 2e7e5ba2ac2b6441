//! The tree's edge at a line boundary, kept beside the log (`<log>.edge`), so that opening a
//! long log reads only the lines after it instead of the whole file (a one-shot `sign` opened
//! its log at about 3 ms per MiB of lines before it).
//!
//! The record is a hint for speed, never a source of trust: it is believed only when it names
//! this very file (device and inode), ends on a line boundary within the file, and the line
//! that ends there hashes to the leaf it records. A record that fails any of these, or that
//! others could have written, is ignored and the whole file is read as before. What the record
//! does decide is the tree the next lines are added to; a forged edge makes this host's roots
//! (and so its signed checkpoints) disagree with the file, which `cryptohost audit verify`
//! reports, and forging it takes write access to the log's directory, which could rewrite the
//! log itself. Tampering with earlier lines is found by the signed checkpoints, with or
//! without the record.
//!
//! It is rewritten (atomically, a new file renamed over it) when the log is closed, if the
//! log grew by at least [`REFRESH_BYTES`] since the record the process started from.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::tlog::merkle::{self, Hash, Tree};

/// The record is rewritten on close once the log has grown by this much since it was read (a
/// later open then reads at most about this much more than it must).
pub(super) const REFRESH_BYTES: u64 = 64 << 10;

/// A record is a few hundred bytes (64 edge hashes at most); anything larger is not one.
const MAX_RECORD: u64 = 16 << 10;

/// Where the record for `log` lives.
pub(super) fn path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".edge");
    log.with_file_name(name)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    dev: u64,
    ino: u64,
    /// The tree covers the file's first `offset` bytes (whole lines).
    offset: u64,
    /// The tree's size and edge (`Tree::to_hex`).
    tree: String,
    /// The leaf hash of the line that ends at `offset`, hex.
    last_leaf: String,
}

/// The tree of the first `offset` bytes of `file` (open, under the log's lock), from the
/// record beside `log`, when the record holds for this file; `None` otherwise.
pub(super) fn load(log: &Path, file: &File) -> Option<(Tree, u64)> {
    let at = path(log);
    let bytes = match crate::fsio::read_private(&at, MAX_RECORD, "the audit log's edge record") {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            log::warn!("audit log: ignoring {e} (the whole log is read instead)");
            return None;
        }
    };
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    let meta = file.metadata().ok()?;
    if record.dev != meta.dev() || record.ino != meta.ino() || record.offset == 0 || record.offset > meta.len() {
        return None;
    }
    let tree = Tree::from_hex(&record.tree).ok()?;
    if tree.size() == 0 || hex::encode(last_leaf(file, record.offset)?) != record.last_leaf {
        return None;
    }
    Some((tree, record.offset))
}

/// Writes the record for `tree`, the tree of the first `offset` bytes of `file`. Failures are
/// only logged: without a record, the next open reads the whole log.
pub(super) fn save(log: &Path, file: &File, tree: &Tree, offset: u64) {
    let saved = (|| -> Result<(), String> {
        let meta = file.metadata().map_err(|e| e.to_string())?;
        let leaf = last_leaf(file, offset).ok_or("the tree does not end on a line of the file")?;
        let record =
            Record { dev: meta.dev(), ino: meta.ino(), offset, tree: tree.to_hex(), last_leaf: hex::encode(leaf) };
        let text = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        crate::fsio::replace_atomic(&path(log), &text, 0o600).map_err(|e| e.to_string())
    })();
    if let Err(e) = saved {
        log::debug!("audit log: edge record not written ({e})");
    }
}

/// The leaf hash of the line that ends (with its newline) at `offset`: read backwards from
/// there, one line at most ([`super::verify::MAX_LINE`]). `None` if `offset` is not just after
/// a newline or the line is longer than any audit line.
fn last_leaf(file: &File, offset: u64) -> Option<Hash> {
    let mut end = [0u8; 1];
    if offset == 0 || file.read_at(&mut end, offset - 1).ok()? != 1 || end[0] != b'\n' {
        return None;
    }
    // Chunks read backwards from the newline, until the newline before the line (or the start).
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let (mut start, mut len) = (offset - 1, 0usize);
    while start > 0 {
        let want = usize::try_from(start.min(4096)).ok()?;
        let from = start - want as u64;
        let mut chunk = vec![0u8; want];
        file.read_exact_at(&mut chunk, from).ok()?;
        let found = chunk.iter().rposition(|&b| b == b'\n');
        if let Some(i) = found {
            chunk.drain(..=i);
        }
        len += chunk.len();
        if len > super::verify::MAX_LINE {
            return None;
        }
        chunks.push(chunk);
        if found.is_some() {
            break;
        }
        start = from;
    }
    let line: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    Some(merkle::leaf_hash(&line))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::journal::Log;
    use super::*;

    fn open(path: &Path) -> Log {
        let file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(path).expect("open");
        Log::open(path, file, 0, serde_json::json!({}), std::sync::Arc::default()).expect("log")
    }

    /// The tree of every line of the file, read whole.
    fn whole(path: &Path) -> Hash {
        let text = std::fs::read(path).expect("read");
        let leaves: Vec<Hash> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(merkle::leaf_hash).collect();
        merkle::root_of(&leaves)
    }

    /// A log of `lines` lines (about 100 bytes each), closed: its edge record is written.
    fn written(dir: &Path, lines: usize) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let mut log = open(&path);
        let mut batch = Vec::new();
        for i in 0..lines {
            batch.extend_from_slice(format!("{{\"line\":{i},\"pad\":\"{}\"}}\n", "x".repeat(80)).as_bytes());
        }
        log.append_for_tests(&batch).expect("append");
        drop(log);
        path
    }

    /// Changes one byte of the first line in place (same length): only a whole read sees it.
    fn tamper_first_line(path: &Path) {
        let f = std::fs::OpenOptions::new().write(true).open(path).expect("open");
        f.write_at(b"X", 3).expect("write");
    }

    #[test]
    fn a_reopened_log_starts_from_the_record_and_appends_as_a_whole_read_would() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = written(dir.path(), 1000);
        assert!(super::path(&path).exists(), "a log grown by more than REFRESH_BYTES leaves its record");
        let before = whole(&path);
        let mut log = open(&path);
        assert_eq!(log.head().1, before);
        log.append_for_tests(b"{\"one\":\"more\"}\n").expect("append");
        assert_eq!(log.head().1, whole(&path), "lines after the record join the same tree");
        drop(log);
        // The record is used, not the file's first lines: an edit there is not read.
        tamper_first_line(&path);
        let tampered = whole(&path);
        let log = open(&path);
        assert_ne!(log.head().1, tampered, "the record's edge was used");
        drop(log);
        // Without the record the whole file is read (and the edit is in the tree).
        std::fs::remove_file(super::path(&path)).expect("rm");
        assert_eq!(open(&path).head().1, tampered);
    }

    #[test]
    fn a_record_for_another_file_a_moved_boundary_or_open_to_others_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = written(dir.path(), 1000);
        let record = super::path(&path);
        tamper_first_line(&path);
        let tampered = whole(&path);
        // Believed as it is (the edit is not seen)...
        assert_ne!(open(&path).head().1, tampered);
        // ...but not when others could have written it,
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert_eq!(open(&path).head().1, tampered);
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        // nor for a copy of the file (another inode),
        let copy = dir.path().join("copy.jsonl");
        std::fs::copy(&path, &copy).expect("copy");
        std::fs::copy(&record, super::path(&copy)).expect("copy record");
        assert_eq!(open(&copy).head().1, whole(&copy));
        // nor when the line before its offset is not the one it hashed,
        let text = std::fs::read(&record).expect("read");
        let mut r: Record = serde_json::from_slice(&text).expect("record");
        let good = r.offset;
        r.offset -= 1;
        std::fs::write(&record, serde_json::to_vec(&r).expect("json")).expect("write");
        assert_eq!(open(&path).head().1, tampered);
        // nor past the end of the file,
        r.offset = good + (1 << 30);
        std::fs::write(&record, serde_json::to_vec(&r).expect("json")).expect("write");
        assert_eq!(open(&path).head().1, tampered);
        // nor when it is not a record at all.
        std::fs::write(&record, b"{not json").expect("write");
        assert_eq!(open(&path).head().1, tampered);
    }

    #[test]
    fn a_small_log_writes_no_record_and_the_record_never_follows_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = written(dir.path(), 10);
        assert!(!super::path(&path).exists(), "10 lines are read faster than a record is written");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"untouched").expect("write");
        std::os::unix::fs::symlink(&target, super::path(&path)).expect("symlink");
        let mut log = open(&path);
        let mut batch = Vec::new();
        for i in 0..1000 {
            batch.extend_from_slice(format!("{{\"more\":{i},\"pad\":\"{}\"}}\n", "y".repeat(80)).as_bytes());
        }
        log.append_for_tests(&batch).expect("append");
        drop(log);
        assert_eq!(std::fs::read(&target).expect("read"), b"untouched");
        assert!(super::path(&path).symlink_metadata().expect("record").is_file(), "the link was replaced");
        assert_eq!(open(&path).head().1, whole(&path));
    }
}
