//! `providers`, `pin`, `keys`, `encrypt`/`decrypt`, `hsm`: what is loaded and the keys it holds.

use std::path::Path;
use std::process::ExitCode;

use cryptohost::config::{Manifest, write_pins};
use cryptohost::provider::Origin;
use cryptohost_client::HsmAction;

use super::backend::{Backend, VersionStep};
use super::{Cli, CryptArgs, HsmCommand, KeysCommand, Outcome, PinArgs, open_registry, render};

pub(super) fn providers(cli: &Cli, as_json: bool) -> Outcome {
    let registry = open_registry(cli)?;
    let policy = registry.policy();
    let list: Vec<_> =
        registry.providers().iter().map(|p| cryptohost::request::provider_info(p.descriptor(), policy)).collect();
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !policy.is_open() {
        outln!("policy: {policy}");
    }
    for d in list {
        outln!("{}  priority {}  ({} {})", d.name, d.priority, d.reported_name, d.version);
        match &d.origin {
            Origin::Component { file, sha256, publisher } => {
                outln!("  component {file}\n  sha256    {sha256}");
                if let Some(p) = publisher {
                    outln!("  publisher {p} (signed component manifest of the installed kit)");
                }
                if let Some(w) = &d.world {
                    outln!("  world     {w}");
                }
            }
            Origin::Native { module } => outln!("  native    {module}"),
        }
        for c in &d.capabilities {
            let allowed = if c.algorithms.is_empty() { "(none)".to_string() } else { c.algorithms.join(", ") };
            if c.refused_by_policy.is_empty() {
                outln!("  {:<13}{allowed}", c.capability);
            } else {
                outln!("  {:<13}{allowed}  [refused by policy: {}]", c.capability, c.refused_by_policy.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn pin(cli: &Cli, a: &PinArgs) -> Outcome {
    // Relative to the config file, like every path the config names.
    let config_path = cli.config_path()?;
    let manifest_path = config_path.parent().unwrap_or(Path::new(".")).join(&a.manifest);
    let manifest = Manifest::load(&manifest_path)?;
    let changes = write_pins(&config_path, &manifest, cli.components.as_deref())?;
    if a.json {
        let report = super::reports::PinReport {
            config: config_path.clone(),
            manifest: manifest_path.clone(),
            toolchain: manifest.toolchain.clone(),
            changes: changes.iter().map(ToString::to_string).collect(),
        };
        outln!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("pinned {} to the build in {} ({})", config_path.display(), manifest_path.display(), manifest.toolchain);
    if changes.is_empty() {
        outln!("no digest changed");
    }
    for c in changes {
        outln!("  {c}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn keys(b: &Backend, k: &KeysCommand) -> Outcome {
    match k {
        KeysCommand::List(f) => render::keys_list(&b.keys_list()?, f.json),
        KeysCommand::Generate { reference, alg, rsa_bits, public, json } => {
            let generated = b.key_generate(reference, alg, *rsa_bits)?;
            render::key_generated(reference, alg, &generated, public.as_deref(), *json)
        }
        // A simulation key's type follows the algorithm (and RSA size).
        KeysCommand::Jwks => {
            outln!("{}", serde_json::to_string_pretty(&b.jwks()?)?);
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Public { reference, version, alg, rsa_bits, format, json } => {
            let reference = super::backend::versioned(reference, *version)?;
            render::key_public(&b.key_public(&reference, alg, *rsa_bits, format == "jwk")?, *json, b.via())
        }
        KeysCommand::Csr { reference, version, alg, subject, sans, out, json } => {
            let csr = b.key_csr(&super::backend::versioned(reference, *version)?, alg, subject, sans)?;
            super::stdio::one_stdout_writer(Some(out), *json)?;
            super::stdio::write(out, csr.csr.as_bytes(), |p, b| cryptohost::fsio::write_new(p, b, 0o644))?;
            served!("cryptohost: keys csr: signed by {} ({}){}", csr.key, csr.provider, b.via());
            if *json {
                outln!("{}", serde_json::to_string(&csr)?);
            } else if !super::stdio::is_std(out) {
                outln!("wrote {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Versions { reference, json } => render::key_versions(&b.key_versions(reference)?, *json),
        KeysCommand::Rotate { reference, alg, rsa_bits, public, json } => {
            let rotated = b.key_rotate(reference, alg.as_deref(), *rsa_bits)?;
            if let (Some(path), Some(pem)) = (public, &rotated.public_key) {
                super::stdio::write(path, pem.as_bytes(), |p, b| cryptohost::fsio::write_new(p, b, 0o644))?;
            }
            render::key_versions(&rotated, *json)
        }
        KeysCommand::Promote { reference, version, force, json } => {
            render::key_versions(&b.key_step(reference, *version, VersionStep::Promote { force: *force })?, *json)
        }
        KeysCommand::Retire { reference, version, json } => {
            render::key_versions(&b.key_step(reference, *version, VersionStep::Retire)?, *json)
        }
        KeysCommand::Destroy { reference, version, yes, json } => {
            render::key_versions(&b.key_step(reference, *version, VersionStep::Destroy { confirm: *yes })?, *json)
        }
    }
}

pub(super) fn crypt(b: &Backend, a: &CryptArgs, encrypt: bool) -> Outcome {
    super::stdio::one_stdout_writer(Some(&a.out), a.json)?;
    let (operation, bytes, provider) = if encrypt {
        let sealed = b.encrypt(&super::backend::versioned(&a.key, a.version)?, &a.alg, &a.file, a.aad.as_bytes())?;
        let mut out = sealed.nonce.clone();
        out.extend_from_slice(&sealed.ciphertext);
        super::stdio::write(&a.out, &out, |p, b| cryptohost::fsio::write_new(p, b, 0o644))?;
        served!("cryptohost: encrypt: served by {}{}", sealed.provider, b.via());
        ("encrypt", out.len(), sealed.provider)
    } else {
        let plain = b.decrypt(&super::backend::versioned(&a.key, a.version)?, &a.alg, &a.file, a.aad.as_bytes())?;
        super::stdio::write(&a.out, &plain.plaintext, |p, b| cryptohost::fsio::write_new(p, b, 0o600))?;
        served!("cryptohost: decrypt: served by {}{}", plain.provider, b.via());
        ("decrypt", plain.plaintext.len(), plain.provider)
    };
    if a.json {
        let report =
            super::reports::Crypted { operation: operation.into(), out: a.out.clone(), bytes: bytes as u64, provider };
        outln!("{}", serde_json::to_string(&report)?);
    } else if !super::stdio::is_std(&a.out) {
        outln!("wrote {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn hsm(b: &Backend, h: &HsmCommand) -> Outcome {
    let (action, json) = match h {
        HsmCommand::Connect(f) => (HsmAction::Connect, f.json),
        HsmCommand::Status(f) => (HsmAction::Status, f.json),
        HsmCommand::Disconnect(f) => (HsmAction::Disconnect, f.json),
    };
    render::hsm(&b.hsm(action)?, json)
}
