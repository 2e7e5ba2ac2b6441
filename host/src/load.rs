//! The composition root: reads nothing itself but the validated config, builds the component
//! runtime, every pinned component, and the PKCS#11 backend, and hands back the registry (which
//! knows only the provider trait) plus the admin handle of the HSM. Only this module knows
//! every backend.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, Manifest, ProviderConfig};
use crate::error::LoadError;
use crate::pkcs11::Pkcs11Provider;
use crate::provider::CryptoProvider;
use crate::registry::Registry;
use crate::wasm::{Admission, Runtime, Trust};

/// How [`open`] decides which component bytes to trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustMode {
    /// Every provider's `sha256` in the config must match (production).
    Pins,
    /// `--dev`: trust `manifest.json` in the component directory instead of pins.
    DevManifest,
}

/// A loaded host: the registry every operation goes through, and the HSM's admin handle
/// (connect, disconnect, status, list) for the commands that manage it.
pub struct Host {
    pub registry: Registry,
    pub hsm: Option<Arc<Pkcs11Provider>>,
    /// The key-state file (versions of rotated keys), re-read when it changes.
    pub key_states: Arc<crate::lifecycle::KeyStates>,
    // Providers share the engine through their own handles; the runtime (linker, cache) is
    // kept for as long as the host, for loads to come.
    _runtime: Arc<Runtime>,
}

impl Host {
    /// The PKCS#11 backend's admin handle, when configured.
    pub fn hsm(&self) -> Option<&Arc<Pkcs11Provider>> {
        self.hsm.as_ref()
    }
}

impl std::ops::Deref for Host {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

/// Loads every provider the configuration names (and nothing else in the directory).
///
/// # Errors
/// A component is missing, does not match its pin (or the manifest in dev mode), is not
/// a valid provider, or the configuration leaves a provider unpinned outside dev mode.
pub fn open(config: &Config, trust: TrustMode) -> Result<Host, LoadError> {
    open_with(config, trust, Start::Lazy)
}

/// When components are compiled and instantiated. Every check (pins, the kit, key prefixes,
/// roles, the policy) is made at start either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// On the first call that reaches each (a one-shot command uses one, or none), for those
    /// whose descriptor this host recorded when it last loaded them (`crate::wasm::Admission`).
    Lazy,
    /// All at start (`doctor`: every component is run once).
    Eager,
    /// All at start, with instance memory from wasmtime's pooling allocator, sized for every
    /// provider's whole pool (the long-running server).
    Pooled,
}

/// As [`open`], starting the components as `start` says.
///
/// # Errors
/// As [`open`].
pub fn open_with(config: &Config, trust: TrustMode, start: Start) -> Result<Host, LoadError> {
    // An installed kit is checked whole (bootstrap signature, every file, the publisher's
    // signature over its components) before anything of it, or anything else, is compiled.
    let kit = installed_kit(config)?;
    let kit_providers: Vec<&crate::bundle::kit::Admitted> = kit
        .as_ref()
        .map(|k| {
            let disabled = config.kit.as_ref().map(|c| c.disable.clone()).unwrap_or_default();
            k.components.iter().filter(|a| !disabled.contains(&a.entry.provider.name)).collect()
        })
        .unwrap_or_default();
    check_entries(config, &kit_providers)?;
    if !config.providers.is_empty() {
        crate::fsio::trusted(&config.component_dir, "the component directory")
            .map_err(|e| LoadError::Config { path: config.path.clone(), message: e.to_string() })?;
    }
    let runtime = Arc::new(if start == Start::Pooled {
        let total: usize = config.providers.iter().map(|p| instances_of(config, p)).sum::<usize>()
            + kit_providers.iter().map(|a| kit_instances(config, a)).sum::<usize>();
        Runtime::pooled(config.limits.clone(), config.cache.clone(), u32::try_from(total).unwrap_or(u32::MAX))?
    } else {
        Runtime::new(config.limits.clone(), config.cache.clone())?
    });
    let lazy = start == Start::Lazy;
    let manifest = match trust {
        TrustMode::Pins => None,
        TrustMode::DevManifest => Some(Manifest::load(&config.component_dir.join("manifest.json"))?),
    };
    let mut loaded = Loaded::default();
    for p in &config.providers {
        loaded.add(configured(config, &runtime, lazy, manifest.as_ref(), kit.as_ref(), p)?, p.key_prefix.clone());
    }
    // The kit's providers: what the config would say comes from the signed manifest; the
    // config may disable one or override its priority.
    for a in kit_providers {
        loaded.add(from_kit(config, &runtime, lazy, kit.as_ref(), a)?, a.entry.provider.key_prefix.clone());
    }
    // The HSM connects lazily, on its first key operation: verification never needs it.
    if let Some(h) = &config.hsm
        && h.module_sha256.is_none()
    {
        log::warn!(
            "[hsm] module {} has no module_sha256: it is loaded by path and its bytes are not checked \
             (set module_sha256 to its sha256sum; strict = true refuses this)",
            h.module.display()
        );
    }
    // The host's own SHA-2, a provider like the others, unless the config turned it off (or
    // the policy wants every byte in components).
    if let Some(priority) = config.native_hashing {
        loaded.add(Arc::new(crate::native::NativeHashing::new(priority)), None);
    }
    let hsm = config.hsm.clone().map(|h| Arc::new(Pkcs11Provider::new(h)));
    if let Some(h) = &hsm {
        // `pkcs11:` URIs are one more key namespace, routed like `sim:`, and registered first:
        // nothing else may answer for it (`check_entries` refused any other claim already).
        loaded.providers.push(h.clone());
        loaded.prefixes.insert(0, (PKCS11_PREFIX.to_string(), h.clone() as Arc<dyn CryptoProvider>));
    }
    let registry = Registry::with_namespaces(loaded.providers, loaded.prefixes).with_policy(config.policy.clone());
    admitted_by_policy(config, &registry)?;
    let key_states = Arc::new(crate::lifecycle::KeyStates::in_dir(&config.key_state_dir));
    Ok(Host { registry, hsm, key_states, _runtime: runtime })
}

