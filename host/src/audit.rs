//! The audit log: one JSON line per use of a private or secret key, written and flushed to disk
//! before the result is returned. If the line cannot be written, the operation fails.

mod edge;
mod journal;
pub mod tlog;
pub mod verify;

use std::fs::OpenOptions;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// The audit log could not be opened or written: the key operation must not succeed.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {message} (the operation was refused: nothing is done with a key unless it is audited)")]
pub struct AuditError {
    pub path: PathBuf,
    pub message: String,
}

/// One key use. Never holds key material or PINs: only references, names and digests.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// UTC, RFC 3339.
    pub time: String,
    /// sign, encrypt, decrypt, generate.
    pub operation: String,
    /// The key reference as given (pkcs11: URI, sim:NAME, file:PATH).
    pub key: String,
    pub algorithm: String,
    pub provider: String,
    /// The component's sha256, or the PKCS#11 module path and token serial.
    pub provider_origin: KeyOrigin,
    /// For a signature over a digest: the digest that was signed, and its hash. Recorded the
    /// same way whether the host computed the digest (a file, a stream, data in a request) or a
    /// client sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_digest: Option<SignedDigest>,
    /// SHA-256 of the whole input (message, PAE, plaintext or ciphertext), lowercase hex, where
    /// the host saw all of it; absent when a client sent only a digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    /// `ok`, or `error: ...`.
    pub outcome: String,
    /// The peer of a request to the server (absent for the one-shot CLI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<Caller>,
}

/// A signed digest as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedDigest {
    /// SHA-256, SHA-384 or SHA-512.
    pub hash: String,
    /// Lowercase hex.
    pub hex: String,
    /// The provider that computed it, when the host did (absent for a digest a client sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashed_by: Option<HashedBy>,
}

/// The provider that computed a signed digest, and where its code came from (a component and
/// its sha256, or the host's native hashing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HashedBy {
    pub provider: String,
    pub origin: KeyOrigin,
}

impl HashedBy {
    /// The provider `p`, as an audit line names the code that hashed.
    pub fn of(p: &dyn crate::provider::CryptoProvider) -> HashedBy {
        let d = p.descriptor();
        let origin = match &d.origin {
            crate::provider::Origin::Native { module } => KeyOrigin::Native { native: module.clone() },
            component => component_origin(component),
        };
        HashedBy { provider: d.name.clone(), origin }
    }
}

/// A component's origin as an audit line names it (`KeyOrigin::None` for native code, whose
/// naming depends on what it is: the HSM's token, or the host's own hashing).
pub fn component_origin(origin: &crate::provider::Origin) -> KeyOrigin {
    match origin {
        crate::provider::Origin::Component { file, sha256, publisher } => {
            KeyOrigin::Component { component: file.clone(), sha256: sha256.clone(), publisher: publisher.clone() }
        }
        crate::provider::Origin::Native { .. } => KeyOrigin::None,
    }
}

/// What an audit line records about the input of one key use: never the input itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditInput {
    pub signed_digest: Option<SignedDigest>,
    pub input_sha256: Option<String>,
}

impl AuditInput {
    /// Nothing about an input (a key generated).
    pub fn none() -> AuditInput {
        AuditInput::default()
    }

    /// The host saw the whole input, whose SHA-256 this is.
    pub fn whole(sha256: &[u8]) -> AuditInput {
        AuditInput { signed_digest: None, input_sha256: Some(hex::encode(sha256)) }
    }

    /// A digest under `hash` was signed.
    #[must_use]
    pub fn with_digest(mut self, hash: &str, digest: &[u8]) -> AuditInput {
        self.signed_digest = Some(SignedDigest { hash: hash.to_string(), hex: hex::encode(digest), hashed_by: None });
        self
    }

    /// The host computed the signed digest, with provider `by`.
    #[must_use]
    pub fn hashed_by(mut self, by: Option<HashedBy>) -> AuditInput {
        if let Some(d) = self.signed_digest.as_mut() {
            d.hashed_by = by;
        }
        self
    }
}

/// A peer on the server's socket, as the kernel reports it (SO_PEERCRED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The user's name when the user database has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// An event of the server that is not a key use (a denial, a reload, an HSM admin operation),
/// written to the same log.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub time: String,
    /// `denied`, `reload`, `hsm-connect`, ...
    pub event: String,
    pub caller: Option<Caller>,
    /// What was asked for (operation and key reference or profile), never secrets.
    pub detail: String,
}

/// A signed tree head as a line of the log: the checkpoint covers the log's first `size` lines.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointRecord {
    pub time: String,
    /// `checkpoint`.
    pub event: &'static str,
    pub size: u64,
    /// The tree's root over the first `size` lines, base64.
    pub root: String,
    /// The C2SP signed note (origin, size, root; the audit key's signature).
    pub checkpoint: String,
}

