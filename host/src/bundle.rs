//! Offline trust bundles (`offline-kit.tar.gz`, the seed's layout): `trust-anchors.json`,
//! `public-keys/*.pub`, `metadata/bundle-manifest.json` (every file, sha256 and size) and
//! `metadata/bundle-signature.sig` (a DSSE envelope over the manifest). Created from a
//! directory, verified against a bootstrap key given out of band, installed all-or-nothing and
//! confined to the target directory with `cap-std`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
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

/// Limits on what an archive may make us read (a decompression bomb stops here).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_entries: 10_000, max_entry_bytes: 64 << 20, max_total_bytes: 256 << 20 }
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
#[error("{0}")]
pub struct BundleError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, BundleError> {
    Err(BundleError(msg.into()))
}

/// How the bundle signing key is known out of band.
pub enum Bootstrap {
    /// The public key itself (SPKI) and its algorithm.
    Key { spki: Vec<u8>, algorithm: String },
    /// Only its fingerprint (`sha256:...`): the key must be among the bundle's public keys.
    Fingerprint(String),
}

fn sha256_hex(registry: &Registry, bytes: &[u8]) -> Result<String, BundleError> {
    registry.digest("SHA-256", bytes).map(|s| hex::encode(s.value)).map_err(|e| BundleError(format!("hashing: {e}")))
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

/// The files a bundle carries, from a source directory: `trust-anchors.json` and
/// `public-keys/*.pub`.
fn collect(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut files = BTreeMap::new();
    let anchors = fs::read(dir.join("trust-anchors.json"))
        .map_err(|e| BundleError(format!("{}: cannot read trust-anchors.json: {e}", dir.display())))?;
    serde_json::from_slice::<AnchorsFile>(&anchors)
        .map_err(|e| BundleError(format!("{}/trust-anchors.json: {e}", dir.display())))?;
    files.insert("trust-anchors.json".to_string(), anchors);
    let keys = dir.join("public-keys");
    let entries = fs::read_dir(&keys).map_err(|e| BundleError(format!("{}: {e}", keys.display())))?;
    for e in entries {
        let e = e.map_err(|e| BundleError(e.to_string()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".pub") || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        keyfile::read_public_key(&e.path()).map_err(|e| BundleError(e.to_string()))?;
        files.insert(format!("public-keys/{name}"), fs::read(e.path()).map_err(|e| BundleError(e.to_string()))?);
    }
    Ok(files)
}

/// Builds `offline-kit.tar.gz` from `dir`, signing the manifest with `signer`.
///
/// # Errors
/// The directory is not a bundle source, signing fails, or the archive cannot be written.
pub fn create(
    registry: &Registry,
    service: &KeyService<'_>,
    dir: &Path,
    signer: &Signer,
    out: &Path,
) -> Result<Manifest, BundleError> {
    let files = collect(dir)?;
    let mut listed = Vec::new();
    for (path, bytes) in &files {
        listed.push(ManifestFile {
            path: path.clone(),
            sha256: sha256_hex(registry, bytes)?,
            size: bytes.len() as u64,
        });
    }
    let manifest = Manifest { version: "1.0".into(), created_at: crate::audit::now_rfc3339(), files: listed };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError(e.to_string()))?;
    let (envelope, _) = dsse::sign(
        registry,
        service,
        MANIFEST_TYPE,
        &manifest_bytes,
        std::slice::from_ref(signer),
        SigFormat::Der,
        false,
    )
    .map_err(|e| BundleError(format!("signing the manifest: {e}")))?;
    let mut all = files;
    all.insert(MANIFEST.into(), manifest_bytes);
    all.insert(SIGNATURE.into(), envelope.to_json().into_bytes());

    let tmp = out.with_extension("partial");
    let result = (|| -> std::io::Result<()> {
        let f = fs::File::create(&tmp)?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        // Deterministic: sorted paths, no owners, no times.
        for (path, bytes) in &all {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, bytes.as_slice())?;
        }
        let gz = tar.into_inner()?;
        gz.finish()?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return fail(format!("writing {}: {e}", out.display()));
    }
    fs::rename(&tmp, out).map_err(|e| BundleError(format!("writing {}: {e}", out.display())))?;
    Ok(manifest)
}

/// Reads every entry of an archive into memory, refusing anything hostile before it is used:
/// links, devices, directories-as-files tricks, `..` or absolute paths, duplicates, more
/// entries or bytes than the limits, a truncated or corrupt gzip.
///
/// # Errors
/// Any of the above, naming the entry.
pub fn read_archive(path: &Path, limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let f = fs::File::open(path).map_err(|e| BundleError(format!("{}: {e}", path.display())))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let entries = archive.entries().map_err(|e| BundleError(format!("{}: not a tar.gz: {e}", path.display())))?;
    for (i, entry) in entries.enumerate() {
        let mut entry =
            entry.map_err(|e| BundleError(format!("{}: corrupt or truncated archive: {e}", path.display())))?;
        if i >= limits.max_entries {
            return fail(format!("{}: more than {} entries", path.display(), limits.max_entries));
        }
        let raw = entry.path().map_err(|e| BundleError(format!("entry {i}: unreadable path: {e}")))?.into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return fail(format!(
                "entry {:?} is a {:?}, not a regular file (links and devices are refused)",
                raw.display(),
                kind
            ));
        }
        let Some(name) = safe_path(&raw) else {
            return fail(format!("entry {:?} escapes the bundle (absolute path or ..): refused", raw.display()));
        };
        let declared = entry.header().size().unwrap_or(u64::MAX);
        if declared > limits.max_entry_bytes {
            return fail(format!(
                "entry {name:?} declares {declared} bytes (limit {}): refused",
                limits.max_entry_bytes
            ));
        }
        if total + declared > limits.max_total_bytes {
            return fail(format!(
                "archive expands past {} bytes: refused (decompression bomb?)",
                limits.max_total_bytes
            ));
        }
        let mut bytes = Vec::with_capacity(declared as usize);
        (&mut entry)
            .take(limits.max_entry_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BundleError(format!("entry {name:?}: corrupt or truncated archive: {e}")))?;
        if bytes.len() as u64 != declared {
            return fail(format!("entry {name:?}: {} bytes where {declared} were declared", bytes.len()));
        }
        total += bytes.len() as u64;
        if files.insert(name.clone(), bytes).is_some() {
            return fail(format!("entry {name:?} appears twice: refused"));
        }
    }
    Ok(files)
}

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
    let (Some(manifest_bytes), Some(sig_bytes)) = (files.get(MANIFEST), files.get(SIGNATURE)) else {
        return fail(format!("{} lacks {MANIFEST} or {SIGNATURE}", archive.display()));
    };
    let envelope = Envelope::parse(sig_bytes, limits.max_entry_bytes as usize, crate::dsse::DEFAULT_MAX_SIGNATURES)
        .map_err(|e| BundleError(format!("{SIGNATURE}: {e}")))?;
    if envelope.payload_type != MANIFEST_TYPE || envelope.payload != *manifest_bytes {
        return fail(format!("{SIGNATURE} does not sign this {MANIFEST}"));
    }
    let key = match bootstrap {
        Bootstrap::Key { spki, algorithm } => TrustedKey {
            name: "bootstrap key".into(),
            fingerprint: dsse::fingerprint(registry, spki).map_err(BundleError)?,
            spki: spki.clone(),
            algorithm: algorithm.clone(),
            hints: vec![],
        },
        Bootstrap::Fingerprint(fp) => {
            let mut found = None;
            for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("public-keys/")) {
                let spki =
                    keyfile::public_key_from_bytes(Path::new(path), bytes).map_err(|e| BundleError(e.to_string()))?;
                if dsse::fingerprint(registry, &spki).map_err(BundleError)? == *fp {
                    found = Some(spki);
                }
            }
            let Some(spki) = found else {
                return fail(format!("no public key in the bundle has the bootstrap fingerprint {fp}"));
            };
            let algorithm = algorithm_for(&files, &spki).ok_or_else(|| {
                BundleError("cannot tell the bundle key's algorithm: give the bootstrap public key (--bootstrap-pub) with --alg".into())
            })?;
            TrustedKey { name: "bootstrap key".into(), fingerprint: fp.clone(), spki, algorithm, hints: vec![] }
        }
    };
    let result =
        dsse::verify(registry, &envelope, &[key], 1, SigFormat::Der).map_err(|e| BundleError(e.to_string()))?;
    if !result.valid {
        return fail(format!(
            "the bundle signature does not verify under the bootstrap key ({})",
            result.notes.join("; ")
        ));
    }
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| BundleError(format!("{MANIFEST}: {e}")))?;
    for f in &manifest.files {
        let Some(bytes) = files.get(&f.path) else {
            return fail(format!("{} is listed in the manifest but missing from the archive", f.path));
        };
        if bytes.len() as u64 != f.size || sha256_hex(registry, bytes)? != f.sha256 {
            return fail(format!("{} does not match the manifest (size or sha256 differs)", f.path));
        }
    }
    for path in files.keys() {
        if path != MANIFEST && path != SIGNATURE && !manifest.files.iter().any(|f| f.path == *path) {
            return fail(format!("{path} is in the archive but not in the manifest: refused"));
        }
    }
    Ok((manifest, files))
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

