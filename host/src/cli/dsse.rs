//! `dsse sign`, `dsse verify`, `trust fingerprint`: envelopes and the keys they are checked by.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cryptohost::alg::KeyKind;
use cryptohost::config::payload_limit;
use cryptohost::fsio;
use cryptohost::keyfile;
use cryptohost::keys::KeyService;
use serde_json::json;

use super::{Cli, DsseSignArgs, DsseVerifyArgs, Outcome, open, open_registry, parse_ref};

pub(super) fn sign(cli: &Cli, a: &DsseSignArgs) -> Outcome {
    use cryptohost::dsse::{self as lib, Signer};
    let (config, registry) = open(cli)?;
    let mut signers = Vec::new();
    for k in &a.key {
        let alg = a.alg.clone().context("--key needs --alg (profiles carry their own)")?;
        signers.push(Signer { label: k.clone(), key: parse_ref(k)?, algorithm: alg, key_id: None });
    }
    for name in &a.profile {
        let p =
            config.profiles.get(name).with_context(|| format!("no profile {name:?} in {}", config.path.display()))?;
        signers.push(Signer {
            label: name.clone(),
            key: parse_ref(&p.key)?,
            algorithm: p.algorithm.clone(),
            key_id: p.key_id.clone(),
        });
    }
    for id in &a.key_id {
        let (name, p) =
            config.profiles.iter().find(|(_, p)| p.key_id.as_deref() == Some(id.as_str())).with_context(|| {
                format!("no profile has key_id {id:?}: map it to a key in [profiles] of {}", config.path.display())
            })?;
        signers.push(Signer {
            label: name.clone(),
            key: parse_ref(&p.key)?,
            algorithm: p.algorithm.clone(),
            key_id: Some(id.clone()),
        });
    }
    if signers.is_empty() {
        return Err(anyhow::anyhow!("nothing to sign with: give --key (with --alg), --profile or --key-id").into());
    }
    let payload = fsio::read_bounded(&a.file, config.max_payload as u64, "DSSE payload")
        .context("the limit is [dsse] max_payload_mib")?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    cryptohost::load::check_anchored_signers(&config, &registry, &service, &signers).map_err(|e| anyhow::anyhow!(e))?;
    let (envelope, failures) =
        lib::sign(&registry, &service, &a.payload_type, &payload, &signers, a.sig_format, a.allow_partial)?;
    for (label, e) in &failures {
        eprintln!("cryptohost: dsse sign: {label} FAILED (kept the others, --allow-partial): {e}");
    }
    let json = envelope.to_json();
    match &a.out {
        // A fresh file renamed into place: never written through a symlink at --out.
        Some(out) => fsio::replace_atomic(out, (json + "\n").as_bytes(), 0o644)?,
        None => outln!("{json}"),
    }
    eprintln!("cryptohost: dsse sign: {} signature(s)", envelope.signatures.len());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(cli: &Cli, a: &DsseVerifyArgs) -> Outcome {
    use cryptohost::dsse::{self as lib, Envelope, TrustedKey};
    if !a.public.is_empty() && a.anchors.is_some() {
        return Err(anyhow::anyhow!("give either --pub (repeatable) or --anchors DIR, not both").into());
    }
    if a.threshold == 0 {
        return Err(anyhow::anyhow!("--threshold must be at least 1").into());
    }
    let (config, registry) = open(cli)?;
    let limit = match a.max_payload_mib {
        Some(m) => payload_limit(m).map_err(|e| anyhow::anyhow!("--max-payload-mib {e}"))?,
        None => config.max_payload,
    };
    // The envelope is base64 of the payload plus its signatures: bound it before reading.
    let ceiling = (limit / 3 * 4 + (1 << 20)) as u64;
    let raw = fsio::read_bounded(&a.envelope, ceiling, "DSSE envelope")?;
    let envelope =
        Envelope::parse(&raw, limit, config.max_signatures).with_context(|| a.envelope.display().to_string())?;
    let at = match &a.at {
        Some(t) => cryptohost::trust::parse_time(t).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        None => time::OffsetDateTime::now_utc(),
    };
    let mut refused = Vec::new();
    let anchors = match (&a.anchors, a.public.is_empty()) {
        (Some(dir), _) => Some(cryptohost::load::anchors_in(&config, &registry, dir, at, a.purpose.as_deref())),
        (None, true) => Some(
            cryptohost::load::configured_anchors(&config, &registry, at, a.purpose.as_deref())
                .map_err(|e| format!("{e}; or give --pub (repeatable) or --anchors DIR")),
        ),
        (None, false) => None,
    };
    let keys: Vec<TrustedKey> = if let Some(set) = anchors {
        let set = set.map_err(|e| anyhow::anyhow!(e))?;
        refused = set.refused;
        set.keys
    } else {
        let mut keys = Vec::new();
        for given in &a.public {
            let (alg, path) = split_alg(given);
            let spki = keyfile::read_public_key(Path::new(path))?;
            // EC, Ed25519 and ML-DSA keys verify only their own algorithm; --alg or ALG: name the
            // algorithm of an RSA key, and never replace an EC key's.
            let kind = cryptohost::alg::key_kind(&spki).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            let requested = match kind {
                KeyKind::Rsa => alg.or(a.alg.as_deref()),
                KeyKind::Fixed(_) => alg,
            };
            let algorithm = cryptohost::alg::algorithm_for_key(&spki, requested)
                .map_err(|e| anyhow::anyhow!("{path}: {e} (for an RSA key: --pub PS256:{path} or --alg)"))?;
            let fp = lib::fingerprint(&registry, &spki).map_err(|e| anyhow::anyhow!(e))?;
            keys.push(TrustedKey {
                name: path.to_string(),
                fingerprint: fp.clone(),
                spki,
                algorithm: algorithm.to_string(),
                hints: vec![fp],
            });
        }
        keys
    };
    let result = lib::verify(&registry, &envelope, &keys, a.threshold, a.sig_format)?;
    if result.valid
        && let Some(out) = &a.payload_out
    {
        // A fresh file renamed into place: never written through a symlink.
        fsio::replace_atomic(out, &result.payload, 0o644)?;
    }
    if a.json {
        outln!(
            "{}",
            json!({"valid": result.valid, "payloadType": result.payload_type, "verifiedBy": result.verified_by,
                   "verifiedFingerprints": result.verified_fingerprints,
                   "threshold": result.threshold, "notes": result.notes, "refusedAnchors": refused})
        );
    } else {
        for r in &refused {
            eprintln!("cryptohost: dsse verify: {r}");
        }
        for n in &result.notes {
            eprintln!("cryptohost: dsse verify: {n}");
        }
        if result.valid {
            eprintln!("cryptohost: dsse verify: verified by {}", result.verified_by.join(", "));
        }
        outln!("{}", if result.valid { "valid" } else { "invalid" });
    }
    Ok(if result.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `PS256:path` -> (Some("PS256"), "path"); anything else is a plain path (a path that
/// happens to contain a colon still works when its prefix is not an algorithm name).
pub(super) fn split_alg(given: &str) -> (Option<&str>, &str) {
    match given.split_once(':') {
        Some((alg, path)) if cryptohost::alg::is_signature_algorithm(alg) && !path.is_empty() => (Some(alg), path),
        _ => (None, given),
    }
}

pub(super) fn fingerprint(cli: &Cli, public: &Path) -> Outcome {
    let spki = keyfile::read_public_key(public)?;
    let registry = open_registry(cli)?;
    outln!("{}", cryptohost::dsse::fingerprint(&registry, &spki).map_err(|e| anyhow::anyhow!(e))?);
    Ok(ExitCode::SUCCESS)
}