/// Sends a checkpoint as one RFC 5424 syslog message (facility log audit, severity info) to a
/// Unix datagram socket; the message is the checkpoint record as one JSON line.
fn send_syslog(socket: &Path, record: &CheckpointRecord) -> std::io::Result<()> {
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let host = if host.is_empty() { "-".to_string() } else { host.replace(' ', "-") };
    let body = serde_json::to_string(record).map_err(std::io::Error::other)?;
    let message = format!("<110>1 {} {host} cryptohost {} checkpoint - {body}", record.time, std::process::id());
    let out = std::os::unix::net::UnixDatagram::unbound()?;
    out.send_to(message.as_bytes(), socket)?;
    Ok(())
}

/// The checkpoint file of the log at `log`: `<log>.checkpoint`.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".checkpoint");
    log.with_file_name(name)
}

/// Where the code that used a key came from, as the audit log records it (the wire schema's
/// type, so that an answer and the audit line name a provider alike).
pub use cryptohost_client::api::KeyOrigin;

/// An append-only JSON-lines file, opened once; lines written at the same time are synced
/// together (group commit, see `journal`), each caller returning after its own line is synced.
pub struct AuditLog {
    path: PathBuf,
    journal: std::sync::Arc<journal::Journal>,
    /// Lines written after their caller has its answer (verifications), by one thread.
    later: Mutex<Option<std::sync::mpsc::Sender<Vec<u8>>>>,
    counts: Mutex<Counts>,
    /// `[audit] max_mib`, in bytes.
    max_bytes: Option<u64>,
    syslog_socket: Option<PathBuf>,
}

/// How a log is kept: checkpoints, rotation, what a new file's genesis line records.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// Lines between checkpoints (0: none).
    pub checkpoint_every: u64,
    /// Rotate when the file reaches this size.
    pub max_bytes: Option<u64>,
    /// SHA-256 of the config, its provider settings redacted (a simulation's seed is one).
    pub config_sha256: Option<String>,
    /// The deployment policy in force.
    pub policy: Option<String>,
    /// `[audit] syslog_socket`: each checkpoint is also sent there (a Unix datagram socket,
    /// such as /dev/log), to leave a copy outside the host's own files.
    pub syslog_socket: Option<PathBuf>,
}

/// Opens (creating with mode 0600) the log at `path` for reading and appending: never through
/// a symlink planted at the path (O_NOFOLLOW), and only a regular file of this user's that
/// nobody else can write (checked on the open descriptor).
///
/// # Errors
/// Why not, in words.
pub(crate) fn open_file(path: &Path) -> Result<std::fs::File, String> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                "is a symlink; refused (the audit log is never written through a link)".to_string()
            } else {
                format!("cannot open for appending: {e}")
            }
        })?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.uid() != me {
        return Err(format!("is owned by uid {}, not by this user ({me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:o}): anyone could add lines",
            meta.mode() & 0o7777
        ));
    }
    Ok(file)
}

