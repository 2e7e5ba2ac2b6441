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
use cryptohost::keys::{KeyRef, KeyService, file_sha256};
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
    /// Keys held by the HSM or the simulation: list, generate, public.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// AES-GCM encrypt a file with a secret key (output: 12-byte nonce || ciphertext || tag).
    Encrypt(CryptArgs),
    /// AES-GCM decrypt what `encrypt` wrote.
    Decrypt(CryptArgs),
    /// The PKCS#11 backend: connect (load, log in), disconnect, status of each token.
    #[command(subcommand)]
    Hsm(HsmCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every private and secret key on the configured HSM tokens.
    List(JsonFlag),
    /// Generate a key pair (or an AES key with --alg A128GCM/A256GCM) under a key reference.
    Generate {
        /// pkcs11:token=...;object=LABEL or sim:NAME
        reference: String,
        #[arg(long)]
        alg: String,
        #[arg(long, default_value_t = 3072)]
        rsa_bits: u32,
        /// Also write the SPKI PEM public key here.
        #[arg(long = "pub")]
        public: Option<PathBuf>,
    },
    /// Print the SPKI PEM public key of a key reference.
    Public {
        reference: String,
        /// The algorithm the key is for (selects the key type of simulation keys).
        #[arg(long, default_value = "ES256")]
        alg: String,
        #[arg(long, default_value_t = 3072)]
        rsa_bits: u32,
    },
}

#[derive(Subcommand)]
enum HsmCommand {
    /// Load the module, find the tokens, log in; report each token.
    Connect(JsonFlag),
    /// Log out, close every session, finalize the module.
    Disconnect,
    /// Connect if needed and report each token's health and sessions.
    Status(JsonFlag),
}

#[derive(Args)]
struct CryptArgs {
    /// A secret key reference (pkcs11:...;object=LABEL or sim:NAME).
    #[arg(long)]
    key: String,
    /// A128GCM or A256GCM.
    #[arg(long, default_value = "A256GCM")]
    alg: String,
    /// Additional authenticated data (text).
    #[arg(long, default_value = "")]
    aad: String,
    #[arg(long)]
    out: PathBuf,
    file: PathBuf,
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
    /// Key reference: pkcs11:token=...;object=..., sim:NAME, file:PATH, or a PKCS#8 file path.
    #[arg(long)]
    key: String,
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
    Ok(open(cli)?.1)
}

