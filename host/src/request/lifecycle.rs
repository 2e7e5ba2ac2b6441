//! Key lifecycle: a held key's versions, and the steps between them. `rotate` makes the next
//! version, staged; `promote` makes a version current (refused while no configured anchor lists
//! its fingerprint, unless forced: anchors pin fingerprints, so a promotion nobody can verify
//! yet would break every verifier); `retire` and `destroy` end a version. Each step is asked of
//! the gate first (operations `rotate`, `promote`, `retire`, `destroy`) and audited by the key
//! service.

use cryptohost_client::api::{KeyVersionInfo, KeyVersions};
use time::OffsetDateTime;

use super::sign::{event, permitted_reference};
use super::{Context, RequestError};
use crate::config::Operation;
use crate::keyref::KeyRef;
use crate::keys::{KeyError, Step};
use crate::lifecycle::{KeyEntry, VersionEntry};

/// A version as answers describe it, its age counted to `now`.
fn info(v: &VersionEntry, now: OffsetDateTime) -> KeyVersionInfo {
    let age_days =
        crate::trust::parse_time(&v.created).map(|c| u64::try_from((now - c).whole_days()).unwrap_or(0)).unwrap_or(0);
    KeyVersionInfo {
        version: v.version,
        state: v.state.name().to_string(),
        algorithm: v.algorithm.clone(),
        created: v.created.clone(),
        adopted: v.adopted,
        changed: v.changed.clone(),
        age_days,
        provider: v.provider.clone(),
        spki_sha256: v.spki_sha256.clone(),
        token_serial: v.token_serial.clone(),
        cka_id: v.cka_id.clone(),
    }
}

fn describe(key: &KeyRef, entry: Option<&KeyEntry>) -> KeyVersions {
    let now = OffsetDateTime::now_utc();
    KeyVersions {
        key: key.at_version(None).to_string(),
        current: entry.map_or(Some(1), |e| e.current().map(|v| v.version)),
        versions: entry.map(|e| e.versions.iter().map(|v| info(v, now)).collect()).unwrap_or_default(),
        step: None,
        version: None,
        public_key: None,
        warning: None,
    }
}

/// The key's versions as the key-state file records them now.
fn versions_now(ctx: &Context<'_>, key: &KeyRef) -> Result<KeyVersions, RequestError> {
    let snapshot = ctx.host.key_states.snapshot().map_err(KeyError::from)?;
    Ok(describe(key, snapshot.entry(&key.at_version(None).to_string())))
}

const LIFECYCLE: [Operation; 5] =
    [Operation::Rotate, Operation::Promote, Operation::Retire, Operation::Destroy, Operation::Admin];

/// A key's versions (a caller needs a lifecycle rule for the key, or admin).
///
/// # Errors
/// Denied, or the key-state file cannot be read.
pub fn key_versions(ctx: &Context<'_>, key: &KeyRef) -> Result<KeyVersions, RequestError> {
    permitted_reference(ctx, key, &LIFECYCLE, "versions")?;
    held_only(key)?;
    versions_now(ctx, key)
}

fn held_only(key: &KeyRef) -> Result<(), RequestError> {
    if key.is_held() {
        Ok(())
    } else {
        Err(RequestError::Invalid("a key file has no versions: versions are for keys a provider holds".into()))
    }
}

/// Makes the next version of a held key, staged (used for nothing until promoted).
///
/// # Errors
/// Denied, an unknown algorithm, or as [`crate::keys::KeyService::rotate`].
pub fn key_rotate(
    ctx: &Context<'_>,
    key: &KeyRef,
    algorithm: Option<&str>,
    rsa_bits: u32,
) -> Result<KeyVersions, RequestError> {
    permitted_reference(ctx, key, &[Operation::Rotate], "rotate")?;
    held_only(key)?;
    if let Some(a) = algorithm
        && crate::alg::aead(a).is_none()
    {
        super::signature_alg(a)?;
    }
    let rotated = ctx.keys()?.rotate(key, algorithm, rsa_bits)?;
    let mut out = versions_now(ctx, key)?;
    out.step = Some("rotate".into());
    out.version = Some(rotated.version);
    if !rotated.spki.is_empty() {
        out.public_key = Some(crate::keyfile::to_pem("PUBLIC KEY", &rotated.spki)?.to_string());
    }
    Ok(out)
}

