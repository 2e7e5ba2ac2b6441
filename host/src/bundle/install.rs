//! `bundle install`: a verified kit written into its own directory, all or nothing, or swapped
//! in place of an installed kit; never through a link.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::state::KitState;
use super::{
    Bootstrap, BundleError, Limits, MANIFEST, Manifest, SIGNATURE, fail, io_err, kind_name, list_dir, open_dir,
    random_suffix, read_regular_at, split_parent, verify,
};
use crate::registry::Registry;
use crate::trust::AnchorsFile;

/// Verifies, then writes the bundle's files into `into` all or nothing: everything goes to a
/// new staging directory beside it (random name, mode 0700 while written), every directory and
/// file created relative to a directory handle with `O_NOFOLLOW`/`O_EXCL`, so neither a path
/// from the archive nor a link planted meanwhile can lead a write elsewhere; the staging
/// directory is then renamed into place. `into` must not exist or be an empty directory (a
/// symlink there is refused: the rename replaces an empty directory, never a link's target).
///
/// The kit's state file `state` (outside `into`) records the newest `createdAt` installed there
/// and every revocation seen: a kit older than that is refused (unless `allow_downgrade`), and
/// the staged kit must open as it would on every later load (its signatures, its anchors, its
/// components compiled and of their stated world, none revoked) before it is swapped in.
///
/// # Errors
/// Verification fails, `into` is not a new or empty directory, the kit is older than the one
/// recorded, the staged kit would not load, or a write fails (then nothing is installed).
pub fn install(
    registry: &Registry,
    archive: &Path,
    bootstrap: &Bootstrap,
    into: &Path,
    state: &Path,
    limits: Limits,
    allow_downgrade: bool,
) -> Result<Manifest, BundleError> {
    let (manifest, files) = verify(registry, archive, bootstrap, limits)?;
    let now = time::OffsetDateTime::now_utc();
    let anchors: AnchorsFile = files
        .get("trust-anchors.json")
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| BundleError::Refused("the kit has no readable trust-anchors.json".into()))?;
    let expires = crate::trust::parse_time(&anchors.expires_at).map_err(BundleError::Refused)?;
    if expires < now {
        return fail(format!("the kit expired at {} (its trust-anchors.json expiresAt): refused", anchors.expires_at));
    }
    let created = crate::trust::parse_time(&manifest.created_at)
        .map_err(|e| BundleError::Refused(format!("{MANIFEST}: createdAt {e}")))?;
    let previous = super::state::read(state)?;
    if let Some(p) = &previous
        && !allow_downgrade
        && created < p.highest(state)?
    {
        return fail(format!(
            "this kit (createdAt {}) is older than the newest installed in {} (createdAt {}, recorded in {}): \
             refused (--allow-downgrade installs it anyway)",
            manifest.created_at,
            into.display(),
            p.highest_created_at,
            state.display()
        ));
    }
    let next =
        KitState::after_install(previous.as_ref(), &manifest.created_at, &super::kit::revocations(&files, "the kit")?);
    let (parent, name) = split_parent(into)?;
    let parent_fd = open_dir(parent)?;
    let installed = check_into(&parent_fd, name, into)?;
    if let Some(old) = &installed
        && !allow_downgrade
    {
        // The installed kit's version counts only if the bootstrap key signed it: a manifest
        // planted in the installed directory must not talk a downgrade through.
        let key = super::bootstrap_key(registry, &files, bootstrap)?;
        super::manifest_signed(registry, &old.manifest, &old.signature, &key, limits).map_err(|e| {
            BundleError::Refused(format!(
                "the kit installed in {} has a manifest the bootstrap key did not sign ({e}): its createdAt cannot \
                 be trusted to rule out a downgrade (refused; --allow-downgrade replaces it anyway)",
                into.display()
            ))
        })?;
        let old_time = crate::trust::parse_time(&old.created_at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        if created < old_time {
            return fail(format!(
                "this kit (createdAt {}) is older than the one installed in {} (createdAt {}): refused \
                 (--allow-downgrade installs it anyway)",
                manifest.created_at,
                into.display(),
                old.created_at
            ));
        }
    }
    let stem: String = name.to_string_lossy().chars().take(64).collect();
    let staging = format!(".{stem}.staging-{}", random_suffix()?);
    rustix::fs::mkdirat(&parent_fd, &staging, Mode::from_raw_mode(0o700)).map_err(|e| {
        BundleError::Refused(format!("creating staging directory beside {}: {}", into.display(), io_err(e)))
    })?;
    let staged = (|| -> std::io::Result<()> {
        let dir = rustix::fs::openat(&parent_fd, &staging, DIR_NOFOLLOW, Mode::empty())?;
        for (path, bytes) in &files {
            write_new_file(&dir, path, bytes)?;
        }
        rustix::fs::fsync(&dir)?;
        Ok(())
    })();
    if let Err(e) = staged {
        let _ = remove_tree(&parent_fd, &staging);
        return fail(format!("installing into {}: {e} (nothing was installed)", into.display()));
    }
    let fingerprint = super::bootstrap_key(registry, &files, bootstrap)?.fingerprint;
    if super::bootstrap_key(registry, &files, &Bootstrap::Fingerprint(fingerprint.clone())).is_err() {
        let _ = remove_tree(&parent_fd, &staging);
        return fail(format!(
            "the bootstrap key ({fingerprint}) is not among the kit's public-keys/: an installed kit is checked on \
             every load against [trust] bootstrap_fingerprint alone, so it would never load; nothing was installed \
             (put the bundle signing key's public key in the kit's public-keys/)"
        ));
    }
    if let Err(e) = loads(registry, &parent.join(&staging), &fingerprint, &next, state) {
        let _ = remove_tree(&parent_fd, &staging);
        return fail(format!("the kit would not load once installed, so nothing was installed: {e}"));
    }
    // The state goes first: a failure after it leaves the old kit refused (fail closed), never
    // a newer kit's revocations forgotten.
    if let Err(e) = super::state::write(state, &next) {
        let _ = remove_tree(&parent_fd, &staging);
        return Err(e);
    }
    let written = (|| -> std::io::Result<()> {
        let dir = rustix::fs::openat(&parent_fd, &staging, DIR_NOFOLLOW, Mode::empty())?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o755))?;
        rustix::fs::fsync(&dir)?;
        if installed.is_some() {
            // An upgrade: the new tree and the installed one swap places in one step
            // (components and anchors together, or neither), then the old one goes.
            rustix::fs::renameat_with(&parent_fd, &staging, &parent_fd, name, rustix::fs::RenameFlags::EXCHANGE)?;
        } else {
            // Replaces nothing but an empty directory: a link or a file at `into` makes it fail.
            rustix::fs::renameat(&parent_fd, &staging, &parent_fd, name)?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = remove_tree(&parent_fd, &staging);
        let restored = match &previous {
            Some(p) => super::state::write(state, p).is_ok(),
            None => std::fs::remove_file(state).is_ok(),
        };
        let state_note = if restored { "" } else { "; the kit state could not be restored: reinstall" };
        return fail(format!("installing into {}: {e} (nothing was installed{state_note})", into.display()));
    }
    if installed.is_some() {
        // What was installed before now sits at the staging name.
        if let Err(e) = remove_tree(&parent_fd, &staging) {
            log::warn!("the previous kit is left at {}/{staging}: {e}", parent.display());
        }
    }
    // The rename itself must survive a crash.
    rustix::fs::fsync(&parent_fd).map_err(|e| {
        BundleError::Refused(format!(
            "installed into {}, but syncing {}: {}",
            into.display(),
            parent.display(),
            io_err(e)
        ))
    })?;
    Ok(manifest)
}

