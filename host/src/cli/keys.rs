//! `providers`, `pin`, `keys`, `encrypt`/`decrypt`, `hsm`: what is loaded and the keys it holds.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cryptohost::CryptoProvider;
use cryptohost::config::{Manifest, write_pins};
use cryptohost::fsio;
use cryptohost::keyfile;
use cryptohost::keys::KeyService;
use cryptohost::provider::Origin;

use super::{Cli, CryptArgs, HsmCommand, KeysCommand, Outcome, PinArgs, open, open_registry, parse_ref};

pub(super) fn providers(cli: &Cli, as_json: bool) -> Outcome {
    let registry = open_registry(cli)?;
    let descriptors: Vec<_> = registry.providers().iter().map(|p| p.descriptor().clone()).collect();
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&descriptors)?);
        return Ok(ExitCode::SUCCESS);
    }
    for d in descriptors {
        outln!("{}  priority {}  ({} {})", d.name, d.priority.0, d.reported_name, d.version);
        match &d.origin {
            Origin::Component { file, sha256, publisher } => {
                outln!("  component {file}\n  sha256    {sha256}");
                if let Some(p) = publisher {
                    outln!("  publisher {p} (signed component manifest of the installed kit)");
                }
                if let Some(w) = d.world {
                    outln!("  world     {}", w.name());
                }
            }
            Origin::Native { module } => outln!("  native    {module}"),
        }
        for c in &d.capabilities {
            outln!("  {:<13}{}", c.capability.name(), c.algorithms.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn pin(cli: &Cli, a: &PinArgs) -> Outcome {
    // Relative to the config file, like every path the config names.
    let manifest_path = cli.config.parent().unwrap_or(Path::new(".")).join(&a.manifest);
    let manifest = Manifest::load(&manifest_path)?;
    let changes = write_pins(&cli.config, &manifest, cli.components.as_deref())?;
    outln!("pinned {} to the build in {} ({})", cli.config.display(), manifest_path.display(), manifest.toolchain);
    if changes.is_empty() {
        outln!("no digest changed");
    }
    for c in changes {
        outln!("  {c}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn keys(cli: &Cli, k: &KeysCommand) -> Outcome {
    let (config, registry) = open(cli)?;
    match k {
        KeysCommand::List(f) => {
            let hsm = registry.hsm().context("`keys list` lists HSM keys, and no [hsm] is configured")?;
            let listed = hsm.list_keys()?;
            if f.json {
                outln!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                for key in listed {
                    outln!("{}  {} {}  (token serial {})", key.uri, key.key_type, key.class, key.token_serial);
                }
            }
        }
        KeysCommand::Generate { reference, alg, rsa_bits, public } => {
            let reference = parse_ref(reference)?;
            let service = KeyService::new(&registry, &config.audit_path)?;
            let spki = service.generate(&reference, alg, *rsa_bits)?;
            outln!("generated {reference} ({alg})");
            if !spki.is_empty() {
                let pem = keyfile::to_pem("PUBLIC KEY", &spki)?;
                match public {
                    Some(p) => fsio::write_new(p, pem.as_bytes(), 0o644)?,
                    None => out!("{}", pem.as_str()),
                }
            }
        }
        KeysCommand::Public { reference, alg, rsa_bits } => {
            let reference = parse_ref(reference)?;
            let service = KeyService::new(&registry, &config.audit_path)?;
            // A simulation key's type follows the algorithm (and RSA size).
            let (spki, provider) = service.public_key(&reference, alg, *rsa_bits)?;
            eprintln!("cryptohost: keys public: served by {provider}");
            out!("{}", keyfile::to_pem("PUBLIC KEY", &spki)?.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn crypt(cli: &Cli, a: &CryptArgs, encrypt: bool) -> Outcome {
    let reference = parse_ref(&a.key)?;
    let (config, registry) = open(cli)?;
    // Read whole (AES-GCM here is one-shot): bounded like every whole-file input.
    let input =
        fsio::read_bounded(&a.file, config.max_payload as u64, if encrypt { "plaintext" } else { "ciphertext" })?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    if encrypt {
        let (sealed, provider) = service.encrypt(&reference, &a.alg, &input, a.aad.as_bytes())?;
        let mut out = sealed.nonce.clone();
        out.extend_from_slice(&sealed.ciphertext);
        fsio::write_new(&a.out, &out, 0o644)?;
        eprintln!("cryptohost: encrypt: served by {provider}");
    } else {
        if input.len() < 12 + 16 {
            return Err(anyhow::anyhow!("{} is too short to be nonce || ciphertext || tag", a.file.display()).into());
        }
        let (nonce, ciphertext) = input.split_at(12);
        let (plain, provider) = service.decrypt(&reference, &a.alg, nonce, ciphertext, a.aad.as_bytes())?;
        fsio::write_new(&a.out, &plain, 0o600)?;
        eprintln!("cryptohost: decrypt: served by {provider}");
    }
    outln!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn hsm(cli: &Cli, h: &HsmCommand) -> Outcome {
    let registry = open_registry(cli)?;
    let hsm = registry.hsm().context("no [hsm] is configured")?;
    let print_status = |as_json: bool| -> Result<(), super::Failure> {
        let status = hsm.status();
        if as_json {
            outln!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            for t in status {
                if !t.present {
                    // A configured token the module does not have: listed, never left out.
                    let named = if t.label.is_empty() { format!("serial {}", t.serial) } else { t.label };
                    outln!(
                        "{named}: MISSING (configured, not found{})",
                        t.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                    );
                    continue;
                }
                outln!(
                    "{} (serial {}, slot {}): {}, {} session(s) open, {} idle{}",
                    t.label,
                    t.serial,
                    t.slot.map_or_else(|| "?".to_string(), |s| s.to_string()),
                    if t.healthy { "healthy" } else { "UNHEALTHY" },
                    t.sessions_open,
                    t.sessions_idle,
                    t.last_error.map(|e| format!(", last error: {e}")).unwrap_or_default()
                );
            }
        }
        Ok(())
    };
    match h {
        HsmCommand::Connect(f) | HsmCommand::Status(f) => {
            hsm.connect()?;
            print_status(f.json)?;
        }
        HsmCommand::Disconnect => {
            // Never connects (and so never logs in): a wrong PIN must not cost a try here.
            if hsm.is_connected() {
                hsm.disconnect();
                outln!("disconnected from {}", hsm.descriptor().name);
            } else {
                outln!(
                    "{}: not connected in this process; nothing to disconnect (no login was attempted)",
                    hsm.descriptor().name
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
