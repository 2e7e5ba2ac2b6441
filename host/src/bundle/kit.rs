//! An installed offline kit: the bundle's files in one directory, re-checked on every use
//! against the signed manifest and the bootstrap key pinned in the config, and the provider
//! modules it carries: admitted only when a component manifest signed by a `provider-module`
//! anchor lists their digests. All of it is checked by the trust root's native verifier
//! (`crate::trust_root`), never by code the kit brings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::state::KitState;
use super::{
    Bootstrap, BundleError, Limits, MANIFEST, Manifest, fail, kind_name, list_dir, open_dir, read_regular_at,
    verify_files,
};
use crate::dsse::{self, Envelope};
use crate::policy::Policy;
use crate::provider::{SigFormat, World};
use crate::trust::AnchorSet;

/// The publisher's signed component manifest, inside `crypto-plugins/`.
pub const COMPONENT_MANIFEST_FILE: &str = "component-manifest.dsse.json";
pub const COMPONENT_MANIFEST: &str = "crypto-plugins/component-manifest.dsse.json";
/// Its DSSE payload type.
pub const COMPONENT_MANIFEST_TYPE: &str = "application/vnd.cryptohost.component-manifest+json";
/// The revocation list of component digests, at the kit's root.
pub const REVOKED: &str = "revoked-components.json";
/// The anchor purpose a publisher key must have.
pub const PROVIDER_MODULE: &str = "provider-module";

/// The payload of the component manifest: each component, how it was built, and what the
/// config would otherwise say about it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentManifest {
    pub version: String,
    pub created_at: String,
    pub components: Vec<KitComponent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KitComponent {
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub wit_package: String,
    pub world: String,
    pub toolchain: String,
    pub build_mode: String,
    pub provider: KitProvider,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KitProvider {
    pub name: String,
    pub role: String,
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// `revoked-components.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    pub revoked: Vec<Revoked>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    pub sha256: String,
    #[serde(default)]
    pub reason: String,
}

/// A component the kit admits: its entry, the publisher key id that signed it, its path.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub entry: KitComponent,
    pub world: World,
    pub publisher: String,
    pub path: PathBuf,
}

/// An installed kit, checked whole.
pub struct InstalledKit {
    pub dir: PathBuf,
    pub manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
    pub components: Vec<Admitted>,
    pub revoked: Vec<Revoked>,
}

/// Every file under `dir`, read without following a link and refusing anything that is not a
/// regular file or directory, within the bundle limits (an installed kit is what its archive
/// was).
fn read_tree(dir: &Path, limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    // Directories count as entries too, so a tree of empty directories stops at the limit.
    let mut entries = 0usize;
    let mut pending = vec![(open_dir(dir)?, String::new())];
    while let Some((fd, prefix)) = pending.pop() {
        let shown_dir = dir.join(&prefix);
        for (name, kind) in list_dir(&fd, &shown_dir)? {
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let shown = dir.join(&rel);
            entries += 1;
            if entries > limits.max_entries {
                return fail(format!("{}: more than {} entries: refused", dir.display(), limits.max_entries));
            }
            let kind = if kind == FileType::Unknown {
                let st = rustix::fs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| BundleError::Refused(format!("{}: {e}", shown.display())))?;
                FileType::from_raw_mode(st.st_mode)
            } else {
                kind
            };
            match kind {
                FileType::Directory => {
                    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let sub = rustix::fs::openat(&fd, name.as_str(), flags, Mode::empty())
                        .map_err(|e| BundleError::Refused(format!("{}: {e}", shown.display())))?;
                    pending.push((sub, rel));
                }
                FileType::RegularFile => {
                    let bytes = read_regular_at(&fd, &name, &shown, limits.max_entry_bytes)?;
                    total += bytes.len() as u64;
                    if total > limits.max_total_bytes {
                        return fail(format!(
                            "{}: more than {} bytes in all: refused",
                            dir.display(),
                            limits.max_total_bytes
                        ));
                    }
                    files.insert(rel, bytes);
                }
                other => {
                    return fail(format!(
                        "installed kit {}: {rel} is a {}: refused (a kit holds only regular files)",
                        dir.display(),
                        kind_name(other)
                    ));
                }
            }
        }
    }
    Ok(files)
}