/// The policy against what was loaded: `components_only` admits no native provider but the
/// HSM, and every algorithm the policy names must be offered by some provider (a policy that
/// allows only what nothing offers is a mistake, found at start and not at the first use).
fn admitted_by_policy(config: &Config, registry: &Registry) -> Result<(), LoadError> {
    let policy = registry.policy();
    let refuse = |message: String| LoadError::Config { path: config.path.clone(), message };
    if policy.components_only() {
        for p in registry.providers() {
            let d = p.descriptor();
            let hsm = registry.by_prefix(PKCS11_PREFIX).is_some_and(|h| Arc::ptr_eq(h, p));
            if matches!(d.origin, crate::provider::Origin::Native { .. }) && !hsm {
                return Err(refuse(format!(
                    "[policy] components_only = true, and provider {:?} is native code, not a pinned component",
                    d.name
                )));
            }
        }
    }
    for (capability, name) in policy.named() {
        if !registry.providers().iter().any(|p| p.descriptor().supports(*capability, name)) {
            return Err(refuse(format!(
                "[policy] names {name} for {capability}, which no loaded provider offers (a policy only narrows \
                 what the providers offer)"
            )));
        }
    }
    Ok(())
}

/// The namespace of the HSM's keys (`pkcs11:` URIs).
pub const PKCS11_PREFIX: &str = "pkcs11";

/// Key namespaces no provider may claim, from the config or a kit: `pkcs11` is the HSM's, and
/// `file` names key files.
pub const RESERVED_PREFIXES: [&str; 2] = [PKCS11_PREFIX, "file"];

/// The priorities a kit's signed manifest may claim for its providers: below the HSM's default
/// (300) and below anything an operator configures at 200 or more, so a kit never outranks
/// them on its own word. `[kit] priority` (the operator's) may set any priority.
pub const KIT_PRIORITIES: std::ops::RangeInclusive<i32> = 0..=199;

