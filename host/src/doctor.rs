//! `cryptohost doctor`: whether this host could serve, one check per line, without using a key
//! and without logging in to an HSM (a wrong PIN costs a try): the config found, the pins
//! against the files, the cache, the audit log, the HSM module, tokens and PIN source, the
//! installed kit and its expiry, and the server's socket.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::fsio;

/// One check: its name, whether it passed, and what was found, in words.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check { check: name, ok: true, detail },
        Err(detail) => Check { check: name, ok: false, detail },
    }
}

/// Every check for the config at `path` (found as `how`). A config that does not load is the
/// one failed check: nothing else can be judged without it. With `login`, the HSM check logs
/// in to every token (a wrong PIN costs a try: only when asked).
#[must_use]
pub fn run(path: &Path, how: &str, components: Option<&Path>, login: bool) -> Vec<Check> {
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return vec![check("config", Err(e.to_string()))],
    };
    if let Some(dir) = components {
        config.component_dir = dir.to_path_buf();
    }
    let mut checks = vec![check("config", Ok(format!("{} ({how})", path.display())))];
    checks.push(check("components", components_pinned(&config)));
    checks.push(check("cache", cache(&config)));
    checks.push(check("audit log", audit_log(&config.audit_path)));
    checks.push(check("state dir", state_dir(&config.state_dir)));
    checks.push(check("key versions", key_versions(&config)));
    if let Some(hsm) = &config.hsm {
        checks.push(check("hsm module", hsm_module(hsm)));
        checks.push(check("hsm pin source", pin_source(&hsm.pin)));
        checks.push(check("hsm tokens", hsm_tokens(hsm, login)));
    }
    if config.kit.is_some() {
        checks.push(check("kit", kit(&config)));
    }
    checks.push(check("policy", policy(&config)));
    checks.push(check("socket", socket(&config.service.socket)));
    checks
}

/// The deployment policy, and whether the configured providers offer what it names: the host
/// is loaded as `serve` would load it (pins checked, nothing used), which is where a policy
/// naming an algorithm nobody offers is refused.
fn policy(config: &Config) -> Result<String, String> {
    if config.policy.is_open() {
        return Ok("none: every algorithm the providers offer is allowed".into());
    }
    crate::load::open_with(config, crate::load::TrustMode::Pins, crate::load::Start::Eager)
        .map_err(|e| e.to_string())?;
    Ok(config.policy.to_string())
}

/// Each configured component is there, and its bytes match its pin (or, without one, the
/// build manifest beside it, which `--dev` would trust).
fn components_pinned(config: &Config) -> Result<String, String> {
    if config.providers.is_empty() {
        return Ok("no [[provider]] configured".into());
    }
    fsio::trusted(&config.component_dir, "the component directory").map_err(|e| e.to_string())?;
    let mut bad = Vec::new();
    for p in &config.providers {
        let file = config.component_dir.join(&p.component);
        let digest = match fsio::read_bounded_nofollow(&file, fsio::limits::COMPONENT, "component") {
            Ok(bytes) => hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            Err(e) => {
                bad.push(format!("{}: {}", p.name, e.message));
                continue;
            }
        };
        match &p.sha256 {
            Some(pin) if *pin == digest => {}
            Some(pin) => bad.push(format!("{}: {} has sha256 {digest}, pinned {pin}", p.name, file.display())),
            None => bad.push(format!("{}: no sha256 pin (run `cryptohost pin` after review)", p.name)),
        }
    }
    if bad.is_empty() {
        Ok(format!("{} component(s) match their pins in {}", config.providers.len(), config.component_dir.display()))
    } else {
        Err(bad.join("; "))
    }
}

/// The precompiled cache and its digest directory, when enabled, are private to this user.
fn cache(config: &Config) -> Result<String, String> {
    match &config.cache {
        crate::wasm::CacheSetting::Disabled => Ok("disabled: components compile at every start".into()),
        crate::wasm::CacheSetting::Dir { dir, digests } => {
            for (d, what) in [(dir, "cache"), (digests, "cache digests")] {
                if d.exists() {
                    fsio::check_private_dir(d, what).map_err(|e| e.to_string())?;
                }
            }
            Ok(format!("{} (digests in {})", dir.display(), digests.display()))
        }
    }
}

/// The audit log can be appended to: an existing one is a regular file others cannot write;
/// a missing one can be created in its directory.
fn audit_log(path: &Path) -> Result<String, String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(m) if m.mode() & 0o022 != 0 => {
            Err(format!("{} is writable by group or others (mode {:o})", path.display(), m.mode() & 0o7777))
        }
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(|_| format!("{} is writable", path.display()))
            .map_err(|e| format!("{} cannot be opened for appending: {e}", path.display())),
        Err(_) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            rustix::fs::access(dir, rustix::fs::Access::WRITE_OK)
                .map(|()| format!("{} will be created (its directory is writable)", path.display()))
                .map_err(|e| format!("{} does not exist and {} is not writable: {e}", path.display(), dir.display()))
        }
    }
}

