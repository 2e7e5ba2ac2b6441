//! Trust anchors (`trust-anchors.json`, the seed's format) and SPKI fingerprints: which public
//! keys are trusted, for which algorithm, in which time window, for which purpose.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::RegistryError;
use crate::keyfile;
use crate::registry::Registry;

/// A key a verifier trusts.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// How reports name it: the anchor keyId, or the public key given.
    pub name: String,
    /// `sha256:` + hex of the SPKI DER: what makes two trusted keys one key.
    pub fingerprint: String,
    pub spki: Vec<u8>,
    pub algorithm: String,
    /// Matched against a signature's keyid hint to try this key first.
    pub hints: Vec<String>,
}

/// `sha256:` + lowercase hex of the SPKI DER, hashed through a provider.
///
/// # Errors
/// No hashing provider.
pub fn fingerprint(registry: &Registry, spki: &[u8]) -> Result<String, RegistryError> {
    registry.digest("SHA-256", spki).map(|s| format!("sha256:{}", hex::encode(s.value)))
}

/// A key given to verify with, as a trusted key: `name` for reports, its fingerprint as the
/// hint a signature's keyid may carry. The algorithm follows the key (EC, Ed25519 and ML-DSA
/// keys verify only their own: an `explicit` other one is refused, never substituted); an RSA
/// key takes `explicit`, else `rsa_default`.
///
/// # Errors
/// The key is not a public key this host verifies with, an RSA key without an algorithm, a
/// mismatch, or no hashing provider for the fingerprint.
pub fn trusted_key(
    registry: &Registry,
    name: &str,
    spki: Vec<u8>,
    explicit: Option<&str>,
    rsa_default: Option<&str>,
) -> Result<TrustedKey, KeyClassError> {
    let kind = crate::alg::key_kind(&spki).map_err(|m| KeyClassError::Key { name: name.to_string(), message: m })?;
    let requested = match kind {
        crate::alg::KeyKind::Rsa => explicit.or(rsa_default),
        crate::alg::KeyKind::Fixed(_) => explicit,
    };
    let algorithm = crate::alg::algorithm_for_key(&spki, requested)
        .map_err(|m| KeyClassError::Key { name: name.to_string(), message: m })?;
    let fp = fingerprint(registry, &spki).map_err(KeyClassError::Fingerprint)?;
    Ok(TrustedKey {
        name: name.to_string(),
        fingerprint: fp.clone(),
        spki,
        algorithm: algorithm.to_string(),
        hints: vec![fp],
    })
}

/// Why a public key given to verify with cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyClassError {
    #[error("{name}: {message}")]
    Key { name: String, message: String },
    #[error("fingerprint: {0}")]
    Fingerprint(#[source] RegistryError),
}

/// `trust-anchors.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnchorsFile {
    pub version: String,
    pub created_at: String,
    pub expires_at: String,
    pub trust_anchors: Vec<Anchor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_signature: Option<serde_json::Value>,
}

/// One trusted key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    pub key_id: String,
    pub algorithm_id: String,
    /// `sha256:` + 64 lowercase hex digits of the SPKI DER.
    pub fingerprint: String,
    pub purpose: String,
    pub not_before: String,
    pub not_after: String,
}

/// Why trust anchors could not be used at all.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct AnchorError {
    pub path: String,
    pub message: String,
}

fn time_of(field: &str, text: &str, path: &Path) -> Result<OffsetDateTime, AnchorError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| AnchorError {
        path: path.display().to_string(),
        message: format!("{field} {text:?} is not an RFC 3339 time: {e}"),
    })
}

/// Parses an RFC 3339 time (for `--at`).
///
/// # Errors
/// Not RFC 3339.
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

fn valid_fingerprint(f: &str) -> bool {
    f.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// The trusted keys of an installed bundle directory (`trust-anchors.json` +
/// `public-keys/*.pub`) that pass every rule at `at` for `purpose`, and for each anchor
/// that does not, the rule it failed.
pub struct AnchorSet {
    pub keys: Vec<TrustedKey>,
    pub refused: Vec<String>,
}

/// Loads and checks anchors.
///
/// # Errors
/// The file is missing or malformed, a fingerprint is not `sha256:` + 64 lowercase hex, a
/// time does not parse, or the whole file has expired at `at`.
pub fn load_anchors(
    registry: &Registry,
    dir: &Path,
    at: OffsetDateTime,
    purpose: Option<&str>,
) -> Result<AnchorSet, AnchorError> {
    let path = dir.join("trust-anchors.json");
    let err = |message: String| AnchorError { path: path.display().to_string(), message };
    crate::fsio::trusted(dir, "the trust anchors directory")
        .map_err(|e| AnchorError { path: dir.display().to_string(), message: e.message })?;
    let text = crate::fsio::read_bounded(&path, crate::fsio::limits::MANIFEST, "trust anchors file")
        .map_err(|e| err(e.message))?;
    let mut public_keys = Vec::new();
    if let Ok(entries) = fs::read_dir(dir.join("public-keys")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pub") {
                let spki = keyfile::read_public_key(&p).map_err(|e| err(e.to_string()))?;
                public_keys.push(spki);
            }
        }
    }
    anchors_from(registry, &path, &text, &public_keys, at, purpose)
}

