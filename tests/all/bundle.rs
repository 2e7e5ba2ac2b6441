//! Offline trust bundles: create -> verify -> install -> use the anchors; tampering and
//! hostile archives are refused with nothing written.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bundle_hostile::{HOSTILE_BYTES, leftovers, run_bounded};
use crate::common::{self, OFFLINE, P, run, stderr};

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub(crate) struct Kit {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    pub(crate) source: PathBuf,
    pub(crate) bundle_pub: PathBuf,
}

/// A config with a seeded simulation (the bundle signer) and a bundle source directory with
/// one anchor.
pub(crate) fn kit() -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let config = common::write_config(dir.path(), &common::components_dir(), &[OFFLINE, sim], "");
    let text = fs::read_to_string(&config).unwrap().replace(
        "name = \"simulation\"\n",
        "name = \"simulation\"\nkey_prefix = \"sim\"\nsettings = { seed = \"bundles\" }\n",
    );
    fs::write(&config, text).unwrap();
    let source = dir.path().join("source");
    fs::create_dir_all(source.join("public-keys")).unwrap();
    let scanner_pub = source.join("public-keys/scanner-key-001.pub");
    fs::write(&scanner_pub, run(&config, &["keys", "public", "sim:scanner", "--alg", "ES256"]).stdout).unwrap();
    let fp = String::from_utf8(run(&config, &["trust", "fingerprint", s(&scanner_pub)]).stdout).unwrap();
    let anchors = serde_json::json!({
        "version": "1.0", "createdAt": "2026-01-01T00:00:00Z", "expiresAt": "2030-01-01T00:00:00Z",
        "trustAnchors": [{"keyId": "scanner-key-001", "algorithmId": "ES256", "fingerprint": fp.trim(),
                          "purpose": "container-scanning", "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2030-01-01T00:00:00Z"}],
        "bundleSignature": {"keyId": "bundle-signing-key", "algorithmId": "ES256"}
    });
    fs::write(source.join("trust-anchors.json"), serde_json::to_vec_pretty(&anchors).unwrap()).unwrap();
    let bundle_pub = dir.path().join("bundle-signing.pub");
    fs::write(&bundle_pub, run(&config, &["keys", "public", "sim:bundle-signer", "--alg", "ES256"]).stdout).unwrap();
    // The kit carries its signer's public key: an installed kit is checked on every load by
    // the bootstrap fingerprint alone.
    fs::copy(&bundle_pub, source.join("public-keys/bundle-signing-key.pub")).unwrap();
    Kit { dir, config, source, bundle_pub }
}

impl Kit {
    pub(crate) fn create(&self, name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        let r = run(
            &self.config,
            &[
                "bundle",
                "create",
                "--from",
                s(&self.source),
                "--key",
                "sim:bundle-signer",
                "--alg",
                "ES256",
                "--out",
                s(&out),
            ],
        );
        assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
        out
    }

    pub(crate) fn install(&self, archive: &Path, into: &Path) -> std::process::Output {
        run(&self.config, &["bundle", "install", s(archive), "--bootstrap-pub", s(&self.bundle_pub), "--into", s(into)])
    }
}