/// The state directory, when it exists, can be changed only by this user or root (what it
/// holds decides which kit and which key versions are trusted).
fn state_dir(dir: &Path) -> Result<String, String> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(format!("{} does not exist yet (nothing kept there so far)", dir.display()));
    }
    fsio::trusted(dir, "the state directory").map_err(|e| e.to_string())?;
    Ok(format!("{} (owned by this user or root, not writable by others)", dir.display()))
}

/// The module file is trusted (owner, mode) and matches `module_sha256` when pinned.
fn hsm_module(hsm: &crate::pkcs11::HsmConfig) -> Result<String, String> {
    let module = &hsm.module;
    fsio::trusted(module, "the PKCS#11 module").map_err(|e| e.to_string())?;
    let Some(pin) = &hsm.module_sha256 else {
        return Ok(format!("{} (not pinned: set [hsm] module_sha256)", module.display()));
    };
    let bytes = fsio::read_bounded(module, 256 << 20, "PKCS#11 module").map_err(|e| e.to_string())?;
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    if actual == *pin {
        Ok(format!("{} matches its pin", module.display()))
    } else {
        Err(format!("{} has sha256 {actual}, pinned {pin}", module.display()))
    }
}

/// The PIN's source is there (never read into the report, never used to log in).
fn pin_source(pin: &crate::pkcs11::PinSource) -> Result<String, String> {
    match pin {
        crate::pkcs11::PinSource::Env(var) => match std::env::var_os(var) {
            Some(v) if !v.is_empty() => Ok(format!("environment variable {var} is set")),
            _ => Err(format!("environment variable {var} is not set")),
        },
        crate::pkcs11::PinSource::File(path) => {
            fsio::read_private(path, 4096, "PIN file").map_err(|e| e.to_string()).and_then(|found| match found {
                Some(_) => Ok(format!("{} is present and private", path.display())),
                None => Err(format!("{} does not exist", path.display())),
            })
        }
    }
}

/// The module loads and every configured token is present, without a login unless `login`.
fn hsm_tokens(hsm: &crate::pkcs11::HsmConfig, login: bool) -> Result<String, String> {
    let provider = crate::pkcs11::Pkcs11Provider::new(hsm.clone());
    let reached = if login { provider.connect() } else { provider.probe() }.map_err(|e| e.to_string());
    provider.disconnect();
    let how = if login { "each logged in with the configured PIN" } else { "no login made" };
    reached.map(|()| format!("{} token(s) reachable, {how}", hsm.tokens.len()))
}

/// The installed kit opens whole, and its anchors have not expired.
fn kit(config: &Config) -> Result<String, String> {
    let kit = crate::load::installed_kit(config).map_err(|e| e.to_string())?.ok_or("no kit configured")?;
    let registry = crate::trust_root::registry().with_policy(config.policy.clone());
    let now = time::OffsetDateTime::now_utc();
    kit.anchors(&registry, now, None).map_err(|e| e.to_string())?;
    Ok(format!("{} (createdAt {}, {} component(s))", kit.dir.display(), kit.created_at(), kit.components.len()))
}

/// The server's socket: absent (not serving), or a socket a server answers on. A socket file
/// nobody listens on is a stale one.
fn socket(path: &Path) -> Result<String, String> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(format!("no server at {} (not serving)", path.display())),
        Ok(m) if !m.file_type().is_socket() => Err(format!("{} exists and is not a socket", path.display())),
        Ok(_) => std::os::unix::net::UnixStream::connect(path)
            .map(|_| format!("a server listens on {}", path.display()))
            .map_err(|e| format!("{} is a socket nobody listens on (stale?): {e}", path.display())),
    }
}

/// The key-state file reads, and each key's current version is within `[rotation]`
/// max_age_days: its age shown either way.
fn key_versions(config: &Config) -> Result<String, String> {
    // Its directory's own check is the state dir's when they are one (one failure, said once).
    if config.key_state_dir == config.state_dir
        && config.key_state_dir.exists()
        && let Err(why) = fsio::guarded(&config.key_state_dir)
    {
        return Ok(format!("not read: {why} (see the state dir check)"));
    }
    let states = crate::lifecycle::KeyStates::in_dir(&config.key_state_dir);
    let file = states.snapshot().map_err(|e| e.to_string())?;
    if file.keys.is_empty() {
        return Ok(format!("no rotated keys recorded ({})", states.path().display()));
    }
    let now = time::OffsetDateTime::now_utc();
    let mut shown = Vec::new();
    let mut old = Vec::new();
    for k in &file.keys {
        let Some(v) = k.current() else {
            old.push(format!("{}: no current version", k.key));
            continue;
        };
        let age = crate::trust::parse_time(&v.created).map(|c| (now - c).whole_days()).unwrap_or(0);
        shown.push(format!("{} v{} {age} d", k.key, v.version));
        if let Some(r) = config.rotation
            && age > i64::from(r.max_age_days)
        {
            old.push(format!("{} v{} is {age} days old (max_age_days = {})", k.key, v.version, r.max_age_days));
        }
    }
    if old.is_empty() { Ok(shown.join("; ")) } else { Err(old.join("; ")) }
}
