//! The request layer: the step between "a request named these things" and "call the domain",
//! written once for every front end. The CLI (local mode), the server's routes and therefore
//! client mode all call these functions; they only parse their own input into these request
//! types, pass a [`Gate`], and render the answer, which is the wire schema's type
//! (`cryptohost_client::api`) so that local and client mode print the same document.
//!
//! Here, and only here: which key a reference, profile or anchor key id means; whether the
//! input is hashed first or signed whole, and what the audit line records about it; which
//! public keys and anchors a verification trusts; the access check before any key is looked up
//! (and the denial's audit line); the class of every error.
//!
//! One file per family: `sign` (sign, DSSE sign, who signs), `verify` (hash, verify, DSSE
//! verify), `keys` (public, generate, list, AES-GCM, HSM admin), `anchors` (the configured
//! trust anchors and the anchored-signer check), `input` (files, streams, bytes, digests).

mod anchors;
mod audit;
mod csr;
mod error;
mod gate;
mod input;
mod jose;
mod keys;
mod lifecycle;
mod sign;
mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

pub use anchors::AnchorsError;
pub use audit::{AuditTrust, audit_anchors, audit_check_proof, audit_prove, audit_verify, audit_vkey};
use cryptohost_client::api::{CapabilityInfo, ProviderInfo, ServedBy, Skipped};
pub use csr::key_csr;
pub use error::RequestError;
pub use gate::{Allow, Gate, Target};
pub use input::Input;
pub use jose::{
    GivenJoseKey, JoseTrust, JwsSign, JwsVerify, JwtSign, JwtVerify, jwks, jws_sign, jws_verify, jwt_sign, jwt_verify,
};
pub use keys::{
    HsmAction, decrypt, encrypt, hsm, key_generate, key_public, keys_list, parse_held_reference, permit_admin,
};
pub use lifecycle::{key_destroy, key_promote, key_retire, key_rotate, key_versions};
pub use sign::{DsseSign, KeySpec, Sign, dsse_sign, record_event, sign};
pub use verify::{
    DsseVerify, GivenKey, PayloadOut, PublicKeySpec, TrustSpec, Verify, dsse_verify, hash, key_type, verify,
};

use crate::audit::{AuditError, AuditLog};
use crate::config::Config;
use crate::keys::KeyService;
use crate::load::Host;
use crate::provider::Descriptor;
use crate::registry::Served;

/// The audit log of a front end: the server's, open for its whole life, or the CLI's, opened
/// on the first key use (a `hash` or `verify` never creates or needs it).
pub struct Audit {
    path: PathBuf,
    /// How a log opened here is kept.
    options: crate::audit::AuditOptions,
    log: Mutex<Option<Arc<AuditLog>>>,
    /// Denial lines written per caller uid in the current minute (see [`DENIALS_PER_MINUTE`]).
    denials: Mutex<std::collections::HashMap<(&'static str, u32), DenialWindow>>,
}

/// At most this many denial lines a minute for one caller uid; the rest are counted, and the
/// count is written as one line when the next minute's first denial is. A caller with no rights
/// cannot fill the disk this way (and so stop every sign, fail-closed); key-use lines are never
/// dropped.
pub const DENIALS_PER_MINUTE: u32 = 20;

/// The longest key reference, profile name or key id a request may name (every one of them can
/// reach an audit line): longer ones are refused before anything is written.
pub const MAX_NAME: usize = 1024;

#[derive(Clone, Copy)]
struct DenialWindow {
    start: std::time::Instant,
    written: u32,
    suppressed: u64,
}

/// What to do with one denial line.
enum Denial {
    /// Write it, after a line counting `suppressed` earlier ones if there were any.
    Write { suppressed: u64 },
    /// Count it only.
    Suppress,
}

impl Audit {
    /// A log already open (the server's, shared by every request).
    pub fn opened(log: Arc<AuditLog>) -> Audit {
        Audit {
            path: log.path().to_path_buf(),
            options: crate::audit::AuditOptions::default(),
            log: Mutex::new(Some(log)),
            denials: Mutex::default(),
        }
    }

    /// The log at `path`, opened (kept as `options` say) when a request first needs it.
    pub fn at(path: PathBuf, options: crate::audit::AuditOptions) -> Audit {
        Audit { path, options, log: Mutex::new(None), denials: Mutex::default() }
    }

