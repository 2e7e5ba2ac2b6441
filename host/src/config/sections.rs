//! The config file's sections, one function each: each validates its raw section and names the
//! file, line and field of anything wrong.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::{
    DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_SIGNATURES, KitConfig, Profile, ProviderConfig, RawCache, RawDsse, RawHsm, RawKit,
    RawLimits, RawPolicy, RawProfile, RawProvider, RawState, RawTrust, default_cache_dir, is_sha256_hex, line_of,
    payload_limit,
};
use crate::error::LoadError;
use crate::keyref::KeyRef;
use crate::pkcs11::{HsmConfig, PinSource, TokenSpec};
use crate::provider::Priority;
use crate::wasm::{CacheSetting, Limits};

/// The file being parsed: its path, text (for line numbers) and directory (relative paths in
/// it are relative to it).
pub(super) struct Src<'a> {
    path: &'a Path,
    text: &'a str,
    pub base: PathBuf,
}

impl<'a> Src<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Src<'a> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        Src { path, text, base }
    }

    pub fn err(&self, message: String) -> LoadError {
        LoadError::Config { path: self.path.to_path_buf(), message }
    }

    /// An error at a field's place in the file.
    pub fn at(&self, span: Range<usize>, field: &str, message: String) -> LoadError {
        self.err(format!("line {}: {field}: {message}", line_of(self.text, span.start)))
    }

    pub fn toml(&self, e: &toml::de::Error) -> LoadError {
        let at = e.span().map(|s| format!("line {}: ", line_of(self.text, s.start))).unwrap_or_default();
        self.err(format!("{at}{}", e.message().trim_end()))
    }

    /// A number between 1 and `max`, when given.
    fn bounded(&self, v: &Option<Spanned<u64>>, field: &str, max: u64) -> Result<Option<u64>, LoadError> {
        match v {
            None => Ok(None),
            Some(s) if *s.get_ref() == 0 || *s.get_ref() > max => {
                Err(self.at(s.span(), field, format!("must be between 1 and {max}, got {}", s.get_ref())))
            }
            Some(s) => Ok(Some(*s.get_ref())),
        }
    }
}

/// `[limits]`.
pub(super) fn limits(src: &Src<'_>, raw: &RawLimits) -> Result<Limits, LoadError> {
    let mut limits = Limits::default();
    if let Some(v) = src.bounded(&raw.call_timeout_ms, "limits.call_timeout_ms", 600_000)? {
        limits.call_timeout = Duration::from_millis(v);
    }
    if let Some(v) = src.bounded(&raw.keygen_timeout_ms, "limits.keygen_timeout_ms", 3_600_000)? {
        limits.keygen_timeout = Duration::from_millis(v);
    }
    if let Some(v) = src.bounded(&raw.memory_mib, "limits.memory_mib", 4096)? {
        limits.memory_bytes = (v as usize) << 20;
    }
    if let Some(v) = src.bounded(&raw.max_wasm_stack_kib, "limits.max_wasm_stack_kib", 64 * 1024)? {
        limits.max_wasm_stack = (v as usize) << 10;
    }
    Ok(limits)
}

/// `[cache]`: the digests that vouch for cached native code live beside the config by default,
/// under the config's protection rather than the cache's.
pub(super) fn cache(src: &Src<'_>, raw: RawCache) -> CacheSetting {
    let digests = src.base.join(raw.digest_dir.unwrap_or_else(|| PathBuf::from("cache-digests")));
    match (raw.enabled, raw.dir.map(|d| src.base.join(d)).or_else(default_cache_dir)) {
        (true, Some(dir)) => CacheSetting::Dir { dir, digests },
        _ => CacheSetting::Disabled,
    }
}

/// `[[provider]]`, each checked and all names distinct.
pub(super) fn providers(src: &Src<'_>, raw: Vec<RawProvider>) -> Result<Vec<ProviderConfig>, LoadError> {
    let mut names = HashSet::new();
    let mut providers = Vec::new();
    for p in raw {
        let name = p.name.get_ref().clone();
        if !names.insert(name.clone()) {
            return Err(src.at(p.name.span(), "provider.name", format!("{name:?} is configured twice")));
        }
        providers.push(provider(src, p)?);
    }
    Ok(providers)
}

