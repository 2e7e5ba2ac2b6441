//! Offline trust bundles: create -> verify -> install -> use the anchors; tampering and
//! hostile archives are refused with nothing written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::{self, OFFLINE, P, run, stderr};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Kit {
    dir: tempfile::TempDir,
    config: PathBuf,
    source: PathBuf,
    bundle_pub: PathBuf,
}

/// A config with a seeded simulation (the bundle signer) and a bundle source directory with
/// one anchor.
fn kit() -> Kit {
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
    Kit { dir, config, source, bundle_pub }
}

impl Kit {
    fn create(&self, name: &str) -> PathBuf {
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

    fn install(&self, archive: &Path, into: &Path) -> std::process::Output {
        run(&self.config, &["bundle", "install", s(archive), "--bootstrap-pub", s(&self.bundle_pub), "--into", s(into)])
    }
}

#[test]
fn create_verify_install_and_use_the_anchors() {
    let k = kit();
    let archive = k.create("offline-kit.tar.gz");
    let by_key = run(&k.config, &["bundle", "verify", s(&archive), "--bootstrap-pub", s(&k.bundle_pub)]);
    assert_eq!(by_key.status.code(), Some(0), "{}", stderr(&by_key));
    // The same bundle twice gives the same files (deterministic archive apart from createdAt).
    let fp = String::from_utf8(run(&k.config, &["trust", "fingerprint", s(&k.bundle_pub)]).stdout).unwrap();
    // By fingerprint only: the key must then be in the bundle; it is not, so this is refused.
    let by_fp = run(&k.config, &["bundle", "verify", s(&archive), "--bootstrap-fingerprint", fp.trim()]);
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
    let verified =
        run(&k.config, &["dsse", "verify", "--anchors", s(&into), "--purpose", "container-scanning", s(&env)]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    // Installing over a non-empty directory is refused.
    let again = k.install(&archive, &into);
    assert_eq!(again.status.code(), Some(2));
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
    refused(&k, &t, "does not match the manifest");

    let extra = d.join("extra.tar.gz");
    repack(&good, &extra, |e| e.push(("public-keys/attacker.pub".into(), b"-----BEGIN PUBLIC KEY-----".to_vec())));
    refused(&k, &extra, "not in the manifest");

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

    // Entries within the per-file cap that together expand past the total cap (zeros
    // compress about 1000:1, so the archive itself stays small).
    let many = d.join("many.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(fs::File::create(&many).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let zeros = vec![0u8; 60 << 20];
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
