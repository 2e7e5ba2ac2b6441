//! `hash`, `sign`, `verify`, `keygen`: one file in, a digest, signature or key pair out.

use std::process::ExitCode;

use cryptohost::fsio;
use cryptohost::keyfile;
use cryptohost::keys::KeyService;

use super::backend::{Backend, Signers, VerifyKey};
use super::{Cli, HashArgs, KeygenArgs, Outcome, SignArgs, VerifyArgs, open, render};

pub(super) fn hash(b: &Backend, a: &HashArgs) -> Outcome {
    render::hash(&b.hash(&a.alg, &a.file)?, a.json, b.via())
}

pub(super) fn sign(b: &Backend, a: &SignArgs) -> Outcome {
    let key: Vec<String> = a.key.iter().map(|k| super::backend::versioned(k, a.version)).collect::<Result<_, _>>()?;
    let who = Signers {
        keys: key.as_slice(),
        alg: a.alg.as_deref(),
        profiles: a.profile.as_slice(),
        key_ids: a.key_id.as_slice(),
    };
    render::sign(&b.sign(&who, &a.file, a.sig_format)?, a.json, a.out.as_deref(), b.via())
}

pub(super) fn verify(b: &Backend, a: &VerifyArgs, verbose: bool) -> Outcome {
    let key = match (&a.public, &a.key_id) {
        (Some(path), _) => VerifyKey::Pub(path),
        (None, Some(id)) => VerifyKey::KeyId(id),
        (None, None) => return Err(anyhow::anyhow!("give --pub or --key-id").into()),
    };
    let alg = match (&a.alg, &a.public) {
        (Some(alg), _) => alg.clone(),
        // The key's type decides: an EC curve, Ed25519 or an ML-DSA parameter set.
        (None, Some(path)) => cryptohost::alg::algorithm_for_key(&keyfile::read_public_key(path)?, None)
            .map_err(|e| anyhow::anyhow!("{}: {e}; give --alg", path.display()))?
            .to_string(),
        (None, None) => return Err(anyhow::anyhow!("--key-id needs --alg").into()),
    };
    let signature = keyfile::read_signature(&a.sig)?;
    render::verify(&b.verify(&alg, key, signature, &a.file, a.sig_format)?, a.json, verbose, b.via())
}

pub(super) fn keygen(cli: &Cli, a: &KeygenArgs) -> Outcome {
    cryptohost::request::signature_alg(&a.alg)?;
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
    let service = KeyService::new(&registry, &config.audit_path, config.checkpoint_every)?;
    // The files are written inside the audited operation: a key that did not reach its file
    // is audited as an error, not as `ok`. Both are created O_EXCL, never through a symlink.
    let provider = service.generate_file_key(&a.out, &a.alg, a.rsa_bits, |key| {
        let private_pem = keyfile::to_pem("PRIVATE KEY", &key.pkcs8_der).map_err(|e| e.to_string())?;
        let public = if a.pub_format == "jwk" {
            let jwk = cryptohost::jose::jwk::publish(&key.spki_der, None)?;
            serde_json::to_string_pretty(&jwk).map_err(|e| e.to_string())? + "\n"
        } else {
            keyfile::to_pem("PUBLIC KEY", &key.spki_der).map_err(|e| e.to_string())?.to_string()
        };
        fsio::write_new(&a.out, private_pem.as_bytes(), 0o600).map_err(|e| e.to_string())?;
        if let Some(p) = &a.public
            && let Err(e) = fsio::write_new(p, public.as_bytes(), 0o644)
        {
            // The pair is incomplete: do not leave half of it behind.
            let _ = std::fs::remove_file(&a.out);
            return Err(e.to_string());
        }
        Ok(())
    })?;
    let served = registry
        .by_name(&provider)
        .map(|p| render::provider(&cryptohost::request::served_by_provider(p.as_ref())))
        .unwrap_or(provider);
    if a.json {
        outln!(
            "{}",
            serde_json::to_value(super::reports::KeygenReport {
                algorithm: a.alg.clone(),
                private_key: a.out.clone(),
                public_key: a.public.clone(),
                provider: served,
            })?
        );
    } else {
        served!("cryptohost: keygen: served by {served}");
        outln!("wrote {}", a.out.display());
        if let Some(p) = &a.public {
            outln!("wrote {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