    /// Whether a denial line for `uid` is written now, within [`DENIALS_PER_MINUTE`].
    fn denial(&self, uid: u32) -> Denial {
        self.window("denied", uid)
    }

    /// Whether a line of `kind` (a denial, a verification) for `uid` is written now, within
    /// [`DENIALS_PER_MINUTE`] a minute for each kind.
    fn window(&self, kind: &'static str, uid: u32) -> Denial {
        let now = std::time::Instant::now();
        let mut all = self.denials.lock().unwrap_or_else(PoisonError::into_inner);
        let w = all.entry((kind, uid)).or_insert(DenialWindow { start: now, written: 0, suppressed: 0 });
        let mut suppressed = 0;
        if now.duration_since(w.start) >= std::time::Duration::from_secs(60) {
            suppressed = w.suppressed;
            *w = DenialWindow { start: now, written: 0, suppressed: 0 };
        }
        if w.written < DENIALS_PER_MINUTE {
            w.written += 1;
            Denial::Write { suppressed }
        } else {
            w.suppressed += 1;
            Denial::Suppress
        }
    }

    /// The open log: a key is never used, and an admin action never taken, unless it can be
    /// recorded.
    ///
    /// # Errors
    /// The log cannot be opened.
    pub fn log(&self) -> Result<Arc<AuditLog>, AuditError> {
        let mut slot = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(log) = slot.as_ref() {
            return Ok(log.clone());
        }
        let log = Arc::new(AuditLog::open_with(&self.path, &self.options)?);
        *slot = Some(log.clone());
        Ok(log)
    }
}

/// What a request runs against: the loaded host (registry and HSM handle), its configuration,
/// the audit log, and the front end's gate (who is asking, and what they may do).
pub struct Context<'a> {
    pub host: &'a Host,
    pub config: &'a Config,
    pub audit: &'a Audit,
    pub gate: &'a dyn Gate,
}

impl<'a> Context<'a> {
    pub fn new(host: &'a Host, config: &'a Config, audit: &'a Audit, gate: &'a dyn Gate) -> Context<'a> {
        Context { host, config, audit, gate }
    }

    /// Key use through the registry, audited on behalf of the gate's caller.
    fn keys(&self) -> Result<KeyService<'a>, RequestError> {
        Ok(KeyService::with_log(&self.host.registry, self.audit.log()?, self.gate.caller())
            .with_states(self.host.key_states.clone())
            .with_rotation(self.config.rotation)
            .with_audit_key(self.config.audit_key.clone().map(|key| crate::keys::AuditKey {
                key,
                algorithm: self.config.audit_key_algorithm.clone(),
                origin: self.config.audit_origin.clone(),
            })))
    }
}

/// Which provider served a result, for an answer.
pub fn served_by<T>(s: &Served<T>) -> ServedBy {
    let d = s.provider.descriptor();
    ServedBy {
        name: d.name.clone(),
        origin: d.origin.clone(),
        skipped: s.skipped.iter().map(|(p, e)| Skipped { provider: p.clone(), reason: e.to_string() }).collect(),
    }
}

/// A provider as an answer names it, when nothing was skipped to reach it.
pub fn served_by_provider(p: &dyn crate::CryptoProvider) -> ServedBy {
    let d = p.descriptor();
    ServedBy { name: d.name.clone(), origin: d.origin.clone(), skipped: Vec::new() }
}

/// A loaded provider as the wire schema describes it, under `policy`: what it offers and the
/// policy allows, and apart from it what the policy refuses.
pub fn provider_info(d: &Descriptor, policy: &crate::policy::Policy) -> ProviderInfo {
    ProviderInfo {
        name: d.name.clone(),
        reported_name: d.reported_name.clone(),
        version: d.version.clone(),
        priority: d.priority.0,
        origin: d.origin.clone(),
        capabilities: d
            .capabilities
            .iter()
            .map(|c| {
                let (algorithms, refused_by_policy) =
                    c.algorithms.iter().cloned().partition(|a| policy.allows(c.capability, a).is_ok());
                CapabilityInfo { capability: c.capability.name().to_string(), algorithms, refused_by_policy }
            })
            .collect(),
        world: d.world.map(|w| w.name().to_string()),
    }
}

