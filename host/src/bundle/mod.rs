//! Offline trust bundles (`offline-kit.tar.gz`, the seed's layout): `trust-anchors.json`,
//! `public-keys/*.pub`, `metadata/bundle-manifest.json` (every file, sha256 and size) and
//! `metadata/bundle-signature.sig` (a DSSE envelope over the manifest). Created from a
//! directory, verified against a bootstrap key given out of band, installed all-or-nothing.
//!
//! The archive comes from anywhere, so it is read by our own small tar parser over a gzip
//! stream in which every decompressed byte is charged against [`Limits`] before it is read.
//! Every file read from a source directory, and every file or directory written, is opened
//! relative to a directory handle without following a symbolic link (`O_NOFOLLOW`, and
//! `O_EXCL` for what is created); inputs must be regular files of bounded size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::dsse::{self, Envelope, Signer, TrustedKey};
use crate::keyfile;
use crate::keys::KeyService;
use crate::provider::SigFormat;
use crate::registry::Registry;
use crate::trust::AnchorsFile;

pub const MANIFEST: &str = "metadata/bundle-manifest.json";
pub const SIGNATURE: &str = "metadata/bundle-signature.sig";
pub const MANIFEST_TYPE: &str = "application/vnd.cryptohost.bundle-manifest+json";

/// The longest GNU long name (`././@LongLink`, type `L`) accepted, NUL included: far past
/// any path a bundle holds, and what keeps a hostile one from being read into memory.
pub const MAX_LONG_NAME: u64 = 4 << 10;
/// The largest PAX extended header (type `x` or `g`) accepted.
pub const MAX_PAX_HEADER: u64 = 64 << 10;
/// The largest public key file `bundle create` reads (an RSA-16384 PEM is under 4 KiB).
pub const MAX_PUBLIC_KEY_BYTES: u64 = 64 << 10;

/// Limits on what a bundle may make us read. A bundle holds a trust-anchors file and a few
/// public keys; these leave room for thousands of keys and stop a bomb at the first excess.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Size of the `.tar.gz` file itself.
    pub max_archive_bytes: u64,
    /// Tar headers of any kind (files, directories, long-name and PAX headers).
    pub max_entries: usize,
    /// Size of one file in the bundle (also `trust-anchors.json` in `bundle create --from`).
    pub max_entry_bytes: u64,
    /// Every decompressed byte: headers, extension records, file data, padding, the end.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_archive_bytes: 64 << 20, max_entries: 4096, max_entry_bytes: 16 << 20, max_total_bytes: 64 << 20 }
    }
}

/// `metadata/bundle-manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub version: String,
    pub created_at: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A bundle problem, said plainly.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The archive, the source directory or the installed kit is refused, and why.
    #[error("{0}")]
    Refused(String),
    /// Signing a manifest failed (the signer's own error, with its class).
    #[error("signing the {what}: {source}")]
    Sign {
        what: &'static str,
        #[source]
        source: crate::dsse::DsseError,
    },
}

fn fail<T>(msg: impl Into<String>) -> Result<T, BundleError> {
    Err(BundleError::Refused(msg.into()))
}

/// How the bundle signing key is known out of band.
pub enum Bootstrap {
    /// The public key itself (SPKI) and its algorithm.
    Key { spki: Vec<u8>, algorithm: String },
    /// Only its fingerprint (`sha256:...`): the key must be among the bundle's public keys.
    Fingerprint(String),
}

fn sha256_hex(registry: &Registry, bytes: &[u8]) -> Result<String, BundleError> {
    registry
        .digest("SHA-256", bytes)
        .map(|s| hex::encode(s.value))
        .map_err(|e| BundleError::Refused(format!("hashing: {e}")))
}

/// A relative path made only of normal components, as text with `/` separators.
fn safe_path(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// What a file is, in words, for "is a fifo: refused".
fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

fn io_err(e: Errno) -> std::io::Error {
    e.into()
}

/// `dir` (a path the caller gave) opened as a directory handle.
fn open_dir(dir: &Path) -> Result<OwnedFd, BundleError> {
    rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| BundleError::Refused(format!("{}: {}", dir.display(), io_err(e))))
}

/// The directory holding `path` and the final name in it.
fn split_parent(path: &Path) -> Result<(&Path, &std::ffi::OsStr), BundleError> {
    let name = path.file_name().ok_or_else(|| BundleError::Refused(format!("{}: not a file name", path.display())))?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((parent, name))
}