/// (operation, provider, algorithm, `ok`|`error`): what [`AuditLog::counts`] counts.
pub type UseKey = (String, String, String, &'static str);

#[derive(Default)]
struct Counts {
    uses: std::collections::BTreeMap<UseKey, u64>,
    write_failures: u64,
}

impl AuditLog {
    /// Opens (creating with mode 0600) the log for appending, and reads it into its Merkle tree
    /// (see `tlog`). A checkpoint falls due every `checkpoint_every` lines (0: never).
    ///
    /// # Errors
    /// The file cannot be opened for appending or read.
    pub fn open(path: &Path, checkpoint_every: u64) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(path, &AuditOptions { checkpoint_every, ..AuditOptions::default() })
    }

    /// As [`AuditLog::open`], with every option: a new file's genesis line, rotation by size.
    ///
    /// # Errors
    /// The file cannot be opened for appending or read.
    pub fn open_with(path: &Path, options: &AuditOptions) -> Result<AuditLog, AuditError> {
        let fail = |message: String| AuditError { path: path.to_path_buf(), message };
        let file = open_file(path).map_err(fail)?;
        let genesis = serde_json::json!({
            "host_version": env!("CARGO_PKG_VERSION"),
            "config_sha256": options.config_sha256,
            "policy": options.policy,
        });
        let log = journal::Log::open(path, file, options.checkpoint_every, genesis, std::sync::Arc::default())
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            journal: std::sync::Arc::new(journal::Journal::new(log)),
            later: Mutex::new(None),
            counts: Mutex::default(),
            max_bytes: options.max_bytes,
            syslog_socket: options.syslog_socket.clone(),
        })
    }

    /// Whether the log has reached `[audit] max_mib` and should be rotated.
    pub fn over_size(&self) -> bool {
        self.max_bytes.is_some_and(|max| self.journal.hints().len.load(std::sync::atomic::Ordering::Relaxed) >= max)
    }

    /// Rotates the log (see `journal::Log::rotate`): the new file's genesis names the old
    /// file, its root and its last checkpoint. Returns where the old file went (none when
    /// another writer rotated it first).
    ///
    /// # Errors
    /// The file cannot be renamed or the new one written.
    pub fn rotate(&self) -> Result<Option<PathBuf>, AuditError> {
        let last = std::fs::read_to_string(self.checkpoint_path()).ok();
        self.journal
            .log()
            .rotate(last)
            .map_err(|e| AuditError { path: self.path.clone(), message: format!("cannot rotate: {e}") })
    }

    /// The tree's size (lines) and root now.
    pub fn head(&self) -> (u64, tlog::merkle::Hash) {
        self.journal.log().head()
    }

    /// The checkpoint that is due (its size and root), if one is.
    pub fn due_checkpoint(&self) -> Option<(u64, tlog::merkle::Hash)> {
        // Most key uses find none due: learn it without waiting behind a batch's sync.
        if !self.journal.hints().due.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.journal.log().due()
    }

    /// Asks for a checkpoint of the log as it is now (reload, key rotation, a clean stop).
    pub fn want_checkpoint(&self) {
        self.journal.log().want_checkpoint();
    }

    /// Where the latest checkpoint is kept beside the log (`<log>.checkpoint`).
    pub fn checkpoint_path(&self) -> PathBuf {
        checkpoint_path(&self.path)
    }

    /// Appends a signed checkpoint of the first `size` lines (a C2SP signed note) as a line of
    /// the log, then writes it to the checkpoint file beside the log.
    ///
    /// # Errors
    /// The line or the file cannot be written.
    pub fn append_checkpoint(&self, size: u64, root: &tlog::merkle::Hash, note: &str) -> Result<(), AuditError> {
        use base64::Engine as _;
        let record = CheckpointRecord {
            time: now_rfc3339(),
            event: "checkpoint",
            size,
            root: base64::engine::general_purpose::STANDARD.encode(root),
            checkpoint: note.to_string(),
        };
        self.append_json(&record)?;
        self.journal.log().checkpointed(size);
        if let Some(socket) = &self.syslog_socket {
            // A copy out of band; the log and its checkpoint file are the record, so a syslog
            // that does not answer is warned about, and key use goes on.
            if let Err(e) = send_syslog(socket, &record) {
                log::warn!("audit checkpoint to syslog {}: {e}", socket.display());
            }
        }
        crate::fsio::replace_atomic(&self.checkpoint_path(), note.as_bytes(), 0o644)
            .map_err(|e| AuditError { path: self.checkpoint_path(), message: e.message })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and syncs it to disk.
    ///
    /// # Errors
    /// The line cannot be written or synced.
    pub fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let written = self.append_json(record);
        let outcome = if record.outcome == "ok" { "ok" } else { "error" };
        let key = (record.operation.clone(), record.provider.clone(), record.algorithm.clone(), outcome);
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if written.is_ok() {
            *counts.uses.entry(key).or_default() += 1;
        }
        drop(counts);
        written
    }

    /// Key uses written, by (operation, provider, algorithm, `ok`|`error`), and lines that
    /// could not be written (each one a refused operation).
    pub fn counts(&self) -> (Vec<(UseKey, u64)>, u64) {
        let c = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (c.uses.iter().map(|(k, v)| (k.clone(), *v)).collect(), c.write_failures)
    }

    /// Appends an event line without waiting for it: a verification, whose answer does not
    /// depend on its line. Such lines are written by one thread, as many at once as have
    /// queued (one sync for all), among the other lines; a crash may lose those not yet
    /// written. Key-use lines are never written this way.
    pub fn event_later(&self, record: &EventRecord) {
        let Ok(mut line) = serde_json::to_vec(record) else { return };
        line.push(b'\n');
        let mut later = self.later.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if later.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            let journal = self.journal.clone();
            let path = self.path.clone();
            let started = std::thread::Builder::new().name("audit-later".into()).spawn(move || {
                while let Ok(mut batch) = rx.recv() {
                    while let Ok(more) = rx.try_recv() {
                        batch.extend_from_slice(&more);
                    }
                    if let Err(e) = journal.append(&batch) {
                        log::error!("audit log {}: verification lines not written: {e}", path.display());
                    }
                }
            });
            if started.is_err() {
                log::error!("audit log {}: no thread for verification lines", self.path.display());
                return;
            }
            *later = Some(tx);
        }
        if let Some(tx) = later.as_ref() {
            let _ = tx.send(line);
        }
    }

    /// Appends one event line (denials, reloads, HSM admin) and syncs it.
    ///
    /// # Errors
    /// The line cannot be written or synced.
    pub fn event(&self, record: &EventRecord) -> Result<(), AuditError> {
        self.append_json(record)
    }

    fn append_json(&self, record: &impl Serialize) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| AuditError { path: self.path.clone(), message: format!("cannot encode record: {e}") })?;
        line.push(b'\n');
        let written = self.journal.append(&line).map_err(|message| AuditError { path: self.path.clone(), message });
        if written.is_err() {
            self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write_failures += 1;
        }
        written
    }
}

/// Now, UTC, RFC 3339 (seconds precision).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| now.unix_timestamp().to_string())
}
