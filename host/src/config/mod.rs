//! The TOML configuration (`cryptohost.toml`) and the build manifest (`components/manifest.json`).

use sha2::Digest as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::LoadError;
use crate::fsio;
use crate::keyref::KeyRef;
use crate::pkcs11::HsmConfig;
use crate::provider::Priority;
use crate::wasm::{CacheSetting, Limits};

pub mod locate;
mod pins;
mod sections;
mod service;
pub use pins::{Manifest, ManifestEntry, is_sha256_hex, write_pins};
pub use service::{AllowRule, Operation, ServiceConfig};
use service::{RawService, parse_service};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    component_dir: Spanned<PathBuf>,
    /// The toolchain whose output the pins below were taken from (written by `cryptohost pin`).
    #[serde(default)]
    pinned_toolchain: Option<String>,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default, rename = "provider")]
    providers: Vec<RawProvider>,
    #[serde(default)]
    hsm: Option<RawHsm>,
    #[serde(default)]
    audit: Option<RawAudit>,
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
    #[serde(default)]
    dsse: Option<RawDsse>,
    #[serde(default)]
    jose: Option<RawJose>,
    #[serde(default)]
    service: Option<RawService>,
    #[serde(default)]
    trust: Option<RawTrust>,
    #[serde(default)]
    kit: Option<RawKit>,
    #[serde(default)]
    policy: Option<Spanned<RawPolicy>>,
    #[serde(default)]
    state: Option<RawState>,
    #[serde(default)]
    rotation: Option<RawRotation>,
    #[serde(default)]
    native: Option<RawNative>,
    /// Refuse what would otherwise be a warning about unchecked code: an `[hsm] module`
    /// without `module_sha256`.
    #[serde(default)]
    strict: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    anchors: Option<PathBuf>,
    bootstrap_fingerprint: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKit {
    dir: PathBuf,
    state: Option<PathBuf>,
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    priority: BTreeMap<String, i32>,
}

/// `[state]`: where what must outlive a kit or a config is kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: PathBuf,
}

/// The state directory of the system config (`/etc/cryptohost/cryptohost.toml`) when it names
/// none.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/cryptohost";

/// `[policy]`: the deployment policy (see `crate::policy`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    preset: Option<String>,
    algorithms: Option<Vec<String>>,
    sign_algorithms: Option<Vec<String>>,
    verify_algorithms: Option<Vec<String>>,
    hashes: Option<Vec<String>>,
    curves: Option<Vec<String>>,
    aead: Option<Vec<String>>,
    min_rsa_bits: Option<u32>,
    #[serde(default)]
    components_only: bool,
    #[serde(default)]
    require_anchors_for_verify: bool,
}

/// `[kit]`: an installed offline kit whose signed providers are admitted.
#[derive(Clone, Debug)]
pub struct KitConfig {
    pub dir: PathBuf,
    /// The kit's state file (`bundle install` writes it; default `<dir>.state.json`).
    pub state: PathBuf,
    /// Providers of the kit not to load, by name.
    pub disable: Vec<String>,
    /// Priorities that override the kit's, by provider name.
    pub priority: BTreeMap<String, i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    key: Spanned<String>,
    algorithm: String,
    key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDsse {
    max_payload_mib: Option<Spanned<u64>>,
    max_signatures: Option<Spanned<u64>>,
}

/// `[jose]`: the profiles whose public keys `GET /v1/jwks` publishes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJose {
    #[serde(default)]
    publish: Vec<Spanned<String>>,
}

/// Default cap on a DSSE payload (decoded), in bytes.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 << 20;

/// The largest `max_payload_mib` a config or `--max-payload-mib` may set.
pub const MAX_PAYLOAD_MIB: u64 = 1024;

/// Default cap on signatures in one DSSE envelope.
pub const DEFAULT_MAX_SIGNATURES: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHsm {
    #[serde(default = "hsm_name")]
    name: String,
    module: PathBuf,
    tokens: Spanned<Vec<String>>,
    pin_env: Option<String>,
    pin_file: Option<PathBuf>,
    #[serde(default = "one")]
    pool_size: Spanned<usize>,
    #[serde(default = "hsm_priority")]
    priority: i32,
    #[serde(default = "yes")]
    require_non_extractable: bool,
    /// sha256 of the PKCS#11 module file, checked before it is loaded.
    module_sha256: Option<Spanned<String>>,
}