/// `dir/name` opened without following a symlink and without blocking (a fifo would otherwise
/// wait for a writer forever), checked on the open file to be a regular file of at most `max`
/// bytes, and read. `shown` names it in errors.
fn read_regular_at(dir: impl AsFd, name: &str, shown: &Path, max: u64) -> Result<Vec<u8>, BundleError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP => {
            BundleError::Refused(format!("{} is a symbolic link: refused (give the file itself)", shown.display()))
        }
        e => BundleError::Refused(format!("{}: cannot read: {}", shown.display(), io_err(e))),
    })?;
    read_open_regular(fd, shown, max)
}

/// The checks of [`read_regular_at`] on a file already open.
fn read_open_regular(fd: OwnedFd, shown: &Path, max: u64) -> Result<Vec<u8>, BundleError> {
    let st = rustix::fs::fstat(&fd).map_err(|e| BundleError::Refused(format!("{}: {}", shown.display(), io_err(e))))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return fail(format!("{} is a {}, not a regular file: refused", shown.display(), kind_name(kind)));
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > max {
        return fail(format!("{} is {size} bytes, over the limit of {max}: refused", shown.display()));
    }
    let mut bytes = Vec::new();
    // The file may grow after fstat: read at most one byte past the limit to notice.
    File::from(fd)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BundleError::Refused(format!("{}: cannot read: {e}", shown.display())))?;
    if bytes.len() as u64 > max {
        return fail(format!("{} grew past the limit of {max} bytes while read: refused", shown.display()));
    }
    Ok(bytes)
}

/// The entries of a directory handle (not `.` and `..`), with the type the directory reports.
fn list_dir(dir: impl AsFd, shown: &Path) -> Result<Vec<(String, FileType)>, BundleError> {
    let err = |e: Errno| BundleError::Refused(format!("{}: {}", shown.display(), io_err(e)));
    let mut reader = rustix::fs::Dir::read_from(dir).map_err(err)?;
    let mut names = Vec::new();
    while let Some(entry) = reader.read() {
        let entry = entry.map_err(err)?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(raw) else {
            return fail(format!(
                "{}: an entry's name is not UTF-8: {:?}",
                shown.display(),
                String::from_utf8_lossy(raw)
            ));
        };
        names.push((name.to_string(), entry.file_type()));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// Sixteen random hex digits, for names nobody can plant a link at in advance.
fn random_suffix() -> Result<String, BundleError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| BundleError::Refused(format!("no randomness for a temporary name: {e}")))?;
    Ok(hex::encode(b))
}

/// Headers a tar entry for `path` takes in the archive `create` writes: one, plus a GNU
/// long-name header when the path does not fit the 100-byte name field. (Directories take
/// none: the writer adds no directory entries.)
fn headers_for(path: &str) -> usize {
    if path.len() >= 100 { 2 } else { 1 }
}

/// Counts what passes through, so `create` can refuse a bundle `verify` would refuse.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Builds `offline-kit.tar.gz` from `dir`, signing the manifest with `signer`. The bundle must
/// fit `limits` (what `verify` will accept). The archive is written to a new temporary file
/// beside `out` (random name, `O_EXCL|O_NOFOLLOW`) and renamed over `out`, which must be a new
/// path or a regular file: an existing symlink or other non-file there is refused, never
/// written through.
///
/// # Errors
/// The directory is not a bundle source, the bundle exceeds the limits, signing fails, or the
/// archive cannot be written.
pub fn create(
    registry: &Registry,
    service: &KeyService<'_>,
    dir: &Path,
    signer: &Signer,
    out: &Path,
    limits: Limits,
) -> Result<Manifest, BundleError> {
    // Refuse a bad --out, and a key the trust root could never check, before the signing key
    // is used.
    check_out(out)?;
    trust_root_algorithm(&signer.algorithm, "a kit")?;
    let files = source::collect(dir, limits)?;
    let mut listed = Vec::new();
    for (path, bytes) in &files {
        listed.push(ManifestFile {
            path: path.clone(),
            sha256: sha256_hex(registry, bytes)?,
            size: bytes.len() as u64,
        });
    }
    let manifest = Manifest { version: "1.0".into(), created_at: crate::audit::now_rfc3339(), files: listed };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Refused(e.to_string()))?;
    let (envelope, _) =
        dsse::sign(service, MANIFEST_TYPE, &manifest_bytes, std::slice::from_ref(signer), SigFormat::Der, false)
            .map_err(|source| BundleError::Sign { what: "manifest", source })?;
    let mut all = files;
    all.insert(MANIFEST.into(), manifest_bytes);
    all.insert(SIGNATURE.into(), envelope.to_json().into_bytes());
    // The manifest and signature grow with the number of files: check them as well.
    if let Some((path, bytes)) = all.iter().find(|(_, b)| b.len() as u64 > limits.max_entry_bytes) {
        return fail(format!(
            "{path} would be {} bytes, over the limit of {} for one file: refused",
            bytes.len(),
            limits.max_entry_bytes
        ));
    }
    write_archive(out, &all, limits)?;
    Ok(manifest)
}