#[test]
fn create_verify_install_and_use_the_anchors() {
    let k = kit();
    let archive = k.create("offline-kit.tar.gz");
    let by_key = run(&k.config, &["bundle", "verify", s(&archive), "--bootstrap-pub", s(&k.bundle_pub)]);
    assert_eq!(by_key.status.code(), Some(0), "{}", stderr(&by_key));
    // By fingerprint only: the key must then be in the bundle.
    let fp = String::from_utf8(run(&k.config, &["trust", "fingerprint", s(&k.bundle_pub)]).stdout).unwrap();
    let by_fp = run(&k.config, &["bundle", "verify", s(&archive), "--bootstrap-fingerprint", fp.trim()]);
    assert_eq!(by_fp.status.code(), Some(0), "{}", stderr(&by_fp));
    let absent = format!("sha256:{}", "00".repeat(32));
    let by_fp = run(&k.config, &["bundle", "verify", s(&archive), "--bootstrap-fingerprint", &absent]);
    assert_eq!(by_fp.status.code(), Some(2));
    assert!(stderr(&by_fp).contains("no public key in the bundle has the bootstrap fingerprint"), "{}", stderr(&by_fp));
    // A wrong bootstrap key is refused.
    let wrong = run(
        &k.config,
        &["bundle", "verify", s(&archive), "--bootstrap-pub", s(&k.source.join("public-keys/scanner-key-001.pub"))],
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr(&wrong).contains("does not verify under the bootstrap key"), "{}", stderr(&wrong));

    let into = k.dir.path().join("installed");
    let out = k.install(&archive, &into);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(into.join("trust-anchors.json").exists() && into.join("public-keys/scanner-key-001.pub").exists());
    assert!(into.join("metadata/bundle-manifest.json").exists());
    // The installed directory is what `dsse verify --anchors` reads.
    let doc = k.dir.path().join("sbom.json");
    fs::write(&doc, b"{}").unwrap();
    let env = k.dir.path().join("sbom.dsse");
    let signed = run(
        &k.config,
        &[
            "dsse",
            "sign",
            "--key",
            "sim:scanner",
            "--alg",
            "ES256",
            "--payload-type",
            "application/json",
            "--out",
            s(&env),
            s(&doc),
        ],
    );
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    // An installed kit is checked before its anchors are trusted: without the bootstrap
    // fingerprint in the config, `--anchors` on it is refused (tests/all/kit.rs has the rest).
    let verified =
        run(&k.config, &["dsse", "verify", "--anchors", s(&into), "--purpose", "container-scanning", s(&env)]);
    assert_eq!(verified.status.code(), Some(2));
    assert!(stderr(&verified).contains("set [trust] bootstrap_fingerprint"), "{}", stderr(&verified));
    // A plain anchors directory (no signed manifest) is still read as it is.
    let plain = k.dir.path().join("plain");
    fs::create_dir_all(plain.join("public-keys")).unwrap();
    fs::copy(into.join("trust-anchors.json"), plain.join("trust-anchors.json")).unwrap();
    fs::copy(into.join("public-keys/scanner-key-001.pub"), plain.join("public-keys/scanner-key-001.pub")).unwrap();
    let verified =
        run(&k.config, &["dsse", "verify", "--anchors", s(&plain), "--purpose", "container-scanning", s(&env)]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    // Installing over a non-empty directory that is not an installed kit is refused.
    let other = k.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("keep.txt"), b"mine").unwrap();
    let again = k.install(&archive, &other);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("is not an installed kit"), "{}", stderr(&again));
    assert_eq!(fs::read(other.join("keep.txt")).unwrap(), b"mine");
}

