//! The build manifest (`components/manifest.json`) and `pin`, which checks it against the
//! component files before writing their digests into the config.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Deserialize;
use sha2::Digest as _;

use super::Config;
use crate::error::LoadError;
use crate::fsio;

/// `components/manifest.json`, as `guest-pack` writes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub wit_package: String,
    pub toolchain: String,
    pub build_mode: String,
    pub components: BTreeMap<String, ManifestEntry>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ManifestEntry {
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// The world guest-pack found in its exports.
    #[serde(default)]
    pub world: Option<String>,
}

impl Manifest {
    /// # Errors
    /// The file cannot be read or is not a manifest.
    pub fn load(path: &Path) -> Result<Manifest, LoadError> {
        let text = fsio::read_bounded(path, fsio::limits::MANIFEST, "component manifest")
            .map_err(|e| LoadError::Config { path: path.to_path_buf(), message: e.message })?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| LoadError::Config {
            path: path.to_path_buf(),
            message: format!("not a component manifest: {e}"),
        })?;
        for (name, e) in &manifest.components {
            if !is_sha256_hex(&e.sha256) {
                return Err(LoadError::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "component {name:?} ({}): sha256 {:?} is not 64 lowercase hex digits",
                        e.file, e.sha256
                    ),
                });
            }
        }
        Ok(manifest)
    }

    /// The entry for a component file name.
    pub fn entry_for_file(&self, file: &str) -> Option<&ManifestEntry> {
        self.components.values().find(|e| e.file == file)
    }
}

/// 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Rewrites the `sha256` of every configured provider (and `pinned_toolchain`) from a manifest,
/// keeping the file's comments and layout. Each configured component file (in `components`,
/// else the config's component directory) is hashed, and its digest and size must be what
/// the manifest says: a manifest is a claim about files, and `pin` checks the claim before
/// trusting it. Returns what changed, one line per provider.
///
/// # Errors
/// The config cannot be read or written, names a component the manifest does not have, or a
/// component file does not match its manifest entry.
pub fn write_pins(
    config_path: &Path,
    manifest: &Manifest,
    components: Option<&Path>,
) -> Result<Vec<String>, LoadError> {
    let err = |message: String| LoadError::Config { path: config_path.to_path_buf(), message };
    // The config is rewritten by rename: a symlink there would be replaced by a file, so
    // refuse it and let the operator name the real file.
    let meta = fs::symlink_metadata(config_path)
        .map_err(|source| LoadError::Io { path: config_path.to_path_buf(), source })?;
    if meta.file_type().is_symlink() {
        return Err(err("is a symlink; `pin` rewrites the config in place: give the path of the file itself".into()));
    }
    let bytes =
        fsio::read_bounded_nofollow(config_path, fsio::limits::CONFIG, "configuration").map_err(|e| err(e.message))?;
    let text = String::from_utf8(bytes).map_err(|_| err("is not UTF-8 text".into()))?;
    // Validate first: never rewrite a file that does not load.
    let config = Config::parse(config_path, &text)?;
    let component_dir = components.map_or(config.component_dir, Path::to_path_buf);
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| err(format!("{e}")))?;
    let mut changes = Vec::new();
    if let Some(providers) = doc.get_mut("provider").and_then(|p| p.as_array_of_tables_mut()) {
        for table in providers.iter_mut() {
            let name = table.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let file = table.get("component").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let entry = manifest
                .entry_for_file(&file)
                .ok_or_else(|| err(format!("provider {name:?}: component {file:?} is not in the manifest")))?;
            let path = component_dir.join(&file);
            let bytes = fsio::read_bounded_nofollow(&path, fsio::limits::COMPONENT, "component")
                .map_err(|e| err(format!("provider {name:?}: {}", e.message)))?;
            let actual = hex::encode(sha2::Sha256::digest(&bytes));
            if actual != entry.sha256 || bytes.len() as u64 != entry.size {
                return Err(err(format!(
                    "provider {name:?}: {} has sha256 {actual} and {} bytes, but the manifest says {} and {} bytes; \
                     nothing was pinned (rebuild, or pin the manifest of the build that made this file)",
                    path.display(),
                    bytes.len(),
                    entry.sha256,
                    entry.size
                )));
            }
            let old = table.get("sha256").and_then(|v| v.as_str()).map(str::to_string);
            if old.as_deref() != Some(entry.sha256.as_str()) {
                changes.push(format!("{name}: {} -> {}", old.as_deref().unwrap_or("(unpinned)"), entry.sha256));
            }
            table.insert("sha256", toml_edit::value(entry.sha256.clone()));
        }
    }
    doc.insert("pinned_toolchain", toml_edit::value(manifest.toolchain.clone()));
    // A temporary file beside it and a rename: a crash leaves the old config or the new one.
    use std::os::unix::fs::PermissionsExt;
    fsio::replace_atomic(config_path, doc.to_string().as_bytes(), meta.permissions().mode() & 0o7777)
        .map_err(|e| err(e.message))?;
    Ok(changes)
}
