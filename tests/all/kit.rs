//! Audited provider modules end to end: a publisher signs its components, a kit carries them
//! with the trust anchors, `bundle install` installs both (upgrades in place, refuses
//! downgrades and expired kits), and a host configured with nothing but the bootstrap
//! fingerprint and the kit line serves from them. Every use re-checks the installed kit.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{self, OFFLINE, P, run, stderr, stdout};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Publisher {
    dir: tempfile::TempDir,
    /// The vendor's config: the components it publishes (with roles) and its signing keys.
    config: PathBuf,
    publisher_pub: PathBuf,
    bundle_pub: PathBuf,
}

fn publisher() -> Publisher {
    let dir = tempfile::tempdir().unwrap();
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let config = common::write_config(dir.path(), &common::components_dir(), &[OFFLINE, sim], "");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace(
            "name = \"simulation\"\n",
            "name = \"simulation\"\nkey_prefix = \"sim\"\nrole = \"keystore\"\nsettings = { seed = \"publisher\" }\n",
        )
        .replace("name = \"offline-verification\"\n", "name = \"offline-verification\"\nrole = \"signer\"\n");
    fs::write(&config, text).unwrap();
    let key = |name: &str| {
        let path = dir.path().join(format!("{name}.pub"));
        fs::write(&path, run(&config, &["keys", "public", &format!("sim:{name}"), "--alg", "ES256"]).stdout).unwrap();
        path
    };
    let publisher_pub = key("publisher");
    let bundle_pub = key("bundle-signer");
    Publisher { dir, config, publisher_pub, bundle_pub }
}

fn fingerprint(config: &Path, public: &Path) -> String {
    stdout(&run(config, &["trust", "fingerprint", s(public)])).trim().to_string()
}