/// Opens the staged kit as every later load will, against the state about to be recorded,
/// and compiles each component it admits.
fn loads(registry: &Registry, dir: &Path, fingerprint: &str, next: &KitState, state: &Path) -> Result<(), BundleError> {
    let now = time::OffsetDateTime::now_utc();
    let kit = super::kit::open_with_state(dir, fingerprint, next, state, now, registry.policy())?;
    for c in &kit.components {
        if let Some(r) = kit.revocation(&c.entry.sha256) {
            return fail(format!("{} (sha256 {}) is revoked ({})", c.entry.file, c.entry.sha256, r.reason));
        }
        let seen = crate::load::inspect(&c.path).map_err(|e| BundleError::Refused(e.to_string()))?;
        if let Some(why) = seen.refused_imports.first() {
            return fail(format!("{}: {why}", c.entry.file));
        }
        match seen.world {
            Ok(w) if w == c.world => {}
            Ok(w) => {
                return fail(format!(
                    "{} is listed as a {} world component, but it is a {} one",
                    c.entry.file,
                    c.world.name(),
                    w.name()
                ));
            }
            Err(why) => return fail(format!("{}: {why}", c.entry.file)),
        }
    }
    Ok(())
}

const DIR_NOFOLLOW: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// An installed kit's manifest and signature, as found (not yet checked).
struct Installed {
    manifest: Vec<u8>,
    signature: Vec<u8>,
    created_at: String,
}

