//! Trust anchors: the rules each anchor must pass (fingerprint, algorithm, window, purpose,
//! expiry), and the signing-key resolver that checks a profile's key against its anchor.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, OFFLINE, P, run, stderr, stdout};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes an installed-bundle directory: trust-anchors.json + public-keys/.
pub(crate) fn anchors_dir(dir: &Path, anchors: &[(&str, &str, &Path, &str, &str, &str)], expires: &str) -> PathBuf {
    let root = dir.join("anchors");
    fs::create_dir_all(root.join("public-keys")).unwrap();
    let mut list = Vec::new();
    for (key_id, alg, public, purpose, nb, na) in anchors {
        fs::copy(public, root.join(format!("public-keys/{key_id}.pub"))).unwrap();
        let fp = stdout(
            &Command::new(common::binary())
                .args(["--config", s(&dir.join("cryptohost.toml")), "trust", "fingerprint", s(public)])
                .output()
                .unwrap(),
        )
        .trim()
        .to_string();
        assert!(fp.starts_with("sha256:") && fp.len() == 71, "{fp}");
        list.push(serde_json::json!({"keyId": key_id, "algorithmId": alg, "fingerprint": fp, "purpose": purpose, "notBefore": nb, "notAfter": na}));
    }
    let file = serde_json::json!({"version": "1.0", "createdAt": "2026-01-01T00:00:00Z", "expiresAt": expires, "trustAnchors": list});
    fs::write(root.join("trust-anchors.json"), serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    root
}

#[test]
fn trust_anchors_rules_each_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let config = common::write_config(dir.path(), &common::components_dir(), &[OFFLINE, sim], "");
    let mut text = fs::read_to_string(&config).unwrap();
    text = text.replace(
        "name = \"simulation\"\n",
        "name = \"simulation\"\nkey_prefix = \"sim\"\nsettings = { seed = \"anchors\" }\n",
    );
    text += "\n[profiles.scanner]\nkey = \"sim:scanner\"\nalgorithm = \"ES256\"\nkey_id = \"scanner-key-001\"\n";
    fs::write(&config, text).unwrap();
    let public = dir.path().join("scanner.pub");
    let out = run(&config, &["keys", "public", "sim:scanner", "--alg", "ES256"]);
    fs::write(&public, &out.stdout).unwrap();
    let sbom = dir.path().join("sbom.json");
    fs::write(&sbom, b"{\"bomFormat\":\"CycloneDX\"}").unwrap();
    let env = dir.path().join("sbom.dsse.json");
    let out = run(
        &config,
        &[
            "dsse",
            "sign",
            "--key-id",
            "scanner-key-001",
            "--payload-type",
            "application/vnd.cyclonedx+json",
            "--out",
            s(&env),
            s(&sbom),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written: serde_json::Value = serde_json::from_slice(&fs::read(&env).unwrap()).unwrap();
    assert_eq!(written["signatures"][0]["keyid"], "scanner-key-001", "the keyId is written into the signature");

    let window = ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    let good = anchors_dir(
        dir.path(),
        &[("scanner-key-001", "ES256", &public, "container-scanning", window.0, window.1)],
        "2027-06-01T00:00:00Z",
    );
    let verify = |anchors: &Path, extra: &[&str]| {
        let mut args = vec!["dsse", "verify", "--anchors", s(anchors)];
        if !extra.contains(&"--at") {
            args.extend(["--at", "2026-06-01T00:00:00Z"]);
        }
        args.extend_from_slice(extra);
        args.push(s(&env));
        run(&config, &args)
    };
    let ok = verify(&good, &["--purpose", "container-scanning"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let cases: [(&[&str], i32, &str); 4] = [
        (&["--purpose", "attestation"], 1, "purpose \"container-scanning\" is not \"attestation\""),
        (&["--at", "2025-06-01T00:00:00Z"], 1, "not valid before"),
        (&["--at", "2027-02-01T00:00:00Z"], 1, "expired at 2027-01-01T00:00:00Z (notAfter)"),
        (&["--at", "2027-07-01T00:00:00Z"], 2, "the trust anchors expired"),
    ];
    for (extra, code, why) in cases {
        let out = verify(&good, extra);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{extra:?}: {:?} should say {why:?}", stderr(&out));
    }
    // A key that is not an anchor's (fingerprint not trusted) and an algorithm mismatch.
    let other = dir.path().join("other.pub");
    fs::write(&other, run(&config, &["keys", "public", "sim:someone-else", "--alg", "ES256"]).stdout).unwrap();
    let sub = dir.path().join("x");
    fs::create_dir(&sub).unwrap();
    fs::copy(&config, sub.join("cryptohost.toml")).unwrap();
    let wrong = anchors_dir(
        &sub,
        &[("scanner-key-001", "ES256", &other, "container-scanning", window.0, window.1)],
        "2027-06-01T00:00:00Z",
    );
    fs::copy(&public, wrong.join("public-keys/stray.pub")).unwrap();
    let out = verify(&wrong, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sub2 = dir.path().join("y");
    fs::create_dir(&sub2).unwrap();
    fs::copy(&config, sub2.join("cryptohost.toml")).unwrap();
    let mismatch = anchors_dir(
        &sub2,
        &[("scanner-key-001", "ES384", &public, "container-scanning", window.0, window.1)],
        "2027-06-01T00:00:00Z",
    );
    let out = verify(&mismatch, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ES384 needs an EC P-384 key"), "{}", stderr(&out));
    // A malformed fingerprint is bad input.
    let text = fs::read_to_string(good.join("trust-anchors.json")).unwrap().replace("sha256:", "sha1:");
    fs::write(good.join("trust-anchors.json"), text).unwrap();
    let out = verify(&good, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not \"sha256:\" + 64 lowercase hex"), "{}", stderr(&out));
}

#[test]
fn a_profile_whose_key_id_is_anchored_signs_only_with_the_anchored_key() {
    let dir = tempfile::tempdir().unwrap();
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let config = common::write_config(dir.path(), &common::components_dir(), &[OFFLINE, sim], "");
    let base = fs::read_to_string(&config).unwrap().replace(
        "name = \"simulation\"\n",
        "name = \"simulation\"\nkey_prefix = \"sim\"\nsettings = { seed = \"resolver\" }\n",
    ) + "\n[profiles.release]\nkey = \"sim:release\"\nalgorithm = \"ES256\"\nkey_id = \"release-key-001\"\n";
    fs::write(&config, &base).unwrap();
    let public = |name: &str| {
        let path = dir.path().join(format!("{name}.pub"));
        fs::write(&path, run(&config, &["keys", "public", &format!("sim:{name}"), "--alg", "ES256"]).stdout).unwrap();
        let fp = stdout(&run(&config, &["trust", "fingerprint", s(&path)])).trim().to_string();
        (path, fp)
    };
    let (release_pub, release_fp) = public("release");
    let (other_pub, other_fp) = public("other");
    // Anchors: release-key-001 under the fingerprints given, each with its own window.
    let write_anchors = |entries: &[(&Path, &str, &str)]| {
        let root = dir.path().join("anchors");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("public-keys")).unwrap();
        let mut list = Vec::new();
        for (i, (public, fp, not_after)) in entries.iter().enumerate() {
            fs::copy(public, root.join(format!("public-keys/k{i}.pub"))).unwrap();
            list.push(serde_json::json!({"keyId": "release-key-001", "algorithmId": "ES256", "fingerprint": fp,
                "purpose": "release-signing", "notBefore": "2026-01-01T00:00:00Z", "notAfter": not_after}));
        }
        let file = serde_json::json!({"version": "1.0", "createdAt": "2026-01-01T00:00:00Z",
            "expiresAt": "2099-01-01T00:00:00Z", "trustAnchors": list});
        fs::write(root.join("trust-anchors.json"), serde_json::to_vec_pretty(&file).unwrap()).unwrap();
        fs::write(&config, format!("{base}\n[trust]\nanchors = {:?}\n", root.display().to_string())).unwrap();
    };
    let doc = dir.path().join("doc.json");
    fs::write(&doc, b"{}").unwrap();
    let sign =
        || run(&config, &["dsse", "sign", "--profile", "release", "--payload-type", "application/json", s(&doc)]);
    // Anchored to another key: refused, naming the profile, the key id and both fingerprints.
    write_anchors(&[(&other_pub, &other_fp, "2099-01-01T00:00:00Z")]);
    let out = sign();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("release: key id release-key-001 is anchored to")
            && err.contains(&other_fp)
            && err.contains(&release_fp),
        "{err}"
    );
    // A key and its successor under one key id (a rotation): the listed one signs.
    write_anchors(&[
        (&other_pub, &other_fp, "2099-01-01T00:00:00Z"),
        (&release_pub, &release_fp, "2099-01-01T00:00:00Z"),
    ]);
    let out = sign();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The right key, but its anchor's window has closed: refused, saying so.
    write_anchors(&[(&release_pub, &release_fp, "2026-02-01T00:00:00Z")]);
    let out = sign();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no anchor valid now") && stderr(&out).contains("expired"), "{}", stderr(&out));
}
