//! Configuration errors name the file, line and field; the shipped config matches the build.

use std::path::Path;

use cryptohost::Config;
use cryptohost::config::Manifest;

use crate::common;

fn parse_err(text: &str) -> String {
    Config::parse(Path::new("/etc/cryptohost.toml"), text).expect_err("config must be refused").to_string()
}

const HEAD: &str = "component_dir = \"components\"\n";

#[test]
fn bad_configs_name_file_line_and_field() {
    let e = parse_err("component_dir = \n");
    assert!(e.contains("/etc/cryptohost.toml") && e.contains("line 1"), "{e}");

    let e = parse_err(&format!(
        "{HEAD}[[provider]]\nname = \"a\"\ncomponent = \"a.wasm\"\npriority = 1\ncolour = \"red\"\n"
    ));
    assert!(e.contains("line 6") && e.contains("colour"), "{e}");

    let e = parse_err(&format!(
        "{HEAD}[[provider]]\nname = \"a\"\ncomponent = \"a.wasm\"\nsha256 = \"abc\"\npriority = 1\n"
    ));
    assert!(e.contains("line 5") && e.contains("provider.sha256") && e.contains("64 hex"), "{e}");

    let e = parse_err(&format!("{HEAD}[[provider]]\nname = \"a\"\ncomponent = \"../a.wasm\"\npriority = 1\n"));
    assert!(e.contains("line 4") && e.contains("plain *.wasm file name"), "{e}");

    let e = parse_err(&format!(
        "{HEAD}[[provider]]\nname = \"a\"\ncomponent = \"a.wasm\"\npriority = 1\n[[provider]]\nname = \"a\"\ncomponent = \"b.wasm\"\npriority = 2\n"
    ));
    assert!(e.contains("line 7") && e.contains("configured twice"), "{e}");

    let e = parse_err(&format!("{HEAD}[limits]\ncall_timeout_ms = 0\n"));
    assert!(e.contains("line 3") && e.contains("limits.call_timeout_ms"), "{e}");

    let e = parse_err(&format!("{HEAD}[[provider]]\nname = \"a\"\ncomponent = \"a.wasm\"\npriority = \"high\"\n"));
    assert!(e.contains("line 5"), "{e}");
}

#[test]
fn shipped_config_loads_and_its_pins_match_a_build_with_the_pinned_toolchain() {
    let config = Config::load(&common::repo_root().join("cryptohost.toml")).expect("shipped config parses");
    assert!(!config.providers.is_empty());
    let manifest: Manifest = common::manifest();
    let pinned = config.pinned_toolchain.clone().expect("shipped config records its toolchain");
    if pinned != manifest.toolchain {
        // Not a failure: a different guest compiler gives different bytes, and the host will
        // refuse them until someone reviews the build and runs `just pin`. Say so.
        println!(
            "NOTE: components were built with {:?} but cryptohost.toml is pinned to {:?}; \
             the host refuses them until `just pin` (or runs with --dev).",
            manifest.toolchain, pinned
        );
        return;
    }
    for p in &config.providers {
        let file = p.component.to_string_lossy();
        let entry = manifest.entry_for_file(&file).expect("pinned component is built");
        assert_eq!(
            p.sha256.as_deref(),
            Some(entry.sha256.as_str()),
            "{file}: same toolchain, different bytes: the guest build is not reproducible"
        );
    }
}

#[test]
fn payload_and_signature_limits_never_wrap() {
    let e = parse_err(&format!("{HEAD}[dsse]\nmax_payload_mib = 17592186044416\n"));
    assert!(e.contains("line 3") && e.contains("dsse.max_payload_mib") && e.contains("between 1 and 1024"), "{e}");
    let e = parse_err(&format!("{HEAD}[dsse]\nmax_payload_mib = 0\n"));
    assert!(e.contains("dsse.max_payload_mib"), "{e}");
    let e = parse_err(&format!("{HEAD}[dsse]\nmax_signatures = 0\n"));
    assert!(e.contains("dsse.max_signatures"), "{e}");
    let ok = Config::parse(Path::new("/x.toml"), &format!("{HEAD}[dsse]\nmax_payload_mib = 8\nmax_signatures = 4\n"))
        .expect("valid");
    assert_eq!((ok.max_payload, ok.max_signatures), (8 << 20, 4));
}