fn hsm_name() -> String {
    "hsm".into()
}

fn one() -> Spanned<usize> {
    Spanned::new(0..0, 1)
}

fn hsm_priority() -> i32 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotation {
    max_age_days: u32,
    #[serde(default)]
    enforce: bool,
}

/// `[native]`: the host's own code registered as a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNative {
    /// SHA-2 in the host (RustCrypto `sha2` with the CPU's SHA instructions); default on,
    /// except under `[policy] components_only`.
    hashing: Option<bool>,
    /// Its priority (default [`crate::native::DEFAULT_PRIORITY`]).
    priority: Option<i32>,
}

/// `[rotation]`: how old a key version may get before it must be rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Past this many days since a version was made, every sign with it warns.
    pub max_age_days: u32,
    /// And is refused, naming the key and its age.
    pub enforce: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    path: Option<PathBuf>,
    /// The audit key: signs the log's checkpoints and nothing else.
    #[serde(default)]
    key: Option<String>,
    /// The checkpoints' origin line (the log's name).
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    checkpoint_every: Option<u64>,
    /// EdDSA (default; a file or simulation key) or ES256 (default for an HSM key).
    #[serde(default)]
    key_algorithm: Option<String>,
    /// Rotate the log when it reaches this many MiB.
    #[serde(default)]
    max_mib: Option<u64>,
    /// Send each checkpoint to this syslog socket too.
    #[serde(default)]
    syslog_socket: Option<PathBuf>,
    /// Write a line for each verification a peer of the server asks for (default true).
    #[serde(default)]
    verifications: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    #[serde(default = "yes")]
    enabled: bool,
    dir: Option<PathBuf>,
    digest_dir: Option<PathBuf>,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache { enabled: true, dir: None, digest_dir: None }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    call_timeout_ms: Option<Spanned<u64>>,
    keygen_timeout_ms: Option<Spanned<u64>>,
    memory_mib: Option<Spanned<u64>>,
    max_wasm_stack_kib: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: Spanned<String>,
    component: Spanned<String>,
    sha256: Option<Spanned<String>>,
    priority: Spanned<i32>,
    #[serde(default)]
    key_prefix: Option<Spanned<String>>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    /// The world the component must be: verifier, signer or keystore.
    role: Option<Spanned<String>>,
}