/// Makes `version` current (the current one retired). A signing key's version is promoted only
/// when a configured anchor (a kit's or `[trust] anchors`) lists its fingerprint, unless
/// `force` (then the answer warns and an event line records it).
///
/// # Errors
/// Denied, no such version, no anchor lists it (and not forced), or as
/// [`crate::keys::KeyService::change_state`].
pub fn key_promote(ctx: &Context<'_>, key: &KeyRef, version: u32, force: bool) -> Result<KeyVersions, RequestError> {
    permitted_reference(ctx, key, &[Operation::Promote], "promote")?;
    held_only(key)?;
    let base = key.at_version(None).to_string();
    let snapshot = ctx.host.key_states.snapshot().map_err(KeyError::from)?;
    let conflict = |message: String| RequestError::Key(KeyError::Version { key: base.clone(), message });
    let v = snapshot
        .entry(&base)
        .and_then(|e| e.version(version))
        .cloned()
        .ok_or_else(|| conflict(format!("has no version {version} (see `keys versions`)")))?;
    let mut warning = None;
    if let Some(fp) = &v.spki_sha256 {
        let fingerprint = format!("sha256:{fp}");
        let (anchored, unusable) = match super::anchors::configured(ctx, OffsetDateTime::now_utc(), None) {
            Ok(set) => (set.keys.iter().any(|k| k.fingerprint == fingerprint), String::new()),
            Err(super::AnchorsError::NoneConfigured) => (false, String::new()),
            Err(e) if force => (false, format!(" (the configured anchors cannot be used: {e})")),
            Err(e) => return Err(e.into()),
        };
        if !anchored {
            let why = format!(
                "version {version}'s fingerprint {fingerprint} is listed by no configured trust anchor{unusable}: \
                 publish it first (a kit or anchors file that lists both versions under the key's key id), so that \
                 verifiers accept what it signs"
            );
            if !force {
                return Err(conflict(format!("{why}; or promote with --force")));
            }
            event(ctx, "promote-forced", format!("{base} version {version}: {why}"))?;
            warning = Some(format!("{why}; promoted anyway (--force, audited)"));
        }
    }
    ctx.keys()?.change_state(key, version, Step::Promote)?;
    let mut out = versions_now(ctx, key)?;
    out.step = Some("promote".into());
    out.version = Some(version);
    out.warning = warning;
    Ok(out)
}

/// Retires a staged version (the current one is retired by promoting another).
///
/// # Errors
/// Denied, or as [`crate::keys::KeyService::change_state`].
pub fn key_retire(ctx: &Context<'_>, key: &KeyRef, version: u32) -> Result<KeyVersions, RequestError> {
    permitted_reference(ctx, key, &[Operation::Retire], "retire")?;
    held_only(key)?;
    ctx.keys()?.change_state(key, version, Step::Retire)?;
    let mut out = versions_now(ctx, key)?;
    out.step = Some("retire".into());
    out.version = Some(version);
    Ok(out)
}

/// Destroys a version that is not current: its objects on the token are destroyed (a
/// simulation forgets it), and the key-state file refuses it from then on. `confirm` must be
/// given (the CLI's `--yes`).
///
/// # Errors
/// Denied, not confirmed, or as [`crate::keys::KeyService::change_state`].
pub fn key_destroy(ctx: &Context<'_>, key: &KeyRef, version: u32, confirm: bool) -> Result<KeyVersions, RequestError> {
    permitted_reference(ctx, key, &[Operation::Destroy], "destroy")?;
    held_only(key)?;
    if !confirm {
        return Err(RequestError::Invalid(format!(
            "destroying {} version {version} cannot be undone: confirm it (--yes, or \"confirm\": true)",
            key.at_version(None)
        )));
    }
    ctx.keys()?.change_state(key, version, Step::Destroy)?;
    let mut out = versions_now(ctx, key)?;
    out.step = Some("destroy".into());
    out.version = Some(version);
    Ok(out)
}
