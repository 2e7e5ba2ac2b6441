//! Capability-scoped worlds (`cryptohost:provider@0.2.0`): a component's world comes from what
//! it exports, is shown by `providers`, must match its configured role, and a component built
//! against the 0.1.0 contract is refused with a message to rebuild it.

use std::fs;

use crate::common::{self, OFFLINE, P};

fn config_with(extra_provider_line: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sim = P { name: "simulation", file: "simulation.wasm", priority: 50 };
    let path = common::write_config(dir.path(), &common::components_dir(), &[OFFLINE, sim], "");
    let text = fs::read_to_string(&path).unwrap().replace(
        "name = \"offline-verification\"\n",
        &format!("name = \"offline-verification\"\n{extra_provider_line}"),
    );
    fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn providers_show_the_world_inferred_from_the_exports() {
    let (_dir, config) = config_with("role = \"signer\"\n");
    let out = common::run(&config, &["providers", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let world = |name: &str| list.iter().find(|p| p["name"] == name).map(|p| p["world"].clone()).unwrap();
    assert_eq!(world("offline-verification"), "signer");
    assert_eq!(world("simulation"), "keystore");
    let text = common::stdout(&common::run(&config, &["providers"]));
    assert!(text.contains("world     signer") && text.contains("world     keystore"), "{text}");
}

#[test]
fn a_component_whose_world_is_not_its_configured_role_is_refused() {
    // offline-verification exports signing: it is a signer, not a verifier.
    let (_dir, config) = config_with("role = \"verifier\"\n");
    let out = common::run(&config, &["hash", "--alg", "SHA-256", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(err.contains("role \"verifier\"") && err.contains("a signer world component"), "{err}");
    // An unknown role is a configuration error with its line.
    let (_dir, config) = config_with("role = \"admin\"\n");
    let out = common::run(&config, &["providers"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("provider.role"), "{}", common::stderr(&out));
}

#[test]
fn a_component_built_against_the_0_1_0_contract_is_refused_with_a_rebuild_message() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    fs::create_dir(&components).unwrap();
    // What a 0.1.0 guest looks like from outside: it imports the 0.1.0 host interface.
    let old = wat::parse_str(
        r#"(component
             (import "cryptohost:provider/host@0.1.0" (instance))
             (core module $m (func (export "info")))
             (core instance $i (instantiate $m)))"#,
    )
    .unwrap();
    fs::write(components.join("old.wasm"), &old).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&old))
    };
    let config = dir.path().join("cryptohost.toml");
    fs::write(
        &config,
        format!(
            "component_dir = \"components\"\n[cache]\nenabled = false\n[[provider]]\nname = \"old\"\ncomponent = \"old.wasm\"\nsha256 = \"{digest}\"\npriority = 1\n"
        ),
    )
    .unwrap();
    let out = common::run(&config, &["providers"]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(err.contains("cryptohost:provider/host@0.1.0") && err.contains("rebuild it"), "{err}");
}

#[test]
fn components_inspect_describes_a_component_and_refuses_foreign_imports() {
    let file = common::components_dir().join("offline-verification.wasm");
    let out = common::run(
        std::path::Path::new("/nonexistent.toml"),
        &["components", "inspect", "--json", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sha256"], common::digest_of("offline-verification.wasm"));
    assert_eq!(v["world"], "signer");
    assert_eq!(v["manifest"]["wit_package"], "cryptohost:provider@0.2.0");
    assert!(v["manifest"]["toolchain"].as_str().unwrap().starts_with("rustc "), "{v}");
    let imports: Vec<&str> = v["imports"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert_eq!(imports, ["cryptohost:provider/host@0.2.0", "cryptohost:provider/types@0.2.0"]);
    assert!(v["exports"].as_array().unwrap().iter().any(|e| e == "cryptohost:provider/signing@0.2.0"));
    assert!(!v["exports"].as_array().unwrap().iter().any(|e| e == "cryptohost:provider/encryption@0.2.0"));
    // A component that imports WASI (or anything but the host interface) is refused.
    let dir = tempfile::tempdir().unwrap();
    let wasi = dir.path().join("wasi.wasm");
    fs::write(&wasi, wat::parse_str(r#"(component (import "wasi:cli/environment@0.2.0" (instance)))"#).unwrap())
        .unwrap();
    let out =
        common::run(std::path::Path::new("/nonexistent.toml"), &["components", "inspect", wasi.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(err.contains("imports `wasi:cli/environment@0.2.0`: only the host interface is allowed"), "{err}");
    assert!(common::stdout(&out).contains("built with unknown"), "{}", common::stdout(&out));
}

#[test]
fn components_check_passes_the_shipped_providers_and_fails_a_trapping_one() {
    let none = std::path::Path::new("/nonexistent.toml");
    for (file, min) in [("offline-verification.wasm", 100), ("simulation.wasm", 10)] {
        let path = common::components_dir().join(file);
        let out = common::run(none, &["components", "check", "--json", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", common::stdout(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["failed"], 0, "{v}");
        assert!(v["passed"].as_u64().unwrap() >= min, "{file}: {v}");
        let names: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert!(names.iter().any(|n| n.starts_with("RFC 6979")), "{file}: {names:?}");
    }
    let offline = common::stdout(&common::run(
        none,
        &["components", "check", common::components_dir().join("offline-verification.wasm").to_str().unwrap()],
    ));
    for want in [
        "FIPS 180-4",
        "Wycheproof rsa_signature_2048_sha256_test.json",
        "Wycheproof ed25519_test.json",
        "a malformed key is refused",
    ] {
        assert!(offline.contains(want), "{want}: {offline}");
    }
    // The misbehaving guest traps where it should answer: the suite fails it, never crashes.
    let out = common::run(
        none,
        &["components", "check", common::components_dir().join("misbehaving.wasm").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = common::stdout(&out);
    assert!(text.contains("FAIL") && text.contains("trapped"), "{text}");
}

#[test]
fn output_to_a_reader_that_has_gone_away_ends_quietly_not_in_a_panic() {
    // `cryptohost ... | grep -q`: the reader exits at its first match and closes the pipe.
    use std::process::{Command, Stdio};
    let file = common::components_dir().join("simulation.wasm");
    let mut child = Command::new(common::binary())
        .args(["components", "inspect", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the command writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = common::stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "the status a SIGPIPE'd tool gives; stderr: {err}");
}
