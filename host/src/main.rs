//! The `cryptohost` command line: the only place where errors are printed for a person.
//!
//! Exit codes: 0 success (and `valid`), 1 `invalid` signature, 2 bad input or any error.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use cryptohost::config::{Manifest, write_pins};
use cryptohost::keyfile;
use cryptohost::provider::{Origin, SigFormat, SignInput};
use cryptohost::{Config, CryptoProvider, Registry, Served, TrustMode};
use serde_json::json;

#[derive(Parser)]
#[command(name = "cryptohost", version, about = "Crypto provider host: sandboxed WebAssembly providers, pinned by sha256, chosen by priority")]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "cryptohost.toml")]
    config: PathBuf,
    /// Development mode: trust components/manifest.json instead of the pins in the config.
    #[arg(long, global = true)]
    dev: bool,
    /// Log more (repeat for debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List loaded providers: name, component, sha256, priority, capabilities.
    Providers(JsonFlag),
    /// Hash a file (streamed) and print the lowercase hex digest.
    Hash(HashArgs),
    /// Sign a file with a PKCS#8 private key.
    Sign(SignArgs),
    /// Verify a signature over a file with an SPKI public key.
    Verify(VerifyArgs),
    /// Generate a key pair inside a provider and write it as PKCS#8 PEM (and SPKI PEM).
    Keygen(KeygenArgs),
    /// Write the digests of components/manifest.json into the config's pins.
    Pin(PinArgs),
}

