//! Turns the guests' core wasm modules into components and writes `components/manifest.json`.
//!
//! Usage: `guest-pack --wit DIR --out DIR --toolchain TEXT --build-mode TEXT [--merge] CORE.wasm...`
//!
//! With `--merge`, the entries of an existing `OUT/manifest.json` for other components are kept
//! (a provider built out of tree and packed into the same directory survives a rebuild of the
//! others), provided their file is still there with the recorded digest and they were built
//! with the same WIT package, toolchain and build mode (one manifest, one toolchain).
//!
//! Each core module already carries wit-bindgen's component-type section; this tool encodes it
//! as a component with `wit-component`, writes `OUT/NAME.wasm` (NAME from the module file name,
//! `_` turned into `-`), and records every file's sha256 and size, the WIT package version and
//! the toolchain in `OUT/manifest.json`. Output is deterministic: the same inputs give the same
//! bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Serialize, Deserialize)]
struct Manifest {
    /// The WIT package every component was built against.
    wit_package: String,
    /// `rustc --version` of the compiler that built the guests.
    toolchain: String,
    /// How the guests were built (rustup target, or Debian rustc with -Zbuild-std).
    build_mode: String,
    components: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    file: String,
    sha256: String,
    size: u64,
    /// The WIT world its exports make it: `verifier`, `signer` or `keystore`.
    world: String,
}

/// The world of a component, from the interfaces it exports (what the host infers too).
fn world_of(component: &[u8]) -> Result<String> {
    let wit_component::DecodedWasm::Component(resolve, world) = wit_component::decode(component)? else {
        bail!("not a component");
    };
    let exports: Vec<String> = resolve.worlds[world]
        .exports
        .keys()
        .filter_map(|k| match k {
            wit_parser::WorldKey::Interface(id) => resolve.id_of(*id),
            wit_parser::WorldKey::Name(n) => Some(n.clone()),
        })
        .collect();
    let has = |i: &str| exports.iter().any(|e| e.starts_with(&format!("cryptohost:provider/{i}@")));
    Ok(match (has("metadata") && has("hashing") && has("verification"), has("signing"), has("encryption")) {
        (true, false, false) => "verifier",
        (true, true, false) => "signer",
        (true, true, true) => "keystore",
        _ => bail!("exports {exports:?} are none of the worlds verifier, signer, keystore"),
    }
    .to_string())
}

fn arg_value(args: &mut std::vec::IntoIter<String>, flag: &str) -> Result<String> {
    args.next().with_context(|| format!("{flag} needs a value"))
}

fn wit_package(wit_dir: &Path) -> Result<String> {
    let mut packages = Vec::new();
    for entry in fs::read_dir(wit_dir).with_context(|| format!("reading {}", wit_dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wit") {
            let text = fs::read_to_string(&path)?;
            for line in text.lines() {
                if let Some(rest) = line.trim().strip_prefix("package ") {
                    packages.push(rest.trim_end_matches(';').trim().to_string());
                }
            }
        }
    }
    match packages.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected exactly one `package` line in {}, found {packages:?}", wit_dir.display()),
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).collect::<Vec<_>>().into_iter();
    let (mut wit, mut out, mut toolchain, mut mode) = (None, None, None, None);
    let mut merge = false;
    let mut inputs: Vec<PathBuf> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--wit" => wit = Some(PathBuf::from(arg_value(&mut args, "--wit")?)),
            "--out" => out = Some(PathBuf::from(arg_value(&mut args, "--out")?)),
            "--toolchain" => toolchain = Some(arg_value(&mut args, "--toolchain")?),
            "--build-mode" => mode = Some(arg_value(&mut args, "--build-mode")?),
            "--merge" => merge = true,
            other if other.starts_with("--") => bail!("unknown flag {other}"),
            path => inputs.push(PathBuf::from(path)),
        }
    }
    let wit = wit.context("--wit DIR is required")?;
    let out = out.context("--out DIR is required")?;
    if inputs.is_empty() {
        bail!("no core wasm modules given");
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut components = BTreeMap::new();
    for input in &inputs {
        let stem = input
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("bad module file name {}", input.display()))?;
        let name = stem.replace('_', "-");
        let core = fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        let component = wit_component::ComponentEncoder::default()
            .module(&core)
            .with_context(|| format!("{}: no usable component-type section", input.display()))?
            .validate(true)
            .encode()
            .with_context(|| format!("encoding {} as a component", input.display()))?;
        let file = format!("{name}.wasm");
        fs::write(out.join(&file), &component).with_context(|| format!("writing {file}"))?;
        let sha256 = hex::encode(Sha256::digest(&component));
        let world = world_of(&component).with_context(|| format!("{file}: its world"))?;
        // A closed stdout is an error like any other here, never a panic.
        writeln!(std::io::stdout(), "{file}: {} bytes, sha256 {sha256}, world {world}", component.len())
            .context("writing to stdout")?;
        components.insert(name, Entry { file, sha256, size: component.len() as u64, world });
    }

    let mut manifest = Manifest {
        wit_package: wit_package(&wit)?,
        toolchain: toolchain.context("--toolchain TEXT is required")?,
        build_mode: mode.context("--build-mode TEXT is required")?,
        components,
    };
    if merge {
        merge_existing(&out, &mut manifest)?;
    }
    let json = serde_json::to_string_pretty(&manifest)? + "\n";
    fs::write(out.join("manifest.json"), json).context("writing manifest.json")?;
    Ok(())
}

/// Keeps the entries of `OUT/manifest.json` for components not packed now, when their file is
/// still there with the recorded digest; refuses a manifest of another toolchain, build mode or
/// WIT package (one manifest vouches for one build).
fn merge_existing(out: &Path, manifest: &mut Manifest) -> Result<()> {
    let path = out.join("manifest.json");
    let old: Manifest = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{}: not a manifest", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for (name, entry) in old.components {
        if manifest.components.contains_key(&name) {
            continue;
        }
        let Ok(bytes) = fs::read(out.join(&entry.file)) else {
            writeln!(std::io::stdout(), "{}: gone, dropped from the manifest", entry.file)
                .context("writing to stdout")?;
            continue;
        };
        if hex::encode(Sha256::digest(&bytes)) != entry.sha256 {
            bail!("{}: its bytes no longer match the manifest's sha256; rebuild it or remove it", entry.file);
        }
        if (&old.wit_package, &old.toolchain, &old.build_mode)
            != (&manifest.wit_package, &manifest.toolchain, &manifest.build_mode)
        {
            bail!(
                "{}: built against {} with {} ({}), not {} with {} ({}): one manifest records one build; \
                 rebuild it with this toolchain (just build-provider) or pack into another directory",
                entry.file,
                old.wit_package,
                old.toolchain,
                old.build_mode,
                manifest.wit_package,
                manifest.toolchain,
                manifest.build_mode
            );
        }
        writeln!(std::io::stdout(), "{}: kept (sha256 {})", entry.file, entry.sha256).context("writing to stdout")?;
        manifest.components.insert(name, entry);
    }
    Ok(())
}