#[test]
fn pin_rewrites_atomically_and_never_through_a_symlink() {
    use std::fs;
    let dir = tempfile::tempdir().unwrap();
    let real = common::write_config(dir.path(), &common::components_dir(), &[common::OFFLINE], "");
    let text = fs::read_to_string(&real).unwrap();
    // Unpin it, so `pin` has something to write.
    let unpinned: String = text.lines().filter(|l| !l.starts_with("sha256")).map(|l| format!("{l}\n")).collect();
    fs::write(&real, &unpinned).unwrap();
    let manifest = common::components_dir().join("manifest.json");
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = common::run(&link, &["pin", "--manifest", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("is a symlink"), "{}", common::stderr(&out));
    assert_eq!(fs::read_to_string(&real).unwrap(), unpinned, "nothing written through the link");
    let out = common::run(&real, &["pin", "--manifest", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let pinned = fs::read_to_string(&real).unwrap();
    assert!(pinned.contains(&common::digest_of("offline-verification.wasm")), "{pinned}");
    // No temporary file is left beside it.
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{names:?}");
}

#[test]
fn pin_hashes_the_files_and_refuses_a_manifest_that_does_not_match_them() {
    use std::fs;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), &common::components_dir(), &[common::OFFLINE], "");
    let original: serde_json::Value =
        serde_json::from_slice(&fs::read(common::components_dir().join("manifest.json")).unwrap()).unwrap();
    // A manifest path is relative to the config file, wherever `pin` runs from.
    fs::create_dir(dir.path().join("m")).unwrap();
    let write = |v: &serde_json::Value| fs::write(dir.path().join("m/manifest.json"), v.to_string()).unwrap();
    let pin = || {
        let out = std::process::Command::new(common::binary())
            .current_dir("/")
            .args(["--config", config.to_str().unwrap(), "pin", "--manifest", "m/manifest.json"])
            .output()
            .unwrap();
        (out.status.code(), common::stderr(&out))
    };
    let entry = |v: &mut serde_json::Value| -> String {
        let components = v["components"].as_object_mut().unwrap();
        let (key, _) = components.iter().find(|(_, e)| e["file"] == "offline-verification.wasm").unwrap();
        key.clone()
    };
    // The manifest as built: pinned.
    write(&original);
    let (code, err) = pin();
    assert_eq!(code, Some(0), "{err}");
    let before = fs::read_to_string(&config).unwrap();
    // A malformed digest ("aa") is refused before anything else.
    let mut bad = original.clone();
    let key = entry(&mut bad);
    bad["components"][&key]["sha256"] = "aa".into();
    write(&bad);
    let (code, err) = pin();
    assert_eq!(code, Some(2));
    assert!(err.contains("\"aa\" is not 64 lowercase hex digits"), "{err}");
    // A well-formed digest that is not the file's: refused, naming the file, nothing written.
    let mut wrong = original.clone();
    wrong["components"][&key]["sha256"] = "ab".repeat(32).into();
    write(&wrong);
    let (code, err) = pin();
    assert_eq!(code, Some(2));
    assert!(err.contains("offline-verification.wasm has sha256") && err.contains("nothing was pinned"), "{err}");
    assert_eq!(fs::read_to_string(&config).unwrap(), before, "the config is unchanged");
}

#[test]
fn without_config_the_default_places_are_searched_in_order_and_named_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let xdg = dir.path().join("xdg");
    let providers = |env: &[(&str, &std::path::Path)]| {
        let mut c = std::process::Command::new(common::binary());
        c.arg("providers").current_dir(&elsewhere).env_remove("CRYPTOHOST_CONFIG").env_remove("CRYPTOHOST_SOCKET");
        c.env("HOME", dir.path()).env_remove("XDG_CONFIG_HOME");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    if std::path::Path::new("/etc/cryptohost/cryptohost.toml").exists() {
        eprintln!("NOTE: this machine has a system config; the empty search is not checked");
    } else {
        let out = providers(&[("XDG_CONFIG_HOME", &xdg)]);
        assert_eq!(out.status.code(), Some(2));
        let err = common::stderr(&out);
        for place in [
            "cryptohost.toml (the working directory)",
            "xdg/cryptohost/cryptohost.toml",
            "/etc/cryptohost/cryptohost.toml",
        ] {
            assert!(err.contains(place), "{place}: {err}");
        }
        assert!(err.contains("--config FILE or CRYPTOHOST_CONFIG"), "{err}");
    }
    // The user's config directory, found from anywhere; relative paths stay relative to it.
    let user = xdg.join("cryptohost");
    std::fs::create_dir_all(&user).unwrap();
    let config = common::write_config(&user, &common::components_dir(), &[common::OFFLINE], "");
    let out = providers(&[("XDG_CONFIG_HOME", &xdg)]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("offline-verification"));
    // ~/.config without XDG_CONFIG_HOME.
    let home_config = dir.path().join(".config");
    std::fs::rename(&xdg, &home_config).unwrap();
    assert_eq!(providers(&[]).status.code(), Some(0));
    // CRYPTOHOST_CONFIG wins over the search, and --config over both.
    let missing = dir.path().join("missing.toml");
    let out = providers(&[("CRYPTOHOST_CONFIG", &missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("missing.toml"), "{}", common::stderr(&out));
    let moved = home_config.join("cryptohost").join("cryptohost.toml");
    assert!(moved.exists() && !config.exists());
    let out = providers(&[("CRYPTOHOST_CONFIG", &moved)]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
}

#[test]
fn what_becomes_code_or_trust_must_be_changeable_by_this_user_or_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::copy(
        common::components_dir().join("offline-verification.wasm"),
        components.join("offline-verification.wasm"),
    )
    .unwrap();
    let config = common::write_config(dir.path(), &components, &[common::OFFLINE], "");
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let providers = || {
        std::process::Command::new(common::binary())
            .args(["--config", config.to_str().unwrap(), "providers"])
            .env_remove("CRYPTOHOST_SOCKET")
            .output()
            .unwrap()
    };
    let refused = |needle: &str| {
        let out = providers();
        assert_eq!(out.status.code(), Some(2), "{needle}: {}", common::stdout(&out));
        let err = common::stderr(&out);
        assert!(err.contains(needle) && err.contains("changeable by this user or root only"), "{err}");
    };
    mode(&components, 0o755);
    assert_eq!(providers().status.code(), Some(0), "{}", common::stderr(&providers()));
    mode(&config, 0o664);
    refused("the configuration is writable by group or others (mode 664)");
    mode(&config, 0o644);
    mode(&components, 0o777);
    refused("the component directory is writable by group or others");
    mode(&components, 0o755);
    if crate::server::me() == 0 {
        std::os::unix::fs::chown(&components, Some(65534), None).unwrap();
        refused("the component directory is owned by uid 65534");
        std::os::unix::fs::chown(&components, Some(0), None).unwrap();
    }
    assert_eq!(providers().status.code(), Some(0));
    // An anchors directory others can write is not trusted either.
    let anchors = dir.path().join("anchors");
    std::fs::create_dir(&anchors).unwrap();
    std::fs::write(anchors.join("trust-anchors.json"), b"{}").unwrap();
    mode(&anchors, 0o775);
    let env = dir.path().join("env.json");
    std::fs::write(&env, br#"{"payloadType":"t","payload":"","signatures":[{"sig":"AA=="}]}"#).unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["--config", config.to_str().unwrap(), "dsse", "verify", "--anchors", anchors.to_str().unwrap()])
        .arg(&env)
        .env_remove("CRYPTOHOST_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("the trust anchors directory is writable by group or others"),
        "{}",
        common::stderr(&out)
    );
}
