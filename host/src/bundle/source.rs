//! A bundle's source directory: the files `bundle create` puts in a kit, each a regular file
//! read through a descriptor (never a link), each bounded, and the whole bounded as it grows.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{
    BundleError, Limits, MANIFEST, MAX_PUBLIC_KEY_BYTES, SIGNATURE, fail, headers_for, io_err, kind_name, kit,
    list_dir, open_dir, read_regular_at,
};
use crate::keyfile;

/// The files a bundle carries, from a source directory: `trust-anchors.json` and
/// `public-keys/*.pub`, each a regular file (never a symlink, fifo or device) of bounded size,
/// checked on the open file. Other regular files in `public-keys/` are skipped; anything in it
/// that is not a regular file is refused by name.
pub(super) fn collect(dir: &Path, limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut files = BTreeMap::new();
    let root = open_dir(dir)?;
    let anchors_path = dir.join("trust-anchors.json");
    let anchors = read_regular_at(&root, "trust-anchors.json", &anchors_path, limits.max_entry_bytes)?;
    crate::trust::check_anchors(&anchors_path, &anchors).map_err(|e| BundleError::Refused(e.to_string()))?;
    // Running counts, so a huge source directory stops at the limit, not after reading it.
    let mut tally = Tally {
        total: anchors.len() as u64,
        headers: headers_for("trust-anchors.json") + headers_for(MANIFEST) + headers_for(SIGNATURE),
    };
    files.insert("trust-anchors.json".to_string(), anchors);
    public_keys(&root, dir, limits, &mut tally, &mut files)?;
    // Optional: signed provider modules (`crypto-plugins/`: component files and the
    // publisher's signed component manifest) and a revocation list of component digests.
    if let Ok(st) = rustix::fs::statat(&root, "crypto-plugins", AtFlags::SYMLINK_NOFOLLOW) {
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return fail(format!("{} is not a directory: refused", dir.join("crypto-plugins").display()));
        }
        plugins(&root, dir, limits, &mut tally, &mut files)?;
    }
    if rustix::fs::statat(&root, kit::REVOKED, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        let shown = dir.join(kit::REVOKED);
        let bytes = read_regular_at(&root, kit::REVOKED, &shown, limits.max_entry_bytes)?;
        serde_json::from_slice::<kit::Revocations>(&bytes)
            .map_err(|e| BundleError::Refused(format!("{}: {e}", shown.display())))?;
        files.insert(kit::REVOKED.to_string(), bytes);
    }
    Ok(files)
}

/// Tar headers and bytes a bundle being collected would hold so far.
struct Tally {
    headers: usize,
    total: u64,
}

const SUBDIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// `public-keys/*.pub`: each a public key; other regular files skipped; anything else refused.
fn public_keys(
    root: &OwnedFd,
    dir: &Path,
    limits: Limits,
    tally: &mut Tally,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), BundleError> {
    let keys_path = dir.join("public-keys");
    let keys = rustix::fs::openat(root, "public-keys", SUBDIR, Mode::empty()).map_err(|e| match e {
        Errno::LOOP => BundleError::Refused(format!("{} is a symbolic link: refused", keys_path.display())),
        e => BundleError::Refused(format!("{}: {}", keys_path.display(), io_err(e))),
    })?;
    for (name, kind) in list_dir(&keys, &keys_path)? {
        let shown = keys_path.join(&name);
        // The directory's word is checked again on the open file (it may change meanwhile);
        // this refuses devices and fifos without ever opening them.
        if !matches!(kind, FileType::RegularFile | FileType::Unknown) {
            return fail(format!(
                "{} is a {}, not a regular file: refused (public-keys/ holds only key files)",
                shown.display(),
                kind_name(kind)
            ));
        }
        if !name.ends_with(".pub") {
            continue;
        }
        let path = format!("public-keys/{name}");
        tally.headers += headers_for(&path);
        if tally.headers > limits.max_entries {
            return fail(format!(
                "{}: the bundle would hold more than {} tar entries: refused",
                dir.display(),
                limits.max_entries
            ));
        }
        let bytes = read_regular_at(&keys, &name, &shown, MAX_PUBLIC_KEY_BYTES)?;
        keyfile::public_key_from_bytes(&shown, &bytes).map_err(|e| BundleError::Refused(e.to_string()))?;
        tally.total += bytes.len() as u64;
        if tally.total > limits.max_total_bytes {
            return fail(format!(
                "{}: the bundle's files add up to more than the limit of {} bytes: refused",
                dir.display(),
                limits.max_total_bytes
            ));
        }
        files.insert(path, bytes);
    }
    Ok(())
}

/// `crypto-plugins/`: components (*.wasm) and the publisher's signed component manifest only.
fn plugins(
    root: &OwnedFd,
    dir: &Path,
    limits: Limits,
    tally: &mut Tally,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), BundleError> {
    let plugins_path = dir.join("crypto-plugins");
    let plugins = rustix::fs::openat(root, "crypto-plugins", SUBDIR, Mode::empty())
        .map_err(|e| BundleError::Refused(format!("{}: {}", plugins_path.display(), io_err(e))))?;
    for (name, kind) in list_dir(&plugins, &plugins_path)? {
        let shown = plugins_path.join(&name);
        if !matches!(kind, FileType::RegularFile | FileType::Unknown) {
            return fail(format!("{} is a {}, not a regular file: refused", shown.display(), kind_name(kind)));
        }
        if !(name.ends_with(".wasm") || name == kit::COMPONENT_MANIFEST_FILE) {
            return fail(format!(
                "{}: crypto-plugins/ holds only components (*.wasm) and {}: refused",
                shown.display(),
                kit::COMPONENT_MANIFEST_FILE
            ));
        }
        let path = format!("crypto-plugins/{name}");
        tally.headers += headers_for(&path);
        let bytes = read_regular_at(&plugins, &name, &shown, limits.max_entry_bytes)?;
        tally.total += bytes.len() as u64;
        if tally.headers > limits.max_entries || tally.total > limits.max_total_bytes {
            return fail(format!("{}: the bundle would exceed its limits: refused", dir.display()));
        }
        files.insert(path, bytes);
    }
    Ok(())
}
