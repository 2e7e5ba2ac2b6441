//! The TOML configuration (`cryptohost.toml`) and the build manifest (`components/manifest.json`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::LoadError;
use crate::fsio;
use crate::keyref::KeyRef;
use crate::pkcs11::{HsmConfig, PinSource, TokenSpec};
use crate::provider::Priority;
use crate::wasm::{CacheSetting, Limits};

mod pins;
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
    service: Option<RawService>,
    #[serde(default)]
    trust: Option<RawTrust>,
    #[serde(default)]
    kit: Option<RawKit>,
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
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    priority: BTreeMap<String, i32>,
}

/// `[kit]`: an installed offline kit whose signed providers are admitted.
#[derive(Clone, Debug)]
pub struct KitConfig {
    pub dir: PathBuf,
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
struct RawAudit {
    path: PathBuf,
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
        let bytes = fsio::read_bounded(path, fsio::limits::CONFIG, "configuration")
            .map_err(|e| LoadError::Config { path: path.to_path_buf(), message: e.message })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| LoadError::Config { path: path.to_path_buf(), message: "is not UTF-8 text".into() })?;
        Config::parse(path, &text)
    }

    /// As [`Config::load`], from text already read.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, LoadError> {
        let err = |message: String| LoadError::Config { path: path.to_path_buf(), message };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| format!("line {}: ", line_of(text, s.start))).unwrap_or_default();
            err(format!("{at}{}", e.message().trim_end()))
        })?;
        let at = |span: std::ops::Range<usize>, field: &str, msg: String| {
            err(format!("line {}: {field}: {msg}", line_of(text, span.start)))
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };

        let mut limits = Limits::default();
        let ms = |v: &Option<Spanned<u64>>, field: &str, max: u64| -> Result<Option<u64>, LoadError> {
            match v {
                None => Ok(None),
                Some(s) if *s.get_ref() == 0 || *s.get_ref() > max => {
                    Err(at(s.span(), field, format!("must be between 1 and {max}, got {}", s.get_ref())))
                }
                Some(s) => Ok(Some(*s.get_ref())),
            }
        };
        if let Some(v) = ms(&raw.limits.call_timeout_ms, "limits.call_timeout_ms", 600_000)? {
            limits.call_timeout = Duration::from_millis(v);
        }
        if let Some(v) = ms(&raw.limits.keygen_timeout_ms, "limits.keygen_timeout_ms", 3_600_000)? {
            limits.keygen_timeout = Duration::from_millis(v);
        }
        if let Some(v) = ms(&raw.limits.memory_mib, "limits.memory_mib", 4096)? {
            limits.memory_bytes = (v as usize) << 20;
        }
        if let Some(v) = ms(&raw.limits.max_wasm_stack_kib, "limits.max_wasm_stack_kib", 64 * 1024)? {
            limits.max_wasm_stack = (v as usize) << 10;
        }

        // The digests that vouch for cached native code live beside the config by default,
        // under the config's protection rather than the cache's.
        let digests = base.join(raw.cache.digest_dir.unwrap_or_else(|| PathBuf::from("cache-digests")));
        let cache = match (raw.cache.enabled, raw.cache.dir.map(|d| base.join(d)).or_else(default_cache_dir)) {
            (true, Some(dir)) => CacheSetting::Dir { dir, digests },
            _ => CacheSetting::Disabled,
        };

        let mut names = HashSet::new();
        let mut providers = Vec::new();
        for p in raw.providers {
            let name = p.name.get_ref().clone();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(at(p.name.span(), "provider.name", format!("{name:?} must be letters, digits, - or _")));
            }
            if !names.insert(name.clone()) {
                return Err(at(p.name.span(), "provider.name", format!("{name:?} is configured twice")));
            }
            let component = p.component.get_ref();
            let plain = Path::new(component).file_name().is_some_and(|f| f == component.as_str())
                && component.ends_with(".wasm");
            if !plain {
                return Err(at(
                    p.component.span(),
                    "provider.component",
                    format!("{component:?} must be a plain *.wasm file name inside component_dir"),
                ));
            }
            let sha256 = match &p.sha256 {
                None => None,
                Some(s) => {
                    let v = s.get_ref().to_ascii_lowercase();
                    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(at(s.span(), "provider.sha256", format!("{v:?} is not 64 hex digits")));
                    }
                    Some(v)
                }
            };
            let key_prefix = match &p.key_prefix {
                None => None,
                Some(k) => {
                    let v = k.get_ref();
                    if matches!(v.as_str(), "pkcs11" | "file")
                        || v.is_empty()
                        || !v.chars().all(|c| c.is_ascii_lowercase())
                    {
                        return Err(at(
                            k.span(),
                            "provider.key_prefix",
                            format!("{v:?} must be lowercase letters, not pkcs11 or file"),
                        ));
                    }
                    Some(v.clone())
                }
            };
            let role = match &p.role {
                None => None,
                Some(r) => Some(r.get_ref().parse().map_err(|m| at(r.span(), "provider.role", m))?),
            };
            providers.push(ProviderConfig {
                name,
                component: PathBuf::from(component),
                sha256,
                priority: Priority(*p.priority.get_ref()),
                key_prefix,
                settings: p.settings,
                role,
            });
        }

        let hsm = match raw.hsm {
            None => None,
            Some(h) => {
                let pin = match (h.pin_env, h.pin_file) {
                    (Some(var), None) => PinSource::Env(var),
                    (None, Some(file)) => PinSource::File(base.join(file)),
                    _ => {
                        return Err(err(
                            "[hsm]: give exactly one of pin_env or pin_file (a PIN is never written in the config)"
                                .into(),
                        ));
                    }
                };
                if h.tokens.get_ref().is_empty() {
                    return Err(at(
                        h.tokens.span(),
                        "hsm.tokens",
                        "name at least one token (label, or serial:NUMBER)".into(),
                    ));
                }
                let size = *h.pool_size.get_ref();
                if size == 0 || size > 64 {
                    return Err(at(
                        h.pool_size.span(),
                        "hsm.pool_size",
                        format!("must be between 1 and 64, got {size}"),
                    ));
                }
                let tokens = h
                    .tokens
                    .get_ref()
                    .iter()
                    .map(|t| match t.strip_prefix("serial:") {
                        Some(s) => TokenSpec::Serial(s.to_string()),
                        None => TokenSpec::Label(t.clone()),
                    })
                    .collect();
                let module_sha256 = match &h.module_sha256 {
                    Some(d) if is_sha256_hex(d.get_ref()) => Some(d.get_ref().clone()),
                    Some(d) => {
                        return Err(at(
                            d.span(),
                            "hsm.module_sha256",
                            format!("{:?} is not 64 lowercase hex digits (sha256sum of the module file)", d.get_ref()),
                        ));
                    }
                    None if raw.strict => {
                        return Err(err(format!(
                            "strict = true and [hsm] module {} has no module_sha256: set it to the module file's \
                             sha256 (sha256sum {}) so its bytes are checked before they are loaded",
                            h.module.display(),
                            h.module.display()
                        )));
                    }
                    None => None,
                };
                Some(HsmConfig {
                    name: h.name,
                    module: h.module,
                    module_sha256,
                    tokens,
                    pin,
                    pool_size: size,
                    priority: Priority(h.priority),
                    require_non_extractable: h.require_non_extractable,
                })
            }
        };
        let audit_path = match raw.audit {
            Some(a) => base.join(a.path),
            None => base.join("audit.jsonl"),
        };

        let mut profiles = BTreeMap::new();
        for (name, p) in raw.profiles {
            // Parsed once, here: a `file:` key is relative to this config file, wherever the
            // process was started (a service started from `/` finds it too).
            let key = KeyRef::parse_relative_to(p.key.get_ref(), &base)
                .map_err(|e| at(p.key.span(), &format!("profiles.{name}.key"), e.message))?;
            let Some(alg) = crate::alg::signature(&p.algorithm) else {
                return Err(at(
                    p.key.span(),
                    &format!("profiles.{name}.algorithm"),
                    format!("unknown signature algorithm {:?}", p.algorithm),
                ));
            };
            profiles.insert(name, Profile { key, algorithm: alg.name.to_string(), key_id: p.key_id });
        }
        let dsse = raw.dsse.unwrap_or(RawDsse { max_payload_mib: None, max_signatures: None });
        let max_payload = match &dsse.max_payload_mib {
            None => DEFAULT_MAX_PAYLOAD,
            Some(m) => payload_limit(*m.get_ref()).map_err(|msg| at(m.span(), "dsse.max_payload_mib", msg))?,
        };
        let max_signatures = match &dsse.max_signatures {
            None => DEFAULT_MAX_SIGNATURES,
            Some(n) if (1..=256).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                return Err(at(
                    n.span(),
                    "dsse.max_signatures",
                    format!("must be between 1 and 256, got {}", n.get_ref()),
                ));
            }
        };

        let service = parse_service(raw.service, &base, &at)?;

        let (trust_anchors, bootstrap_fingerprint) = match raw.trust {
            None => (None, None),
            Some(t) => {
                let fp = match t.bootstrap_fingerprint {
                    None => None,
                    Some(f) => {
                        let ok = f.get_ref().strip_prefix("sha256:").is_some_and(is_sha256_hex);
                        if !ok {
                            return Err(at(
                                f.span(),
                                "trust.bootstrap_fingerprint",
                                format!("{:?} is not \"sha256:\" + 64 lowercase hex digits", f.get_ref()),
                            ));
                        }
                        Some(f.into_inner())
                    }
                };
                (t.anchors.map(|d| base.join(d)), fp)
            }
        };
        let kit = raw.kit.map(|k| KitConfig { dir: base.join(k.dir), disable: k.disable, priority: k.priority });
        if kit.is_some() && bootstrap_fingerprint.is_none() {
            return Err(err(
                "[kit] needs [trust] bootstrap_fingerprint: an installed kit is checked against it on every use".into(),
            ));
        }
        if kit.is_some() && trust_anchors.is_some() {
            return Err(err("give [kit] dir or [trust] anchors, not both: a kit's anchors are its own".into()));
        }

        Ok(Config {
            trust_anchors,
            bootstrap_fingerprint,
            kit,
            service,
            profiles,
            max_payload,
            max_signatures,
            hsm,
            audit_path,
            path: path.to_path_buf(),
            component_dir: base.join(raw.component_dir.get_ref()),
            pinned_toolchain: raw.pinned_toolchain,
            cache,
            limits,
            providers,
        })
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