/// Rewrites an archive's entries, then packs them again (keeping the signed manifest).
fn repack(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    let mut entries = Vec::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(src).unwrap()));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        entries.push((name, data));
    }
    edit(&mut entries);
    let gz = flate2::write::GzEncoder::new(fs::File::create(dst).unwrap(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries {
        raw_entry(&mut b, name.as_bytes(), tar::EntryType::Regular, &data, None);
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// Appends an entry whose name is written raw (so `..` and absolute paths can be built).
fn raw_entry<W: Write>(b: &mut tar::Builder<W>, name: &[u8], kind: tar::EntryType, data: &[u8], declared: Option<u64>) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(declared.unwrap_or(data.len() as u64));
    if kind == tar::EntryType::Symlink {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn refused(k: &Kit, archive: &Path, why: &str) {
    let into = k.dir.path().join(format!("into-{}", archive.file_name().unwrap().to_string_lossy()));
    let out = k.install(archive, &into);
    assert_eq!(out.status.code(), Some(2), "{}: {}", archive.display(), stderr(&out));
    assert!(stderr(&out).contains(why), "{}: {:?} should say {why:?}", archive.display(), stderr(&out));
    assert!(!into.exists(), "nothing may be written for a refused bundle");
    let staging: Vec<_> = fs::read_dir(k.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("staging"))
        .collect();
    assert!(staging.is_empty(), "no staging left behind");
}

#[test]
fn tampered_and_hostile_archives_are_refused_and_nothing_is_written() {
    let k = kit();
    let good = k.create("good.tar.gz");
    let d = k.dir.path();

    let t = d.join("tampered.tar.gz");
    repack(&good, &t, |e| e.iter_mut().find(|(n, _)| n == "trust-anchors.json").unwrap().1.extend_from_slice(b" "));
    refused(&k, &t, "does not match the signed manifest");

    let extra = d.join("extra.tar.gz");
    repack(&good, &extra, |e| e.push(("public-keys/attacker.pub".into(), b"-----BEGIN PUBLIC KEY-----".to_vec())));
    refused(&k, &extra, "not in the signed manifest");

    let dup = d.join("duplicate.tar.gz");
    repack(&good, &dup, |e| {
        let first = e[0].clone();
        e.push(first);
    });
    refused(&k, &dup, "appears twice");

    let trav = d.join("traversal.tar.gz");
    repack(&good, &trav, |e| e.push(("../../evil".into(), b"x".to_vec())));
    refused(&k, &trav, "escapes the bundle");

    let abs = d.join("absolute.tar.gz");
    repack(&good, &abs, |e| e.push(("/tmp/evil".into(), b"x".to_vec())));
    refused(&k, &abs, "escapes the bundle");

    // A symlink entry.
    let link = d.join("symlink.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(fs::File::create(&link).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        raw_entry(&mut b, b"trust-anchors.json", tar::EntryType::Symlink, b"", None);
        b.into_inner().unwrap().finish().unwrap();
    }
    refused(&k, &link, "not a regular file");

    // An entry declaring 10 GB.
    let bomb = d.join("bomb.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(fs::File::create(&bomb).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        raw_entry(&mut b, b"trust-anchors.json", tar::EntryType::Regular, &vec![0u8; 1 << 20], Some(10 << 30));
        let _ = b.into_inner().map(|g| g.finish());
    }
    refused(&k, &bomb, "declares 10737418240 bytes");

    // Entries within the per-file cap (16 MiB) that together expand past the total cap
    // (64 MiB; zeros compress about 1000:1, so the archive itself stays small).
    let many = d.join("many.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(fs::File::create(&many).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let zeros = vec![0u8; 15 << 20];
        for i in 0..5 {
            raw_entry(&mut b, format!("public-keys/z{i}.pub").as_bytes(), tar::EntryType::Regular, &zeros, None);
        }
        b.into_inner().unwrap().finish().unwrap();
    }
    refused(&k, &many, "expands past");

    // A truncated gzip.
    let cut = d.join("truncated.tar.gz");
    let bytes = fs::read(&good).unwrap();
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(&k, &cut, "truncated");
}

#[test]
fn create_never_writes_through_a_planted_symlink() {
    let k = kit();
    let d = k.dir.path();
    let victim = d.join("victim");
    fs::write(&victim, b"precious").unwrap();

    // A link where the old fixed temporary name was: the archive must not go through it.
    let out = d.join("offline-kit.tar.gz");
    let planted_tmp = out.with_extension("partial");
    symlink(&victim, &planted_tmp).unwrap();
    k.create("offline-kit.tar.gz");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&planted_tmp).unwrap().file_type().is_symlink(), "the planted link is untouched");
    assert!(fs::symlink_metadata(&out).unwrap().is_file(), "--out is a regular file");
    assert_eq!(leftovers(d, ".partial"), ["offline-kit.tar.partial"], "no temporary file left but the planted link");

    // An existing regular --out is replaced (by a rename: a new file).
    let r = run(&k.config, &create_args(&k, &out));
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let verified = run(&k.config, &["bundle", "verify", s(&out), "--bootstrap-pub", s(&k.bundle_pub)]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));

    // A name near NAME_MAX (255): the temporary name beside it must still fit.
    let long_out = d.join(format!("{}.tar.gz", "o".repeat(243)));
    let r = run(&k.config, &create_args(&k, &long_out));
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(long_out.is_file());

    // A link at --out itself is refused, neither followed nor replaced.
    let linked_out = d.join("linked.tar.gz");
    symlink(&victim, &linked_out).unwrap();
    let r = run(&k.config, &create_args(&k, &linked_out));
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("is a symbolic link: refused"), "{}", stderr(&r));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&linked_out).unwrap().file_type().is_symlink());

    // A dangling link at --out: nothing is created where it points.
    let dangling_target = d.join("not-created");
    let dangling = d.join("dangling.tar.gz");
    symlink(&dangling_target, &dangling).unwrap();
    let r = run(&k.config, &create_args(&k, &dangling));
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(!dangling_target.exists());

    // A directory at --out is refused.
    let dir_out = d.join("a-directory");
    fs::create_dir(&dir_out).unwrap();
    let r = run(&k.config, &create_args(&k, &dir_out));
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("is not a regular file"), "{}", stderr(&r));
    assert_eq!(leftovers(d, ".partial"), ["offline-kit.tar.partial"], "no temporary file left but the planted link");
}

fn create_args<'a>(k: &'a Kit, out: &'a Path) -> Vec<&'a str> {
    vec!["bundle", "create", "--from", s(&k.source), "--key", "sim:bundle-signer", "--alg", "ES256", "--out", s(out)]
}