/// Opens an installed kit and checks all of it, as of `at`: the signed manifest under the key
/// with `bootstrap_fingerprint` (pinned in the config), every file against it (an added,
/// removed or edited file is refused by name), and the component manifest's signature under
/// a `provider-module` anchor valid at `at`, with every component it lists present and
/// matching.
///
/// The kit must also be at least as new as the newest kit installed there and carries every
/// revocation seen there, as its state file (`state`, written by `bundle install`) records; a
/// kit without a state file is refused.
///
/// # Errors
/// Any of those checks fails.
pub fn open(
    dir: &Path,
    bootstrap_fingerprint: &str,
    state: &Path,
    at: OffsetDateTime,
    policy: &Arc<Policy>,
) -> Result<InstalledKit, BundleError> {
    let Some(recorded) = super::state::read(state)? else {
        return fail(format!(
            "installed kit {}: there is no kit state {} (written by `bundle install`: the newest kit installed \
             there and every revocation seen); without it a rollback cannot be ruled out: install the kit with \
             `cryptohost bundle install`",
            dir.display(),
            state.display()
        ));
    };
    open_with_state(dir, bootstrap_fingerprint, &recorded, state, at, policy)
}

/// As [`open`], with the state already read (`bundle install` checks a staged kit against the
/// state it is about to record).
///
/// # Errors
/// As [`open`].
pub(super) fn open_with_state(
    dir: &Path,
    bootstrap_fingerprint: &str,
    recorded: &KitState,
    state: &Path,
    at: OffsetDateTime,
    policy: &Arc<Policy>,
) -> Result<InstalledKit, BundleError> {
    let limits = Limits::default();
    // The deployment policy holds for the kit's own signatures too: a kit never widens it.
    let registry = crate::trust_root::registry().with_policy(policy.clone());
    crate::fsio::trusted(dir, "the installed kit directory").map_err(|e| BundleError::Refused(e.to_string()))?;
    let files = read_tree(dir, limits)?;
    let whose = format!("installed kit {}", dir.display());
    let manifest =
        verify_files(&registry, &files, &Bootstrap::Fingerprint(bootstrap_fingerprint.to_string()), limits, &whose)?;
    let created = crate::trust::parse_time(&manifest.created_at)
        .map_err(|e| BundleError::Refused(format!("{whose}: {MANIFEST}: createdAt {e}")))?;
    if created < recorded.highest(state)? {
        return fail(format!(
            "{whose} (createdAt {}) is older than the newest kit installed there (createdAt {}, recorded in {}): \
             a rollback, refused",
            manifest.created_at,
            recorded.highest_created_at,
            state.display()
        ));
    }
    let mut revoked = revocations(&files, &whose)?;
    for r in &recorded.revoked {
        if !revoked.iter().any(|k| k.sha256 == r.sha256) {
            revoked.push(r.clone());
        }
    }
    let mut kit = InstalledKit { dir: dir.to_path_buf(), manifest, files, components: Vec::new(), revoked };
    let Some(envelope) = kit.files.get(COMPONENT_MANIFEST) else { return Ok(kit) };
    let publishers =
        kit.anchors(&registry, at, Some(PROVIDER_MODULE)).map_err(|e| BundleError::Refused(e.to_string()))?;
    if publishers.keys.is_empty() {
        return fail(format!(
            "{whose}: {COMPONENT_MANIFEST}: no anchor with purpose {PROVIDER_MODULE:?} is valid now ({})",
            publishers.refused.join("; ")
        ));
    }
    let envelope = Envelope::parse(envelope, limits.max_entry_bytes as usize, dsse::DEFAULT_MAX_SIGNATURES)
        .map_err(|e| BundleError::Refused(format!("{whose}: {COMPONENT_MANIFEST}: {e}")))?;
    if envelope.payload_type != COMPONENT_MANIFEST_TYPE {
        return fail(format!(
            "{whose}: {COMPONENT_MANIFEST}: payload type {:?} is not {COMPONENT_MANIFEST_TYPE}",
            envelope.payload_type
        ));
    }
    let result = dsse::verify(&registry, &envelope, &publishers.keys, 1, SigFormat::Der)
        .map_err(|e| BundleError::Refused(format!("{whose}: {COMPONENT_MANIFEST}: {e}")))?;
    if !result.valid {
        return fail(format!(
            "{whose}: {COMPONENT_MANIFEST} is not signed by a {PROVIDER_MODULE} anchor valid now ({}): its components are refused",
            result.notes.join("; ")
        ));
    }
    let publisher = result.verified_by.first().cloned().unwrap_or_default();
    let listed: ComponentManifest = serde_json::from_slice(&envelope.payload)
        .map_err(|e| BundleError::Refused(format!("{whose}: {COMPONENT_MANIFEST}: not a component manifest: {e}")))?;
    for c in listed.components {
        if c.file.contains('/') || !c.file.ends_with(".wasm") || c.file.starts_with('.') {
            return fail(format!("{whose}: component file name {:?} is not a plain *.wasm name", c.file));
        }
        let path = format!("crypto-plugins/{}", c.file);
        let Some(bytes) = kit.files.get(&path) else {
            return fail(format!("{whose}: {path} is in the component manifest but not in the kit"));
        };
        let actual = super::sha256_hex(&registry, bytes)?;
        if actual != c.sha256 || bytes.len() as u64 != c.size {
            return fail(format!(
                "{whose}: {path} has sha256 {actual}, but the signed component manifest says {}",
                c.sha256
            ));
        }
        let world: World = c.world.parse().map_err(|m| BundleError::Refused(format!("{whose}: {path}: world {m}")))?;
        let role: World =
            c.provider.role.parse().map_err(|m| BundleError::Refused(format!("{whose}: {path}: role {m}")))?;
        if role != world {
            return fail(format!("{whose}: {path}: role {} and world {} differ", role.name(), world.name()));
        }
        kit.components.push(Admitted { entry: c, world, publisher: publisher.clone(), path: dir.join(&path) });
    }
    Ok(kit)
}