/// A trust-anchors file checked by the rules every use applies, whatever the time: JSON of
/// this format, RFC 3339 times, fingerprints `sha256:` + 64 lowercase hex digits, algorithms
/// this host knows, and each window's start before its end. `bundle create`, `bundle verify`
/// and `bundle install` apply it too, so a kit never passes those to fail only at use.
///
/// # Errors
/// The first rule broken, naming the anchor and the field.
pub fn check_anchors(path: &Path, text: &[u8]) -> Result<AnchorsFile, AnchorError> {
    let err = |message: String| AnchorError { path: path.display().to_string(), message };
    let file: AnchorsFile = serde_json::from_slice(text).map_err(|e| err(format!("not a trust anchors file: {e}")))?;
    time_of("expiresAt", &file.expires_at, path)?;
    time_of("createdAt", &file.created_at, path)?;
    for a in &file.trust_anchors {
        if !valid_fingerprint(&a.fingerprint) {
            return Err(err(format!(
                "anchor {:?}: fingerprint {:?} is not \"sha256:\" + 64 lowercase hex digits",
                a.key_id, a.fingerprint
            )));
        }
        if !crate::alg::is_signature_algorithm(&a.algorithm_id) {
            return Err(err(format!(
                "anchor {:?}: algorithmId {:?} is not one of {}",
                a.key_id,
                a.algorithm_id,
                crate::alg::signature_names()
            )));
        }
        if time_of("notAfter", &a.not_after, path)? < time_of("notBefore", &a.not_before, path)? {
            return Err(err(format!("anchor {:?}: notAfter is before notBefore", a.key_id)));
        }
    }
    Ok(file)
}

/// As [`load_anchors`], over bytes already read (and, for an installed kit, already checked
/// against its signed manifest): the trust-anchors file and the public keys (SPKI DER).
///
/// # Errors
/// As [`load_anchors`].
pub fn anchors_from(
    registry: &Registry,
    path: &Path,
    text: &[u8],
    public_keys: &[Vec<u8>],
    at: OffsetDateTime,
    purpose: Option<&str>,
) -> Result<AnchorSet, AnchorError> {
    let path = path.to_path_buf();
    let err = |message: String| AnchorError { path: path.display().to_string(), message };
    let file = check_anchors(&path, text)?;
    let expires = time_of("expiresAt", &file.expires_at, &path)?;
    if at > expires {
        return Err(err(format!(
            "the trust anchors expired at {} (verification time {})",
            file.expires_at,
            at.format(&Rfc3339).unwrap_or_default()
        )));
    }

    // Every public key given, by fingerprint (computed through a hashing provider).
    let mut available = Vec::new();
    for spki in public_keys {
        let fp = fingerprint(registry, spki).map_err(|e| err(e.to_string()))?;
        available.push((fp, spki.clone()));
    }

    let mut keys = Vec::new();
    let mut refused = Vec::new();
    for a in &file.trust_anchors {
        let not_before = time_of("notBefore", &a.not_before, &path)?;
        let not_after = time_of("notAfter", &a.not_after, &path)?;
        let Some((fp, spki)) = available.iter().find(|(fp, _)| *fp == a.fingerprint) else {
            refused
                .push(format!("anchor {}: no public key in public-keys/ has fingerprint {}", a.key_id, a.fingerprint));
            continue;
        };
        if at < not_before {
            refused.push(format!("anchor {}: not valid before {} (notBefore)", a.key_id, a.not_before));
            continue;
        }
        if at > not_after {
            refused.push(format!("anchor {}: expired at {} (notAfter)", a.key_id, a.not_after));
            continue;
        }
        if let Some(p) = purpose
            && a.purpose != p
        {
            refused.push(format!("anchor {}: purpose {:?} is not {p:?}", a.key_id, a.purpose));
            continue;
        }
        keys.push(TrustedKey {
            name: a.key_id.clone(),
            fingerprint: fp.clone(),
            spki: spki.clone(),
            algorithm: a.algorithm_id.clone(),
            hints: vec![a.key_id.clone(), fp.clone()],
        });
    }
    Ok(AnchorSet { keys, refused })
}

/// No anchor with a key id passes its rules; `why` says, for each one listed, the rule it failed.
#[derive(Debug, thiserror::Error)]
#[error("no usable anchor with key id {key_id:?}: {why}")]
pub struct NoUsableAnchor {
    pub key_id: String,
    pub why: String,
}

/// The keys one anchor key id names in `set` (more than one while a key and its successor are
/// both listed), which must be anchors for `algorithm`.
///
/// # Errors
/// No anchor with that key id passes its rules for `algorithm` (the message says why each one
/// did not).
pub fn keys_for_id(set: AnchorSet, key_id: &str, algorithm: &str) -> Result<Vec<TrustedKey>, NoUsableAnchor> {
    let mut reasons: Vec<String> =
        set.refused.into_iter().filter(|r| r.starts_with(&format!("anchor {key_id}:"))).collect();
    let mut keys = Vec::new();
    for k in set.keys.into_iter().filter(|k| k.name == key_id) {
        if k.algorithm == algorithm {
            keys.push(k);
        } else {
            reasons.push(format!("anchor {key_id}: is for {}, not {algorithm}", k.algorithm));
        }
    }
    if keys.is_empty() {
        let why = if reasons.is_empty() { "no anchor has this key id".to_string() } else { reasons.join("; ") };
        return Err(NoUsableAnchor { key_id: key_id.to_string(), why });
    }
    Ok(keys)
}
