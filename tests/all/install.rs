//! `scripts/install.sh` (`just install`, `just uninstall`) and `scripts/package.sh` (`just
//! package`): the installed tree works as installed (from another directory, against the
//! installed config only), a second install keeps the config, uninstall removes exactly what
//! was recorded, outputs never go through a symlink, the units verify, the .deb carries the
//! conffile, dependencies and digests. Everything goes into temporary directories: PREFIX,
//! SYSCONFDIR, LOCALSTATEDIR and RUNSTATEDIR all point inside one, never at the real /etc.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest as _;

use crate::common;

/// An install into `<tmp>/usr`, `<tmp>/etc`, `<tmp>/var`, `<tmp>/run` (empty DESTDIR).
struct Installed {
    dir: tempfile::TempDir,
}

impl Installed {
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn prefix(&self) -> PathBuf {
        self.root().join("usr")
    }
    fn config(&self) -> PathBuf {
        self.root().join("etc/cryptohost/cryptohost.toml")
    }
    fn statedir(&self) -> PathBuf {
        self.root().join("var/lib/cryptohost")
    }
    fn bin(&self) -> PathBuf {
        self.prefix().join("bin/cryptohost")
    }
    fn record(&self) -> PathBuf {
        self.prefix().join("lib/cryptohost/installed-files")
    }
    fn unitdir(&self) -> PathBuf {
        self.prefix().join("lib/systemd/system")
    }

    fn script(&self, mode: &str) -> Output {
        let root = self.root();
        Command::new("bash")
            .arg(common::repo_root().join("scripts/install.sh"))
            .arg(mode)
            .env("PREFIX", root.join("usr"))
            .env("SYSCONFDIR", root.join("etc"))
            .env("LOCALSTATEDIR", root.join("var"))
            .env("RUNSTATEDIR", root.join("run"))
            .env("DESTDIR", "")
            .env("CRYPTOHOST_BIN", common::binary())
            .env_remove("SYSTEMD_UNITDIR")
            .env_remove("EXCLUDE_COMPONENTS")
            .output()
            .expect("run scripts/install.sh")
    }

    /// The installed binary with the installed config, run in `cwd` (never the repository).
    fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        let out = Command::new(self.bin())
            .arg("--config")
            .arg(self.config())
            .args(args)
            .current_dir(cwd)
            .env("HOME", self.root().join("home"))
            .env("XDG_CACHE_HOME", self.root().join("cache"))
            .env_remove("CRYPTOHOST_CONFIG")
            .env_remove("CRYPTOHOST_SOCKET")
            .output()
            .expect("run the installed cryptohost");
        assert!(!common::stderr(&out).contains("panicked"), "{}", common::stderr(&out));
        out
    }
}

fn install() -> Installed {
    let installed = Installed { dir: tempfile::tempdir().unwrap() };
    let out = installed.script("install");
    assert!(out.status.success(), "install failed: {}{}", common::stdout(&out), common::stderr(&out));
    installed
}

