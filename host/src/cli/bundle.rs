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
    // A kit is verified (and installed) by the trust root's own verifier, never by providers
    // from a kit: the installed kit may be missing, broken, or the one being replaced.
    // The config, when there is one: its deployment policy holds for kits too, and it says
    // where the kit's state lives.
    let config = match cli.config_path() {
        Ok(path) => Some(cryptohost::config::Config::load(&path)?),
        Err(_) => None,
    };
    let policy = config.as_ref().map(|c| c.policy.clone()).unwrap_or_default();
    let root = cryptohost::trust_root::registry().with_policy(policy);
    match b {
        BundleCommand::Create { from, key, alg, out, json } => {
            let (config, registry) = open(cli)?;
            let service = KeyService::new(&registry, &config.audit_path, config.checkpoint_every)?;
            let signer = cryptohost::dsse::Signer {
                label: key.clone(),
                key: parse_ref(key)?,
                algorithm: alg.clone(),
                key_id: None,
            };
            let manifest = bundle::create(&registry, &service, from, &signer, out, Limits::default())?;
            if *json {
                let report = super::reports::BundleCreated {
                    archive: out.clone(),
                    files: manifest.files.len(),
                    created_at: manifest.created_at.clone(),
                };
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                outln!("wrote {} ({} files)", out.display(), manifest.files.len());
            }
        }
        BundleCommand::Verify { archive, bootstrap: bs, json } => {
            let (manifest, _) = bundle::verify(&root, archive, &bootstrap(bs)?, Limits::default())?;
            if *json {
                let report = super::reports::BundleVerified {
                    archive: archive.clone(),
                    valid: true,
                    files: manifest.files.len(),
                    created_at: manifest.created_at.clone(),
                };
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                outln!("valid: {} files, signed manifest of {}", manifest.files.len(), manifest.created_at);
            }
        }
        BundleCommand::Install { archive, bootstrap: bs, into, state, allow_downgrade, json } => {
            // Where the config will look for it when the kit goes where the config's [kit] is.
            let configured = config
                .as_ref()
                .and_then(|c| c.kit.as_ref())
                .filter(|k| same_place(&k.dir, into))
                .map(|k| k.state.clone());
            let state = state.clone().or(configured).unwrap_or_else(|| bundle::state::default_path(into));
            let bs = bootstrap(bs)?;
            let installed = bundle::install(&root, archive, &bs, into, &state, Limits::default(), *allow_downgrade);
            // A kit brings trust and code: its installation is an audit line of the config's log.
            if let Some(c) = config.as_ref() {
                let outcome = match &installed {
                    Ok(m) => format!("ok: {} files, kit createdAt {}", m.files.len(), m.created_at),
                    Err(e) => format!("error: {e}"),
                };
                let audit = cryptohost::request::Audit::at(c.audit_path.clone(), c.audit_options());
                let detail = format!("{} into {}: {outcome}", archive.display(), into.display());
                cryptohost::request::record_event(&audit, None, "bundle-install", detail)?;
            }
            let manifest = installed?;
            if *json {
                let report = super::reports::BundleInstalled {
                    archive: archive.clone(),
                    into: into.clone(),
                    state: state.clone(),
                    files: manifest.files.len(),
                    created_at: manifest.created_at.clone(),
                };
                outln!("{}", serde_json::to_string(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "installed {} files into {} (kit createdAt {})",
                manifest.files.len(),
                into.display(),
                manifest.created_at
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether two paths name the same place (the last part may not exist yet).
fn same_place(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        std::fs::canonicalize(parent).ok().map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}