impl InstalledKit {
    /// The kit's trust anchors (from its checked bytes) that pass every rule at `at`.
    ///
    /// # Errors
    /// The anchors file is malformed or has expired.
    pub fn anchors(
        &self,
        registry: &crate::registry::Registry,
        at: OffsetDateTime,
        purpose: Option<&str>,
    ) -> Result<AnchorSet, crate::trust::AnchorError> {
        let text = self.files.get("trust-anchors.json").map(Vec::as_slice).unwrap_or_default();
        let mut keys = Vec::new();
        for (path, bytes) in self.files.iter().filter(|(p, _)| p.starts_with("public-keys/") && p.ends_with(".pub")) {
            let spki = crate::keyfile::public_key_from_bytes(Path::new(path), bytes).map_err(|e| {
                crate::trust::AnchorError { path: self.dir.join(path).display().to_string(), message: e.to_string() }
            })?;
            keys.push(spki);
        }
        crate::trust::anchors_from(registry, &self.dir.join("trust-anchors.json"), text, &keys, at, purpose)
    }

    /// The revocation of a component digest, if the kit revokes it.
    pub fn revocation(&self, sha256: &str) -> Option<&Revoked> {
        self.revoked.iter().find(|r| r.sha256 == sha256)
    }

    /// The kit's version: its signed manifest's `createdAt`.
    pub fn created_at(&self) -> &str {
        &self.manifest.created_at
    }
}