/// One validation of every provider entry, configured and from the kit, before anything is
/// loaded: names unique, key prefixes well formed, never reserved, and held by one provider
/// each, and a kit's claimed priority within [`KIT_PRIORITIES`].
///
/// # Errors
/// The first entry that breaks a rule, naming it and the rule.
fn check_entries(config: &Config, kit: &[&crate::bundle::kit::Admitted]) -> Result<(), LoadError> {
    let refuse = |message: String| LoadError::Config { path: config.path.clone(), message };
    let mut names: Vec<(&str, &str)> = Vec::new();
    let mut prefixes: Vec<(&str, &str)> = Vec::new();
    let configured = config.providers.iter().map(|p| (p.name.as_str(), p.key_prefix.as_deref(), "the config"));
    let from_kit = kit
        .iter()
        .map(|a| (a.entry.provider.name.as_str(), a.entry.provider.key_prefix.as_deref(), "the installed kit"));
    for (name, prefix, source) in configured.chain(from_kit) {
        if name == crate::native::NAME {
            return Err(refuse(format!(
                "provider {name:?} ({source}): the name is the host's native hashing provider's (refused)"
            )));
        }
        if let Some((_, other)) = names.iter().find(|(n, _)| *n == name) {
            return Err(refuse(format!(
                "provider {name:?} is named twice ({other} and {source}): name one, or disable the kit's"
            )));
        }
        names.push((name, source));
        let Some(prefix) = prefix else { continue };
        if RESERVED_PREFIXES.contains(&prefix) || prefix.len() < 2 || !prefix.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(refuse(format!(
                "provider {name:?} ({source}) claims the key prefix {prefix:?}: a prefix is two or more lowercase \
                 letters and never {} (refused)",
                RESERVED_PREFIXES.join(" or ")
            )));
        }
        if let Some((other, _)) = prefixes.iter().find(|(_, p)| *p == prefix) {
            return Err(refuse(format!(
                "providers {other:?} and {name:?} ({source}) both claim the key prefix {prefix:?}: one provider holds a \
                 namespace (refused)"
            )));
        }
        prefixes.push((name, prefix));
    }
    let overridden = |name: &str| config.kit.as_ref().is_some_and(|k| k.priority.contains_key(name));
    for a in kit {
        let p = &a.entry.provider;
        if !KIT_PRIORITIES.contains(&p.priority) && !overridden(&p.name) {
            return Err(refuse(format!(
                "the installed kit claims priority {} for provider {:?}; a kit may claim {} to {} (set [kit] priority \
                 to give it more)",
                p.priority,
                p.name,
                KIT_PRIORITIES.start(),
                KIT_PRIORITIES.end()
            )));
        }
    }
    Ok(())
}

/// The providers loaded so far and the key namespaces they hold.
#[derive(Default)]
struct Loaded {
    providers: Vec<Arc<dyn CryptoProvider>>,
    prefixes: Vec<(String, Arc<dyn CryptoProvider>)>,
}

impl Loaded {
    fn add(&mut self, provider: Arc<dyn CryptoProvider>, prefix: Option<String>) {
        if let Some(prefix) = prefix {
            self.prefixes.push((prefix, provider.clone()));
        }
        self.providers.push(provider);
    }
}

/// Which bytes a configured provider's component must be: its pin, or in dev mode the manifest's
/// digest.
fn trust_of(config: &Config, manifest: Option<&Manifest>, p: &ProviderConfig, file: &Path) -> Result<Trust, LoadError> {
    match (manifest, &p.sha256) {
        (None, Some(pin)) => Ok(Trust::Pinned(pin.clone())),
        (None, None) => Err(LoadError::Config {
            path: config.path.clone(),
            message: format!(
                "provider {:?} has no sha256 pin; review the build and run `just pin`, or start with --dev",
                p.name
            ),
        }),
        (Some(m), pin) => {
            let name = p.component.to_string_lossy();
            let entry = m.entry_for_file(&name).ok_or_else(|| LoadError::Component {
                file: file.to_path_buf(),
                message: "not listed in manifest.json (dev mode trusts only the manifest)".into(),
            })?;
            if pin.as_ref().is_some_and(|pin| *pin != entry.sha256) {
                log::warn!(
                    "dev mode: provider {} is pinned to a different digest than the manifest; using the manifest",
                    p.name
                );
            }
            Ok(Trust::Manifest(entry.sha256.clone()))
        }
    }
}

/// A configured provider: its component admitted under its pin, not revoked by the installed
/// kit, and of the world its `role` says.
fn configured(
    config: &Config,
    runtime: &Arc<Runtime>,
    lazy: bool,
    manifest: Option<&Manifest>,
    kit: Option<&crate::bundle::kit::InstalledKit>,
    p: &ProviderConfig,
) -> Result<Arc<dyn CryptoProvider>, LoadError> {
    let file = config.component_dir.join(&p.component);
    let trust = trust_of(config, manifest, p, &file)?;
    if let (Some(k), Trust::Pinned(d) | Trust::Manifest(d)) = (kit, &trust)
        && let Some(r) = k.revocation(d)
    {
        return Err(LoadError::Component {
            file,
            message: format!(
                "sha256 {d} is revoked by the installed kit {} ({}); refused even though the config pins it",
                k.dir.display(),
                r.reason
            ),
        });
    }
    let settings = p.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let admission =
        Admission::new(&p.name, file.clone(), trust, p.priority, settings).instances(instances_of(config, p));
    let loaded = runtime.admit(admission, lazy)?;
    if let (Some(role), Some(world)) = (p.role, loaded.descriptor().world)
        && role != world
    {
        return Err(LoadError::Component {
            file,
            message: format!(
                "provider {:?} is configured with role {:?}, but the component is a {} world component \
                 (from what it exports); refused",
                p.name,
                role.name(),
                world.name()
            ),
        });
    }
    Ok(loaded)
}