/// Verifies, then writes the bundle's files into `into` all or nothing: everything goes to a
/// staging directory beside it (through a `cap-std` handle, so no path from the archive can
/// leave it), which is renamed into place at the end. `into` must not exist or be empty.
///
/// # Errors
/// Verification fails, `into` is not empty, or a write fails (then nothing is installed).
pub fn install(
    registry: &Registry,
    archive: &Path,
    bootstrap: &Bootstrap,
    into: &Path,
    limits: Limits,
) -> Result<Manifest, BundleError> {
    let (manifest, files) = verify(registry, archive, bootstrap, limits)?;
    let parent =
        into.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = into.file_name().ok_or_else(|| BundleError(format!("{}: not a directory name", into.display())))?;
    let parent_dir = Dir::open_ambient_dir(&parent, ambient_authority())
        .map_err(|e| BundleError(format!("{}: {e}", parent.display())))?;
    if let Ok(mut existing) = parent_dir.read_dir(name) {
        if existing.next().is_some() {
            return fail(format!("{} exists and is not empty; install into a new directory", into.display()));
        }
        parent_dir.remove_dir(name).map_err(|e| BundleError(format!("{}: {e}", into.display())))?;
    }
    let staging = format!(".{}.staging-{}", name.to_string_lossy(), std::process::id());
    let _ = parent_dir.remove_dir_all(&staging);
    parent_dir.create_dir(&staging).map_err(|e| BundleError(format!("creating staging directory: {e}")))?;
    let written = (|| -> std::io::Result<()> {
        let dir = parent_dir.open_dir(&staging)?;
        for (path, bytes) in &files {
            if let Some(p) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
                dir.create_dir_all(p)?;
            }
            let mut f = dir.create(path)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        Ok(())
    })();
    let renamed = written.and_then(|()| parent_dir.rename(&staging, &parent_dir, name));
    if let Err(e) = renamed {
        let _ = parent_dir.remove_dir_all(&staging);
        return fail(format!("installing into {}: {e} (nothing was installed)", into.display()));
    }
    Ok(manifest)
}
