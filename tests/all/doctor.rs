//! `cryptohost doctor`: each check passes on a working config, and fails, alone and by name,
//! when exactly its precondition is broken.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{self, OFFLINE};

fn doctor(config: &Path) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = std::process::Command::new(common::binary())
        .args(["--config", config.to_str().unwrap(), "doctor", "--json"])
        .env_remove("CRYPTOHOST_SOCKET")
        .output()
        .unwrap();
    let checks = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", common::stdout(&out)));
    (out.status.code(), checks)
}

/// The names of the checks that failed.
fn failed(checks: &[serde_json::Value]) -> Vec<String> {
    checks.iter().filter(|c| c["ok"] == false).map(|c| c["check"].as_str().unwrap().to_string()).collect()
}

struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A working config: one component (a copy, so it can be broken), a private cache, an audit
/// log in the site, a socket path.
fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    fs::create_dir(&components).unwrap();
    fs::set_permissions(&components, fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(common::components_dir().join(OFFLINE.file), components.join(OFFLINE.file)).unwrap();
    let config = common::write_config(dir.path(), &components, &[OFFLINE], "");
    let text = fs::read_to_string(&config).unwrap();
    let text = format!("{text}\n[state]\ndir = \"state\"\n\n[service]\nlisten = \"unix:s.sock\"\n");
    fs::write(&config, text).unwrap();
    Site { dir, config }
}

#[test]
fn every_check_passes_on_a_working_config_and_each_fails_alone_by_name() {
    let s = site();
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(0), vec![]), "{checks:?}");
    let names: Vec<&str> = checks.iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(names, ["config", "components", "cache", "audit log", "state dir", "key versions", "policy", "socket"]);

    // components: a flipped byte.
    let wasm = s.dir.path().join("components").join(OFFLINE.file);
    let good = fs::read(&wasm).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 1;
    fs::write(&wasm, &bad).unwrap();
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(1), vec!["components".to_string()]), "{checks:?}");
    assert!(checks[1]["detail"].as_str().unwrap().contains("offline-verification"), "{checks:?}");
    fs::write(&wasm, &good).unwrap();

    // audit log: a directory where the log should be.
    let audit = s.dir.path().join("audit.jsonl");
    let _ = fs::remove_file(&audit);
    fs::create_dir(&audit).unwrap();
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(1), vec!["audit log".to_string()]), "{checks:?}");
    fs::remove_dir(&audit).unwrap();

    // state dir: one others can write (it decides which kit and key versions are trusted).
    let state = s.dir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(1), vec!["state dir".to_string()]), "{checks:?}");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();

    // policy: one that names what the one component does not offer (ML-DSA is pqc's).
    let text = fs::read_to_string(&s.config).unwrap();
    fs::write(&s.config, format!("{text}\n[policy]\nalgorithms = [\"ML-DSA-44\"]\n")).unwrap();
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(1), vec!["policy".to_string()]), "{checks:?}");
    fs::write(&s.config, text).unwrap();

    // socket: a socket file nobody listens on.
    let socket = s.dir.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(1), vec!["socket".to_string()]), "{checks:?}");
    // ... and one a server answers on is fine.
    let listening = {
        fs::remove_file(&socket).unwrap();
        std::os::unix::net::UnixListener::bind(&socket).unwrap()
    };
    let (code, _) = doctor(&s.config);
    assert_eq!(code, Some(0));
    drop(listening);
    fs::remove_file(&socket).unwrap();

    // cache: a cache directory others can write.
    let cache = s.dir.path().join("cache");
    fs::create_dir(&cache).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    let text = fs::read_to_string(&s.config).unwrap();
    // The first `dir = ` line is [cache]'s (the site's [state] dir comes later).
    let old = text.lines().find(|l| l.starts_with("dir = ")).unwrap();
    let moved = text.replacen(old, &format!("dir = {:?}", cache.display().to_string()), 1);
    fs::write(&s.config, moved).unwrap();
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(1), vec!["cache".to_string()]), "{checks:?}");
    fs::write(&s.config, text).unwrap();

    // kit: a [kit] with no kit installed.
    let mut with_kit = fs::read_to_string(&s.config).unwrap();
    with_kit = with_kit.replacen(
        "[service]",
        &format!("[trust]\nbootstrap_fingerprint = \"sha256:{}\"\n[kit]\ndir = \"kit\"\n\n[service]", "00".repeat(32)),
        1,
    );
    fs::write(&s.config, &with_kit).unwrap();
    let (code, checks) = doctor(&s.config);
    assert_eq!((code, failed(&checks)), (Some(1), vec!["kit".to_string()]), "{checks:?}");

    // config: none where it is said to be.
    let (code, checks) = doctor(&s.dir.path().join("missing.toml"));
    assert_eq!((code, failed(&checks)), (Some(1), vec!["config".to_string()]), "{checks:?}");
}