/// Kits and publishers are verified by the host's trust root, natively, with ES256 or ES384
/// only: signing `what` with anything else would make something nothing can verify.
///
/// # Errors
/// Another algorithm.
pub(crate) fn trust_root_algorithm(algorithm: &str, what: &str) -> Result<(), BundleError> {
    if crate::trust_root::ALGORITHMS.contains(&algorithm) {
        return Ok(());
    }
    fail(format!(
        "{what} is verified by the host's trust root, which checks {} only: sign it with one of those, not {algorithm}",
        crate::trust_root::ALGORITHMS.join(" or ")
    ))
}

/// `--out` must be a new path or a regular file (replaced by a rename, never written through).
fn check_out(out: &Path) -> Result<(), BundleError> {
    match std::fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => fail(format!(
            "{} is a symbolic link: refused (remove it or give another --out; outputs never follow links)",
            out.display()
        )),
        Ok(m) if !m.is_file() => fail(format!("{} exists and is not a regular file: refused", out.display())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => fail(format!("{}: {e}", out.display())),
    }
}

fn write_archive(out: &Path, all: &BTreeMap<String, Vec<u8>>, limits: Limits) -> Result<(), BundleError> {
    let (parent, name) = split_parent(out)?;
    let parent_fd = open_dir(parent)?;
    // Cut long names: the temporary name must stay within NAME_MAX too.
    let stem: String = name.to_string_lossy().chars().take(64).collect();
    let tmp = format!(".{stem}.{}.partial", random_suffix()?);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&parent_fd, &tmp, flags, Mode::from_raw_mode(0o644)).map_err(|e| {
        BundleError::Refused(format!("writing {}: creating a temporary file: {}", out.display(), io_err(e)))
    })?;
    let written = (|| -> Result<(), String> {
        let gz = flate2::write::GzEncoder::new(File::from(fd), flate2::Compression::default());
        let mut tar = tar::Builder::new(Counting { inner: gz, bytes: 0 });
        // Deterministic: sorted paths, no owners, no times.
        for (path, bytes) in all {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, bytes.as_slice()).map_err(|e| e.to_string())?;
        }
        let counted = tar.into_inner().map_err(|e| e.to_string())?;
        if counted.bytes > limits.max_total_bytes {
            return Err(format!(
                "the archive would expand to {} bytes, over the limit of {}: refused",
                counted.bytes, limits.max_total_bytes
            ));
        }
        let file = counted.inner.finish().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        // rename replaces whatever is at `out` now (a link included) and never follows it.
        rustix::fs::renameat(&parent_fd, &tmp, &parent_fd, name).map_err(|e| io_err(e).to_string())
    })();
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&parent_fd, &tmp, AtFlags::empty());
        return fail(format!("writing {}: {e}", out.display()));
    }
    // The rename itself must survive a crash.
    rustix::fs::fsync(&parent_fd).map_err(|e| {
        BundleError::Refused(format!("wrote {}, but syncing {}: {}", out.display(), parent.display(), io_err(e)))
    })
}

mod install;
pub mod kit;
mod source;
pub mod state;
mod tar_reader;

pub use install::install;
pub use tar_reader::{read_archive, read_archive_bytes, read_tar_bytes};

/// Verifies an archive: the manifest's DSSE signature under the bootstrap key, every file
/// against the manifest, and nothing in the archive that the manifest does not list.
///
/// # Errors
/// A hostile or corrupt archive, a bad signature, a missing, altered or unlisted file.
pub fn verify(
    registry: &Registry,
    archive: &Path,
    bootstrap: &Bootstrap,
    limits: Limits,
) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), BundleError> {
    let files = read_archive(archive, limits)?;
    let manifest = verify_files(registry, &files, bootstrap, limits, &format!("the archive {}", archive.display()))?;
    Ok((manifest, files))
}