fn open(cli: &Cli) -> Result<(Config, Registry)> {
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
    let registry = Registry::open(&config, mode)?;
    Ok((config, registry))
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

/// The audit-log origin of a provider, for a person.
fn origin_text(origin: &serde_json::Value) -> String {
    let field = |k: &str| origin.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
    if origin.get("component").is_some() {
        format!("{} sha256:{}", field("component"), field("sha256"))
    } else {
        format!("PKCS#11 {} token serial {}", field("pkcs11_module"), field("token_serial"))
    }
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
        Command::Keys(k) => keys(cli, k),
        Command::Encrypt(a) => crypt(cli, a, true),
        Command::Decrypt(a) => crypt(cli, a, false),
        Command::Hsm(h) => hsm(cli, h),
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
    let reference = KeyRef::parse(&a.key).map_err(|m| anyhow::anyhow!("key reference {:?}: {m}", a.key))?;
    if let KeyRef::File(path) = &reference {
        // Read (and refuse) a bad key file before anything else starts.
        keyfile::read_private_key(path)?;
    }
    let (config, registry) = open(cli)?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    let digest = registry.digest_file(hash_alg, &a.file)?;
    let input_sha256 = if hash_alg == "SHA-256" { digest.value.clone() } else { file_sha256(&a.file)? };
    let signed = service.sign(&reference, &a.alg, SignInput::Digest(&digest.value), &input_sha256, a.sig_format)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&signed.signature);
    if let Some(out) = &a.out {
        fs::write(out, &signed.signature).with_context(|| format!("writing {}", out.display()))?;
    }
    if a.json {
        println!(
            "{}",
            json!({"algorithm": a.alg, "signature": b64, "hashed_by": provider_json(&digest), "signed_by": {"name": signed.provider, "origin": signed.origin}})
        );
    } else {
        report("hash", &digest);
        eprintln!("cryptohost: sign: served by {} ({})", signed.provider, origin_text(&signed.origin));
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
    for path in std::iter::once(&a.out).chain(a.public.as_ref()) {
        if path.exists() {
            return Err(anyhow::anyhow!("{} already exists (it must not exist yet: keys are never overwritten)", path.display()).into());
        }
    }
    let (config, registry) = open(cli)?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    let (key, provider) = service.generate_file_key(&a.out, &a.alg, a.rsa_bits)?;
    let private_pem = keyfile::to_pem("PRIVATE KEY", &key.pkcs8_der)?;
    let public_pem = keyfile::to_pem("PUBLIC KEY", &key.spki_der)?;
    write_new(&a.out, private_pem.as_bytes(), 0o600)?;
    if let Some(p) = &a.public {
        write_new(p, public_pem.as_bytes(), 0o644)?;
    }
    let served = registry.by_name(&provider).map(|p| served_by(p.as_ref())).unwrap_or(provider);
    if a.json {
        println!("{}", json!({"algorithm": a.alg, "private_key": a.out, "public_key": a.public, "provider": served}));
    } else {
        eprintln!("cryptohost: keygen: served by {served}");
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

fn parse_ref(text: &str) -> Result<KeyRef> {
    KeyRef::parse(text).map_err(|m| anyhow::anyhow!("key reference {text:?}: {m}"))
}

fn keys(cli: &Cli, k: &KeysCommand) -> Result<ExitCode, Failure> {
    let (config, registry) = open(cli)?;
    match k {
        KeysCommand::List(f) => {
            let hsm = registry.hsm().context("`keys list` lists HSM keys, and no [hsm] is configured")?;
            let listed = hsm.list_keys()?;
            if f.json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                for key in listed {
                    println!("{}  {} {}  (token serial {})", key.uri, key.key_type, key.class, key.token_serial);
                }
            }
        }
        KeysCommand::Generate { reference, alg, rsa_bits, public } => {
            let reference = parse_ref(reference)?;
            let service = KeyService::new(&registry, &config.audit_path)?;
            let spki = service.generate(&reference, alg, *rsa_bits)?;
            println!("generated {reference} ({alg})");
            if !spki.is_empty() {
                let pem = keyfile::to_pem("PUBLIC KEY", &spki)?;
                match public {
                    Some(p) => write_new(p, pem.as_bytes(), 0o644)?,
                    None => print!("{}", pem.as_str()),
                }
            }
        }
        KeysCommand::Public { reference, alg, rsa_bits } => {
            let reference = parse_ref(reference)?;
            let service = KeyService::new(&registry, &config.audit_path)?;
            // A simulation key's type follows the algorithm (and RSA size).
            let (spki, provider) = service.public_key(&reference, alg, *rsa_bits)?;
            eprintln!("cryptohost: keys public: served by {provider}");
            print!("{}", keyfile::to_pem("PUBLIC KEY", &spki)?.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn crypt(cli: &Cli, a: &CryptArgs, encrypt: bool) -> Result<ExitCode, Failure> {
    let reference = parse_ref(&a.key)?;
    let input = fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let (config, registry) = open(cli)?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    if encrypt {
        let (sealed, provider) = service.encrypt(&reference, &a.alg, &input, a.aad.as_bytes())?;
        let mut out = sealed.nonce.clone();
        out.extend_from_slice(&sealed.ciphertext);
        write_new(&a.out, &out, 0o644)?;
        eprintln!("cryptohost: encrypt: served by {provider}");
    } else {
        if input.len() < 12 + 16 {
            return Err(anyhow::anyhow!("{} is too short to be nonce || ciphertext || tag", a.file.display()).into());
        }
        let (nonce, ciphertext) = input.split_at(12);
        let (plain, provider) = service.decrypt(&reference, &a.alg, nonce, ciphertext, a.aad.as_bytes())?;
        write_new(&a.out, &plain, 0o600)?;
        eprintln!("cryptohost: decrypt: served by {provider}");
    }
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn hsm(cli: &Cli, h: &HsmCommand) -> Result<ExitCode, Failure> {
    let registry = open_registry(cli)?;
    let hsm = registry.hsm().context("no [hsm] is configured")?;
    let print_status = |as_json: bool| -> Result<(), Failure> {
        let status = hsm.status();
        if as_json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            for t in status {
                println!(
                    "{} (serial {}, slot {}): {}, {} session(s) open, {} idle{}",
                    t.label,
                    t.serial,
                    t.slot,
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
            hsm.connect()?;
            hsm.disconnect();
            println!("disconnected from {}", hsm.descriptor().name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
