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
#[command(
    name = "cryptohost",
    version,
    about = "Crypto provider host: sandboxed WebAssembly providers, pinned by sha256, chosen by priority"
)]
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
    /// Sign a file with a key reference (pkcs11:..., sim:NAME, file:PATH or a PKCS#8 file).
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
    /// DSSE envelopes: sign (one or more keys/profiles), verify (keys or trust anchors).
    #[command(subcommand)]
    Dsse(DsseCommand),
    /// Trust anchors: SPKI fingerprints.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Offline trust bundles (offline-kit.tar.gz): create, verify, install.
    #[command(subcommand)]
    Bundle(BundleCommand),
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Build offline-kit.tar.gz from a directory (trust-anchors.json + public-keys/*.pub).
    Create {
        /// The source directory.
        #[arg(long)]
        from: PathBuf,
        /// The bundle signing key (reference) and its algorithm.
        #[arg(long)]
        key: String,
        #[arg(long)]
        alg: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle against a bootstrap key given out of band.
    Verify {
        archive: PathBuf,
        #[command(flatten)]
        bootstrap: BootstrapArgs,
    },
    /// Verify, then install the bundle's files into a new directory, all or nothing.
    Install {
        archive: PathBuf,
        #[command(flatten)]
        bootstrap: BootstrapArgs,
        #[arg(long)]
        into: PathBuf,
    },
}

#[derive(Args)]
struct BootstrapArgs {
    /// The bundle signing public key, received out of band.
    #[arg(long)]
    bootstrap_pub: Option<PathBuf>,
    /// Or only its fingerprint (sha256:...); the key must be in the bundle.
    #[arg(long)]
    bootstrap_fingerprint: Option<String>,
    /// Algorithm of the bootstrap key (inferred for EC and Ed25519 keys).
    #[arg(long)]
    alg: Option<String>,
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Print `sha256:` + hex of a public key's SPKI DER (the trust-anchor fingerprint).
    Fingerprint { public: PathBuf },
}

#[derive(Subcommand)]
enum DsseCommand {
    /// Sign FILE as a DSSE envelope with every --key / --profile / --key-id, concurrently.
    Sign(DsseSignArgs),
    /// Verify an envelope against --pub keys or an --anchors directory.
    Verify(DsseVerifyArgs),
}

#[derive(Args)]
struct DsseSignArgs {
    /// A key reference to sign with (repeatable; needs --alg).
    #[arg(long)]
    key: Vec<String>,
    /// Algorithm for --key references.
    #[arg(long)]
    alg: Option<String>,
    /// A configured signing profile (repeatable).
    #[arg(long)]
    profile: Vec<String>,
    /// A trust-anchor keyId; the profile with that key_id signs, and the keyId is written.
    #[arg(long)]
    key_id: Vec<String>,
    /// The payload type, e.g. application/vnd.in-toto+json.
    #[arg(long)]
    payload_type: String,
    /// ECDSA encoding: der (in-toto/sigstore tooling) or p1363.
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    /// Keep the signatures that worked when a profile fails (reported on stderr).
    #[arg(long)]
    allow_partial: bool,
    /// Write the envelope here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    file: PathBuf,
}

#[derive(Args)]
struct DsseVerifyArgs {
    envelope: PathBuf,
    /// Trust exactly these public keys (repeatable).
    #[arg(long = "pub")]
    public: Vec<PathBuf>,
    /// Algorithm of the --pub keys (inferred for EC and Ed25519 keys; required for RSA).
    #[arg(long)]
    alg: Option<String>,
    /// Trust the anchors of an installed bundle directory (trust-anchors.json + public-keys/).
    #[arg(long)]
    anchors: Option<PathBuf>,
    /// Verification time (RFC 3339), default now.
    #[arg(long)]
    at: Option<String>,
    /// Only anchors with this purpose.
    #[arg(long)]
    purpose: Option<String>,
    /// Distinct trusted keys that must have signed.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// Write exactly the verified payload bytes here (only when valid).
    #[arg(long)]
    payload_out: Option<PathBuf>,
    #[arg(long, default_value = "der")]
    sig_format: SigFormat,
    /// Largest payload accepted, in MiB (default from config, 64).
    #[arg(long)]
    max_payload_mib: Option<usize>,
    #[arg(long)]
    json: bool,
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
        Command::Dsse(DsseCommand::Sign(a)) => dsse_sign(cli, a),
        Command::Dsse(DsseCommand::Verify(a)) => dsse_verify(cli, a),
        Command::Bundle(b) => bundle(cli, b),
        Command::Trust(TrustCommand::Fingerprint { public }) => {
            let spki = keyfile::read_public_key(public)?;
            let registry = open_registry(cli)?;
            println!("{}", cryptohost::dsse::fingerprint(&registry, &spki).map_err(|e| anyhow::anyhow!(e))?);
            Ok(ExitCode::SUCCESS)
        }
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
        println!(
            "{}",
            json!({"algorithm": cryptohost::alg::canonical_hash(&a.alg), "digest": hex, "provider": provider_json(&served)})
        );
    } else {
        report("hash", &served);
        println!("{hex}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The hash a signature algorithm prehashes with (`None` for EdDSA, which signs whole
/// messages), or a clear "unknown algorithm" failure.
fn sig_hash(alg: &str) -> Result<Option<&'static str>> {
    if !cryptohost::alg::is_signature_algorithm(alg) {
        anyhow::bail!(
            "unknown signature algorithm {alg:?} (expected one of ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA)"
        );
    }
    Ok(cryptohost::alg::signature_hash(alg))
}

/// Reads a whole file for EdDSA (which cannot sign a digest), within the payload limit.
fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let len = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if len as usize > limit {
        anyhow::bail!("{} is {len} bytes; EdDSA signs whole messages and the limit is {limit} bytes", path.display());
    }
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
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
    let digest = registry.digest_file(hash_alg.unwrap_or("SHA-256"), &a.file)?;
    let input_sha256 =
        if hash_alg.is_none_or(|h| h == "SHA-256") { digest.value.clone() } else { file_sha256(&a.file)? };
    let message;
    let input = match hash_alg {
        Some(_) => SignInput::Digest(&digest.value),
        None => {
            message = read_bounded(&a.file, config.max_payload)?;
            SignInput::Message(&message)
        }
    };
    let signed = service.sign(&reference, &a.alg, input, &input_sha256, a.sig_format)?;
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
    let hash_alg = sig_hash(&a.alg)?;
    check_input_file(&a.file)?;
    let spki = keyfile::read_public_key(&a.public)?;
    let sig = keyfile::read_signature(&a.sig)?;
    let (config, registry) = open(cli)?;
    // EdDSA verifies the whole message: there is no separate hashing step to report.
    let (verified, digest) = match hash_alg {
        Some(_) => {
            let (verified, digest) = registry.verify_file(&a.alg, &spki, &a.file, &sig, a.sig_format)?;
            (verified, Some(digest))
        }
        None => {
            let message = read_bounded(&a.file, config.max_payload)?;
            (registry.verify(&a.alg, &spki, SignInput::Message(&message), &sig, a.sig_format)?, None)
        }
    };
    let word = if verified.value { "valid" } else { "invalid" };
    if a.json {
        println!(
            "{}",
            json!({"algorithm": a.alg, "valid": verified.value, "hashed_by": digest.as_ref().map(provider_json), "verified_by": provider_json(&verified)})
        );
    } else {
        if let Some(d) = &digest {
            report("hash", d);
        }
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
            return Err(anyhow::anyhow!(
                "{} already exists (it must not exist yet: keys are never overwritten)",
                path.display()
            )
            .into());
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
                if !t.present {
                    // A configured token the module does not have: listed, never left out.
                    let named = if t.label.is_empty() { format!("serial {}", t.serial) } else { t.label };
                    println!(
                        "{named}: MISSING (configured, not found{})",
                        t.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                    );
                    continue;
                }
                println!(
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
                println!("disconnected from {}", hsm.descriptor().name);
            } else {
                println!(
                    "{}: not connected in this process; nothing to disconnect (no login was attempted)",
                    hsm.descriptor().name
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dsse_sign(cli: &Cli, a: &DsseSignArgs) -> Result<ExitCode, Failure> {
    use cryptohost::dsse::{self, Signer};
    let (config, registry) = open(cli)?;
    let mut signers = Vec::new();
    for k in &a.key {
        let alg = a.alg.clone().context("--key needs --alg (profiles carry their own)")?;
        signers.push(Signer { label: k.clone(), key: parse_ref(k)?, algorithm: alg, key_id: None });
    }
    for name in &a.profile {
        let p =
            config.profiles.get(name).with_context(|| format!("no profile {name:?} in {}", config.path.display()))?;
        signers.push(Signer {
            label: name.clone(),
            key: parse_ref(&p.key)?,
            algorithm: p.algorithm.clone(),
            key_id: p.key_id.clone(),
        });
    }
    for id in &a.key_id {
        let (name, p) =
            config.profiles.iter().find(|(_, p)| p.key_id.as_deref() == Some(id.as_str())).with_context(|| {
                format!("no profile has key_id {id:?}: map it to a key in [profiles] of {}", config.path.display())
            })?;
        signers.push(Signer {
            label: name.clone(),
            key: parse_ref(&p.key)?,
            algorithm: p.algorithm.clone(),
            key_id: Some(id.clone()),
        });
    }
    if signers.is_empty() {
        return Err(anyhow::anyhow!("nothing to sign with: give --key (with --alg), --profile or --key-id").into());
    }
    let meta = fs::metadata(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    if meta.len() as usize > config.max_payload {
        return Err(anyhow::anyhow!(
            "{} is {} bytes; the DSSE payload limit is {} bytes",
            a.file.display(),
            meta.len(),
            config.max_payload
        )
        .into());
    }
    let payload = fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let service = KeyService::new(&registry, &config.audit_path)?;
    let (envelope, failures) =
        dsse::sign(&registry, &service, &a.payload_type, &payload, &signers, a.sig_format, a.allow_partial)?;
    for (label, e) in &failures {
        eprintln!("cryptohost: dsse sign: {label} FAILED (kept the others, --allow-partial): {e}");
    }
    let json = envelope.to_json();
    match &a.out {
        Some(out) => fs::write(out, json + "\n").with_context(|| format!("writing {}", out.display()))?,
        None => println!("{json}"),
    }
    eprintln!("cryptohost: dsse sign: {} signature(s)", envelope.signatures.len());
    Ok(ExitCode::SUCCESS)
}

fn dsse_verify(cli: &Cli, a: &DsseVerifyArgs) -> Result<ExitCode, Failure> {
    use cryptohost::dsse::{self, Envelope, TrustedKey};
    if a.public.is_empty() == a.anchors.is_none() {
        return Err(anyhow::anyhow!("give either --pub (repeatable) or --anchors DIR").into());
    }
    if a.threshold == 0 {
        return Err(anyhow::anyhow!("--threshold must be at least 1").into());
    }
    let (config, registry) = open(cli)?;
    let limit = a.max_payload_mib.map_or(config.max_payload, |m| m << 20);
    let raw = fs::read(&a.envelope).with_context(|| format!("cannot read {}", a.envelope.display()))?;
    let envelope = Envelope::parse(&raw, limit).with_context(|| a.envelope.display().to_string())?;
    let at = match &a.at {
        Some(t) => cryptohost::trust::parse_time(t).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        None => time::OffsetDateTime::now_utc(),
    };
    let mut refused = Vec::new();
    let keys: Vec<TrustedKey> = if let Some(dir) = &a.anchors {
        let set = cryptohost::trust::load_anchors(&registry, dir, at, a.purpose.as_deref())?;
        refused = set.refused;
        set.keys
    } else {
        let mut keys = Vec::new();
        for p in &a.public {
            let spki = keyfile::read_public_key(p)?;
            let alg = match (&a.alg, cryptohost::alg::algorithm_of_spki(&spki)) {
                (Some(alg), _) => alg.clone(),
                (None, Some(alg)) => alg.to_string(),
                (None, None) => {
                    return Err(anyhow::anyhow!("{}: an RSA key: give --alg (RS256, PS256, ...)", p.display()).into());
                }
            };
            let fp = dsse::fingerprint(&registry, &spki).map_err(|e| anyhow::anyhow!(e))?;
            keys.push(TrustedKey {
                name: p.display().to_string(),
                fingerprint: fp.clone(),
                spki,
                algorithm: alg,
                hints: vec![fp],
            });
        }
        keys
    };
    let result = dsse::verify(&registry, &envelope, &keys, a.threshold, a.sig_format)?;
    if result.valid {
        if let Some(out) = &a.payload_out {
            fs::write(out, &result.payload).with_context(|| format!("writing {}", out.display()))?;
        }
    }
    if a.json {
        println!(
            "{}",
            json!({"valid": result.valid, "payloadType": result.payload_type, "verifiedBy": result.verified_by,
                   "threshold": result.threshold, "notes": result.notes, "refusedAnchors": refused})
        );
    } else {
        for r in &refused {
            eprintln!("cryptohost: dsse verify: {r}");
        }
        for n in &result.notes {
            eprintln!("cryptohost: dsse verify: {n}");
        }
        if result.valid {
            eprintln!("cryptohost: dsse verify: verified by {}", result.verified_by.join(", "));
        }
        println!("{}", if result.valid { "valid" } else { "invalid" });
    }
    Ok(if result.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

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

fn bundle(cli: &Cli, b: &BundleCommand) -> Result<ExitCode, Failure> {
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
            let manifest = bundle::create(&registry, &service, from, &signer, out)?;
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