/// The recorded entries: (kind, sha256, path).
fn record(path: &Path) -> Vec<(String, String, PathBuf)> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let (kind, sum, path) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (kind.to_string(), sum.to_string(), PathBuf::from(path))
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(base).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// The components `just build-guests` made, but the test-only one.
fn shipped_components() -> Vec<(String, String)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(common::components_dir().join("manifest.json")).unwrap()).unwrap();
    manifest["components"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.as_str() != "misbehaving")
        .map(|(_, v)| (v["file"].as_str().unwrap().to_string(), v["sha256"].as_str().unwrap().to_string()))
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn the_installed_tree_works_from_another_directory_and_uninstall_removes_exactly_what_it_wrote() {
    let inst = install();
    let root = inst.root();

    // The layout, the modes the host insists on, the config's paths and pins.
    let components = inst.prefix().join("lib/cryptohost/components");
    for (file, sha) in shipped_components() {
        let bytes = fs::read(components.join(&file)).unwrap();
        assert_eq!(sha256_hex(&bytes), sha, "{file}");
        assert_eq!(mode(&components.join(&file)), 0o644, "{file}");
    }
    assert!(!components.join("misbehaving.wasm").exists(), "the test-only component is not installed");
    assert_eq!(mode(&components), 0o755);
    assert_eq!(mode(&inst.bin()), 0o755);
    assert_eq!(mode(&inst.config()), 0o644);
    let config = fs::read_to_string(inst.config()).unwrap();
    assert!(config.contains(&format!("component_dir = \"{}\"", components.display())), "{config}");
    let audit = inst.statedir().join("audit/audit.jsonl");
    assert!(config.contains(&format!("path = \"{}\"", audit.display())), "{config}");
    assert!(config.contains(&format!("digest_dir = \"{}\"", inst.statedir().join("cache-digests").display())));
    assert!(config.contains("\npinned_toolchain = \""), "{config}");
    assert!(config.contains(&format!("\ndir = \"{}\"\n", inst.statedir().display())), "[state] dir: {config}");
    // No simulation, and above all no seed, in force: every line naming them is a comment.
    for line in config.lines().filter(|l| l.contains("simulation") || l.contains("seed")) {
        assert!(line.starts_with('#'), "enabled in the installed config: {line}");
    }
    for page in ["cryptohost.1.gz", "cryptohost-sign.1.gz", "cryptohost-keys-list.1.gz"] {
        assert!(inst.prefix().join("share/man/man1").join(page).is_file(), "{page}");
    }
    assert!(!inst.prefix().join("share/man/man1/cryptohost-generate.1.gz").exists(), "generate is hidden");
    let bash = fs::read_to_string(inst.prefix().join("share/bash-completion/completions/cryptohost")).unwrap();
    assert!(bash.contains("_cryptohost()") && bash.contains("keygen"), "{bash}");
    assert!(inst.prefix().join("share/zsh/vendor-completions/_cryptohost").is_file());
    assert!(inst.prefix().join("share/fish/vendor_completions.d/cryptohost.fish").is_file());

    // The units: installed paths, the fixes over the old examples.
    let service = fs::read_to_string(inst.unitdir().join("cryptohost.service")).unwrap();
    assert!(
        service.contains(&format!("ExecStart={} --config {} serve", inst.bin().display(), inst.config().display())),
        "{service}"
    );
    assert!(service.contains("\nLimitNOFILE="), "{service}");
    assert!(!service.lines().any(|l| l.starts_with("LoadCredential")), "a missing PIN file must not fail the unit");
    assert!(service.contains("\nPrivateNetwork=yes") && service.contains("\nRestrictAddressFamilies=AF_UNIX\n"));
    let socket = fs::read_to_string(inst.unitdir().join("cryptohost.socket")).unwrap();
    assert!(socket.contains(&format!("ListenStream={}/cryptohost/cryptohost.sock", root.join("run").display())));
    assert!(socket.contains("\nDirectoryMode=0755") && socket.contains("\nSocketGroup=cryptohost-clients"));
    systemd_analyze_verify(&inst);

    // The operator's one-time step (the package's postinst): the service's state directories.
    fs::create_dir_all(inst.statedir().join("audit")).unwrap();
    fs::create_dir_all(inst.statedir().join("cache-digests")).unwrap();
    fs::set_permissions(inst.statedir().join("cache-digests"), fs::Permissions::from_mode(0o700)).unwrap();

    fs::set_permissions(inst.statedir(), fs::Permissions::from_mode(0o750)).unwrap();

    // hash, keygen, sign, verify, providers: in another directory, the installed tree only.
    let work = root.join("work");
    fs::create_dir(&work).unwrap();
    let out = inst.run(&work, &["doctor"]);
    assert!(out.status.success(), "doctor on the installed tree: {}{}", common::stdout(&out), common::stderr(&out));
    fs::write(work.join("msg.txt"), b"installed and working\n").unwrap();
    let out = inst.run(&work, &["-q", "hash", "--alg", "SHA-256", "msg.txt"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out).trim(), sha256_hex(b"installed and working\n"));
    let out = inst.run(&work, &["keygen", "--alg", "ES256", "--out", "key.pem", "--pub", "key.pub"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = inst.run(&work, &["-q", "sign", "--alg", "ES256", "--key", "key.pem", "--out", "msg.sig", "msg.txt"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = inst.run(&work, &["-q", "verify", "--pub", "key.pub", "--sig", "msg.sig", "msg.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", common::stdout(&out), common::stderr(&out));
    fs::write(work.join("msg.txt"), b"installed and tampered\n").unwrap();
    let out = inst.run(&work, &["-q", "verify", "--pub", "key.pub", "--sig", "msg.sig", "msg.txt"]);
    assert_eq!(out.status.code(), Some(1), "a tampered file is invalid: {}", common::stderr(&out));
    let audited = fs::read_to_string(&audit).unwrap();
    assert!(audited.lines().any(|l| l.contains("\"operation\":\"sign\"")), "{audited}");
    let out = inst.run(&work, &["providers", "--json"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let providers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = providers.to_string();
    for name in ["fast-verification", "offline-verification", "pqc"] {
        assert!(text.contains(&format!("\"{name}\"")), "{name} not served: {text}");
    }
    assert!(!text.contains("\"simulation\""), "the simulation is not enabled: {text}");
    assert!(!text.contains(&common::components_dir().display().to_string()), "served from the repository: {text}");

    // serve, on the installed config's socket, answering a client from the same directory.
    let run_dir = root.join("run/cryptohost");
    fs::create_dir_all(&run_dir).unwrap();
    fs::write(work.join("msg.txt"), b"installed and served\n").unwrap();
    let mut server = Command::new(inst.bin())
        .args(["--config"])
        .arg(inst.config())
        .args(["serve", "--json"])
        .current_dir(&work)
        .env("HOME", root.join("home"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env_remove("CRYPTOHOST_SOCKET")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().unwrap()), &mut line).unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let socket = started["socket"].as_str().unwrap().to_string();
    assert!(socket.starts_with(&run_dir.display().to_string()), "{started}");
    let served = inst.run(&work, &["--socket", &socket, "-q", "hash", "--alg", "SHA-256", "msg.txt"]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(served.status.success(), "{}", common::stderr(&served));
    assert_eq!(common::stdout(&served).trim(), sha256_hex(b"installed and served\n"));

    // A second install never overwrites the config: it writes cryptohost.toml.new beside it.
    let mut edited = config.clone();
    edited.push_str("\n# the operator was here\n");
    fs::write(inst.config(), &edited).unwrap();
    let out = inst.script("install");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("cryptohost.toml.new"), "it says so: {}", common::stdout(&out));
    assert_eq!(fs::read_to_string(inst.config()).unwrap(), edited);
    assert_eq!(fs::read_to_string(inst.config().with_extension("toml.new")).unwrap(), config);

    // Uninstall: every recorded file goes but the edited config; a file of the operator's
    // under the prefix stays, and so does the state.
    let recorded = record(&inst.record());
    let files: Vec<&PathBuf> = recorded.iter().filter(|(k, _, _)| k == "f").map(|(_, _, p)| p).collect();
    assert!(files.contains(&&inst.config()) && files.contains(&&inst.bin()), "{recorded:?}");
    let extra = components.join("operator-added.wasm");
    fs::write(&extra, b"not ours").unwrap();
    let before = tree(root);
    let out = inst.script("uninstall");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains(&format!("kept {}", inst.config().display())), "{}", common::stdout(&out));
    let after = tree(root);
    let gone: BTreeSet<PathBuf> = before.difference(&after).map(|p| root.join(p)).collect();
    let mut expected: BTreeSet<PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
    expected.remove(&inst.config());
    expected.insert(inst.record());
    // Directories install created go too, when nothing else is left in them.
    for (kind, _, p) in &recorded {
        if kind == "d" && !after.contains(p.strip_prefix(root).unwrap()) {
            expected.insert(p.clone());
        }
    }
    assert_eq!(gone, expected, "uninstall removed exactly the recorded files");
    assert!(extra.is_file() && inst.config().is_file() && audit.is_file());
    assert_eq!(fs::read_to_string(inst.config()).unwrap(), edited);
    assert!(!inst.record().exists());
}

/// systemd-analyze (the `systemd` package) checks the installed units, if it is here.
fn systemd_analyze_verify(inst: &Installed) {
    let Ok(out) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(inst.unitdir().join("cryptohost.socket"))
        .arg(inst.unitdir().join("cryptohost.service"))
        // Documentation=man:... is checked with man(1): the pages are in the temporary prefix.
        .env("MANPATH", inst.prefix().join("share/man"))
        .output()
    else {
        eprintln!("NOTE: systemd-analyze is not installed: the units were not verified");
        return;
    };
    assert!(out.status.success(), "systemd-analyze verify: {}{}", common::stdout(&out), common::stderr(&out));
    assert_eq!(common::stderr(&out).trim(), "", "systemd-analyze verify warned");
}

#[test]
fn install_refuses_to_write_through_a_symlink() {
    let inst = Installed { dir: tempfile::tempdir().unwrap() };
    let victim = inst.root().join("victim");
    fs::create_dir_all(inst.prefix().join("bin")).unwrap();
    std::os::unix::fs::symlink(&victim, inst.prefix().join("bin/cryptohost")).unwrap();
    let out = inst.script("install");
    assert_eq!(out.status.code(), Some(1), "{}", common::stdout(&out));
    assert!(common::stderr(&out).contains("is a symlink: refused"), "{}", common::stderr(&out));
    assert!(!victim.exists(), "written through the link");
    assert!(!inst.config().exists() && !inst.record().exists(), "nothing is written after a refusal");

    // A symlinked directory written into is refused the same way.
    let inst = Installed { dir: tempfile::tempdir().unwrap() };
    let elsewhere = inst.root().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::create_dir_all(inst.root().join("etc")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inst.root().join("etc/cryptohost")).unwrap();
    let out = inst.script("install");
    assert_eq!(out.status.code(), Some(1), "{}", common::stdout(&out));
    assert!(fs::read_dir(&elsewhere).unwrap().next().is_none(), "written into the linked directory");
}

/// Under the system layout a local `sign` by a user who is not the service's fails closed: the
/// audit log (root-owned 0644, in a root-owned directory) is not theirs to write. They can
/// still hash. Needs root (to run as another uid) and setpriv.
#[test]
fn a_local_sign_by_another_user_fails_closed_on_the_audit_log() {
    let inst = install();
    let is_root = fs::metadata(inst.root()).unwrap().uid() == 0;
    if !is_root || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("NOTE: not root or no setpriv: the other-user check did not run");
        return;
    }
    let root = inst.root();
    // Everything reachable by uid 65534, nothing writable by it but its own work directory.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["var", "var/lib", "var/lib/cryptohost", "var/lib/cryptohost/audit"] {
        fs::create_dir_all(root.join(d)).unwrap();
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let audit = inst.statedir().join("audit/audit.jsonl");
    fs::write(&audit, b"").unwrap();
    fs::set_permissions(&audit, fs::Permissions::from_mode(0o644)).unwrap();
    let work = root.join("work");
    fs::create_dir(&work).unwrap();
    fs::write(work.join("msg.txt"), b"someone else's file\n").unwrap();
    // The key, made by `cryptohost keygen` (as root, whose audit line this log takes), then
    // handed to the other user.
    let out = inst.run(&work, &["keygen", "--alg", "ES256", "--out", "key.pem"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    std::os::unix::fs::chown(work.join("key.pem"), Some(65534), Some(65534)).unwrap();
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).unwrap();
    // Root's run made the cache digest directory (root's): the other user runs uncached
    // either way (another user's cache is never trusted); removed to keep that out of view.
    let _ = fs::remove_dir_all(inst.statedir().join("cache-digests"));
    let lines_before = fs::read_to_string(&audit).unwrap();

    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(inst.bin())
            .arg("--config")
            .arg(inst.config())
            .args(args)
            .current_dir(&work)
            .env("HOME", "/nonexistent")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("CRYPTOHOST_CONFIG")
            .env_remove("CRYPTOHOST_SOCKET")
            .output()
            .unwrap()
    };
    let out = as_nobody(&["-q", "hash", "--alg", "SHA-256", "msg.txt"]);
    assert!(out.status.success(), "another user may hash: {}", common::stderr(&out));
    assert_eq!(common::stdout(&out).trim(), sha256_hex(b"someone else's file\n"));
    let out = as_nobody(&["-q", "sign", "--alg", "ES256", "--key", "key.pem", "msg.txt"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stdout(&out));
    let stderr = common::stderr(&out);
    assert!(stderr.contains("audit log") && stderr.contains("Permission denied"), "{stderr}");
    assert!(common::stdout(&out).is_empty(), "no signature without an audit line");
    assert_eq!(fs::read_to_string(&audit).unwrap(), lines_before);
}

/// `scripts/package.sh` (uncompressed, without lintian: `just package` runs that): the control
/// fields, the conffile, the digests in the description, the layout under /usr and /etc.
#[test]
fn the_deb_carries_the_conffile_dependencies_and_component_digests() {
    if Command::new("dpkg-deb").arg("--version").output().is_err()
        || Command::new("dpkg-shlibdeps").arg("--version").output().is_err()
    {
        panic!("no dpkg-deb or dpkg-shlibdeps: install dpkg-dev (`just setup` does)");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(common::repo_root().join("scripts/package.sh"))
        .env("CRYPTOHOST_BIN", common::binary())
        .env("OUTDIR", dir.path())
        .env("DEB_COMPRESSION", "none")
        .env("LINTIAN", "0")
        // (Not from git, which may refuse a checkout another user owns.)
        .env("DEB_MAINTAINER", "cryptohost tests <tests@example.org>")
        .output()
        .unwrap();
    assert!(out.status.success(), "package.sh: {}{}", common::stdout(&out), common::stderr(&out));
    let debs: Vec<PathBuf> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];
    let arch = String::from_utf8(Command::new("dpkg").arg("--print-architecture").output().unwrap().stdout).unwrap();
    let version = common::stdout(&Command::new(common::binary()).arg("--version").output().unwrap());
    let version = version.trim().strip_prefix("cryptohost ").unwrap().to_string();
    assert_eq!(deb.file_name().unwrap().to_string_lossy(), format!("cryptohost_{version}_{}.deb", arch.trim()));

    let field = |name: &str| {
        let out = Command::new("dpkg-deb").arg("--field").arg(deb).arg(name).output().unwrap();
        common::stdout(&out)
    };
    assert_eq!(field("Package").trim(), "cryptohost");
    assert_eq!(field("Version").trim(), version);
    let depends = field("Depends");
    assert!(depends.contains("libc6 (>=") && depends.contains("passwd"), "{depends}");
    let description = field("Description");
    for (file, sha) in shipped_components() {
        assert!(description.contains(&file) && description.contains(&format!("sha256:{sha}")), "{description}");
    }
    assert!(description.lines().all(|l| l.len() <= 80), "{description}");

    let info = common::stdout(&Command::new("dpkg-deb").arg("--info").arg(deb).arg("conffiles").output().unwrap());
    assert_eq!(info.trim(), "/etc/cryptohost/cryptohost.toml");
    let postinst = common::stdout(&Command::new("dpkg-deb").arg("--info").arg(deb).arg("postinst").output().unwrap());
    assert!(postinst.contains("useradd --system") && postinst.contains("/var/lib/cryptohost/audit"), "{postinst}");
    let code = postinst.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    assert!(!code.contains("enable"), "units are installed, not enabled: {postinst}");

    let contents = common::stdout(&Command::new("dpkg-deb").arg("--contents").arg(deb).output().unwrap());
    let paths: BTreeSet<&str> = contents.lines().filter_map(|l| l.split_whitespace().nth(5)).collect();
    for p in [
        "./usr/bin/cryptohost",
        "./etc/cryptohost/cryptohost.toml",
        "./lib/systemd/system/cryptohost.service",
        "./lib/systemd/system/cryptohost.socket",
        "./usr/lib/cryptohost/components/manifest.json",
        "./usr/share/man/man1/cryptohost.1.gz",
        "./usr/share/bash-completion/completions/cryptohost",
        "./usr/share/doc/cryptohost/copyright",
    ] {
        assert!(paths.contains(p), "{p} missing from the package: {contents}");
    }
    assert!(!paths.iter().any(|p| p.contains("installed-files") || p.contains("misbehaving")), "{contents}");
    assert!(contents.lines().all(|l| l.contains(" root/root ")), "{contents}");
}
