//! `bundle create|verify|install`: offline trust kits.

use std::process::ExitCode;

use anyhow::Result;
use cryptohost::keyfile;
use cryptohost::keys::KeyService;

use super::{BootstrapArgs, BundleCommand, Cli, Outcome, open, parse_ref};

fn bootstrap(b: &BootstrapArgs) -> Result<cryptohost::bundle::Bootstrap> {
    use cryptohost::bundle::Bootstrap;
    match (&b.bootstrap_pub, &b.bootstrap_fingerprint) {
        (Some(p), None) => {
            let spki = keyfile::read_public_key(p)?;
            let algorithm = match (&b.alg, cryptohost::alg::algorithm_of_spki(&spki)) {
                (Some(a), _) => a.clone(),
                (None, Some(a)) => a.to_string(),
                (None, None) => anyhow::bail!("{}: an RSA key: give --alg", p.display()),
            };
            Ok(Bootstrap::Key { spki, algorithm })
        }
        (None, Some(fp)) => Ok(Bootstrap::Fingerprint(fp.clone())),
        _ => anyhow::bail!("give exactly one of --bootstrap-pub or --bootstrap-fingerprint"),
    }
}

pub(super) fn bundle(cli: &Cli, b: &BundleCommand) -> Outcome {
    use cryptohost::bundle::{self, Limits};
    let (config, registry) = open(cli)?;
    match b {
        BundleCommand::Create { from, key, alg, out } => {
            let service = KeyService::new(&registry, &config.audit_path)?;
            let signer = cryptohost::dsse::Signer {
                label: key.clone(),
                key: parse_ref(key)?,
                algorithm: alg.clone(),
                key_id: None,
            };
            let manifest = bundle::create(&registry, &service, from, &signer, out, Limits::default())?;
            println!("wrote {} ({} files)", out.display(), manifest.files.len());
        }
        BundleCommand::Verify { archive, bootstrap: bs } => {
            let (manifest, _) = bundle::verify(&registry, archive, &bootstrap(bs)?, Limits::default())?;
            println!("valid: {} files, signed manifest of {}", manifest.files.len(), manifest.created_at);
        }
        BundleCommand::Install { archive, bootstrap: bs, into } => {
            let manifest = bundle::install(&registry, archive, &bootstrap(bs)?, into, Limits::default())?;
            println!("installed {} files into {}", manifest.files.len(), into.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