/// `into` (in `parent`) must be absent, an empty directory, or an installed kit (whose
/// manifest and signature are returned), and not a symbolic link.
fn check_into(parent: &OwnedFd, name: &std::ffi::OsStr, into: &Path) -> Result<Option<Installed>, BundleError> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return fail(format!("{}: {}", into.display(), io_err(e))),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {}
        FileType::Symlink => {
            return fail(format!(
                "{} is a symbolic link: refused (install into a new directory; links are never followed)",
                into.display()
            ));
        }
        kind => {
            return fail(format!("{} exists and is a {}, not a directory: refused", into.display(), kind_name(kind)));
        }
    }
    let dir = rustix::fs::openat(parent, name, DIR_NOFOLLOW, Mode::empty())
        .map_err(|e| BundleError::Refused(format!("{}: {}", into.display(), io_err(e))))?;
    if list_dir(&dir, into)?.is_empty() {
        return Ok(None);
    }
    // An installed kit: its signed manifest says its version (the caller checks the signature).
    let metadata = rustix::fs::openat(&dir, "metadata", DIR_NOFOLLOW, Mode::empty()).ok();
    let read = |file: &str, shown: &str| {
        metadata.as_ref().and_then(|m| read_regular_at(m, file, &into.join(shown), 4 << 20).ok())
    };
    let found =
        match (read("bundle-manifest.json", MANIFEST), read("bundle-signature.sig", SIGNATURE)) {
            (Some(manifest), Some(signature)) => serde_json::from_slice::<Manifest>(&manifest)
                .ok()
                .map(|m| Installed { manifest, signature, created_at: m.created_at }),
            _ => None,
        };
    match found {
        Some(installed) => Ok(Some(installed)),
        None => fail(format!(
            "{} exists, is not empty and is not an installed kit; install into a new directory",
            into.display()
        )),
    }
}

/// Creates `path` (safe, `/`-separated) under `root`, its directories included, never
/// following a link and never opening anything that already exists as the file.
fn write_new_file(root: &OwnedFd, path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut parts: Vec<&str> = path.split('/').collect();
    let file = parts.pop().unwrap_or_default();
    let mut dir: Option<OwnedFd> = None;
    for part in parts {
        let here = dir.as_ref().unwrap_or(root);
        match rustix::fs::mkdirat(here, part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        dir = Some(rustix::fs::openat(here, part, DIR_NOFOLLOW, Mode::empty())?);
    }
    let here = dir.as_ref().unwrap_or(root);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut f = File::from(rustix::fs::openat(here, file, flags, Mode::from_raw_mode(0o644))?);
    f.write_all(bytes)?;
    f.sync_all()
}

/// Removes the staging tree we created, never following a link out of it.
fn remove_tree(parent: &OwnedFd, name: &str) -> std::io::Result<()> {
    let dir = rustix::fs::openat(parent, name, DIR_NOFOLLOW, Mode::empty())?;
    let shown = Path::new(name);
    let entries = list_dir(&dir, shown).map_err(|e| std::io::Error::other(e.to_string()))?;
    for (entry, kind) in entries {
        match rustix::fs::unlinkat(&dir, entry.as_str(), AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::ISDIR) if kind != FileType::Symlink => remove_tree(&dir, &entry)?,
            Err(e) => return Err(e.into()),
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    Ok(())
}
