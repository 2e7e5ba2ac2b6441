//! `hash`, `sign`, `verify`, `keygen`: one file in, a digest, signature or key pair out.

use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use cryptohost::fsio;
use cryptohost::keyfile;
use cryptohost::keys::KeyService;
use cryptohost::provider::SignInput;
use serde_json::json;

use super::{
    Cli, HashArgs, KeygenArgs, Outcome, SignArgs, VerifyArgs, open, open_registry, parse_ref, provider_json, report,
    served_by,
};

pub(super) fn hash(cli: &Cli, a: &HashArgs) -> Outcome {
    let registry = open_registry(cli)?;
    let served = registry.digest_file(&a.alg, &a.file)?;
    let hex = hex::encode(&served.value);
    if a.json {
        outln!(
            "{}",
            json!({"algorithm": cryptohost::alg::canonical_hash(&a.alg), "digest": hex, "provider": provider_json(&served)})
        );
    } else {
        report("hash", &served);
        outln!("{hex}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The signature algorithm named on the command line, or a clear "unknown algorithm" failure.
fn signature_alg(alg: &str) -> anyhow::Result<&'static cryptohost::alg::SignatureAlgorithm> {
    cryptohost::alg::signature(alg).with_context(|| {
        format!("unknown signature algorithm {alg:?} (expected one of {})", cryptohost::alg::signature_names())
    })
}

pub(super) fn sign(cli: &Cli, a: &SignArgs) -> Outcome {
    signature_alg(&a.alg)?;
    let reference = parse_ref(&a.key)?;
    if let cryptohost::keys::KeyRef::File(path) = &reference {
        // Read (and refuse) a bad key file before anything else starts.
        keyfile::read_private_key(path)?;
    }
    let (config, registry) = open(cli)?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    let out = service.sign_file(&reference, &a.alg, &a.file, a.sig_format, config.max_payload)?;
    let signed = &out.signed;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&signed.signature);
    if let Some(path) = &a.out {
        // A fresh file renamed into place: a symlink planted at --out is replaced, not followed.
        fsio::replace_atomic(path, &signed.signature, 0o644)?;
    }
    if a.json {
        outln!(
            "{}",
            json!({"algorithm": a.alg, "signature": b64, "hashed_by": out.hashed_by.as_ref().map(provider_json),
                   "signed_by": {"name": signed.provider, "origin": signed.origin}})
        );
    } else {
        if let Some(d) = &out.hashed_by {
            report("hash", d);
        }
        eprintln!("cryptohost: sign: served by {} ({})", signed.provider, signed.origin);
        if a.out.is_none() {
            outln!("{b64}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(cli: &Cli, a: &VerifyArgs) -> Outcome {
    let alg = signature_alg(&a.alg)?;
    let sig = keyfile::read_signature(&a.sig)?;
    let (config, registry) = open(cli)?;
    let keys = match (&a.public, &a.key_id) {
        (Some(path), _) => vec![keyfile::read_public_key(path)?],
        (None, Some(id)) => {
            let now = time::OffsetDateTime::now_utc();
            let set = cryptohost::load::configured_anchors(&config, &registry, now, None)
                .map_err(|e| anyhow::anyhow!("--key-id: {e}"))?;
            cryptohost::trust::keys_for_id(set, id, alg.name)
                .map_err(|e| anyhow::anyhow!(e))?
                .into_iter()
                .map(|k| k.spki)
                .collect()
        }
        (None, None) => return Err(anyhow::anyhow!("give --pub or --key-id").into()),
    };
    // Under a key id that names several keys (a rotation), any one of them verifying is enough.
    let mut answer = None;
    for spki in &keys {
        // EdDSA and ML-DSA verify the whole message: there is no separate hashing step to report.
        let (verified, digest) = match alg.hash {
            Some(_) => {
                let (verified, digest) = registry.verify_file(alg.name, spki, &a.file, &sig, a.sig_format)?;
                (verified, Some(digest))
            }
            None => {
                let message = fsio::read_bounded(&a.file, config.max_payload as u64, "message to verify whole")
                    .with_context(|| format!("{} verifies whole messages", alg.name))?;
                (registry.verify(alg.name, spki, SignInput::Message(&message), &sig, a.sig_format)?, None)
            }
        };
        let valid = verified.value;
        answer = Some((verified, digest));
        if valid {
            break;
        }
    }
    let (verified, digest) = answer.context("no key to verify with")?;
    let word = if verified.value { "valid" } else { "invalid" };
    if a.json {
        outln!(
            "{}",
            json!({"algorithm": a.alg, "valid": verified.value, "hashed_by": digest.as_ref().map(provider_json), "verified_by": provider_json(&verified)})
        );
    } else {
        if let Some(d) = &digest {
            report("hash", d);
        }
        report("verify", &verified);
        outln!("{word}");
    }
    Ok(if verified.value { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(super) fn keygen(cli: &Cli, a: &KeygenArgs) -> Outcome {
    signature_alg(&a.alg)?;
    for path in std::iter::once(&a.out).chain(a.public.as_ref()) {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(anyhow::anyhow!(
                "{} already exists (it must not exist yet: keys are never overwritten)",
                path.display()
            )
            .into());
        }
    }
    let (config, registry) = open(cli)?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    // The files are written inside the audited operation: a key that did not reach its file
    // is audited as an error, not as `ok`. Both are created O_EXCL, never through a symlink.
    let provider = service.generate_file_key(&a.out, &a.alg, a.rsa_bits, |key| {
        let private_pem = keyfile::to_pem("PRIVATE KEY", &key.pkcs8_der).map_err(|e| e.to_string())?;
        let public_pem = keyfile::to_pem("PUBLIC KEY", &key.spki_der).map_err(|e| e.to_string())?;
        fsio::write_new(&a.out, private_pem.as_bytes(), 0o600).map_err(|e| e.to_string())?;
        if let Some(p) = &a.public
            && let Err(e) = fsio::write_new(p, public_pem.as_bytes(), 0o644)
        {
            // The pair is incomplete: do not leave half of it behind.
            let _ = std::fs::remove_file(&a.out);
            return Err(e.to_string());
        }
        Ok(())
    })?;
    let served = registry.by_name(&provider).map(|p| served_by(p.as_ref())).unwrap_or(provider);
    if a.json {
        outln!("{}", json!({"algorithm": a.alg, "private_key": a.out, "public_key": a.public, "provider": served}));
    } else {
        eprintln!("cryptohost: keygen: served by {served}");
        outln!("wrote {}", a.out.display());
        if let Some(p) = &a.public {
            outln!("wrote {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