/// The bootstrap key as a trusted key: the one given, or the bundle's public key with the
/// given fingerprint.
///
/// # Errors
/// No public key in the bundle has the fingerprint, or its algorithm cannot be told.
pub(crate) fn bootstrap_key(
    registry: &Registry,
    files: &BTreeMap<String, Vec<u8>>,
    bootstrap: &Bootstrap,
) -> Result<TrustedKey, BundleError> {
    Ok(match bootstrap {
        Bootstrap::Key { spki, algorithm } => TrustedKey {
            name: "bootstrap key".into(),
            fingerprint: dsse::fingerprint(registry, spki).map_err(|e| BundleError::Refused(e.to_string()))?,
            spki: spki.clone(),
            algorithm: algorithm.clone(),
            hints: vec![],
        },
        Bootstrap::Fingerprint(fp) => {
            let mut found = None;
            for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("public-keys/")) {
                let spki = keyfile::public_key_from_bytes(Path::new(path), bytes)
                    .map_err(|e| BundleError::Refused(e.to_string()))?;
                if dsse::fingerprint(registry, &spki).map_err(|e| BundleError::Refused(e.to_string()))? == *fp {
                    found = Some(spki);
                }
            }
            let Some(spki) = found else {
                return fail(format!("no public key in the bundle has the bootstrap fingerprint {fp}"));
            };
            let algorithm = algorithm_for(files, &spki).ok_or_else(|| {
                BundleError::Refused(
                    "cannot tell the bundle key's algorithm: give the bootstrap public key (--bootstrap-pub) with --alg"
                        .into(),
                )
            })?;
            TrustedKey { name: "bootstrap key".into(), fingerprint: fp.clone(), spki, algorithm, hints: vec![] }
        }
    })
}

/// The bundle signature (`sig_bytes`, a DSSE envelope) signs exactly `manifest_bytes` under `key`.
///
/// # Errors
/// It does not.
pub(crate) fn manifest_signed(
    registry: &Registry,
    manifest_bytes: &[u8],
    sig_bytes: &[u8],
    key: &TrustedKey,
    limits: Limits,
) -> Result<(), BundleError> {
    let envelope = Envelope::parse(sig_bytes, limits.max_entry_bytes as usize, crate::dsse::DEFAULT_MAX_SIGNATURES)
        .map_err(|e| BundleError::Refused(format!("{SIGNATURE}: {e}")))?;
    if envelope.payload_type != MANIFEST_TYPE || envelope.payload != manifest_bytes {
        return fail(format!("{SIGNATURE} does not sign this {MANIFEST}"));
    }
    let result = dsse::verify(registry, &envelope, std::slice::from_ref(key), 1, SigFormat::Der)
        .map_err(|e| BundleError::Refused(e.to_string()))?;
    if !result.valid {
        return fail(format!(
            "the bundle signature does not verify under the bootstrap key ({})",
            result.notes.join("; ")
        ));
    }
    Ok(())
}

/// The checks of [`verify`] over a bundle's files (from an archive, or an installed kit):
/// the manifest's signature under the bootstrap key, every listed file present and matching,
/// nothing unlisted. `whose` names where the files came from in errors.
///
/// # Errors
/// A bad signature, a missing, altered or unlisted file.
pub fn verify_files(
    registry: &Registry,
    files: &BTreeMap<String, Vec<u8>>,
    bootstrap: &Bootstrap,
    limits: Limits,
    whose: &str,
) -> Result<Manifest, BundleError> {
    let (Some(manifest_bytes), Some(sig_bytes)) = (files.get(MANIFEST), files.get(SIGNATURE)) else {
        return fail(format!("{whose} lacks {MANIFEST} or {SIGNATURE}"));
    };
    let key = bootstrap_key(registry, files, bootstrap)?;
    manifest_signed(registry, manifest_bytes, sig_bytes, &key, limits)?;
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| BundleError::Refused(format!("{MANIFEST}: {e}")))?;
    if let Some(anchors) = files.get("trust-anchors.json") {
        crate::trust::check_anchors(Path::new("trust-anchors.json"), anchors)
            .map_err(|e| BundleError::Refused(format!("{whose}: {e}")))?;
    }
    for f in &manifest.files {
        let Some(bytes) = files.get(&f.path) else {
            return fail(format!(
                "{}: {} is listed in the signed manifest but missing (removed?): refused",
                whose, f.path
            ));
        };
        if bytes.len() as u64 != f.size || sha256_hex(registry, bytes)? != f.sha256 {
            return fail(format!(
                "{}: {} does not match the signed manifest (size or sha256 differs: edited?): refused",
                whose, f.path
            ));
        }
    }
    for path in files.keys() {
        if path != MANIFEST && path != SIGNATURE && !manifest.files.iter().any(|f| f.path == *path) {
            return fail(format!("{whose}: {path} is not in the signed manifest (added?): refused"));
        }
    }
    Ok(manifest)
}

/// The algorithm of the bundle key: `bundleSignature.algorithmId` in trust-anchors.json, else
/// what the key type decides (EC, Ed25519).
fn algorithm_for(files: &BTreeMap<String, Vec<u8>>, spki: &[u8]) -> Option<String> {
    let declared = files
        .get("trust-anchors.json")
        .and_then(|b| serde_json::from_slice::<AnchorsFile>(b).ok())
        .and_then(|a| a.bundle_signature)
        .and_then(|s| s.get("algorithmId").and_then(|v| v.as_str()).map(str::to_string));
    declared.or_else(|| crate::alg::algorithm_of_spki(spki).map(str::to_string))
}