/// The revocations a kit's files carry (none without `revoked-components.json`).
///
/// # Errors
/// The file is not a revocation list.
pub(super) fn revocations(files: &BTreeMap<String, Vec<u8>>, whose: &str) -> Result<Vec<Revoked>, BundleError> {
    match files.get(REVOKED) {
        None => Ok(Vec::new()),
        Some(b) => Ok(serde_json::from_slice::<Revocations>(b)
            .map_err(|e| BundleError::Refused(format!("{whose}: {REVOKED}: {e}")))?
            .revoked),
    }
}

/// Whether `dir` holds an installed kit (its signed manifest is there).
pub fn is_installed_kit(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// As a publisher: signs a component manifest for the providers `config` names (each with a
/// `role`), checking every component file against the build manifest beside it, and writes
/// the components and the signed manifest into the new directory `out`.
///
/// # Errors
/// A provider without a role, a component that does not match its build manifest entry or
/// whose world is not its role, signing fails, or `out` exists and is not empty.
pub fn publish(
    registry: &crate::registry::Registry,
    service: &crate::keys::KeyService<'_>,
    config: &crate::config::Config,
    signer: &dsse::Signer,
    out: &Path,
) -> Result<ComponentManifest, BundleError> {
    super::trust_root_algorithm(&signer.algorithm, "a component manifest")?;
    let build = crate::config::Manifest::load(&config.component_dir.join("manifest.json"))
        .map_err(|e| BundleError::Refused(e.to_string()))?;
    let mut components = Vec::new();
    let mut copies = Vec::new();
    for p in &config.providers {
        let role = p.role.ok_or_else(|| {
            BundleError::Refused(format!(
                "provider {:?} has no role in {}: a kit says what each component is",
                p.name,
                config.path.display()
            ))
        })?;
        let file = p.component.to_string_lossy().into_owned();
        let path = config.component_dir.join(&p.component);
        let bytes = crate::fsio::read_bounded_nofollow(&path, crate::fsio::limits::COMPONENT, "component")
            .map_err(|e| BundleError::Refused(e.message))?;
        let sha256 = super::sha256_hex(registry, &bytes)?;
        let entry = build.entry_for_file(&file).filter(|e| e.sha256 == sha256).ok_or_else(|| {
            BundleError::Refused(format!(
                "{}: no entry with its sha256 {sha256} in the build manifest beside it",
                path.display()
            ))
        })?;
        let world = entry.world.clone().unwrap_or_default();
        if world != role.name() {
            return fail(format!(
                "provider {:?}: the build says world {world:?}, the config role {:?}",
                p.name,
                role.name()
            ));
        }
        components.push(KitComponent {
            file: file.clone(),
            sha256,
            size: bytes.len() as u64,
            wit_package: build.wit_package.clone(),
            world,
            toolchain: build.toolchain.clone(),
            build_mode: build.build_mode.clone(),
            provider: KitProvider {
                name: p.name.clone(),
                role: role.name().to_string(),
                priority: p.priority.0,
                key_prefix: p.key_prefix.clone(),
            },
        });
        copies.push((file, bytes));
    }
    let manifest = ComponentManifest { version: "1".into(), created_at: crate::audit::now_rfc3339(), components };
    let payload = serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Refused(e.to_string()))?;
    let (envelope, _) =
        dsse::sign(service, COMPONENT_MANIFEST_TYPE, &payload, std::slice::from_ref(signer), SigFormat::Der, false)
            .map_err(|source| BundleError::Sign { what: "component manifest", source })?;
    match std::fs::create_dir(out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let empty = std::fs::symlink_metadata(out).is_ok_and(|m| m.is_dir())
                && std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none());
            if !empty {
                return fail(format!("{} exists and is not an empty directory: refused", out.display()));
            }
        }
        Err(e) => return fail(format!("{}: {e}", out.display())),
    }
    for (file, bytes) in &copies {
        crate::fsio::write_new(&out.join(file), bytes, 0o644).map_err(|e| BundleError::Refused(e.message))?;
    }
    crate::fsio::write_new(&out.join(COMPONENT_MANIFEST_FILE), (envelope.to_json() + "\n").as_bytes(), 0o644)
        .map_err(|e| BundleError::Refused(e.message))?;
    Ok(manifest)
}