/// One configured wasm provider.
#[derive(Clone)]
pub struct ProviderConfig {
    pub name: String,
    /// The component file inside the component directory.
    pub component: PathBuf,
    /// Lowercase hex sha256 the file must have; `None` only usable with `--dev`.
    pub sha256: Option<String>,
    pub priority: Priority,
    /// Key references `PREFIX:NAME` go to this provider (e.g. `sim` for the simulation).
    pub key_prefix: Option<String>,
    /// Handed to the provider's `configure` (may be secret, e.g. a simulation seed).
    pub settings: BTreeMap<String, String>,
    /// The world the component must turn out to be (`role = "verifier"` etc.); a component
    /// of another world is refused.
    pub role: Option<crate::provider::World>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("component", &self.component)
            .field("sha256", &self.sha256)
            .field("priority", &self.priority)
            .field("key_prefix", &self.key_prefix)
            .field("role", &self.role)
            .field("settings", &self.settings.keys().map(|k| (k, "<redacted>")).collect::<Vec<_>>())
            .finish()
    }
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the file was read from (errors name it).
    pub path: PathBuf,
    pub component_dir: PathBuf,
    pub pinned_toolchain: Option<String>,
    pub cache: CacheSetting,
    pub limits: Limits,
    pub providers: Vec<ProviderConfig>,
    /// The PKCS#11 backend, when configured.
    pub hsm: Option<HsmConfig>,
    /// The audit log (default: `audit.jsonl` next to the config file).
    pub audit_path: PathBuf,
    /// `[audit] key`: the key that signs the audit log's checkpoints (an Ed25519 or ECDSA P-256
    /// key: a file, an HSM key, a simulation key), used for nothing else. Without it the log is
    /// still a Merkle tree, but no checkpoint is signed.
    pub audit_key: Option<KeyRef>,
    /// `[audit] key_algorithm`: `EdDSA` (signed-note type 0x01) or `ES256` (type 0x02, ECDSA
    /// P-256); default ES256 for a `pkcs11:` key, EdDSA otherwise.
    pub audit_key_algorithm: String,
    /// `[rotation]` (default: off; the seeds' example is 90 days).
    pub rotation: Option<Rotation>,
    /// `[audit] origin`: the first line of every checkpoint, naming this log (default
    /// `cryptohost/HOSTNAME/audit`).
    pub audit_origin: String,
    /// `[audit] checkpoint_every`: lines between checkpoints (default 1000).
    pub checkpoint_every: u64,
    /// `[audit] max_mib`: rotate the log at this size (default: never).
    pub audit_max_mib: Option<u64>,
    /// `[audit] syslog_socket`: a Unix datagram socket each checkpoint is sent to as well.
    pub audit_syslog: Option<PathBuf>,
    /// `[audit] verifications`: a line for each verification a server peer asks for.
    pub audit_verifications: bool,
    /// SHA-256 of this config's text with every provider's `settings` values redacted (a
    /// simulation's seed is a secret), as a new audit log's genesis line records it.
    pub config_sha256: String,
    /// Signing profiles: name -> key reference, algorithm, optional keyId.
    pub profiles: BTreeMap<String, Profile>,
    /// Largest DSSE payload accepted, in bytes.
    pub max_payload: usize,
    /// Most signatures one DSSE envelope may carry.
    pub max_signatures: usize,
    /// `cryptohost serve`.
    pub service: ServiceConfig,
    /// `[trust] anchors`: an installed bundle directory (trust-anchors.json + public-keys/)
    /// whose anchors `dsse verify` and `verify --key-id` use when no key is given (and the
    /// only anchors the server uses).
    pub trust_anchors: Option<PathBuf>,
    /// `[trust] bootstrap_fingerprint`: the kit signing key every installed kit is checked
    /// against on every use (`sha256:` + 64 hex digits).
    pub bootstrap_fingerprint: Option<String>,
    /// `[kit]`.
    pub kit: Option<KitConfig>,
    /// `[state] dir`: what must outlive a kit or a config (the kit's high-water mark by
    /// default, the key-state file). Default: [`SYSTEM_STATE_DIR`] for a config in a
    /// `.../etc/cryptohost/` directory, else `$XDG_STATE_HOME/cryptohost` (`~/.local/state`).
    pub state_dir: PathBuf,
    /// Where the key-state file (`keys.state.json`, the versions of rotated keys) is kept: the
    /// state directory when `[state] dir` is given or the config is the system's; otherwise a
    /// directory of this config's own under it (`by-config/<sha256 of the config's path>`), so
    /// that two configs whose simulations both hold a `sim:demo` never share its versions.
    pub key_state_dir: PathBuf,
    /// `[policy]` (the default allows everything the providers offer).
    pub policy: std::sync::Arc<crate::policy::Policy>,
    /// The native hashing provider's priority, when it is registered (`[native] hashing`).
    pub native_hashing: Option<Priority>,
    /// `[jose] publish`: the profiles whose public keys `GET /v1/jwks` and `keys jwks`
    /// publish (nothing else is published: a peer does not learn which profiles exist).
    pub jose_publish: Vec<String>,
}

/// A signing profile (the seed's MultiProfileSigner entries, and anchor keyId resolution).
#[derive(Clone, Debug)]
pub struct Profile {
    /// Parsed at load; a relative `file:` path is already joined to the config's directory.
    pub key: KeyRef,
    pub algorithm: String,
    /// The trust-anchor keyId this key signs as; written into DSSE signatures.
    pub key_id: Option<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("cryptohost"));
    }
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache/cryptohost"))
}