/// Every loaded provider, highest priority first.
pub fn providers(ctx: &Context<'_>) -> Vec<ProviderInfo> {
    let policy = ctx.host.registry.policy();
    ctx.host.providers().iter().map(|p| provider_info(p.descriptor(), policy)).collect()
}

/// A name a request gives (a key reference, profile or key id), refused when over [`MAX_NAME`].
///
/// # Errors
/// Too long: said with its length, never echoed.
pub fn bounded<'t>(field: &str, text: &'t str) -> Result<&'t str, RequestError> {
    if text.len() > MAX_NAME {
        return Err(RequestError::Invalid(format!("{field} is {} bytes; at most {MAX_NAME} are accepted", text.len())));
    }
    Ok(text)
}

/// A signature algorithm by name, or the error every front end gives for an unknown one.
///
/// # Errors
/// Not one of the JOSE signature algorithms this host knows.
pub fn signature_alg(name: &str) -> Result<&'static crate::alg::SignatureAlgorithm, RequestError> {
    crate::alg::signature(name).ok_or_else(|| RequestError::UnknownAlgorithm(name.to_string()))
}

/// An ECDSA signature encoding named in a request (`der` when absent).
///
/// # Errors
/// Not `der` or `p1363` (or their aliases).
pub fn sig_format(name: Option<&str>) -> Result<crate::provider::SigFormat, RequestError> {
    name.unwrap_or("der").parse().map_err(RequestError::Invalid)
}

/// Signs a checkpoint of the audit log as it is now, if an audit key is configured: at a
/// reload and at a clean stop of the server (the host's own acts: no caller, no gate).
///
/// # Errors
/// The audit key cannot sign, or the log cannot be written.
pub fn audit_checkpoint(host: &Host, config: &Config, audit: &Audit) -> Result<(), RequestError> {
    if config.audit_key.is_none() {
        return Ok(());
    }
    let ctx = Context::new(host, config, audit, &Allow);
    let keys = ctx.keys()?;
    keys.audit_log().want_checkpoint();
    keys.checkpoint_if_due()?;
    Ok(())
}

/// Records a verification a peer of the server asked for (`[audit] verifications`, default
/// on): an `"event": "verify"` line naming what verified, written after the answer (never
/// delaying it), at most [`DENIALS_PER_MINUTE`] a minute for one caller uid (the rest counted
/// into a `verify-not-written` line), since a peer with no rights may ask for any number. The
/// one-shot CLI's verifications are not recorded (a local verify needs no audit log).
pub fn record_verification(ctx: &Context<'_>, detail: impl FnOnce() -> String) {
    record_unkeyed(ctx, "verify", detail);
}

/// A verification the deployment policy refused, recorded as [`record_verification`] records
/// verifications (key uses refused by policy are key-use lines of their own).
fn record_refusal<T>(ctx: &Context<'_>, result: Result<T, RequestError>) -> Result<T, RequestError> {
    if let Err(e) = &result
        && e.kind() == cryptohost_client::ErrorKind::RefusedByPolicy
    {
        record_unkeyed(ctx, "refused-by-policy", || e.to_string());
    }
    result
}

/// An `event` line of a server peer's keyless request, after its answer, within the per-uid
/// window of its kind.
fn record_unkeyed(ctx: &Context<'_>, event: &'static str, detail: impl FnOnce() -> String) {
    let Some(caller) = ctx.gate.caller() else { return };
    if event == "verify" && !ctx.config.audit_verifications {
        return;
    }
    let Ok(log) = ctx.audit.log() else { return };
    let mut detail = detail();
    if detail.len() > 1024 {
        let mut cut = 1024;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push_str("...");
    }
    match ctx.audit.window(event, caller.uid) {
        Denial::Suppress => return,
        Denial::Write { suppressed: 0 } => {}
        Denial::Write { suppressed } => log.event_later(&crate::audit::EventRecord {
            time: crate::audit::now_rfc3339(),
            event: format!("{event}-not-written"),
            caller: Some(caller.clone()),
            detail: format!("{suppressed} line(s) of this kind for this caller in the last minute were not written"),
        }),
    }
    log.event_later(&crate::audit::EventRecord {
        time: crate::audit::now_rfc3339(),
        event: event.into(),
        caller: Some(caller),
        detail,
    });
}