impl Publisher {
    /// A kit source: anchors (the publisher as provider-module, within `window`), both public
    /// keys, the signed components, and optionally a revocation list; then the archive.
    fn kit(&self, name: &str, window: (&str, &str), expires: &str, revoked: Option<&str>) -> PathBuf {
        let src = self.dir.path().join(format!("{name}-src"));
        fs::create_dir_all(src.join("public-keys")).unwrap();
        fs::copy(&self.publisher_pub, src.join("public-keys/publisher-001.pub")).unwrap();
        fs::copy(&self.bundle_pub, src.join("public-keys/bundle-signer.pub")).unwrap();
        let anchors = serde_json::json!({
            "version": "1.0", "createdAt": "2026-01-01T00:00:00Z", "expiresAt": expires,
            "trustAnchors": [
                {"keyId": "publisher-001", "algorithmId": "ES256", "fingerprint": fingerprint(&self.config, &self.publisher_pub),
                 "purpose": "provider-module", "notBefore": window.0, "notAfter": window.1},
                {"keyId": "bundle-signer", "algorithmId": "ES256", "fingerprint": fingerprint(&self.config, &self.bundle_pub),
                 "purpose": "kit-signing", "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2099-01-01T00:00:00Z"}],
            "bundleSignature": {"keyId": "bundle-signer", "algorithmId": "ES256"}
        });
        fs::write(src.join("trust-anchors.json"), serde_json::to_vec_pretty(&anchors).unwrap()).unwrap();
        let out = run(
            &self.config,
            &[
                "components",
                "sign",
                "--key",
                "sim:publisher",
                "--alg",
                "ES256",
                "--key-id",
                "publisher-001",
                "--out",
                s(&src.join("crypto-plugins")),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        if let Some(digest) = revoked {
            let list = serde_json::json!({"revoked": [{"sha256": digest, "reason": "CVE-2026-0001 in the test"}]});
            fs::write(src.join("revoked-components.json"), list.to_string()).unwrap();
        }
        let archive = self.dir.path().join(format!("{name}.tar.gz"));
        self.bundle(&src, &archive);
        archive
    }

    /// `bundle create` of `src` into `archive`, signed by the bundle key.
    fn bundle(&self, src: &Path, archive: &Path) {
        let args = ["bundle", "create", "--from", s(src), "--key", "sim:bundle-signer", "--alg", "ES256"];
        let out = run(&self.config, &[&args[..], &["--out", s(archive)]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    /// As [`Publisher::kit`], with the signed component manifest rewritten by `edit` and signed
    /// again with the publisher's key: what a compromised or careless publisher can ship.
    fn kit_edited(&self, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
        let archive = self.kit(name, WINDOW, "2099-01-01T00:00:00Z", None);
        let src = self.dir.path().join(format!("{name}-src"));
        let manifest = src.join("crypto-plugins/component-manifest.dsse.json");
        let envelope: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
        let payload = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(envelope["payload"].as_str().unwrap()).unwrap()
        };
        let mut listed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        edit(&mut listed);
        let payload_file = self.dir.path().join(format!("{name}-manifest.json"));
        fs::write(&payload_file, serde_json::to_vec(&listed).unwrap()).unwrap();
        let payload_type = envelope["payloadType"].as_str().unwrap();
        let args = ["dsse", "sign", "--key", "sim:publisher", "--alg", "ES256", "--payload-type", payload_type];
        let out = run(&self.config, &[&args[..], &["--out", s(&manifest), s(&payload_file)]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        fs::remove_file(&archive).unwrap();
        self.bundle(&src, &archive);
        archive
    }

    fn bootstrap(&self) -> String {
        fingerprint(&self.config, &self.bundle_pub)
    }
}

/// A site: a config with nothing but the bootstrap fingerprint and the kit line.
fn site(p: &Publisher) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    let config = common::write_config(
        dir.path(),
        &dir.path().join("no-components"),
        &[],
        &format!("[trust]\nbootstrap_fingerprint = {:?}\n[kit]\ndir = \"kit\"\n", p.bootstrap()),
    );
    (dir, config, kit)
}

fn install(config: &Path, p: &Publisher, archive: &Path, kit: &Path, extra: &[&str]) -> std::process::Output {
    let bootstrap = p.bootstrap();
    let mut args = vec!["bundle", "install", s(archive), "--bootstrap-fingerprint", &bootstrap, "--into", s(kit)];
    args.extend_from_slice(extra);
    run(config, &args)
}

const WINDOW: (&str, &str) = ("2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z");

#[test]
fn a_kit_carrying_components_is_installed_and_served_with_only_the_kit_line() {
    let p = publisher();
    let archive = p.kit("v1", WINDOW, "2099-01-01T00:00:00Z", None);
    let (dir, config, kit) = site(&p);
    let out = install(&config, &p, &archive, &kit, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(kit.join("crypto-plugins/simulation.wasm").is_file() && kit.join("trust-anchors.json").is_file());

    // The providers come from the kit, with their digest, world and publisher.
    let out = run(&config, &["providers", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let sim = list.iter().find(|d| d["name"] == "simulation").expect("simulation from the kit");
    assert_eq!(sim["origin"]["publisher"], "publisher-001");
    assert_eq!(sim["origin"]["sha256"], common::digest_of("simulation.wasm"));
    assert_eq!(sim["world"], "keystore");
    assert!(list.iter().any(|d| d["name"] == "offline-verification" && d["world"] == "signer"));
    // `components inspect` on a kit's component names the publisher that lists it.
    let out = run(&config, &["components", "inspect", s(&kit.join("crypto-plugins/simulation.wasm"))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("publisher  publisher-001"), "{}", stdout(&out));

    // A key made and used by the kit's offline-verification component, verified by it; the
    // audit line names the publisher.
    let msg = dir.path().join("msg");
    fs::write(&msg, b"served from a kit").unwrap();
    let key = dir.path().join("site.pem");
    let public = dir.path().join("site.pub");
    let out = run(&config, &["keygen", "--alg", "ES256", "--out", s(&key), "--pub", s(&public)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sig = dir.path().join("msg.sig");
    let out = run(&config, &["sign", "--alg", "ES256", "--key", s(&key), "--out", s(&sig), s(&msg)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&config, &["verify", "--alg", "ES256", "--pub", s(&public), "--sig", s(&sig), s(&msg)]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim().to_string()),
        (Some(0), "valid".to_string()),
        "{}",
        stderr(&out)
    );
    let audit = fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(line["provider_origin"]["publisher"], "publisher-001", "{line}");
    assert_eq!(line["provider_origin"]["sha256"], common::digest_of("offline-verification.wasm"), "{line}");
}

#[test]
fn an_edited_added_or_removed_file_in_the_installed_kit_is_refused_by_name() {
    let p = publisher();
    let archive = p.kit("v1", WINDOW, "2099-01-01T00:00:00Z", None);
    let (_dir, config, kit) = site(&p);
    let reinstall = || {
        let _ = fs::remove_dir_all(&kit);
        let out = install(&config, &p, &archive, &kit, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    reinstall();
    let refused = |what: &str, needle: &str| {
        let out = run(&config, &["providers"]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stdout(&out));
        assert!(stderr(&out).contains(needle), "{what}: {}", stderr(&out));
    };
    // Edited anchors (a key's window widened, say).
    let text = fs::read_to_string(kit.join("trust-anchors.json")).unwrap().replace("2099-01-01", "2199-01-01");
    fs::write(kit.join("trust-anchors.json"), text).unwrap();
    refused("edited", "trust-anchors.json does not match the signed manifest");
    reinstall();
    // One flipped byte in a component: refused before it is compiled.
    let wasm = kit.join("crypto-plugins/offline-verification.wasm");
    let mut bytes = fs::read(&wasm).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&wasm, bytes).unwrap();
    refused("flipped", "crypto-plugins/offline-verification.wasm does not match the signed manifest");
    reinstall();
    // An added file, and a removed one.
    fs::write(kit.join("public-keys/extra.pub"), fs::read(&p.publisher_pub).unwrap()).unwrap();
    refused("added", "public-keys/extra.pub is not in the signed manifest");
    reinstall();
    fs::remove_file(kit.join("crypto-plugins/simulation.wasm")).unwrap();
    refused("removed", "crypto-plugins/simulation.wasm is listed in the signed manifest but missing");
    // A symlink in the kit is refused as such.
    reinstall();
    std::os::unix::fs::symlink("/etc/passwd", kit.join("public-keys/link.pub")).unwrap();
    refused("link", "is a symbolic link");
}

#[test]
fn upgrades_swap_in_place_downgrades_and_expired_kits_are_refused() {
    let p = publisher();
    let v1 = p.kit("v1", WINDOW, "2099-01-01T00:00:00Z", None);
    // createdAt has seconds precision: the next kit must be a second newer.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v2 = p.kit("v2", WINDOW, "2098-01-01T00:00:00Z", None);
    let (_dir, config, kit) = site(&p);
    assert_eq!(install(&config, &p, &v1, &kit, &[]).status.code(), Some(0));
    let upgraded = install(&config, &p, &v2, &kit, &[]);
    assert_eq!(upgraded.status.code(), Some(0), "{}", stderr(&upgraded));
    // Anchors and components changed together: v2's anchors file is installed, no staging left.
    assert!(fs::read_to_string(kit.join("trust-anchors.json")).unwrap().contains("2098-01-01"));
    let names: Vec<String> = fs::read_dir(kit.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("staging")), "{names:?}");
    assert_eq!(run(&config, &["providers"]).status.code(), Some(0));
    // Back to v1: refused, unless asked for.
    let down = install(&config, &p, &v1, &kit, &[]);
    assert_eq!(down.status.code(), Some(2));
    assert!(stderr(&down).contains("is older than the newest installed"), "{}", stderr(&down));
    assert!(
        fs::read_to_string(kit.join("trust-anchors.json")).unwrap().contains("2098-01-01"),
        "v2 is still installed"
    );
    // A manifest planted in the installed kit, claiming an old createdAt, does not talk the
    // downgrade through: the installed version counts only as the bootstrap key signed it.
    // (Without the kit state, which records the newest kit installed and alone refuses this.)
    fs::remove_file(kit.with_file_name("kit.state.json")).unwrap();
    let planted = kit.join("metadata/bundle-manifest.json");
    let text = fs::read_to_string(&planted).unwrap();
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    forged["createdAt"] = "2000-01-01T00:00:00Z".into();
    fs::write(&planted, serde_json::to_vec_pretty(&forged).unwrap()).unwrap();
    let down = install(&config, &p, &v1, &kit, &[]);
    assert_eq!(down.status.code(), Some(2), "a planted manifest let a downgrade in");
    assert!(stderr(&down).contains("the bootstrap key did not sign"), "{}", stderr(&down));
    fs::write(&planted, text).unwrap();
    let forced = install(&config, &p, &v1, &kit, &["--allow-downgrade"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    // An expired kit is refused.
    let old = p.kit("expired", WINDOW, "2026-02-01T00:00:00Z", None);
    let expired = install(&config, &p, &old, &kit, &["--allow-downgrade"]);
    assert_eq!(expired.status.code(), Some(2));
    assert!(stderr(&expired).contains("expired"), "{}", stderr(&expired));
}

#[test]
fn a_rolled_back_kit_is_refused_and_revocations_outlive_the_kit_that_carried_them() {
    let p = publisher();
    let sim = common::digest_of("simulation.wasm");
    let v1 = p.kit("v1", WINDOW, "2099-01-01T00:00:00Z", None);
    let (dir, config, kit) = site(&p);
    let state = dir.path().join("kit.state.json");
    assert_eq!(install(&config, &p, &v1, &kit, &[]).status.code(), Some(0));
    // The same kit installed elsewhere: what an attacker keeps to roll back to.
    let saved = dir.path().join("saved-v1");
    assert_eq!(install(&config, &p, &v1, &saved, &[]).status.code(), Some(0));
    let recorded: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    assert!(recorded["revoked"].as_array().unwrap().is_empty(), "{recorded}");

    // v2 no longer admits the simulation component and revokes its digest.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v2 = p.kit_edited("v2", |listed| {
        listed["components"].as_array_mut().unwrap().retain(|c| c["provider"]["name"] != "simulation");
    });
    let src = p.dir.path().join("v2-src");
    let list = serde_json::json!({"revoked": [{"sha256": sim, "reason": "CVE-2026-0001 in the test"}]});
    fs::write(src.join("revoked-components.json"), list.to_string()).unwrap();
    fs::remove_file(&v2).unwrap();
    p.bundle(&src, &v2);
    let out = install(&config, &p, &v2, &kit, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recorded: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    assert_eq!(recorded["revoked"][0]["sha256"], sim.as_str(), "{recorded}");
    assert_eq!(run(&config, &["providers"]).status.code(), Some(0));
    // A config pinning the revoked digest is refused.
    let elsewhere = dir.path().join("pinned");
    fs::create_dir(&elsewhere).unwrap();
    let pinned = common::write_config(
        &elsewhere,
        &common::components_dir(),
        &[P { name: "pinned-sim", file: "simulation.wasm", priority: 5 }],
        &format!("[trust]\nbootstrap_fingerprint = {:?}\n[kit]\ndir = {:?}\n", p.bootstrap(), kit),
    );
    let out = run(&pinned, &["providers"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("refused even though the config pins it"), "{}", stderr(&out));

    // The kit directory swapped for the older, validly signed v1: refused on every load, by the
    // state kept outside the kit.
    let newer = dir.path().join("newer-v2");
    fs::rename(&kit, &newer).unwrap();
    fs::rename(&saved, &kit).unwrap();
    let out = run(&config, &["providers"]);
    assert_eq!(out.status.code(), Some(2), "a rolled-back kit loaded");
    assert!(stderr(&out).contains("a rollback, refused"), "{}", stderr(&out));
    // Without its state file a kit is not loaded at all.
    let kept = fs::read(&state).unwrap();
    fs::remove_file(&state).unwrap();
    let out = run(&config, &["providers"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("there is no kit state"), "{}", stderr(&out));
    fs::write(&state, kept).unwrap();
    fs::remove_dir_all(&kit).unwrap();
    fs::rename(&newer, &kit).unwrap();
    let out = run(&config, &["providers"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Even a downgrade the operator asks for keeps the revocation: v1 carries the revoked
    // component, so the staged kit would not load, and nothing is installed.
    let out = install(&config, &p, &v1, &kit, &["--allow-downgrade"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("would not load") && stderr(&out).contains("CVE-2026-0001"), "{}", stderr(&out));
    // So does a newer kit that no longer lists it: v3 carries the component again, unrevoked.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v3 = p.kit("v3", WINDOW, "2099-01-01T00:00:00Z", None);
    let out = install(&config, &p, &v3, &kit, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("simulation.wasm") && stderr(&out).contains("is revoked"), "{}", stderr(&out));
    let out = run(&config, &["providers"]);
    assert_eq!(out.status.code(), Some(0), "v2 is still installed: {}", stderr(&out));
}

#[test]
fn install_refuses_a_kit_whose_publisher_is_unanchored_or_lapsed() {
    let p = publisher();
    let (_dir, config, kit) = site(&p);
    // A publisher whose anchor window has closed: the staged kit would not load.
    let lapsed = p.kit("lapsed", ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"), "2099-01-01T00:00:00Z", None);
    let out = install(&config, &p, &lapsed, &kit, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("would not load"), "{}", stderr(&out));
    assert!(stderr(&out).contains("provider-module") && stderr(&out).contains("expired"), "{}", stderr(&out));
    assert!(!kit.exists(), "nothing is installed");

    // A component manifest signed by a key no provider-module anchor lists.
    let _v = p.kit("unanchored", WINDOW, "2099-01-01T00:00:00Z", None);
    let src = p.dir.path().join("unanchored-src");
    let resigned = p.dir.path().join("resigned");
    let out = run(
        &p.config,
        &[
            "components",
            "sign",
            "--key",
            "sim:stranger",
            "--alg",
            "ES256",
            "--key-id",
            "publisher-001",
            "--out",
            s(&resigned),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs::copy(resigned.join("component-manifest.dsse.json"), src.join("crypto-plugins/component-manifest.dsse.json"))
        .unwrap();
    let archive = p.dir.path().join("unanchored2.tar.gz");
    p.bundle(&src, &archive);
    let out = install(&config, &p, &archive, &kit, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not signed by a provider-module anchor"), "{}", stderr(&out));
    assert!(!kit.exists(), "nothing is installed");
}

/// The provider entry of `name` in a component manifest.
fn entry<'a>(listed: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    let components = listed["components"].as_array_mut().unwrap();
    let c = components.iter_mut().find(|c| c["provider"]["name"] == name).unwrap();
    &mut c["provider"]
}

#[test]
fn a_kit_cannot_take_a_reserved_or_held_key_namespace_nor_outrank_on_its_own_word() {
    let p = publisher();
    let refused = |archive: &Path, extra: &str, needle: &str| {
        let (_dir, config, kit) = site(&p);
        fs::write(&config, fs::read_to_string(&config).unwrap() + extra).unwrap();
        let out = install(&config, &p, archive, &kit, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = run(&config, &["providers"]);
        assert_eq!(out.status.code(), Some(2), "{needle}: loaded anyway: {}", stdout(&out));
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    };
    // The HSM's namespace (every pkcs11: reference would reach the sandbox), and file:.
    for reserved in ["pkcs11", "file"] {
        let archive =
            p.kit_edited(&format!("claims-{reserved}"), |m| entry(m, "simulation")["keyPrefix"] = reserved.into());
        refused(&archive, "", &format!("claims the key prefix \"{reserved}\""));
    }
    // A namespace a configured provider holds: one provider per prefix, never the first silently.
    let archive = p.kit_edited("claims-sim", |_| {});
    let configured = format!(
        "[[provider]]\nname = \"local-sim\"\ncomponent = \"simulation.wasm\"\nsha256 = {:?}\npriority = 10\nkey_prefix = \"sim\"\n",
        common::digest_of("simulation.wasm")
    );
    refused(&archive, &configured, "both claim the key prefix \"sim\"");
    // A priority above the kit range, unless the operator grants it.
    let archive = p.kit_edited("outranks", |m| entry(m, "offline-verification")["priority"] = 100_000.into());
    refused(&archive, "", "claims priority 100000");
    let (_dir, config, kit) = site(&p);
    fs::write(&config, fs::read_to_string(&config).unwrap() + "priority = { offline-verification = 100000 }\n")
        .unwrap();
    assert_eq!(install(&config, &p, &archive, &kit, &[]).status.code(), Some(0));
    let out = run(&config, &["providers", "--json"]);
    assert_eq!(out.status.code(), Some(0), "the operator's override is the operator's: {}", stderr(&out));
}