impl Config {
    /// Reads and validates a configuration file. Relative paths in it are relative to the
    /// file's own directory.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML, has an unknown or missing field, or a value
    /// is out of range; the message names the file, the line and the field.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        fsio::trusted(path, "the configuration")
            .map_err(|e| LoadError::Config { path: path.to_path_buf(), message: e.message })?;
        let bytes = fsio::read_bounded(path, fsio::limits::CONFIG, "configuration")
            .map_err(|e| LoadError::Config { path: path.to_path_buf(), message: e.message })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| LoadError::Config { path: path.to_path_buf(), message: "is not UTF-8 text".into() })?;
        Config::parse(path, &text)
    }

    /// As [`Config::load`], from text already read. One function per section (`sections`).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, LoadError> {
        let src = sections::Src::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| src.toml(&e))?;
        let raw_state_given = raw.state.is_some();
        let hsm = raw.hsm.map(|h| sections::hsm(&src, h, raw.strict)).transpose()?;
        let (max_payload, max_signatures) = sections::dsse(&src, raw.dsse)?;
        let state_dir = sections::state_dir(&src, raw.state);
        // The kit's state goes in the state directory when one is named, and under the system
        // config (whose state directory is /var/lib/cryptohost).
        let kit_state_in_state_dir = raw_state_given || src.base.ends_with("etc/cryptohost");
        let trust = sections::trust(&src, raw.trust, raw.kit, kit_state_in_state_dir.then_some(&state_dir))?;
        let profiles = sections::profiles(&src, raw.profiles)?;
        let policy = std::sync::Arc::new(sections::policy(&src, raw.policy)?);
        let jose_publish = sections::jose_publish(&src, raw.jose.map(|j| j.publish).unwrap_or_default(), &profiles)?;
        Ok(Config {
            limits: sections::limits(&src, &raw.limits)?,
            cache: sections::cache(&src, raw.cache),
            providers: sections::providers(&src, raw.providers)?,
            profiles,
            jose_publish,
            service: parse_service(raw.service, &src.base, &|span, field, msg| src.at(span, field, msg))?,
            audit_path: src
                .base
                .join(raw.audit.as_ref().and_then(|a| a.path.clone()).unwrap_or_else(|| PathBuf::from("audit.jsonl"))),
            audit_key: raw
                .audit
                .as_ref()
                .and_then(|a| a.key.as_deref())
                .map(|k| KeyRef::parse_relative_to(k, &src.base))
                .transpose()
                .map_err(|e| src.at(0..0, "audit.key", e.to_string()))?,
            audit_max_mib: match raw.audit.as_ref().and_then(|a| a.max_mib) {
                None => None,
                Some(n @ 1..=65536) => Some(n),
                Some(n) => return Err(src.at(0..0, "audit.max_mib", format!("{n} is not from 1 to 65536"))),
            },
            config_sha256: redacted_digest(text),
            audit_verifications: raw.audit.as_ref().and_then(|a| a.verifications).unwrap_or(true),
            audit_syslog: raw.audit.as_ref().and_then(|a| a.syslog_socket.as_ref()).map(|p| src.base.join(p)),
            rotation: match raw.rotation {
                Some(RawRotation { max_age_days: 0, .. }) => {
                    return Err(src.at(
                        0..0,
                        "rotation.max_age_days",
                        "must be at least 1 (leave [rotation] out for no limit)".into(),
                    ));
                }
                Some(r) => Some(Rotation { max_age_days: r.max_age_days, enforce: r.enforce }),
                None => None,
            },
            audit_key_algorithm: match raw.audit.as_ref().and_then(|a| a.key_algorithm.as_deref()) {
                Some(a @ ("EdDSA" | "ES256")) => a.to_string(),
                Some(other) => {
                    return Err(src.at(
                        0..0,
                        "audit.key_algorithm",
                        format!(
                            "{other:?}: a checkpoint is signed with EdDSA or ES256 (the signed-note signature types)"
                        ),
                    ));
                }
                None if raw.audit.as_ref().and_then(|a| a.key.as_deref()).is_some_and(|k| k.starts_with("pkcs11:")) => {
                    "ES256".to_string()
                }
                None => "EdDSA".to_string(),
            },
            audit_origin: sections::audit_origin(&src, raw.audit.as_ref().and_then(|a| a.origin.as_deref()))?,
            checkpoint_every: match raw.audit.as_ref().and_then(|a| a.checkpoint_every) {
                None => 1000,
                Some(n @ 1..=1_000_000) => n,
                Some(n) => {
                    return Err(src.at(0..0, "audit.checkpoint_every", format!("{n} is not from 1 to 1000000")));
                }
            },
            trust_anchors: trust.anchors,
            bootstrap_fingerprint: trust.bootstrap_fingerprint,
            kit: trust.kit,
            key_state_dir: if kit_state_in_state_dir {
                state_dir.clone()
            } else {
                let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| src.base.join(path));
                let digest = sha2::Sha256::digest(canonical.as_os_str().as_encoded_bytes());
                state_dir.join("by-config").join(hex::encode(&digest[..8]))
            },
            state_dir,
            native_hashing: native_hashing(&src, raw.native, &policy)?,
            policy,
            max_payload,
            max_signatures,
            hsm,
            path: path.to_path_buf(),
            component_dir: src.base.join(raw.component_dir.get_ref()),
            pinned_toolchain: raw.pinned_toolchain,
        })
    }
}