/// A provider of the installed kit, admitted under the digest its signed manifest lists.
fn from_kit(
    config: &Config,
    runtime: &Arc<Runtime>,
    lazy: bool,
    kit: Option<&crate::bundle::kit::InstalledKit>,
    a: &crate::bundle::kit::Admitted,
) -> Result<Arc<dyn CryptoProvider>, LoadError> {
    let name = &a.entry.provider.name;
    let file = a.path.clone();
    if let Some(r) = kit.and_then(|k| k.revocation(&a.entry.sha256)) {
        return Err(LoadError::Component {
            file,
            message: format!("sha256 {} is revoked by the installed kit ({})", a.entry.sha256, r.reason),
        });
    }
    let priority = config.kit.as_ref().and_then(|k| k.priority.get(name).copied()).unwrap_or(a.entry.provider.priority);
    let trust = Trust::Pinned(a.entry.sha256.clone());
    let admission = Admission::new(name, file.clone(), trust, crate::provider::Priority(priority), Vec::new())
        .instances(kit_instances(config, a))
        .publisher(&a.publisher);
    let loaded = runtime.admit(admission, lazy)?;
    if loaded.descriptor().world != Some(a.world) {
        return Err(LoadError::Component {
            file,
            message: format!(
                "the kit gives provider {name:?} role {}, but the component is a {} world component",
                a.world.name(),
                loaded.descriptor().world.map_or("native", |w| w.name())
            ),
        });
    }
    Ok(loaded)
}

/// The size of a provider's instance pool. A provider that holds keys in its memory
/// (key_prefix without a seed) keeps one instance: a second one would not know its keys.
/// Every other provider gets `[service] instances`.
fn instances_of(config: &Config, p: &crate::config::ProviderConfig) -> usize {
    if p.key_prefix.is_some() && !p.settings.contains_key("seed") { 1 } else { config.service.instances }
}

/// Describes a component file without running it (`components inspect`): an engine with the
/// default limits compiles it and reads its type.
///
/// # Errors
/// The file cannot be read or does not compile.
pub fn inspect(file: &Path) -> Result<crate::wasm::Inspection, LoadError> {
    Runtime::new(crate::wasm::Limits::default(), crate::wasm::CacheSetting::Disabled)?.inspect(file)
}

/// A kit provider's pool: one instance when it holds keys (it carries no seed setting).
fn kit_instances(config: &Config, a: &crate::bundle::kit::Admitted) -> usize {
    if a.entry.provider.key_prefix.is_some() { 1 } else { config.service.instances }
}

/// The installed kit the config names, checked whole as of now; `None` without `[kit]`.
///
/// # Errors
/// The kit fails any check (its message names the file or the signature).
pub fn installed_kit(config: &Config) -> Result<Option<crate::bundle::kit::InstalledKit>, LoadError> {
    let (Some(k), Some(fp)) = (&config.kit, &config.bootstrap_fingerprint) else { return Ok(None) };
    crate::bundle::kit::open(&k.dir, fp, &k.state, time::OffsetDateTime::now_utc(), &config.policy)
        .map(Some)
        .map_err(|e| LoadError::Config { path: config.path.clone(), message: e.to_string() })
}

/// Loads one component file on its own, trusted as the bytes it is (it is being checked, not
/// admitted), and runs the conformance suite on it (`components check`).
///
/// # Errors
/// The file cannot be read, or is not a provider this host can load.
pub fn check_component(
    file: &Path,
) -> Result<(crate::provider::Descriptor, Vec<crate::conformance::Check>), LoadError> {
    let bytes = crate::fsio::read_bounded_nofollow(file, crate::fsio::limits::COMPONENT, "component")
        .map_err(|e| LoadError::Component { file: file.to_path_buf(), message: e.message })?;
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let runtime = Runtime::new(crate::wasm::Limits::default(), crate::wasm::CacheSetting::Disabled)?;
    let provider = runtime.load("candidate", file, &Trust::Pinned(digest), crate::provider::Priority(0), Vec::new())?;
    let checks = crate::conformance::run(&provider);
    Ok((provider.descriptor().clone(), checks))
}