#[derive(Args)]
struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct HashArgs {
    /// SHA-256, SHA-384 or SHA-512 (SHA256 etc. also accepted).
    #[arg(long)]
    alg: String,
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SignArgs {
    /// ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512.
    #[arg(long)]
    alg: String,
    /// PKCS#8 private key, PEM or DER.
    #[arg(long)]
    key: PathBuf,
    /// Write the binary signature here (default: base64 on stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// ECDSA signature encoding: der (OpenSSL, cosign) or p1363 (JWS r||s).
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    #[arg(long)]
    alg: String,
    /// SPKI public key, PEM or DER.
    #[arg(long = "pub")]
    public: PathBuf,
    /// The signature, binary or base64.
    #[arg(long)]
    sig: PathBuf,
    /// ECDSA signature encoding: der or p1363.
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct KeygenArgs {
    #[arg(long)]
    alg: String,
    /// Where to write the PKCS#8 PEM private key (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Also write the SPKI PEM public key here.
    #[arg(long = "pub")]
    public: Option<PathBuf>,
    /// RSA modulus size for RS*/PS*.
    #[arg(long, default_value_t = 3072)]
    rsa_bits: u32,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PinArgs {
    /// The manifest of the build you reviewed.
    #[arg(long, default_value = "components/manifest.json")]
    manifest: PathBuf,
}

/// Exit code 2 with a message: bad input or a failure.
struct Failure(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(&cli) {
        Ok(code) => code,
        Err(Failure(e)) => {
            eprintln!("cryptohost: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    struct Stderr(log::LevelFilter);
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= self.0
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("cryptohost: {}: {}", r.level().as_str().to_lowercase(), r.args());
            }
        }
        fn flush(&self) {}
    }
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    if log::set_boxed_logger(Box::new(Stderr(level))).is_ok() {
        log::set_max_level(level);
    }
}

fn open_registry(cli: &Cli) -> Result<Registry> {
    let config = Config::load(&cli.config)?;
    let mode = if cli.dev {
        eprintln!(
            "cryptohost: WARNING: --dev: component pins are NOT enforced; trusting {} as built. Never use this in production.",
            config.component_dir.join("manifest.json").display()
        );
        TrustMode::DevManifest
    } else {
        TrustMode::Pins
    };
    Ok(Registry::open(&config, mode)?)
}

/// "offline-verification (offline-verification.wasm sha256:ab12...)"
fn served_by(p: &dyn CryptoProvider) -> String {
    let d = p.descriptor();
    match &d.origin {
        Origin::Component { file, sha256 } => format!("{} ({file} sha256:{sha256})", d.name),
        Origin::Native { module } => format!("{} (native {module})", d.name),
    }
}

fn provider_json<T>(s: &Served<T>) -> serde_json::Value {
    let d = s.provider.descriptor();
    json!({
        "name": d.name,
        "origin": d.origin,
        "skipped": s.skipped.iter().map(|(p, e)| json!({"provider": p, "reason": e.to_string()})).collect::<Vec<_>>(),
    })
}

fn report<T>(what: &str, s: &Served<T>) {
    for (p, e) in &s.skipped {
        eprintln!("cryptohost: {what}: skipped {p}: {e}");
    }
    eprintln!("cryptohost: {what}: served by {}", served_by(s.provider.as_ref()));
}

fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    match &cli.command {
        Command::Providers(a) => providers(cli, a.json),
        Command::Hash(a) => hash(cli, a),
        Command::Sign(a) => sign(cli, a),
        Command::Verify(a) => verify(cli, a),
        Command::Keygen(a) => keygen(cli, a),
        Command::Pin(a) => pin(cli, a),
    }
}

fn providers(cli: &Cli, as_json: bool) -> Result<ExitCode, Failure> {
    let registry = open_registry(cli)?;
    let descriptors: Vec<_> = registry.providers().iter().map(|p| p.descriptor().clone()).collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&descriptors)?);
        return Ok(ExitCode::SUCCESS);
    }
    for d in descriptors {
        println!("{}  priority {}  ({} {})", d.name, d.priority.0, d.reported_name, d.version);
        match &d.origin {
            Origin::Component { file, sha256 } => println!("  component {file}\n  sha256    {sha256}"),
            Origin::Native { module } => println!("  native    {module}"),
        }
        for c in &d.capabilities {
            println!("  {:<13}{}", c.capability.name(), c.algorithms.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_input_file(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory", path.display());
    }
    Ok(())
}

fn hash(cli: &Cli, a: &HashArgs) -> Result<ExitCode, Failure> {
    check_input_file(&a.file)?;
    let registry = open_registry(cli)?;
    let served = registry.digest_file(&a.alg, &a.file)?;
    let hex = hex::encode(&served.value);
    if a.json {
        println!("{}", json!({"algorithm": cryptohost::alg::canonical_hash(&a.alg), "digest": hex, "provider": provider_json(&served)}));
    } else {
        report("hash", &served);
        println!("{hex}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The hash of a signature algorithm, or a clear "unknown algorithm" failure.
fn sig_hash(alg: &str) -> Result<&'static str> {
    cryptohost::alg::signature_hash(alg).with_context(|| {
        format!("unknown signature algorithm {alg:?} (expected one of ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512)")
    })
}

fn sign(cli: &Cli, a: &SignArgs) -> Result<ExitCode, Failure> {
    let hash_alg = sig_hash(&a.alg)?;
    check_input_file(&a.file)?;
    let key = keyfile::read_private_key(&a.key)?;
    let registry = open_registry(cli)?;
    let digest = registry.digest_file(hash_alg, &a.file)?;
    let signed = registry.sign_with_pkcs8(&a.alg, &key, SignInput::Digest(&digest.value), a.sig_format)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&signed.value);
    if let Some(out) = &a.out {
        fs::write(out, &signed.value).with_context(|| format!("writing {}", out.display()))?;
    }
    if a.json {
        println!(
            "{}",
            json!({"algorithm": a.alg, "signature": b64, "hashed_by": provider_json(&digest), "signed_by": provider_json(&signed)})
        );
    } else {
        report("hash", &digest);
        report("sign", &signed);
        if a.out.is_none() {
            println!("{b64}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(cli: &Cli, a: &VerifyArgs) -> Result<ExitCode, Failure> {
    sig_hash(&a.alg)?;
    check_input_file(&a.file)?;
    let spki = keyfile::read_public_key(&a.public)?;
    let sig = keyfile::read_signature(&a.sig)?;
    let registry = open_registry(cli)?;
    let (verified, digest) = registry.verify_file(&a.alg, &spki, &a.file, &sig, a.sig_format)?;
    let word = if verified.value { "valid" } else { "invalid" };
    if a.json {
        println!(
            "{}",
            json!({"algorithm": a.alg, "valid": verified.value, "hashed_by": provider_json(&digest), "verified_by": provider_json(&verified)})
        );
    } else {
        report("hash", &digest);
        report("verify", &verified);
        println!("{word}");
    }
    Ok(if verified.value { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Creates a new file with `mode`; never overwrites.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn keygen(cli: &Cli, a: &KeygenArgs) -> Result<ExitCode, Failure> {
    sig_hash(&a.alg)?;
    let registry = open_registry(cli)?;
    let served = registry.generate_exportable(&a.alg, a.rsa_bits)?;
    let private_pem = keyfile::to_pem("PRIVATE KEY", &served.value.pkcs8_der)?;
    let public_pem = keyfile::to_pem("PUBLIC KEY", &served.value.spki_der)?;
    write_new(&a.out, private_pem.as_bytes(), 0o600)?;
    if let Some(p) = &a.public {
        write_new(p, public_pem.as_bytes(), 0o644)?;
    }
    if a.json {
        println!("{}", json!({"algorithm": a.alg, "private_key": a.out, "public_key": a.public, "provider": provider_json(&served)}));
    } else {
        report("keygen", &served);
        println!("wrote {}", a.out.display());
        if let Some(p) = &a.public {
            println!("wrote {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pin(cli: &Cli, a: &PinArgs) -> Result<ExitCode, Failure> {
    let manifest = Manifest::load(&a.manifest)?;
    let changes = write_pins(&cli.config, &manifest)?;
    println!("pinned {} to the build in {} ({})", cli.config.display(), a.manifest.display(), manifest.toolchain);
    if changes.is_empty() {
        println!("no digest changed");
    }
    for c in changes {
        println!("  {c}");
    }
    Ok(ExitCode::SUCCESS)
}