/// `[native] hashing`: on by default at [`crate::native::DEFAULT_PRIORITY`], off under
/// `[policy] components_only` (whose point is that every byte is handled by pinned components);
/// asking for both is a contradiction, refused.
fn native_hashing(
    src: &sections::Src<'_>,
    raw: Option<RawNative>,
    policy: &crate::policy::Policy,
) -> Result<Option<Priority>, LoadError> {
    let raw = raw.unwrap_or(RawNative { hashing: None, priority: None });
    let priority = Priority(raw.priority.unwrap_or(crate::native::DEFAULT_PRIORITY));
    match raw.hashing {
        Some(true) if policy.components_only() => Err(src.at(
            0..0,
            "native.hashing",
            "is true, and [policy] components_only = true admits no native provider but the HSM: remove one".into(),
        )),
        Some(false) => Ok(None),
        None if policy.components_only() => Ok(None),
        Some(true) | None => Ok(Some(priority)),
    }
}

/// A payload limit given in MiB, in bytes: between 1 and [`MAX_PAYLOAD_MIB`] (never wraps).
///
/// # Errors
/// Zero or over the maximum, in words.
pub fn payload_limit(mib: u64) -> Result<usize, String> {
    if mib == 0 || mib > MAX_PAYLOAD_MIB {
        return Err(format!("must be between 1 and {MAX_PAYLOAD_MIB} (MiB), got {mib}"));
    }
    Ok((mib as usize) << 20)
}

/// SHA-256 (hex) of `text` with the values of every `[[provider]] settings` table replaced by
/// `REDACTED`: a digest that names this config without a guessable hash of a secret.
fn redacted_digest(text: &str) -> String {
    let redacted = match text.parse::<toml_edit::DocumentMut>() {
        Ok(mut doc) => {
            if let Some(providers) = doc.get_mut("provider").and_then(toml_edit::Item::as_array_of_tables_mut) {
                for p in providers.iter_mut() {
                    if let Some(settings) = p.get_mut("settings").and_then(toml_edit::Item::as_table_like_mut) {
                        let keys: Vec<String> = settings.iter().map(|(k, _)| k.to_string()).collect();
                        for k in keys {
                            settings.insert(&k, toml_edit::value("REDACTED"));
                        }
                    }
                }
            }
            doc.to_string()
        }
        Err(_) => String::new(),
    };
    hex::encode(sha2::Sha256::digest(redacted.as_bytes()))
}

impl Config {
    /// How the audit log is kept under this config.
    pub fn audit_options(&self) -> crate::audit::AuditOptions {
        crate::audit::AuditOptions {
            checkpoint_every: self.checkpoint_every,
            max_bytes: self.audit_max_mib.map(|m| m << 20),
            config_sha256: Some(self.config_sha256.clone()),
            policy: Some(self.policy.to_string()),
            syslog_socket: self.audit_syslog.clone(),
        }
    }
}