#[test]
fn install_never_follows_a_symlink_at_the_target() {
    let k = kit();
    let good = k.create("good.tar.gz");
    let d = k.dir.path();

    // A link to an empty directory elsewhere: refused, and nothing lands in that directory.
    let victim_dir = d.join("victim-dir");
    fs::create_dir(&victim_dir).unwrap();
    let into = d.join("linked-into");
    symlink(&victim_dir, &into).unwrap();
    let out = k.install(&good, &into);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a symbolic link: refused"), "{}", stderr(&out));
    assert_eq!(fs::read_dir(&victim_dir).unwrap().count(), 0, "nothing written through the link");
    assert!(fs::symlink_metadata(&into).unwrap().file_type().is_symlink(), "the link is left as it was");

    // A dangling link: nothing is created where it points.
    let nowhere = d.join("nowhere");
    let dangling = d.join("dangling-into");
    symlink(&nowhere, &dangling).unwrap();
    let out = k.install(&good, &dangling);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a symbolic link: refused"), "{}", stderr(&out));
    assert!(!nowhere.exists());

    // A regular file there is refused.
    let file = d.join("a-file");
    fs::write(&file, b"keep").unwrap();
    let out = k.install(&good, &file);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
    assert_eq!(fs::read(&file).unwrap(), b"keep");
    assert!(leftovers(d, "staging").is_empty(), "no staging left behind");

    // An existing empty directory is replaced by the installed one.
    let empty = d.join("empty-into");
    fs::create_dir(&empty).unwrap();
    let out = k.install(&good, &empty);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(empty.join("trust-anchors.json").is_file());
    let mode = fs::metadata(&empty).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "the installed directory is readable by others, writable by its owner only");

    // A name near NAME_MAX (255): the staging name beside it must still fit.
    let long = d.join("i".repeat(250));
    let out = k.install(&good, &long);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(long.join("trust-anchors.json").is_file());
}

#[test]
fn bundle_sources_must_be_regular_files_of_bounded_size() {
    let k = kit();
    let d = k.dir.path();
    let key = fs::read(k.source.join("public-keys/scanner-key-001.pub")).unwrap();
    let anchors = fs::read(k.source.join("trust-anchors.json")).unwrap();
    // A fresh source directory per case, built from the kit's.
    let case = |name: &str| {
        let src = d.join(name);
        fs::create_dir_all(src.join("public-keys")).unwrap();
        fs::write(src.join("public-keys/scanner-key-001.pub"), &key).unwrap();
        fs::write(src.join("trust-anchors.json"), &anchors).unwrap();
        src
    };
    let mkfifo = |p: &Path| {
        let st = Command::new("mkfifo").arg(p).status().expect("mkfifo (coreutils)");
        assert!(st.success());
    };
    let refused = |src: &Path, why: &str| {
        let out = d.join(format!("{}.tar.gz", src.file_name().unwrap().to_string_lossy()));
        let r = run_bounded(
            &k.config,
            &["bundle", "create", "--from", s(src), "--key", "sim:bundle-signer", "--alg", "ES256", "--out", s(&out)],
        );
        assert_eq!(r.status.code(), Some(2), "{}: {}", src.display(), stderr(&r));
        assert!(stderr(&r).contains(why), "{}: {:?} should say {why:?}", src.display(), stderr(&r));
        assert!(!out.exists(), "no bundle written for a refused source");
    };

    let src = case("fifo-key");
    mkfifo(&src.join("public-keys/evil.pub"));
    refused(&src, "public-keys/evil.pub is a fifo, not a regular file: refused");

    let src = case("fifo-other");
    mkfifo(&src.join("public-keys/README"));
    refused(&src, "public-keys/README is a fifo");

    let src = case("fifo-anchors");
    fs::remove_file(src.join("trust-anchors.json")).unwrap();
    mkfifo(&src.join("trust-anchors.json"));
    refused(&src, "trust-anchors.json is a fifo, not a regular file");

    let src = case("symlink-key");
    symlink(k.source.join("public-keys/scanner-key-001.pub"), src.join("public-keys/linked.pub")).unwrap();
    refused(&src, "public-keys/linked.pub is a symbolic link");

    let src = case("device-key");
    symlink("/dev/zero", src.join("public-keys/zero.pub")).unwrap();
    refused(&src, "public-keys/zero.pub is a symbolic link");

    let src = case("symlink-anchors");
    fs::remove_file(src.join("trust-anchors.json")).unwrap();
    symlink(k.source.join("trust-anchors.json"), src.join("trust-anchors.json")).unwrap();
    refused(&src, "trust-anchors.json is a symbolic link: refused");

    let src = case("directory-key");
    fs::create_dir(src.join("public-keys/nested.pub")).unwrap();
    refused(&src, "public-keys/nested.pub is a directory, not a regular file");

    // Sizes are checked before reading: a sparse 1 GiB trust-anchors.json is never read.
    let src = case("huge-anchors");
    fs::OpenOptions::new().write(true).open(src.join("trust-anchors.json")).unwrap().set_len(HOSTILE_BYTES).unwrap();
    refused(&src, "trust-anchors.json is 1073741824 bytes, over the limit of 16777216");

    let src = case("huge-key");
    fs::write(src.join("public-keys/huge.pub"), vec![b'A'; (64 << 10) + 1]).unwrap();
    refused(&src, "public-keys/huge.pub is 65537 bytes, over the limit of 65536");

    // More key files than a bundle may hold (the archive's entry cap).
    let src = case("many-keys");
    for i in 0..4100 {
        fs::write(src.join(format!("public-keys/k{i:04}.pub")), &key).unwrap();
    }
    refused(&src, "the bundle would hold more than 4096 tar entries");

    // The archive given to verify must be a regular file too (a fifo would block).
    let fifo = d.join("fifo.tar.gz");
    mkfifo(&fifo);
    let r = run_bounded(&k.config, &["bundle", "verify", s(&fifo), "--bootstrap-pub", s(&k.bundle_pub)]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("is a fifo, not a regular file"), "{}", stderr(&r));
}