fn provider(src: &Src<'_>, p: RawProvider) -> Result<ProviderConfig, LoadError> {
    let at = |span, field, msg| src.at(span, field, msg);
    let name = p.name.get_ref().clone();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(at(p.name.span(), "provider.name", format!("{name:?} must be letters, digits, - or _")));
    }
    let component = p.component.get_ref();
    let plain =
        Path::new(component).file_name().is_some_and(|f| f == component.as_str()) && component.ends_with(".wasm");
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
            if crate::load::RESERVED_PREFIXES.contains(&v.as_str())
                || v.len() < 2
                || !v.chars().all(|c| c.is_ascii_lowercase())
            {
                return Err(at(
                    k.span(),
                    "provider.key_prefix",
                    format!("{v:?} must be two or more lowercase letters, not pkcs11 or file"),
                ));
            }
            Some(v.clone())
        }
    };
    let role = match &p.role {
        None => None,
        Some(r) => Some(r.get_ref().parse().map_err(|m| at(r.span(), "provider.role", m))?),
    };
    Ok(ProviderConfig {
        name,
        component: PathBuf::from(component),
        sha256,
        priority: Priority(*p.priority.get_ref()),
        key_prefix,
        settings: p.settings,
        role,
    })
}

/// `[hsm]`.
pub(super) fn hsm(src: &Src<'_>, h: RawHsm, strict: bool) -> Result<HsmConfig, LoadError> {
    let at = |span, field, msg| src.at(span, field, msg);
    let pin = match (h.pin_env, h.pin_file) {
        (Some(var), None) => PinSource::Env(var),
        (None, Some(file)) => PinSource::File(src.base.join(file)),
        _ => {
            return Err(
                src.err("[hsm]: give exactly one of pin_env or pin_file (a PIN is never written in the config)".into())
            );
        }
    };
    if h.tokens.get_ref().is_empty() {
        return Err(at(h.tokens.span(), "hsm.tokens", "name at least one token (label, or serial:NUMBER)".into()));
    }
    let size = *h.pool_size.get_ref();
    if size == 0 || size > 64 {
        return Err(at(h.pool_size.span(), "hsm.pool_size", format!("must be between 1 and 64, got {size}")));
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
        None if strict => {
            return Err(src.err(format!(
                "strict = true and [hsm] module {} has no module_sha256: set it to the module file's sha256 \
                 (sha256sum {}) so its bytes are checked before they are loaded",
                h.module.display(),
                h.module.display()
            )));
        }
        None => None,
    };
    Ok(HsmConfig {
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

/// `[profiles.NAME]`: each key parsed once, here: a `file:` key is relative to this config
/// file, wherever the process was started (a service started from `/` finds it too).
pub(super) fn profiles(
    src: &Src<'_>,
    raw: BTreeMap<String, RawProfile>,
) -> Result<BTreeMap<String, Profile>, LoadError> {
    let mut profiles = BTreeMap::new();
    for (name, p) in raw {
        let key = KeyRef::parse_relative_to(p.key.get_ref(), &src.base)
            .map_err(|e| src.at(p.key.span(), &format!("profiles.{name}.key"), e.message))?;
        let Some(alg) = crate::alg::signature(&p.algorithm) else {
            return Err(src.at(
                p.key.span(),
                &format!("profiles.{name}.algorithm"),
                format!("unknown signature algorithm {:?}", p.algorithm),
            ));
        };
        profiles.insert(name, Profile { key, algorithm: alg.name.to_string(), key_id: p.key_id });
    }
    Ok(profiles)
}

/// `[jose] publish`: profile names, each configured and given once.
pub(super) fn jose_publish(
    src: &Src<'_>,
    raw: Vec<Spanned<String>>,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Vec<String>, LoadError> {
    let mut out: Vec<String> = Vec::new();
    for name in raw {
        let n = name.get_ref();
        if !profiles.contains_key(n) {
            return Err(src.at(name.span(), "jose.publish", format!("{n:?} is not a profile in [profiles]")));
        }
        if out.contains(n) {
            return Err(src.at(name.span(), "jose.publish", format!("{n:?} is listed twice")));
        }
        out.push(n.clone());
    }
    Ok(out)
}

/// `[dsse]`: the payload limit (bytes) and the most signatures an envelope may carry.
pub(super) fn dsse(src: &Src<'_>, raw: Option<RawDsse>) -> Result<(usize, usize), LoadError> {
    let dsse = raw.unwrap_or(RawDsse { max_payload_mib: None, max_signatures: None });
    let max_payload = match &dsse.max_payload_mib {
        None => DEFAULT_MAX_PAYLOAD,
        Some(m) => payload_limit(*m.get_ref()).map_err(|msg| src.at(m.span(), "dsse.max_payload_mib", msg))?,
    };
    let max_signatures = match &dsse.max_signatures {
        None => DEFAULT_MAX_SIGNATURES,
        Some(n) if (1..=256).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            return Err(src.at(
                n.span(),
                "dsse.max_signatures",
                format!("must be between 1 and 256, got {}", n.get_ref()),
            ));
        }
    };
    Ok((max_payload, max_signatures))
}

/// `[trust]` and `[kit]`: the anchors directory, the bootstrap fingerprint, the installed kit.
pub(super) struct Trust {
    pub anchors: Option<PathBuf>,
    pub bootstrap_fingerprint: Option<String>,
    pub kit: Option<KitConfig>,
}

/// `[state] dir`, relative to the config; or the default (see `Config::state_dir`).
pub(super) fn state_dir(src: &Src<'_>, raw: Option<RawState>) -> PathBuf {
    if let Some(s) = raw {
        return src.base.join(s.dir);
    }
    if src.base.ends_with("etc/cryptohost") {
        return PathBuf::from(super::SYSTEM_STATE_DIR);
    }
    let xdg = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = || std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/state"));
    xdg.or_else(home).map_or_else(|| src.base.join("state"), |d| d.join("cryptohost"))
}

/// `[trust]` and `[kit]`. The kit's state defaults to `kit.state.json` in the state directory
/// when it is given (an explicit `[state] dir`, or the system config's), else to
/// `<kit dir>.state.json` (where `bundle install` puts it by default).
pub(super) fn trust(
    src: &Src<'_>,
    raw: Option<RawTrust>,
    kit: Option<RawKit>,
    state_dir: Option<&PathBuf>,
) -> Result<Trust, LoadError> {
    let (anchors, fingerprint) = match raw {
        None => (None, None),
        Some(t) => {
            let fp = match t.bootstrap_fingerprint {
                None => None,
                Some(f) if f.get_ref().strip_prefix("sha256:").is_some_and(is_sha256_hex) => Some(f.into_inner()),
                Some(f) => {
                    return Err(src.at(
                        f.span(),
                        "trust.bootstrap_fingerprint",
                        format!("{:?} is not \"sha256:\" + 64 lowercase hex digits", f.get_ref()),
                    ));
                }
            };
            (t.anchors.map(|d| src.base.join(d)), fp)
        }
    };
    let kit = kit.map(|k| {
        let dir = src.base.join(k.dir);
        let state = match (k.state, state_dir) {
            (Some(s), _) => src.base.join(s),
            (None, Some(d)) => d.join("kit.state.json"),
            (None, None) => crate::bundle::state::default_path(&dir),
        };
        KitConfig { dir, state, disable: k.disable, priority: k.priority }
    });
    if kit.is_some() && fingerprint.is_none() {
        return Err(src.err(
            "[kit] needs [trust] bootstrap_fingerprint: an installed kit is checked against it on every use".into(),
        ));
    }
    if kit.is_some() && anchors.is_some() {
        return Err(src.err("give [kit] dir or [trust] anchors, not both: a kit's anchors are its own".into()));
    }
    Ok(Trust { anchors, bootstrap_fingerprint: fingerprint, kit })
}

/// `[policy]`: every name known, `min_rsa_bits` not below the floor.
pub(super) fn policy(src: &Src<'_>, raw: Option<Spanned<RawPolicy>>) -> Result<crate::policy::Policy, LoadError> {
    let Some(raw) = raw else { return Ok(crate::policy::Policy::default()) };
    let span = raw.span();
    let r = raw.into_inner();
    let spec = crate::policy::PolicySpec {
        preset: r.preset,
        algorithms: r.algorithms,
        sign_algorithms: r.sign_algorithms,
        verify_algorithms: r.verify_algorithms,
        hashes: r.hashes,
        curves: r.curves,
        aead: r.aead,
        min_rsa_bits: r.min_rsa_bits,
        components_only: r.components_only,
        require_anchors_for_verify: r.require_anchors_for_verify,
    };
    crate::policy::Policy::new(&spec).map_err(|e| src.at(span, &format!("policy.{}", e.field), e.message))
}

/// `[audit] origin`, or `cryptohost/HOSTNAME/audit`: a signed-note key name (no spaces, no `+`).
pub(super) fn audit_origin(src: &Src<'_>, given: Option<&str>) -> Result<String, LoadError> {
    let origin = match given {
        Some(o) => o.to_string(),
        None => {
            let uname = rustix::system::uname();
            let host: String = uname
                .nodename()
                .to_string_lossy()
                .chars()
                .map(|c| if c.is_whitespace() || c == '+' { '-' } else { c })
                .collect();
            format!("cryptohost/{}/audit", if host.is_empty() { "localhost" } else { &host })
        }
    };
    crate::audit::tlog::note::check_key_name(&origin)
        .map_err(|e| src.at(0..0, "audit.origin", format!("{origin:?} cannot name a log: {e}")))?;
    Ok(origin)
}
