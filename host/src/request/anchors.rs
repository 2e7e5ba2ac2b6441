//! The trust anchors a request may use, read and checked at the time of the request: an
//! installed kit's (checked whole against the bootstrap key), `[trust] anchors` (a plain
//! directory, or an installed kit checked the same way), or, for the CLI, a directory its user
//! names. And the seeds' signing-key resolver: a signer whose key id the anchors list must hold
//! a key the anchors name.

use std::path::Path;

use time::OffsetDateTime;

use super::{Context, RequestError};
use crate::dsse::Signer;
use crate::keys::KeyService;
use crate::trust::{AnchorSet, NoUsableAnchor, TrustedKey};

/// Why anchors could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AnchorsError {
    #[error(
        "no trust anchors are configured ([kit] dir or [trust] anchors); give the public keys to verify with \
         instead (--pub, or public_key / public_keys in a request)"
    )]
    NoneConfigured,
    #[error(
        "{dir} is an installed kit: set [trust] bootstrap_fingerprint in {config} so that it is checked before its \
         anchors are trusted"
    )]
    NeedsBootstrap { dir: String, config: String },
    /// An installed kit failed a check (its message names the file or the signature).
    #[error(transparent)]
    Kit(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    File(#[from] crate::trust::AnchorError),
    #[error(transparent)]
    NoUsable(#[from] NoUsableAnchor),
    #[error("the signing keys' anchors cannot be checked: {0}")]
    Unchecked(Box<AnchorsError>),
    #[error(transparent)]
    Mismatch(Box<Mismatch>),
}

/// A signer whose key id the anchors list, holding a key they do not name.
#[derive(Debug, thiserror::Error)]
#[error(
    "{label}: key id {key_id} is anchored to {anchored} but its key {key} has fingerprint {fingerprint} for \
     {algorithm}{why}: refusing to sign"
)]
pub struct Mismatch {
    pub label: String,
    pub key_id: String,
    pub anchored: String,
    pub key: String,
    pub fingerprint: String,
    pub algorithm: String,
    pub why: String,
}

/// The anchors the config names, re-checked now: an installed kit's (`[kit] dir`), or
/// `[trust] anchors`.
///
/// # Errors
/// None configured, a kit that fails its checks, or anchors that do not load.
pub(super) fn configured(
    ctx: &Context<'_>,
    at: OffsetDateTime,
    purpose: Option<&str>,
) -> Result<AnchorSet, AnchorsError> {
    let config = ctx.config;
    if let (Some(k), Some(fp)) = (&config.kit, &config.bootstrap_fingerprint) {
        let kit = crate::bundle::kit::open(&k.dir, fp, &k.state, OffsetDateTime::now_utc(), ctx.host.registry.policy())
            .map_err(AnchorsError::Kit)?;
        return kit.anchors(&ctx.host.registry, at, purpose).map_err(AnchorsError::File);
    }
    let dir = config.trust_anchors.as_ref().ok_or(AnchorsError::NoneConfigured)?;
    in_dir(ctx, dir, at, purpose)
}

/// The anchors in `dir`: an installed kit (its signed manifest present) is checked against
/// `[trust] bootstrap_fingerprint` first, and refused without one; a plain directory is read.
///
/// # Errors
/// As [`configured`].
pub(super) fn in_dir(
    ctx: &Context<'_>,
    dir: &Path,
    at: OffsetDateTime,
    purpose: Option<&str>,
) -> Result<AnchorSet, AnchorsError> {
    let registry = &ctx.host.registry;
    if crate::bundle::kit::is_installed_kit(dir) {
        let fp = ctx.config.bootstrap_fingerprint.as_ref().ok_or_else(|| AnchorsError::NeedsBootstrap {
            dir: dir.display().to_string(),
            config: ctx.config.path.display().to_string(),
        })?;
        let state = match &ctx.config.kit {
            Some(k) if k.dir == dir => k.state.clone(),
            _ => crate::bundle::state::default_path(dir),
        };
        let kit = crate::bundle::kit::open(dir, fp, &state, OffsetDateTime::now_utc(), ctx.host.registry.policy())
            .map_err(AnchorsError::Kit)?;
        return kit.anchors(registry, at, purpose).map_err(AnchorsError::File);
    }
    crate::trust::load_anchors(registry, dir, at, purpose).map_err(AnchorsError::File)
}

/// The keys an anchor key id names now, for `algorithm` (more than one during a rotation).
///
/// # Errors
/// No anchors configured, or none usable under that key id.
pub(super) fn keys_for_id(ctx: &Context<'_>, key_id: &str, algorithm: &str) -> Result<Vec<TrustedKey>, AnchorsError> {
    let set = configured(ctx, OffsetDateTime::now_utc(), None)?;
    Ok(crate::trust::keys_for_id(set, key_id, algorithm)?)
}

/// Every signer whose key id the configured anchors list must hold a key whose SPKI
/// fingerprint one of those anchors (valid now, for the signer's algorithm) names; several
/// fingerprints under one key id (a key and its successor) are all acceptable. Without
/// configured anchors there is nothing to check.
///
/// # Errors
/// A mismatch (naming the signer, the key id and both fingerprints), or anchors configured but
/// unusable (a signature is then not made: the check cannot be skipped).
pub(super) fn check_signers(
    ctx: &Context<'_>,
    service: &KeyService<'_>,
    signers: &[Signer],
) -> Result<(), RequestError> {
    let config = ctx.config;
    if signers.iter().all(|s| s.key_id.is_none()) || (config.kit.is_none() && config.trust_anchors.is_none()) {
        return Ok(());
    }
    let set = configured(ctx, OffsetDateTime::now_utc(), None).map_err(|e| AnchorsError::Unchecked(Box::new(e)))?;
    for s in signers {
        let Some(id) = &s.key_id else { continue };
        let prefix = format!("anchor {id}:");
        let listed: Vec<&TrustedKey> = set.keys.iter().filter(|k| k.name == *id).collect();
        let refused: Vec<&str> = set.refused.iter().filter(|r| r.starts_with(&prefix)).map(String::as_str).collect();
        if listed.is_empty() && refused.is_empty() {
            continue;
        }
        let (spki, _) = service.public_key(&s.key, &s.algorithm, 0)?;
        let fingerprint = crate::trust::fingerprint(&ctx.host.registry, &spki)?;
        if listed.iter().any(|k| k.fingerprint == fingerprint && k.algorithm == s.algorithm) {
            continue;
        }
        let anchored: Vec<String> = listed.iter().map(|k| format!("{} ({})", k.fingerprint, k.algorithm)).collect();
        return Err(AnchorsError::Mismatch(Box::new(Mismatch {
            label: s.label.clone(),
            key_id: id.clone(),
            anchored: if anchored.is_empty() { "no anchor valid now".into() } else { anchored.join(", ") },
            key: s.key.to_string(),
            fingerprint,
            algorithm: s.algorithm.clone(),
            why: if refused.is_empty() { String::new() } else { format!(" ({})", refused.join("; ")) },
        }))
        .into());
    }
    Ok(())
}