#[test]
fn a_bundle_at_the_per_file_limit_still_creates_verifies_and_installs() {
    let k = kit();
    // trust-anchors.json padded with whitespace to just under 16 MiB: hashed by a provider
    // (whose memory must hold it), signed, read back within every limit.
    let path = k.source.join("trust-anchors.json");
    let mut anchors = fs::read(&path).unwrap();
    anchors.resize((16 << 20) - 4096, b' ');
    fs::write(&path, &anchors).unwrap();
    let archive = k.create("at-the-limit.tar.gz");
    let into = k.dir.path().join("installed");
    let out = run_bounded(
        &k.config,
        &["bundle", "install", s(&archive), "--bootstrap-pub", s(&k.bundle_pub), "--into", s(&into)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(into.join("trust-anchors.json")).unwrap(), anchors);
    // The installation is a line of the config's audit log.
    let audit = fs::read_to_string(k.config.parent().unwrap().join("audit.jsonl")).unwrap();
    let line = audit.lines().rev().find(|l| l.contains("\"event\":\"bundle-install\"")).expect("a bundle-install line");
    assert!(line.contains("at-the-limit.tar.gz") && line.contains(": ok: "), "{line}");
}

#[test]
fn create_refuses_what_verify_install_or_use_would_refuse() {
    let k = kit();
    let out = k.dir.path().join("kit.tar.gz");
    let create = |key: &str, alg: &str| {
        run(&k.config, &["bundle", "create", "--from", s(&k.source), "--key", key, "--alg", alg, "--out", s(&out)])
    };
    // An EdDSA bundle key: the trust root verifies ES256 and ES384 only, so `bundle verify` would
    // refuse what was written. Refused before the key is used, nothing written.
    let ed = k.dir.path().join("ed.pem");
    let made = run(&k.config, &["keygen", "--alg", "EdDSA", "--out", s(&ed)]);
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    let r = create(s(&ed), "EdDSA");
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("checks ES256 or ES384 only"), "{}", stderr(&r));
    assert!(!out.exists(), "nothing written");
    // An uppercase fingerprint passed create, verify and install and failed only at use.
    let anchors = k.source.join("trust-anchors.json");
    let text = fs::read_to_string(&anchors).unwrap();
    let fp = serde_json::from_str::<serde_json::Value>(&text).unwrap()["trustAnchors"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let upper = format!("sha256:{}", fp.trim_start_matches("sha256:").to_ascii_uppercase());
    fs::write(&anchors, text.replace(&fp, &upper)).unwrap();
    let r = create("sim:bundle-signer", "ES256");
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("64 lowercase hex digits"), "{}", stderr(&r));
    assert!(!out.exists(), "nothing written");
    // So does an unknown algorithm, or a window that ends before it starts.
    let edits: [(&str, &str, &str); 2] = [
        ("algorithmId", "HS256", "algorithmId \"HS256\""),
        ("notAfter", "2025-01-01T00:00:00Z", "notAfter is before notBefore"),
    ];
    for (field, value, needle) in edits {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["trustAnchors"][0][field] = value.into();
        fs::write(&anchors, v.to_string()).unwrap();
        let r = create("sim:bundle-signer", "ES256");
        assert_eq!(r.status.code(), Some(2), "{needle}: {}", stderr(&r));
        assert!(stderr(&r).contains(needle), "{needle}: {}", stderr(&r));
    }
    fs::write(&anchors, text).unwrap();
    let r = create("sim:bundle-signer", "ES256");
    assert_eq!(r.status.code(), Some(0), "the good source still makes a kit: {}", stderr(&r));
}
