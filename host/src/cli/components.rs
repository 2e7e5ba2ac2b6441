//! `components inspect`: what a component file is, before anyone pins it.

use std::path::Path;
use std::process::ExitCode;

use cryptohost::config::Manifest;

use super::Outcome;

pub(super) fn inspect(file: &Path, as_json: bool) -> Outcome {
    let i = cryptohost::load::inspect(file)?;
    // The build manifest beside the file, when it lists these very bytes.
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let manifest = file.parent().map(|d| d.join("manifest.json")).and_then(|m| Manifest::load(&m).ok());
    let entry =
        manifest.as_ref().and_then(|m| m.entry_for_file(&name).filter(|e| e.sha256 == i.sha256).map(|e| (m, e)));
    let world = i.world.as_ref().map(|w| w.name().to_string());
    // A signed component manifest beside it (a kit's crypto-plugins/): who signed a listing of
    // these bytes. Shown as claimed: the signature is checked against the kit's anchors when
    // the kit is installed and loaded, not here.
    let publisher = file
        .parent()
        .map(|d| d.join(cryptohost::bundle::kit::COMPONENT_MANIFEST_FILE))
        .and_then(|m| cryptohost::fsio::read_bounded(&m, 16 << 20, "component manifest").ok())
        .and_then(|b| cryptohost::dsse::Envelope::parse(&b, 16 << 20, 16).ok())
        .filter(|e| {
            serde_json::from_slice::<cryptohost::bundle::kit::ComponentManifest>(&e.payload)
                .is_ok_and(|m| m.components.iter().any(|c| c.sha256 == i.sha256))
        })
        .map(|e| e.signatures.iter().map(|s| s.keyid.clone()).collect::<Vec<_>>().join(", "));
    if as_json {
        let report = super::reports::ComponentInspected {
            file: file.display().to_string(),
            sha256: i.sha256.clone(),
            size: i.size,
            world: world.as_ref().ok().cloned(),
            world_error: world.as_ref().err().map(ToString::to_string),
            imports: i.imports.clone(),
            exports: i.exports.clone(),
            refused: i.refused_imports.clone(),
            publisher_claimed: publisher.clone(),
            manifest: entry.map(|(m, _)| super::reports::ManifestSeen {
                wit_package: m.wit_package.clone(),
                toolchain: m.toolchain.clone(),
                build_mode: m.build_mode.clone(),
            }),
        };
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("{}", file.display());
        outln!("  sha256     {}", i.sha256);
        outln!("  size       {} bytes", i.size);
        match &world {
            Ok(w) => outln!("  world      {w}"),
            Err(e) => outln!("  world      none: {e}"),
        }
        for imp in &i.imports {
            outln!("  import     {imp}");
        }
        for exp in &i.exports {
            outln!("  export     {exp}");
        }
        if let Some(p) = &publisher {
            outln!("  publisher  {p} (claimed by the signed component manifest beside it; checked when its kit loads)");
        }
        match entry {
            Some((m, _)) => {
                outln!("  built with {} ({})", m.toolchain, m.build_mode);
                outln!("  contract   {}", m.wit_package);
            }
            None => outln!("  built with unknown (no manifest.json beside it lists these bytes)"),
        }
    }
    for r in &i.refused_imports {
        eprintln!("cryptohost: components inspect: refused: {r}");
    }
    if let Err(e) = &world {
        eprintln!("cryptohost: components inspect: refused: {e}");
    }
    Ok(if i.refused_imports.is_empty() && world.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

pub(super) fn sign(cli: &super::Cli, key: &str, alg: &str, key_id: &str, out: &Path) -> Outcome {
    let (config, registry) = super::open(cli)?;
    let service = cryptohost::keys::KeyService::new(&registry, &config.audit_path, config.checkpoint_every)?;
    let signer = cryptohost::dsse::Signer {
        label: key.to_string(),
        key: super::parse_ref(key)?,
        algorithm: alg.to_string(),
        key_id: Some(key_id.to_string()),
    };
    let manifest = cryptohost::bundle::kit::publish(&registry, &service, &config, &signer, out)?;
    for c in &manifest.components {
        outln!("{}  {}  {} ({}, priority {})", c.file, c.sha256, c.provider.name, c.world, c.provider.priority);
    }
    outln!("signed {} component(s) as {key_id} into {}", manifest.components.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn check(file: &Path, as_json: bool) -> Outcome {
    let (descriptor, checks) = cryptohost::load::check_component(file)?;
    let failed = checks.iter().filter(|c| c.outcome == "fail").count();
    let passed = checks.iter().filter(|c| c.outcome == "pass").count();
    let skipped = checks.iter().filter(|c| c.outcome == "skip").count();
    if as_json {
        let report = super::reports::ComponentChecked {
            file: file.display().to_string(),
            provider: descriptor.reported_name.clone(),
            world: descriptor.world.map(|w| w.name().to_string()),
            checks: checks
                .iter()
                .map(|c| super::reports::ConformanceCheck {
                    capability: c.capability.clone(),
                    algorithm: c.algorithm.clone(),
                    name: c.name.clone(),
                    outcome: c.outcome.to_string(),
                    detail: c.detail.clone(),
                })
                .collect(),
            passed,
            failed,
            skipped,
        };
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} ({} {}, world {})",
            file.display(),
            descriptor.reported_name,
            descriptor.version,
            descriptor.world.map_or("?", |w| w.name())
        );
        for c in &checks {
            let mark = match c.outcome {
                "pass" => "PASS",
                "fail" => "FAIL",
                _ => "SKIP",
            };
            let detail = if c.detail.is_empty() { String::new() } else { format!("  -- {}", c.detail) };
            outln!("{mark}  {:<13} {:<8} {}{detail}", c.capability, c.algorithm, c.name);
        }
        outln!("{passed} passed, {failed} failed, {skipped} skipped");
    }
    Ok(if failed == 0 && passed > 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
